package peer

import (
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
)

// remote is this node's outgoing slot to one peer address: at most one live
// yamux client session, shared by every group.
type remote struct {
	addr string
	// mu serializes dialing addr, so concurrent Dials of many groups make
	// one TCP connection, and guards session. Held during the TCP dial
	// (bounded by its timeout and by Mux.Close), never during stream I/O.
	mu      sync.Mutex
	session *yamux.Session // nil, live, or dead and not yet replaced
}

// dial opens a stream to the Mux at addr for group and writes its header.
// A dead session (closed by the peer, a failed keepalive, a restart of the
// peer) is replaced once, transparently.
func (m *Mux) dial(group, addr string, timeout time.Duration) (*yamux.Stream, error) {
	if timeout <= 0 {
		timeout = m.opts.ConnectionWriteTimeout
	}
	deadline := time.Now().Add(timeout)
	r, err := m.remote(addr)
	if err != nil {
		return nil, err
	}
	hdr := appendHeader(make([]byte, 0, headerFixedLen+len(group)), group)
	var lastErr error
	for attempt := 0; attempt < 2; attempt++ {
		sess, fresh, err := r.get(m, deadline)
		if err != nil {
			return nil, err
		}
		st, err := m.openStream(sess, hdr, deadline)
		if err == nil {
			return st, nil
		}
		lastErr = err
		if !sess.IsClosed() {
			// The session is fine and the stream failed on its own (a
			// write timeout): a new session would not help.
			return nil, err
		}
		r.drop(sess)
		if fresh {
			break // a session just dialed died at once; don't loop
		}
	}
	return nil, fmt.Errorf("weir/peer: dial %s for group %q: %w", addr, group, lastErr)
}

// openStream opens a stream on sess and writes hdr by deadline.
func (m *Mux) openStream(sess *yamux.Session, hdr []byte, deadline time.Time) (*yamux.Stream, error) {
	st, err := sess.OpenStream()
	if err != nil {
		return nil, err
	}
	st.SetWriteDeadline(deadline)
	if _, err := st.Write(hdr); err != nil {
		abortStream(st)
		return nil, err
	}
	st.SetWriteDeadline(time.Time{})
	return st, nil
}

// remote returns the outgoing slot for addr, creating it on first use.
func (m *Mux) remote(addr string) (*remote, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.closed {
		return nil, ErrClosed
	}
	r := m.mu.remotes[addr]
	if r == nil {
		r = &remote{addr: addr}
		m.mu.remotes[addr] = r
	}
	return r, nil
}

// get returns r's live session, dialing a new one if there is none; fresh
// reports a new session.
func (r *remote) get(m *Mux, deadline time.Time) (sess *yamux.Session, fresh bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.session != nil && !r.session.IsClosed() {
		return r.session, false, nil
	}
	d := net.Dialer{Deadline: deadline, LocalAddr: sourceAddr(m.listener.Addr(), r.addr)}
	conn, err := d.DialContext(m.ctx, "tcp", r.addr)
	if err != nil {
		if m.ctx.Err() != nil {
			return nil, false, ErrClosed
		}
		return nil, false, fmt.Errorf("weir/peer: dial %s: %w", r.addr, err)
	}
	if selfConnected(conn) {
		conn.Close()
		return nil, false, fmt.Errorf("weir/peer: dial %s: connected to itself (nobody listens there)", r.addr)
	}
	m.dialedConns.Add(1)
	sess, err = yamux.Client(conn, m.yamuxConf)
	if err != nil {
		conn.Close()
		return nil, false, fmt.Errorf("weir/peer: start session to %s: %w", r.addr, err)
	}
	if err := m.addSession(sess, true /* outbound */); err != nil {
		return nil, false, err
	}
	m.logger.Debug("peer session dialed", "remote", r.addr)
	r.session = sess
	return sess, true, nil
}

// drop forgets sess if it is still r's session.
func (r *remote) drop(sess *yamux.Session) {
	r.mu.Lock()
	if r.session == sess {
		r.session = nil
	}
	r.mu.Unlock()
}

// watchSession waits for an outbound session to die, then forgets it. The
// remote slot keeps the dead session until the next dial replaces it.
func (m *Mux) watchSession(s *yamux.Session) {
	defer m.removeSession(s)
	<-s.CloseChan()
	m.logger.Debug("peer session closed", "remote", s.RemoteAddr())
}

// selfConnected reports a TCP connection to itself (a simultaneous open):
// dialing a down peer's port on this host, the kernel may pick that same
// port as the local one. Such a connection would carry this node's Raft
// messages back to itself as if the peer answered.
func selfConnected(c net.Conn) bool { return c.LocalAddr().String() == c.RemoteAddr().String() }

// sourceAddr is the local address to dial target from: the peer listener's
// IP (any port) when the listener is bound to a specific IP, so that the
// source IP of this node's outgoing peer connections names the node, as
// its listener's IP does for incoming ones. Several nodes on one host can
// then listen on distinct loopback IPs (127.0.0.1, 127.0.0.2, ...) and a
// proxy or firewall between them can tell, and cut, each node's traffic in
// both directions (the end-to-end fault tests in test/ do).
//
// It is nil (the kernel chooses, as before) for an unspecified listener
// (0.0.0.0, ::), and wherever binding could make a dial fail that works
// unbound: a target given by name (what it resolves to is not known here),
// of another address family, or not on loopback while the listener is (a
// peer elsewhere, reached through --peer-advertise).
func sourceAddr(listen net.Addr, target string) net.Addr {
	la, ok := listen.(*net.TCPAddr)
	if !ok || la.IP == nil || la.IP.IsUnspecified() {
		return nil
	}
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || (ip.To4() != nil) != (la.IP.To4() != nil) || (la.IP.IsLoopback() && !ip.IsLoopback()) {
		return nil
	}
	return &net.TCPAddr{IP: la.IP, Zone: la.Zone}
}
