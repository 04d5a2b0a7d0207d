package peer

import (
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// listenLoopback is listenOn for a loopback IP other than 127.0.0.1; it
// skips the test where that IP is not configured (only Linux answers on
// all of 127.0.0.0/8 out of the box).
func listenLoopback(t *testing.T, ip string) *Mux {
	t.Helper()
	m, err := Listen(ip+":0", Options{})
	if errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Skipf("%s is not a local address here: %v", ip, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestDialSourceIsListenerIP: a Mux listening on 127.0.0.2 dials other
// nodes from 127.0.0.2, so a node's outgoing peer connections can be told
// from another's by their source IP.
func TestDialSourceIsListenerIP(t *testing.T) {
	a := listenLoopback(t, "127.0.0.2")
	b := listenLoopback(t, "127.0.0.3")
	la := register(t, a, "g")
	lb := register(t, b, "g")

	// A plain TCP listener sees the source of the connection itself.
	raw, err := net.Listen("tcp", "127.0.0.3:0")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := raw.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	c, err := la.Dial(raft.ServerAddress(raw.Addr().String()), 5*time.Second)
	if err != nil {
		t.Fatalf("Dial %s: %v", raw.Addr(), err)
	}
	defer c.Close()
	select {
	case conn, ok := <-accepted:
		if !ok {
			t.Fatal("Accept failed")
		}
		defer conn.Close()
		if ip := conn.RemoteAddr().(*net.TCPAddr).IP.String(); ip != "127.0.0.2" {
			t.Fatalf("connection from %s, want source IP 127.0.0.2", conn.RemoteAddr())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no connection accepted in 5s")
	}

	// And so does the Mux at the other end, through the whole path.
	roundTrip(t, la, lb, b.Addr(), "hello")
	b.mu.Lock()
	var remotes []string
	for s, outbound := range b.mu.sessions {
		if !outbound {
			remotes = append(remotes, s.RemoteAddr().String())
		}
	}
	b.mu.Unlock()
	if len(remotes) != 1 {
		t.Fatalf("b has inbound sessions from %v, want one", remotes)
	}
	if host, _, _ := net.SplitHostPort(remotes[0]); host != "127.0.0.2" {
		t.Fatalf("b's inbound session comes from %s, want 127.0.0.2", remotes[0])
	}
}

// TestDialSourceUnspecifiedListener: a Mux listening on every address
// dials as before, letting the kernel choose the source.
func TestDialSourceUnspecifiedListener(t *testing.T) {
	a := listenOn(t, "0.0.0.0:0", Options{})
	b := listenLoopback(t, "127.0.0.3")
	la := register(t, a, "g")
	lb := register(t, b, "g")
	roundTrip(t, la, lb, b.Addr(), "hello")
}

func TestSourceAddr(t *testing.T) {
	tcp := func(s string) net.Addr {
		a, err := net.ResolveTCPAddr("tcp", s)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	for _, c := range []struct {
		listen, target string
		want           string // "" for nil: the kernel chooses
	}{
		{"127.0.0.2:7421", "127.0.0.3:7421", "127.0.0.2:0"},
		{"127.0.0.2:7421", "127.0.0.2:7422", "127.0.0.2:0"},
		{"10.0.0.5:7421", "10.0.0.6:7421", "10.0.0.5:0"},
		{"10.0.0.5:7421", "127.0.0.1:7421", "10.0.0.5:0"},
		{"[fd00::5]:7421", "[fd00::6]:7421", "[fd00::5]:0"},
		{"[::1]:7421", "[::1]:7422", "[::1]:0"},
		// Unspecified listeners: as before.
		{"0.0.0.0:7421", "127.0.0.3:7421", ""},
		{"[::]:7421", "[fd00::6]:7421", ""},
		// A loopback listener cannot reach another host from its IP (a
		// peer elsewhere, reached through --peer-advertise).
		{"127.0.0.1:7421", "10.0.0.6:7421", ""},
		{"[::1]:7421", "[fd00::6]:7421", ""},
		// Another address family.
		{"127.0.0.1:7421", "[::1]:7421", ""},
		{"10.0.0.5:7421", "[fd00::6]:7421", ""},
		// Names: what they resolve to is not known here.
		{"127.0.0.1:7421", "localhost:7421", ""},
		{"10.0.0.5:7421", "node2:7421", ""},
		// Not host:port.
		{"10.0.0.5:7421", "node2", ""},
	} {
		got := sourceAddr(tcp(c.listen), c.target)
		gotS := ""
		if got != nil {
			gotS = got.String()
		}
		if gotS != c.want {
			t.Errorf("sourceAddr(%s, %s) = %q, want %q", c.listen, c.target, gotS, c.want)
		}
	}
	if got := sourceAddr(peerAddr("node1:7421"), "10.0.0.6:7421"); got != nil {
		t.Errorf("sourceAddr of a non-TCP address = %v, want nil", got)
	}
}

// TestSelfConnected: a connection from a port to itself (what the kernel
// can pick when dialing a port of this host nobody listens on) is seen as
// such; an ordinary one is not.
func TestSelfConnected(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	ln.Close()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: addr.IP, Port: addr.Port}, Timeout: 5 * time.Second}
	self, err := d.Dial("tcp", addr.String())
	if err != nil {
		t.Fatalf("dial a port from itself: %v", err)
	}
	defer self.Close()
	if !selfConnected(self) {
		t.Fatalf("%v -> %v not seen as connected to itself", self.LocalAddr(), self.RemoteAddr())
	}
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	other, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if selfConnected(other) {
		t.Fatal("an ordinary connection seen as connected to itself")
	}
}
