package stablestore

import (
	"path/filepath"
	"testing"
)

// TestWritesAfterCloseAreDropped: a late write (a heartbeat's term, after
// Raft's shutdown) neither fails nor reaches the file; reads fail.
func TestWritesAfterCloseAreDropped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 3); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 4); err != nil {
		t.Fatalf("write after close: %v", err)
	}
	if err := s.Set([]byte("LastVoteCand"), []byte("x")); err != nil {
		t.Fatalf("write after close: %v", err)
	}
	if _, err := s.GetUint64([]byte("CurrentTerm")); err != ErrClosed {
		t.Fatalf("read after close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 3 {
		t.Fatalf("term after reopen = %d, %v; want 3", v, err)
	}
}
