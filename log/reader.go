package log

import (
	"fmt"
	"io"
	"os"
	"sort"
)

// Read returns entry index with a payload of its own.
func (l *Log) Read(index uint64) (Entry, error) {
	// mu is held across the read so a concurrent truncation cannot cut the
	// frame from under it; the read is one pread.
	l.mu.RLock()
	defer l.mu.RUnlock()
	s, err := l.segmentForLocked(index)
	if err != nil {
		return Entry{}, err
	}
	sl, ok := s.index.read(int64(index - s.baseIndex))
	if !ok {
		return Entry{}, corruptf(s.index.path, int64(index-s.baseIndex)*slotSize, "index slot checksum mismatch")
	}
	buf := make([]byte, sl.size)
	if _, err := s.store.ReadAt(buf, int64(sl.pos)); err != nil {
		return Entry{}, fmt.Errorf("weir/log: read %s: %w", s.storePath, err)
	}
	e, err := checkFrame(buf, s.storePath, int64(sl.pos), index)
	if err == nil && frameSize(len(e.Payload)) != int(sl.size) {
		err = corruptf(s.storePath, int64(sl.pos), "frame of %d bytes, index says %d", frameSize(len(e.Payload)), sl.size)
	}
	return e, err
}

// segmentForLocked returns the segment holding index, or why there is none.
// REQUIRES: mu held (either way).
func (l *Log) segmentForLocked(index uint64) (*segment, error) {
	if l.closed.Load() || len(l.segments) == 0 {
		return nil, ErrClosed
	}
	s := l.findLocked(index)
	if s == nil {
		return nil, fmt.Errorf("%w: index %d not in [%d, %d]", ErrOutOfRange, index,
			l.segments[0].baseIndex, l.activeLocked().lastIndex())
	}
	return s, nil
}

// checkFrame decodes the frame in b, read from file at pos, and checks that
// it is entry index.
func checkFrame(b []byte, file string, pos int64, index uint64) (Entry, error) {
	e, _, err := DecodeFrame(b)
	if err != nil {
		return Entry{}, corruptf(file, pos, "%v", err)
	}
	if e.Index != index {
		return Entry{}, corruptf(file, pos, "frame holds entry %d, want %d", e.Index, index)
	}
	return e, nil
}

// EntryOffsets returns the base offset and record count of entry index,
// from its index slot, without reading the store.
func (l *Log) EntryOffsets(index uint64) (baseOffset uint64, count uint32, err error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	s, err := l.segmentForLocked(index)
	if err != nil {
		return 0, 0, err
	}
	sl := s.slot(index)
	return sl.baseOffset, sl.count, nil
}

// IndexForOffset returns the index of the entry that holds record offset,
// or LastIndex()+1 when offset is the next offset to be written. An offset
// below FirstOffset or above NextOffset is ErrOutOfRange.
func (l *Log) IndexForOffset(offset uint64) (uint64, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if len(l.segments) == 0 {
		return 0, ErrClosed
	}
	first, next := l.segments[0].baseOffset, l.activeLocked().nextOffset()
	if offset < first || offset > next {
		return 0, fmt.Errorf("%w: offset %d not in [%d, %d]", ErrOutOfRange, offset, first, next)
	}
	// The entry holding offset is the first whose next offset is past it.
	return l.searchLocked(func(sl slot) bool { return sl.nextOffset() > offset }), nil
}

// IndexForTimestamp returns the index of the first entry that may hold a
// record with a timestamp at or after ts (the first whose running maximum
// timestamp reaches ts), or LastIndex()+1 if there is none.
func (l *Log) IndexForTimestamp(ts int64) (uint64, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if len(l.segments) == 0 {
		return 0, ErrClosed
	}
	return l.searchLocked(func(sl slot) bool { return sl.maxTimestamp >= ts }), nil
}

// searchLocked returns the index of the first entry whose slot satisfies
// pred, which must be false then true along the log, or LastIndex()+1.
// REQUIRES: mu held (either way), log open.
func (l *Log) searchLocked(pred func(slot) bool) uint64 {
	segs := l.segments
	// The first segment whose last entry satisfies pred holds the answer.
	i := sort.Search(len(segs), func(i int) bool {
		n := segs[i].count.Load()
		if n == 0 {
			return false
		}
		sl, _ := segs[i].index.read(n - 1)
		return pred(sl)
	})
	if i == len(segs) {
		return l.activeLocked().lastIndex() + 1
	}
	s := segs[i]
	j := sort.Search(int(s.count.Load()), func(j int) bool {
		sl, _ := s.index.read(int64(j))
		return pred(sl)
	})
	return s.baseIndex + uint64(j)
}

// FileRange is a run of whole frames in one store file, for a server to send
// with sendfile. It holds its segment open: Release it when done.
type FileRange struct {
	File       *os.File
	Pos        int64  // position of the first frame in File
	Len        int64  // bytes of whole frames from Pos
	FirstIndex uint64 // index of the first entry in the range
	LastIndex  uint64 // index of the last entry in the range
	seg        *segment
}

// Release lets go of the range's segment. It may be called more than once.
func (r *FileRange) Release() {
	if r.seg != nil {
		r.seg.release()
		r.seg = nil
	}
}

