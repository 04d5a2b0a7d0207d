package client

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"weir/protocol/record"
)

func TestDecodeFrames(t *testing.T) {
	b := record.NewBuilder(record.CodecLZ4)
	b.Append(record.Record{Key: nil, Value: []byte("v0"), Timestamp: 10})
	b.Append(record.Record{Key: []byte{}, Value: nil, Timestamp: 11, Headers: []record.Header{{Key: "h", Value: nil}, {Key: "", Value: []byte("x")}}})
	b.Append(record.Record{Key: []byte("k2"), Value: []byte{}, Timestamp: 9})
	batch, err := b.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	var data []byte
	data = appendFrame(data, frameTypeData, 0, 1, buildBatch(t, "before"))
	data = appendFrame(data, frameTypeControl, 1, 0, nil)
	data = appendFrame(data, frameTypeData, 1, 3, batch)
	data = appendFrame(data, frameTypeControl, 4, 0, nil)

	var d frameDecoder
	recs, next, err := d.decode("t", 2, data, 2)
	if err != nil {
		t.Fatal(err)
	}
	if next != 4 {
		t.Errorf("next offset %d, want 4", next)
	}
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2 (offsets 2 and 3)", len(recs))
	}
	r := recs[0]
	if r.Topic != "t" || r.Partition != 2 || r.Offset != 2 || r.Key == nil || len(r.Key) != 0 || r.Value != nil || r.Timestamp.UnixMilli() != 11 {
		t.Errorf("record 2: %+v", r)
	}
	if len(r.Headers) != 2 || r.Headers[0].Value != nil || string(r.Headers[1].Value) != "x" {
		t.Errorf("record 2 headers: %+v", r.Headers)
	}
	if r := recs[1]; r.Offset != 3 || string(r.Key) != "k2" || r.Value == nil || len(r.Value) != 0 || r.Timestamp.UnixMilli() != 9 {
		t.Errorf("record 3: %+v", r)
	}

	// Only control frames: no records, but the offset moves past them.
	recs, next, err = d.decode("t", 2, appendFrame(nil, frameTypeControl, 7, 0, nil), 7)
	if err != nil || len(recs) != 0 || next != 7 {
		t.Errorf("control only: %d records, next %d, %v", len(recs), next, err)
	}
}

func TestDecodeFramesCorrupt(t *testing.T) {
	good := appendFrame(nil, frameTypeData, 0, 1, buildBatch(t, "a"))
	second := appendFrame(nil, frameTypeData, 1, 1, buildBatch(t, "b"))
	for _, tc := range []struct {
		name string
		edit func([]byte) []byte
	}{
		{"crc", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }},
		{"truncated", func(b []byte) []byte { return b[:len(b)-1] }},
		{"short header", func(b []byte) []byte { return b[:20] }},
		{"version", func(b []byte) []byte { b[frameVersionOff] = 1; return b }},
		{"length", func(b []byte) []byte { b[3] = 2; return b }},
		{"count", func(b []byte) []byte { b[frameCountOff+3] = 2; return fixCRC(b) }},
		{"type", func(b []byte) []byte { b[frameTypeOff] = 5; return fixCRC(b) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := append(append([]byte(nil), good...), tc.edit(append([]byte(nil), second...))...)
			var d frameDecoder
			recs, next, err := d.decode("t", 0, data, 0)
			if !errors.Is(err, ErrCorruptFrame) {
				t.Fatalf("err = %v, want ErrCorruptFrame", err)
			}
			// The good frame before the damage is kept.
			if len(recs) != 1 || string(recs[0].Value) != "a" || next != 1 {
				t.Fatalf("%d records, next %d", len(recs), next)
			}
		})
	}
}

// fixCRC recomputes a single frame's checksum after an edit.
func fixCRC(b []byte) []byte {
	base := int64(binary.BigEndian.Uint64(b[frameBaseOffOff:]))
	return appendFrame(nil, b[frameTypeOff], base, binary.BigEndian.Uint32(b[frameCountOff:]), b[frameHeaderSize:])
}

func TestSetBatchProducer(t *testing.T) {
	b := record.NewBuilder(record.CodecZstd)
	b.SetProducer(0, 0, 0)
	b.Append(record.Record{Value: []byte("v"), Timestamp: 1})
	b.Append(record.Record{Value: []byte("w"), Timestamp: 2})
	data, err := b.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	setBatchProducer(data, 42, 3, 1000)
	h, err := record.ParseHeader(data)
	if err != nil {
		t.Fatal(err)
	}
	if h.ProducerID != 42 || h.ProducerEpoch != 3 || h.BaseSequence != 1000 || h.Count != 2 {
		t.Fatalf("header %+v", h)
	}
	if _, recs, err := record.Decode(data); err != nil || len(recs) != 2 {
		t.Fatalf("decode after patching: %d records, %v", len(recs), err)
	}
}

func TestArenaKeepsNilApart(t *testing.T) {
	var a arena
	if a.copy(nil) != nil {
		t.Error("nil copied to non-nil")
	}
	if e := a.copy([]byte{}); e == nil || len(e) != 0 {
		t.Error("empty copied to nil")
	}
	x := a.copy([]byte("abc"))
	y := a.copy([]byte("def"))
	x = append(x, 'Z') // must not write into y
	if string(y) != "def" || string(x) != "abcZ" {
		t.Errorf("copies share memory: %q %q", x, y)
	}
	big := make([]byte, arenaChunk)
	if got := a.copy(big); len(got) != len(big) {
		t.Error("large copy")
	}
}

// benchFrames returns about 8 MiB of data frames (a full fetch response's
// records at the default FetchMaxBytes) of 1 MiB batches of records of
// size bytes, as the default producer writes them.
func benchFrames(b *testing.B, size int) (data []byte, records int) {
	b.Helper()
	value := make([]byte, size)
	var off int64
	for len(data) < 8<<20 {
		bld := record.NewBuilder(record.CodecNone)
		n := 0
		for ; n*(size+recordOverhead) < 1<<20; n++ {
			bld.Append(record.Record{Value: value, Timestamp: 1000})
		}
		batch, err := bld.AppendTo(nil)
		if err != nil {
			b.Fatal(err)
		}
		data = appendFrame(data, frameTypeData, off, uint32(n), batch)
		off += int64(n)
	}
	return data, int(off)
}

// BenchmarkScanFrames: what the fetch loop does between a response's
// arrival and sending the next fetch.
func BenchmarkScanFrames(b *testing.B) {
	for _, size := range []int{100, 1024} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			data, n := benchFrames(b, size)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if next, _, err := scanFrames(data, 0); err != nil || next != int64(n) {
					b.Fatal(next, err)
				}
			}
		})
	}
}

// BenchmarkDecodeFrames: checking and decoding a response's records.
func BenchmarkDecodeFrames(b *testing.B) {
	for _, size := range []int{100, 1024} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			data, n := benchFrames(b, size)
			var d frameDecoder
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if recs, next, err := d.decode("t", 0, data, 0); err != nil || len(recs) != n || next != int64(n) {
					b.Fatal(len(recs), next, err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
