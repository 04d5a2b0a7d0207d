package record

import (
	"encoding/binary"
	"fmt"
)

// Builder builds one batch at a time on the producer side: Append records,
// Build the batch, send it, Reset and start again. Its buffers survive Reset,
// so a Builder reused for batches of similar size stops allocating.
//
// The zero Builder is ready to use and builds uncompressed batches without a
// producer. A Builder is not safe for concurrent use.
type Builder struct {
	codec Codec

	hasProducer   bool
	producerID    int64
	producerEpoch int16
	baseSequence  int32

	count          int
	firstTimestamp int64
	maxTimestamp   int64

	// buf holds HeaderSize bytes reserved for the header, then the records
	// section, uncompressed. An uncompressed batch is built in place here.
	buf []byte
	// out holds the last compressed batch Build made.
	out []byte
}

var zeroHeader [HeaderSize]byte

// NewBuilder returns a Builder whose batches compress their records with
// codec. An unknown codec makes Build fail with ErrUnknownCodec.
func NewBuilder(codec Codec) *Builder {
	return &Builder{codec: codec}
}

// Codec returns the codec the builder compresses with.
func (b *Builder) Codec() Codec { return b.codec }

// SetProducer marks the batch as written by an idempotent producer: its id
// and epoch, and the sequence number of the batch's first record. Either all
// three are -1 (no producer, the default) or all are non-negative; anything
// else makes Build fail with ErrInvalidProducer. Reset clears them.
func (b *Builder) SetProducer(id int64, epoch int16, baseSequence int32) {
	b.hasProducer = true
	b.producerID = id
	b.producerEpoch = epoch
	b.baseSequence = baseSequence
}

// Append adds r as the batch's next record. The first record's timestamp
// becomes the batch's first timestamp; later records may be older or newer.
// r's OffsetDelta is ignored: a record's offset delta is its position. Append
// copies r's bytes; the caller may reuse them when it returns.
func (b *Builder) Append(r Record) {
	if len(b.buf) == 0 {
		b.buf = append(b.buf, zeroHeader[:]...)
	}
	if b.count == 0 {
		b.firstTimestamp = r.Timestamp
		b.maxTimestamp = r.Timestamp
	} else if r.Timestamp > b.maxTimestamp {
		b.maxTimestamp = r.Timestamp
	}
	// NB: the delta wraps for timestamps further apart than an int64 can
	// say; the reader's addition wraps back, so the timestamp survives.
	timestampDelta := r.Timestamp - b.firstTimestamp
	offsetDelta := uint64(b.count)

	size := 1 /* attributes */ + varintLen(timestampDelta) + uvarintLen(offsetDelta) +
		bytesLen(r.Key) + bytesLen(r.Value) + uvarintLen(uint64(len(r.Headers)))
	for _, h := range r.Headers {
		size += uvarintLen(uint64(len(h.Key))) + len(h.Key) + bytesLen(h.Value)
	}

	buf := binary.AppendVarint(b.buf, int64(size))
	buf = append(buf, 0 /* attributes */)
	buf = binary.AppendVarint(buf, timestampDelta)
	buf = binary.AppendUvarint(buf, offsetDelta)
	buf = appendBytes(buf, r.Key)
	buf = appendBytes(buf, r.Value)
	buf = binary.AppendUvarint(buf, uint64(len(r.Headers)))
	for _, h := range r.Headers {
		buf = binary.AppendUvarint(buf, uint64(len(h.Key)))
		buf = append(buf, h.Key...)
		buf = appendBytes(buf, h.Value)
	}
	b.buf = buf
	b.count++
}

// Len returns the number of records appended since the last Reset.
func (b *Builder) Len() int { return b.count }

// EstimatedSize returns the size the batch would have uncompressed: the
// header and the records appended so far. A client compares it with its
// batch-size limit; compression only makes the batch smaller (or a few bytes
// larger for incompressible records).
func (b *Builder) EstimatedSize() int { return max(len(b.buf), HeaderSize) }

