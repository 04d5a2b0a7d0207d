package partition

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"weir/internal/durable"
	wlog "weir/log"
)

// snapshotStore is the partition's raft.SnapshotStore.
//
// A snapshot the partition takes (FSM.Snapshot, then Persist) holds only the
// small state (snapshotState): it is cheap however large the log is. When
// Raft opens a snapshot to send it to a follower that is behind the leader's
// log start, Open streams the state followed by the log's frames from the log
// start to the snapshot's index, read from the live log. The follower stores
// that whole stream and restores from it (fsm.Restore): its log then holds
// everything the leader's retention keeps, and Raft replication continues
// after the snapshot index. So retention, not Raft, decides what is kept on
// every replica, and no record is written twice on the leader.
type snapshotStore struct {
	dir    string
	log    *wlog.Log
	latest atomic.Uint64 // index of the newest snapshot; 0 if none

	mu sync.Mutex // serializes finishing sinks (rename, reap)
}

const (
	snapSuffix = ".snap"
	metaSuffix = ".meta"
	tmpSuffix  = ".tmp"
	// keepSnapshots: Raft needs only the newest; it is written before the
	// older one is removed.
	keepSnapshots = 1
)

func newSnapshotStore(dir string, l *wlog.Log) (*snapshotStore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("weir/partition: snapshots: %w", err)
	}
	tmps, _ := filepath.Glob(filepath.Join(dir, "*"+tmpSuffix))
	for _, t := range tmps {
		os.Remove(t) // a snapshot cut short by a crash
	}
	s := &snapshotStore{dir: dir, log: l}
	metas, err := s.List()
	if err != nil {
		return nil, err
	}
	if len(metas) > 0 {
		s.latest.Store(metas[0].Index)
	}
	return s, nil
}

// Create implements raft.SnapshotStore.
func (s *snapshotStore) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration,
	configurationIndex uint64, _ raft.Transport) (raft.SnapshotSink, error) {
	id := fmt.Sprintf("%020d-%020d-%d", index, term, time.Now().UnixMilli())
	f, err := os.Create(filepath.Join(s.dir, id+snapSuffix+tmpSuffix))
	if err != nil {
		return nil, fmt.Errorf("weir/partition: create snapshot: %w", err)
	}
	return &snapshotSink{store: s, file: f, meta: raft.SnapshotMeta{
		Version: version, ID: id, Index: index, Term: term,
		Configuration: configuration, ConfigurationIndex: configurationIndex,
	}}, nil
}

// List implements raft.SnapshotStore: newest first.
func (s *snapshotStore) List() ([]*raft.SnapshotMeta, error) {
	names, err := filepath.Glob(filepath.Join(s.dir, "*"+metaSuffix))
	if err != nil {
		return nil, err
	}
	var metas []*raft.SnapshotMeta
	for _, name := range names {
		m, err := readMeta(name)
		if err != nil {
			return nil, err
		}
		metas = append(metas, m)
	}
	sort.Slice(metas, func(i, j int) bool {
		if metas[i].Index != metas[j].Index {
			return metas[i].Index > metas[j].Index
		}
		return metas[i].ID > metas[j].ID
	})
	return metas, nil
}

func readMeta(path string) (*raft.SnapshotMeta, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("weir/partition: snapshot meta: %w", err)
	}
	var m raft.SnapshotMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("weir/partition: snapshot meta %s: %w", path, err)
	}
	return &m, nil
}

