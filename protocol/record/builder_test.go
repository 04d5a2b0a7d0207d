package record

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// roundTripShapes are record sets that every codec must carry unchanged.
func roundTripShapes() map[string][]Record {
	rng := rand.New(rand.NewPCG(1, 2))
	many := make([]Record, 10_000)
	for i := range many {
		many[i] = Record{Key: []byte(fmt.Sprintf("k%d", i%37)), Value: textValue(rng, rng.IntN(200)),
			Timestamp: 1_700_000_000_000 + int64(i%100)}
	}
	withHeaders := make([]Record, 50)
	for i := range withHeaders {
		withHeaders[i] = Record{Value: []byte{byte(i)}, Timestamp: int64(i), Headers: []Header{
			{Key: "trace-id", Value: randomBytes(rng, 16)},
			{Key: "content-type", Value: []byte("application/json")},
			{Key: fmt.Sprintf("only-%d", i), Value: nil},
		}}
	}
	return map[string][]Record{
		"one record": {{Key: []byte("k"), Value: []byte("v"), Timestamp: 1_700_000_000_000}},
		"nil key and value (tombstone)": {
			{Key: nil, Value: nil, Timestamp: 5},
			{Key: []byte("deleted"), Value: nil, Timestamp: 6},
		},
		"empty key and value": {
			{Key: []byte{}, Value: []byte{}, Timestamp: 5},
			{Key: nil, Value: []byte{}, Timestamp: 5},
			{Key: []byte{}, Value: nil, Timestamp: 5},
		},
		"headers": {
			{Key: []byte("k"), Value: []byte("v"), Timestamp: 10, Headers: []Header{
				{Key: "a", Value: []byte("1")},
				{Key: "nil value", Value: nil},
				{Key: "empty value", Value: []byte{}},
				{Key: "", Value: []byte("empty key")},
				{Key: "a", Value: []byte("duplicate key, order kept")},
			}},
			{Timestamp: 10, Headers: []Header{}}, // no headers decodes as nil
			{Timestamp: 10, Headers: []Header{{Key: "a", Value: []byte("2")}}},
		},
		"headers on many records": withHeaders,
		"many records":            many,
		"large values": {
			{Key: []byte("random"), Value: randomBytes(rng, 1<<20), Timestamp: 1},
			{Key: []byte("text"), Value: textValue(rng, 1<<20), Timestamp: 2},
			{Key: []byte("zeros"), Value: make([]byte, 1<<20), Timestamp: 3},
		},
		"timestamps out of order": {
			{Value: []byte("first"), Timestamp: 1000},
			{Value: []byte("older"), Timestamp: 500},
			{Value: []byte("newest"), Timestamp: 2000},
			{Value: []byte("before epoch"), Timestamp: -5},
			{Value: []byte("between"), Timestamp: 1500},
		},
		"extreme timestamps": {
			{Value: []byte("max"), Timestamp: math.MaxInt64},
			{Value: []byte("min"), Timestamp: math.MinInt64},
			{Value: []byte("zero"), Timestamp: 0},
		},
	}
}

