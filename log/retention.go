package log

import "weir/internal/durable"

// ApplyRetention deletes the oldest sealed segments that retention no longer
// wants: those whose newest entry is older than RetentionAge, and those the
// log can do without while staying at least RetentionBytes large. It returns
// how many segments it removed. The active segment is never removed, nor
// any segment holding an entry at or after keepFrom: the layer above passes
// its commit point, so retention never removes what Raft may still change.
//
// A segment's age is taken from the larger of its running maximum entry
// timestamp and its creation time, so a segment of entries without
// timestamps still ages.
func (l *Log) ApplyRetention(keepFrom uint64) (int, error) {
	o := &l.opts
	now := o.Now().UnixMilli()
	var total int64
	l.mu.RLock()
	for _, s := range l.segments {
		total += s.size.Load()
	}
	l.mu.RUnlock()
	return l.deletePrefix(func(s *segment, removedBytes int64) bool {
		newest := max(s.maxTimestamp(0), s.createdAt)
		expired := o.RetentionAge > 0 && now-newest > o.RetentionAge.Milliseconds()
		oversize := o.RetentionBytes > 0 && total-removedBytes-s.size.Load() >= o.RetentionBytes
		return s.lastIndex() < keepFrom && (expired || oversize)
	})
}

// deletePrefix removes sealed segments from the front while drop says so.
// drop gets the segment and the bytes removed before it.
func (l *Log) deletePrefix(drop func(s *segment, removedBytes int64) bool) (int, error) {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	if err := l.checkWritable(); err != nil {
		return 0, err
	}
	// Take the segments out of the list under mu, and unlink them after:
	// readers wait on mu, not on the file system.
	l.mu.Lock()
	var victims []*segment
	var removed int64
	for len(l.segments) > 1 && drop(l.segments[0], removed) {
		s := l.segments[0]
		l.segments = l.segments[1:]
		removed += s.size.Load()
		victims = append(victims, s)
	}
	l.mu.Unlock()
	n := len(victims)
	for _, s := range victims {
		if err := s.remove(); err != nil {
			return n, l.fail(err)
		}
	}
	if n > 0 && l.opts.Fsync != FsyncNever {
		if err := durable.SyncDir(l.dir); err != nil {
			return n, l.fail(err)
		}
	}
	return n, nil
}
