package test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// faultProxy is a TCP proxy for fault injection: it listens on an address,
// forwards every connection to a target, and can be cut (its connections
// closed, and new ones refused or held without an answer) and healed, for
// every client or only for clients from one source IP. The cluster fault
// tests put one in front of each node's peer listener.
//
// Every goroutine it starts ends by Close (registered as a test cleanup):
// the accept loop, and one or two per forwarded connection. A held
// connection has no goroutine, only a socket, closed by Heal or Close.
type faultProxy struct {
	ln     net.Listener
	target string
	// ctx is cancelled by Close; it aborts dials to the target.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the accept loop and the forwarding goroutines

	accepted, refused, held atomic.Int64
	bytesUp, bytesDown      atomic.Int64 // client to target, and back

	mu struct {
		sync.Mutex
		closed bool
		// cuts maps a source IP, or "" for every source, to what happens
		// to a connection from it.
		cuts map[string]cutMode
		// conns holds the open connections, forwarded or held.
		conns map[*proxyConn]struct{}
	}
}

// cutMode is what a cut proxy does with a new connection.
type cutMode int

const (
	// cutRefuse resets a connection as soon as it is accepted: the
	// client sees it fail at once, as when the port is closed.
	cutRefuse cutMode = iota + 1
	// cutBlackhole accepts a connection and holds it: nothing is read,
	// forwarded or answered, and nothing is closed, until Heal or Close.
	// The client's writes fill the socket buffers and then block, and its
	// reads wait, as across a network partition: silence, not an error.
	cutBlackhole
)

func (m cutMode) String() string {
	switch m {
	case cutRefuse:
		return "refuse"
	case cutBlackhole:
		return "blackhole"
	}
	return "none"
}

// proxyConn is one client connection of the proxy.
type proxyConn struct {
	src    string // the client's IP
	client net.Conn
	held   bool

	mu       sync.Mutex
	upstream net.Conn // nil until dialed, or for a held connection
	closed   bool
}

// close resets both sides (a fault); it is idempotent and makes every read
// and write in progress on them return.
func (c *proxyConn) close() { c.closeWith(reset) }

// closeWith closes both sides with how (reset, or a graceful net.Conn.Close
// once both directions ended by EOF: a reset would discard data not yet
// delivered).
func (c *proxyConn) closeWith(how func(net.Conn)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	how(c.client)
	if c.upstream != nil {
		how(c.upstream)
	}
}

// setUpstream records the connection to the target, unless c was closed
// meanwhile (the caller then closes up).
func (c *proxyConn) setUpstream(up net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.upstream = up
	return true
}

// reset closes c with a TCP reset rather than a FIN, as a broken network
// path or a refusing host does, and without leaving TIME_WAIT sockets.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// faultProxyDialTimeout bounds a dial to the target.
const faultProxyDialTimeout = 5 * time.Second

// newFaultProxy listens on listen ("127.0.0.2:0" for a free port) and
// forwards to target. It is closed at the end of the test.
func newFaultProxy(t testing.TB, listen, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, target: target}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.mu.cuts = map[string]cutMode{}
	p.mu.conns = map[*proxyConn]struct{}{}
	p.wg.Add(1)
	go p.acceptLoop()
	t.Cleanup(p.Close)
	return p
}

// Addr is the proxy's listening address.
func (p *faultProxy) Addr() string { return p.ln.Addr().String() }

// Close stops the proxy: the listener and every connection are closed, and
// it returns once every goroutine of the proxy has ended. It is idempotent.
func (p *faultProxy) Close() {
	p.mu.Lock()
	if p.mu.closed {
		p.mu.Unlock()
		return
	}
	p.mu.closed = true
	conns := make([]*proxyConn, 0, len(p.mu.conns))
	for c := range p.mu.conns {
		conns = append(conns, c)
	}
	clear(p.mu.conns)
	p.mu.Unlock()
	p.cancel()
	p.ln.Close()
	for _, c := range conns {
		c.close()
	}
	p.wg.Wait()
}

// Cut closes every current connection and treats new ones per mode, until
// Heal.
func (p *faultProxy) Cut(mode cutMode) { p.cut("", mode) }

// CutFrom closes the current connections from source IP ip and treats new
// ones from it per mode, until Heal. Other clients are not affected.
func (p *faultProxy) CutFrom(ip string, mode cutMode) { p.cut(ip, mode) }

