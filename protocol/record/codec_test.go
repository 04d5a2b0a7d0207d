package record

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

func TestCodecNames(t *testing.T) {
	for _, c := range allCodecs {
		got, err := ParseCodec(c.String())
		if err != nil || got != c {
			t.Errorf("ParseCodec(%q) = %v, %v", c.String(), got, err)
		}
		got, err = ParseCodec(strings.ToUpper(c.String()))
		if err != nil || got != c {
			t.Errorf("ParseCodec(%q) = %v, %v", strings.ToUpper(c.String()), got, err)
		}
	}
	if c, err := ParseCodec(""); err != nil || c != CodecNone {
		t.Errorf(`ParseCodec("") = %v, %v`, c, err)
	}
	for _, s := range []string{"gzip", "zstd ", "1", "none,"} {
		if c, err := ParseCodec(s); !errors.Is(err, ErrUnknownCodec) {
			t.Errorf("ParseCodec(%q) = %v, %v; want ErrUnknownCodec", s, c, err)
		}
	}
	if s := Codec(5).String(); s != "Codec(5)" {
		t.Errorf("Codec(5).String() = %q", s)
	}
	// The values are part of the wire format.
	for c, want := range map[Codec]uint8{CodecNone: 0, CodecZstd: 1, CodecLZ4: 2, CodecSnappy: 3} {
		if uint8(c) != want {
			t.Errorf("%s = %d, want %d", c, uint8(c), want)
		}
	}
}

func TestCodecText(t *testing.T) {
	type config struct{ Compression Codec }
	out, err := json.Marshal(config{CodecLZ4})
	if err != nil || string(out) != `{"Compression":"lz4"}` {
		t.Fatalf("Marshal = %s, %v", out, err)
	}
	var c config
	if err := json.Unmarshal([]byte(`{"Compression":"Snappy"}`), &c); err != nil || c.Compression != CodecSnappy {
		t.Fatalf("Unmarshal = %+v, %v", c, err)
	}
	if err := json.Unmarshal([]byte(`{"Compression":"brotli"}`), &c); !errors.Is(err, ErrUnknownCodec) {
		t.Fatalf("Unmarshal of an unknown codec: %v", err)
	}
	if _, err := Codec(9).MarshalText(); !errors.Is(err, ErrUnknownCodec) {
		t.Fatalf("MarshalText of Codec(9): %v", err)
	}
}

func TestCompressRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	inputs := map[string][]byte{
		"empty":          {},
		"one byte":       {7},
		"text":           textValue(rng, 10_000),
		"random":         randomBytes(rng, 10_000),
		"zeros 1 MiB":    make([]byte, 1<<20),
		"text past 64KB": textValue(rng, 64<<10+1),
	}
	for _, codec := range []Codec{CodecZstd, CodecLZ4, CodecSnappy} {
		for name, in := range inputs {
			t.Run(codec.String()+"/"+name, func(t *testing.T) {
				comp, err := appendCompressed([]byte("prefix"), codec, in)
				if err != nil {
					t.Fatal(err)
				}
				if string(comp[:6]) != "prefix" {
					t.Fatal("appendCompressed changed dst's bytes")
				}
				out, err := decompress(nil, codec, comp[6:], len(in)+1)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(out, in) {
					t.Fatalf("round trip changed %d bytes into %d", len(in), len(out))
				}
				// Decompressing into a large enough buffer reuses it.
				buf := make([]byte, 0, len(in)+1<<10)
				out, err = decompress(buf, codec, comp[6:], len(in)+1)
				if err != nil || !bytes.Equal(out, in) {
					t.Fatalf("into a buffer: %v", err)
				}
				if len(in) > 0 && &out[0] != &buf[:1][0] {
					t.Fatal("decompress allocated despite a large enough buffer")
				}
			})
		}
	}
}

