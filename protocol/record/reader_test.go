package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
)

// TestDecodeRejects crafts records sections that a Builder never writes and
// checks that Decode, Validate and a Reader all refuse them, with ErrCorrupt
// and a message that says what is wrong, for each codec.
func TestDecodeRejects(t *testing.T) {
	type tc struct {
		name    string
		header  BatchHeader
		records []byte
		msg     string
	}
	withRecord := func(n, i int, f func(*rawRecord)) []byte {
		recs := denseRecords(n)
		f(&recs[i])
		return section(recs)
	}
	three := section(denseRecords(3))
	// Fields that rawRecord cannot express: a key length of -2, and more
	// headers than the record has bytes for.
	keyMinus2 := badField(t, func(body []byte) []byte {
		return binary.AppendVarint(body, -2)
	})
	headerKeyPastEnd := badField(t, func(body []byte) []byte {
		body = binary.AppendVarint(body, -1)              // nil key
		body = binary.AppendVarint(body, -1)              // nil value
		body = binary.AppendUvarint(body, 1)              // one header
		return append(binary.AppendUvarint(body, 9), 'k') // key of 9 bytes, 1 there
	})
	headerValueMinus2 := badField(t, func(body []byte) []byte {
		body = binary.AppendVarint(body, -1) // nil key
		body = binary.AppendVarint(body, -1) // nil value
		body = binary.AppendUvarint(body, 1) // one header
		body = append(binary.AppendUvarint(body, 1), 'k')
		return binary.AppendVarint(body, -2)
	})
	tooManyHeaders := badField(t, func(body []byte) []byte {
		body = binary.AppendVarint(body, -1) // nil key
		body = binary.AppendVarint(body, -1) // nil value
		return append(binary.AppendUvarint(body, 1000), make([]byte, 20)...)
	})
	var tests []tc
	for _, codec := range allCodecs {
		h := plainHeader(3, codec)
		tests = append(tests, []tc{
			{"count above records", plainHeader(4, codec), three, "the records section ends after 3 records"},
			{"count below records", plainHeader(2, codec), three, "bytes left over after the last record"},
			{"trailing bytes", h, append(bytes.Clone(three), 0, 0, 0, 0, 0, 0, 0), "7 bytes left over after the last record"},
			{"trailing garbage", h, append(bytes.Clone(three), 0xff), "1 bytes left over after the last record"},
			{"offset delta skips", h, withRecord(3, 1, func(r *rawRecord) { r.offsetDelta = 2 }), "record 1 of 3 at byte 17 of the records section: offset delta 2, want 1"},
			{"offset delta repeats", h, withRecord(3, 2, func(r *rawRecord) { r.offsetDelta = 1 }), "offset delta 1, want 2"},
			{"offset delta from 1", h, withRecord(3, 0, func(r *rawRecord) { r.offsetDelta = 1 }), "record 0 of 3 at byte 0 of the records section: offset delta 1, want 0"},
			{"offset delta huge", h, withRecord(3, 0, func(r *rawRecord) { r.offsetDelta = math.MaxUint64 }), "offset delta"},
			{"truncated last record", h, three[:len(three)-1], "record 2 of 3 at byte 34 of the records section: length 16, 15 bytes left"},
			{"truncated in the middle", h, append(bytes.Clone(three[:20]), make([]byte, 30)...), "record 1 of 3"},
			{"record longer than its fields", h, withRecord(3, 1, func(r *rawRecord) { r.extra = []byte{1, 2} }), "2 bytes left over after the fields"},
			{"record shorter than its fields", h, withRecord(3, 1, func(r *rawRecord) { r.lengthAdjust = -2 }), "record 1 of 3"},
			{"record length negative", h, withRecord(3, 0, func(r *rawRecord) { r.lengthAdjust = -100 }), "length -"},
			{"record length too small", h, append(binary.AppendVarint(nil, 5), make([]byte, 40)...), "length 5"},
			{"record length past the end", h, withRecord(3, 2, func(r *rawRecord) { r.lengthAdjust = 1 << 40 }), "bytes left in the section"},
			{"bad length varint", h, append(bytes.Repeat([]byte{0xff}, 10), make([]byte, 30)...), "bad length varint"},
			{"attributes", h, withRecord(3, 0, func(r *rawRecord) { r.attributes = 1 }), "attributes 0x01, want 0"},
			{"key length -2", plainHeader(1, codec), keyMinus2, "bad key at byte 4"},
			{"first timestamp delta", h, withRecord(3, 0, func(r *rawRecord) { r.timestampDelta = -1 }), "first record's timestamp delta is -1"},
			{"timestamp after max", h, withRecord(3, 2, func(r *rawRecord) { r.timestampDelta = 1 }), "timestamp 1001 after the batch's max timestamp 1000"},
			{"max timestamp not reached", BatchHeader{Count: 3, FirstTimestamp: 1000, MaxTimestamp: 2000,
				ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, Codec: codec}, three, "largest record timestamp is 1000, the batch's max timestamp 2000"},
			{"header count too large", plainHeader(1, codec), tooManyHeaders, "bad header count at byte 6"},
			{"header key past the end", plainHeader(1, codec), headerKeyPastEnd, "header 0: bad key at byte 7"},
			{"header value length -2", plainHeader(1, codec), headerValueMinus2, "header 0: bad value at byte 9"},
		}...)
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s", tt.name, tt.header.Codec), func(t *testing.T) {
			batch := rawBatch(t, tt.header, tt.records)
			if _, err := ParseHeader(batch); err != nil {
				t.Fatalf("ParseHeader: %v; the test wants a good header", err)
			}
			_, recs, err := Decode(batch)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Decode = %d records, %v; want ErrCorrupt saying %q", len(recs), err, tt.msg)
			}
			if recs != nil {
				t.Fatalf("Decode returned records with its error")
			}
			if _, err := Validate(batch, 0); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Validate: %v; want ErrCorrupt saying %q", err, tt.msg)
			}
			// A Reader fails at the same place and then keeps failing.
			r, err := NewReader(batch)
			if err != nil {
				t.Fatal(err)
			}
			for {
				_, err = r.Next()
				if err != nil {
					break
				}
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Reader: %v; want ErrCorrupt saying %q", err, tt.msg)
			}
			if _, again := r.Next(); again != err {
				t.Fatalf("Next after an error: %v, want %v again", again, err)
			}
		})
	}
}

