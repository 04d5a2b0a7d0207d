package broker

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"weir/cluster"
	"weir/internal/peer"
	wlog "weir/log"
	"weir/partition"
)

// replicaKey names a partition of a topic.
type replicaKey struct {
	topic     string
	partition int32
}

func (k replicaKey) String() string { return fmt.Sprintf("%s-%d", k.topic, k.partition) }

// replica is a partition replica this node hosts.
type replica struct {
	key       replicaKey
	topicID   uint64
	config    cluster.TopicConfig
	partition *partition.Partition
	transport raft.Transport
	// lost is set while this replica, opened empty in a partition that
	// has had a leader (its data was lost), has not yet been demoted to a
	// non-voter by the leader (see demoteLost).
	lost atomic.Bool
}

// replicaSet is the partitions this node hosts, kept in line with the
// metadata by reconcile.
type replicaSet struct {
	mu sync.RWMutex
	m  map[replicaKey]*replica
}

// all returns the hosted replicas.
func (s *replicaSet) all() []*replica {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*replica, 0, len(s.m))
	for _, r := range s.m {
		out = append(out, r)
	}
	return out
}

func (s *replicaSet) get(topic string, p int32) *replica {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.m[replicaKey{topic, p}]
}

// replicaDir is where a replica's files live. The topic id keeps a topic
// created again under an old name apart from the old one's files.
func (b *Broker) replicaDir(k replicaKey, topicID uint64) string {
	return filepath.Join(b.cfg.DataDir, "partitions", fmt.Sprintf("%s-%d-%d", k.topic, topicID, k.partition))
}

// reconcile opens the replicas the metadata gives this node and closes (and
// deletes) the ones it no longer does. A replica whose topic settings
// changed is reopened with the new ones. The lock is held only to change
// the set: closing and opening Raft groups is slow, and requests must go on
// meanwhile. It returns false if a replica failed to open (the caller
// retries).
func (b *Broker) reconcile(meta *cluster.Metadata) bool {
	want := map[replicaKey]*cluster.Topic{}
	for _, t := range meta.Topics {
		for p, nodes := range t.Replicas {
			if slices.Contains(nodes, b.cfg.NodeID) {
				want[replicaKey{t.Name, int32(p)}] = t
			}
		}
	}
	var stale []*replica
	b.replicas.mu.Lock()
	for k, r := range b.replicas.m {
		if t := want[k]; t == nil || t.ID != r.topicID || !configEqual(t.Config, r.config) {
			delete(b.replicas.m, k)
			stale = append(stale, r)
		}
	}
	var missing []replicaKey
	for k := range want {
		if b.replicas.m[k] == nil {
			missing = append(missing, k)
		}
	}
	b.replicas.mu.Unlock()
	// Every node opens a new topic's replicas in the same order, so that
	// the replicas of a partition open at about the same time and its
	// first election finds its peers there. In map order, a 1,000-partition
	// topic's candidates spent half a minute on votes refused by replicas
	// not open yet, and the retries buried the nodes.
	slices.SortFunc(missing, func(a, b replicaKey) int {
		return cmp.Or(strings.Compare(a.topic, b.topic), cmp.Compare(a.partition, b.partition))
	})

	for _, r := range stale {
		r.close(b)
		if t := want[r.key]; t == nil || t.ID != r.topicID {
			// The topic is gone, or the replica moved away: so is its data.
			if err := os.RemoveAll(b.replicaDir(r.key, r.topicID)); err != nil {
				b.logger.Warn("removing replica", "partition", r.key, "err", err)
			}
			if err := b.raftState.Drop(replicaGroup(r.topicID, r.key.partition)); err != nil {
				b.logger.Warn("removing replica's Raft state", "partition", r.key, "err", err)
			}
		}
	}
	// Open several at once: each open waits on fsyncs (a new log, Raft's
	// stable store), and a node restarting with a thousand replicas, or a
	// topic of a thousand partitions, would otherwise take minutes. Stop
	// opening at Close, which waits for this.
	var failed atomic.Bool
	var wg sync.WaitGroup
	sem := make(chan struct{}, parallelOpens)
	for _, k := range missing {
		select {
		case sem <- struct{}{}:
		case <-b.stop:
			wg.Wait()
			return false
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			r, err := b.openReplica(k, want[k], meta)
			if err != nil {
				b.logger.Error("opening replica", "partition", k, "err", err)
				failed.Store(true)
				return
			}
			b.replicas.mu.Lock()
			b.replicas.m[k] = r
			b.replicas.mu.Unlock()
		}()
	}
	wg.Wait()
	return !failed.Load()
}

// parallelOpens is how many replicas reconcile opens at once.
const parallelOpens = 8

// close stops the replica's Raft group and its transport.
func (r *replica) close(b *Broker) {
	if err := r.partition.Close(); err != nil {
		b.logger.Warn("closing replica", "partition", r.key, "err", err)
	}
	if c, ok := r.transport.(raft.WithClose); ok {
		c.Close()
	}
}

func configEqual(a, b cluster.TopicConfig) bool { return reflect.DeepEqual(a, b) }

