package stablestore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sync"
	"time"
	"weir/internal/durable"

	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	bolt "go.etcd.io/bbolt"
)

// Shared holds the stable stores of many Raft groups (a node's partitions)
// in one append-only journal file, and commits concurrent writes of all
// groups together: whoever writes while an fsync is under way waits for
// the next one, which carries every write that arrived meanwhile (group
// commit). The current values live in memory; the journal is replayed on
// open and rewritten when it has grown to several times what it holds.
//
// Why a journal: an election writes the term and the vote on the candidate
// and on every voter, in three calls in a row, each waiting for its fsync.
// When a thousand partitions elect at once (a topic created, a node lost),
// every vote waits for 6 fsyncs. A store per group made them queue behind
// each other (votes timed out, the elections never ended). BoltDB in one
// file, batching writes, still rewrote a page per group and synced twice
// per commit: 32 µs a write at best, 30 ms or more under such a storm, so
// elections outlived their timeouts and started over (1,000 partitions on
// three nodes never settled; 700 Raft goroutines waited in bolt). A
// journal write is a record of 30 bytes, and a commit is one write and one
// fdatasync of whatever accumulated.
type Shared struct {
	path string

	mu sync.Mutex
	f  *os.File
	// values are the current keys of each group.
	values map[string]map[string][]byte
	// pending holds encoded records not yet written, of the open batch.
	pending []byte
	open    *batch
	// kick wakes the flusher; stop ends it, and stopped is closed when it
	// has.
	kick          chan struct{}
	stop, stopped chan struct{}
	closeOnce     sync.Once
	closeErr      error
	// size is the journal's length; live estimates the bytes a rewrite
	// would keep.
	size, live int64
	// err is the first write or sync failure: the file's state is unknown
	// after it, so every later write fails too.
	err error
}

// Journal records. Every record is
//
//	u32 BE length of body | u32 BE CRC-32C of body | body
//
// and the body is an op byte, then uvarint-length-prefixed group, and for
// opSet a uvarint-length-prefixed key and the value (the rest).
const (
	opSet  = 1
	opDrop = 2
	// recordHeader is the length and checksum.
	recordHeader = 8
	// maxRecord bounds a record's body, checked before allocating.
	maxRecord = 1 << 20
	// compactRatio: the journal is rewritten when it is larger than both
	// compactMin and compactRatio times its live data.
	compactRatio = 4
)

// compactMin: see compactRatio. A variable so that tests can lower it.
var compactMin int64 = 1 << 20

// OpenShared opens or creates the journal at path. If older names the
// BoltDB file an earlier weir kept the groups in, and it exists, its groups
// are moved into the journal and it is removed.
func OpenShared(path, older string) (*Shared, error) {
	s := &Shared{path: path, values: make(map[string]map[string][]byte)}
	s.open = newBatch()
	if err := s.replay(); err != nil {
		return nil, err
	}
	if older != "" {
		if err := s.moveIn(older); err != nil {
			return nil, fmt.Errorf("weir/stablestore: move %s in: %w", older, err)
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, fmt.Errorf("weir/stablestore: %w", err)
	}
	s.f = f
	s.kick, s.stop, s.stopped = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	go s.flushLoop()
	return s, nil
}

// replay reads the journal into values, creating it if there is none. A
// torn record at the end (a write cut by a crash) is truncated away; a bad
// record followed by more data is corruption, reported with its offset.
func (s *Shared) replay() error {
	data, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return s.rewrite() // an empty journal, durably created
	}
	if err != nil {
		return fmt.Errorf("weir/stablestore: %w", err)
	}
	off := 0
	for off < len(data) {
		body, n, ok := nextRecord(data[off:])
		if !ok {
			if recordAfter(data, off) {
				return fmt.Errorf("weir/stablestore: %s: corrupt record at offset %d, with whole records after it", s.path, off)
			}
			return s.truncate(int64(off))
		}
		if err := s.apply(body); err != nil {
			return fmt.Errorf("weir/stablestore: %s: record at offset %d: %w", s.path, off, err)
		}
		off += n
	}
	s.size = int64(len(data))
	return nil
}

// nextRecord returns the body of the record at the start of data and its
// whole length. ok is false if the record is torn or fails its checksum;
// n is then the bytes it claims (at most len(data)).
func nextRecord(data []byte) (body []byte, n int, ok bool) {
	if len(data) < recordHeader {
		return nil, len(data), false
	}
	size := binary.BigEndian.Uint32(data)
	if size == 0 || size > maxRecord || int(size) > len(data)-recordHeader {
		return nil, len(data), false
	}
	n = recordHeader + int(size)
	body = data[recordHeader:n]
	return body, n, crc(body) == binary.BigEndian.Uint32(data[4:])
}

// recordAfter reports whether a whole record (a sane length and a matching
// checksum) starts anywhere in data after off: then the bad record at off
// is not a torn tail but damage in the middle, and cutting it off would
// lose what follows.
func recordAfter(data []byte, off int) bool {
	for i := off + 1; i+recordHeader < len(data); i++ {
		if _, _, ok := nextRecord(data[i:]); ok {
			return true
		}
	}
	return false
}