// Open implements raft.SnapshotStore. A snapshot received from a leader is
// returned as stored; one taken here gets the log's frames appended.
func (s *snapshotStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	if strings.ContainsAny(id, `/\`) {
		return nil, nil, fmt.Errorf("weir/partition: bad snapshot id %q", id)
	}
	meta, err := readMeta(filepath.Join(s.dir, id+metaSuffix))
	if err != nil {
		return nil, nil, err
	}
	f, err := os.Open(filepath.Join(s.dir, id+snapSuffix))
	if err != nil {
		return nil, nil, fmt.Errorf("weir/partition: open snapshot: %w", err)
	}
	st, err := readState(f)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("weir/partition: snapshot %s: %w", id, err)
	}
	// A snapshot received from a leader says where its frames start (there
	// may be none); one taken here (logStartIndex 0) gets the log's frames.
	if st.dataBytes > 0 || st.logStartIndex > 0 {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			f.Close()
			return nil, nil, err
		}
		return meta, f, nil
	}
	f.Close()
	// Raft's index for the snapshot may be past the FSM's last applied
	// entry: the no-ops and barriers after it reach no FSM. They change no
	// state, so the state holds at meta.Index, where the follower continues.
	st.appliedIndex = max(st.appliedIndex, meta.Index)
	r, err := s.withFrames(&st)
	if err != nil {
		return nil, nil, fmt.Errorf("weir/partition: snapshot %s: %w", id, err)
	}
	m := *meta
	m.Size = r.size
	return &m, r, nil
}

// withFrames returns a reader of st followed by the live log's frames from
// its start to st.appliedIndex. The ranges it reads hold their segments, so
// retention cannot pull them away mid-stream.
func (s *snapshotStore) withFrames(st *snapshotState) (*framesReader, error) {
	first := s.log.FirstIndex()
	st.logStartIndex, st.logStartOffset, st.dataBytes = st.appliedIndex+1, st.highWatermark, 0
	r := &framesReader{}
	if first <= st.appliedIndex {
		base, _, err := s.log.EntryOffsets(first)
		if err != nil {
			return nil, err
		}
		st.logStartIndex, st.logStartOffset = first, base
		for i := first; i <= st.appliedIndex; {
			rng, err := s.log.FileRange(i, st.appliedIndex, 1<<62)
			if err != nil {
				r.Close()
				return nil, err
			}
			r.ranges = append(r.ranges, rng)
			st.dataBytes += uint64(rng.Len)
			i = rng.LastIndex + 1
		}
	}
	var head bytes.Buffer
	if _, err := writeState(&head, st); err != nil {
		r.Close()
		return nil, err
	}
	r.head = head.Bytes()
	r.size = int64(len(r.head)) + int64(st.dataBytes)
	return r, nil
}

// framesReader reads a state header, then file ranges of frames.
type framesReader struct {
	head   []byte
	ranges []wlog.FileRange
	at     int64 // bytes read of ranges[0]
	size   int64
}

func (r *framesReader) Read(p []byte) (int, error) {
	if len(r.head) > 0 {
		n := copy(p, r.head)
		r.head = r.head[n:]
		return n, nil
	}
	for len(r.ranges) > 0 {
		rng := &r.ranges[0]
		if r.at == rng.Len {
			rng.Release()
			r.ranges, r.at = r.ranges[1:], 0
			continue
		}
		n, err := rng.File.ReadAt(p[:min(int64(len(p)), rng.Len-r.at)], rng.Pos+r.at)
		r.at += int64(n)
		if err == io.EOF && r.at == rng.Len {
			err = nil
		}
		return n, err
	}
	return 0, io.EOF
}

func (r *framesReader) Close() error {
	for i := range r.ranges {
		r.ranges[i].Release()
	}
	r.ranges = nil
	return nil
}

// snapshotSink writes one snapshot: the data to a temporary file, renamed
// into place with its meta on Close.
type snapshotSink struct {
	store *snapshotStore
	file  *os.File
	meta  raft.SnapshotMeta
	// done is set by the first Close or Cancel, err is what Close returned:
	// Raft closes the sink after FSMSnapshot.Persist has closed it.
	done bool
	err  error
}

func (k *snapshotSink) ID() string { return k.meta.ID }

func (k *snapshotSink) Write(p []byte) (int, error) {
	n, err := k.file.Write(p)
	k.meta.Size += int64(n)
	return n, err
}

func (k *snapshotSink) Cancel() error {
	if k.done {
		return nil
	}
	k.done = true
	k.file.Close()
	return os.Remove(k.file.Name())
}

func (k *snapshotSink) Close() error {
	if k.done {
		return k.err
	}
	k.err = k.close()
	k.done = true
	return k.err
}

func (k *snapshotSink) close() error {
	s := k.store
	if err := k.file.Sync(); err != nil {
		k.Cancel()
		return fmt.Errorf("weir/partition: sync snapshot: %w", err)
	}
	if err := k.file.Close(); err != nil {
		os.Remove(k.file.Name())
		return fmt.Errorf("weir/partition: close snapshot: %w", err)
	}
	stem := filepath.Join(s.dir, k.meta.ID)
	if err := os.Rename(k.file.Name(), stem+snapSuffix); err != nil {
		return fmt.Errorf("weir/partition: snapshot: %w", err)
	}
	// The meta is written last: a snapshot without one does not exist.
	b, err := json.Marshal(&k.meta)
	if err != nil {
		return err
	}
	if err := durable.WriteFile(stem+metaSuffix, b); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if k.meta.Index > s.latest.Load() {
		s.latest.Store(k.meta.Index)
	}
	return s.reap()
}

// reap removes all but the newest snapshots. REQUIRES: s.mu held.
func (s *snapshotStore) reap() error {
	metas, err := s.List()
	if err != nil {
		return err
	}
	for _, m := range metas[min(len(metas), keepSnapshots):] {
		stem := filepath.Join(s.dir, m.ID)
		os.Remove(stem + metaSuffix) // meta first: see Close
		os.Remove(stem + snapSuffix)
	}
	return nil
}
