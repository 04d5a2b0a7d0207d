package record

import (
	"fmt"
	"io"
	"sync"
)

// DefaultMaxUncompressedSize is the default limit on the size of a batch's
// records section after decompression, and the largest records section that
// Builder.Build produces.
const DefaultMaxUncompressedSize = 64 << 20

// maxInternedKeys bounds the header keys a Reader remembers, so that a
// stream of distinct keys cannot grow it without bound.
const maxInternedKeys = 256

// Reader decodes the records of one batch at a time, in order:
//
//	r, err := record.NewReader(batch)
//	for {
//		rec, err := r.Next()
//		if err == io.EOF {
//			break
//		}
//		...
//	}
//
// Reset points a Reader at the next batch and reuses its buffers, so a
// Reader kept for many batches decodes without allocating, except for the
// strings of header keys beyond the first 256 distinct ones it sees.
//
// A Reader checks everything: the header as ParseHeader does, that the
// records decompress within MaxUncompressedSize, and that they are exactly
// Count well-formed records with dense offset deltas, the first at the
// batch's first timestamp, none after its max timestamp and one at it, with
// no bytes left over. Any mismatch is an error wrapping ErrCorrupt that says
// which record and where in the records section. NB: Next hands out the
// records before the one that fails; a consumer that must not act on part of
// a bad batch checks it with Validate first (the broker does on produce).
//
// The zero Reader holds no batch: Next returns io.EOF. A Reader is not safe
// for concurrent use.
type Reader struct {
	maxUncompressedSize int

	header  BatchHeader
	records []byte // the uncompressed records section
	pos     int    // where the next record starts in records
	next    uint32 // offset delta of the next record
	// maxTimestamp is the largest record timestamp so far.
	maxTimestamp int64
	// err is the first decoding error; once set, Next returns it.
	err error

	// buf is the decompression buffer, reused across batches.
	buf []byte
	// headers is a slab the records' headers are cut from; it is reused
	// after Reset.
	headers []Header
	// keys interns header keys, which repeat from record to record.
	keys map[string]string
}

// NewReader returns a Reader positioned before the first record of batch b,
// with the default MaxUncompressedSize. It fails as Reset does.
func NewReader(b []byte) (*Reader, error) {
	r := new(Reader)
	if err := r.Reset(b); err != nil {
		return nil, err
	}
	return r, nil
}

// SetMaxUncompressedSize sets the largest records section, after
// decompression, that the Reader accepts from the next Reset on; n <= 0 means
// DefaultMaxUncompressedSize. It bounds the memory a batch can make the
// Reader allocate: the size a compressed section declares is checked before
// anything is allocated, and decompression stops at the limit. NB: a zstd
// frame that does not declare its size is stopped at the limit rounded up to
// a power of two and at least 8 MiB (see zstdDecoderMemory), then refused.
func (r *Reader) SetMaxUncompressedSize(n int) { r.maxUncompressedSize = n }

// MaxUncompressedSize returns the limit set by SetMaxUncompressedSize, or
// the default.
func (r *Reader) MaxUncompressedSize() int {
	if r.maxUncompressedSize <= 0 {
		return DefaultMaxUncompressedSize
	}
	return r.maxUncompressedSize
}

// Reset points the Reader at batch b: it checks the header (as ParseHeader
// does) and decompresses the records section. Records returned before are
// invalid from now on, because their bytes and headers may be overwritten.
// A section larger than MaxUncompressedSize fails with ErrTooLarge. After a
// failed Reset, Next returns the same error.
func (r *Reader) Reset(b []byte) error {
	return r.resetBatch(b, true)
}

// ResetVerified is Reset for a batch whose bytes the caller has already
// verified with a checksum of its own that covers the whole batch (for
// example, the CRC32-C of the log frame a fetch response carries it in): it
// skips only the batch's CRC, and checks everything else that Reset does.
// NB: a batch whose stored CRC is wrong but whose bytes are otherwise
// well-formed is accepted; use it only when the bytes are known to be the
// ones the producer's checksum was computed over.
func (r *Reader) ResetVerified(b []byte) error {
	return r.resetBatch(b, false)
}

func (r *Reader) resetBatch(b []byte, checkCRC bool) error {
	r.header = BatchHeader{}
	r.records, r.pos, r.next = nil, 0, 0
	r.headers = r.headers[:0]
	r.err = r.reset(b, checkCRC)
	return r.err
}

