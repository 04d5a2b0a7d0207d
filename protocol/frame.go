package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Frames, part of the wire format; never change.
//
//	request frame:
//	+--------+---------+-------------+----------------+-----------+------+
//	| size   | api_key | api_version | correlation_id | client_id | body |
//	| uint32 | int16   | int16       | int32          | string    | ...  |
//	+--------+---------+-------------+----------------+-----------+------+
//
//	response frame:
//	+--------+----------------+------+
//	| size   | correlation_id | body |
//	| uint32 | int32          | ...  |
//	+--------+----------------+------+
//
//	size counts the bytes after the size field.

// DefaultMaxFrameSize is the frame size limit ReadFrame applies when given a
// limit of 0 or less: 100 MiB.
const DefaultMaxFrameSize = 100 << 20

// frameSizeLen is the length of a frame's size field.
const frameSizeLen = 4

// initialFrameChunk is how much ReadFrame allocates for a frame before any of
// its bytes have arrived, when buf is too small: it grows the buffer as the
// bytes come, so a peer that declares a large frame and sends little makes it
// allocate little.
const initialFrameChunk = 64 << 10

// ReadFrame reads one frame from r and returns its contents: the bytes after
// the size field (a request or response header, then the body). It reuses
// buf when the frame fits in its capacity; the result aliases buf then, so
// buf must not be reused while the result (or a message decoded from it,
// whose byte fields alias it) is in use.
//
// The declared size is checked against maxSize (DefaultMaxFrameSize when
// maxSize <= 0) before anything is allocated: a frame over the limit returns a
// *FrameTooLargeError (errors.Is ErrFrameTooLarge) having read only the size
// field. Otherwise the buffer grows as bytes arrive, so a peer that declares a
// large frame and sends little makes ReadFrame allocate little.
//
// ReadFrame returns io.EOF when r ends before a frame begins, and
// io.ErrUnexpectedEOF when it ends inside one.
func ReadFrame(r io.Reader, maxSize int, buf []byte) ([]byte, error) {
	if maxSize <= 0 {
		maxSize = DefaultMaxFrameSize
	}
	// Read the size into buf when it can hold it: a local array would escape
	// (io.ReadFull takes an interface) and cost an allocation per frame.
	sizeBuf := buf[:0]
	if cap(buf) < frameSizeLen {
		sizeBuf = make([]byte, 0, frameSizeLen)
	}
	sizeBuf = sizeBuf[:frameSizeLen]
	if _, err := io.ReadFull(r, sizeBuf); err != nil {
		return nil, err // io.EOF before the frame, io.ErrUnexpectedEOF inside it
	}
	size := binary.BigEndian.Uint32(sizeBuf)
	if int64(size) > int64(maxSize) {
		return nil, &FrameTooLargeError{Size: size, Max: maxSize}
	}
	n := int(size)
	if cap(buf) >= n {
		buf = buf[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, noEOF(err)
		}
		return buf, nil
	}
	// Grow as the bytes arrive, doubling: the buffer is at most twice what
	// was received, or the first chunk.
	buf = make([]byte, 0, min(n, max(initialFrameChunk, cap(buf))))
	for {
		m, err := io.ReadFull(r, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err != nil {
			return nil, noEOF(err)
		}
		if len(buf) == n {
			return buf, nil
		}
		grown := make([]byte, len(buf), min(n, 2*cap(buf)))
		copy(grown, buf)
		buf = grown
	}
}

// noEOF turns io.EOF inside a frame into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// RequestHeader is the header of a request frame, after the size.
type RequestHeader struct {
	APIKey        APIKey // the API of the body
	APIVersion    int16  // the version of the body
	CorrelationID int32  // chosen by the client, echoed in the response
	ClientID      string // the client's name for itself, for logs and metrics
}

// Encode writes the header.
func (h *RequestHeader) Encode(w *Writer) {
	w.PutInt16(int16(h.APIKey))
	w.PutInt16(h.APIVersion)
	w.PutInt32(h.CorrelationID)
	w.PutString(h.ClientID)
}

// Decode reads the header and returns r's error; the body follows in r.
func (h *RequestHeader) Decode(r *Reader) error {
	h.APIKey = APIKey(r.ReadInt16())
	h.APIVersion = r.ReadInt16()
	h.CorrelationID = r.ReadInt32()
	h.ClientID = r.ReadString()
	return r.Err()
}

// ResponseHeader is the header of a response frame, after the size.
type ResponseHeader struct {
	CorrelationID int32 // the correlation id of the request answered
}

// Encode writes the header.
func (h *ResponseHeader) Encode(w *Writer) { w.PutInt32(h.CorrelationID) }

// Decode reads the header and returns r's error; the body follows in r.
func (h *ResponseHeader) Decode(r *Reader) error {
	h.CorrelationID = r.ReadInt32()
	return r.Err()
}

// AppendRequestFrame appends a whole request frame to dst: size, header (the
// key and version are req's), body.
func AppendRequestFrame(dst []byte, correlationID int32, clientID string, req Request) ([]byte, error) {
	w := Writer{buf: dst}
	start := w.beginFrame()
	h := RequestHeader{APIKey: req.Key(), APIVersion: req.GetVersion(), CorrelationID: correlationID, ClientID: clientID}
	h.Encode(&w)
	req.Encode(&w)
	if err := w.endFrame(start, 0); err != nil {
		return dst, fmt.Errorf("encode %v request: %w", req.Key(), err)
	}
	return w.buf, nil
}

// AppendResponseFrame appends a whole response frame to dst: size,
// correlation id, body (at resp's version).
func AppendResponseFrame(dst []byte, correlationID int32, resp Response) ([]byte, error) {
	w := Writer{buf: dst}
	start := w.beginFrame()
	h := ResponseHeader{CorrelationID: correlationID}
	h.Encode(&w)
	resp.Encode(&w)
	if err := w.endFrame(start, 0); err != nil {
		return dst, fmt.Errorf("encode %v response: %w", resp.Key(), err)
	}
	return w.buf, nil
}

// beginFrame writes a placeholder size and returns its position.
func (w *Writer) beginFrame() int {
	start := len(w.buf)
	w.PutUint32(0)
	return start
}

// endFrame fills in the size of the frame begun at start, whose external
// bytes (left out of w.buf) total external, and returns w's error.
func (w *Writer) endFrame(start int, external int64) error {
	if w.err != nil {
		return w.err
	}
	size := int64(len(w.buf)-start-frameSizeLen) + external
	if size > math.MaxUint32 {
		return fmt.Errorf("%w: frame of %d bytes", ErrTooLong, size)
	}
	binary.BigEndian.PutUint32(w.buf[start:], uint32(size))
	return nil
}

// DecodeRequestHeader decodes the header of a request frame (as ReadFrame
// returns it) and returns the body that follows.
func DecodeRequestHeader(frame []byte) (RequestHeader, []byte, error) {
	var h RequestHeader
	r := NewReader(frame)
	if err := h.Decode(r); err != nil {
		return h, nil, fmt.Errorf("request header: %w", err)
	}
	return h, frame[r.Offset():], nil
}

// DecodeResponseHeader decodes the header of a response frame and returns the
// body that follows. The client finds the request by the correlation id and
// decodes the body with its ResponseKind.
func DecodeResponseHeader(frame []byte) (ResponseHeader, []byte, error) {
	var h ResponseHeader
	r := NewReader(frame)
	if err := h.Decode(r); err != nil {
		return h, nil, fmt.Errorf("response header: %w", err)
	}
	return h, frame[r.Offset():], nil
}

// DecodeRequest decodes a request frame (as ReadFrame returns it): the
// header, then the body as the API and version the header names. The header
// is returned whenever it decodes, even if the body does not, so the broker
// can answer with its correlation id. Errors:
//
//   - an *Error with CodeInvalidRequest for an API key this package does not
//     know, and CodeUnsupportedVersion for a version outside the API's range
//     (errors.Is ErrInvalidRequest, ErrUnsupportedVersion);
//   - an ErrMalformed error for a header or body that does not decode.
//
// Byte fields of the request (a produce's records) alias frame.
//
// NB: an APIVersions request at an unsupported version is the one failed
// request a broker answers: with an APIVersionsResponse at version 0 whose
// error code is CodeUnsupportedVersion, listing SupportedAPIs. For the
// other errors it closes the connection (see PROTOCOL.md, "Framing").
func DecodeRequest(frame []byte) (RequestHeader, Request, error) {
	h, body, err := DecodeRequestHeader(frame)
	if err != nil {
		return h, nil, err
	}
	req := NewRequest(h.APIKey)
	if req == nil {
		return h, nil, &Error{Code: CodeInvalidRequest, Message: fmt.Sprintf("unknown api key %d", int16(h.APIKey))}
	}
	if lo, hi, _ := Versions(h.APIKey); h.APIVersion < lo || h.APIVersion > hi {
		return h, nil, &Error{Code: CodeUnsupportedVersion,
			Message: fmt.Sprintf("%v version %d is not supported (versions %d to %d)", h.APIKey, h.APIVersion, lo, hi)}
	}
	req.SetVersion(h.APIVersion)
	if err := req.Decode(NewReader(body)); err != nil {
		return h, nil, fmt.Errorf("%v v%d request: %w", h.APIKey, h.APIVersion, err)
	}
	return h, req, nil
}
