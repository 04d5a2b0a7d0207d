package peer

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hashicorp/yamux"
)

// listen starts a Mux on a free loopback port, closed at cleanup.
func listen(t testing.TB, opts Options) *Mux {
	t.Helper()
	return listenOn(t, "127.0.0.1:0", opts)
}

func listenOn(t testing.TB, addr string, opts Options) *Mux {
	t.Helper()
	m, err := Listen(addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// pending is the number of streams queued for group on m.
func pending(m *Mux, group string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.mu.groups[group].queue)
}

// register is m.StreamLayer, failing the test on error.
func register(t testing.TB, m *Mux, group string) raft.StreamLayer {
	t.Helper()
	l, err := m.StreamLayer(group)
	if err != nil {
		t.Fatalf("StreamLayer(%q): %v", group, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// acceptTimeout is l.Accept bounded by timeout.
func acceptTimeout(t testing.TB, l net.Listener, timeout time.Duration) net.Conn {
	t.Helper()
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := l.Accept()
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("Accept: %v", r.err)
		}
		return r.c
	case <-time.After(timeout):
		// Unblock the goroutine before failing, so it does not leak.
		l.Close()
		<-ch
		t.Fatalf("Accept: nothing in %v", timeout)
		return nil
	}
}

// readClosed asserts that c is closed by its peer: a Read ends in EOF or
// an error rather than data, within a bounded time.
func readClosed(t testing.TB, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(make([]byte, 1))
	if n != 0 || err == nil {
		t.Fatalf("Read on rejected stream: n=%d err=%v, want EOF", n, err)
	}
	if errors.Is(err, yamux.ErrTimeout) {
		t.Fatalf("Read on rejected stream timed out: the mux did not close it")
	}
}

// roundTrip dials group from a to b, sends msg, and checks that b's layer
// receives it and its echo comes back.
func roundTrip(t testing.TB, from raft.StreamLayer, to raft.StreamLayer, addr net.Addr, msg string) {
	t.Helper()
	c, err := from.Dial(raft.ServerAddress(addr.String()), 5*time.Second)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("Write: %v", err)
	}
	s := acceptTimeout(t, to, 5*time.Second)
	defer s.Close()
	s.SetDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(s, got); err != nil || string(got) != msg {
		t.Fatalf("accepted stream read %q, %v; want %q", got, err, msg)
	}
	if _, err := s.Write(got); err != nil {
		t.Fatalf("echo: %v", err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	echo := make([]byte, len(msg))
	if _, err := io.ReadFull(c, echo); err != nil || string(echo) != msg {
		t.Fatalf("echo read %q, %v; want %q", echo, err, msg)
	}
}

func TestStreamRoundTripTwoGroups(t *testing.T) {
	a, b := listen(t, Options{}), listen(t, Options{})
	a1, a2 := register(t, a, "g1"), register(t, a, "g2")
	b1, b2 := register(t, b, "g1"), register(t, b, "g2")

	// Both groups, both directions.
	roundTrip(t, a1, b1, b.Addr(), "hello g1")
	roundTrip(t, a2, b2, b.Addr(), "hello g2")
	roundTrip(t, b1, a1, a.Addr(), "back g1")
	roundTrip(t, b2, a2, a.Addr(), "back g2")

	// Isolation: streams of g1 queue on g1 only, however many there are,
	// and g2's queue sees only g2's data.
	var g1 []net.Conn
	for i := 0; i < 3; i++ {
		c, err := a1.Dial(raft.ServerAddress(b.Addr().String()), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "AAAA")
		g1 = append(g1, c)
	}
	c2, err := a2.Dial(raft.ServerAddress(b.Addr().String()), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	io.WriteString(c2, "BBBB")
	s2 := acceptTimeout(t, b2, 5*time.Second)
	defer s2.Close()
	s2.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, 4)
	if _, err := io.ReadFull(s2, got); err != nil || string(got) != "BBBB" {
		t.Fatalf("g2 read %q, %v", got, err)
	}
	if n := pending(b, "g2"); n != 0 {
		t.Fatalf("g2 queue has %d more streams, want 0", n)
	}
	for range g1 {
		s := acceptTimeout(t, b1, 5*time.Second)
		defer s.Close()
		s.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(s, got); err != nil || string(got) != "AAAA" {
			t.Fatalf("g1 read %q, %v", got, err)
		}
	}

	// One TCP connection per direction, whatever the number of streams.
	for name, m := range map[string]*Mux{"a": a, "b": b} {
		st := m.Stats()
		if st.AcceptedConns != 1 || st.DialedConns != 1 || st.InboundSessions != 1 || st.OutboundSessions != 1 {
			t.Errorf("%s stats %+v: want 1 connection and 1 session each way", name, st)
		}
		if st.Groups != 2 {
			t.Errorf("%s groups = %d, want 2", name, st.Groups)
		}
	}
}

func TestStreamLayerRegistration(t *testing.T) {
	m := listen(t, Options{Advertise: "node1.example:7421"})
	if _, err := m.StreamLayer(""); !errors.Is(err, ErrInvalidGroupID) {
		t.Errorf("empty id: %v", err)
	}
	if _, err := m.StreamLayer(strings.Repeat("x", 256)); !errors.Is(err, ErrInvalidGroupID) {
		t.Errorf("256-byte id: %v", err)
	}
	l, err := m.StreamLayer("g")
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Addr().String(); got != "node1.example:7421" {
		t.Errorf("Addr = %q, want the advertised address", got)
	}
	if _, err := m.StreamLayer("g"); !errors.Is(err, ErrGroupRegistered) {
		t.Errorf("duplicate: %v", err)
	}

	// Close unblocks Accept, unregisters, and the id can be registered
	// again.
	errc := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		errc <- err
	}()
	l.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Accept after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still blocked after Close")
	}
	if _, err := l.Dial(raft.ServerAddress(m.ListenAddr().String()), time.Second); !errors.Is(err, ErrClosed) {
		t.Errorf("Dial after Close: %v", err)
	}
	l.Close() // idempotent
	register(t, m, "g")
}

func TestOptionsValidate(t *testing.T) {
	for name, opts := range map[string]Options{
		"advertise without port": {Advertise: "node1"},
		"small window":           {StreamWindowBytes: 1024},
		"negative timeout":       {HeaderTimeout: -1},
	} {
		if _, err := Listen("127.0.0.1:0", opts); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%s: Listen = %v, want ErrInvalidOptions", name, err)
		}
	}
}

