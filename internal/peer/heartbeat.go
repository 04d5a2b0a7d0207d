package peer

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hashicorp/yamux"
)

// heartbeats coalesces the Raft heartbeats of every group of a Mux: the
// heartbeats for one remote node travel in one request per
// Options.HeartbeatInterval at most, over one stream, and come back in one
// response (see "Coalesced heartbeats" in the package documentation).
type heartbeats struct {
	m *Mux

	mu        sync.Mutex
	handlerOf map[string]*heartbeatHandler // by group
	// handling holds the groups whose handler is running: a group gets
	// one at a time, and a heartbeat arriving meanwhile is answered busy.
	handling map[string]bool
	senders  map[string]*heartbeatSender // by remote address
	// senderIdle is how long a sender with nothing to send lives on:
	// senderIdleTimeout (tests shorten it before the first call).
	senderIdle time.Duration
}

// heartbeatHandler is a group's Raft heartbeat handler, registered by the
// group's transport. onTheSpot, if not nil, runs a heartbeat that it can
// answer without waiting and reports whether it did: deliver tries it
// first, in the goroutine serving the stream, and gives fn a goroutine of
// its own only for the heartbeats onTheSpot leaves.
type heartbeatHandler struct {
	owner     *Transport
	fn        func(raft.RPC)
	onTheSpot func(raft.RPC) bool
}

// heartbeatCall is one heartbeat waiting for its answer.
type heartbeatCall struct {
	group string
	req   *raft.AppendEntriesRequest
	hint  commitHint
	resp  *raft.AppendEntriesResponse
	// commit is the follower's commit index, from its answer.
	commit uint64
	err    error
	done   chan struct{}
}

func newHeartbeats(m *Mux) *heartbeats {
	return &heartbeats{m: m, handlerOf: make(map[string]*heartbeatHandler), handling: make(map[string]bool),
		senders: make(map[string]*heartbeatSender), senderIdle: senderIdleTimeout}
}

// setHandler makes fn (with onTheSpot, see heartbeatHandler) the heartbeat
// handler of group, for owner; a nil fn removes owner's handler.
func (h *heartbeats) setHandler(group string, owner *Transport, fn func(raft.RPC), onTheSpot func(raft.RPC) bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if fn == nil {
		if cur := h.handlerOf[group]; cur != nil && cur.owner == owner {
			delete(h.handlerOf, group)
		}
		return
	}
	h.handlerOf[group] = &heartbeatHandler{owner: owner, fn: fn, onTheSpot: onTheSpot}
}

// startHandling returns group's handler and marks it running, or a reason
// there is none to run.
func (h *heartbeats) startHandling(group string) (*heartbeatHandler, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	cur := h.handlerOf[group]
	switch {
	case cur == nil:
		// Normal while a replica is being created or a restarted node
		// has not opened it yet: Raft retries.
		return nil, "group not open on this node"
	case h.handling[group]:
		return nil, errBusy
	}
	h.handling[group] = true
	return cur, ""
}

func (h *heartbeats) doneHandling(group string) {
	h.mu.Lock()
	delete(h.handling, group)
	h.mu.Unlock()
}

// errBusy answers a heartbeat whose group is still handling an earlier
// one, or whose handler did not finish in time.
const errBusy = "follower busy: answer not ready"

// call sends the heartbeat req of group, with hint, to the node at addr,
// with the heartbeats of other groups to that node, fills resp with the
// follower's answer and returns the follower's commit index. The answer
// comes from a request sent after call started.
func (h *heartbeats) call(addr, group string, req *raft.AppendEntriesRequest, hint commitHint, resp *raft.AppendEntriesResponse) (uint64, error) {
	c := &heartbeatCall{group: group, req: req, hint: hint, resp: resp, done: make(chan struct{})}
	for {
		s, err := h.sender(addr)
		if err != nil {
			return 0, err
		}
		// A sender that retired for idleness is out of the table: the
		// next lookup starts a new one.
		if err := s.enqueue(c); !errors.Is(err, errSenderRetired) {
			if err != nil {
				return 0, err
			}
			break
		}
	}
	<-c.done
	return c.commit, c.err
}