// Build returns the batch: the header, then the records section compressed
// with the builder's codec. It fails with ErrEmpty if there are no records,
// ErrTooLarge if the records section exceeds DefaultMaxUncompressedSize
// (readers would refuse it), ErrUnknownCodec or ErrInvalidProducer.
//
// NB: the returned slice belongs to the Builder and is valid until the next
// call to Append, Build or Reset. Use AppendTo for a batch that must outlive
// them (one in flight while the Builder fills the next).
//
// If compression would leave fewer bytes than records (the batch's length
// must be at least its count; see ParseHeader), the batch is stored
// uncompressed and its header says CodecNone.
func (b *Builder) Build() ([]byte, error) {
	h, err := b.header()
	if err != nil {
		return nil, err
	}
	// The results are clipped so that a caller appending to them cannot
	// write into the builder's buffers.
	if h.Codec == CodecNone {
		putHeader(b.buf, &h)
		return b.buf[:len(b.buf):len(b.buf)], nil
	}
	b.out, err = b.appendBatch(b.out[:0], &h)
	if err != nil {
		return nil, err
	}
	return b.out[:len(b.out):len(b.out)], nil
}

// AppendTo appends the batch that Build would return to dst and returns the
// extended slice; it allocates only when dst lacks capacity. It fails as
// Build does, leaving dst unchanged.
func (b *Builder) AppendTo(dst []byte) ([]byte, error) {
	h, err := b.header()
	if err != nil {
		return dst, err
	}
	return b.appendBatch(dst, &h)
}

// Reset empties the builder for the next batch: no records and no producer.
// It keeps the codec and the buffers.
func (b *Builder) Reset() {
	b.hasProducer = false
	b.producerID, b.producerEpoch, b.baseSequence = 0, 0, 0
	b.count = 0
	b.firstTimestamp, b.maxTimestamp = 0, 0
	b.buf = b.buf[:0]
	b.out = b.out[:0]
}

// header checks the builder's state and returns the batch's header.
func (b *Builder) header() (BatchHeader, error) {
	if b.count == 0 {
		return BatchHeader{}, ErrEmpty
	}
	if !b.codec.known() {
		return BatchHeader{}, fmt.Errorf("%w: %d", ErrUnknownCodec, uint8(b.codec))
	}
	if n := len(b.buf) - HeaderSize; n > DefaultMaxUncompressedSize {
		return BatchHeader{}, fmt.Errorf("%w: %d records take %d bytes, limit %d",
			ErrTooLarge, b.count, n, DefaultMaxUncompressedSize)
	}
	h := BatchHeader{
		Count:          uint32(b.count), // < DefaultMaxUncompressedSize/minRecordSize
		FirstTimestamp: b.firstTimestamp,
		MaxTimestamp:   b.maxTimestamp,
		ProducerID:     NoProducerID,
		ProducerEpoch:  NoProducerEpoch,
		BaseSequence:   NoSequence,
		Codec:          b.codec,
	}
	if b.hasProducer {
		if !validProducer(b.producerID, b.producerEpoch, b.baseSequence) {
			return BatchHeader{}, fmt.Errorf("%w: id %d, epoch %d, base sequence %d",
				ErrInvalidProducer, b.producerID, b.producerEpoch, b.baseSequence)
		}
		h.ProducerID, h.ProducerEpoch, h.BaseSequence = b.producerID, b.producerEpoch, b.baseSequence
	}
	return h, nil
}

// appendBatch appends the whole batch with header h to dst, compressing the
// records with h.Codec; on error it returns dst unchanged.
func (b *Builder) appendBatch(dst []byte, h *BatchHeader) ([]byte, error) {
	start := len(dst)
	records := b.buf[HeaderSize:]
	dst = append(dst, zeroHeader[:]...)
	dst, err := appendCompressed(dst, h.Codec, records)
	if err != nil {
		return dst[:start], err
	}
	// NB: ParseHeader requires count <= length so that garbage cannot claim
	// billions of records; a batch of tiny records that compresses to less
	// than a byte each goes uncompressed instead, which always satisfies it.
	if h.Codec != CodecNone && uint64(len(dst)-start-lengthSize) < uint64(h.Count) {
		h.Codec = CodecNone
		dst = append(dst[:start+HeaderSize], records...)
	}
	putHeader(dst[start:], h)
	return dst, nil
}
