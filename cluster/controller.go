package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"weir/internal/raftfuture"
	"weir/internal/raftlog"
	"weir/internal/raftrole"
	"weir/internal/stablestore"
)

// ControllerConfig configures this node's member of the metadata Raft group.
type ControllerConfig struct {
	NodeID    NodeID
	Dir       string         // holds meta.db and snapshots/
	Transport raft.Transport // not closed by the controller
	// Peers bootstraps the group when it has no state yet (the first node
	// alone, or the nodes of a new cluster).
	Peers []raft.Server
	// Raft timing; defaults as in package partition.
	HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout time.Duration
	Logger                                                *slog.Logger
}

// Controller is this node's view of the cluster metadata, kept by the
// metadata Raft group. Every node holds all of it; changes go through the
// group's leader (the controller).
type Controller struct {
	cfg    ControllerConfig
	logger *slog.Logger
	store  *stablestore.Store
	raft   *raft.Raft

	meta   atomic.Pointer[Metadata]
	groups groupTable

	changedMu sync.Mutex
	changed   chan struct{} // closed and replaced at each change

	// ready is set while this node leads and has applied every entry of
	// earlier terms (a Barrier in its term): before that, its state may
	// lack commits the previous controller acknowledged.
	ready atomic.Bool
	stop  chan struct{}
	wg    sync.WaitGroup
}