// errSenderRetired: the sender stopped for lack of heartbeats to send.
var errSenderRetired = errors.New("weir/peer: heartbeat sender retired")

// senderIdleTimeout is how long a sender with nothing to send lives on:
// a node that no group heartbeats any more (removed from the cluster, or
// no longer a follower of any group led here) costs no goroutine after it.
const senderIdleTimeout = time.Minute

// sender returns the sender for addr, starting it on first use.
func (h *heartbeats) sender(addr string) (*heartbeatSender, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s := h.senders[addr]; s != nil {
		return s, nil
	}
	s := &heartbeatSender{h: h, addr: addr, kick: make(chan struct{}, 1)}
	if !h.m.goFunc(s.run) {
		return nil, ErrClosed
	}
	h.senders[addr] = s
	return s, nil
}

// heartbeatSender sends the heartbeats for one remote address: one batch
// at a time, at most one batch per Options.HeartbeatInterval. Its
// goroutine ends with the Mux, or after senderIdleTimeout without a
// heartbeat to send.
type heartbeatSender struct {
	h    *heartbeats
	addr string
	// kick has a token when pending may be non-empty.
	kick chan struct{}

	// stream is the heartbeat stream to addr, or nil; only run uses it.
	stream *yamux.Stream
	// buf is run's encoding buffer.
	buf []byte

	mu      sync.Mutex
	pending []*heartbeatCall
	closed  bool
	retired bool // closed for idleness, not by the Mux
}

// enqueue adds c to the next batch.
func (s *heartbeatSender) enqueue(c *heartbeatCall) error {
	s.mu.Lock()
	if s.closed {
		retired := s.retired
		s.mu.Unlock()
		if retired {
			return errSenderRetired
		}
		return ErrClosed
	}
	s.pending = append(s.pending, c)
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return nil
}

// run sends batches until the Mux closes, then fails what is pending.
func (s *heartbeatSender) run() {
	m := s.h.m
	defer func() {
		if s.stream != nil {
			abortStream(s.stream)
		}
		s.mu.Lock()
		s.closed = true
		pending := s.pending
		s.pending = nil
		s.mu.Unlock()
		finish(pending, ErrClosed)
	}()
	timer := time.NewTimer(0)
	<-timer.C
	idle := time.NewTimer(s.h.senderIdle)
	defer idle.Stop()
	var last time.Time
	for {
		select {
		case <-s.kick:
		case <-m.ctx.Done():
			return
		case <-idle.C:
			if s.retire() {
				return
			}
			idle.Reset(s.h.senderIdle)
			continue
		}
		// NB: waiting here is the coalescing: heartbeats that arrive
		// meanwhile join the batch.
		if wait := time.Until(last.Add(m.opts.HeartbeatInterval)); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-m.ctx.Done():
				return
			}
		}
		s.mu.Lock()
		batch := s.pending
		if n := batchLen(batch); n < len(batch) {
			batch, s.pending = batch[:n:n], batch[n:]
			select {
			case s.kick <- struct{}{}:
			default:
			}
		} else {
			s.pending = nil
		}
		s.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		last = time.Now()
		s.exchange(batch)
		idle.Reset(s.h.senderIdle)
	}
}

// retire takes the sender out of the table if it has nothing to send;
// enqueue then refuses with errSenderRetired, and call starts a new one.
func (s *heartbeatSender) retire() bool {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) > 0 {
		return false
	}
	s.closed, s.retired = true, true
	if s.h.senders[s.addr] == s {
		delete(s.h.senders, s.addr)
	}
	return true
}

// batchLen is how many of calls fit in one request: at most
// maxHeartbeatBatch, and their encoding within half of maxHeartbeatFrame.
func batchLen(calls []*heartbeatCall) int {
	size := 0
	for i, c := range calls {
		// NB: an upper bound of the encoding: 10 bytes per varint.
		size += 90 + len(c.group) + len(c.req.ID) + len(c.req.Addr) + len(c.req.Leader)
		if i == maxHeartbeatBatch || size > maxHeartbeatFrame/2 {
			return max(i, 1)
		}
	}
	return len(calls)
}

