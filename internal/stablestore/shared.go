package stablestore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	bolt "go.etcd.io/bbolt"
)

// Shared holds the stable stores of many Raft groups (a node's partitions)
// in one BoltDB file, a bucket per group, and commits concurrent writes of
// different groups together (bolt's Batch): one fsync for many.
//
// Why: a store per group fsyncs each write on its own, and an election
// writes the term and the vote (raft persists them in separate calls). When
// a thousand partitions elect at once (a topic created, a node lost), the
// votes queued behind each other's fsyncs for seconds, votes timed out,
// and the elections never ended (measured: no leader for any of 1,000 new
// partitions after a minute; half the samples in bolt commits).
type Shared struct {
	db *bolt.DB
}

// sharedBatchDelay bounds how long a write waits for others to share its
// commit. An election is a few hundred milliseconds; a few more for the
// vote is cheap.
const sharedBatchDelay = 2 * time.Millisecond

// OpenShared opens or creates the shared store at path.
func OpenShared(path string) (*Shared, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("weir/stablestore: %s: %w", path, err)
	}
	db.MaxBatchDelay = sharedBatchDelay
	return &Shared{db: db}, nil
}

// Close closes the file. Close every group's store first.
func (s *Shared) Close() error { return s.db.Close() }

// Group returns the stable store of group name. If legacy names the file of
// a store of its own the group had before (Open's), its keys are moved in
// (unless the group has some already) and the file is removed.
func (s *Shared) Group(name, legacy string) (*Group, error) {
	g := &Group{s: s, bucket: []byte(name)}
	if legacy == "" {
		return g, nil
	}
	if _, err := os.Stat(legacy); errors.Is(err, os.ErrNotExist) {
		return g, nil
	}
	if err := s.adopt(g.bucket, legacy); err != nil {
		return nil, fmt.Errorf("weir/stablestore: move %s in: %w", legacy, err)
	}
	if err := os.Remove(legacy); err != nil {
		return nil, fmt.Errorf("weir/stablestore: %w", err)
	}
	return g, syncDir(filepath.Dir(legacy))
}

// adopt copies the keys of the legacy store at path into bucket, if the
// bucket is empty, in one committed transaction.
func (s *Shared) adopt(bucket []byte, path string) error {
	old, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return err
	}
	defer old.Close()
	return s.db.Update(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucket); b != nil && b.Stats().KeyN > 0 {
			return nil // moved in before; the removal did not happen
		}
		dst, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		return old.View(func(otx *bolt.Tx) error {
			src := otx.Bucket(legacyBucket)
			if src == nil {
				return nil
			}
			return src.ForEach(func(k, v []byte) error { return dst.Put(bytes.Clone(k), bytes.Clone(v)) })
		})
	})
}

// legacyBucket is where raft-boltdb keeps a stable store's keys.
var legacyBucket = []byte("conf")

// Drop deletes group name's keys: its replica is gone from this node.
func (s *Shared) Drop(name string) error {
	return s.db.Batch(func(tx *bolt.Tx) error {
		err := tx.DeleteBucket([]byte(name))
		if errors.Is(err, bolt.ErrBucketNotFound) {
			return nil
		}
		return err
	})
}

// Group is one group's raft.StableStore in a Shared store. Like Store, it
// drops writes after Close (see the package comment).
type Group struct {
	s      *Shared
	bucket []byte
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
	return g.s.db.Batch(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(g.bucket)
		if err != nil {
			return err
		}
		return b.Put(k, v)
	})
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
	var v []byte
	err := g.s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(g.bucket); b != nil {
			v = bytes.Clone(b.Get(k))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, raftboltdb.ErrKeyNotFound
	}
	return v, nil
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
// shared file stays open.
func (g *Group) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	return nil
}

// The encoding of raft-boltdb, so that moved-in values read the same.
func uint64ToBytes(u uint64) []byte { return binary.BigEndian.AppendUint64(nil, u) }

func bytesToUint64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// syncDir fsyncs a directory, so that a removal in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
