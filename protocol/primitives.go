package protocol

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Primitive types, part of the wire format; never change. All integers are
// big-endian.
//
//	bool     1 byte, 0 or 1 (anything else is an error)
//	int8     1 byte; int16 2; int32 4; int64 8; uint32 4
//	string   int16 length n, then n bytes of UTF-8; n = -1 is null
//	bytes    int32 length n, then n bytes; n = -1 is null
//	array    int32 count n, then n elements; n = -1 is null
//
// A null string decodes as "" unless the field is nullable (a *string). A
// null array decodes as an empty (nil) slice unless the field is nullable,
// where nil is null and a non-nil empty slice is empty. Bytes keep the
// difference everywhere: nil is null, a non-nil empty slice is empty.

// Writer encodes primitives by appending them to a byte slice. Its zero value
// is ready to use. A value that cannot be encoded (a string over 32767 bytes)
// sets a sticky error, reported by Err; the bytes written after it are
// meaningless.
//
// A Writer may also leave out the bytes of fields marked external in the
// message definitions (the records of a fetch response), so the caller can
// send them itself: see SetExternal and SegmentedFrame.
type Writer struct {
	buf []byte
	err error

	// External fields: see SetExternal.
	external     ExternalFunc
	nextExternal int
	gaps         []Gap
}

// NewWriter returns a Writer that appends to buf.
func NewWriter(buf []byte) *Writer { return &Writer{buf: buf} }

// Reset makes w append to buf, clearing its error and external setup.
func (w *Writer) Reset(buf []byte) { *w = Writer{buf: buf, gaps: w.gaps[:0]} }

// Bytes returns the bytes written so far (including the buffer w started
// with). It aliases w's buffer.
func (w *Writer) Bytes() []byte { return w.buf }

// Len returns len(w.Bytes()).
func (w *Writer) Len() int { return len(w.buf) }

// Err returns the first encoding error, or nil.
func (w *Writer) Err() error { return w.err }

func (w *Writer) fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

// PutBool writes a bool as one byte, 0 or 1.
func (w *Writer) PutBool(v bool) {
	var b byte
	if v {
		b = 1
	}
	w.buf = append(w.buf, b)
}

// PutInt8 writes an int8.
func (w *Writer) PutInt8(v int8) { w.buf = append(w.buf, byte(v)) }

// PutInt16 writes an int16.
func (w *Writer) PutInt16(v int16) { w.buf = binary.BigEndian.AppendUint16(w.buf, uint16(v)) }

// PutInt32 writes an int32.
func (w *Writer) PutInt32(v int32) { w.buf = binary.BigEndian.AppendUint32(w.buf, uint32(v)) }

// PutInt64 writes an int64.
func (w *Writer) PutInt64(v int64) { w.buf = binary.BigEndian.AppendUint64(w.buf, uint64(v)) }

// PutUint32 writes a uint32.
func (w *Writer) PutUint32(v uint32) { w.buf = binary.BigEndian.AppendUint32(w.buf, v) }

// PutString writes a string: its int16 length, then its bytes. A string over
// 32767 bytes sets ErrTooLong.
func (w *Writer) PutString(s string) {
	if len(s) > math.MaxInt16 {
		w.fail(fmt.Errorf("%w: string of %d bytes (at most %d)", ErrTooLong, len(s), math.MaxInt16))
		w.PutInt16(0)
		return
	}
	w.PutInt16(int16(len(s)))
	w.buf = append(w.buf, s...)
}

// PutNullableString writes a nullable string: length -1 for nil, else as
// PutString.
func (w *Writer) PutNullableString(s *string) {
	if s == nil {
		w.PutInt16(-1)
		return
	}
	w.PutString(*s)
}

// PutBytes writes bytes: the int32 length, then the bytes; length -1 for nil.
func (w *Writer) PutBytes(b []byte) {
	if b == nil {
		w.PutInt32(-1)
		return
	}
	if int64(len(b)) > math.MaxInt32 {
		w.fail(fmt.Errorf("%w: %d bytes (at most %d)", ErrTooLong, len(b), math.MaxInt32))
		w.PutInt32(0)
		return
	}
	w.PutInt32(int32(len(b)))
	w.buf = append(w.buf, b...)
}

// PutArrayLen writes an array's element count; -1 is a null array. The
// elements follow, written by the caller.
func (w *Writer) PutArrayLen(n int) {
	if int64(n) > math.MaxInt32 || n < -1 {
		w.fail(fmt.Errorf("%w: array of %d elements", ErrTooLong, n))
		n = 0
	}
	w.PutInt32(int32(n))
}

// PutRaw appends b as it is, with no length.
func (w *Writer) PutRaw(b []byte) { w.buf = append(w.buf, b...) }

// Reader decodes primitives from a byte slice. It keeps the first error it
// meets (sticky, franz-go kbin style): after a failure every read returns a
// zero value, so a decoder reads a whole message and checks once, with Err or
// Complete.
//
// Every length and count is checked against the bytes remaining before
// anything is allocated, so a small input never causes a large allocation.
//
// Bytes returned by ReadBytes alias the input: they stay valid only while the
// input does. Strings are copied.
type Reader struct {
	buf []byte
	off int
	err error
}

