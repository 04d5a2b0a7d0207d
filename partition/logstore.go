package partition

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"

	wlog "weir/log"
	"weir/protocol/record"
)

// logStore is raft.LogStore over the partition's log, so a record batch is
// written to disk once: Raft's entry is the log's entry.
//
// A LogCommand entry is a record batch and becomes a data entry, with the
// batch's record count and maximum timestamp. Every other Raft entry (no-op,
// configuration, barrier) becomes a control entry whose payload is the Raft
// log type followed by the entry's data.
type logStore struct {
	log *wlog.Log

	// storeCalls and storedEntries count StoreLogs calls (each one write and
	// at most one fsync) and the entries they held: their ratio is the
	// group commit factor.
	storeCalls, storedEntries atomic.Uint64

	mu      sync.Mutex
	entries []wlog.Entry // StoreLogs' conversion buffer, reused
	// phantomLast is the last index Raft believed the log held before a
	// snapshot install replaced the log (see fsm.Restore). Raft caches its
	// last index; entries in (LastIndex, phantomLast] no longer exist, so
	// GetLog reports them with term 0, which never matches a real entry, and
	// Raft's conflict handling deletes them (DeleteRange clears this).
	phantomLast uint64
}

func newLogStore(l *wlog.Log) *logStore { return &logStore{log: l} }

// FirstIndex implements raft.LogStore: 0 when the log is empty.
func (s *logStore) FirstIndex() (uint64, error) {
	first, last := s.log.FirstIndex(), s.log.LastIndex()
	if last < first {
		return 0, nil
	}
	return first, nil
}

// LastIndex implements raft.LogStore: 0 when the log is empty.
func (s *logStore) LastIndex() (uint64, error) {
	first, last := s.log.FirstIndex(), s.log.LastIndex()
	if last < first {
		return 0, nil
	}
	return last, nil
}

// GetLog implements raft.LogStore.
func (s *logStore) GetLog(index uint64, out *raft.Log) error {
	e, err := s.log.Read(index)
	if errors.Is(err, wlog.ErrOutOfRange) {
		s.mu.Lock()
		phantom := index > s.log.LastIndex() && index <= s.phantomLast
		s.mu.Unlock()
		if phantom {
			*out = raft.Log{Index: index, Term: 0, Type: raft.LogNoop}
			return nil
		}
		return raft.ErrLogNotFound
	}
	if err != nil {
		return err
	}
	*out = raft.Log{Index: e.Index, Term: e.Term}
	if e.Type == wlog.TypeData {
		out.Type, out.Data = raft.LogCommand, e.Payload
		return nil
	}
	if len(e.Payload) < 1 {
		return fmt.Errorf("weir/partition: control entry %d has no Raft type", index)
	}
	out.Type = raft.LogType(e.Payload[0])
	if len(e.Payload) > 1 {
		out.Data = e.Payload[1:]
	}
	return nil
}

// StoreLog implements raft.LogStore.
func (s *logStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs implements raft.LogStore: one Append, so one write and (with
// fsync always) one fsync for the whole group Raft hands over.
func (s *logStore) StoreLogs(logs []*raft.Log) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	// After a snapshot install Raft's idea of the last index is the one from
	// before (see fsm.Restore), so it may hand over entries the rebuilt log
	// already holds. The same index and term is the same entry: skip it (an
	// entry below the log start is committed: skip it too). Another term is
	// a conflict: drop the log from there.
	for len(logs) > 0 && logs[0].Index <= s.log.LastIndex() {
		if l := logs[0]; l.Index >= s.log.FirstIndex() {
			e, err := s.log.Read(l.Index)
			if err != nil {
				return err
			}
			if e.Term != l.Term {
				if err := s.log.TruncateAfter(l.Index - 1); err != nil {
					return err
				}
				break
			}
		}
		logs = logs[1:]
	}
	if len(logs) == 0 {
		return nil
	}
	entries := s.entries[:0]
	for _, l := range logs {
		e := wlog.Entry{Index: l.Index, Term: l.Term}
		if l.Type == raft.LogCommand {
			h, err := record.ParseHeader(l.Data)
			if err != nil {
				// The leader checked the batch before proposing it, so this
				// is damage in transit: refuse it and let Raft resend.
				return fmt.Errorf("weir/partition: entry %d: %w", l.Index, err)
			}
			e.Type, e.Count, e.Timestamp, e.Payload = wlog.TypeData, h.Count, h.MaxTimestamp, l.Data
		} else {
			e.Type = wlog.TypeControl
			e.Payload = append(make([]byte, 0, 1+len(l.Data)), byte(l.Type))
			e.Payload = append(e.Payload, l.Data...)
		}
		entries = append(entries, e)
	}
	err := s.log.Append(entries)
	if err == nil {
		s.storeCalls.Add(1)
		s.storedEntries.Add(uint64(len(entries)))
	}
	clear(entries) // drop references to Raft's buffers
	s.entries = entries[:0]
	return err
}

// DeleteRange implements raft.LogStore. Raft deletes a suffix when a
// follower's entries conflict with the leader's, and would delete a prefix
// after a snapshot; the partition sets TrailingLogs so that it never does
// (retention owns the prefix), but a prefix request is honoured with whole
// segments, which is always safe.
func (s *logStore) DeleteRange(lo, hi uint64) error {
	s.mu.Lock()
	if lo <= s.phantomLast && hi >= s.phantomLast {
		s.phantomLast = min(s.phantomLast, lo-1)
	}
	s.mu.Unlock()
	first, last := s.log.FirstIndex(), s.log.LastIndex()
	if lo > last {
		return nil
	}
	if hi >= last {
		return s.log.TruncateAfter(max(lo, first) - 1)
	}
	_, err := s.log.DeleteBefore(hi + 1)
	return err
}

// setPhantomLast records Raft's last index before a snapshot install.
func (s *logStore) setPhantomLast(index uint64) {
	s.mu.Lock()
	s.phantomLast = index
	s.mu.Unlock()
}