func TestRoundTrip(t *testing.T) {
	for name, recs := range roundTripShapes() {
		for _, codec := range allCodecs {
			t.Run(fmt.Sprintf("%s/%s", name, codec), func(t *testing.T) {
				want := expected(recs)
				first, maxTS := recs[0].Timestamp, recs[0].Timestamp
				for _, r := range recs {
					maxTS = max(maxTS, r.Timestamp)
				}
				wantHeader := BatchHeader{Count: uint32(len(recs)), FirstTimestamp: first, MaxTimestamp: maxTS,
					ProducerID: 42, ProducerEpoch: 3, BaseSequence: 1000, Codec: codec}

				b := NewBuilder(codec)
				b.SetProducer(42, 3, 1000)
				for _, r := range recs {
					b.Append(r)
				}
				if b.Len() != len(recs) {
					t.Fatalf("Len = %d, want %d", b.Len(), len(recs))
				}
				batch, err := b.Build()
				if err != nil {
					t.Fatal(err)
				}
				appended, err := b.AppendTo([]byte("prefix"))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(appended[len("prefix"):], batch) || string(appended[:len("prefix")]) != "prefix" {
					t.Fatal("AppendTo differs from Build")
				}

				h, err := ParseHeader(batch)
				if err != nil {
					t.Fatal(err)
				}
				if h != wantHeader {
					t.Fatalf("ParseHeader = %+v, want %+v", h, wantHeader)
				}
				if h, err := Validate(batch, 0); err != nil || h != wantHeader {
					t.Fatalf("Validate = %+v, %v", h, err)
				}
				h, got, err := Decode(batch)
				if err != nil {
					t.Fatal(err)
				}
				if h != wantHeader {
					t.Fatalf("Decode header = %+v, want %+v", h, wantHeader)
				}
				checkRecords(t, got, want)

				// The records do not depend on the builder's buffers.
				b.Reset()
				b.Append(Record{Key: bytes.Repeat([]byte("x"), 100), Value: []byte("overwrite")})
				if _, err := b.Build(); err != nil {
					t.Fatal(err)
				}
				_, again, err := Decode(appended[len("prefix"):])
				if err != nil {
					t.Fatal(err)
				}
				checkRecords(t, again, want)
			})
		}
	}
}

