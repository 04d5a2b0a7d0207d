package log

import (
	"fmt"
	"weir/internal/durable"
)

// TruncateAfter removes every entry after index, so that index becomes the
// last one (Raft needs this when a follower's entries conflict with the
// leader's). index may be FirstIndex()-1, which empties the log; the next
// entry appended must then be index+1 and gets the offset the removed entry
// index+1 had.
func (l *Log) TruncateAfter(index uint64) error {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	if err := l.checkWritable(); err != nil {
		return err
	}
	l.mu.Lock()
	first, last := l.segments[0].baseIndex, l.activeLocked().lastIndex()
	if index >= last {
		l.mu.Unlock()
		return nil
	}
	if index+1 < first {
		l.mu.Unlock()
		return fmt.Errorf("%w: cannot truncate after %d, the log starts at %d", ErrOutOfRange, index, first)
	}
	next := l.findLocked(index + 1)
	h := segmentHeader{baseIndex: index + 1, baseOffset: next.slot(index + 1).baseOffset, createdAt: l.opts.Now().UnixMilli()}
	// Take whole segments off the back under mu; unlink them after, last
	// first, so what is on disk is a prefix of the log at every step.
	var victims []*segment
	for len(l.segments) > 0 && l.activeLocked().baseIndex > index {
		victims = append(victims, l.activeLocked())
		l.segments = l.segments[:len(l.segments)-1]
	}
	var err error
	if len(l.segments) > 0 {
		s := l.activeLocked()
		err = s.truncateAfter(int64(index+1-s.baseIndex), &l.opts)
	}
	needActive := len(l.segments) == 0 || l.activeLocked().sealed.Load()
	l.mu.Unlock()
	for _, s := range victims {
		if rerr := s.remove(); err == nil {
			err = rerr
		}
	}
	if err != nil {
		return l.fail(err)
	}
	if needActive {
		// The new last segment was sealed: start a fresh active one after it
		// rather than reopening the sealed one for writing (its index is
		// mapped at its sealed size, and readers may be using it).
		if err := l.startSegment(h); err != nil {
			return err
		}
	}
	if l.opts.Fsync != FsyncNever {
		if err := durable.SyncDir(l.dir); err != nil {
			return l.fail(err)
		}
	}
	return nil
}

// DeleteBefore removes the sealed segments whose entries all come before
// index, and returns how many it removed. The active segment is never
// removed, so the log's first index may stay below index.
func (l *Log) DeleteBefore(index uint64) (int, error) {
	return l.deletePrefix(func(s *segment, _ int64) bool { return s.lastIndex() < index })
}

// Reset empties the log and makes it continue at nextIndex and nextOffset:
// for a follower that installs a snapshot past everything it holds.
func (l *Log) Reset(nextIndex, nextOffset uint64) error {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	if err := l.checkWritable(); err != nil {
		return err
	}
	// mu is held throughout, so readers never see a log without segments.
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.segments) - 1; i >= 0; i-- {
		s := l.segments[i]
		l.segments = l.segments[:i]
		if err := s.remove(); err != nil {
			return l.fail(err)
		}
	}
	s, err := createSegment(l.dir, segmentHeader{baseIndex: nextIndex, baseOffset: nextOffset, createdAt: l.opts.Now().UnixMilli()}, &l.opts)
	if err != nil {
		return l.fail(err)
	}
	l.segments = []*segment{s}
	return nil
}
