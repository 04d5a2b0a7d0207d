package peer

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Defaults for the zero values of TransportConfig.
const (
	// DefaultMaxPool is how many idle streams a group keeps per peer. Raft
	// uses one at a time per peer for heartbeats and one for appends.
	DefaultMaxPool = 2
	// DefaultTransportTimeout bounds a Dial and every RPC's I/O (scaled up
	// for InstallSnapshot, see snapshotTimeoutScale).
	DefaultTransportTimeout = 5 * time.Second
	// DefaultIdleTimeout is how long a pooled stream may go unused before
	// it is closed: a peer this group no longer sends to (it stopped
	// leading) costs nothing after it.
	DefaultIdleTimeout = time.Minute
)

// snapshotTimeoutScale: an InstallSnapshot's I/O deadline is the timeout
// times its size in units of this many bytes (at least the timeout), as
// NetworkTransport's TimeoutScale.
const snapshotTimeoutScale = 256 << 10

// TransportConfig configures NewTransport. Zero values mean defaults.
type TransportConfig struct {
	// Logger receives the transport's warnings: streams closed for bad
	// frames. Default: discard.
	Logger *slog.Logger
	// MaxPool: see DefaultMaxPool.
	MaxPool int
	// Timeout: see DefaultTransportTimeout.
	Timeout time.Duration
	// IdleTimeout: see DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MaxFrameBytes bounds the body of an RPC frame this transport reads,
	// and the appends it sends (see DefaultMaxFrameBytes).
	MaxFrameBytes int
}