// truncate cuts the journal to size: the end of its last whole record.
func (s *Shared) truncate(size int64) error {
	if err := os.Truncate(s.path, size); err != nil {
		return fmt.Errorf("weir/stablestore: truncate torn tail: %w", err)
	}
	f, err := os.OpenFile(s.path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("weir/stablestore: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("weir/stablestore: %w", err)
	}
	s.size = size
	return nil
}

// apply applies one record's body to values.
func (s *Shared) apply(body []byte) error {
	if len(body) < 2 {
		return errors.New("short record")
	}
	op, rest := body[0], body[1:]
	group, rest, ok := cutField(rest)
	if !ok {
		return errors.New("bad group")
	}
	switch op {
	case opDrop:
		s.drop(string(group))
	case opSet:
		key, value, ok := cutField(rest)
		if !ok {
			return errors.New("bad key")
		}
		s.set(string(group), string(key), bytes.Clone(value))
	default:
		return fmt.Errorf("unknown op %d", op)
	}
	return nil
}

func (s *Shared) set(group, key string, value []byte) {
	m := s.values[group]
	if m == nil {
		m = make(map[string][]byte)
		s.values[group] = m
	}
	if _, ok := m[key]; !ok {
		s.live += int64(recordHeader + 4 + len(group) + len(key) + len(value))
	}
	m[key] = value
}

func (s *Shared) drop(group string) {
	for key, value := range s.values[group] {
		s.live -= int64(recordHeader + 4 + len(group) + len(key) + len(value))
	}
	delete(s.values, group)
}

// moveIn copies the groups of the BoltDB store at path into the journal,
// unless the journal has them already (moved in before the removal), then
// removes the file.
func (s *Shared) moveIn(path string) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return err
	}
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			if _, ok := s.values[string(name)]; ok {
				return nil
			}
			return b.ForEach(func(k, v []byte) error {
				s.set(string(name), string(k), bytes.Clone(v))
				return nil
			})
		})
	})
	db.Close()
	if err != nil {
		return err
	}
	if err := s.rewrite(); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil {
		return err
	}
	return durable.SyncDir(filepath.Dir(path))
}

// rewrite replaces the journal with one record per live key: written to a
// temporary file, synced, and renamed over it. The caller holds mu (and
// is the flusher), or is opening.
func (s *Shared) rewrite() error {
	var b []byte
	for group, m := range s.values {
		for key, value := range m {
			b = appendSet(b, group, key, value)
		}
	}
	if err := durable.WriteFile(s.path, b); err != nil {
		return fmt.Errorf("weir/stablestore: rewrite: %w", err)
	}
	s.size, s.live = int64(len(b)), int64(len(b))
	return nil
}

// write appends recs to the journal and returns once they are synced and
// applied. The flusher goroutine writes each batch of records with one
// fsync; records that arrive meanwhile wait for the next.
func (s *Shared) write(recs []byte) error {
	s.mu.Lock()
	if s.err != nil {
		defer s.mu.Unlock()
		return s.err
	}
	s.pending = append(s.pending, recs...)
	b := s.open
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	<-b.done
	return b.err
}

// flushLoop flushes until Close, then fails what is still pending.
func (s *Shared) flushLoop() {
	defer close(s.stopped)
	for {
		select {
		case <-s.kick:
		case <-s.stop:
			s.mu.Lock()
			if s.err == nil {
				s.err = ErrClosed // NB: under mu, so no write waits after this
			}
			s.pending = nil
			s.open = s.open.finish(s.err)
			s.mu.Unlock()
			return
		}
		s.mu.Lock()
		for len(s.pending) > 0 && s.err == nil {
			s.flush()
		}
		if s.err != nil && len(s.pending) > 0 {
			s.pending = nil
			s.open = s.open.finish(s.err)
		}
		s.mu.Unlock()
	}
}

// flush writes and syncs the open batch, then applies it to values: a
// value is visible only once durable, and in the journal's order. mu is
// held on entry and exit, and released during the I/O.
func (s *Shared) flush() {
	recs, b := s.pending, s.open
	s.pending, s.open = nil, newBatch()
	s.mu.Unlock()
	_, err := s.f.Write(recs)
	if err == nil {
		err = s.f.Sync()
	}
	s.mu.Lock()
	if err != nil {
		s.err = fmt.Errorf("weir/stablestore: %s: %w", s.path, err)
		b.finish(s.err)
		return
	}
	s.size += int64(len(recs))
	for off := 0; off < len(recs); {
		body, n, _ := nextRecord(recs[off:])
		s.apply(body) // NB: encoded by this package, so well-formed
		off += n
	}
	if s.size > max(compactMin, compactRatio*s.live) {
		// NB: under mu: writers wait for the rewrite, which is small
		// (the live keys) and rare (after 4 times as many writes).
		if err := s.rewrite(); err != nil {
			s.err = err
		} else if err := s.reopen(); err != nil {
			s.err = err
		}
	}
	b.finish(nil)
}

// batch is the records of one flush; done is closed once they are synced
// or have failed with err.
type batch struct {
	done chan struct{}
	err  error
}