func (p *faultProxy) cut(src string, mode cutMode) {
	p.mu.Lock()
	p.mu.cuts[src] = mode
	var victims []*proxyConn
	for c := range p.mu.conns {
		if src == "" || c.src == src {
			victims = append(victims, c)
			if c.held {
				// No goroutine of its own to forget it.
				delete(p.mu.conns, c)
			}
		}
	}
	p.mu.Unlock()
	for _, c := range victims {
		c.close()
	}
}

// Heal lifts every cut. The connections held meanwhile are closed (the
// partition broke them); new connections are forwarded again.
func (p *faultProxy) Heal() {
	p.mu.Lock()
	clear(p.mu.cuts)
	var held []*proxyConn
	for c := range p.mu.conns {
		if c.held {
			held = append(held, c)
			delete(p.mu.conns, c)
		}
	}
	p.mu.Unlock()
	for _, c := range held {
		c.close()
	}
}

// faultProxyStats are a proxy's counters.
type faultProxyStats struct {
	Accepted, Refused, Held int64 // connections since the start
	Open                    int   // connections open now, forwarded or held
	BytesUp, BytesDown      int64 // forwarded to the target, and back
}

func (p *faultProxy) Stats() faultProxyStats {
	p.mu.Lock()
	open := len(p.mu.conns)
	p.mu.Unlock()
	return faultProxyStats{
		Accepted: p.accepted.Load(), Refused: p.refused.Load(), Held: p.held.Load(), Open: open,
		BytesUp: p.bytesUp.Load(), BytesDown: p.bytesDown.Load(),
	}
}

// cutLocked is the cut that applies to a connection from src, or 0.
func (p *faultProxy) cutLocked(src string) cutMode {
	if m, ok := p.mu.cuts[src]; ok {
		return m
	}
	return p.mu.cuts[""]
}

func (p *faultProxy) acceptLoop() {
	defer p.wg.Done()
	for {
		conn, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off, bounded by
			// Close.
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
				continue
			}
		}
		p.accepted.Add(1)
		src, _, _ := net.SplitHostPort(conn.RemoteAddr().String())
		c := &proxyConn{src: src, client: conn}
		p.mu.Lock()
		if p.mu.closed {
			p.mu.Unlock()
			reset(conn)
			return
		}
		switch p.cutLocked(src) {
		case cutRefuse:
			p.mu.Unlock()
			p.refused.Add(1)
			reset(conn)
			continue
		case cutBlackhole:
			c.held = true
			p.mu.conns[c] = struct{}{}
			p.mu.Unlock()
			p.held.Add(1)
			continue
		}
		p.mu.conns[c] = struct{}{}
		// Under mu and before closed is set: Close's Wait comes after.
		p.wg.Add(1)
		p.mu.Unlock()
		go p.forward(c)
	}
}

// forward dials the target for c and copies both ways until either side
// fails or both have closed, or c is cut.
func (p *faultProxy) forward(c *proxyConn) {
	defer p.wg.Done()
	graceful := false
	defer func() {
		if graceful {
			c.closeWith(func(conn net.Conn) { conn.Close() })
		} else {
			c.close()
		}
		p.mu.Lock()
		delete(p.mu.conns, c)
		p.mu.Unlock()
	}()
	d := net.Dialer{Timeout: faultProxyDialTimeout}
	up, err := d.DialContext(p.ctx, "tcp", p.target)
	if err != nil {
		return // the target is down: the client's connection is reset
	}
	if !c.setUpstream(up) {
		reset(up)
		return
	}
	down := make(chan bool, 1)
	go func() { down <- p.pipe(c, c.client, up, &p.bytesDown) }()
	upOK := p.pipe(c, up, c.client, &p.bytesUp)
	graceful = <-down && upOK
}

// pipe copies from src to dst. At src's EOF it half-closes dst (the other
// direction may go on) and returns true; on any error it resets the whole
// connection and returns false.
func (p *faultProxy) pipe(c *proxyConn, dst, src net.Conn, n *atomic.Int64) bool {
	buf := make([]byte, 32<<10)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			if _, werr := dst.Write(buf[:k]); werr != nil {
				c.close()
				return false
			}
			n.Add(int64(k))
		}
		if errors.Is(err, io.EOF) {
			if tc, ok := dst.(*net.TCPConn); ok {
				tc.CloseWrite()
			}
			return true
		}
		if err != nil {
			c.close()
			return false
		}
	}
}