// TestDecompressionBomb: a records section that expands past the reader's
// limit fails with ErrTooLarge, whether or not it declares its size.
func TestDecompressionBomb(t *testing.T) {
	const limit = 64 << 10
	zeros := make([]byte, 1<<20)
	streamed := zstdStream(t, zeros) // no content size in the frame

	var hdr zstd.Header
	if err := hdr.Decode(streamed); err != nil || hdr.HasFCS {
		t.Fatalf("the streamed zstd frame must not declare its size: %+v, %v", hdr, err)
	}
	lz4Block, err := appendCompressed(nil, CodecLZ4, zeros)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		codec   Codec
		section []byte
		limit   int
	}{
		{"zstd declared size", CodecZstd, zstdEncoder().EncodeAll(zeros, nil), limit},
		{"zstd undeclared size", CodecZstd, streamed, limit},
		// The shared decoder's limit rounds up to a power of two; the exact
		// limit is checked after it.
		{"zstd undeclared size, limit not a power of two", CodecZstd, streamed, limit + 1000},
		{"zstd undeclared size just past the limit", CodecZstd, zstdStream(t, zeros[:limit+1]), limit},
		{"lz4", CodecLZ4, lz4Block, limit},
		{"snappy", CodecSnappy, s2.EncodeSnappy(nil, zeros), limit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.section) > len(zeros)/16 {
				t.Fatalf("the bomb is %d bytes; it should be small", len(tt.section))
			}
			batch := rawBatch(t, plainHeader(1, tt.codec), nil)
			batch = reseal(append(batch[:HeaderSize], tt.section...))
			if _, err := ParseHeader(batch); err != nil {
				t.Fatal(err)
			}
			_, _, err := readAll(batch, tt.limit)
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("readAll: %v, want ErrTooLarge", err)
			}
			if _, err := Validate(batch, tt.limit); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("Validate: %v, want ErrTooLarge", err)
			}
		})
	}
}

// TestDecompressionBombMemory: a zstd frame of 128 MiB that does not declare
// its size makes a reader with a 1 MiB limit allocate about what the decoder
// is allowed (zstdMinDecoderMemory), not 128 MiB.
func TestDecompressionBombMemory(t *testing.T) {
	const limit = 1 << 20
	bomb := zstdStream(t, make([]byte, 128<<20))
	batch := rawBatch(t, plainHeader(1, CodecZstd), nil)
	batch = reseal(append(batch[:HeaderSize], bomb...))
	if _, _, err := readAll(batch, limit); !errors.Is(err, ErrTooLarge) { // warm the decoder
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err := readAll(batch, limit)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("%v, want ErrTooLarge", err)
	}
	// NB: TotalAlloc counts every buffer the output grew through (about five
	// times the final size with append's growth), not the peak.
	if allocated := after.TotalAlloc - before.TotalAlloc; allocated > 8*zstdMinDecoderMemory {
		t.Fatalf("decoding a %d-byte bomb with a %d-byte limit allocated %d bytes", len(bomb), limit, allocated)
	}
}

// zstdStream compresses b with a streaming encoder, whose frame does not
// declare its content size.
func zstdStream(tb testing.TB, b []byte) []byte {
	tb.Helper()
	var out bytes.Buffer
	w, err := zstd.NewWriter(&out, zstd.WithEncoderConcurrency(1))
	if err != nil {
		tb.Fatal(err)
	}
	for len(b) > 0 {
		n := min(len(b), 1<<20)
		if _, err := w.Write(b[:n]); err != nil {
			tb.Fatal(err)
		}
		b = b[n:]
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return out.Bytes()
}

// TestDecompressDeclaredSizes: sizes that compressed data declares are
// checked before anything is allocated, and must match what it holds.
func TestDecompressDeclaredSizes(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	text := textValue(rng, 4096)
	lz4Text, err := appendCompressed(nil, CodecLZ4, text)
	if err != nil {
		t.Fatal(err)
	}
	withLZ4Size := func(size uint32) []byte {
		b := bytes.Clone(lz4Text)
		binary.BigEndian.PutUint32(b, size)
		return b
	}
	snappyText := s2.EncodeSnappy(nil, text)
	withSnappySize := func(size uint64) []byte {
		return append(binary.AppendUvarint(nil, size), snappyText[len(binary.AppendUvarint(nil, uint64(len(text)))):]...)
	}
	tests := []struct {
		name    string
		codec   Codec
		section []byte
		want    error
		msg     string
	}{
		{"lz4 no size", CodecLZ4, []byte{1, 2}, ErrCorrupt, "shorter than the 4-byte length"},
		{"lz4 size too small", CodecLZ4, withLZ4Size(4095), ErrCorrupt, "lz4"},
		{"lz4 size too large", CodecLZ4, withLZ4Size(4097), ErrCorrupt, "lz4"},
		{"lz4 size beyond any expansion", CodecLZ4, append(binary.BigEndian.AppendUint32(nil, 60_000), 0xf0, 0, 0), ErrCorrupt, "declare 60000 bytes from a 3-byte block"},
		{"lz4 size beyond the limit", CodecLZ4, withLZ4Size(1 << 30), ErrTooLarge, "declare 1073741824 bytes"},
		// The fuzzer found that lz4's assembly decoder panics on a nil
		// destination.
		{"lz4 size 0 with data", CodecLZ4, append(binary.BigEndian.AppendUint32(nil, 0), []byte("0000000000000000000")...), ErrCorrupt, "declare 0 bytes from a 19-byte block"},
		{"lz4 size 0 with an empty block", CodecLZ4, binary.BigEndian.AppendUint32(nil, 0), ErrCorrupt, "declare 0 bytes from a 0-byte block"},
		{"lz4 garbage", CodecLZ4, append(binary.BigEndian.AppendUint32(nil, 100), bytes.Repeat([]byte{0xff}, 50)...), ErrCorrupt, "lz4"},
		{"snappy size too small", CodecSnappy, withSnappySize(4095), ErrCorrupt, "snappy"},
		{"snappy size too large", CodecSnappy, withSnappySize(4097), ErrCorrupt, "snappy"},
		{"snappy size beyond any expansion", CodecSnappy, append(binary.AppendUvarint(nil, 1000), 0, 0), ErrCorrupt, "declare 1000 bytes from a 4-byte block"},
		{"snappy size beyond the limit", CodecSnappy, withSnappySize(1 << 30), ErrTooLarge, "declare 1073741824 bytes"},
		{"snappy bad length", CodecSnappy, bytes.Repeat([]byte{0xff}, 6), ErrCorrupt, "snappy records length"},
		{"zstd not zstd", CodecZstd, []byte("definitely not a zstd frame"), ErrCorrupt, "zstd frame header"},
		{"zstd truncated", CodecZstd, zstdEncoder().EncodeAll(text, nil)[:30], ErrCorrupt, "zstd"},
		{"zstd declared beyond the limit", CodecZstd, zstdEncoder().EncodeAll(make([]byte, 2<<20), nil), ErrTooLarge, "declare 2097152 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := decompress(nil, tt.codec, tt.section, 1<<20)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("decompress = %d bytes, %v; want %v saying %q", len(out), err, tt.want, tt.msg)
			}
		})
	}
}

