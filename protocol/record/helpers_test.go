package record

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"testing"
)

// allCodecs lists every codec, for tests that run once per codec.
var allCodecs = []Codec{CodecNone, CodecZstd, CodecLZ4, CodecSnappy}

// build builds a batch of recs with codec (and a producer if id >= 0) and
// returns a copy that outlives the builder.
func build(tb testing.TB, codec Codec, recs []Record, id int64, epoch int16, seq int32) []byte {
	tb.Helper()
	b := NewBuilder(codec)
	if id >= 0 {
		b.SetProducer(id, epoch, seq)
	}
	for _, r := range recs {
		b.Append(r)
	}
	batch, err := b.AppendTo(nil)
	if err != nil {
		tb.Fatalf("build %d records with %s: %v", len(recs), codec, err)
	}
	return batch
}

// expected returns recs as a Reader returns them: OffsetDelta is the
// position, and no headers is nil.
func expected(recs []Record) []Record {
	out := make([]Record, len(recs))
	for i, r := range recs {
		r.OffsetDelta = uint32(i)
		if len(r.Headers) == 0 {
			r.Headers = nil
		}
		out[i] = r
	}
	return out
}

// checkRecords fails unless got equals want exactly, nil and empty slices
// told apart.
func checkRecords(tb testing.TB, got, want []Record) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			tb.Fatalf("record %d:\ngot  %s\nwant %s", i, describe(got[i]), describe(want[i]))
		}
	}
}

// describe prints a record with nil and empty slices told apart, and long
// values shortened.
func describe(r Record) string {
	bs := func(b []byte) string {
		switch {
		case b == nil:
			return "nil"
		case len(b) > 32:
			return fmt.Sprintf("%q...(%d bytes)", b[:32], len(b))
		}
		return fmt.Sprintf("%q", b)
	}
	s := fmt.Sprintf("{key %s value %s ts %d delta %d headers", bs(r.Key), bs(r.Value), r.Timestamp, r.OffsetDelta)
	if r.Headers == nil {
		s += " nil"
	}
	for _, h := range r.Headers {
		s += fmt.Sprintf(" %q=%s", h.Key, bs(h.Value))
	}
	return s + "}"
}

// readAll decodes batch with a Reader limited to limit bytes.
func readAll(batch []byte, limit int) (BatchHeader, []Record, error) {
	var r Reader
	r.SetMaxUncompressedSize(limit)
	if err := r.Reset(batch); err != nil {
		return BatchHeader{}, nil, err
	}
	var recs []Record
	for {
		rec, err := r.Next()
		if err != nil {
			if err == io.EOF {
				return r.Header(), recs, nil
			}
			return BatchHeader{}, nil, err
		}
		recs = append(recs, rec)
	}
}

// rawRecord is a record with every field under the test's control, to craft
// records that a Builder would never write.
type rawRecord struct {
	attributes     byte
	timestampDelta int64
	offsetDelta    uint64
	key, value     []byte // nil is written as length -1
	headers        []Header
	// extra bytes go at the end of the record, inside its length.
	extra []byte
	// lengthAdjust is added to the length field.
	lengthAdjust int64
}

func (r rawRecord) appendTo(dst []byte) []byte {
	var body []byte
	body = append(body, r.attributes)
	body = binary.AppendVarint(body, r.timestampDelta)
	body = binary.AppendUvarint(body, r.offsetDelta)
	body = appendBytes(body, r.key)
	body = appendBytes(body, r.value)
	body = binary.AppendUvarint(body, uint64(len(r.headers)))
	for _, h := range r.headers {
		body = binary.AppendUvarint(body, uint64(len(h.Key)))
		body = append(body, h.Key...)
		body = appendBytes(body, h.Value)
	}
	body = append(body, r.extra...)
	dst = binary.AppendVarint(dst, int64(len(body))+r.lengthAdjust)
	return append(dst, body...)
}

// denseRecords returns n valid raw records at timestamp delta 0.
func denseRecords(n int) []rawRecord {
	recs := make([]rawRecord, n)
	for i := range recs {
		recs[i] = rawRecord{offsetDelta: uint64(i), key: []byte(fmt.Sprintf("key-%d", i)), value: []byte("value")}
	}
	return recs
}

// section encodes raw records back to back.
func section(recs []rawRecord) []byte {
	var b []byte
	for _, r := range recs {
		b = r.appendTo(b)
	}
	return b
}

// rawBatch returns a batch with header h around records, which it compresses
// with h.Codec. The length and checksum are right whatever the contents.
func rawBatch(tb testing.TB, h BatchHeader, records []byte) []byte {
	tb.Helper()
	batch, err := appendCompressed(append([]byte(nil), zeroHeader[:]...), h.Codec, records)
	if err != nil {
		tb.Fatal(err)
	}
	putHeader(batch, &h)
	return batch
}

// plainHeader is the header of count records, all at timestamp 1000, without
// a producer.
func plainHeader(count uint32, codec Codec) BatchHeader {
	return BatchHeader{Count: count, FirstTimestamp: 1000, MaxTimestamp: 1000,
		ProducerID: NoProducerID, ProducerEpoch: NoProducerEpoch, BaseSequence: NoSequence, Codec: codec}
}

// words make values that compress like text does, neither trivially nor not
// at all.
var words = []string{"order", "user", "id", "amount", "currency", "EUR", "USD", "status", "shipped",
	"pending", "created", "item", "sku", "quantity", "price", "address", "city", "country", "true", "false"}

// textValue returns a JSON-ish value of n bytes from rng.
func textValue(rng *rand.Rand, n int) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for b.Len() < n {
		fmt.Fprintf(&b, "%q:%q,%q:%d,", words[rng.IntN(len(words))], words[rng.IntN(len(words))],
			words[rng.IntN(len(words))], rng.IntN(1_000_000))
	}
	return b.Bytes()[:n]
}

// randomBytes returns n incompressible bytes from rng.
func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// benchRecords returns records with valueSize-byte text values, a key and a
// trace header, as many as fit in a batch of about batchSize bytes (at least
// one).
func benchRecords(valueSize, batchSize int) []Record {
	rng := rand.New(rand.NewPCG(uint64(valueSize), uint64(batchSize)))
	var recs []Record
	var b Builder
	for len(recs) == 0 || b.EstimatedSize() < batchSize {
		r := Record{
			Key:       []byte(fmt.Sprintf("user-%04d", rng.IntN(10_000))),
			Value:     textValue(rng, valueSize),
			Headers:   []Header{{Key: "trace-id", Value: randomBytes(rng, 16)}},
			Timestamp: 1_700_000_000_000 + int64(len(recs)),
		}
		b.Append(r)
		if len(recs) > 0 && b.EstimatedSize() > batchSize {
			break
		}
		recs = append(recs, r)
	}
	return recs
}

// sizeName names a benchmark by a size in bytes.
func sizeName(n int) string {
	if n >= 1<<10 && n%(1<<10) == 0 {
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}
