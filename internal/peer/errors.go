package peer

import "errors"

// Errors of the mux and its stream layers. Check them with errors.Is.
var (
	// ErrClosed: the Mux, or the group's stream layer, has been closed.
	ErrClosed = errors.New("weir/peer: closed")
	// ErrGroupRegistered: a stream layer for this group id already exists
	// on this Mux; close it first.
	ErrGroupRegistered = errors.New("weir/peer: group already registered")
	// ErrInvalidGroupID: the id is empty, longer than MaxGroupIDLen bytes,
	// or starts with a zero byte (reserved).
	ErrInvalidGroupID = errors.New("weir/peer: invalid group id")
	// ErrInvalidOptions: an Options or TransportConfig field is out of range.
	ErrInvalidOptions = errors.New("weir/peer: invalid options")
)

// Errors reading a stream header; the stream is closed.
var (
	// ErrBadMagic: the stream does not start with "WPR2".
	ErrBadMagic = errors.New("weir/peer: bad stream magic")
	// ErrBadHeader: the group id length is zero or above MaxGroupIDLen.
	ErrBadHeader = errors.New("weir/peer: bad stream header")
)
