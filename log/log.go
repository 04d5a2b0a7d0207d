package log

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Log is a segmented, append-only log in one directory.
//
// Lock order: writeMu, then mu. Never do file I/O of the data path while
// holding mu for writing; never take writeMu while holding mu.
type Log struct {
	dir  string
	opts Options

	// writeMu serializes writers (Append, TruncateAfter, DeleteBefore,
	// ApplyRetention, Reset, Close) and guards the fields below it.
	writeMu sync.Mutex
	buf     []byte // frames of the batch being appended, reused
	slots   []slot // their index slots, reused
	failed  error  // set when a write failed halfway; see ErrFailed

	// mu guards segments: the list, and shrinking a segment's files.
	// Readers hold it (RLock) while they look up index slots.
	mu       sync.RWMutex
	segments []*segment // oldest first; the last one is active

	closed atomic.Bool
	dirty  atomic.Bool // appended since the last background sync

	stopSync chan struct{}
	syncDone chan struct{}
}

// writeBufferSize bounds the memory a batch is staged in: a larger batch is
// written with one write per this many bytes.
const writeBufferSize = 1 << 20

// Open opens the log in dir, creating the directory and an empty log (next
// index 1, next offset 0) if there is none, and recovers it.
func Open(dir string, opts Options) (*Log, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("weir/log: %w", err)
	}
	l := &Log{dir: dir, opts: opts}
	if err := l.load(); err != nil {
		l.releaseAll()
		return nil, err
	}
	if len(l.segments) == 0 {
		s, err := createSegment(dir, segmentHeader{baseIndex: 1, createdAt: opts.Now().UnixMilli()}, &l.opts)
		if err != nil {
			return nil, fmt.Errorf("weir/log: %w", err)
		}
		l.segments = []*segment{s}
	}
	if opts.Fsync == FsyncInterval {
		l.stopSync = make(chan struct{})
		l.syncDone = make(chan struct{})
		go l.syncLoop()
	}
	return l, nil
}

// load opens every segment in the directory, oldest first, and checks that
// they form one chain.
func (l *Log) load() error {
	names, err := os.ReadDir(l.dir)
	if err != nil {
		return fmt.Errorf("weir/log: %w", err)
	}
	var bases []uint64
	stores := map[uint64]bool{}
	for _, d := range names {
		name := d.Name()
		if strings.HasSuffix(name, tmpSuffix) {
			// A segment whose creation was cut short: it never held data.
			os.Remove(filepath.Join(l.dir, name))
			continue
		}
		if base, ok := parseSegmentName(name, storeSuffix); ok {
			bases = append(bases, base)
			stores[base] = true
		}
	}
	for _, d := range names {
		if base, ok := parseSegmentName(d.Name(), indexSuffix); ok && !stores[base] {
			// The index of a removed segment whose store went first.
			os.Remove(filepath.Join(l.dir, d.Name()))
		}
	}
	slices.Sort(bases)
	var prevMaxTimestamp int64
	for i, base := range bases {
		s, err := openSegment(l.dir, base, prevMaxTimestamp, i == len(bases)-1, &l.opts)
		if err != nil {
			return fmt.Errorf("weir/log: %w", err)
		}
		if i > 0 {
			prev := l.segments[i-1]
			if s.baseIndex != prev.lastIndex()+1 || s.baseOffset != prev.nextOffset() {
				s.release()
				return corruptf(s.storePath, 0, "segment starts at index %d offset %d, but the previous one ends before index %d offset %d",
					s.baseIndex, s.baseOffset, prev.lastIndex()+1, prev.nextOffset())
			}
		}
		prevMaxTimestamp = s.maxTimestamp(prevMaxTimestamp)
		l.segments = append(l.segments, s)
	}
	return nil
}

// Dir is the log's directory.
func (l *Log) Dir() string { return l.dir }

// FirstIndex is the index of the first entry the log holds. When the log is
// empty it is LastIndex()+1.
func (l *Log) FirstIndex() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if len(l.segments) == 0 {
		return 0
	}
	return l.segments[0].baseIndex
}

// LastIndex is the index of the last entry; FirstIndex()-1 when empty.
func (l *Log) LastIndex() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if len(l.segments) == 0 {
		return 0
	}
	return l.activeLocked().lastIndex()
}

// FirstOffset is the offset of the first record the log holds (the log
// start offset).
func (l *Log) FirstOffset() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if len(l.segments) == 0 {
		return 0
	}
	return l.segments[0].baseOffset
}

