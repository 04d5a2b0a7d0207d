package client

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"time"

	"weir/protocol/record"
)

// A fetch response's records are whole log frames, exactly as the
// partition's log stores them (see log/doc.go, the authority, and
// PROTOCOL.md, "Fetched records"). The client decodes the header itself
// rather than import the log package. All integers are big-endian.
//
//	frame (48-byte header + payload), part of the wire format; never change:
//	+--------+--------+---------+------+----------+-------+-------+-------+-------------+-----------+---------+
//	| length | crc    | version | type | reserved | count | index | term  | base offset | timestamp | payload |
//	| u32    | u32    | u8 = 0  | u8   | u16      | u32   | u64   | u64   | u64         | i64 (ms)  | ...     |
//	+--------+--------+---------+------+----------+-------+-------+-------+-------------+-----------+---------+
//	 0        4        8         9      10         12      16      24      32            40          48
//	length counts the bytes after the length field: 44 + len(payload).
//	crc is the CRC32-C (Castagnoli) of bytes [8, 4+length): header and payload.
//	type is 0 for data (the payload is one record batch), 1 for control
//	(the log's own entries, with no records: skipped).
const (
	frameHeaderSize   = 48
	frameLengthSize   = 4
	frameCRCOffset    = 4
	frameCRCStart     = 8
	frameVersion      = 0
	frameTypeData     = 0
	frameTypeControl  = 1
	frameVersionOff   = 8
	frameTypeOff      = 9
	frameCountOff     = 12
	frameBaseOffOff   = 32
	frameMinLengthFld = frameHeaderSize - frameLengthSize
)

// logFrame is a decoded frame header with its payload.
type logFrame struct {
	typ        uint8
	count      uint32
	baseOffset int64
	payload    []byte // aliases the response
}

// nextFrame decodes the frame at the start of b and returns it with the
// bytes after it, checking its CRC. Errors wrap ErrCorruptFrame.
func nextFrame(b []byte) (logFrame, []byte, error) {
	return readFrame(b, true)
}

// readFrame is nextFrame, checking the frame's CRC only if checkCRC:
// scanFrames walks the frames' headers alone, decode checks them whole.
func readFrame(b []byte, checkCRC bool) (logFrame, []byte, error) {
	if len(b) < frameHeaderSize {
		return logFrame{}, nil, fmt.Errorf("%w: %d bytes left, a frame header is %d", ErrCorruptFrame, len(b), frameHeaderSize)
	}
	length := binary.BigEndian.Uint32(b)
	if length < frameMinLengthFld || uint64(length)+frameLengthSize > uint64(len(b)) {
		return logFrame{}, nil, fmt.Errorf("%w: frame length %d with %d bytes left", ErrCorruptFrame, length, len(b)-frameLengthSize)
	}
	frame := b[:frameLengthSize+int(length)]
	if v := frame[frameVersionOff]; v != frameVersion {
		return logFrame{}, nil, fmt.Errorf("%w: frame version %d", ErrCorruptFrame, v)
	}
	if checkCRC {
		if stored, computed := binary.BigEndian.Uint32(frame[frameCRCOffset:]), crc32.Checksum(frame[frameCRCStart:], castagnoli); stored != computed {
			return logFrame{}, nil, fmt.Errorf("%w: checksum mismatch: stored %08x, computed %08x", ErrCorruptFrame, stored, computed)
		}
	}
	f := logFrame{
		typ:        frame[frameTypeOff],
		count:      binary.BigEndian.Uint32(frame[frameCountOff:]),
		baseOffset: int64(binary.BigEndian.Uint64(frame[frameBaseOffOff:])),
		payload:    frame[frameHeaderSize:],
	}
	if f.typ != frameTypeData && f.typ != frameTypeControl {
		return logFrame{}, nil, fmt.Errorf("%w: frame type %d", ErrCorruptFrame, f.typ)
	}
	return f, b[len(frame):], nil
}

// scanFrames walks the frame headers of data (a fetch response
// partition's records, fetched from offset from) and returns the offset to
// fetch next: what decode returns unless a frame is damaged inside (its
// CRC, or a batch inside it, which only decode checks). It also returns
// about what the records at or after from will count against
// MaxPrefetchBytes (their frames' bytes plus recordOverhead each). It
// reads only the 48-byte headers, so it is cheap whatever the response's
// size: the fetch loop calls it to send the next fetch before decoding
// this one (see fetchLoop.handle), and the checksums, which read every
// byte, are left to decode, once the next fetch is on its way.
func scanFrames(data []byte, from int64) (next, size int64, err error) {
	next = from
	for len(data) > 0 {
		var f logFrame
		f, data, err = readFrame(data, false)
		if err != nil {
			return next, size, err
		}
		end := f.baseOffset + int64(f.count)
		if f.typ == frameTypeData && end > from {
			size += int64(len(f.payload)) + int64(f.count)*recordOverhead
		}
		next = max(next, end)
	}
	return next, size, nil
}

// frameDecoder turns fetched frames into Records. One per fetch loop: it
// reuses its batch reader.
//
// The records of an uncompressed batch alias the fetch response: their
// Key, Value and header values point into it. That is safe because a
// response's buffer is not written to again while any record cut from it
// is unreleased: each record holds a reference to it (Record.buf, counted
// in its fetchBuffer), dropped only by Consumer.Release or when the
// consumer discards a record nobody saw; the buffer lives as long as any
// record cut from it. The records of a compressed batch are decompressed
// into the reader's buffer, reused from batch to batch, so their bytes
// are copied into arena blocks (and hold no reference).
type frameDecoder struct {
	reader  record.Reader
	arena   arena
	headers []Header // a block records' headers are cut from
}