// TestSnappyRefusesS2: a block that uses S2's extensions is not Snappy, and
// a reader refuses it even though the S2 decoder would take it.
func TestSnappyRefusesS2(t *testing.T) {
	in := bytes.Repeat([]byte("0123456789abcdef-"), 4096)
	for i := range in {
		if i%97 == 0 {
			in[i] = byte(i)
		}
	}
	block := s2.Encode(nil, in)
	if out, err := s2.Decode(nil, block); err != nil || !bytes.Equal(out, in) {
		t.Fatalf("s2 round trip: %v", err)
	}
	if _, err := snappy.DecodeStrict(nil, block); err == nil {
		t.Fatal("the S2 block decodes as strict Snappy; the test needs input that uses S2 extensions")
	}
	if _, err := decompress(nil, CodecSnappy, block, 1<<20); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("decompress of an S2 block: %v, want ErrCorrupt", err)
	}
}

// TestLZ4IsBlockFormat pins the lz4 framing: a big-endian u32 size, then a
// block that the reference block decoder reads.
func TestLZ4IsBlockFormat(t *testing.T) {
	in := textValue(rand.New(rand.NewPCG(9, 10)), 5000)
	comp, err := appendCompressed(nil, CodecLZ4, in)
	if err != nil {
		t.Fatal(err)
	}
	if size := binary.BigEndian.Uint32(comp); size != uint32(len(in)) {
		t.Fatalf("size prefix %d, want %d", size, len(in))
	}
	out := make([]byte, len(in))
	if n, err := lz4.UncompressBlock(comp[4:], out); err != nil || n != len(in) || !bytes.Equal(out, in) {
		t.Fatalf("UncompressBlock = %d, %v", n, err)
	}
}

func TestZstdDecoderPerLimit(t *testing.T) {
	a, err := zstdDecoder(1000)
	if err != nil {
		t.Fatal(err)
	}
	b, err := zstdDecoder(1024)
	if err != nil {
		t.Fatal(err)
	}
	c, err := zstdDecoder(1025)
	if err != nil {
		t.Fatal(err)
	}
	d, err := zstdDecoder(zstdMinDecoderMemory + 1)
	if err != nil {
		t.Fatal(err)
	}
	if a != b || b != c || c == d {
		t.Fatal("decoders are not shared by power-of-two limit above zstdMinDecoderMemory")
	}
	if got := zstdDecoderMemory(zstdMinDecoderMemory + 1); got != 2*zstdMinDecoderMemory {
		t.Fatalf("zstdDecoderMemory(%d) = %d", zstdMinDecoderMemory+1, got)
	}
	if got := zstdDecoderMemory(100 << 20); got != 128<<20 {
		t.Fatalf("zstdDecoderMemory(100 MiB) = %d", got)
	}
}
