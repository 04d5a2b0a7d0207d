package client

import (
	"encoding/binary"
	"errors"
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
// bytes after it. Errors wrap ErrCorruptFrame.
func nextFrame(b []byte) (logFrame, []byte, error) {
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
	if stored, computed := binary.BigEndian.Uint32(frame[frameCRCOffset:]), crc32.Checksum(frame[frameCRCStart:], castagnoli); stored != computed {
		return logFrame{}, nil, fmt.Errorf("%w: checksum mismatch: stored %08x, computed %08x", ErrCorruptFrame, stored, computed)
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

// frameDecoder turns fetched frames into Records. One per fetch loop: it
// reuses its batch reader.
type frameDecoder struct {
	reader record.Reader
	arena  arena
}

// decode returns the records at or after from in data (a fetch response
// partition's records), in offset order, and the offset to fetch next. On
// a corrupt frame or batch it returns the records before it with the error.
func (d *frameDecoder) decode(topic string, partition int32, data []byte, from int64) (recs []*Record, next int64, err error) {
	next = from
	for len(data) > 0 {
		var f logFrame
		f, data, err = nextFrame(data)
		if err != nil {
			return recs, next, err
		}
		end := f.baseOffset + int64(f.count)
		if f.typ == frameTypeControl || end <= from {
			next = max(next, end)
			continue // control entries carry no records; whole frames before from are skipped
		}
		if err := d.reader.Reset(f.payload); err != nil {
			return recs, next, fmt.Errorf("%w: batch at offset %d: %w", ErrCorruptFrame, f.baseOffset, err)
		}
		if n := d.reader.Header().Count; n != f.count {
			return recs, next, fmt.Errorf("%w: frame at offset %d counts %d records, its batch %d", ErrCorruptFrame, f.baseOffset, f.count, n)
		}
		slab := make([]Record, 0, f.count)
		for {
			rec, err := d.reader.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return recs, next, fmt.Errorf("%w: batch at offset %d: %w", ErrCorruptFrame, f.baseOffset, err)
			}
			offset := f.baseOffset + int64(rec.OffsetDelta)
			if offset < from {
				continue // the frame begins before the offset asked for
			}
			slab = append(slab, Record{
				Topic:     topic,
				Partition: partition,
				Offset:    offset,
				Key:       d.arena.copy(rec.Key),
				Value:     d.arena.copy(rec.Value),
				Headers:   d.copyHeaders(rec.Headers),
				Timestamp: time.UnixMilli(rec.Timestamp),
			})
			recs = append(recs, &slab[len(slab)-1])
		}
		next = max(next, end)
	}
	return recs, next, nil
}

// copyHeaders copies headers out of the reader's buffers.
func (d *frameDecoder) copyHeaders(hs []record.Header) []Header {
	if hs == nil {
		return nil
	}
	out := make([]Header, len(hs))
	for i, h := range hs {
		out[i] = Header{Key: h.Key, Value: d.arena.copy(h.Value)}
	}
	return out
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