// NextOffset is the offset the next record appended will get (the log end
// offset).
func (l *Log) NextOffset() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if len(l.segments) == 0 {
		return 0
	}
	return l.activeLocked().nextOffset()
}

// Size is the total size of the store files in bytes.
func (l *Log) Size() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var n int64
	for _, s := range l.segments {
		n += s.size.Load()
	}
	return n
}

// Segments is the number of segments.
func (l *Log) Segments() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.segments)
}

// activeLocked is the segment appends go to. REQUIRES: mu held, log open.
func (l *Log) activeLocked() *segment { return l.segments[len(l.segments)-1] }

// findLocked returns the segment holding entry index, or nil.
// REQUIRES: mu held (either way).
func (l *Log) findLocked(index uint64) *segment {
	i := sort.Search(len(l.segments), func(i int) bool { return l.segments[i].baseIndex > index }) - 1
	if i < 0 || index > l.segments[i].lastIndex() {
		return nil
	}
	return l.segments[i]
}

// checkWritable returns why the log refuses writes, if it does.
// REQUIRES: writeMu held.
func (l *Log) checkWritable() error {
	if l.closed.Load() {
		return ErrClosed
	}
	return l.failed
}

// fail poisons the log after a write that failed halfway.
// REQUIRES: writeMu held.
func (l *Log) fail(err error) error {
	l.failed = fmt.Errorf("%w: %w", ErrFailed, err)
	return l.failed
}

// Append appends entries, which must continue the log: the first one's
// Index is LastIndex()+1 and the rest follow densely. It sets each entry's
// BaseOffset. The frames are written with one write call per segment (per
// 1 MiB for larger batches); with FsyncAlways, Append returns after they are
// durable. On error nothing of the batch is visible to readers; an error
// matching ErrFailed means the files may hold part of it, and the log must be
// reopened, which recovers.
func (l *Log) Append(entries []Entry) error {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	if err := l.checkWritable(); err != nil {
		return err
	}
	if len(entries) == 0 {
		return nil
	}
	l.mu.RLock()
	active := l.activeLocked()
	next := active.lastIndex() + 1
	l.mu.RUnlock()
	for i := range entries {
		e := &entries[i]
		switch {
		case e.Index != next+uint64(i):
			return fmt.Errorf("%w: entry %d has index %d, want %d", ErrNonContiguous, i, e.Index, next+uint64(i))
		case int64(len(e.Payload)) > l.opts.SegmentBytes-segmentHeaderSize-frameHeaderSize:
			return fmt.Errorf("%w: %d bytes", ErrEntryTooLarge, len(e.Payload))
		case e.Type != TypeData && e.Type != TypeControl:
			return fmt.Errorf("weir/log: entry %d has unknown type %d", i, e.Type)
		case e.Type == TypeControl && e.Count != 0:
			return fmt.Errorf("weir/log: control entry %d has %d records", i, e.Count)
		}
	}
	if l.opts.SegmentAge > 0 && active.count.Load() > 0 &&
		l.opts.Now().UnixMilli()-active.createdAt >= l.opts.SegmentAge.Milliseconds() {
		if err := l.roll(); err != nil {
			return err
		}
	}
	for len(entries) > 0 {
		n, err := l.appendToActive(entries)
		if err != nil {
			return err
		}
		if n == 0 {
			if err := l.roll(); err != nil {
				return err
			}
			continue
		}
		entries = entries[n:]
	}
	return nil
}

