package log

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
)

// Frame layout; see the package doc. Part of the wire format; never change.
const (
	frameHeaderSize = 48 // bytes before the payload
	frameVersion    = 0
	// frameLengthSize is the size of the length field, which the length
	// itself does not count.
	frameLengthSize = 4
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// FrameHeaderSize is the size of a frame header: the bytes before its payload.
const FrameHeaderSize = frameHeaderSize

// frameSize is the number of bytes an entry with this payload takes on disk.
func frameSize(payloadLen int) int { return frameHeaderSize + payloadLen }

// appendFrame appends e's frame to buf and returns the extended slice.
// It allocates only when buf lacks capacity.
func appendFrame(buf []byte, e *Entry) []byte {
	start := len(buf)
	buf = append(buf, make([]byte, frameHeaderSize)...)
	buf = append(buf, e.Payload...)
	putFrameHeader(buf[start:], e)
	return buf
}

// putFrameHeader writes the header of e into frame, whose payload is already
// in place after the header, and computes the checksum.
func putFrameHeader(frame []byte, e *Entry) {
	h := frame[:frameHeaderSize]
	binary.BigEndian.PutUint32(h[0:4], uint32(len(frame)-frameLengthSize))
	h[8] = frameVersion
	h[9] = byte(e.Type)
	binary.BigEndian.PutUint16(h[10:12], 0)
	binary.BigEndian.PutUint32(h[12:16], e.Count)
	binary.BigEndian.PutUint64(h[16:24], e.Index)
	binary.BigEndian.PutUint64(h[24:32], e.Term)
	binary.BigEndian.PutUint64(h[32:40], e.BaseOffset)
	binary.BigEndian.PutUint64(h[40:48], uint64(e.Timestamp))
	binary.BigEndian.PutUint32(h[4:8], crc32.Checksum(frame[8:], crcTable))
}

// Frame decoding problems. A torn frame is one that a crash can explain
// (the bytes simply stop); an invalid one cannot.
var (
	errShortFrame    = errors.New("short frame")
	errFrameLength   = errors.New("frame length out of range")
	errFrameCRC      = errors.New("frame checksum mismatch")
	errFrameVersion  = errors.New("unknown frame version")
	errFrameType     = errors.New("unknown entry type")
	errFrameReserved = errors.New("reserved frame bytes are not zero")
)

// frameLength reads the total size of the frame that starts with header
// (length field included) without checking anything else.
func frameLength(header []byte) int64 {
	return int64(binary.BigEndian.Uint32(header[0:4])) + frameLengthSize
}

// DecodeFrame decodes the frame at the start of b. It returns the entry, whose
// Payload aliases b, and the frame's size. It checks, in order, the length,
// the version, the checksum and the type, and never allocates.
func DecodeFrame(b []byte) (Entry, int, error) {
	if len(b) < frameHeaderSize {
		return Entry{}, 0, errShortFrame
	}
	size := frameLength(b)
	if size < frameHeaderSize {
		return Entry{}, 0, errFrameLength
	}
	if size > int64(len(b)) {
		return Entry{}, 0, errShortFrame
	}
	frame := b[:size]
	if frame[8] != frameVersion {
		return Entry{}, 0, errFrameVersion
	}
	if frame[10] != 0 || frame[11] != 0 {
		return Entry{}, 0, errFrameReserved
	}
	if crc32.Checksum(frame[8:], crcTable) != binary.BigEndian.Uint32(frame[4:8]) {
		return Entry{}, 0, errFrameCRC
	}
	e := Entry{
		Type:       EntryType(frame[9]),
		Count:      binary.BigEndian.Uint32(frame[12:16]),
		Index:      binary.BigEndian.Uint64(frame[16:24]),
		Term:       binary.BigEndian.Uint64(frame[24:32]),
		BaseOffset: binary.BigEndian.Uint64(frame[32:40]),
		Timestamp:  int64(binary.BigEndian.Uint64(frame[40:48])),
		Payload:    frame[frameHeaderSize:],
	}
	if e.Type != TypeData && e.Type != TypeControl || e.Type == TypeControl && e.Count != 0 {
		return Entry{}, 0, errFrameType
	}
	return e, int(size), nil
}