// FileRange returns the frames of entries from index first to at most last,
// within one segment and at most maxBytes long, except that the first frame
// is always included whatever its size, so a reader always makes progress.
//
// Readers should stay below the commit point of the layer above: frames past
// it may be truncated (TruncateAfter) while a range is being sent.
func (l *Log) FileRange(first, last uint64, maxBytes int64) (FileRange, error) {
	if last < first {
		return FileRange{}, fmt.Errorf("weir/log: empty range [%d, %d]", first, last)
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	s, err := l.segmentForLocked(first)
	if err != nil {
		return FileRange{}, err
	}
	last = min(last, s.lastIndex())
	start := s.slot(first)
	// Frame ends grow along the segment: find the last one within budget.
	n := sort.Search(int(last-first), func(k int) bool {
		return s.slot(first+uint64(k)+1).end()-int64(start.pos) > maxBytes
	})
	last = first + uint64(n)
	s.acquire()
	return FileRange{
		File:       s.store,
		Pos:        int64(start.pos),
		Len:        s.slot(last).end() - int64(start.pos),
		FirstIndex: first,
		LastIndex:  last,
		seg:        s,
	}, nil
}

// Reader streams entries in index order. It is not safe for concurrent
// use; each goroutine opens its own.
type Reader struct {
	log  *Log
	next uint64   // index of the next entry to return
	seg  *segment // segment holding next, acquired; nil before the first lookup
	pos  int64    // store position of next's frame in seg

	buf      []byte // read-ahead of seg's store
	bufStart int64  // store position of buf[0]
	// bufTruncations is seg.truncations as loaded before buf was read:
	// once it changes, buf may hold bytes that were cut and rewritten.
	bufTruncations uint64
}

// readAhead is how much of a store a Reader reads per system call.
const readAhead = 256 << 10

// NewReader returns a reader positioned at entry index first, which must be
// within [FirstIndex, LastIndex+1].
func (l *Log) NewReader(first uint64) (*Reader, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed.Load() || len(l.segments) == 0 {
		return nil, ErrClosed
	}
	if lo, hi := l.segments[0].baseIndex, l.activeLocked().lastIndex()+1; first < lo || first > hi {
		return nil, fmt.Errorf("%w: index %d not in [%d, %d]", ErrOutOfRange, first, lo, hi)
	}
	return &Reader{log: l, next: first}, nil
}

// Next returns the next entry. Its Payload is valid until the following
// call. At the end of the log it returns io.EOF; once more entries are
// appended Next returns them. A reader that falls behind retention gets
// ErrOutOfRange.
func (r *Reader) Next() (Entry, error) {
	for {
		if r.seg == nil {
			if err := r.locate(); err != nil {
				return Entry{}, err
			}
		}
		// Load truncations before count and size: a truncation after
		// this load is seen at the next call, and the read-ahead dropped.
		if t := r.seg.truncations.Load(); t != r.bufTruncations {
			r.buf, r.bufTruncations = r.buf[:0], t
		}
		// Load count before size: see segment.
		count := r.seg.count.Load()
		if r.next < r.seg.baseIndex+uint64(count) {
			return r.readFrame(r.seg.size.Load())
		}
		if !r.seg.sealed.Load() {
			return Entry{}, io.EOF
		}
		r.seg.release()
		r.seg, r.buf = nil, r.buf[:0]
	}
}

// locate finds the segment holding r.next.
func (r *Reader) locate() error {
	l := r.log
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed.Load() || len(l.segments) == 0 {
		return ErrClosed
	}
	s := l.findLocked(r.next)
	if s == nil {
		if r.next < l.segments[0].baseIndex {
			return fmt.Errorf("%w: index %d was deleted; the log starts at %d", ErrOutOfRange, r.next, l.segments[0].baseIndex)
		}
		return io.EOF
	}
	s.acquire()
	r.seg = s
	r.pos = int64(s.slot(r.next).pos)
	r.buf, r.bufTruncations = r.buf[:0], s.truncations.Load()
	return nil
}

// readFrame returns the frame at r.pos, reading ahead up to limit, the
// published size of the store.
func (r *Reader) readFrame(limit int64) (Entry, error) {
	s := r.seg
	if err := r.fill(r.pos+frameHeaderSize, limit); err != nil {
		return Entry{}, err
	}
	size := frameLength(r.buf[r.pos-r.bufStart:])
	if size < frameHeaderSize || r.pos+size > limit {
		return Entry{}, corruptf(s.storePath, r.pos, "frame length %d out of range", size)
	}
	if err := r.fill(r.pos+size, limit); err != nil {
		return Entry{}, err
	}
	e, err := checkFrame(r.buf[r.pos-r.bufStart:r.pos-r.bufStart+size], s.storePath, r.pos, r.next)
	if err != nil {
		return Entry{}, err
	}
	r.pos += size
	r.next++
	return e, nil
}

// fill makes buf hold the store bytes up to end, reading ahead to at most
// limit.
func (r *Reader) fill(end, limit int64) error {
	if end > limit {
		return corruptf(r.seg.storePath, r.pos, "frame runs past the end of the store")
	}
	if r.pos >= r.bufStart && end <= r.bufStart+int64(len(r.buf)) {
		return nil
	}
	want := max(end-r.pos, min(readAhead, limit-r.pos))
	if int64(cap(r.buf)) < want {
		r.buf = make([]byte, want)
	}
	r.buf = r.buf[:want]
	if _, err := r.seg.store.ReadAt(r.buf, r.pos); err != nil {
		r.buf = r.buf[:0]
		return fmt.Errorf("weir/log: read %s: %w", r.seg.storePath, err)
	}
	r.bufStart = r.pos
	return nil
}

// Close releases the reader's segment.
func (r *Reader) Close() error {
	if r.seg != nil {
		r.seg.release()
		r.seg = nil
	}
	return nil
}
