package peer

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"weir/internal/raftlog"
)

// Defaults for the zero values of TransportConfig.
const (
	// DefaultMaxPool is how many idle streams a group keeps per peer. Raft
	// uses one at a time per peer for heartbeats and one for appends.
	DefaultMaxPool = 2
	// DefaultTransportTimeout bounds a Dial and every RPC's I/O (scaled up
	// by Raft for InstallSnapshot).
	DefaultTransportTimeout = 5 * time.Second
)

// TransportConfig configures NewTransport. Zero values mean defaults.
type TransportConfig struct {
	// Logger receives Raft's transport errors (at warn). Default: discard.
	Logger *slog.Logger
	// MaxPool: see DefaultMaxPool.
	MaxPool int
	// Timeout: see DefaultTransportTimeout.
	Timeout time.Duration
}

// NewTransport registers group on m and returns a Raft transport over it (a
// NetworkTransport; see Transport for what it adds). Closing the transport
// unregisters the group.
func NewTransport(m *Mux, group string, cfg TransportConfig) (*Transport, error) {
	if cfg.MaxPool < 0 || cfg.Timeout < 0 {
		return nil, fmt.Errorf("%w: negative MaxPool or Timeout", ErrInvalidOptions)
	}
	if cfg.MaxPool == 0 {
		cfg.MaxPool = DefaultMaxPool
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTransportTimeout
	}
	var logger hclog.Logger = hclog.NewNullLogger()
	if cfg.Logger != nil {
		logger = raftlog.New(cfg.Logger.With("group", group), "raft-net")
	}
	stream, err := m.StreamLayer(group)
	if err != nil {
		return nil, err
	}
	return &Transport{NetworkTransport: raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: cfg.MaxPool,
		Timeout: cfg.Timeout,
		Logger:  logger,
	}), mux: m, group: group}, nil
}

// Transport is a Raft NetworkTransport whose heartbeats travel coalesced
// with those of the node's other groups (heartbeat.go), and with two fixes
// for hashicorp/raft 1.7.3: its AppendEntries pipelines cannot deadlock
// (AppendEntriesPipeline, pipeline.go), and a leader's appends to a
// follower it cannot reach are retried here with a short capped backoff
// rather than handed back to Raft (AppendEntries).
//
// Why the retries: hashicorp/raft backs off a follower's replication after
// each failed append, 10 ms doubling up to 10.24 s (replicateTo; unlike its
// heartbeats, which it caps at HeartbeatTimeout/2), and nothing wakes it
// early. A follower down for more than a few seconds (a restarted broker)
// is thus caught up only up to 10 s after it is back; meanwhile its
// partitions commit with one follower, and if that one fails too, they
// stall until the backoff ends. Retried here, the append goes through within
// HeartbeatTimeout/2 of the follower (its replica) being reachable again,
// and Raft, seeing no failure, does not back off at all.
//
// The retries need to know that the Raft node still leads: Bind it. An
// unbound transport does not retry.
type Transport struct {
	*raft.NetworkTransport
	mux   *Mux
	group string
	raft  atomic.Pointer[raft.Raft]
}

// SetHeartbeatHandler implements raft.Transport: fn answers the group's
// heartbeats, coalesced ones and single ones from older nodes alike, but
// only those it can answer safely (see safeHeartbeats).
func (t *Transport) SetHeartbeatHandler(fn func(raft.RPC)) {
	if fn != nil {
		fn = t.safeHeartbeats(fn)
	}
	t.NetworkTransport.SetHeartbeatHandler(fn)
	t.mux.hb.setHandler(t.group, t, fn)
}

// errHeartbeatRefused answers a heartbeat that only the Raft main loop may
// handle: the sender counts it as a failed heartbeat, and its next append,
// which the main loop does handle, carries the news.
var errHeartbeatRefused = errors.New("heartbeat refused: the receiver is not a follower in the heartbeat's term")

