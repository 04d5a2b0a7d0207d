package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"strings"
	"testing"
)

// validBatches returns a small valid batch per codec.
func validBatches(tb testing.TB) map[Codec][]byte {
	recs := []Record{
		{Key: []byte("key"), Value: []byte("value value value"), Timestamp: 1_700_000_000_000,
			Headers: []Header{{Key: "h", Value: []byte("x")}}},
		{Key: nil, Value: nil, Timestamp: 1_699_999_999_000},
		{Key: []byte{}, Value: []byte("value value value"), Timestamp: 1_700_000_000_500},
	}
	out := make(map[Codec][]byte)
	for _, c := range allCodecs {
		out[c] = build(tb, c, recs, 9, 2, 77)
	}
	return out
}

// reseal rewrites the length and checksum of batch after a test edited it.
func reseal(batch []byte) []byte {
	binary.BigEndian.PutUint32(batch[offLength:], uint32(len(batch)-lengthSize))
	binary.BigEndian.PutUint32(batch[offCRC:], crc32.Checksum(batch[crcStart:], crcTable))
	return batch
}

func TestParseHeaderRejects(t *testing.T) {
	valid := validBatches(t)[CodecNone]
	edit := func(f func(b []byte) []byte) []byte {
		return f(bytes.Clone(valid))
	}
	tests := []struct {
		name  string
		batch []byte
		want  error
		msg   string
	}{
		{"nil", nil, ErrCorrupt, "short batch"},
		{"short", valid[:HeaderSize-1], ErrCorrupt, "short batch"},
		{"truncated", valid[:len(valid)-1], ErrCorrupt, "length field"},
		{"trailing byte", append(bytes.Clone(valid), 0), ErrCorrupt, "length field"},
		{"followed by another batch", append(bytes.Clone(valid), valid...), ErrCorrupt, "length field"},
		{"length too small", edit(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b, uint32(len(b)-5))
			return b
		}), ErrCorrupt, "length field"},
		{"length huge", edit(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b, 0xffffffff)
			return b
		}), ErrCorrupt, "length field"},
		{"version", edit(func(b []byte) []byte { b[offVersion] = 1; return reseal(b) }), ErrUnsupportedVersion, "version 1"},
		{"bad crc", edit(func(b []byte) []byte { b[offCRC] ^= 1; return b }), ErrCorrupt, "checksum"},
		{"bad data under crc", edit(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), ErrCorrupt, "checksum"},
		{"unknown codec", edit(func(b []byte) []byte { b[offAttributes] = 4; return reseal(b) }), ErrUnknownCodec, "4"},
		{"codec 7", edit(func(b []byte) []byte { b[offAttributes] = 7; return reseal(b) }), ErrUnknownCodec, "7"},
		{"unknown attribute bit", edit(func(b []byte) []byte { b[offAttributes] |= 0x08; return reseal(b) }), ErrCorrupt, "attribute bits"},
		{"reserved 1", edit(func(b []byte) []byte { b[offReserved1+1] = 1; return reseal(b) }), ErrCorrupt, "reserved"},
		{"reserved 2", edit(func(b []byte) []byte { b[offReserved2] = 1; return reseal(b) }), ErrCorrupt, "reserved"},
		{"count 0", edit(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[offCount:], 0)
			return reseal(b)
		}), ErrCorrupt, "count is 0"},
		{"count past length", edit(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[offCount:], uint32(len(b)))
			return reseal(b)
		}), ErrCorrupt, "exceeds the batch length"},
		{"count billions", edit(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[offCount:], 3_000_000_000)
			return reseal(b)
		}), ErrCorrupt, "exceeds the batch length"},
		{"count past uncompressed records", edit(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[offCount:], uint32(len(b)-HeaderSize)/minRecordSize+1)
			return reseal(b)
		}), ErrCorrupt, "cannot fit"},
		{"first after max", edit(func(b []byte) []byte {
			binary.BigEndian.PutUint64(b[offMaxTimestamp:], 1_600_000_000_000)
			return reseal(b)
		}), ErrCorrupt, "after max timestamp"},
		{"producer id -2", edit(func(b []byte) []byte {
			binary.BigEndian.PutUint64(b[offProducerID:], ^uint64(1))
			return reseal(b)
		}), ErrCorrupt, "producer"},
		{"producer without epoch", edit(func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[offProducerEpoch:], 0xffff)
			return reseal(b)
		}), ErrCorrupt, "producer"},
		{"sequence without producer", edit(func(b []byte) []byte {
			binary.BigEndian.PutUint64(b[offProducerID:], ^uint64(0))
			binary.BigEndian.PutUint16(b[offProducerEpoch:], 0xffff)
			return reseal(b)
		}), ErrCorrupt, "producer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ParseHeader(tt.batch)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseHeader = %+v, %v; want %v", h, err, tt.want)
			}
			if h != (BatchHeader{}) {
				t.Fatalf("header %+v returned with error", h)
			}
			if !strings.Contains(err.Error(), tt.msg) || !strings.HasPrefix(err.Error(), "weir/record: ") {
				t.Fatalf("error %q does not say %q", err, tt.msg)
			}
			// Everything that ParseHeader refuses, the readers refuse too.
			if _, _, err := Decode(tt.batch); !errors.Is(err, tt.want) {
				t.Fatalf("Decode: %v, want %v", err, tt.want)
			}
			if _, err := Validate(tt.batch, 0); !errors.Is(err, tt.want) {
				t.Fatalf("Validate: %v, want %v", err, tt.want)
			}
		})
	}
}

