package stablestore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	bolt "go.etcd.io/bbolt"
)

func openShared(t *testing.T, path string) *Shared {
	t.Helper()
	s, err := OpenShared(path, "")
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

// An earlier weir kept the groups in a BoltDB file, a bucket per group:
// opening the journal moves them in and removes the file.
func TestSharedMovesTheBoltStoreIn(t *testing.T) {
	dir := t.TempDir()
	older := filepath.Join(dir, "partitions-raft.db")
	db, err := bolt.Open(older, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for i := range 3 {
			b, err := tx.CreateBucket(fmt.Appendf(nil, "p/1/%d", i))
			if err != nil {
				return err
			}
			if err := b.Put([]byte("CurrentTerm"), uint64ToBytes(uint64(10+i))); err != nil {
				return err
			}
		}
		return nil
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "partitions-raft.journal")
	for range 2 { // the second open finds the journal alone
		s, err := OpenShared(path, older)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			g := group(t, s, fmt.Sprintf("p/1/%d", i), "")
			if v, err := g.GetUint64([]byte("CurrentTerm")); err != nil || v != uint64(10+i) {
				t.Fatalf("group %d: term %d, %v", i, v, err)
			}
		}
		if _, err := os.Stat(older); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("bolt file still there: %v", err)
		}
		s.Close()
	}
}

// writeTerms opens the journal at path, sets terms 1..n of group "g", and
// closes it.
func writeTerms(t *testing.T, path string, n int) {
	t.Helper()
	s := openShared(t, path)
	g := group(t, s, "g", "")
	for i := 1; i <= n; i++ {
		if err := g.SetUint64([]byte("CurrentTerm"), uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func termAfterOpen(t *testing.T, path string) uint64 {
	t.Helper()
	s := openShared(t, path)
	defer s.Close()
	v, err := group(t, s, "g", "").GetUint64([]byte("CurrentTerm"))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A record cut by a crash is the journal's torn tail: it is truncated, and
// what came before it stays.
func TestSharedTruncatesATornTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	writeTerms(t, path, 5)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	recLen := int64(len(appendSet(nil, "g", "CurrentTerm", uint64ToBytes(1))))
	for _, cut := range []int64{1, recordHeader, recLen - 1} { // inside the last record
		if err := os.Truncate(path, fi.Size()-cut); err != nil {
			t.Fatal(err)
		}
		if v := termAfterOpen(t, path); v != 4 {
			t.Fatalf("cut %d bytes: term %d, want 4 (the last whole record)", cut, v)
		}
		if got, _ := os.Stat(path); got.Size() != fi.Size()-recLen {
			t.Fatalf("cut %d bytes: journal is %d bytes, want the torn record gone (%d)", cut, got.Size(), fi.Size()-recLen)
		}
		writeTerms(t, path, 5) // whole again
		fi, _ = os.Stat(path)
	}
	// Zeros after the end (an extended file whose data never made it).
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(make([]byte, 100))
	f.Close()
	if v := termAfterOpen(t, path); v != 5 {
		t.Fatalf("zero tail: term %d, want 5", v)
	}
}

// A damaged record with whole records after it is corruption: opening
// fails and names the file and the offset, and nothing is cut.
func TestSharedReportsCorruptionInTheMiddle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	writeTerms(t, path, 5)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	recLen := len(appendSet(nil, "g", "CurrentTerm", uint64ToBytes(1)))
	data[2*recLen+recordHeader+3] ^= 0xff // inside the third record's body
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = OpenShared(path, "")
	want := fmt.Sprintf("%s: corrupt record at offset %d", path, 2*recLen)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("open: %v, want an error containing %q", err, want)
	}
	if after, _ := os.ReadFile(path); len(after) != len(data) {
		t.Fatalf("journal changed from %d to %d bytes", len(data), len(after))
	}
}

// The journal is rewritten when it outgrows what it holds, and the values
// survive the rewrite and a reopen.
func TestSharedRewritesAGrownJournal(t *testing.T) {
	defer func(v int64) { compactMin = v }(compactMin)
	compactMin = 4 << 10
	path := filepath.Join(t.TempDir(), "j")
	s := openShared(t, path)
	gs := []*Group{group(t, s, "a", ""), group(t, s, "b", "")}
	recLen := len(appendSet(nil, "a", "CurrentTerm", uint64ToBytes(1)))
	writes := int(3 * compactMin / int64(recLen)) // past compactMin three times over
	var wg sync.WaitGroup
	for _, g := range gs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= writes/2; i++ {
				if err := g.SetUint64([]byte("CurrentTerm"), uint64(i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() >= int64(writes*recLen) {
		t.Fatalf("journal is %d bytes after %d writes: never rewritten", fi.Size(), writes)
	}
	s = openShared(t, path)
	defer s.Close()
	for _, name := range []string{"a", "b"} {
		if v, err := group(t, s, name, "").GetUint64([]byte("CurrentTerm")); err != nil || v != uint64(writes/2) {
			t.Fatalf("group %s: term %d, %v; want %d", name, v, err, writes/2)
		}
	}
}

// Writers racing on one key: the journal keeps the order the values
// became visible in, so the value read back after a reopen is the one
// read before.
func TestSharedRacingWritesOfOneKeyReopenTheSame(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	s := openShared(t, path)
	g := group(t, s, "g", "")
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				if err := g.SetUint64([]byte("CurrentTerm"), uint64(w*1000+i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	before, err := g.GetUint64([]byte("CurrentTerm"))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if after := termAfterOpen(t, path); after != before {
		t.Fatalf("term %d before the reopen, %d after", before, after)
	}
}