// openReplica opens one replica with its topic's settings. Its Raft group
// goes over the peer listener. The replicas of a new partition bootstrap
// its group, each with the same configuration (all of them as voters),
// which Raft allows. A partition that has had a leader is never
// bootstrapped again: a replica without state then (a node added by a
// reassignment, or one whose data was lost) starts empty and the leader
// brings it up to date.
func (b *Broker) openReplica(k replicaKey, t *cluster.Topic, meta *cluster.Metadata) (*replica, error) {
	opts, err := logOptions(t.Config)
	if err != nil {
		return nil, err
	}
	var peers []raft.Server
	isNew := t.Leader(k.partition).Leader == 0 && t.Target(k.partition) == nil
	for _, n := range t.Replicas[k.partition] {
		if !isNew {
			break
		}
		addr := meta.Nodes[n].PeerAddr
		if addr == "" {
			return nil, fmt.Errorf("replica node %d has no peer address yet", n)
		}
		peers = append(peers, raft.Server{ID: cluster.ServerID(n), Address: raft.ServerAddress(addr)})
	}
	_, statErr := os.Stat(b.replicaDir(k, t.ID))
	lost := os.IsNotExist(statErr) && !isNew && !slices.Contains(t.Target(k.partition), b.cfg.NodeID)
	trans, err := peer.NewTransport(b.mux, replicaGroup(t.ID, k.partition), b.transportConfig())
	if err != nil {
		return nil, err
	}
	// A replica that had a file of its own (before the shared one) moves
	// its keys in.
	stable, err := b.raftState.Group(replicaGroup(t.ID, k.partition), filepath.Join(b.replicaDir(k, t.ID), "raft.db"))
	if err != nil {
		trans.Close()
		return nil, err
	}
	p, err := partition.Open(partition.Config{
		ID: cluster.ServerID(b.cfg.NodeID), Dir: b.replicaDir(k, t.ID), Log: opts, Transport: trans,
		StableStore: stable, Peers: peers,
		HeartbeatTimeout: b.cfg.RaftHeartbeatTimeout, ElectionTimeout: b.cfg.RaftElectionTimeout,
		LeaderLeaseTimeout: b.cfg.RaftLeaderLeaseTimeout,
		RetentionInterval:  b.cfg.RetentionInterval,
		Logger:             b.logger.With("partition", k.String()),
		OnLeaderChange: func(info partition.LeaderInfo) {
			if info.IsLeader {
				b.leaders.add(cluster.LeaderReport{Topic: k.topic, TopicID: t.ID, Partition: k.partition,
					PartitionLeader: cluster.PartitionLeader{Leader: b.cfg.NodeID, Epoch: info.Term}})
			}
		},
	})
	if err != nil {
		trans.Close()
		return nil, err
	}
	// The transport retries appends to an unreachable follower while this
	// replica leads (see peer.Transport).
	trans.Bind(p.Raft())
	r := &replica{key: k, topicID: t.ID, config: t.Config, partition: p, transport: trans}
	if lost {
		b.logger.Warn("replica has no data although its partition has had a leader: asking to be a non-voter until caught up", "partition", k)
		r.lost.Store(true)
	}
	return r, nil
}

// replicaGroup is a partition's Raft group id on the peer listener. Topic
// ids are unique in the cluster's history, unlike names.
func replicaGroup(topicID uint64, partition int32) string {
	return fmt.Sprintf("p/%d/%d", topicID, partition)
}

// logOptions turns topic settings into the log's options. With discard=old,
// max.bytes is a size retention.
func logOptions(c cluster.TopicConfig) (wlog.Options, error) {
	fsync, err := wlog.ParseFsyncPolicy(c.Fsync)
	if err != nil {
		return wlog.Options{}, err
	}
	o := wlog.Options{
		SegmentBytes: c.SegmentBytes,
		SegmentAge:   time.Duration(c.SegmentMs) * time.Millisecond,
		Fsync:        fsync,
	}
	if c.RetentionMs > 0 {
		o.RetentionAge = time.Duration(c.RetentionMs) * time.Millisecond
	}
	if c.RetentionBytes > 0 {
		o.RetentionBytes = c.RetentionBytes
	}
	if c.MaxBytes > 0 && c.Discard == "old" && (o.RetentionBytes == 0 || c.MaxBytes < o.RetentionBytes) {
		o.RetentionBytes = c.MaxBytes
	}
	return o, nil
}

// closeAll closes every replica (the broker is stopping), parallelCloses
// at a time: each close waits for its Raft node's goroutines, and for a
// write or fsync in progress, and one after another a node with a
// thousand replicas took minutes to stop.
func (s *replicaSet) closeAll(b *Broker) {
	s.mu.Lock()
	all := s.m
	s.m = map[replicaKey]*replica{}
	s.mu.Unlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, parallelCloses)
	for _, r := range all {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			r.close(b)
		}()
	}
	wg.Wait()
}

// parallelCloses is how many replicas closeAll closes at once.
const parallelCloses = 32

// transportConfig is the Raft transport's configuration for every group
// of the node. A produced batch is one Raft entry, up to a request frame
// (MaxFrameBytes), and an entry too large for the transport's frames could
// never be replicated: its frames are sized for the largest request plus
// room for an append's header.
func (b *Broker) transportConfig() peer.TransportConfig {
	return peer.TransportConfig{Logger: b.logger,
		MaxFrameBytes: max(peer.DefaultMaxFrameBytes, b.cfg.MaxFrameBytes+1<<20)}
}