// NewTransport registers group on m and returns a Raft transport over it.
// Closing the transport unregisters the group.
func NewTransport(m *Mux, group string, cfg TransportConfig) (*Transport, error) {
	if cfg.MaxPool < 0 || cfg.Timeout < 0 || cfg.IdleTimeout < 0 || cfg.MaxFrameBytes < 0 {
		return nil, fmt.Errorf("%w: negative MaxPool, Timeout, IdleTimeout or MaxFrameBytes", ErrInvalidOptions)
	}
	if uint64(cfg.MaxFrameBytes) > math.MaxUint32 {
		return nil, fmt.Errorf("%w: MaxFrameBytes %d does not fit a frame's u32 length", ErrInvalidOptions, cfg.MaxFrameBytes)
	}
	if cfg.MaxPool == 0 {
		cfg.MaxPool = DefaultMaxPool
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTransportTimeout
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxFrameBytes == 0 {
		cfg.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	t := &Transport{
		mux:        m,
		group:      group,
		cfg:        cfg,
		logger:     cfg.Logger.With("component", "raft-transport", "group", group),
		consumeCh:  make(chan raft.RPC),
		shutdownCh: make(chan struct{}),
	}
	t.mu.pool = make(map[raft.ServerAddress][]*rpcConn)
	t.mu.pipelines = make(map[*pipeline]struct{})
	t.mu.followers = make(map[raft.ServerAddress]followerLog)
	l, err := m.register(group, t.serve, t.sweep)
	if err != nil {
		return nil, err
	}
	t.layer = l
	return t, nil
}

// Transport is a group's raft.Transport over a Mux: each Raft RPC is a
// frame of weir's own binary format ("Raft RPCs" in the package
// documentation) on a yamux stream of the group, and its heartbeats
// travel coalesced with those of the node's other groups (heartbeat.go).
// It replaces hashicorp/raft's NetworkTransport, whose 512 KiB of buffers
// per connection made up nearly all of the memory of a node hosting a
// thousand groups, and whose msgpack codec spent CPU on reflection. Its
// streams are cheap: they have no buffers while idle, and a pooled
// stream unused for IdleTimeout is closed.
//
// It keeps two fixes for hashicorp/raft 1.7.3: its AppendEntries
// pipelines cannot deadlock (AppendEntriesPipeline, pipeline.go), and a
// leader's appends to a follower it cannot reach are retried here with a
// short capped backoff rather than handed back to Raft (AppendEntries).
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
	mux    *Mux
	group  string
	cfg    TransportConfig
	logger *slog.Logger
	layer  *layer
	raft   atomic.Pointer[raft.Raft]

	// consumeCh hands requests to Raft; shutdownCh is closed by Close.
	consumeCh   chan raft.RPC
	shutdownCh  chan struct{}
	heartbeatFn atomic.Pointer[func(raft.RPC)]
	// hinting is set while a commit hint waits for Raft (commithint.go),
	// nudging while a barrier does (nudgeReplication).
	hinting, nudging atomic.Bool

	// wg counts the goroutines serving accepted streams; Close waits.
	wg sync.WaitGroup

	// mu guards the pool, the open pipelines and what the followers
	// acknowledged. No I/O under it but non-blocking closes of yamux
	// streams.
	mu struct {
		sync.Mutex
		closed bool
		// pool holds idle streams by target, the most recently used last.
		pool      map[raft.ServerAddress][]*rpcConn
		pipelines map[*pipeline]struct{}
		// followers: see commithint.go.
		followers map[raft.ServerAddress]followerLog
	}
}

var (
	_ raft.Transport   = (*Transport)(nil)
	_ raft.WithClose   = (*Transport)(nil)
	_ raft.WithPreVote = (*Transport)(nil)
)

// Consumer implements raft.Transport.
func (t *Transport) Consumer() <-chan raft.RPC { return t.consumeCh }

// LocalAddr implements raft.Transport: the Mux's advertised address.
func (t *Transport) LocalAddr() raft.ServerAddress { return raft.ServerAddress(t.mux.Addr().String()) }

// EncodePeer implements raft.Transport.
func (t *Transport) EncodePeer(_ raft.ServerID, addr raft.ServerAddress) []byte { return []byte(addr) }

// DecodePeer implements raft.Transport.
func (t *Transport) DecodePeer(b []byte) raft.ServerAddress { return raft.ServerAddress(b) }

// SetHeartbeatHandler implements raft.Transport: fn answers the group's
// heartbeats, coalesced ones and any that come as an AppendEntries RPC,
// but only those it can answer safely (see safeHeartbeats).
func (t *Transport) SetHeartbeatHandler(fn func(raft.RPC)) {
	if fn == nil {
		t.heartbeatFn.Store(nil)
		t.mux.hb.setHandler(t.group, t, nil, nil)
		return
	}
	safe := t.safeHeartbeats(fn)
	t.heartbeatFn.Store(&safe)
	t.mux.hb.setHandler(t.group, t, safe, func(rpc raft.RPC) bool { return t.heartbeatOnTheSpot(fn, rpc) })
}

// safeHeartbeats wraps Raft's heartbeat handler so that it runs only when
// it can change neither the node's term nor its role; every other
// heartbeat goes to Raft's main loop, like an append.
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
// So only a follower already in the heartbeat's term runs the handler on
// the spot, where it refreshes the leader's contact. (Raft may still turn
// the node into a candidate between the check and the handler; the
// handler then takes it back to follower, which disrupts that election
// but cannot elect anyone: the node's vote for the new term is already on
// disk.) A heartbeat
// that brings a newer term, or finds a leader or a candidate, waits for
// the main loop, which takes the term and steps down safely. (Refusing
// those instead cost dearly: followers that had missed an election never
// heard from its winner, timed out, and started elections of their own.)
// Until Bind names the Raft node, every heartbeat goes to the main loop.
func (t *Transport) safeHeartbeats(fn func(raft.RPC)) func(raft.RPC) {
	return func(rpc raft.RPC) {
		if t.heartbeatOnTheSpot(fn, rpc) {
			return
		}
		// Like Raft's handler, answer before returning: the coalesced
		// heartbeats' server reads the answer when the handler returns.
		answer := make(chan raft.RPCResponse, 1)
		inner := rpc
		inner.RespChan = answer
		select {
		case t.consumeCh <- inner:
		case <-t.shutdownCh:
			rpc.Respond(nil, ErrClosed)
			return
		}
		select {
		case a := <-answer:
			rpc.RespChan <- a
		case <-t.shutdownCh:
			rpc.Respond(nil, ErrClosed)
		}
	}
}

// heartbeatOnTheSpot runs Raft's heartbeat handler fn for rpc if the bound
// node is a follower in the heartbeat's term (see safeHeartbeats), and
// reports whether it did.
func (t *Transport) heartbeatOnTheSpot(fn func(raft.RPC), rpc raft.RPC) bool {
	req, ok := rpc.Command.(*raft.AppendEntriesRequest)
	if r := t.raft.Load(); !ok || r == nil || r.State() != raft.Follower || r.CurrentTerm() != req.Term {
		return false
	}
	fn(rpc)
	return true
}

// IsShutdown reports whether Close has been called.
func (t *Transport) IsShutdown() bool {
	select {
	case <-t.shutdownCh:
		return true
	default:
		return false
	}
}

// Close implements raft.WithClose: it unregisters the group, closes its
// streams and pipelines, and returns once every goroutine of the
// transport has exited. Later calls do nothing.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.mu.closed {
		t.mu.Unlock()
		return nil
	}
	t.mu.closed = true
	clear(t.mu.pool) // the layer closes their streams
	pipelines := make([]*pipeline, 0, len(t.mu.pipelines))
	for p := range t.mu.pipelines {
		pipelines = append(pipelines, p)
	}
	t.mu.Unlock()

	t.mux.hb.setHandler(t.group, t, nil, nil)
	close(t.shutdownCh)
	t.layer.Close() // fails every stream's I/O in progress
	for _, p := range pipelines {
		p.Close()
	}
	t.wg.Wait()
	return nil
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
// itself, with a capped backoff), with a commit hint if the follower needs
// one (commithint.go); an append that fails is retried until it succeeds
// or the bound node no longer replicates to id in the append's term. The
// same request is sent again: it is idempotent for the follower, and its
// entries are still in the leader's log.
func (t *Transport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	if isHeartbeat(args) {
		hint, known := t.commitHint(target, args.Term)
		commit, err := t.mux.hb.call(string(target), t.group, args, hint, resp)
		if err == nil && resp.Success && t.noteCommit(target, args.Term, commit, resp.LastLog, known) {
			t.nudgeReplication() // it must be caught up again
		}
		return err
	}
	err := t.appendEntries(id, target, args, resp)
	if err == nil {
		t.noteAppend(target, args, resp)
	}
	return err
}