func (r *Reader) reset(b []byte, checkCRC bool) error {
	h, err := parseHeader(b, checkCRC)
	if err != nil {
		return err
	}
	limit := r.MaxUncompressedSize()
	if uint64(h.Count)*minRecordSize > uint64(limit) {
		return fmt.Errorf("%w: %d records need at least %d bytes, limit %d",
			ErrTooLarge, h.Count, uint64(h.Count)*minRecordSize, limit)
	}
	section := b[HeaderSize:]
	if h.Codec == CodecNone {
		if len(section) > limit {
			return fmt.Errorf("%w: records take %d bytes, limit %d", ErrTooLarge, len(section), limit)
		}
	} else {
		out, err := decompress(r.buf, h.Codec, section, limit)
		if err != nil {
			return err
		}
		r.buf = out
		section = out
	}
	if uint64(h.Count)*minRecordSize > uint64(len(section)) {
		return corruptf("record count %d cannot fit in %d bytes of %s records", h.Count, len(section), h.Codec)
	}
	r.header = h
	r.records = section
	r.maxTimestamp = h.FirstTimestamp
	return nil
}

// Header returns the header of the current batch (the zero BatchHeader
// before a successful Reset).
func (r *Reader) Header() BatchHeader { return r.header }

// Next returns the next record, or io.EOF after the last one. Its Key, Value
// and header values alias the batch or the Reader's buffer, and its Headers
// the Reader's slab, all valid until the next Reset. After an error, Next
// keeps returning it.
func (r *Reader) Next() (Record, error) {
	var rec Record
	if err := r.decode(&rec); err != nil {
		return Record{}, err
	}
	return rec, nil
}

// decode decodes the next record into rec, or only checks it if rec is nil.
func (r *Reader) decode(rec *Record) error {
	if r.err != nil {
		return r.err
	}
	if r.next == r.header.Count {
		return io.EOF
	}
	if err := r.parse(rec); err != nil {
		r.err = err
		return err
	}
	return nil
}

// corruptAt returns an error wrapping ErrCorrupt about the record that starts
// at pos.
func (r *Reader) corruptAt(pos int, format string, args ...any) error {
	return fmt.Errorf("%w: record %d of %d at byte %d of the records section: %s",
		ErrCorrupt, r.next, r.header.Count, pos, fmt.Sprintf(format, args...))
}

// parse decodes the record at r.pos; see the package doc for its layout.
func (r *Reader) parse(rec *Record) error {
	start := r.pos
	c := cursor{b: r.records, pos: start}
	if c.remaining() == 0 {
		return r.corruptAt(start, "the records section ends after %d records", r.next)
	}
	length, ok := c.varint()
	if !ok {
		return r.corruptAt(start, "bad length varint")
	}
	if length < minRecordSize-1 || length > int64(c.remaining()) {
		return r.corruptAt(start, "length %d, %d bytes left in the section", length, c.remaining())
	}
	end := c.pos + int(length)
	c.b = r.records[:end] // the fields must end exactly at end

	if attributes := c.b[c.pos]; attributes != 0 {
		return r.corruptAt(start, "attributes %#02x, want 0", attributes)
	}
	c.pos++
	timestampDelta, ok := c.varint()
	if !ok {
		return r.corruptAt(start, "bad timestamp delta")
	}
	offsetDelta, ok := c.uvarint()
	if !ok {
		return r.corruptAt(start, "bad offset delta")
	}
	if offsetDelta != uint64(r.next) {
		return r.corruptAt(start, "offset delta %d, want %d", offsetDelta, r.next)
	}
	at := c.pos // where the field being read starts, for errors
	key, ok := nullableBytes(&c)
	if !ok {
		return r.corruptAt(start, "bad key at byte %d", at)
	}
	at = c.pos
	value, ok := nullableBytes(&c)
	if !ok {
		return r.corruptAt(start, "bad value at byte %d", at)
	}
	at = c.pos
	headerCount, ok := c.uvarint()
	// Each header takes at least two bytes: a key length and a value length.
	if !ok || headerCount > uint64(c.remaining()/2) {
		return r.corruptAt(start, "bad header count at byte %d", at)
	}
	// NB: the slab grows as headers are read, not by the declared count, so
	// a record cannot make the Reader allocate for headers it does not hold.
	var headers []Header
	for i := range headerCount {
		at = c.pos
		n, ok := c.uvarint()
		if !ok || n > uint64(c.remaining()) {
			return r.corruptAt(start, "header %d: bad key at byte %d", i, at)
		}
		k, _ := c.bytes(int(n))
		at = c.pos
		v, ok := nullableBytes(&c)
		if !ok {
			return r.corruptAt(start, "header %d: bad value at byte %d", i, at)
		}
		if rec != nil {
			r.headers = append(r.headers, Header{Key: r.intern(k), Value: v})
		}
	}
	if rec != nil && headerCount > 0 {
		n := len(r.headers)
		headers = r.headers[n-int(headerCount) : n : n]
	}
	if c.pos != end {
		return r.corruptAt(start, "%d bytes left over after the fields", end-c.pos)
	}

	// NB: the addition wraps as the builder's subtraction did.
	timestamp := r.header.FirstTimestamp + timestampDelta
	if r.next == 0 && timestampDelta != 0 {
		return r.corruptAt(start, "the first record's timestamp delta is %d, want 0", timestampDelta)
	}
	if timestamp > r.header.MaxTimestamp {
		return r.corruptAt(start, "timestamp %d after the batch's max timestamp %d", timestamp, r.header.MaxTimestamp)
	}
	r.maxTimestamp = max(r.maxTimestamp, timestamp)

	if r.next == r.header.Count-1 {
		if end != len(r.records) {
			return r.corruptAt(start, "%d bytes left over after the last record", len(r.records)-end)
		}
		if r.maxTimestamp != r.header.MaxTimestamp {
			return r.corruptAt(start, "largest record timestamp is %d, the batch's max timestamp %d",
				r.maxTimestamp, r.header.MaxTimestamp)
		}
	}
	if rec != nil {
		*rec = Record{
			Key:         key,
			Value:       value,
			Headers:     headers,
			Timestamp:   timestamp,
			OffsetDelta: r.next,
		}
	}
	r.pos = end
	r.next++
	return nil
}

