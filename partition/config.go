package partition

import (
	"errors"
	"log/slog"
	"time"

	"github.com/hashicorp/raft"

	wlog "weir/log"
)

// Config configures one replica of a partition. Zero values mean defaults.
type Config struct {
	// ID is this replica's Raft server id (the node's id). Required.
	ID raft.ServerID
	// Dir holds the partition's files: log/, raft.db, snapshots/. Required.
	Dir string
	// Log configures the partition's log (segments, fsync, retention).
	Log wlog.Options
	// Transport carries Raft's messages. Required. The partition does not
	// close it.
	Transport raft.Transport
	// StableStore keeps Raft's term and vote; Close closes it (after Raft
	// is shut down). Nil: a file of the partition's own, raft.db in Dir.
	// A broker gives each of its partitions a group of one shared file,
	// whose writes share fsyncs (internal/stablestore.Shared).
	StableStore StableStore
	// Peers is the initial replica set, used once, when the partition has
	// no Raft state yet. Empty: join as a replica that a leader will contact.
	// The first is the partition's preferred leader: the others give it
	// time to win the first election (see firstElectionDelay).
	Peers []raft.Server

	// Raft timing. HeartbeatTimeout is how long a follower goes without
	// hearing from its leader before it stands for election; the leader
	// heartbeats every sixth to third of it (internal/raftrole). Defaults:
	// heartbeat 450ms, election 750ms, leader lease 450ms, commit 10s. A
	// single voter elects itself after one heartbeat timeout, so that is
	// how long a new single-node partition takes to be ready.
	//
	// CommitTimeout is how often (1 to 2 times it) an idle leader sends
	// each follower an empty append to tell it the commit index; while
	// records flow, every append carries it anyway. Raft's default, 50ms,
	// made these appends the largest cost of an idle node: at 1,000
	// replicas per node, 20,000 messages a second, and still two thirds
	// of its peer traffic at 1s. Followers learn the commit index after a
	// burst from the commit hints on heartbeats instead (internal/peer,
	// commithint.go), within a few heartbeats; the empty appends remain
	// as a backstop, as for a follower whose log the leader believes
	// longer than it is (fsync=never and a crash) until it next appends.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// MaxAppendEntries bounds the entries per Raft append (and so per
	// StoreLogs and fsync under load). Default 512; at most 1024.
	MaxAppendEntries int

	// SnapshotInterval and SnapshotThreshold drive Raft's own snapshots of
	// the small state. They bound how much log Raft replays on restart.
	// Defaults 30s and 8192 entries.
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	// RetentionInterval is how often retention runs. Default 1 minute.
	RetentionInterval time.Duration

	// OnLeaderChange is called (from one goroutine, in order) when this
	// replica learns of a new leader or becomes ready to lead. Optional.
	OnLeaderChange func(LeaderInfo)
	// Logger receives the partition's and Raft's logs. Default: discard.
	Logger *slog.Logger
}

// LeaderInfo is what a replica knows about its partition's leadership.
type LeaderInfo struct {
	LeaderID      raft.ServerID      // empty when unknown
	LeaderAddress raft.ServerAddress // empty when unknown
	// IsLeader is true when this replica leads and is ready to take
	// produce requests (it has applied everything earlier leaders committed).
	IsLeader bool
	// Term is the Raft term this view is from: it orders views of the
	// leader across replicas (the leader epoch of the protocol).
	Term uint64
}

func (c Config) withDefaults() (Config, error) {
	switch {
	case c.ID == "":
		return c, errors.New("weir/partition: Config.ID is required")
	case c.Dir == "":
		return c, errors.New("weir/partition: Config.Dir is required")
	case c.Transport == nil:
		return c, errors.New("weir/partition: Config.Transport is required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.HeartbeatTimeout, 450*time.Millisecond)
	def(&c.ElectionTimeout, 750*time.Millisecond)
	def(&c.LeaderLeaseTimeout, 450*time.Millisecond)
	def(&c.CommitTimeout, 10*time.Second)
	def(&c.SnapshotInterval, 30*time.Second)
	def(&c.RetentionInterval, time.Minute)
	if c.MaxAppendEntries == 0 {
		c.MaxAppendEntries = 512
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 8192
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// StableStore is where a replica's Raft keeps its term and vote.
type StableStore interface {
	raft.StableStore
	Close() error
}
