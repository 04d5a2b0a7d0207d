package partition

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sort"
)

// snapshotState is a partition's snapshot: its small state at a Raft index,
// and where its log starts. The records are not in it; see snapshot.go.
//
// Encoding, big-endian, part of the on-disk and Raft wire format; a stream
// holds its length (u32) first:
//
//	magic "WPSN" | version u8 | 3 reserved bytes
//	applied index u64 | high watermark u64 | log start index u64 |
//	log start offset u64 | data bytes u64 | producers u32 |
//	per producer: id i64 | epoch i16 | batches u8 |
//	    per batch: first seq i32 | last seq i32 | base offset u64
//	crc u32 (CRC32-C of everything before it)
//
// "data bytes" of log frames (as the log stores them, entries log start
// index to applied index) follow the state when a leader sends the snapshot
// to a follower.
type snapshotState struct {
	appliedIndex   uint64 // the Raft index the state is at
	highWatermark  uint64 // offset after the last record at appliedIndex
	logStartIndex  uint64 // first entry of the frames that follow
	logStartOffset uint64 // its base offset
	dataBytes      uint64 // bytes of frames that follow the state
	producers      producerTable
}

var (
	stateMagic = [4]byte{'W', 'P', 'S', 'N'}
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

const (
	stateVersion    = 1
	stateFixedSize  = 4 + 4 + 5*8 + 4
	maxStateEncoded = 64 << 20 // producers alone can never need more
)

func (s *snapshotState) encode() []byte {
	b := make([]byte, 0, stateFixedSize+len(s.producers)*(11+recentBatches*16)+4)
	b = append(b, stateMagic[:]...)
	b = append(b, stateVersion, 0, 0, 0)
	for _, v := range []uint64{s.appliedIndex, s.highWatermark, s.logStartIndex, s.logStartOffset, s.dataBytes} {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	ids := make([]int64, 0, len(s.producers))
	for id := range s.producers {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] }) // deterministic bytes
	b = binary.BigEndian.AppendUint32(b, uint32(len(ids)))
	for _, id := range ids {
		st := s.producers[id]
		b = binary.BigEndian.AppendUint64(b, uint64(id))
		b = binary.BigEndian.AppendUint16(b, uint16(st.epoch))
		b = append(b, byte(len(st.recent)))
		for _, r := range st.recent {
			b = binary.BigEndian.AppendUint32(b, uint32(r.firstSeq))
			b = binary.BigEndian.AppendUint32(b, uint32(r.lastSeq))
			b = binary.BigEndian.AppendUint64(b, r.baseOffset)
		}
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

var errBadState = errors.New("weir/partition: bad snapshot state")

// stateReader decodes with a sticky error: the first failure is kept.
type stateReader struct {
	b   []byte
	err error
}

func (r *stateReader) take(n int) []byte {
	if r.err != nil || len(r.b) < n {
		r.err = fmt.Errorf("%w: short", errBadState)
		return make([]byte, n)
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}
func (r *stateReader) u64() uint64 { return binary.BigEndian.Uint64(r.take(8)) }
func (r *stateReader) u32() uint32 { return binary.BigEndian.Uint32(r.take(4)) }
func (r *stateReader) u16() uint16 { return binary.BigEndian.Uint16(r.take(2)) }

// decodeState decodes an encoded state that is exactly b.
func decodeState(b []byte) (snapshotState, error) {
	if len(b) < stateFixedSize+4 {
		return snapshotState{}, fmt.Errorf("%w: %d bytes", errBadState, len(b))
	}
	if [4]byte(b[:4]) != stateMagic {
		return snapshotState{}, fmt.Errorf("%w: bad magic", errBadState)
	}
	if b[4] != stateVersion {
		return snapshotState{}, fmt.Errorf("%w: version %d", errBadState, b[4])
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return snapshotState{}, fmt.Errorf("%w: checksum mismatch", errBadState)
	}
	r := stateReader{b: body[8:]}
	s := snapshotState{
		appliedIndex: r.u64(), highWatermark: r.u64(), logStartIndex: r.u64(),
		logStartOffset: r.u64(), dataBytes: r.u64(), producers: producerTable{},
	}
	n := r.u32()
	for i := uint32(0); i < n && r.err == nil; i++ {
		id := int64(r.u64())
		st := &producerState{epoch: int16(r.u16())}
		batches := int(r.take(1)[0])
		if batches > recentBatches {
			return snapshotState{}, fmt.Errorf("%w: %d batches for producer %d", errBadState, batches, id)
		}
		for j := 0; j < batches && r.err == nil; j++ {
			st.recent = append(st.recent, batchMeta{firstSeq: int32(r.u32()), lastSeq: int32(r.u32()), baseOffset: r.u64()})
		}
		s.producers[id] = st
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", errBadState, len(r.b))
	}
	return s, r.err
}

// writeState writes s with its length in front.
func writeState(w io.Writer, s *snapshotState) (int64, error) {
	b := s.encode()
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(b)))
	if _, err := w.Write(n[:]); err != nil {
		return 0, err
	}
	_, err := w.Write(b)
	return int64(len(b) + 4), err
}

// readState reads a state written by writeState, checking the length
// against a limit before allocating.
func readState(r io.Reader) (snapshotState, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return snapshotState{}, fmt.Errorf("%w: %w", errBadState, err)
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > maxStateEncoded {
		return snapshotState{}, fmt.Errorf("%w: %d bytes", errBadState, size)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return snapshotState{}, fmt.Errorf("%w: %w", errBadState, err)
	}
	return decodeState(b)
}