func TestUnknownGroupStreamClosed(t *testing.T) {
	a, b := listen(t, Options{}), listen(t, Options{})
	ag := register(t, a, "late")
	c, err := ag.Dial(raft.ServerAddress(b.Addr().String()), time.Second)
	if err != nil {
		t.Fatal(err) // the stream opens; b closes it on reading the header
	}
	defer c.Close()
	readClosed(t, c)
	waitFor(t, 5*time.Second, "rejected stream counted", func() bool { return b.Stats().RejectedStreams == 1 })

	// The replica appears: the next dial (Raft's retry) gets through, on
	// the same session.
	bg := register(t, b, "late")
	roundTrip(t, ag, bg, b.Addr(), "now")
	if st := a.Stats(); st.DialedConns != 1 {
		t.Errorf("a dialed %d connections, want 1", st.DialedConns)
	}
}

func TestBadStreamsClosed(t *testing.T) {
	m := listen(t, Options{HeaderTimeout: 200 * time.Millisecond})
	g := register(t, m, "g")

	// A raw yamux client, as a broken or foreign peer would be.
	tcp, err := net.Dial("tcp", m.ListenAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	sess, err := yamux.Client(tcp, m.yamuxConf)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()

	for _, tc := range []struct {
		name   string
		header []byte
	}{
		{"bad magic", []byte("GET / HTTP/1.1\r\n")},
		{"oversized id", append([]byte("WPR2\x01\x00"), strings.Repeat("g", 256)...)},
		{"empty id", []byte("WPR2\x00\x00")},
		{"slow header", []byte("WPR2\x00")}, // never completed
		{"unknown group", appendHeader(nil, "nope")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := sess.OpenStream()
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if _, err := st.Write(tc.header); err != nil {
				t.Fatal(err)
			}
			readClosed(t, st)
		})
	}
	if got := m.Stats().RejectedStreams; got != 5 {
		t.Errorf("RejectedStreams = %d, want 5", got)
	}

	// The session and the mux keep serving good streams.
	st, err := sess.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Write(append(appendHeader(nil, "g"), "ok"...)); err != nil {
		t.Fatal(err)
	}
	s := acceptTimeout(t, g, 5*time.Second)
	defer s.Close()
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, 2)
	if _, err := io.ReadFull(s, got); err != nil || string(got) != "ok" {
		t.Fatalf("read %q, %v", got, err)
	}

	// And a peer that is not yamux at all only loses its own connection.
	raw, err := net.Dial("tcp", m.ListenAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.Write(bytes.Repeat([]byte{0xff}, 64))
	raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(raw); err != nil {
		t.Fatalf("garbage connection: %v, want EOF", err)
	}
	if st := m.Stats(); st.InboundSessions != 1 {
		t.Errorf("inbound sessions = %d, want 1 (the good one)", st.InboundSessions)
	}
}