func TestBuilderErrors(t *testing.T) {
	t.Run("empty", func(t *testing.T) {
		b := NewBuilder(CodecZstd)
		if _, err := b.Build(); !errors.Is(err, ErrEmpty) {
			t.Fatalf("Build on empty builder: %v, want ErrEmpty", err)
		}
		b.Append(Record{})
		b.Reset()
		if _, err := b.Build(); !errors.Is(err, ErrEmpty) {
			t.Fatalf("Build after Reset: %v, want ErrEmpty", err)
		}
		if dst, err := b.AppendTo([]byte("keep")); !errors.Is(err, ErrEmpty) || string(dst) != "keep" {
			t.Fatalf("AppendTo = %q, %v", dst, err)
		}
	})
	t.Run("unknown codec", func(t *testing.T) {
		b := NewBuilder(Codec(4))
		b.Append(Record{})
		if _, err := b.Build(); !errors.Is(err, ErrUnknownCodec) {
			t.Fatalf("Build: %v, want ErrUnknownCodec", err)
		}
	})
	for _, p := range []struct {
		id    int64
		epoch int16
		seq   int32
		ok    bool
	}{
		{-1, -1, -1, true},
		{0, 0, 0, true},
		{math.MaxInt64, math.MaxInt16, math.MaxInt32, true},
		{-1, 0, -1, false},
		{-1, -1, 0, false},
		{5, -1, 0, false},
		{5, 0, -1, false},
		{-2, -1, -1, false},
	} {
		t.Run(fmt.Sprintf("producer %d %d %d", p.id, p.epoch, p.seq), func(t *testing.T) {
			b := NewBuilder(CodecNone)
			b.SetProducer(p.id, p.epoch, p.seq)
			b.Append(Record{})
			batch, err := b.Build()
			if p.ok {
				if err != nil {
					t.Fatal(err)
				}
				h, err := ParseHeader(batch)
				if err != nil || h.ProducerID != p.id || h.ProducerEpoch != p.epoch || h.BaseSequence != p.seq {
					t.Fatalf("ParseHeader = %+v, %v", h, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidProducer) {
				t.Fatalf("Build: %v, want ErrInvalidProducer", err)
			}
		})
	}
	t.Run("too large", func(t *testing.T) {
		b := NewBuilder(CodecLZ4)
		value := make([]byte, 1<<20)
		for b.EstimatedSize() <= HeaderSize+DefaultMaxUncompressedSize {
			b.Append(Record{Value: value})
		}
		if _, err := b.Build(); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Build of %d bytes: %v, want ErrTooLarge", b.EstimatedSize(), err)
		}
	})
}

func TestBuilderReset(t *testing.T) {
	b := NewBuilder(CodecSnappy)
	b.SetProducer(7, 1, 10)
	b.Append(Record{Value: []byte("one"), Timestamp: 100})
	b.Append(Record{Value: []byte("two"), Timestamp: 200})
	b.Reset()
	if b.Len() != 0 || b.EstimatedSize() != HeaderSize {
		t.Fatalf("after Reset: Len %d, EstimatedSize %d", b.Len(), b.EstimatedSize())
	}
	b.Append(Record{Value: []byte("three"), Timestamp: 50})
	batch, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	h, recs, err := Decode(batch)
	if err != nil {
		t.Fatal(err)
	}
	want := BatchHeader{Count: 1, FirstTimestamp: 50, MaxTimestamp: 50, ProducerID: NoProducerID,
		ProducerEpoch: NoProducerEpoch, BaseSequence: NoSequence, Codec: CodecSnappy}
	if h != want {
		t.Fatalf("header after Reset = %+v, want %+v", h, want)
	}
	checkRecords(t, recs, []Record{{Value: []byte("three"), Timestamp: 50}})
	if b.Codec() != CodecSnappy {
		t.Fatalf("Codec = %s after Reset", b.Codec())
	}
}

func TestBuilderZeroValue(t *testing.T) {
	var b Builder
	if b.EstimatedSize() != HeaderSize {
		t.Fatalf("EstimatedSize = %d", b.EstimatedSize())
	}
	b.Append(Record{Key: []byte("k")})
	batch, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	h, err := ParseHeader(batch)
	if err != nil || h.Codec != CodecNone || h.ProducerID != NoProducerID {
		t.Fatalf("ParseHeader = %+v, %v", h, err)
	}
}

func TestEstimatedSize(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	b := NewBuilder(CodecNone)
	for i := range 100 {
		b.Append(Record{Key: randomBytes(rng, i), Value: textValue(rng, 3*i), Timestamp: int64(i * 1000),
			Headers: []Header{{Key: "h", Value: randomBytes(rng, i%5)}}})
		batch, err := b.Build()
		if err != nil {
			t.Fatal(err)
		}
		if b.EstimatedSize() != len(batch) {
			t.Fatalf("after %d records: EstimatedSize %d, uncompressed batch %d bytes", i+1, b.EstimatedSize(), len(batch))
		}
	}
}

// TestBuildIncompressibleFallback: a batch of tiny records that compress to
// less than a byte each is stored uncompressed, so that it satisfies
// ParseHeader's count <= length; larger batches keep their codec.
func TestBuildIncompressibleFallback(t *testing.T) {
	for _, codec := range []Codec{CodecZstd, CodecLZ4, CodecSnappy} {
		t.Run(codec.String(), func(t *testing.T) {
			tiny := make([]Record, 50_000) // zstd: about 0.92 bytes a record
			compressed, err := appendCompressed(nil, codec, buildSection(t, tiny))
			if err != nil {
				t.Fatal(err)
			}
			batch := build(t, codec, tiny, -1, -1, -1)
			h, err := ParseHeader(batch)
			if err != nil {
				t.Fatal(err)
			}
			wantCodec := codec
			if len(compressed)+HeaderSize-lengthSize < len(tiny) {
				wantCodec = CodecNone
			}
			if codec == CodecZstd && wantCodec != CodecNone {
				t.Fatalf("zstd compressed %d empty records to %d bytes: the test no longer reaches the fallback", len(tiny), len(compressed))
			}
			if h.Codec != wantCodec {
				t.Fatalf("codec %s for %d records compressing to %d bytes, want %s", h.Codec, len(tiny), len(compressed), wantCodec)
			}
			_, recs, err := Decode(batch)
			if err != nil {
				t.Fatal(err)
			}
			checkRecords(t, recs, expected(tiny))
		})
	}
}

// buildSection returns the uncompressed records section a Builder makes of
// recs.
func buildSection(tb testing.TB, recs []Record) []byte {
	batch := build(tb, CodecNone, recs, -1, -1, -1)
	return batch[HeaderSize:]
}