func newBatch() *batch { return &batch{done: make(chan struct{})} }

// finish ends b with err and returns a new open batch.
func (b *batch) finish(err error) *batch {
	b.err = err
	close(b.done)
	return newBatch()
}

// reopen reopens the journal for appending after a rewrite renamed a new
// file over it.
func (s *Shared) reopen() error {
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("weir/stablestore: %w", err)
	}
	s.f.Close()
	s.f = f
	return nil
}

// Close stops the flusher, after the flush under way, and closes the
// journal; later writes fail. Close every group's store first.
func (s *Shared) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.stopped
		s.closeErr = s.f.Close()
	})
	return s.closeErr
}

// Group returns the stable store of group name. If legacy names the file of
// a store of its own the group had before (Open's), its keys are moved in
// (unless the group has some already) and the file is removed.
func (s *Shared) Group(name, legacy string) (*Group, error) {
	g := &Group{s: s, name: name}
	if legacy == "" {
		return g, nil
	}
	if _, err := os.Stat(legacy); errors.Is(err, os.ErrNotExist) {
		return g, nil
	}
	if err := s.adopt(g, legacy); err != nil {
		return nil, fmt.Errorf("weir/stablestore: move %s in: %w", legacy, err)
	}
	if err := os.Remove(legacy); err != nil {
		return nil, fmt.Errorf("weir/stablestore: %w", err)
	}
	return g, durable.SyncDir(filepath.Dir(legacy))
}

// adopt copies the keys of the legacy store at path into g, if g has none.
func (s *Shared) adopt(g *Group, path string) error {
	s.mu.Lock()
	_, has := s.values[g.name]
	s.mu.Unlock()
	if has {
		return nil // moved in before; the removal did not happen
	}
	old, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return err
	}
	defer old.Close()
	var rec []byte
	err = old.View(func(tx *bolt.Tx) error {
		src := tx.Bucket(legacyBucket)
		if src == nil {
			return nil
		}
		return src.ForEach(func(k, v []byte) error {
			rec = appendSet(rec, g.name, string(k), v)
			return nil
		})
	})
	if err != nil || len(rec) == 0 {
		return err
	}
	return s.write(rec)
}

// legacyBucket is where raft-boltdb keeps a stable store's keys.
var legacyBucket = []byte("conf")

// Drop deletes group name's keys: its replica is gone from this node.
func (s *Shared) Drop(name string) error {
	return s.write(appendRecord(nil, opDrop, name, "", nil))
}

// Group is one group's raft.StableStore in a Shared store. Like Store, it
// drops writes after Close (see the package comment).
type Group struct {
	s      *Shared
	name   string
	mu     sync.RWMutex
	closed bool
}

// Set implements raft.StableStore.
func (g *Group) Set(k, v []byte) error {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.closed {
		return nil // see the package comment
	}
	return g.s.write(appendSet(nil, g.name, string(k), v))
}

// SetUint64 implements raft.StableStore.
func (g *Group) SetUint64(k []byte, v uint64) error {
	return g.Set(k, uint64ToBytes(v))
}

// Get implements raft.StableStore. A missing key is raftboltdb's
// ErrKeyNotFound, whose text Raft checks for.
func (g *Group) Get(k []byte) ([]byte, error) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.closed {
		return nil, ErrClosed
	}
	g.s.mu.Lock()
	v, ok := g.s.values[g.name][string(k)]
	g.s.mu.Unlock()
	if !ok {
		return nil, raftboltdb.ErrKeyNotFound
	}
	return bytes.Clone(v), nil
}

// GetUint64 implements raft.StableStore.
func (g *Group) GetUint64(k []byte) (uint64, error) {
	v, err := g.Get(k)
	if err != nil {
		return 0, err
	}
	return bytesToUint64(v), nil
}

// Close waits for the writes under way; later writes are dropped. The
// journal stays open.
func (g *Group) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	return nil
}

func appendSet(b []byte, group, key string, value []byte) []byte {
	return appendRecord(b, opSet, group, key, value)
}

// appendRecord appends one framed record to b.
func appendRecord(b []byte, op byte, group, key string, value []byte) []byte {
	start := len(b)
	b = append(b, make([]byte, recordHeader)...)
	b = append(b, op)
	b = binary.AppendUvarint(b, uint64(len(group)))
	b = append(b, group...)
	if op == opSet {
		b = binary.AppendUvarint(b, uint64(len(key)))
		b = append(b, key...)
		b = append(b, value...)
	}
	body := b[start+recordHeader:]
	binary.BigEndian.PutUint32(b[start:], uint32(len(body)))
	binary.BigEndian.PutUint32(b[start+4:], crc(body))
	return b
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// cutField splits a uvarint-length-prefixed field off b.
func cutField(b []byte) (field, rest []byte, ok bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return nil, nil, false
	}
	return b[k : k+int(n)], b[k+int(n):], true
}

// The encoding of raft-boltdb, so that moved-in values read the same.
func uint64ToBytes(u uint64) []byte { return binary.BigEndian.AppendUint64(nil, u) }

func bytesToUint64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}
