package client

import (
	"context"
	"encoding/binary"
	"hash/crc32"
	"time"

	"weir/protocol/record"
)

// batch is one partition's record batch, from its first record to its
// acknowledgement. Produce callers fill it under the partition's lock; once
// sealed, only the partition's loop touches it.
type batch struct {
	records []pendingRecord
	bytes   int64     // charged to the producer's buffer budget
	created time.Time // when its first record came: linger and DeliveryTimeout count from here

	// Set when sealed.
	data    []byte // the encoded batch
	sealErr error  // encoding failed: the records fail with it

	// Owned by the partition loop.
	seqAssigned bool  // data carries this batch's producer id and sequence
	baseSeq     int32 // the sequence number of its first record
	sends       int   // times sent; also tells a result which send it answers
	retries     int   // retriable failures so far
	// inFlight: sent, and its answer not yet handled; sentAt and sentTo
	// say when and to which address it was last sent; cancelSend gives up
	// waiting for that answer (the batch is then retried).
	inFlight   bool
	sentAt     time.Time
	sentTo     string
	cancelSend context.CancelFunc
	// predecessorInFlight records that an earlier batch of the partition
	// was unacknowledged when this one was last sent. The broker handles
	// pipelined requests concurrently, so this one may have reached the
	// partition first and been refused with OutOfOrderSequence although
	// nothing is wrong: such a refusal is retried, not failed.
	predecessorInFlight bool

	acked      bool
	baseOffset int64
	failed     bool
	err        error
	// pendingErr is a final error decided while other batches were in
	// flight; it takes effect once they are back (see partProducer.rewind).
	pendingErr error
	// outcomeUnknown: the batch may have been written (it was sent and no
	// answer came back).
	outcomeUnknown bool
}

// pendingRecord is a record waiting in a batch, with its promise.
type pendingRecord struct {
	r       *Record
	promise func(*Record, error)
	size    int64
}

// Offsets of the producer fields in a batch header (see
// protocol/record/doc.go). Part of the wire format; never change.
const (
	batchCRCOffset           = 4
	batchCRCStart            = 8
	batchProducerIDOffset    = 32
	batchProducerEpochOffset = 40
	batchBaseSequenceOffset  = 44
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// setBatchProducer writes an idempotent producer's id, epoch and base
// sequence into an encoded batch and recomputes its checksum. The batch is
// encoded once when sealed, and its sequence is only known when it is first
// sent (and changes if the partition has to start over with a new producer
// id), so the header is patched in place rather than rebuilt.
func setBatchProducer(data []byte, id int64, epoch int16, baseSequence int32) {
	binary.BigEndian.PutUint64(data[batchProducerIDOffset:], uint64(id))
	binary.BigEndian.PutUint16(data[batchProducerEpochOffset:], uint16(epoch))
	binary.BigEndian.PutUint32(data[batchBaseSequenceOffset:], uint32(baseSequence))
	binary.BigEndian.PutUint32(data[batchCRCOffset:], crc32.Checksum(data[batchCRCStart:], castagnoli))
}

// toBatchRecord converts a Record for a record.Builder.
func toBatchRecord(r *Record) record.Record {
	return record.Record{Key: r.Key, Value: r.Value, Headers: r.Headers, Timestamp: r.Timestamp.UnixMilli()}
}