// --- Tests of the proxy itself.

// proxyGoroutines returns the stacks of the goroutines running code of a
// faultProxy.
func proxyGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "(*faultProxy).") || strings.Contains(g, "(*proxyConn).") {
			out = append(out, g)
		}
	}
	return out
}

// echoServer accepts connections on addr and writes back what it reads,
// until the test ends. accepted counts its connections.
type echoServer struct {
	ln       net.Listener
	accepted atomic.Int64
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
}

func startEcho(t *testing.T, addr string) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	e := &echoServer{ln: ln, conns: map[net.Conn]struct{}{}}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.accepted.Add(1)
			e.mu.Lock()
			e.conns[c] = struct{}{}
			e.mu.Unlock()
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
				e.mu.Lock()
				delete(e.conns, c)
				e.mu.Unlock()
				c.Close()
			}()
		}
	}()
	t.Cleanup(e.close)
	return e
}

func (e *echoServer) close() {
	e.ln.Close()
	e.mu.Lock()
	for c := range e.conns {
		c.Close()
	}
	e.mu.Unlock()
	e.wg.Wait()
}

// dialFrom connects to addr from source IP src ("" for any), failing the
// test on error.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %q: %v", addr, src, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// refused checks that a connection from src ("" for any) to addr fails
// at once: the dial itself, or the connection right after it.
func refused(t *testing.T, src, addr string) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return // reset before connect returned
	}
	defer c.Close()
	broken(t, c)
}

// echoes checks that msg sent on c comes back within 5 s.
func echoes(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write through the proxy: %v", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
		t.Fatalf("read through the proxy: %q, %v; want %q", got, err, msg)
	}
}

// broken checks that c fails (EOF or reset, not a timeout) within 5 s.
func broken(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	// A write may still succeed into the socket buffer; the read tells.
	io.WriteString(c, "x")
	n, err := c.Read(make([]byte, 1))
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("connection still up: read %d bytes, err %v; want EOF or reset", n, err)
	}
}

// silent checks that c gets no answer to a write for a while (a blackhole:
// no data, no close). NB: proving an absence needs a wait; it is short.
func silent(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetDeadline(time.Now().Add(300 * time.Millisecond))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, "hello?"); err != nil {
		t.Fatalf("write into a blackhole failed at once: %v", err)
	}
	n, err := c.Read(make([]byte, 1))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("blackholed connection answered: read %d bytes, err %v; want a timeout", n, err)
	}
}

func TestFaultProxyForwards(t *testing.T) {
	e := startEcho(t, "127.0.0.1:0")
	p := newFaultProxy(t, "127.0.0.1:0", e.ln.Addr().String())
	c := dialFrom(t, "", p.Addr())
	// 4 MiB each way, written and read concurrently (more than the socket
	// buffers hold, so the proxy must stream).
	const size = 4 << 20
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	wrote := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		wrote <- err
	}()
	got, err := io.ReadAll(c) // until the echo server's FIN, relayed
	if err != nil {
		t.Fatalf("read through the proxy: %v", err)
	}
	if err := <-wrote; err != nil {
		t.Fatalf("write through the proxy: %v", err)
	}
	if len(got) != size || string(got) != string(data) {
		t.Fatalf("echoed %d bytes, want %d (equal: %v)", len(got), size, string(got) == string(data))
	}
	waitUntil(t, 5*time.Second, "connection forgotten after both sides closed", func() (bool, string) {
		s := p.Stats()
		return s.Open == 0, ""
	})
	s := p.Stats()
	if s.BytesUp != size || s.BytesDown != size || s.Accepted != 1 {
		t.Fatalf("stats %+v, want %d bytes each way over 1 connection", s, size)
	}
}

func TestFaultProxyCutRefuseAndHeal(t *testing.T) {
	e := startEcho(t, "127.0.0.1:0")
	p := newFaultProxy(t, "127.0.0.1:0", e.ln.Addr().String())
	before := dialFrom(t, "", p.Addr())
	echoes(t, before, "ping")

	p.Cut(cutRefuse)
	broken(t, before)
	refused(t, "", p.Addr()) // the kernel accepts; the proxy resets
	if n := e.accepted.Load(); n != 1 {
		t.Fatalf("the target got %d connections, want 1 (none while cut)", n)
	}
	if s := p.Stats(); s.Refused != 1 {
		t.Fatalf("stats %+v, want 1 refused", s)
	}

	p.Heal()
	after := dialFrom(t, "", p.Addr())
	echoes(t, after, "pong")
}