// NewReader returns a Reader of b.
func NewReader(b []byte) *Reader { return &Reader{buf: b} }

// Reset makes r read b from its start, clearing its error.
func (r *Reader) Reset(b []byte) { *r = Reader{buf: b} }

// Err returns the first error, or nil.
func (r *Reader) Err() error { return r.err }

// Fail records err as r's error if it has none yet. Decoders use it to
// report a value that is well formed but not allowed.
func (r *Reader) Fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

// Complete returns r's error, or an ErrMalformed error if bytes remain
// unread: a message must use its bytes exactly.
func (r *Reader) Complete() error {
	if r.err == nil && r.off != len(r.buf) {
		r.err = malformedf("%d bytes left over at offset %d", len(r.buf)-r.off, r.off)
	}
	return r.err
}

// Remaining returns the number of bytes not yet read.
func (r *Reader) Remaining() int { return len(r.buf) - r.off }

// Offset returns the number of bytes read so far.
func (r *Reader) Offset() int { return r.off }

// take returns the next n bytes, or nil and a sticky error if there are fewer.
func (r *Reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.buf)-r.off {
		r.err = truncatedf("%s needs %d bytes at offset %d, %d remain", what, n, r.off, len(r.buf)-r.off)
		return nil
	}
	b := r.buf[r.off : r.off+n : r.off+n]
	r.off += n
	return b
}

// ReadBool reads a bool; a byte other than 0 or 1 is an error.
func (r *Reader) ReadBool() bool {
	b := r.take(1, "bool")
	if b == nil {
		return false
	}
	switch b[0] {
	case 0:
		return false
	case 1:
		return true
	}
	r.err = malformedf("bool byte %d at offset %d", b[0], r.off-1)
	return false
}

// ReadInt8 reads an int8.
func (r *Reader) ReadInt8() int8 {
	if b := r.take(1, "int8"); b != nil {
		return int8(b[0])
	}
	return 0
}

// ReadInt16 reads an int16.
func (r *Reader) ReadInt16() int16 {
	if b := r.take(2, "int16"); b != nil {
		return int16(binary.BigEndian.Uint16(b))
	}
	return 0
}

// ReadInt32 reads an int32.
func (r *Reader) ReadInt32() int32 {
	if b := r.take(4, "int32"); b != nil {
		return int32(binary.BigEndian.Uint32(b))
	}
	return 0
}

// ReadInt64 reads an int64.
func (r *Reader) ReadInt64() int64 {
	if b := r.take(8, "int64"); b != nil {
		return int64(binary.BigEndian.Uint64(b))
	}
	return 0
}

// ReadUint32 reads a uint32.
func (r *Reader) ReadUint32() uint32 {
	if b := r.take(4, "uint32"); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

// readStringBytes reads a string's length and bytes; null is (nil, true).
func (r *Reader) readStringBytes() (b []byte, null bool) {
	n := r.ReadInt16()
	if r.err != nil {
		return nil, false
	}
	switch {
	case n == -1:
		return nil, true
	case n < 0:
		r.err = malformedf("string length %d at offset %d", n, r.off-2)
		return nil, false
	}
	return r.take(int(n), "string"), false
}

// ReadString reads a string; a null string reads as "". The bytes are not
// checked to be UTF-8.
func (r *Reader) ReadString() string {
	b, _ := r.readStringBytes()
	return string(b)
}

// ReadNullableString reads a string that may be null (nil).
func (r *Reader) ReadNullableString() *string {
	b, null := r.readStringBytes()
	if null || r.err != nil {
		return nil
	}
	s := string(b)
	return &s
}

// ReadBytes reads bytes: nil if null, else a slice of the input (not a copy;
// its capacity ends with it, so appending to it never overwrites the input).
func (r *Reader) ReadBytes() []byte {
	n := r.ReadInt32()
	if r.err != nil {
		return nil
	}
	switch {
	case n == -1:
		return nil
	case n < 0:
		r.err = malformedf("bytes length %d at offset %d", n, r.off-4)
		return nil
	}
	return r.take(int(n), "bytes")
}

// ReadArrayLen reads an array's element count: -1 for a null array, else a
// count n for which n*minElemSize bytes remain, so that allocating n
// elements is bounded by the input's size. minElemSize is the smallest
// encoding of one element (treated as at least 1). On error it returns 0.
func (r *Reader) ReadArrayLen(minElemSize int) int {
	n := r.ReadInt32()
	if r.err != nil {
		return 0
	}
	switch {
	case n == -1:
		return -1
	case n < 0:
		r.err = malformedf("array count %d at offset %d", n, r.off-4)
		return 0
	}
	minElemSize = max(minElemSize, 1)
	if int64(n) > int64(r.Remaining()/minElemSize) {
		r.err = truncatedf("array of %d elements of at least %d bytes at offset %d, %d bytes remain",
			n, minElemSize, r.off-4, r.Remaining())
		return 0
	}
	return int(n)
}

// ReadRaw reads the next n bytes as they are (a slice of the input).
func (r *Reader) ReadRaw(n int) []byte {
	if n < 0 {
		r.Fail(malformedf("negative raw length %d", n))
		return nil
	}
	return r.take(n, "raw bytes")
}
