package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
)

// Mux is one node's peer endpoint: a TCP listener whose connections are
// yamux sessions, and the yamux sessions this node dials to others. Every
// Raft group of the node registers here with StreamLayer (or NewTransport)
// and gets its streams demultiplexed by the group id in each stream's
// header.
//
// A Mux is safe for concurrent use. Close it after closing its groups'
// transports (closing it first also works: every layer is closed with it).
type Mux struct {
	opts      Options
	logger    *slog.Logger
	yamuxConf *yamux.Config
	listener  net.Listener
	advertise peerAddr

	// ctx is cancelled by Close; it aborts TCP dials in progress, and its
	// Done channel stops the accept loop's retries.
	ctx    context.Context
	cancel context.CancelFunc
	// wg counts every goroutine the Mux starts (see goFunc); Close waits
	// for it.
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	// hb coalesces the heartbeats of every group (heartbeat.go).
	hb *heartbeats

	acceptedConns    atomic.Uint64
	dialedConns      atomic.Uint64
	rejected         atomic.Uint64
	heartbeatBatches atomic.Uint64
	heartbeatsSent   atomic.Uint64
	// commitHintsApplied: see Stats.CommitHintsApplied.
	commitHintsApplied atomic.Uint64

	// mu guards the Mux's tables. It is never held while doing I/O or
	// while taking a remote's or a layer's lock (lock order: remote.mu,
	// then mu; layer.mu and mu are never nested).
	mu struct {
		sync.Mutex
		closed bool
		// groups holds the registered layers by group id.
		groups map[string]*layer
		// remotes holds the outgoing session slot of each address dialed.
		remotes map[string]*remote
		// sessions holds every live session; the value is true for a
		// session this node dialed (outbound).
		sessions map[*yamux.Session]bool
	}
}

// Stats are counters of a Mux, for metrics and tests.
type Stats struct {
	// AcceptedConns and DialedConns count TCP connections since Listen.
	AcceptedConns uint64
	DialedConns   uint64
	// InboundSessions and OutboundSessions count live yamux sessions.
	InboundSessions  int
	OutboundSessions int
	// Streams counts open yamux streams over all live sessions (each Raft
	// connection is one stream on each side).
	Streams int
	// RejectedStreams counts incoming streams closed by the Mux: bad or
	// slow header, unknown group, full accept queue.
	RejectedStreams uint64
	// Groups is the number of registered groups.
	Groups int
	// HeartbeatBatches counts the coalesced heartbeat requests answered
	// by other nodes, and HeartbeatsSent the Raft heartbeats they carried.
	HeartbeatBatches uint64
	HeartbeatsSent   uint64
	// CommitHintsApplied counts the commit hints this node's followers
	// handed to Raft (commithint.go).
	CommitHintsApplied uint64
}

// Listen binds addr and serves peer connections on it until Close.
func Listen(addr string, opts Options) (*Mux, error) {
	opts, err := opts.EnsureDefaults()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("weir/peer: listen %s: %w", addr, err)
	}
	m := &Mux{
		opts:      opts,
		logger:    opts.Logger.With("component", "peer"),
		yamuxConf: opts.yamuxConfig(),
		listener:  ln,
		advertise: peerAddr(opts.Advertise),
	}
	if m.advertise == "" {
		m.advertise = peerAddr(ln.Addr().String())
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.mu.groups = make(map[string]*layer)
	m.mu.remotes = make(map[string]*remote)
	m.mu.sessions = make(map[*yamux.Session]bool)
	m.hb = newHeartbeats(m)
	m.wg.Add(2)
	go func() {
		defer m.wg.Done()
		m.acceptLoop()
	}()
	go func() {
		defer m.wg.Done()
		m.sweepLoop()
	}()
	return m, nil
}

