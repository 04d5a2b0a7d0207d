package record

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Batch header layout; see the package doc. Part of the wire format; never
// change.
const (
	// HeaderSize is the size of a batch header: the bytes before the records
	// section.
	HeaderSize = 48

	// Version is the batch format version this package reads and writes.
	Version = 0

	offLength         = 0
	offCRC            = 4
	offVersion        = 8
	offAttributes     = 9
	offReserved1      = 10
	offCount          = 12
	offFirstTimestamp = 16
	offMaxTimestamp   = 24
	offProducerID     = 32
	offProducerEpoch  = 40
	offReserved2      = 42
	offBaseSequence   = 44

	// lengthSize is the size of the length field, which the length itself
	// does not count.
	lengthSize = 4
	// crcStart is where the checksummed bytes begin.
	crcStart = 8
)

// Values of the producer fields in a batch that has no producer.
const (
	NoProducerID    int64 = -1
	NoProducerEpoch int16 = -1
	NoSequence      int32 = -1
)

// minRecordSize is the smallest encoded record: a length, attributes, a
// timestamp delta, an offset delta, a key length, a value length and a header
// count, one byte each.
const minRecordSize = 7

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// BatchHeader holds the fields of a batch header that mean something to the
// layers above: everything but the length, the checksum, the version and the
// reserved fields.
type BatchHeader struct {
	// Count is the number of records, at least 1. The log entry that holds
	// the batch carries the same count.
	Count uint32
	// FirstTimestamp is the timestamp of the first record, in ms since the
	// Unix epoch; record timestamps are stored as deltas from it.
	FirstTimestamp int64
	// MaxTimestamp is the largest record timestamp in the batch, in ms.
	MaxTimestamp int64
	// ProducerID identifies an idempotent producer; NoProducerID if none.
	ProducerID int64
	// ProducerEpoch fences old instances of the producer; NoProducerEpoch if
	// there is no producer.
	ProducerEpoch int16
	// BaseSequence is the producer's sequence number of the first record;
	// NoSequence if there is no producer.
	BaseSequence int32
	// Codec is the compression codec of the records section.
	Codec Codec
}

// validProducer reports whether the producer fields are either all "none"
// (-1) or all non-negative.
func validProducer(id int64, epoch int16, sequence int32) bool {
	if id == NoProducerID {
		return epoch == NoProducerEpoch && sequence == NoSequence
	}
	return id >= 0 && epoch >= 0 && sequence >= 0
}

// putHeader writes h into the first HeaderSize bytes of batch, whose records
// section is already in place after them, then the length and the checksum.
func putHeader(batch []byte, h *BatchHeader) {
	b := batch[:HeaderSize]
	binary.BigEndian.PutUint32(b[offLength:], uint32(len(batch)-lengthSize))
	b[offVersion] = Version
	b[offAttributes] = byte(h.Codec) & codecMask
	binary.BigEndian.PutUint16(b[offReserved1:], 0)
	binary.BigEndian.PutUint32(b[offCount:], h.Count)
	binary.BigEndian.PutUint64(b[offFirstTimestamp:], uint64(h.FirstTimestamp))
	binary.BigEndian.PutUint64(b[offMaxTimestamp:], uint64(h.MaxTimestamp))
	binary.BigEndian.PutUint64(b[offProducerID:], uint64(h.ProducerID))
	binary.BigEndian.PutUint16(b[offProducerEpoch:], uint16(h.ProducerEpoch))
	binary.BigEndian.PutUint16(b[offReserved2:], 0)
	binary.BigEndian.PutUint32(b[offBaseSequence:], uint32(h.BaseSequence))
	binary.BigEndian.PutUint32(b[offCRC:], crc32.Checksum(batch[crcStart:], crcTable))
}