// OpenController opens (or creates) the metadata group's member in cfg.Dir.
func OpenController(cfg ControllerConfig) (*Controller, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HeartbeatTimeout == 0 {
		cfg.HeartbeatTimeout = 450 * time.Millisecond
	}
	if cfg.ElectionTimeout == 0 {
		cfg.ElectionTimeout = 750 * time.Millisecond
	}
	if cfg.LeaderLeaseTimeout == 0 {
		cfg.LeaderLeaseTimeout = 450 * time.Millisecond
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("weir/cluster: %w", err)
	}
	c := &Controller{cfg: cfg, logger: cfg.Logger, changed: make(chan struct{}), stop: make(chan struct{})}
	c.meta.Store(newMetadata())
	c.groups.groups = map[string]*Group{}
	var err error
	if c.store, err = stablestore.Open(filepath.Join(cfg.Dir, "meta.db")); err != nil {
		return nil, fmt.Errorf("weir/cluster: metadata store: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStore(filepath.Join(cfg.Dir, "snapshots"), 2, io.Discard)
	if err != nil {
		c.store.Close()
		return nil, fmt.Errorf("weir/cluster: %w", err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = ServerID(cfg.NodeID)
	rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout
	rc.Logger = raftlog.New(c.logger, "metadata-raft")
	if len(cfg.Peers) > 0 {
		exists, err := raft.HasExistingState(c.store, c.store, snaps)
		if err == nil && !exists {
			err = raft.BootstrapCluster(rc, c.store, c.store, snaps, cfg.Transport, raft.Configuration{Servers: cfg.Peers})
		}
		if err != nil {
			c.store.Close()
			return nil, fmt.Errorf("weir/cluster: bootstrap: %w", err)
		}
	}
	if c.raft, err = raft.NewRaft(rc, (*controllerFSM)(c), c.store, c.store, snaps, cfg.Transport); err != nil {
		c.store.Close()
		return nil, fmt.Errorf("weir/cluster: start metadata raft: %w", err)
	}
	c.wg.Add(1)
	go c.watchLeadership()
	return c, nil
}

// watchLeadership keeps ready: when this node wins an election it applies
// everything before its term (Barrier) before it acts as the controller.
func (c *Controller) watchLeadership() {
	defer c.wg.Done()
	leaderCh := c.raft.LeaderCh()
	for {
		if err := raftrole.Apply(c.raft, c.cfg.HeartbeatTimeout, c.cfg.ElectionTimeout); err != nil {
			c.logger.Warn("heartbeat timeout", "err", err)
		}
		leading := c.raft.State() == raft.Leader
		if !leading {
			c.ready.Store(false)
		} else if !c.ready.Load() && raftfuture.Error(c.raft.Barrier(c.cfg.ElectionTimeout), c.stop) == nil && c.raft.State() == raft.Leader {
			c.ready.Store(true)
		}
		var retry <-chan time.Time
		if leading && !c.ready.Load() {
			retry = time.After(10 * time.Millisecond) // the barrier failed: again soon
		}
		select {
		case <-c.stop:
			return
		case <-leaderCh:
		case <-retry:
		}
	}
}

// Close stops the metadata group's member.
func (c *Controller) Close() error {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	c.wg.Wait()
	err := c.raft.Shutdown().Error()
	if cerr := c.store.Close(); err == nil {
		err = cerr
	}
	return err
}

// Metadata returns the current metadata. Do not modify it.
func (c *Controller) Metadata() *Metadata { return c.meta.Load() }

// Changed returns a channel closed at the next change of the metadata.
func (c *Controller) Changed() <-chan struct{} {
	c.changedMu.Lock()
	defer c.changedMu.Unlock()
	return c.changed
}

// IsLeader reports whether this node is the controller: it leads the
// metadata group and has applied everything earlier controllers committed.
func (c *Controller) IsLeader() bool { return c.ready.Load() && c.raft.State() == raft.Leader }

// VerifyLeader returns nil if this node is the controller and still
// leads the metadata group now: a majority of the group answered a round
// of heartbeats sent after the call. Reads that must never go back
// (committed offsets) answer only after it. IsLeader alone is not enough:
// a controller frozen past the election timeout (SIGSTOP, a long pause)
// still believes it leads when it resumes, until Raft learns of its
// successor, and it would answer from state that misses the successor's
// commits (the soak test saw a committed offset go back that way).
func (c *Controller) VerifyLeader() error {
	if !c.IsLeader() || c.raft.VerifyLeader().Error() != nil || !c.IsLeader() {
		return ErrNotController
	}
	return nil
}

// LeaderID is the controller's node id, or 0 when unknown.
func (c *Controller) LeaderID() NodeID {
	_, id := c.raft.LeaderWithID()
	n, _ := ParseNodeID(id)
	return n
}

// ServerID is a node's id as Raft names the node in every group.
func ServerID(n NodeID) raft.ServerID { return raft.ServerID(strconv.Itoa(int(n))) }

// ParseNodeID reads a node id from a Raft server id; ok is false for an
// empty or foreign one.
func ParseNodeID(id raft.ServerID) (NodeID, bool) {
	n, err := strconv.ParseInt(string(id), 10, 32)
	return NodeID(n), err == nil && n > 0
}

// Raft is the metadata group's Raft node, for membership changes.
func (c *Controller) Raft() *raft.Raft { return c.raft }

// WaitLeader waits until the group has a leader.
func (c *Controller) WaitLeader(ctx context.Context) error {
	for c.LeaderID() == 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("weir/cluster: no metadata leader: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// WaitCaughtUp waits until there is a leader and this node has applied the
// metadata up to index, the controller's commit index when it took this
// node in (JoinCluster's metadata_index). Serving before that would answer
// from old metadata (topics "unknown" that exist) and open replicas from
// it: a wiped node that saw a topic but not yet its leaders took its
// partitions for new ones and bootstrapped them (found by the soak test).
// The node's own commit index does not tell: a follower's grows a batch of
// entries at a time as the leader sends them.
func (c *Controller) WaitCaughtUp(ctx context.Context, index uint64) error {
	for c.LeaderID() == 0 || c.raft.AppliedIndex() < max(index, 1) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("weir/cluster: metadata not caught up: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// CommitIndex is the metadata group's commit index as this node knows it.
// On the controller that is every committed change; a node that joins
// waits until it has applied that far (WaitCaughtUp).
func (c *Controller) CommitIndex() uint64 { return c.raft.CommitIndex() }

// HasState reports whether this node's metadata group member has any state:
// it is in a cluster, or being taken into one (its first entries arrived).
func (c *Controller) HasState() bool { return c.raft.LastIndex() > 0 }

// Bootstrap starts a new metadata group of the given nodes as voters. Only
// one of a new cluster's nodes calls it; the others take the configuration
// from the Raft leader it elects. It fails if this node has state already.
func (c *Controller) Bootstrap(nodes []Node) error {
	var servers []raft.Server
	for _, n := range nodes {
		servers = append(servers, raft.Server{ID: ServerID(n.ID), Address: raft.ServerAddress(n.PeerAddr)})
	}
	if err := c.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		return fmt.Errorf("weir/cluster: bootstrap: %w", err)
	}
	return nil
}

// RegisterNode records a node and its addresses.
func (c *Controller) RegisterNode(ctx context.Context, n Node) error {
	return c.propose(ctx, &command{Op: opRegisterNode, Node: &n})
}

// CreateTopic creates a topic with the given partitions, replication factor
// and settings (keys as in TopicConfigKeys).
func (c *Controller) CreateTopic(ctx context.Context, name string, partitions, replicas int, configs map[string]*string) error {
	cmd := &command{Op: opCreateTopic, Topic: name, Partitions: partitions, Replicas: replicas, Configs: configs}
	// Check here first for a clear error without a trip through Raft; the
	// FSM checks again, deterministically, against the metadata it applies to.
	if _, err := c.Metadata().apply(0, cmd); err != nil {
		return err
	}
	return c.propose(ctx, cmd)
}

// DeleteTopic deletes a topic.
func (c *Controller) DeleteTopic(ctx context.Context, name string) error {
	return c.propose(ctx, &command{Op: opDeleteTopic, Topic: name})
}

// AlterTopicConfig changes a topic's settings; a nil value resets a key.
func (c *Controller) AlterTopicConfig(ctx context.Context, name string, changes map[string]*string) error {
	return c.propose(ctx, &command{Op: opAlterConfig, Topic: name, Configs: changes})
}

// AllocateProducerID hands out a producer id no other producer of the
// cluster has had, before or after a restart.
func (c *Controller) AllocateProducerID(ctx context.Context) (int64, error) {
	res, err := c.proposeResult(ctx, &command{Op: opAllocProducerID})
	if err != nil {
		return 0, err
	}
	return res.(int64), nil
}

// propose runs cmd through the metadata group and returns the FSM's verdict.
func (c *Controller) propose(ctx context.Context, cmd *command) error {
	_, err := c.proposeResult(ctx, cmd)
	return err
}

// proposeResult runs cmd through the metadata group and returns what the
// FSM returned for it: an error, or the command's result.
func (c *Controller) proposeResult(ctx context.Context, cmd *command) (any, error) {
	if !c.IsLeader() {
		return nil, ErrNotController
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	timeout := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		// Raft takes 0 as "no timeout": an expired deadline must not be.
		timeout = max(time.Until(d), time.Millisecond)
	}
	f := c.raft.Apply(encodeCommand(cmd), timeout)
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return nil, ErrNotController
		}
		return nil, fmt.Errorf("weir/cluster: %w", err)
	}
	if err, ok := f.Response().(error); ok {
		return nil, err
	}
	return f.Response(), nil
}

func (c *Controller) publish(m *Metadata) {
	c.meta.Store(m)
	c.changedMu.Lock()
	close(c.changed)
	c.changed = make(chan struct{})
	c.changedMu.Unlock()
}

// controllerFSM applies metadata commands.
type controllerFSM Controller

func (f *controllerFSM) Apply(l *raft.Log) any {
	c := (*Controller)(f)
	if l.Type != raft.LogCommand {
		return nil
	}
	var cmd command
	if err := json.Unmarshal(l.Data, &cmd); err != nil {
		return fmt.Errorf("weir/cluster: bad metadata command at %d: %w", l.Index, err)
	}
	if isGroupOp(cmd.Op) {
		return c.applyGroup(&cmd)
	}
	prev := c.meta.Load()
	next, err := prev.apply(l.Index, &cmd)
	if err != nil {
		return err
	}
	c.publish(next)
	switch cmd.Op {
	case opAllocProducerID:
		return prev.NextProducerID
	case opCreateTopic, opDeleteTopic:
		c.topicsChanged(next)
	}
	return nil
}

func (f *controllerFSM) Snapshot() (raft.FSMSnapshot, error) {
	c := (*Controller)(f)
	c.groups.mu.RLock()
	b, err := json.Marshal(snapshotState{Metadata: c.meta.Load(), Groups: c.groups.groups})
	c.groups.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	return metadataSnapshot(b), nil
}

func (f *controllerFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	c := (*Controller)(f)
	st := snapshotState{Metadata: newMetadata()}
	if err := json.NewDecoder(rc).Decode(&st); err != nil {
		return fmt.Errorf("weir/cluster: restore metadata: %w", err)
	}
	if st.Groups == nil {
		st.Groups = map[string]*Group{}
	}
	for _, g := range st.Groups {
		g.initMaps()
	}
	c.groups.mu.Lock()
	c.groups.groups = st.Groups
	c.groups.mu.Unlock()
	c.publish(st.Metadata)
	return nil
}

type metadataSnapshot []byte

func (s metadataSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s metadataSnapshot) Release() {}