// exchange sends batch and hands out the answers, or fails every call of
// the batch.
func (s *heartbeatSender) exchange(batch []*heartbeatCall) {
	m := s.h.m
	if s.stream == nil {
		st, err := m.dial(heartbeatGroup, s.addr, m.opts.HeartbeatTimeout)
		if err != nil {
			finish(batch, err)
			return
		}
		s.stream = st
	}
	results, err := s.roundTrip(batch)
	if err != nil {
		abortStream(s.stream)
		s.stream = nil
		finish(batch, err)
		return
	}
	m.heartbeatBatches.Add(1)
	m.heartbeatsSent.Add(uint64(len(batch)))
	for i, c := range batch {
		if r := results[i]; r.err != "" {
			c.err = fmt.Errorf("weir/peer: heartbeat to %s for group %q: %s", s.addr, c.group, r.err)
		} else {
			*c.resp, c.commit = r.resp, r.commit
		}
		close(c.done)
	}
}

// roundTrip writes the request for batch on the stream and reads its
// response, within HeartbeatTimeout.
func (s *heartbeatSender) roundTrip(batch []*heartbeatCall) ([]heartbeatResult, error) {
	st := s.stream
	st.SetDeadline(time.Now().Add(s.h.m.opts.HeartbeatTimeout))
	s.buf = appendHeartbeatRequest(s.buf[:0], batch)
	if _, err := st.Write(s.buf); err != nil {
		return nil, err
	}
	body, err := readHeartbeatFrame(st)
	if err != nil {
		return nil, err
	}
	return decodeHeartbeatResponse(body, len(batch))
}

// finish fails every call of batch with err.
func finish(batch []*heartbeatCall, err error) {
	for _, c := range batch {
		c.err = err
		close(c.done)
	}
}

// sessionCloseWait is how long a heartbeat stream that ended waits for its
// session to close, to tell a lost node from a stream closed alone.
const sessionCloseWait = time.Second

// serve answers the heartbeat requests of one stream until it fails or the
// Mux closes: each heartbeat goes to its group's Raft heartbeat handler.
// If the stream's session closes, Options.OnPeerLost hears of the leader
// whose heartbeats it carried.
func (h *heartbeats) serve(st *yamux.Stream) {
	defer abortStream(st)
	var out []byte
	var from []byte // the advertised address of the node heartbeating
	defer func() {
		fn := h.m.opts.OnPeerLost
		if fn == nil || len(from) == 0 {
			return
		}
		// NB: a node that shuts down resets its streams before it closes
		// its sessions; a stream reset alone (its sender retired) is no
		// loss.
		wait := time.NewTimer(sessionCloseWait)
		defer wait.Stop()
		select {
		case <-st.Session().CloseChan():
			if h.m.ctx.Err() == nil {
				fn(string(from))
			}
		case <-wait.C:
		case <-h.m.ctx.Done():
		}
	}()
	for {
		// NB: no read deadline: a stream waits while its sender has no
		// leader to heartbeat for; yamux's keepalives close dead sessions.
		st.SetReadDeadline(time.Time{})
		body, err := readHeartbeatFrame(st)
		if err == nil {
			var entries []heartbeatEntry
			if entries, err = decodeHeartbeatRequest(body); err == nil {
				if from = entries[0].req.Addr; len(from) == 0 {
					from = entries[0].req.Leader
				}
				out = appendHeartbeatResponse(out[:0], h.deliver(entries))
				st.SetWriteDeadline(time.Now().Add(h.m.opts.HeartbeatTimeout))
				_, err = st.Write(out)
			}
		}
		if err != nil {
			if errors.Is(err, errBadHeartbeatFrame) {
				h.m.logger.Warn("closing heartbeat stream", "remote", st.RemoteAddr(), "err", err)
			}
			return
		}
	}
}

