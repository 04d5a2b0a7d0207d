package peer

import (
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hashicorp/yamux"
)

// StreamLayer registers group on m and returns its raft.StreamLayer: Accept
// yields the streams other nodes open for group, Dial opens streams to
// group on other nodes, and Addr is m's advertised address. Closing the
// layer unregisters the group, fails Accept with ErrClosed, and closes
// every stream it accepted or dialed.
//
// It fails with ErrInvalidGroupID, with ErrGroupRegistered if group is
// registered already, or with ErrClosed.
func (m *Mux) StreamLayer(group string) (raft.StreamLayer, error) {
	return m.register(group, nil, nil)
}

// register registers group on m. If serve is not nil, each stream
// accepted for the group is handed to serve, in the Mux goroutine that
// read its header, instead of being queued for Accept; serve returns when
// it is done with the stream. If sweep is not nil, the Mux calls it every
// Options.idleSweepInterval (from one goroutine) until the layer closes.
func (m *Mux) register(group string, serve func(*conn), sweep func(now time.Time)) (*layer, error) {
	if err := validGroupID(group); err != nil {
		return nil, err
	}
	l := &layer{
		mux:   m,
		group: group,
		serve: serve,
		sweep: sweep,
		done:  make(chan struct{}),
	}
	if serve == nil {
		l.queue = make(chan *conn, m.opts.MaxPendingStreams)
	}
	l.mu.conns = make(map[*conn]struct{})
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.closed {
		return nil, ErrClosed
	}
	if _, ok := m.mu.groups[group]; ok {
		return nil, fmt.Errorf("%w: %q", ErrGroupRegistered, group)
	}
	m.mu.groups[group] = l
	return l, nil
}

// layer is one group's raft.StreamLayer on a Mux.
type layer struct {
	mux   *Mux
	group string
	// queue holds accepted streams that Accept has not returned yet (nil
	// if serve takes them).
	queue chan *conn
	// serve and sweep: see register.
	serve func(*conn)
	sweep func(now time.Time)
	// done is closed by shutdown.
	done chan struct{}

	// mu guards closed and conns. No I/O under it but non-blocking
	// closes of yamux streams.
	mu struct {
		sync.Mutex
		closed bool
		// conns holds every open stream of the group, queued, accepted
		// or dialed, so shutdown can close them all: Raft's
		// NetworkTransport.Close closes neither its pool nor the
		// connections it serves.
		conns map[*conn]struct{}
	}
}

var _ raft.StreamLayer = (*layer)(nil)

// Accept waits for the next stream opened for the group by another node.
func (l *layer) Accept() (net.Conn, error) {
	select {
	case c := <-l.queue:
		return c, nil
	case <-l.done:
		return nil, fmt.Errorf("group %q: %w", l.group, ErrClosed)
	}
}

// Close unregisters the group and closes its streams. It is idempotent.
func (l *layer) Close() error {
	l.mux.unregister(l)
	l.shutdown()
	return nil
}

// Addr is the Mux's advertised address.
func (l *layer) Addr() net.Addr { return l.mux.advertise }

// Dial opens a stream to the group on the node whose Mux advertises address.
func (l *layer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	select {
	case <-l.done:
		return nil, fmt.Errorf("group %q: %w", l.group, ErrClosed)
	default:
	}
	st, err := l.mux.dial(l.group, string(address), timeout)
	if err != nil {
		return nil, err
	}
	c, err := l.track(st)
	if err != nil {
		abortStream(st)
		return nil, err
	}
	return c, nil
}

// enqueue hands an accepted stream to the group: to serve, which returns
// when the stream is done, or to the queue for Accept. It fails if the
// layer is closed or its queue is full; the caller closes st.
func (l *layer) enqueue(st *yamux.Stream) error {
	c, err := l.track(st)
	if err != nil {
		return err
	}
	if l.serve != nil {
		l.serve(c)
		return nil
	}
	select {
	case l.queue <- c:
		return nil
	default:
		l.untrack(c)
		return fmt.Errorf("group %q: accept queue full (%d streams)", l.group, cap(l.queue))
	}
}

// track wraps st and records it as a stream of the layer.
func (l *layer) track(st *yamux.Stream) (*conn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return nil, fmt.Errorf("group %q: %w", l.group, ErrClosed)
	}
	c := &conn{Stream: st, layer: l}
	l.mu.conns[c] = struct{}{}
	return c, nil
}

func (l *layer) untrack(c *conn) {
	l.mu.Lock()
	delete(l.mu.conns, c)
	l.mu.Unlock()
}

// shutdown fails Accept and Dial and closes every stream of the layer.
func (l *layer) shutdown() {
	l.mu.Lock()
	if l.mu.closed {
		l.mu.Unlock()
		return
	}
	l.mu.closed = true
	close(l.done)
	conns := l.mu.conns
	l.mu.conns = nil
	l.mu.Unlock()
	for c := range conns {
		c.abort()
	}
	// The queue's streams were in conns; empty it so they can be freed.
	if l.queue == nil {
		return
	}
	for {
		select {
		case <-l.queue:
		default:
			return
		}
	}
}

// unregister removes l from the group table, if it is still there.
func (m *Mux) unregister(l *layer) {
	m.mu.Lock()
	if m.mu.groups[l.group] == l {
		delete(m.mu.groups, l.group)
	}
	m.mu.Unlock()
}

// conn is a stream of a layer: a net.Conn whose Close also forgets it.
type conn struct {
	*yamux.Stream
	layer *layer
	once  sync.Once
}

// Close half-closes the stream (the peer reads EOF) and forgets it.
func (c *conn) Close() error {
	var err error
	c.once.Do(func() {
		c.layer.untrack(c)
		err = c.Stream.Close()
	})
	return err
}

// abort closes the stream, fails its Reads and Writes in progress, and
// forgets it.
func (c *conn) abort() {
	c.once.Do(func() { c.layer.untrack(c) }) // a later Close is a no-op
	abortStream(c.Stream)
}