func TestFaultProxyBlackholeAndHeal(t *testing.T) {
	e := startEcho(t, "127.0.0.1:0")
	p := newFaultProxy(t, "127.0.0.1:0", e.ln.Addr().String())
	before := dialFrom(t, "", p.Addr())
	echoes(t, before, "ping")

	p.Cut(cutBlackhole)
	broken(t, before) // current connections are closed
	held := dialFrom(t, "", p.Addr())
	silent(t, held)
	if n := e.accepted.Load(); n != 1 {
		t.Fatalf("the target got %d connections, want 1 (none while cut)", n)
	}
	if s := p.Stats(); s.Held != 1 || s.Open != 1 {
		t.Fatalf("stats %+v, want 1 held and open", s)
	}

	p.Heal()
	broken(t, held) // what the partition held is closed at the heal
	after := dialFrom(t, "", p.Addr())
	echoes(t, after, "pong")
}

// TestFaultProxyCutFrom cuts one source IP; the others go on.
func TestFaultProxyCutFrom(t *testing.T) {
	e := startEcho(t, "127.0.0.1:0")
	p := newFaultProxy(t, "127.0.0.1:0", e.ln.Addr().String())
	a := dialFrom(t, "127.0.0.2", p.Addr())
	b := dialFrom(t, "127.0.0.3", p.Addr())
	echoes(t, a, "a")
	echoes(t, b, "b")

	p.CutFrom("127.0.0.2", cutBlackhole)
	broken(t, a)
	echoes(t, b, "b still")
	silent(t, dialFrom(t, "127.0.0.2", p.Addr()))
	echoes(t, dialFrom(t, "127.0.0.3", p.Addr()), "b new")

	p.CutFrom("127.0.0.3", cutRefuse)
	broken(t, b)
	refused(t, "127.0.0.3", p.Addr())
	echoes(t, dialFrom(t, "127.0.0.4", p.Addr()), "others still")

	p.Heal()
	echoes(t, dialFrom(t, "127.0.0.2", p.Addr()), "a again")
	echoes(t, dialFrom(t, "127.0.0.3", p.Addr()), "b again")
}

// TestFaultProxyCloseEndsEverything: Close returns with connections
// forwarded, held and stuck in a write, and leaves no goroutine behind.
func TestFaultProxyCloseEndsEverything(t *testing.T) {
	// A target that accepts and never reads: the proxy's copy to it blocks
	// once the socket buffers are full.
	sink, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	var sinkConns []net.Conn
	sinkDone := make(chan struct{})
	go func() {
		defer close(sinkDone)
		for {
			c, err := sink.Accept()
			if err != nil {
				return
			}
			sinkConns = append(sinkConns, c)
		}
	}()
	p := newFaultProxy(t, "127.0.0.1:0", sink.Addr().String())
	stuck := dialFrom(t, "", p.Addr())
	go func() {
		stuck.SetWriteDeadline(time.Now().Add(20 * time.Second))
		stuck.Write(make([]byte, 32<<20)) // ends when the proxy resets it
	}()
	waitUntil(t, 10*time.Second, "the proxy forwarding into a full sink", func() (bool, string) {
		s := p.Stats()
		return s.BytesUp > 0 && s.Open == 1, fmt.Sprintf("%+v", s)
	})
	p.CutFrom("127.0.0.5", cutBlackhole)
	dialFrom(t, "127.0.0.5", p.Addr())
	waitUntil(t, 5*time.Second, "a held connection", func() (bool, string) {
		return p.Stats().Held == 1, ""
	})

	closed := make(chan struct{})
	go func() {
		p.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return in 10 s")
	}
	broken(t, stuck)
	if s := p.Stats(); s.Open != 0 {
		t.Fatalf("after Close: %+v", s)
	}
	p.Close() // idempotent
	// Close has waited for every goroutine to be done; one may still be
	// on its way out (its deferred calls run, not yet exited), so allow a
	// moment before calling any a leak.
	waitUntil(t, 5*time.Second, "no goroutine of the proxy left after Close", func() (bool, string) {
		stacks := proxyGoroutines()
		return len(stacks) == 0, strings.Join(stacks, "\n\n")
	})
	sink.Close()
	<-sinkDone
	for _, c := range sinkConns {
		c.Close()
	}
}