// sweepLoop calls the sweep function of every layer that has one (the
// transports close their idle pooled streams) every idleSweepInterval
// until Close.
func (m *Mux) sweepLoop() {
	ticker := time.NewTicker(m.opts.idleSweepInterval)
	defer ticker.Stop()
	var sweeps []func(time.Time)
	for {
		select {
		case now := <-ticker.C:
			m.mu.Lock()
			for _, l := range m.mu.groups {
				if l.sweep != nil {
					sweeps = append(sweeps, l.sweep)
				}
			}
			m.mu.Unlock()
			// NB: outside m.mu: a sweep takes its transport's lock.
			for i, sweep := range sweeps {
				sweep(now)
				sweeps[i] = nil
			}
			sweeps = sweeps[:0]
		case <-m.ctx.Done():
			return
		}
	}
}

// Addr is the advertised address: what other nodes dial, and what every
// layer's Addr returns.
func (m *Mux) Addr() net.Addr { return m.advertise }

// ListenAddr is the address the listener is bound to.
func (m *Mux) ListenAddr() net.Addr { return m.listener.Addr() }

// Stats returns the Mux's counters.
func (m *Mux) Stats() Stats {
	s := Stats{
		AcceptedConns:   m.acceptedConns.Load(),
		DialedConns:     m.dialedConns.Load(),
		RejectedStreams: m.rejected.Load(),

		HeartbeatBatches: m.heartbeatBatches.Load(),
		HeartbeatsSent:   m.heartbeatsSent.Load(),

		CommitHintsApplied: m.commitHintsApplied.Load(),
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for sess, outbound := range m.mu.sessions {
		if sess.IsClosed() {
			continue // its watcher is about to remove it
		}
		s.Streams += sess.NumStreams()
		if outbound {
			s.OutboundSessions++
		} else {
			s.InboundSessions++
		}
	}
	s.Groups = len(m.mu.groups)
	return s
}

// Close closes the listener, every session and its streams, and every
// registered layer (their Accept returns ErrClosed). It returns after every
// goroutine of the Mux has exited. Later calls return the first result.
func (m *Mux) Close() error {
	m.closeOnce.Do(func() {
		// Stop intake first: no new goroutine, session or group after this.
		m.mu.Lock()
		m.mu.closed = true
		layers := make([]*layer, 0, len(m.mu.groups))
		for _, l := range m.mu.groups {
			layers = append(layers, l)
		}
		clear(m.mu.groups)
		sessions := make([]*yamux.Session, 0, len(m.mu.sessions))
		for s := range m.mu.sessions {
			sessions = append(sessions, s)
		}
		m.mu.Unlock()

		m.cancel()
		err := m.listener.Close()
		for _, l := range layers {
			l.shutdown()
		}
		for _, s := range sessions {
			s.Close() // closes its streams; always returns nil
		}
		m.wg.Wait()
		if err != nil && !errors.Is(err, net.ErrClosed) {
			m.closeErr = fmt.Errorf("weir/peer: close listener: %w", err)
		}
	})
	return m.closeErr
}

// goFunc runs f in a goroutine that Close waits for. It returns false, and
// does not run f, once the Mux is closed.
func (m *Mux) goFunc(f func()) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.closed {
		return false
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		f()
	}()
	return true
}

// addSession records a live session and starts the goroutine that serves
// it (accepting streams, or watching an outbound session until it dies).
// It closes the session and returns ErrClosed if the Mux is closed.
func (m *Mux) addSession(s *yamux.Session, outbound bool) error {
	m.mu.Lock()
	if m.mu.closed {
		m.mu.Unlock()
		s.Close()
		return ErrClosed
	}
	m.mu.sessions[s] = outbound
	m.mu.Unlock()
	serve := func() { m.acceptStreams(s) }
	if outbound {
		serve = func() { m.watchSession(s) }
	}
	if !m.goFunc(serve) {
		// Close began between the two locks and will not see s running.
		s.Close()
		return ErrClosed
	}
	return nil
}

// removeSession forgets a dead session.
func (m *Mux) removeSession(s *yamux.Session) {
	m.mu.Lock()
	delete(m.mu.sessions, s)
	m.mu.Unlock()
}

