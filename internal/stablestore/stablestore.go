// Package stablestore keeps the Raft stable store (current term, vote) of
// Raft groups: Store, a file of a group's own (the metadata group, whose
// log it also holds), and Shared, one file for the many partition groups
// of a node, whose writes share fsyncs. Both close without racing Raft's
// shutdown:
//
// hashicorp/raft handles a leader's heartbeat on the transport's own
// goroutine, which Raft.Shutdown neither stops nor waits for; a heartbeat
// that arrives during shutdown may write the current term after the store
// has been closed, and Raft panics when that write fails
// (hashicorp/raft#717: "failed to save current term: database not open").
// Store waits, in Close, for writes under way, and afterwards drops writes
// instead of failing them. Dropping is safe only because the group is shut
// down: nothing it answers from then on is acted on as its promise (a
// heartbeat carries no entries to acknowledge, and votes are not cast by a
// shut-down Raft).
package stablestore

import (
	"errors"
	"sync"

	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// ErrClosed is returned by reads after Close.
var ErrClosed = errors.New("weir/stablestore: closed")

// Store is a raft.StableStore (and, for the metadata group, raft.LogStore)
// in a BoltDB file.
type Store struct {
	*raftboltdb.BoltStore
	mu     sync.RWMutex
	closed bool
}

// Open opens or creates the store at path.
func Open(path string) (*Store, error) {
	b, err := raftboltdb.New(raftboltdb.Options{Path: path})
	if err != nil {
		return nil, err
	}
	return &Store{BoltStore: b}, nil
}

// Set implements raft.StableStore.
func (s *Store) Set(k, v []byte) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil // see the package comment
	}
	return s.BoltStore.Set(k, v)
}

// SetUint64 implements raft.StableStore.
func (s *Store) SetUint64(k []byte, v uint64) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil // see the package comment
	}
	return s.BoltStore.SetUint64(k, v)
}

// Get implements raft.StableStore.
func (s *Store) Get(k []byte) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	return s.BoltStore.Get(k)
}

// GetUint64 implements raft.StableStore.
func (s *Store) GetUint64(k []byte) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, ErrClosed
	}
	return s.BoltStore.GetUint64(k)
}

// Close waits for the writes under way, then closes the file. Call it after
// Raft.Shutdown.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.BoltStore.Close()
}