// badField returns a section of one record whose body edit extends after
// its first three fields, padded to the minimum size, with a length that
// covers the body.
func badField(tb testing.TB, edit func(body []byte) []byte) []byte {
	tb.Helper()
	body := edit([]byte{0 /* attributes */, 0 /* ts delta */, 0 /* offset delta */})
	for len(body) < minRecordSize-1 {
		body = append(body, 0)
	}
	return append(binary.AppendVarint(nil, int64(len(body))), body...)
}

func TestReaderReset(t *testing.T) {
	batches := validBatches(t)
	var r Reader
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("Next on the zero Reader: %v, want io.EOF", err)
	}
	_, want, err := Decode(batches[CodecNone])
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		for _, codec := range allCodecs {
			if err := r.Reset(batches[codec]); err != nil {
				t.Fatal(err)
			}
			if h := r.Header(); h.Codec != codec || h.Count != 3 {
				t.Fatalf("Header = %+v", h)
			}
			var got []Record
			for {
				rec, err := r.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, rec)
			}
			checkRecords(t, got, want)
			if _, err := r.Next(); err != io.EOF {
				t.Fatalf("Next after the end: %v, want io.EOF", err)
			}
		}
	}
	// A failed Reset leaves no batch behind.
	if err := r.Reset(batches[CodecNone][:10]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Reset of a short batch: %v", err)
	}
	if _, err := r.Next(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Next after a failed Reset: %v, want the Reset error", err)
	}
	if r.Header() != (BatchHeader{}) {
		t.Fatalf("Header after a failed Reset: %+v", r.Header())
	}
}

// TestRecordsDoNotOverlap: appending to a decoded key or value must not
// overwrite the bytes after it.
func TestRecordsDoNotOverlap(t *testing.T) {
	batch := build(t, CodecNone, []Record{{Key: []byte("ab"), Value: []byte("cd")}, {Key: []byte("ef"), Value: []byte("gh")}}, -1, -1, -1)
	_, recs, err := Decode(batch)
	if err != nil {
		t.Fatal(err)
	}
	_ = append(recs[0].Key, 'X')
	_ = append(recs[0].Value, 'X')
	if _, again, err := Decode(batch); err != nil || string(again[0].Value) != "cd" || string(again[1].Key) != "ef" {
		t.Fatalf("batch changed by appending to decoded slices: %v", err)
	}
}