// headerChunk is how many headers a block of frameDecoder.headers holds.
const headerChunk = 256

// decode returns the records at or after from in data (a fetch response
// partition's records), in offset order, and the offset to fetch next. On
// a corrupt frame or batch it returns the records before it with the
// error. The records alias data unless their batch was compressed: data
// must not be modified or reused afterwards.
func (d *frameDecoder) decode(topic string, partition int32, data []byte, from int64) (recs []*Record, next int64, err error) {
	recs, _, next, err = d.decodeSized(topic, partition, data, from, nil)
	return recs, next, err
}

// decodeSized is decode, and also returns the bytes the records count
// against MaxPrefetchBytes (recordsBytes of them). fb, if not nil, is the
// buffer data is in: the records that alias it hold a reference to it
// (Record.buf), added to its count.
func (d *frameDecoder) decodeSized(topic string, partition int32, data []byte, from int64, fb *fetchBuffer) (recs []*Record, size int64, next int64, err error) {
	var refs int64
	if fb != nil {
		defer func() { fb.refs.Add(refs) }()
	}
	next = from
	total := len(data)
	for len(data) > 0 {
		var f logFrame
		f, data, err = nextFrame(data)
		if err != nil {
			return recs, size, next, err
		}
		end := f.baseOffset + int64(f.count)
		if f.typ == frameTypeControl || end <= from {
			next = max(next, end)
			continue // control entries carry no records; whole frames before from are skipped
		}
		// The frame's checksum, verified by nextFrame, covers the whole
		// batch: the batch's own need not be checked again.
		if err := d.reader.ResetVerified(f.payload); err != nil {
			return recs, size, next, fmt.Errorf("%w: batch at offset %d: %w", ErrCorruptFrame, f.baseOffset, err)
		}
		if n := d.reader.Header().Count; n != f.count {
			return recs, size, next, fmt.Errorf("%w: frame at offset %d counts %d records, its batch %d", ErrCorruptFrame, f.baseOffset, f.count, n)
		}
		if recs == nil {
			// Guess the records in data from this frame's share of it.
			frameLen := len(f.payload) + frameHeaderSize
			recs = make([]*Record, 0, min(int64(f.count)*int64(total)/int64(frameLen)+1, 1<<20))
		}
		alias := d.reader.Header().Codec == record.CodecNone
		slab := make([]Record, f.count)
		i := 0
		for {
			rec, err := d.reader.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return recs, size, next, fmt.Errorf("%w: batch at offset %d: %w", ErrCorruptFrame, f.baseOffset, err)
			}
			offset := f.baseOffset + int64(rec.OffsetDelta)
			if offset < from {
				continue // the frame begins before the offset asked for
			}
			r := &slab[i]
			i++
			r.Topic = topic
			r.Partition = partition
			r.Offset = offset
			if alias {
				r.Key, r.Value = rec.Key, rec.Value
				if fb != nil {
					r.buf = fb
					refs++
				}
			} else {
				r.Key, r.Value = d.arena.copy(rec.Key), d.arena.copy(rec.Value)
			}
			if rec.Headers != nil {
				r.Headers = d.copyHeaders(rec.Headers, alias)
			}
			r.Timestamp = time.UnixMilli(rec.Timestamp)
			size += int64(r.size())
			recs = append(recs, r)
		}
		next = max(next, end)
	}
	return recs, size, next, nil
}

// copyHeaders copies headers out of the reader's slab, which the next
// batch overwrites, and their values out of its buffer unless alias.
func (d *frameDecoder) copyHeaders(hs []record.Header, alias bool) []Header {
	n := len(hs)
	if n > headerChunk/4 {
		out := make([]Header, n)
		d.fillHeaders(out, hs, alias)
		return out
	}
	if cap(d.headers)-len(d.headers) < n {
		d.headers = make([]Header, 0, headerChunk)
	}
	start := len(d.headers)
	d.headers = d.headers[:start+n]
	out := d.headers[start : start+n : start+n]
	d.fillHeaders(out, hs, alias)
	return out
}

func (d *frameDecoder) fillHeaders(out, hs []record.Header, alias bool) {
	for i, h := range hs {
		out[i] = Header(h)
		if !alias {
			out[i].Value = d.arena.copy(h.Value)
		}
	}
}

// arenaChunk is the size of the blocks records' bytes are copied into.
const arenaChunk = 64 << 10

// arena copies small byte slices into shared blocks: one allocation for
// many keys and values instead of one each. A block lives as long as any
// record cut from it.
type arena struct{ buf []byte }

// copy returns a copy of b, keeping nil and empty apart.
func (a *arena) copy(b []byte) []byte {
	switch {
	case b == nil:
		return nil
	case len(b) == 0:
		return []byte{}
	case len(b) > arenaChunk/4:
		return append([]byte(nil), b...)
	}
	if cap(a.buf)-len(a.buf) < len(b) {
		a.buf = make([]byte, 0, arenaChunk)
	}
	start := len(a.buf)
	a.buf = append(a.buf, b...)
	return a.buf[start:len(a.buf):len(a.buf)]
}
