package protocol

import "strconv"

// APIKey names an API: the kind of a request and of its response. Keys are
// part of the wire format; never change one, only add. The constants
// (KeyAPIVersions, KeyMetadata, ...) are generated from messages.def, with
// String.
type APIKey int16

// Special values of fields, part of the wire format; never change.
const (
	AcksAll  int16 = -1 // ProduceRequest.Acks: answer once the batch is committed
	AcksNone int16 = 0  // ProduceRequest.Acks: send no response at all

	TimestampEarliest int64 = -2 // ListOffsetsRequestPartition.Timestamp: the log start offset
	TimestampLatest   int64 = -1 // ListOffsetsRequestPartition.Timestamp: the high watermark

	NoNode int32 = -1 // a leader_id or controller_id that is unknown or absent
)

// Message is a request or response body. Every generated message type
// implements it (through Request or Response).
//
// A message is encoded and decoded at its Version: fields added in a later
// version are skipped at earlier ones. A request's version travels in its
// header; a response has the version of the request it answers, which the
// client knows (ResponseKind sets it).
type Message interface {
	// Key returns the message's API key.
	Key() APIKey
	// GetVersion returns the version the message is encoded and decoded at.
	GetVersion() int16
	// SetVersion sets it.
	SetVersion(v int16)
	// Encode writes the body to w. Errors (a string too long for its length
	// field) are sticky in w: check w.Err.
	Encode(w *Writer)
	// AppendTo appends the encoded body to dst and returns the result. It
	// panics on a value that cannot be encoded; Encode with a Writer reports
	// that as an error instead.
	AppendTo(dst []byte) []byte
	// Decode replaces the message with the body read from r, which must hold
	// exactly the body: bytes left over are an error. Fields of versions
	// after GetVersion are zeroed. Byte fields alias r's input. On error the
	// message is partly decoded.
	Decode(r *Reader) error
}

// Request is a request body.
type Request interface {
	Message
	// ResponseKind returns a new, empty response to this request, at the
	// request's version, ready to Decode.
	ResponseKind() Response
}

// Response is a response body.
type Response interface {
	Message
	// RequestKind returns a new, empty request of this response's API, at
	// the response's version.
	RequestKind() Request
}

// NewRequest returns a new, empty request of the API, at version 0, or nil
// for a key this package does not know.
func NewRequest(key APIKey) Request {
	if info, ok := lookupAPI(key); ok {
		return info.newRequest()
	}
	return nil
}

// NewResponse returns a new, empty response of the API, at version 0, or nil
// for a key this package does not know.
func NewResponse(key APIKey) Response {
	if info, ok := lookupAPI(key); ok {
		return info.newResponse()
	}
	return nil
}

// Versions returns the range of versions of the API this package supports;
// ok is false for an unknown key.
func Versions(key APIKey) (minVersion, maxVersion int16, ok bool) {
	info, ok := lookupAPI(key)
	return info.minVersion, info.maxVersion, ok
}

// APIKeys returns every API key this package knows, in increasing order.
func APIKeys() []APIKey {
	keys := make([]APIKey, len(apiTable))
	for i := range apiTable {
		keys[i] = apiTable[i].key
	}
	return keys
}

// SupportedAPIs returns the apis of an APIVersions response: every API this
// package knows with its version range, in key order. A broker built on this
// package answers with it.
func SupportedAPIs() []APIVersionsResponseAPI {
	apis := make([]APIVersionsResponseAPI, len(apiTable))
	for i, info := range apiTable {
		apis[i] = APIVersionsResponseAPI{APIKey: info.key, MinVersion: info.minVersion, MaxVersion: info.maxVersion}
	}
	return apis
}

// apiInfo describes one API; messages_gen.go holds the table (apiTable).
type apiInfo struct {
	key                    APIKey
	name                   string
	minVersion, maxVersion int16
	newRequest             func() Request
	newResponse            func() Response
}

// lookupAPI returns the API's entry of apiTable.
func lookupAPI(key APIKey) (apiInfo, bool) {
	// NB: apiTable is small and sorted; keys are dense today, but a linear
	// scan does not rely on it.
	for i := range apiTable {
		if apiTable[i].key == key {
			return apiTable[i], true
		}
	}
	return apiInfo{}, false
}

// String returns the API's name, or "APIKey(n)" for an unknown key.
func (k APIKey) String() string {
	if info, ok := lookupAPI(k); ok {
		return info.name
	}
	return "APIKey(" + strconv.Itoa(int(k)) + ")"
}

// NullableString returns nil for "" and &s otherwise: the value for a
// nullable string field such as error_message.
func NullableString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