func TestDecodeLimit(t *testing.T) {
	recs := []Record{{Value: bytes.Repeat([]byte("abcdefgh"), 8<<10)}} // 64 KiB, compressible
	for _, codec := range allCodecs {
		t.Run(codec.String(), func(t *testing.T) {
			batch := build(t, codec, recs, -1, -1, -1)
			size := len(buildSection(t, recs))
			if _, _, err := readAll(batch, size); err != nil {
				t.Fatalf("limit = section size: %v", err)
			}
			_, _, err := readAll(batch, size-1)
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("limit one byte below the section: %v, want ErrTooLarge", err)
			}
			if _, err := Validate(batch, size-1); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("Validate: %v, want ErrTooLarge", err)
			}
			if _, err := Validate(batch, size); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
	t.Run("count beyond the limit", func(t *testing.T) {
		batch := build(t, CodecZstd, make([]Record, 1000), -1, -1, -1)
		_, _, err := readAll(batch, 1000*minRecordSize-1)
		if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "1000 records") {
			t.Fatalf("%v, want ErrTooLarge", err)
		}
	})
}

// FuzzDecode: decoding never panics; Decode, Validate and a Reader agree;
// and records that decode come out the same after being rebuilt
// uncompressed with the same header fields.
func FuzzDecode(f *testing.F) {
	var seeds [][]byte
	for _, b := range validBatches(f) {
		seeds = append(seeds, b)
	}
	for _, codec := range allCodecs {
		seeds = append(seeds, build(f, codec, benchRecords(20, 300), -1, -1, -1))
		seeds = append(seeds, build(f, codec, []Record{{}}, 1, 0, 0))
	}
	for _, b := range seeds {
		if len(b) > maxFuzzDecodeInput {
			f.Fatalf("a seed of %d bytes is past maxFuzzDecodeInput", len(b))
		}
		f.Add(b)
	}
	// A small limit keeps each run fast: a few hundred bytes of zstd can
	// declare and hold megabytes.
	const limit = 64 << 10
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > maxFuzzDecodeInput { // see FuzzParseHeader
			return
		}
		for _, in := range [][]byte{b, fixSeal(b)} {
			h, recs, err := readAll(in, limit)
			vh, verr := Validate(in, limit)
			if (err == nil) != (verr == nil) || vh != h {
				t.Fatalf("Reader: %+v, %v; Validate: %+v, %v", h, err, vh, verr)
			}
			if err != nil {
				if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnknownCodec) &&
					!errors.Is(err, ErrUnsupportedVersion) && !errors.Is(err, ErrTooLarge) {
					t.Fatalf("error %v matches no sentinel", err)
				}
				continue
			}
			if len(recs) != int(h.Count) {
				t.Fatalf("%d records, header says %d", len(recs), h.Count)
			}
			bld := NewBuilder(CodecNone)
			if h.ProducerID != NoProducerID {
				bld.SetProducer(h.ProducerID, h.ProducerEpoch, h.BaseSequence)
			}
			for _, r := range recs {
				bld.Append(r)
			}
			rebuilt, err := bld.Build()
			if err != nil {
				t.Fatalf("rebuild: %v", err)
			}
			h2, recs2, err := Decode(rebuilt)
			if err != nil {
				t.Fatalf("decode rebuilt: %v", err)
			}
			h.Codec = CodecNone
			if h2 != h {
				t.Fatalf("rebuilt header %+v, want %+v", h2, h)
			}
			checkRecords(t, recs2, recs)
		}
	})
}