// safeHeartbeats wraps Raft's heartbeat handler so that it runs only when
// it can change neither the node's term nor its role.
//
// hashicorp/raft (v1.7.3, hashicorp/raft#695) answers heartbeats outside
// its main loop, with the same code as appends, which takes a newer term
// and steps down to follower. Done outside the main loop, that races with
// a leader's main loop: a leader that was frozen (SIGSTOP, a long GC or
// swap) and hears of the new term by heartbeat can still append a client's
// entry, stamped with the new term, at an index where the new leader has a
// different entry of that same term. Raft then takes the two for the same
// entry: the logs diverge, an acknowledged record is replaced, and one is
// written twice. Likewise a candidate could take a heartbeat's term while
// its own election for that term is still running.
//
// So only a follower already in the heartbeat's term runs the handler,
// which then can only refresh the leader's contact. A node that would take
// a newer term or change role from a heartbeat refuses it; the sender's
// appends and votes, which Raft handles in its main loop, bring the news
// instead, as they do anyway. Until Bind names the Raft node, every
// heartbeat is refused.
func (t *Transport) safeHeartbeats(fn func(raft.RPC)) func(raft.RPC) {
	return func(rpc raft.RPC) {
		req, ok := rpc.Command.(*raft.AppendEntriesRequest)
		r := t.raft.Load()
		if !ok || r == nil || r.State() != raft.Follower || r.CurrentTerm() != req.Term {
			rpc.Respond(nil, errHeartbeatRefused)
			return
		}
		fn(rpc)
	}
}

// Close implements raft.Transport; it unregisters the group.
func (t *Transport) Close() error {
	t.mux.hb.setHandler(t.group, t, nil)
	return t.NetworkTransport.Close()
}

// Bind names the Raft node that uses the transport: appends are retried
// only while it leads, in the term of the append, a configuration that
// still has the follower.
func (t *Transport) Bind(r *raft.Raft) { t.raft.Store(r) }

// appendRetryMin is the first wait before retrying a failed append: Raft's
// own first backoff (failureWait).
const appendRetryMin = 10 * time.Millisecond

// AppendEntries implements raft.Transport. A heartbeat goes coalesced with
// the node's other heartbeats to target, once (Raft retries heartbeats
// itself, with a capped backoff); an append that fails is retried until it
// succeeds or the bound node no longer replicates to id in the append's
// term. The same request is sent again: it is idempotent for the follower,
// and its entries are still in the leader's log.
func (t *Transport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	if isHeartbeat(args) {
		err := t.mux.hb.call(string(target), t.group, args, resp)
		if !errors.Is(err, errLegacyPeer) {
			return err
		}
		return t.NetworkTransport.AppendEntries(id, target, args, resp)
	}
	err := t.NetworkTransport.AppendEntries(id, target, args, resp)
	r := t.raft.Load()
	if err == nil || r == nil {
		return err
	}
	maxWait := max(r.ReloadableConfig().HeartbeatTimeout/2, appendRetryMin)
	for wait := appendRetryMin; ; wait = min(2*wait, maxWait) {
		if !t.replicating(r, id, args.Term) {
			return err
		}
		time.Sleep(wait) // at most maxWait; the loop checks the node again after
		if !t.replicating(r, id, args.Term) {
			return err
		}
		if err = t.NetworkTransport.AppendEntries(id, target, args, resp); err == nil {
			return nil
		}
	}
}

// replicating reports whether r still leads in term with id in its
// configuration, and the transport is open: whether an append to id in
// term is still wanted. It turns false at once when r shuts down.
func (t *Transport) replicating(r *raft.Raft, id raft.ServerID, term uint64) bool {
	if t.IsShutdown() || r.State() != raft.Leader || r.CurrentTerm() != term {
		return false
	}
	f := r.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	return slices.ContainsFunc(f.Configuration().Servers, func(s raft.Server) bool { return s.ID == id })
}

// isHeartbeat is NetworkTransport's own test (handleCommand): Raft's
// heartbeats carry a term and a leader and nothing else.
func isHeartbeat(a *raft.AppendEntriesRequest) bool {
	return a.Term != 0 && a.PrevLogEntry == 0 && a.PrevLogTerm == 0 &&
		len(a.Entries) == 0 && a.LeaderCommitIndex == 0
}