func TestAcceptQueueBounded(t *testing.T) {
	a, b := listen(t, Options{}), listen(t, Options{MaxPendingStreams: 2})
	ag, bg := register(t, a, "g"), register(t, b, "g")
	var conns []net.Conn
	for i := 0; i < 3; i++ {
		c, err := ag.Dial(raft.ServerAddress(b.Addr().String()), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
		// Streams are routed concurrently; wait for each to be queued
		// or rejected, so which one overflows is known.
		waitFor(t, 5*time.Second, "stream routed", func() bool {
			return pending(b, "g")+int(b.Stats().RejectedStreams) == i+1
		})
	}
	readClosed(t, conns[2])
	for i := 0; i < 2; i++ {
		s := acceptTimeout(t, bg, 5*time.Second)
		s.Close()
	}
}

func TestRemoteRestartRedials(t *testing.T) {
	a := listen(t, Options{})
	ag := register(t, a, "g")
	b, err := Listen("127.0.0.1:0", Options{})
	if err != nil {
		t.Fatal(err)
	}
	addr := b.ListenAddr().String()
	roundTrip(t, ag, register(t, b, "g"), b.Addr(), "before")

	b.Close()
	// a's session notices the closed connection; its slot still holds the
	// dead session, which the next Dial replaces.
	waitFor(t, 5*time.Second, "a's session to b closed", func() bool { return a.Stats().OutboundSessions == 0 })
	b2 := listenOn(t, addr, Options{})
	roundTrip(t, ag, register(t, b2, "g"), b2.Addr(), "after")
	if st := a.Stats(); st.DialedConns != 2 || st.OutboundSessions != 1 {
		t.Errorf("a stats %+v: want a second dial and one live session", st)
	}
}

func TestCloseWithActiveGroups(t *testing.T) {
	a, b := listen(t, Options{}), listen(t, Options{})
	ag := register(t, a, "g")
	bg := register(t, b, "g")
	idle := register(t, b, "idle")
	// An established stream with a Read blocked on each side, and a
	// stream queued but never accepted.
	c, err := ag.Dial(raft.ServerAddress(b.Addr().String()), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s := acceptTimeout(t, bg, 5*time.Second)
	if _, err := ag.Dial(raft.ServerAddress(b.Addr().String()), time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "stream queued", func() bool { return pending(b, "g") == 1 })

	readErr := make(chan error, 2)
	for _, conn := range []net.Conn{c, s} {
		go func() {
			_, err := conn.Read(make([]byte, 1))
			readErr <- err
		}()
	}
	acceptErr := make(chan error, 1)
	go func() {
		_, err := idle.Accept()
		acceptErr <- err
	}()

	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-acceptErr:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Accept after Mux.Close: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept blocked after Mux.Close")
	}
	for i := 0; i < 2; i++ {
		select {
		case err := <-readErr:
			if err == nil {
				t.Error("Read returned no error after Close")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Read blocked after Close")
		}
	}
	if _, err := b.StreamLayer("new"); !errors.Is(err, ErrClosed) {
		t.Errorf("StreamLayer after Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// Closing a first, with its layer still registered, must not leak
	// either; goleak in TestMain checks every test's goroutines.
	if err := a.Close(); err != nil {
		t.Errorf("Close a: %v", err)
	}
}

// TestUnknownGroupLargeWriteFailsFast: a peer that writes more than a
// stream window to a group this node does not have (yet) learns it at once:
// the write finishes (the data is discarded) and the read sees EOF. (Before,
// the half-closed stream took no more data and such a write hung until its
// deadline: 5 s for Raft's appends to a restarted follower whose replica was
// not open yet.)
func TestUnknownGroupLargeWriteFailsFast(t *testing.T) {
	a, b := listen(t, Options{}), listen(t, Options{})
	ag := register(t, a, "late")
	c, err := ag.Dial(raft.ServerAddress(b.Addr().String()), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	c.SetDeadline(start.Add(5 * time.Second))
	_, werr := c.Write(make([]byte, 4<<20)) // 4 MiB: several windows
	_, rerr := c.Read(make([]byte, 1))
	took := time.Since(start)
	// A write the other side does not drain waits for window updates until
	// the deadline: ErrTimeout. Drained, it ends with the stream's EOF.
	if errors.Is(werr, yamux.ErrTimeout) || errors.Is(rerr, yamux.ErrTimeout) {
		t.Fatalf("write to an unknown group: write %v, read %v after %v; want EOF before the deadline", werr, rerr, took)
	}
	if rerr == nil {
		t.Fatalf("read on a rejected stream returned data")
	}
}