// BenchmarkBuild builds batches of about 1 KiB and 64 KiB, of 100-byte and
// 1-KiB values, with each codec, reusing one Builder. Bytes are uncompressed
// batch bytes.
func BenchmarkBuild(b *testing.B) {
	benchmarkCodecs(b, func(b *testing.B, codec Codec, recs []Record) {
		bld := NewBuilder(codec)
		for _, r := range recs {
			bld.Append(r)
		}
		b.SetBytes(int64(bld.EstimatedSize()))
		b.ReportAllocs()
		for b.Loop() {
			bld.Reset()
			for _, r := range recs {
				bld.Append(r)
			}
			if _, err := bld.Build(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDecode reads every record of a batch with a reused Reader. Bytes
// are uncompressed batch bytes.
func BenchmarkDecode(b *testing.B) {
	benchmarkCodecs(b, func(b *testing.B, codec Codec, recs []Record) {
		batch := build(b, codec, recs, -1, -1, -1)
		b.SetBytes(int64(HeaderSize + len(buildSection(b, recs))))
		b.ReportMetric(float64(len(batch)), "batch-bytes")
		b.ReportAllocs()
		var r Reader
		for b.Loop() {
			if err := r.Reset(batch); err != nil {
				b.Fatal(err)
			}
			for {
				_, err := r.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// BenchmarkValidate checks whole batches as the broker does on produce.
func BenchmarkValidate(b *testing.B) {
	benchmarkCodecs(b, func(b *testing.B, codec Codec, recs []Record) {
		batch := build(b, codec, recs, -1, -1, -1)
		b.SetBytes(int64(HeaderSize + len(buildSection(b, recs))))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Validate(batch, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchmarkCodecs runs bench for each codec, value size and batch size.
func benchmarkCodecs(b *testing.B, bench func(b *testing.B, codec Codec, recs []Record)) {
	for _, codec := range allCodecs {
		for _, value := range []int{100, 1 << 10} {
			for _, batch := range []int{1 << 10, 64 << 10} {
				recs := benchRecords(value, batch)
				name := fmt.Sprintf("%s/value=%s/batch=%s", codec, sizeName(value), sizeName(batch))
				b.Run(name, func(b *testing.B) { bench(b, codec, recs) })
			}
		}
	}
}

// TestReaderResetVerified: ResetVerified skips the batch checksum, and only
// it.
func TestReaderResetVerified(t *testing.T) {
	batches := validBatches(t)
	_, want, err := Decode(batches[CodecNone])
	if err != nil {
		t.Fatal(err)
	}
	readAll := func(r *Reader) []Record {
		t.Helper()
		var got []Record
		for {
			rec, err := r.Next()
			if err == io.EOF {
				return got
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, rec)
		}
	}
	var r Reader
	for _, codec := range allCodecs {
		if err := r.ResetVerified(batches[codec]); err != nil {
			t.Fatalf("%s: ResetVerified: %v", codec, err)
		}
		if h := r.Header(); h.Codec != codec || h.Count != 3 {
			t.Fatalf("%s: Header = %+v", codec, h)
		}
		checkRecords(t, readAll(&r), want)

		// A wrong checksum: Reset refuses it, ResetVerified does not.
		bad := append([]byte(nil), batches[codec]...)
		bad[offCRC] ^= 0xff
		if err := r.Reset(bad); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: Reset with a bad checksum: %v, want ErrCorrupt", codec, err)
		}
		if err := r.ResetVerified(bad); err != nil {
			t.Fatalf("%s: ResetVerified with a bad checksum: %v", codec, err)
		}
		checkRecords(t, readAll(&r), want)

		// Everything else is still checked.
		for name, edit := range map[string]func(b []byte) []byte{
			"short":    func(b []byte) []byte { return b[:HeaderSize-1] },
			"length":   func(b []byte) []byte { return b[:len(b)-1] },
			"version":  func(b []byte) []byte { b[offVersion] = Version + 1; return b },
			"reserved": func(b []byte) []byte { b[offReserved1] = 1; return b },
			"count":    func(b []byte) []byte { binary.BigEndian.PutUint32(b[offCount:], 0); return b },
			"records":  func(b []byte) []byte { binary.BigEndian.PutUint32(b[offCount:], 2); return b },
		} {
			b := edit(append([]byte(nil), batches[codec]...))
			err := r.ResetVerified(b)
			for err == nil {
				_, err = r.Next() // the records' own checks
			}
			if err == io.EOF {
				err = nil
			}
			if err == nil {
				t.Fatalf("%s: ResetVerified and Next accept a batch with a bad %s", codec, name)
			}
		}
	}
}
