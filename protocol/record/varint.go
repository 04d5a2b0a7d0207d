package record

import (
	"encoding/binary"
	"math/bits"
)

// Records use the variable-length integers of encoding/binary, as Kafka's do:
// a uvarint is 7 bits a byte, least significant group first, the high bit
// set on every byte but the last; a varint is the uvarint of the zig-zag
// encoding ((v << 1) ^ (v >> 63)), so small negative numbers stay short.

// uvarintLen returns the number of bytes binary.AppendUvarint uses for v.
func uvarintLen(v uint64) int {
	return (bits.Len64(v|1) + 6) / 7
}

// varintLen returns the number of bytes binary.AppendVarint uses for v.
func varintLen(v int64) int {
	return uvarintLen(uint64(v<<1) ^ uint64(v>>63))
}

// bytesLen returns the encoded size of a nullable byte string: its varint
// length (-1 for nil) and its bytes.
func bytesLen(b []byte) int {
	if b == nil {
		return varintLen(-1)
	}
	return varintLen(int64(len(b))) + len(b)
}

// appendBytes appends a nullable byte string: its varint length (-1 for nil)
// and its bytes.
func appendBytes(dst, b []byte) []byte {
	if b == nil {
		return binary.AppendVarint(dst, -1)
	}
	dst = binary.AppendVarint(dst, int64(len(b)))
	return append(dst, b...)
}

// cursor reads the fields of one record. Its methods return ok false when
// the bytes run out or a varint is malformed; pos is then meaningless.
type cursor struct {
	b   []byte
	pos int
}

func (c *cursor) remaining() int { return len(c.b) - c.pos }

func (c *cursor) uvarint() (uint64, bool) {
	v, n := binary.Uvarint(c.b[c.pos:])
	if n <= 0 {
		return 0, false
	}
	c.pos += n
	return v, true
}

func (c *cursor) varint() (int64, bool) {
	v, n := binary.Varint(c.b[c.pos:])
	if n <= 0 {
		return 0, false
	}
	c.pos += n
	return v, true
}

// bytes reads n bytes, aliasing the cursor's buffer, with the capacity
// clipped so that appending to the result cannot overwrite what follows.
func (c *cursor) bytes(n int) ([]byte, bool) {
	if n < 0 || n > c.remaining() {
		return nil, false
	}
	b := c.b[c.pos : c.pos+n : c.pos+n]
	c.pos += n
	return b, true
}
