package record

import (
	"encoding/binary"
	"math"
	"testing"
)

func TestVarintLen(t *testing.T) {
	values := []int64{0, 1, -1, 63, -64, 64, -65, 127, 128, 8191, 8192, 1 << 20, -1 << 20,
		1<<31 - 1, -1 << 31, 1 << 40, math.MaxInt64, math.MinInt64, math.MaxInt64 - 1}
	for _, v := range values {
		if got, want := varintLen(v), len(binary.AppendVarint(nil, v)); got != want {
			t.Errorf("varintLen(%d) = %d, want %d", v, got, want)
		}
		u := uint64(v)
		if got, want := uvarintLen(u), len(binary.AppendUvarint(nil, u)); got != want {
			t.Errorf("uvarintLen(%d) = %d, want %d", u, got, want)
		}
	}
	for shift := range 64 {
		u := uint64(1) << shift
		for _, x := range []uint64{u - 1, u, u + 1} {
			if got, want := uvarintLen(x), len(binary.AppendUvarint(nil, x)); got != want {
				t.Errorf("uvarintLen(%d) = %d, want %d", x, got, want)
			}
		}
	}
}

func TestBytesLen(t *testing.T) {
	for _, b := range [][]byte{nil, {}, {1}, make([]byte, 63), make([]byte, 64), make([]byte, 300)} {
		enc := appendBytes(nil, b)
		if got := bytesLen(b); got != len(enc) {
			t.Errorf("bytesLen(%d bytes, nil %t) = %d, want %d", len(b), b == nil, got, len(enc))
		}
		c := cursor{b: enc}
		got, ok := nullableBytes(&c)
		if !ok || (got == nil) != (b == nil) || string(got) != string(b) || c.remaining() != 0 {
			t.Errorf("nullableBytes(%x) = %x, %t, remaining %d", enc, got, ok, c.remaining())
		}
	}
}

func TestCursorRejects(t *testing.T) {
	for name, enc := range map[string][]byte{
		"empty":            {},
		"unterminated":     {0x80, 0x80},
		"overlong varint":  {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"length -2":        binary.AppendVarint(nil, -2),
		"length past end":  append(binary.AppendVarint(nil, 4), 1, 2, 3),
		"huge length":      binary.AppendVarint(nil, math.MaxInt64),
		"most negative":    binary.AppendVarint(nil, math.MinInt64),
		"length 1, 0 left": binary.AppendVarint(nil, 1),
	} {
		c := cursor{b: enc}
		if b, ok := nullableBytes(&c); ok {
			t.Errorf("%s: nullableBytes(%x) = %x, want failure", name, enc, b)
		}
	}
}