// acceptLoop accepts TCP connections until the listener is closed. Each
// connection becomes a yamux server session.
func (m *Mux) acceptLoop() {
	var delay time.Duration
	for {
		conn, err := m.listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off, as
			// net/http does, rather than spin.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			m.logger.Warn("accept peer connection", "err", err, "retry", delay)
			select {
			case <-time.After(delay):
				continue
			case <-m.ctx.Done():
				return
			}
		}
		delay = 0
		m.acceptedConns.Add(1)
		sess, err := yamux.Server(conn, m.yamuxConf)
		if err != nil {
			// Only a bad config fails here, and ours was built valid.
			conn.Close()
			m.logger.Error("start peer session", "remote", conn.RemoteAddr(), "err", err)
			continue
		}
		m.logger.Debug("peer session accepted", "remote", conn.RemoteAddr())
		if m.addSession(sess, false /* outbound */) != nil {
			return
		}
	}
}

// acceptStreams accepts the streams of an inbound session until it dies,
// and routes each by its header.
func (m *Mux) acceptStreams(s *yamux.Session) {
	defer m.removeSession(s)
	defer s.Close()
	for {
		st, err := s.AcceptStream()
		if err != nil {
			if s.IsClosed() {
				m.logger.Debug("peer session closed", "remote", s.RemoteAddr(), "err", err)
				return
			}
			// Acknowledging that one stream failed; the session lives.
			m.logger.Warn("accept peer stream", "remote", s.RemoteAddr(), "err", err)
			continue
		}
		// NB: the header is read in its own goroutine so that one slow or
		// silent stream cannot hold up the others of the session.
		if !m.goFunc(func() { m.routeStream(st) }) {
			st.Close()
			return
		}
	}
}

// routeStream reads a new stream's header and hands the stream to its
// group's layer, or closes it.
func (m *Mux) routeStream(st *yamux.Stream) {
	st.SetReadDeadline(time.Now().Add(m.opts.HeaderTimeout))
	group, err := readHeader(st)
	if err != nil {
		m.rejected.Add(1)
		level := slog.LevelDebug // peer went away, or a slow peer
		if errors.Is(err, ErrBadMagic) || errors.Is(err, ErrBadHeader) {
			level = slog.LevelWarn // not a weir peer, or a broken one
		}
		m.logger.Log(context.Background(), level, "reject peer stream", "remote", st.RemoteAddr(), "err", err)
		abortStream(st)
		return
	}
	st.SetReadDeadline(time.Time{})
	if group == heartbeatGroup {
		m.hb.serve(st)
		return
	}

	m.mu.Lock()
	l := m.mu.groups[group]
	m.mu.Unlock()
	if l == nil {
		// Normal while a replica is being created (or a restarted node
		// has not opened it yet): Raft retries.
		m.rejected.Add(1)
		m.logger.Debug("peer stream for unknown group", "group", group, "remote", st.RemoteAddr())
		m.refuseStream(st)
		return
	}
	if err := l.enqueue(st); err != nil {
		m.rejected.Add(1)
		m.logger.Warn("reject peer stream", "group", group, "remote", st.RemoteAddr(), "err", err)
		m.refuseStream(st)
	}
}

// refuseStream closes a well-formed stream that has nowhere to go, so that
// its peer's request fails at once. Closing it is not enough: yamux lets the
// peer go on writing to a stream this side has closed, and a write larger
// than the stream's window (a Raft append catching up a follower whose
// replica is not open yet) waits for window updates that never come, until
// its deadline: the transport's timeout, 5 s. So the data is read and
// dropped, until the peer closes its side (it reads our EOF once its
// request is written) or HeaderTimeout passes.
func (m *Mux) refuseStream(st *yamux.Stream) {
	st.Close()
	st.SetReadDeadline(time.Now().Add(m.opts.HeaderTimeout))
	io.Copy(io.Discard, st)
	abortStream(st)
}

// abortStream closes st and fails any Read or Write in progress on it at
// once. (Close alone only half-closes: a blocked Read would wait for the
// peer's close.)
func abortStream(st *yamux.Stream) {
	st.Close()
	st.SetDeadline(time.Unix(1, 0))
}

// peerAddr is an advertised "host:port" as a net.Addr.
type peerAddr string

func (a peerAddr) Network() string { return "tcp" }
func (a peerAddr) String() string  { return string(a) }
