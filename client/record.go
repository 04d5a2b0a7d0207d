package client

import (
	"time"

	"weir/protocol/record"
)

// Header is a record header: an application-defined key and value. It is the
// batch format's own type, so headers pass through without conversion.
type Header = record.Header

// Codec is a compression codec for produced batches (see Compression).
type Codec = record.Codec

// Compression codecs, as the batch format numbers them.
const (
	CodecNone   = record.CodecNone
	CodecZstd   = record.CodecZstd
	CodecLZ4    = record.CodecLZ4
	CodecSnappy = record.CodecSnappy
)

// Record is one record to produce or one consumed.
//
// To produce, set Topic, Key, Value, Headers and optionally Timestamp (zero
// means now) and Partition (used by the explicit partitioner only). The
// producer sets Partition and Offset before calling the record's promise.
// The producer keeps the record, and its Key and Value, until the promise is
// called: do not modify them before.
//
// A consumed record's Key, Value and header values are its own: no other
// record shares their bytes, and the client never writes to them or reuses
// them, so they stay valid as long as the record is referenced, unless
// the record is handed back with Consumer.Release (after which they may be
// overwritten). NB: they may alias the fetch response the record came in
// (records of uncompressed batches do), so holding any record of a
// response keeps that whole response (up to FetchMaxBytes) in memory; copy
// the bytes of records kept for long.
type Record struct {
	Topic     string
	Partition int32
	// Offset is the record's position in its partition: set by the producer
	// when the record is acknowledged (-1 with AcksNone), and by the
	// consumer.
	Offset  int64
	Key     []byte // nil and empty are distinct
	Value   []byte // nil is a tombstone
	Headers []Header
	// Timestamp is kept at millisecond precision.
	Timestamp time.Time

	// buf is the fetch response buffer a consumed record's bytes alias,
	// until the record is released (see Consumer.Release).
	buf *fetchBuffer
}

// recordOverhead is what a record costs on top of its bytes, in the
// producer's buffer and the consumer's prefetch accounting: its varint
// fields on the wire, and roughly the Record struct in memory.
const recordOverhead = 64

// size estimates the bytes r takes encoded in a batch (and so in the
// producer's buffer): its bytes and a fixed overhead for the varints.
func (r *Record) size() int {
	n := recordOverhead + len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += 10 + len(h.Key) + len(h.Value)
	}
	return n
}
