// Package broker is weir's server: it accepts client connections, decodes
// requests (package protocol), serves them from the partitions this node
// hosts (package partition) and the cluster metadata (package cluster), and
// writes the responses. It bounds what clients can make it hold: connections,
// frame size, requests in flight per connection, request bytes in memory and
// produce bytes waiting for Raft.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"weir/cluster"
	"weir/internal/peer"
	"weir/internal/stablestore"
	"weir/protocol"
)

// Config configures a broker. Zero values mean defaults.
type Config struct {
	NodeID  cluster.NodeID // default 1
	DataDir string         // required
	// AdvertisedAddr is the host:port clients are told to reach this node
	// at; default: the listener's address.
	AdvertisedAddr string
	// PeerListen is the host:port of the peer listener, which carries the
	// Raft traffic of every group this node is in (default 127.0.0.1:0);
	// AdvertisedPeerAddr is where other nodes reach it (default: the
	// listener's address).
	PeerListen, AdvertisedPeerAddr string
	// Join lists client addresses (host:port) of nodes of an existing
	// cluster. A node with Join and no state of its own joins that cluster;
	// without Join it starts a new single-node cluster.
	Join []string
	// BootstrapExpect: a node with no state and BootstrapExpect > 1 starts
	// a new cluster with the join seeds once that many nodes (itself
	// included) are up and none is in a cluster yet; see bootstrap.go.
	BootstrapExpect int
	// TopicDefaults are the settings (topic config keys) a new topic gets
	// for keys its creator does not set; keys not here get the built-in
	// defaults of cluster.DefaultTopicConfig.
	TopicDefaults map[string]string

	MaxConnections     int           // default 1024
	MaxFrameBytes      int           // largest request frame; default 64 MiB
	MaxInFlightPerConn int           // requests read ahead per connection; default 32
	IdleTimeout        time.Duration // close a connection quiet this long; default 10m
	ReadTimeout        time.Duration // a request frame, once begun, must arrive within; default 30s
	WriteTimeout       time.Duration // give up on a client that does not read; default 30s
	// MaxRequestBytes bounds the request bytes held in memory across all
	// connections; a connection waits (stops reading) when it is used up.
	// Default 256 MiB.
	MaxRequestBytes int64
	// MaxProduceBytes bounds produce bytes handed to Raft and not yet
	// committed; beyond it produce gets Backpressure. Default 128 MiB.
	MaxProduceBytes int64
	// BackpressureRetry is the retry-after hint of a Backpressure error.
	// Default 100ms.
	BackpressureRetry time.Duration

	// Raft timing for the metadata group and the partitions (see
	// partition.Config). Defaults: heartbeat 450ms, election 5/3 of the
	// heartbeat timeout (750ms), lease equal to it (450ms), the most Raft
	// allows (docs/cluster.md, "Failover, measured").
	RaftHeartbeatTimeout, RaftElectionTimeout, RaftLeaderLeaseTimeout time.Duration
	// RetentionInterval is how often partitions apply retention. Default 10s.
	RetentionInterval time.Duration
	// Groups tunes the consumer group coordinator (heartbeat interval,
	// session timeouts); zero values take its defaults.
	Groups cluster.CoordinatorConfig

	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	if c.DataDir == "" {
		return c, errors.New("weir/broker: DataDir is required")
	}
	if c.NodeID == 0 {
		c.NodeID = 1
	}
	if c.BootstrapExpect > 1 && len(c.Join) == 0 {
		return c, errors.New("weir/broker: BootstrapExpect needs the other nodes' addresses in Join")
	}
	setInt := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	setInt(&c.MaxConnections, 1024)
	setInt(&c.MaxFrameBytes, 64<<20)
	setInt(&c.MaxInFlightPerConn, 32)
	setDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.PeerListen == "" {
		c.PeerListen = "127.0.0.1:0"
	}
	setDur(&c.IdleTimeout, 10*time.Minute)
	setDur(&c.WriteTimeout, 30*time.Second)
	setDur(&c.ReadTimeout, 30*time.Second)
	setDur(&c.BackpressureRetry, 100*time.Millisecond)
	setDur(&c.RetentionInterval, 10*time.Second)
	setDur(&c.RaftHeartbeatTimeout, 450*time.Millisecond)
	setDur(&c.RaftElectionTimeout, c.RaftHeartbeatTimeout*5/3)
	setDur(&c.RaftLeaderLeaseTimeout, c.RaftHeartbeatTimeout)
	if c.MaxRequestBytes <= 0 {
		c.MaxRequestBytes = 256 << 20
	}
	if c.MaxProduceBytes <= 0 {
		c.MaxProduceBytes = 128 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Broker is one node's server.
type Broker struct {
	cfg         Config
	logger      *slog.Logger
	controller  *cluster.Controller
	coordinator *cluster.Coordinator
	mux         *peer.Mux
	metaTrans   raft.Transport
	replicas    replicaSet
	// raftState keeps the term and vote of every replica's Raft, in one
	// file whose writes share fsyncs (see stablestore.Shared).
	raftState *stablestore.Shared
	leaders   leaderReports
	peers     brokerPool // requests to other brokers

	requestBytes *budget // request frames held in memory
	produceBytes *budget // produce bytes proposed, not yet committed
	metrics      *metrics

	mu        sync.Mutex
	listeners []net.Listener
	conns     map[*conn]struct{}
	closed    bool

	// ready is closed once the node is in the cluster with current
	// metadata (enterCluster); client requests wait for it.
	ready      chan struct{}
	enterOnce  sync.Once
	clientAddr atomic.Value // string: the advertised client address

	stop chan struct{}
	// ctx is cancelled at Close: it bounds what the broker's own
	// goroutines wait for (requests to other brokers).
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Open starts the broker's metadata group member (bootstrapping a
// single-node cluster on first start) and its partitions. Serve then takes
// connections.
func Open(cfg Config) (*Broker, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("weir/broker: %w", err)
	}
	b := &Broker{
		cfg: cfg, logger: cfg.Logger,
		replicas:     replicaSet{m: map[replicaKey]*replica{}},
		leaders:      leaderReports{pending: map[replicaKey]cluster.LeaderReport{}, wake: make(chan struct{}, 1)},
		requestBytes: newBudget(cfg.MaxRequestBytes),
		produceBytes: newBudget(cfg.MaxProduceBytes),
		conns:        map[*conn]struct{}{},
		stop:         make(chan struct{}),
		ready:        make(chan struct{}),
	}
	b.metrics = newMetrics(b)
	if b.raftState, err = stablestore.OpenShared(filepath.Join(cfg.DataDir, "partitions-raft.journal"), filepath.Join(cfg.DataDir, "partitions-raft.db")); err != nil {
		return nil, fmt.Errorf("weir/broker: %w", err)
	}
	b.mux, err = peer.Listen(cfg.PeerListen, peer.Options{Advertise: cfg.AdvertisedPeerAddr, Logger: b.logger.With("component", "peer"),
		OnPeerLost: b.peerLost})
	if err != nil {
		b.raftState.Close()
		return nil, fmt.Errorf("weir/broker: peer listener: %w", err)
	}
	trans, err := peer.NewTransport(b.mux, metadataGroup, b.transportConfig())
	if err != nil {
		b.mux.Close()
		b.raftState.Close()
		return nil, err
	}
	b.metaTrans = trans
	var bootstrap []raft.Server
	if len(cfg.Join) == 0 {
		// A new cluster of this node alone; others join it.
		bootstrap = []raft.Server{{ID: cluster.ServerID(cfg.NodeID), Address: trans.LocalAddr()}}
	}
	b.controller, err = cluster.OpenController(cluster.ControllerConfig{
		NodeID: cfg.NodeID, Dir: filepath.Join(cfg.DataDir, "metadata"), Transport: trans,
		Peers:            bootstrap,
		HeartbeatTimeout: cfg.RaftHeartbeatTimeout, ElectionTimeout: cfg.RaftElectionTimeout,
		LeaderLeaseTimeout: cfg.RaftLeaderLeaseTimeout,
		Logger:             b.logger.With("group", "metadata"),
	})
	if err != nil {
		trans.Close()
		b.mux.Close()
		b.raftState.Close()
		return nil, err
	}
	trans.Bind(b.controller.Raft()) // see peer.Transport
	if cfg.Groups.Logger == nil {
		cfg.Groups.Logger = b.logger.With("component", "groups")
	}
	b.coordinator = cluster.NewCoordinator(b.controller, cfg.Groups)
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.wg.Add(3)
	go b.watchMetadata()
	go b.reportLeaders()
	go b.moveReplicas()
	return b, nil
}

// metadataGroup is the metadata Raft group's id on the peer listener.
const metadataGroup = "metadata"

// register makes sure the cluster knows this node at its addresses: the
// controller adds itself; any other node asks the controller with
// JoinCluster (found through the join seeds, which redirect to it), which
// changes nothing for a node it has as it is. Serve calls it. It returns
// the controller's metadata commit index once the node is in: what this
// node must apply before it serves (see cluster.Controller.WaitCaughtUp).
func (b *Broker) register(ctx context.Context, addr string) (uint64, error) {
	n := cluster.Node{ID: b.cfg.NodeID, ClientAddr: addr, PeerAddr: b.mux.Addr().String()}
	if b.cfg.BootstrapExpect > 1 && !b.controller.HasState() {
		if err := b.awaitBootstrap(ctx, n); err != nil {
			return 0, err
		}
	}
	seeds := b.cfg.Join
	var redirect string
	for attempt := 0; ; attempt++ {
		// Whom to ask: the controller a seed named, else the controller
		// the metadata names, else a seed; never this node itself (it may
		// lead the group without being ready to act as the controller yet).
		target := redirect
		if _, ctrl := b.controllerAddress(); target == "" {
			target = ctrl
		}
		if (target == "" || target == addr) && len(seeds) > 0 {
			target = seeds[attempt%len(seeds)]
		}
		var (
			index uint64
			err   error
		)
		switch {
		case b.controller.IsLeader():
			err = b.controller.AddNode(ctx, n)
			index = b.controller.CommitIndex()
		case target != "" && target != addr:
			index, redirect, err = b.join(ctx, target, n)
		default:
			err = cluster.ErrNotController // electing, or not ready yet
		}
		if err == nil {
			return index, nil
		}
		if attempt%500 == 499 { // every 10 s or so
			b.logger.Warn("joining the cluster", "err", err)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// join sends JoinCluster to target; it returns the controller's metadata
// commit index once it took the node in, or the controller's address when
// target is not the controller.
func (b *Broker) join(ctx context.Context, target string, n cluster.Node) (index uint64, redirect string, err error) {
	// v1: the answer carries the controller's commit index.
	resp, err := b.peers.call(ctx, target, &protocol.JoinClusterRequest{Version: 1, NodeID: n.ID, ClientAddress: n.ClientAddr, PeerAddress: n.PeerAddr})
	if err != nil {
		return 0, "", err
	}
	r := resp.(*protocol.JoinClusterResponse)
	if r.ErrorCode == protocol.CodeNotController {
		return 0, r.ControllerAddress, protocol.ErrorForCodeMessage(r.ErrorCode, r.ErrorMessage)
	}
	return uint64(max(r.MetadataIndex, 0)), "", protocol.ErrorForCodeMessage(r.ErrorCode, r.ErrorMessage)
}

// watchMetadata keeps the hosted replicas in line with the metadata, once
// the node's metadata has caught up with the group's (before, it would
// open and drop partitions of states long past). On the controller it
// also finishes node removals.
func (b *Broker) watchMetadata() {
	defer b.wg.Done()
	select {
	case <-b.ready:
	case <-b.stop:
		return
	}
	for {
		changed := b.controller.Changed()
		var retry <-chan time.Time
		ok := b.reconcile(b.controller.Metadata())
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		err := b.controller.FinishRemovals(ctx)
		cancel()
		if err != nil {
			b.logger.Warn("removing nodes", "err", err)
		}
		if !ok || len(b.controller.Metadata().Removing) > 0 {
			// A replica failed to open, or a removal is under way (waiting
			// for its moves, or for a new controller to finish it).
			retry = time.After(time.Second)
		}
		select {
		case <-b.stop:
			return
		case <-changed:
		case <-retry:
		}
	}
}

// Close stops accepting, closes the connections, then the partitions and
// the metadata group. It waits for every goroutine it started.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	for _, ln := range b.listeners {
		ln.Close()
	}
	for c := range b.conns {
		c.cancel() // ends long polls and waits for budget
		c.nc.Close()
	}
	b.mu.Unlock()
	close(b.stop)
	b.cancel()
	b.wg.Wait()
	b.coordinator.Close()
	b.peers.Close()
	b.replicas.closeAll(b)
	err := b.controller.Close()
	if serr := b.raftState.Close(); err == nil {
		err = serr
	}
	if c, ok := b.metaTrans.(raft.WithClose); ok {
		c.Close()
	}
	if merr := b.mux.Close(); err == nil {
		err = merr
	}
	return err
}