// TestParseHeaderDetectsEveryByteFlip: any change to one byte of a batch,
// to any other value, fails ParseHeader.
func TestParseHeaderDetectsEveryByteFlip(t *testing.T) {
	for codec, batch := range validBatches(t) {
		t.Run(codec.String(), func(t *testing.T) {
			if _, err := ParseHeader(batch); err != nil {
				t.Fatal(err)
			}
			b := bytes.Clone(batch)
			for i := range b {
				for x := 1; x < 256; x++ {
					b[i] ^= byte(x)
					if h, err := ParseHeader(b); err == nil {
						t.Fatalf("byte %d ^ %#02x went undetected: %+v", i, x, h)
					}
					b[i] ^= byte(x)
				}
			}
		})
	}
}

// TestParseHeaderCanonical: a header that parses is exactly what putHeader
// writes for the fields it returns.
func TestParseHeaderCanonical(t *testing.T) {
	for codec, batch := range validBatches(t) {
		h, err := ParseHeader(batch)
		if err != nil {
			t.Fatal(err)
		}
		again := bytes.Clone(batch)
		clear(again[:HeaderSize])
		putHeader(again, &h)
		if !bytes.Equal(again, batch) {
			t.Fatalf("%s: header rewritten from %+v differs:\n%x\n%x", codec, h, again[:HeaderSize], batch[:HeaderSize])
		}
	}
}

func TestParseHeaderDoesNotAllocate(t *testing.T) {
	batch := validBatches(t)[CodecZstd]
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := ParseHeader(batch); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("ParseHeader allocates %v times", allocs)
	}
}

// fixSeal returns a copy of b with its length and checksum made right, so
// that the fuzzer reaches the checks behind them.
func fixSeal(b []byte) []byte {
	if len(b) < crcStart {
		return b
	}
	return reseal(bytes.Clone(b))
}

// Largest inputs the fuzz targets look at; see FuzzParseHeader.
const (
	maxFuzzHeaderInput = 256
	maxFuzzDecodeInput = 512
)

// FuzzParseHeader: ParseHeader never panics, and a header it accepts is
// exactly what putHeader writes for the fields it returns.
func FuzzParseHeader(f *testing.F) {
	for _, b := range validBatches(f) {
		if len(b) > maxFuzzHeaderInput {
			f.Fatalf("a seed of %d bytes is past maxFuzzHeaderInput", len(b))
		}
		f.Add(b)
		f.Add(b[:HeaderSize])
	}
	f.Add([]byte{})
	f.Add(make([]byte, HeaderSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		// NB: only the header and the length matter here, and the fuzzer
		// minimizes each new input in time quadratic in its size (stalling
		// for its whole -fuzzminimizetime on inputs of a few KiB), so larger
		// inputs are not worth it.
		if len(b) > maxFuzzHeaderInput {
			return
		}
		for _, in := range [][]byte{b, fixSeal(b)} {
			h, err := ParseHeader(in)
			if err != nil {
				if h != (BatchHeader{}) {
					t.Fatalf("header %+v with error %v", h, err)
				}
				if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnknownCodec) && !errors.Is(err, ErrUnsupportedVersion) {
					t.Fatalf("error %v matches no sentinel", err)
				}
				continue
			}
			if h.Count == 0 || uint64(h.Count) > uint64(len(in)) || h.FirstTimestamp > h.MaxTimestamp || !h.Codec.known() {
				t.Fatalf("accepted header %+v of a %d-byte batch", h, len(in))
			}
			again := bytes.Clone(in)
			clear(again[:HeaderSize])
			putHeader(again, &h)
			if !bytes.Equal(again, in) {
				t.Fatalf("accepted header is not canonical:\n%x\n%x", in[:HeaderSize], again[:HeaderSize])
			}
		}
	})
}

func BenchmarkParseHeader(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10} {
		b.Run(sizeName(size), func(b *testing.B) {
			batch := build(b, CodecNone, benchRecords(100, size), -1, -1, -1)
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseHeader(batch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestParseHeaderVerified(t *testing.T) {
	b := NewBuilder(CodecNone)
	b.SetProducer(7, 1, 10)
	b.Append(Record{Value: []byte("v"), Timestamp: 5})
	batch, err := b.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ParseHeader(batch)
	if err != nil {
		t.Fatal(err)
	}
	batch[len(batch)-1] ^= 0xff // break the checksum only
	if _, err := ParseHeader(batch); err == nil {
		t.Fatal("ParseHeader accepted a bad checksum")
	}
	got, err := ParseHeaderVerified(batch)
	if err != nil || got != want {
		t.Fatalf("ParseHeaderVerified = %+v, %v; want %+v", got, err, want)
	}
	if _, err := ParseHeaderVerified(batch[:HeaderSize-1]); err == nil {
		t.Fatal("ParseHeaderVerified accepted a short batch")
	}
}
