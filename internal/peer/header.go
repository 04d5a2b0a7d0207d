package peer

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Stream header constants: part of the wire format; never change.
const (
	// headerMagic starts every stream. It is also the version.
	headerMagic = "WPR2"
	// headerFixedLen is the magic plus the u16 group id length.
	headerFixedLen = len(headerMagic) + 2
	// MaxGroupIDLen is the longest group id, in bytes.
	MaxGroupIDLen = 255
)

// validGroupID reports whether id can be carried in a stream header and
// is not reserved: ids starting with a zero byte are the Mux's own.
func validGroupID(id string) error {
	if len(id) == 0 || len(id) > MaxGroupIDLen {
		return fmt.Errorf("%w: %d bytes (want 1..%d)", ErrInvalidGroupID, len(id), MaxGroupIDLen)
	}
	if id[0] == 0 {
		return fmt.Errorf("%w: %q starts with a zero byte (reserved)", ErrInvalidGroupID, id)
	}
	return nil
}

// appendHeader appends the stream header for group to b. The caller has
// validated group.
func appendHeader(b []byte, group string) []byte {
	b = append(b, headerMagic...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(group)))
	return append(b, group...)
}

// readHeader reads one stream header from r and returns the group id. It
// reads exactly the header's bytes, so the rest of r is the group's stream.
func readHeader(r io.Reader) (string, error) {
	var fixed [headerFixedLen]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return "", fmt.Errorf("read stream header: %w", err)
	}
	if string(fixed[:len(headerMagic)]) != headerMagic {
		return "", fmt.Errorf("%w: %q", ErrBadMagic, fixed[:len(headerMagic)])
	}
	n := int(binary.BigEndian.Uint16(fixed[len(headerMagic):]))
	if n == 0 || n > MaxGroupIDLen {
		// NB: checked before allocating, so a hostile length costs nothing.
		return "", fmt.Errorf("%w: group id length %d (want 1..%d)", ErrBadHeader, n, MaxGroupIDLen)
	}
	id := make([]byte, n)
	if _, err := io.ReadFull(r, id); err != nil {
		return "", fmt.Errorf("read stream group id: %w", err)
	}
	return string(id), nil
}