// heartbeatAnswerWait bounds how long a response waits for a slow handler
// (one persisting a new term, behind other groups' fsyncs in an election
// storm). A heartbeat not answered by then is answered with an error and
// handled on in the background: its leader counts one failed heartbeat and
// retries (Raft backs off 10 ms at first), while the other groups'
// answers, in the same response, are not held up. Without the bound, one
// slow group delayed every group's heartbeats to a node past their leader
// leases, and they all stepped down at once.
const heartbeatAnswerWait = 20 * time.Millisecond

// deliver hands each heartbeat to its group's handler and collects the
// answers. A heartbeat its handler can answer on the spot (a follower's in
// its own term, nearly all of them) is answered here; the others' handlers
// run concurrently, and deliver returns within heartbeatAnswerWait of the
// first one. (A goroutine for every heartbeat was 333 per batch at 1,000
// partitions per node, for handlers that take microseconds.)
func (h *heartbeats) deliver(entries []heartbeatEntry) []heartbeatResult {
	var mu sync.Mutex
	results := make([]heartbeatResult, len(entries))
	answered := make([]bool, len(entries))
	handlers := make([]*heartbeatHandler, len(entries))
	left := 0
	for i := range entries {
		var why string
		handlers[i], why = h.startHandling(entries[i].group)
		switch {
		case handlers[i] == nil:
			results[i], answered[i] = heartbeatResult{err: why}, true
		case handlers[i].onTheSpot != nil:
			if r, ok := handleHeartbeatOnTheSpot(handlers[i].onTheSpot, &entries[i].req); ok {
				h.doneHandling(entries[i].group)
				results[i], answered[i] = handlers[i].owner.afterHeartbeat(&entries[i], r), true
				handlers[i] = nil
				continue
			}
			left++
		default:
			left++
		}
	}
	if left == 0 {
		return results
	}
	all := make(chan struct{})
	answer := func(i int, r heartbeatResult) {
		mu.Lock()
		defer mu.Unlock()
		results[i], answered[i] = r, true
		if left--; left == 0 {
			close(all)
		}
	}
	for i, hh := range handlers {
		if hh == nil {
			continue
		}
		// NB: a Mux goroutine, which Close waits for: a late handler
		// outlives the response it missed.
		started := h.m.goFunc(func() {
			r := hh.owner.afterHeartbeat(&entries[i], handleHeartbeat(hh.fn, &entries[i].req))
			h.doneHandling(entries[i].group)
			answer(i, r)
		})
		if !started {
			h.doneHandling(entries[i].group)
			answer(i, heartbeatResult{err: ErrClosed.Error()})
		}
	}
	timer := time.NewTimer(heartbeatAnswerWait)
	select {
	case <-all:
	case <-timer.C:
	}
	timer.Stop()
	mu.Lock()
	defer mu.Unlock()
	out := make([]heartbeatResult, len(entries))
	for i := range out {
		if out[i] = results[i]; !answered[i] {
			out[i].err = errBusy
		}
	}
	return out
}

// handleHeartbeat runs one heartbeat through a Raft node's handler, which
// answers before it returns, or not at all if the node is shutting down.
func handleHeartbeat(fn func(raft.RPC), req *raft.AppendEntriesRequest) heartbeatResult {
	r, _ := handleHeartbeatOnTheSpot(func(rpc raft.RPC) bool { fn(rpc); return true }, req)
	return r
}

// handleHeartbeatOnTheSpot runs one heartbeat through onTheSpot, and
// reports whether onTheSpot took it; if so, with its answer.
func handleHeartbeatOnTheSpot(onTheSpot func(raft.RPC) bool, req *raft.AppendEntriesRequest) (heartbeatResult, bool) {
	respCh := make(chan raft.RPCResponse, 1)
	if !onTheSpot(raft.RPC{Command: req, RespChan: respCh}) {
		return heartbeatResult{}, false
	}
	select {
	case r := <-respCh:
		if r.Error != nil {
			return heartbeatResult{err: r.Error.Error()}, true
		}
		if resp, ok := r.Response.(*raft.AppendEntriesResponse); ok {
			return heartbeatResult{resp: *resp}, true
		}
		return heartbeatResult{err: fmt.Sprintf("unexpected answer %T", r.Response)}, true
	default:
		return heartbeatResult{err: "raft node shutting down"}, true
	}
}
