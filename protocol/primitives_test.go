package protocol

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

func TestPrimitivesWireBytes(t *testing.T) {
	var w Writer
	w.PutBool(true)
	w.PutBool(false)
	w.PutInt8(-2)
	w.PutInt16(-3)
	w.PutInt32(0x01020304)
	w.PutInt64(-1)
	w.PutUint32(0xfffffffe)
	w.PutString("hé")
	w.PutString("")
	w.PutNullableString(nil)
	w.PutNullableString(str("x"))
	w.PutBytes(nil)
	w.PutBytes([]byte{})
	w.PutBytes([]byte{9, 8})
	w.PutArrayLen(-1)
	w.PutArrayLen(3)
	w.PutRaw([]byte{0xaa})
	want := []byte{
		1, 0, 0xfe, 0xff, 0xfd, 1, 2, 3, 4,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xfe,
		0, 3, 'h', 0xc3, 0xa9, 0, 0, 0xff, 0xff, 0, 1, 'x',
		0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 2, 9, 8,
		0xff, 0xff, 0xff, 0xff, 0, 0, 0, 3, 0xaa,
	}
	if w.Err() != nil || !bytes.Equal(w.Bytes(), want) || w.Len() != len(want) {
		t.Fatalf("err %v\n got %x\nwant %x", w.Err(), w.Bytes(), want)
	}

	r := NewReader(want)
	if !r.ReadBool() || r.ReadBool() || r.ReadInt8() != -2 || r.ReadInt16() != -3 || r.ReadInt32() != 0x01020304 ||
		r.ReadInt64() != -1 || r.ReadUint32() != 0xfffffffe {
		t.Fatal("integers differ")
	}
	if s := r.ReadString(); s != "hé" {
		t.Fatalf("string %q", s)
	}
	if s := r.ReadString(); s != "" {
		t.Fatalf("string %q", s)
	}
	if s := r.ReadNullableString(); s != nil {
		t.Fatalf("nullable string %q", *s)
	}
	if s := r.ReadNullableString(); s == nil || *s != "x" {
		t.Fatalf("nullable string %v", s)
	}
	if b := r.ReadBytes(); b != nil {
		t.Fatalf("null bytes %#v", b)
	}
	if b := r.ReadBytes(); b == nil || len(b) != 0 {
		t.Fatalf("empty bytes %#v", b)
	}
	b := r.ReadBytes()
	if !bytes.Equal(b, []byte{9, 8}) || cap(b) != 2 {
		t.Fatalf("bytes %v (cap %d)", b, cap(b))
	}
	if n := r.ReadArrayLen(1); n != -1 {
		t.Fatalf("null array count %d", n)
	}
	if n := r.ReadArrayLen(0); n != 3 { // 3 elements of 0 bytes are taken as 1 byte each: 1 remains
		t.Logf("count %d", n)
	}
	if r.Err() == nil {
		t.Fatal("3 elements with 1 byte left must fail")
	}
}

func TestReaderSticky(t *testing.T) {
	r := NewReader([]byte{0, 1, 2})
	if r.ReadInt32() != 0 || !errors.Is(r.Err(), ErrTruncated) {
		t.Fatalf("err %v", r.Err())
	}
	first := r.Err()
	// Later reads return zero values and keep the first error.
	if r.ReadInt8() != 0 || r.ReadString() != "" || r.ReadBytes() != nil || r.ReadNullableString() != nil ||
		r.ReadArrayLen(1) != 0 || r.ReadRaw(1) != nil || r.ReadBool() {
		t.Fatal("reads after an error must return zero values")
	}
	r.Fail(errors.New("later"))
	if r.Err() != first || r.Complete() != first {
		t.Fatalf("err %v, want the first %v", r.Err(), first)
	}
	if r.Offset() != 0 || r.Remaining() != 3 {
		t.Fatalf("offset %d, remaining %d", r.Offset(), r.Remaining())
	}
	r.Reset([]byte{7})
	if r.Err() != nil || r.ReadInt8() != 7 || r.Complete() != nil {
		t.Fatal("Reset must clear the error")
	}
	if r.ReadRaw(-1); !errors.Is(r.Err(), ErrMalformed) {
		t.Fatalf("negative raw length: %v", r.Err())
	}
}

func TestArrayCountBound(t *testing.T) {
	// count * minElemSize must fit in the bytes remaining.
	in := []byte{0, 0, 0, 4, 1, 2, 3, 4, 5, 6, 7, 8}
	if n := NewReader(in).ReadArrayLen(2); n != 4 {
		t.Fatalf("4 elements of 2 bytes in 8: %d", n)
	}
	r := NewReader(in)
	if n := r.ReadArrayLen(3); n != 0 || !errors.Is(r.Err(), ErrTruncated) {
		t.Fatalf("4 elements of 3 bytes in 8: %d, %v", n, r.Err())
	}
}

func TestWriterTooLong(t *testing.T) {
	for name, put := range map[string]func(*Writer){
		"string":      func(w *Writer) { w.PutString(string(make([]byte, math.MaxInt16+1))) },
		"array":       func(w *Writer) { w.PutArrayLen(math.MaxInt32 + 1) },
		"array count": func(w *Writer) { w.PutArrayLen(-2) },
	} {
		t.Run(name, func(t *testing.T) {
			var w Writer
			put(&w)
			if !errors.Is(w.Err(), ErrTooLong) {
				t.Fatalf("err %v", w.Err())
			}
			w.PutInt8(1) // the error stays
			if !errors.Is(w.Err(), ErrTooLong) {
				t.Fatalf("err %v", w.Err())
			}
			w.Reset(nil)
			if w.Err() != nil || w.Len() != 0 {
				t.Fatal("Reset must clear the error")
			}
		})
	}
	var w Writer
	w.PutString(string(make([]byte, math.MaxInt16)))
	if w.Err() != nil || w.Len() != 2+math.MaxInt16 {
		t.Fatalf("a string of 32767 bytes: %v", w.Err())
	}
}