// appendEntries sends an append, retrying as AppendEntries says.
func (t *Transport) appendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	err := t.call(target, args, resp)
	r := t.raft.Load()
	if err == nil || r == nil || errors.Is(err, errEntryTooLarge) {
		// An entry over the frame limit never fits: resending it would
		// only hold up the entries after it.
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
		if err = t.call(target, args, resp); err == nil {
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

// RequestVote implements raft.Transport.
func (t *Transport) RequestVote(_ raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	return t.call(target, args, resp)
}

// RequestPreVote implements raft.WithPreVote.
func (t *Transport) RequestPreVote(_ raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	return t.call(target, args, resp)
}

// TimeoutNow implements raft.Transport.
func (t *Transport) TimeoutNow(_ raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	return t.call(target, args, resp)
}

// call sends req to target on a pooled (or new) stream and reads resp,
// all within the timeout. A stream that fails is closed; one that gets
// an answer, even an error, goes back to the pool.
func (t *Transport) call(target raft.ServerAddress, req, resp any) error {
	c, pooled, err := t.getConn(target)
	if err != nil {
		return err
	}
	remoteErr, err := t.exchange(c, req, resp)
	var netErr net.Error
	if err != nil && pooled && !errors.Is(err, errEntryTooLarge) && !(errors.As(err, &netErr) && netErr.Timeout()) {
		// A pooled stream may have died while idle (the peer's group or
		// session restarted); its first use then fails at once. Votes are
		// not retried by Raft, so send once more on a fresh stream: every
		// Raft RPC may be delivered twice.
		if c, err = t.dial(target); err != nil {
			return err
		}
		remoteErr, err = t.exchange(c, req, resp)
	}
	if err != nil {
		return err
	}
	t.returnConn(c)
	if remoteErr != "" {
		return errors.New(remoteErr)
	}
	return nil
}

// exchange sends req on c and reads the answer into resp; on an error it
// aborts c.
func (t *Transport) exchange(c *rpcConn, req, resp any) (string, error) {
	c.SetDeadline(time.Now().Add(t.cfg.Timeout))
	if err := c.send(req, t.cfg.MaxFrameBytes); err != nil {
		c.abort()
		return "", err
	}
	remoteErr, err := c.receive(resp, t.cfg.MaxFrameBytes)
	if err != nil {
		c.abort()
	}
	return remoteErr, err
}

// InstallSnapshot implements raft.Transport: the request, then the
// snapshot's args.Size bytes read from data, then the response, on a
// stream of its own that is closed after (its state is unknown if the
// install fails halfway). The deadline is the timeout scaled by the size.
func (t *Transport) InstallSnapshot(_ raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	c, err := t.dial(target) // of its own: it is closed after
	if err != nil {
		return err
	}
	defer c.abort()
	c.SetDeadline(time.Now().Add(t.snapshotTimeout(args.Size)))
	if err := c.send(args, t.cfg.MaxFrameBytes); err != nil {
		return err
	}
	// NB: straight to the stream in large writes; the request is flushed.
	if _, err := io.CopyBuffer(c.conn, data, make([]byte, 64<<10)); err != nil {
		return fmt.Errorf("weir/peer: send snapshot: %w", err)
	}
	remoteErr, err := c.receive(resp, t.cfg.MaxFrameBytes)
	if err != nil {
		return err
	}
	if remoteErr != "" {
		return errors.New(remoteErr)
	}
	return nil
}

// snapshotTimeout is the I/O deadline for a snapshot of size bytes.
func (t *Transport) snapshotTimeout(size int64) time.Duration {
	return max(t.cfg.Timeout, t.cfg.Timeout*time.Duration(size/snapshotTimeoutScale))
}

// getConn returns the most recently used pooled stream to target, or
// dials one; pooled says which.
func (t *Transport) getConn(target raft.ServerAddress) (c *rpcConn, pooled bool, err error) {
	t.mu.Lock()
	if t.mu.closed {
		t.mu.Unlock()
		return nil, false, raft.ErrTransportShutdown
	}
	if conns := t.mu.pool[target]; len(conns) > 0 {
		c := conns[len(conns)-1]
		conns[len(conns)-1] = nil
		t.mu.pool[target] = conns[:len(conns)-1]
		t.mu.Unlock()
		return c, true, nil
	}
	t.mu.Unlock()
	c, err = t.dial(target)
	return c, false, err
}

// dial opens a new stream to target.
func (t *Transport) dial(target raft.ServerAddress) (*rpcConn, error) {
	nc, err := t.layer.Dial(target, t.cfg.Timeout)
	if err != nil {
		return nil, err
	}
	return &rpcConn{conn: nc.(*conn), target: target}, nil
}

// returnConn pools c for reuse, or closes it if the pool is full.
func (t *Transport) returnConn(c *rpcConn) {
	c.lastUsed = time.Now()
	t.mu.Lock()
	if conns := t.mu.pool[c.target]; !t.mu.closed && len(conns) < t.cfg.MaxPool {
		t.mu.pool[c.target] = append(conns, c)
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	c.Close()
}

// sweep closes the pooled streams idle for IdleTimeout (the Mux calls it
// periodically).
func (t *Transport) sweep(now time.Time) {
	var idle []*rpcConn
	t.mu.Lock()
	for target, conns := range t.mu.pool {
		// The pool is in order of use: the idle ones come first.
		n := 0
		for n < len(conns) && now.Sub(conns[n].lastUsed) >= t.cfg.IdleTimeout {
			n++
		}
		if n == 0 {
			continue
		}
		idle = append(idle, conns[:n]...)
		if n == len(conns) {
			delete(t.mu.pool, target)
		} else {
			t.mu.pool[target] = slices.Clone(conns[n:])
		}
	}
	t.mu.Unlock()
	for _, c := range idle {
		c.Close() // the peer reads EOF, and its serving goroutine ends
	}
}

// rpcConn is a client stream of the transport. It holds no buffer between
// RPCs: a write buffer is borrowed for each request.
type rpcConn struct {
	*conn
	target raft.ServerAddress
	// lastUsed is when the stream was last returned to the pool.
	lastUsed time.Time
}

// streamBufferSize is the write buffer of a stream while it writes a
// request. Writes larger than it (the entries of an append) go straight
// to the stream.
const streamBufferSize = 4 << 10

var writerPool = sync.Pool{New: func() any { return newStreamWriter() }}

// send writes req and flushes it.
func (c *rpcConn) send(req any, maxBody int) error {
	w := writerPool.Get().(*streamWriter)
	defer w.release()
	w.Reset(c.conn)
	if _, err := writeRequest(w, w.AvailableBuffer(), req, maxBody); err != nil {
		return err
	}
	return w.Flush()
}

// receive reads the response to the request sent, into resp.
func (c *rpcConn) receive(resp any, maxBody int) (string, error) {
	typ, body, err := readFrame(c.conn, maxBody, nil)
	if err != nil {
		return "", err
	}
	return decodeResponse(typ, body, resp)
}
