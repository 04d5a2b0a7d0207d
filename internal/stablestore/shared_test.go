package stablestore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

func openShared(t *testing.T, path string) *Shared {
	t.Helper()
	s, err := OpenShared(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func group(t *testing.T, s *Shared, name, legacy string) *Group {
	t.Helper()
	g, err := s.Group(name, legacy)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestSharedGroupsKeepTheirOwnKeysAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.db")
	s := openShared(t, path)
	a, b := group(t, s, "p/1/0", ""), group(t, s, "p/1/1", "")
	if err := a.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	if err := a.Set([]byte("LastVoteCand"), []byte("2")); err != nil {
		t.Fatal(err)
	}
	if err := b.SetUint64([]byte("CurrentTerm"), 3); err != nil {
		t.Fatal(err)
	}
	// Raft tells a missing key by this error's text.
	if _, err := b.Get([]byte("LastVoteCand")); err == nil || err.Error() != raftboltdb.ErrKeyNotFound.Error() {
		t.Fatalf("missing key: %v, want %q", err, raftboltdb.ErrKeyNotFound)
	}
	a.Close()
	b.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openShared(t, path)
	defer s.Close()
	a, b = group(t, s, "p/1/0", ""), group(t, s, "p/1/1", "")
	if v, err := a.GetUint64([]byte("CurrentTerm")); err != nil || v != 7 {
		t.Fatalf("a's term after reopen: %d, %v", v, err)
	}
	if v, err := a.Get([]byte("LastVoteCand")); err != nil || string(v) != "2" {
		t.Fatalf("a's vote after reopen: %q, %v", v, err)
	}
	if v, err := b.GetUint64([]byte("CurrentTerm")); err != nil || v != 3 {
		t.Fatalf("b's term after reopen: %d, %v", v, err)
	}

	if err := s.Drop("p/1/0"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.GetUint64([]byte("CurrentTerm")); err == nil {
		t.Fatal("a dropped group still has its term")
	}
	if err := s.Drop("never-was"); err != nil {
		t.Fatalf("dropping an unknown group: %v", err)
	}
}

// A group that had a file of its own takes its keys over, once, and the
// file goes.
func TestSharedGroupMovesALegacyStoreIn(t *testing.T) {
	dir := t.TempDir()
	legacy := filepath.Join(dir, "raft.db")
	old, err := Open(legacy)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.SetUint64([]byte("CurrentTerm"), 42); err != nil {
		t.Fatal(err)
	}
	if err := old.Set([]byte("LastVoteCand"), []byte("3")); err != nil {
		t.Fatal(err)
	}
	old.Close()

	s := openShared(t, filepath.Join(dir, "shared.db"))
	defer s.Close()
	g := group(t, s, "p/9/0", legacy)
	if v, err := g.GetUint64([]byte("CurrentTerm")); err != nil || v != 42 {
		t.Fatalf("term moved in: %d, %v", v, err)
	}
	if v, err := g.Get([]byte("LastVoteCand")); err != nil || string(v) != "3" {
		t.Fatalf("vote moved in: %q, %v", v, err)
	}
	if _, err := os.Stat(legacy); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("legacy file still there: %v", err)
	}
	// Later opens find no file and keep what the group has.
	if err := g.SetUint64([]byte("CurrentTerm"), 43); err != nil {
		t.Fatal(err)
	}
	g = group(t, s, "p/9/0", legacy)
	if v, err := g.GetUint64([]byte("CurrentTerm")); err != nil || v != 43 {
		t.Fatalf("term after a second open: %d, %v", v, err)
	}
}

// After Close a group drops writes and fails reads (see Store), and the
// shared file stays usable for the others.
func TestSharedGroupClose(t *testing.T) {
	s := openShared(t, filepath.Join(t.TempDir(), "shared.db"))
	defer s.Close()
	a, b := group(t, s, "a", ""), group(t, s, "b", "")
	a.Close()
	if err := a.SetUint64([]byte("CurrentTerm"), 5); err != nil {
		t.Fatalf("write after Close: %v, want it dropped", err)
	}
	if _, err := a.Get([]byte("CurrentTerm")); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after Close: %v, want ErrClosed", err)
	}
	if err := b.SetUint64([]byte("CurrentTerm"), 5); err != nil {
		t.Fatal(err)
	}
	if v, err := b.GetUint64([]byte("CurrentTerm")); err != nil || v != 5 {
		t.Fatalf("other group: %d, %v", v, err)
	}
}

// Many groups writing at once (an election on every partition): every
// write is there afterwards.
func TestSharedConcurrentWrites(t *testing.T) {
	s := openShared(t, filepath.Join(t.TempDir(), "shared.db"))
	defer s.Close()
	const groups, writes = 50, 20
	var wg sync.WaitGroup
	errs := make(chan error, groups)
	for i := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g, err := s.Group(fmt.Sprint("g", i), "")
			if err != nil {
				errs <- err
				return
			}
			for w := range writes {
				if err := g.SetUint64([]byte("CurrentTerm"), uint64(w+1)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := range groups {
		g := group(t, s, fmt.Sprint("g", i), "")
		if v, err := g.GetUint64([]byte("CurrentTerm")); err != nil || v != writes {
			t.Fatalf("group %d: term %d, %v; want %d", i, v, err, writes)
		}
	}
}