// ParseHeader checks that b is exactly one well-formed batch and returns its
// header. It reads only the header and checksums the batch; it does not
// decompress or decode the records (a Reader does). The partition layer calls
// it on every produce.
//
// The checks run in this order: the length (b must be at least HeaderSize
// bytes and the length field must account for exactly all of b), the
// version, the checksum, the attributes and codec, the reserved fields, the
// count (at least 1, at most the batch length, and for uncompressed batches
// no more records than the records section can hold), the timestamps (first
// <= max) and the producer fields (all -1 or all non-negative).
//
// Errors wrap ErrCorrupt, except ErrUnsupportedVersion and ErrUnknownCodec.
// ParseHeader never allocates unless it fails.
func ParseHeader(b []byte) (BatchHeader, error) {
	return parseHeader(b, true)
}

// ParseHeaderVerified is ParseHeader without the checksum, for a batch
// whose bytes were already checked (the partition's FSM reads the header of
// every committed batch, which its log verified when it stored it). Every
// other check still applies.
func ParseHeaderVerified(b []byte) (BatchHeader, error) {
	return parseHeader(b, false)
}

// parseHeader is ParseHeader, skipping the checksum unless checkCRC.
func parseHeader(b []byte, checkCRC bool) (BatchHeader, error) {
	if len(b) < HeaderSize {
		return BatchHeader{}, corruptf("short batch: %d bytes, a header is %d", len(b), HeaderSize)
	}
	length := binary.BigEndian.Uint32(b[offLength:])
	if uint64(length)+lengthSize != uint64(len(b)) {
		return BatchHeader{}, corruptf("length field says %d bytes follow it, the buffer holds %d", length, len(b)-lengthSize)
	}
	if v := b[offVersion]; v != Version {
		return BatchHeader{}, fmt.Errorf("%w: version %d, want %d", ErrUnsupportedVersion, v, Version)
	}
	if checkCRC {
		if stored, computed := binary.BigEndian.Uint32(b[offCRC:]), crc32.Checksum(b[crcStart:], crcTable); stored != computed {
			return BatchHeader{}, corruptf("checksum mismatch: stored %08x, computed %08x", stored, computed)
		}
	}
	attributes := b[offAttributes]
	codec := Codec(attributes & codecMask)
	if !codec.known() {
		return BatchHeader{}, fmt.Errorf("%w: %d in batch attributes", ErrUnknownCodec, uint8(codec))
	}
	if attributes&^codecMask != 0 {
		return BatchHeader{}, corruptf("unknown attribute bits %#02x", attributes&^codecMask)
	}
	if r1, r2 := binary.BigEndian.Uint16(b[offReserved1:]), binary.BigEndian.Uint16(b[offReserved2:]); r1 != 0 || r2 != 0 {
		return BatchHeader{}, corruptf("reserved fields are %#04x and %#04x, want 0", r1, r2)
	}
	h := BatchHeader{
		Count:          binary.BigEndian.Uint32(b[offCount:]),
		FirstTimestamp: int64(binary.BigEndian.Uint64(b[offFirstTimestamp:])),
		MaxTimestamp:   int64(binary.BigEndian.Uint64(b[offMaxTimestamp:])),
		ProducerID:     int64(binary.BigEndian.Uint64(b[offProducerID:])),
		ProducerEpoch:  int16(binary.BigEndian.Uint16(b[offProducerEpoch:])),
		BaseSequence:   int32(binary.BigEndian.Uint32(b[offBaseSequence:])),
		Codec:          codec,
	}
	switch recordsLen := uint64(len(b) - HeaderSize); {
	case h.Count == 0:
		return BatchHeader{}, corruptf("record count is 0")
	case h.Count > length:
		return BatchHeader{}, corruptf("record count %d exceeds the batch length %d", h.Count, length)
	case codec == CodecNone && uint64(h.Count)*minRecordSize > recordsLen:
		return BatchHeader{}, corruptf("record count %d cannot fit in %d bytes of records", h.Count, recordsLen)
	}
	if h.FirstTimestamp > h.MaxTimestamp {
		return BatchHeader{}, corruptf("first timestamp %d after max timestamp %d", h.FirstTimestamp, h.MaxTimestamp)
	}
	if !validProducer(h.ProducerID, h.ProducerEpoch, h.BaseSequence) {
		return BatchHeader{}, corruptf("producer id %d, epoch %d, base sequence %d: want all -1 or all >= 0",
			h.ProducerID, h.ProducerEpoch, h.BaseSequence)
	}
	return h, nil
}