// nullableBytes reads a varint length (-1 for nil) and that many bytes.
func nullableBytes(c *cursor) ([]byte, bool) {
	n, ok := c.varint()
	switch {
	case !ok || n < -1 || n > int64(c.remaining()):
		return nil, false
	case n == -1:
		return nil, true
	}
	return c.bytes(int(n))
}

// intern returns k as a string, reusing the string of an equal key seen
// before.
func (r *Reader) intern(k []byte) string {
	if s, ok := r.keys[string(k)]; ok { // NB: this lookup does not allocate
		return s
	}
	s := string(k)
	if r.keys == nil {
		r.keys = make(map[string]string)
	}
	if len(r.keys) < maxInternedKeys {
		r.keys[s] = s
	}
	return s
}

// Decode decodes the whole batch b, with the default MaxUncompressedSize,
// and returns its header and records. The records alias b, or a buffer of
// their own if b is compressed. It checks all that a Reader does and returns
// either every record or an error. A Reader allocates less.
func Decode(b []byte) (BatchHeader, []Record, error) {
	var r Reader
	if err := r.Reset(b); err != nil {
		return BatchHeader{}, nil, err
	}
	// The count is checked against the section's size but not yet against
	// its records, so it only hints at the capacity.
	records := make([]Record, 0, min(r.header.Count, 1024))
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return r.header, records, nil
		}
		if err != nil {
			return BatchHeader{}, nil, err
		}
		records = append(records, rec)
	}
}

// validators holds Readers for Validate, so that it reuses their
// decompression buffers.
var validators = sync.Pool{New: func() any { return new(Reader) }}

// Validate checks the whole batch b as a Reader does, decompressing at most
// maxUncompressedSize bytes (<= 0 means DefaultMaxUncompressedSize), without
// building the records, and returns its header. The broker calls it on
// produce so that it never stores a batch consumers cannot read. In steady
// state it does not allocate.
func Validate(b []byte, maxUncompressedSize int) (BatchHeader, error) {
	r := validators.Get().(*Reader)
	defer func() {
		r.records = nil // do not keep b reachable from the pool
		validators.Put(r)
	}()
	r.SetMaxUncompressedSize(maxUncompressedSize)
	if err := r.Reset(b); err != nil {
		return BatchHeader{}, err
	}
	for {
		switch err := r.decode(nil); err {
		case nil:
		case io.EOF:
			return r.header, nil
		default:
			return BatchHeader{}, err
		}
	}
}