// appendToActive writes as many of entries as fit in the active segment and
// returns how many it wrote.
// REQUIRES: writeMu held; entries validated.
func (l *Log) appendToActive(entries []Entry) (int, error) {
	l.mu.RLock()
	s := l.activeLocked()
	var prevMax int64
	if len(l.segments) > 1 {
		prevMax = l.segments[len(l.segments)-2].maxTimestamp(0)
	}
	x := expectation{
		pos:          s.size.Load(),
		index:        s.lastIndex() + 1,
		offset:       s.nextOffset(),
		maxTimestamp: s.maxTimestamp(prevMax),
	}
	l.mu.RUnlock()

	count := s.count.Load()
	capacity := s.index.capacity()
	buf, slots := l.buf[:0], l.slots[:0]
	written := x.pos // store position up to which buf has been written
	n := 0
	for ; n < len(entries); n++ {
		e := &entries[n]
		size := int64(frameSize(len(e.Payload)))
		full := x.pos+size > l.opts.SegmentBytes || count+int64(n) >= capacity
		if full && (count > 0 || n > 0) {
			break
		}
		if len(buf) > 0 && len(buf)+int(size) > writeBufferSize {
			if _, err := s.store.WriteAt(buf, written); err != nil {
				return 0, l.fail(fmt.Errorf("write %s: %w", s.storePath, err))
			}
			written += int64(len(buf))
			buf = buf[:0]
		}
		e.BaseOffset = x.offset
		buf = appendFrame(buf, e)
		slots = append(slots, x.advance(e, size))
	}
	if n == 0 {
		return 0, nil
	}
	if _, err := s.store.WriteAt(buf, written); err != nil {
		return 0, l.fail(fmt.Errorf("write %s: %w", s.storePath, err))
	}
	if l.opts.Fsync == FsyncAlways {
		if err := fdatasync(s.store); err != nil {
			return 0, l.fail(fmt.Errorf("sync %s: %w", s.storePath, err))
		}
	} else {
		l.dirty.Store(true)
	}
	for i, sl := range slots {
		s.index.write(count+int64(i), sl)
	}
	// Publish: size first, then count (readers load them the other way).
	s.size.Store(x.pos)
	s.count.Store(count + int64(n))
	if cap(buf) <= writeBufferSize {
		l.buf = buf[:0]
	} else {
		l.buf = nil // one oversized entry: do not keep its buffer
	}
	l.slots = slots[:0]
	return n, nil
}

// roll seals the active segment and starts a new one after it.
// REQUIRES: writeMu held.
func (l *Log) roll() error {
	l.mu.RLock()
	old := l.activeLocked()
	h := segmentHeader{baseIndex: old.lastIndex() + 1, baseOffset: old.nextOffset(), createdAt: l.opts.Now().UnixMilli()}
	l.mu.RUnlock()
	if err := old.seal(&l.opts); err != nil {
		return l.fail(err)
	}
	return l.startSegment(h)
}

// startSegment creates a new active segment at the end of the log.
// REQUIRES: writeMu held; the last segment sealed.
func (l *Log) startSegment(h segmentHeader) error {
	s, err := createSegment(l.dir, h, &l.opts)
	if err != nil {
		return l.fail(err)
	}
	l.mu.Lock()
	l.segments = append(l.segments, s)
	l.mu.Unlock()
	return nil
}

// Sync makes everything appended so far durable.
func (l *Log) Sync() error {
	l.mu.RLock()
	if len(l.segments) == 0 {
		l.mu.RUnlock()
		return ErrClosed
	}
	s := l.activeLocked()
	s.acquire()
	l.mu.RUnlock()
	defer s.release()
	l.dirty.Store(false)
	if err := fdatasync(s.store); err != nil {
		return fmt.Errorf("weir/log: sync %s: %w", s.storePath, err)
	}
	return nil
}

// syncLoop is the FsyncInterval background syncer. It syncs outside the
// writer's lock, so appends go on while it waits for the disk. A segment
// that is rolled meanwhile is synced by the roll.
func (l *Log) syncLoop() {
	defer close(l.syncDone)
	t := time.NewTicker(l.opts.FsyncInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stopSync:
			return
		case <-t.C:
			if l.dirty.Load() {
				if err := l.Sync(); err != nil && !errors.Is(err, ErrClosed) {
					l.opts.Logger.Error("weir/log: background sync failed", "dir", l.dir, "err", err)
				}
			}
		}
	}
}

// Close syncs the log, shrinks the active index to its real size and
// releases the files. Readers still open keep their segments until they are
// closed. Close may be called more than once.
func (l *Log) Close() error {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	if l.closed.Swap(true) {
		return nil
	}
	if l.stopSync != nil {
		close(l.stopSync)
		<-l.syncDone
	}
	var err error
	l.mu.RLock()
	var active *segment
	if len(l.segments) > 0 {
		active = l.activeLocked()
	}
	l.mu.RUnlock()
	if l.failed == nil && active != nil {
		if serr := fdatasync(active.store); serr != nil {
			err = fmt.Errorf("weir/log: sync %s: %w", active.storePath, serr)
		}
		if serr := active.index.truncate(active.count.Load()); serr != nil && err == nil {
			err = fmt.Errorf("weir/log: %w", serr)
		}
	}
	if rerr := l.releaseAll(); err == nil {
		err = rerr
	}
	return err
}

// releaseAll drops the log's reference on every segment.
func (l *Log) releaseAll() error {
	l.mu.Lock()
	segs := l.segments
	l.segments = nil
	l.mu.Unlock()
	var err error
	for _, s := range segs {
		if rerr := s.release(); err == nil && rerr != nil {
			err = fmt.Errorf("weir/log: close segment: %w", rerr)
		}
	}
	return err
}
