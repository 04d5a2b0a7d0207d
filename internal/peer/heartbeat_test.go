package peer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// quickRaft is a Raft timing that a busy machine (the race detector, other
// tests) does not keep deposing.
func quickRaft(conf *raft.Config) {
	conf.HeartbeatTimeout = 500 * time.Millisecond
	conf.ElectionTimeout = 500 * time.Millisecond
	conf.LeaderLeaseTimeout = 250 * time.Millisecond
}

// leaders returns every group's leader (nil where there is none).
func (c *raftCluster) leaders() []*raft.Raft {
	out := make([]*raft.Raft, len(c.groups))
	for i, g := range c.groups {
		out[i] = g.leader()
	}
	return out
}

// verifyAll runs VerifyLeader on every group's leader (it needs a fresh
// heartbeat answer from a majority of the group) until it succeeds for
// every group in one pass: a busy machine may move a leader meanwhile.
func verifyAll(t *testing.T, c *raftCluster) {
	t.Helper()
	var last error
	waitFor(t, 30*time.Second, "every leader verified", func() bool {
		for i, r := range c.leaders() {
			if r == nil {
				last = fmt.Errorf("group %d has no leader", i)
				return false
			}
			if err := r.VerifyLeader().Error(); err != nil {
				last = fmt.Errorf("group %d: VerifyLeader: %w", i, err)
				return false
			}
		}
		return true
	})
	if last != nil {
		t.Logf("verified after: %v", last)
	}
}

func TestHeartbeatsAreCoalesced(t *testing.T) {
	const nodes, groups = 3, 30
	const interval = 50 * time.Millisecond
	c := startRaftCluster(t, nodes, groups, Options{HeartbeatInterval: interval}, quickRaft)
	c.waitLeaders(t, 60*time.Second)
	verifyAll(t, c)

	before := make([]Stats, nodes)
	for i, m := range c.muxes {
		before[i] = m.Stats()
	}
	start := time.Now()
	// Raft heartbeats every 50-100 ms per group and follower: about
	// 30 * 2 / 0.075 s = 800 a second in all.
	waitFor(t, 30*time.Second, "2,000 heartbeats sent", func() bool {
		var sent uint64
		for i, m := range c.muxes {
			sent += m.Stats().HeartbeatsSent - before[i].HeartbeatsSent
		}
		return sent >= 2000
	})
	elapsed := time.Since(start)
	for i, m := range c.muxes {
		st := m.Stats()
		batches := st.HeartbeatBatches - before[i].HeartbeatBatches
		sent := st.HeartbeatsSent - before[i].HeartbeatsSent
		// A sender starts a batch at most once per interval, so a node
		// sends at most elapsed/interval + 1 batches to each of its
		// peers (plus the one in flight when counting started).
		limit := uint64(nodes-1) * uint64(elapsed/interval+2)
		t.Logf("node %d: %d heartbeats in %d batches over %v", i, sent, batches, elapsed.Round(time.Millisecond))
		if batches > limit {
			t.Errorf("node %d: %d heartbeat batches in %v, want at most %d", i, batches, elapsed, limit)
		}
		if sent <= batches {
			t.Errorf("node %d: %d heartbeats in %d batches: nothing coalesced", i, sent, batches)
		}
	}
	// Answers are real: every leader still verifies its leadership.
	verifyAll(t, c)
}

// A leader whose followers are gone must notice: a coalesced heartbeat is
// answered by the follower, never by the sending node.
func TestLeaderWithoutFollowersStepsDown(t *testing.T) {
	const nodes = 3
	c := startRaftCluster(t, nodes, 1, Options{}, quickRaft)
	c.waitLeaders(t, 60*time.Second)
	g := c.groups[0]
	leader := g.leader()
	for i, r := range g.rafts {
		if r != leader {
			r.Shutdown().Error()
			c.muxes[i].Close()
		}
	}
	waitFor(t, 10*time.Second, "the leader to step down", func() bool { return leader.State() != raft.Leader })
	if err := leader.VerifyLeader().Error(); err == nil {
		t.Fatal("VerifyLeader succeeded without followers")
	}
}

// Only a follower in the heartbeat's term answers it on the spot (see
// Transport.safeHeartbeats); a heartbeat that would change the term or the
// role goes to Raft's main loop, through the transport's Consumer.
func TestHeartbeatsThatChangeTermOrRoleGoToTheMainLoop(t *testing.T) {
	// A Raft node that is not bootstrapped stays a follower in term 0; a
	// bootstrapped single voter leads. Their own transports are in-memory,
	// so nothing but this test reads the consumer channel of tr.
	newRaft := func(bootstrap bool) *raft.Raft {
		conf := raft.DefaultConfig()
		conf.LocalID = "solo"
		conf.Logger = hclog.NewNullLogger()
		quickRaft(conf)
		store := raft.NewInmemStore()
		addr, trans := raft.NewInmemTransport("")
		r, err := raft.NewRaft(conf, &countFSM{}, store, store, raft.NewInmemSnapshotStore(), trans)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Shutdown().Error() })
		if bootstrap {
			err := r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{ID: conf.LocalID, Address: addr}}}).Error()
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, "the single voter to lead", func() bool { return r.State() == raft.Leader })
		}
		return r
	}
	follower, leader := newRaft(false), newRaft(true)
	for _, tc := range []struct {
		name      string
		r         *raft.Raft
		term      uint64
		onTheSpot bool
	}{
		{"follower, its own term", follower, follower.CurrentTerm(), true},
		{"follower, a newer term", follower, follower.CurrentTerm() + 1, false},
		{"leader, its own term", leader, leader.CurrentTerm(), false},
		{"leader, a newer term", leader, leader.CurrentTerm() + 1, false},
		{"not bound yet", nil, 0, false},
	} {
		tr := &Transport{consumeCh: make(chan raft.RPC), shutdownCh: make(chan struct{})}
		if tc.r != nil {
			tr.Bind(tc.r)
		}
		// Stand in for the main loop: answer what comes to the consumer.
		queued := make(chan bool, 1)
		go func() {
			select {
			case rpc := <-tr.consumeCh:
				rpc.Respond(&raft.AppendEntriesResponse{Success: true}, nil)
				queued <- true
			case <-tr.shutdownCh:
				queued <- false
			}
		}()
		handled := false
		answer := make(chan raft.RPCResponse, 1)
		h := tr.safeHeartbeats(func(rpc raft.RPC) {
			handled = true
			rpc.Respond(&raft.AppendEntriesResponse{Success: true}, nil)
		})
		h(raft.RPC{Command: &raft.AppendEntriesRequest{Term: tc.term, Leader: []byte("x")}, RespChan: answer})
		if len(answer) != 1 {
			t.Errorf("%s: not answered when the handler returned", tc.name)
		}
		close(tr.shutdownCh)
		if q := <-queued; handled != tc.onTheSpot || q == tc.onTheSpot {
			t.Errorf("%s: handled on the spot %v, queued for the main loop %v; want on the spot %v",
				tc.name, handled, q, tc.onTheSpot)
		}
	}
}

// leads reports whether r, a group's leader, is node's replica.
func leads(c *raftCluster, r *raft.Raft, node int) bool {
	for _, g := range c.groups {
		if g.rafts[node] == r {
			return true
		}
	}
	return false
}

// A slow handler holds up neither the other groups' answers nor its own
// group's later heartbeats: both get "busy" within heartbeatAnswerWait.
func TestSlowHeartbeatHandlerAnswersBusy(t *testing.T) {
	a, b := listen(t, Options{}), listen(t, Options{})
	release := make(chan struct{})
	defer close(release)
	owner := &Transport{}
	b.hb.setHandler("slow", owner, func(rpc raft.RPC) {
		<-release
		rpc.Respond(&raft.AppendEntriesResponse{Success: true}, nil)
	}, nil)
	// The fast group answers on the spot, in the serving goroutine.
	fast := func(rpc raft.RPC) {
		rpc.Respond(&raft.AppendEntriesResponse{Term: 4, Success: true}, nil)
	}
	b.hb.setHandler("fast", owner, fast, func(rpc raft.RPC) bool { fast(rpc); return true })
	call := func(group string) (*raft.AppendEntriesResponse, error) {
		resp := &raft.AppendEntriesResponse{}
		_, err := a.hb.call(b.Addr().String(), group, &raft.AppendEntriesRequest{Term: 4, Leader: []byte("x")}, commitHint{}, resp)
		return resp, err
	}
	for round := range 2 {
		errc := make(chan error, 1)
		go func() {
			_, err := call("slow")
			errc <- err
		}()
		// NB: the slow handler blocks until the test ends, so the fast
		// group's answer arriving at all shows it was not held up.
		resp, err := call("fast")
		if err != nil || !resp.Success || resp.Term != 4 {
			t.Fatalf("round %d: fast group: %+v, %v", round, resp, err)
		}
		if err := <-errc; err == nil || !strings.Contains(err.Error(), errBusy) {
			t.Fatalf("round %d: slow group: %v, want %q", round, err, errBusy)
		}
	}
}

func TestHeartbeatStreamRejectsBadFrames(t *testing.T) {
	a, b := listen(t, Options{}), listen(t, Options{})
	for _, frame := range [][]byte{
		{0x80, 0, 0, 0},          // declares 2 GiB
		{0, 0, 0, 0},             // empty body
		{0, 0, 0, 2, 0x05, 0x01}, // 5 heartbeats in 1 byte
		{0, 0, 0, 3, 1, 1, 0},    // a reserved (zero) group id, truncated
		withTrailingByte(appendHeartbeatRequest(nil, []*heartbeatCall{{group: "g", req: &raft.AppendEntriesRequest{Term: 1}}})),
		// Commit hints past their entry, or from a later term.
		appendHeartbeatRequest(nil, []*heartbeatCall{{group: "g", req: &raft.AppendEntriesRequest{Term: 2},
			hint: commitHint{commit: 5, prevIndex: 4, prevTerm: 2}}}),
		appendHeartbeatRequest(nil, []*heartbeatCall{{group: "g", req: &raft.AppendEntriesRequest{Term: 2},
			hint: commitHint{commit: 5, prevIndex: 5, prevTerm: 3}}}),
	} {
		st, err := a.dial(heartbeatGroup, b.Addr().String(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Write(frame); err != nil {
			t.Fatal(err)
		}
		readClosed(t, st)
	}
	// b still answers a good request, for a group it does not have.
	_, err := a.hb.call(b.Addr().String(), "nobody", &raft.AppendEntriesRequest{Term: 3, Leader: []byte("x")},
		commitHint{}, &raft.AppendEntriesResponse{})
	if err == nil {
		t.Fatalf("heartbeat for an unknown group: %v, want the follower's error", err)
	}
	t.Log(err)
}

// withTrailingByte appends a byte to frame's body.
func withTrailingByte(frame []byte) []byte {
	frame = append(frame, 0)
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	return frame
}

func TestHeartbeatWireRoundTrip(t *testing.T) {
	calls := []*heartbeatCall{
		{group: "orders-3", req: &raft.AppendEntriesRequest{
			RPCHeader: raft.RPCHeader{ProtocolVersion: 3, ID: []byte("1"), Addr: []byte("127.0.0.1:7421")},
			Term:      7, Leader: []byte("127.0.0.1:7421")}},
		{group: "__meta", req: &raft.AppendEntriesRequest{Term: 1 << 40}},
		{group: "orders-4", req: &raft.AppendEntriesRequest{
			RPCHeader: raft.RPCHeader{ID: []byte("2"), Addr: []byte("127.0.0.1:7421")},
			Term:      9, Leader: []byte("127.0.0.1:7421")},
			hint: commitHint{commit: 1 << 33, prevIndex: 1<<33 + 5, prevTerm: 8}},
	}
	frame := appendHeartbeatRequest(nil, calls)
	body, err := readHeartbeatFrame(bytes.NewReader(frame))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := decodeHeartbeatRequest(body)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range entries {
		want := *calls[i].req
		if want.ID == nil {
			want.ID, want.Addr, want.Leader = []byte{}, []byte{}, []byte{}
		}
		if e.group != calls[i].group || !reflect.DeepEqual(e.req, want) || e.hint != calls[i].hint {
			t.Errorf("entry %d: %q %+v %+v, want %q %+v %+v", i, e.group, e.req, e.hint, calls[i].group, want, calls[i].hint)
		}
	}

	results := []heartbeatResult{
		{resp: raft.AppendEntriesResponse{Term: 7, LastLog: 99, Success: true}, commit: 97},
		{resp: raft.AppendEntriesResponse{Term: 8, NoRetryBackoff: true}},
		{err: "group not open on this node"},
	}
	frame = appendHeartbeatResponse(nil, results)
	if body, err = readHeartbeatFrame(bytes.NewReader(frame)); err != nil {
		t.Fatal(err)
	}
	got, err := decodeHeartbeatResponse(body, len(results))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, results) {
		t.Errorf("results %+v, want %+v", got, results)
	}
	if _, err := decodeHeartbeatResponse(body, len(results)+1); !errors.Is(err, errBadHeartbeatFrame) {
		t.Errorf("response for the wrong number of heartbeats: %v", err)
	}
	if _, err := decodeHeartbeatResponse(append(body, 0), len(results)); !errors.Is(err, errBadHeartbeatFrame) {
		t.Errorf("trailing byte: %v", err)
	}
	bad := binary.AppendUvarint(nil, 1)
	if _, err := decodeHeartbeatResponse(append(bad, 9), 1); !errors.Is(err, errBadHeartbeatFrame) {
		t.Errorf("unknown status: %v", err)
	}
}

// FuzzHeartbeatFrames: the decoders never panic, and what the request
// decoder accepts re-encodes to a body that decodes the same.
func FuzzHeartbeatFrames(f *testing.F) {
	f.Add(appendHeartbeatRequest(nil, []*heartbeatCall{{group: "g", req: &raft.AppendEntriesRequest{Term: 2, Leader: []byte("a:1")}}})[4:])
	f.Add(appendHeartbeatResponse(nil, []heartbeatResult{{err: "x"}, {resp: raft.AppendEntriesResponse{Term: 1, Success: true}}})[4:])
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, body []byte) {
		decodeHeartbeatResponse(body, 2)
		entries, err := decodeHeartbeatRequest(body)
		if err != nil {
			return
		}
		calls := make([]*heartbeatCall, len(entries))
		for i := range entries {
			calls[i] = &heartbeatCall{group: entries[i].group, req: &entries[i].req, hint: entries[i].hint}
		}
		again, err := decodeHeartbeatRequest(appendHeartbeatRequest(nil, calls)[4:])
		if err != nil || !reflect.DeepEqual(again, entries) {
			t.Fatalf("re-encoded %+v decodes to %+v, %v", entries, again, err)
		}
	})
}

// A sender with nothing to send retires, and the next heartbeat to that
// node starts a new one.
func TestIdleHeartbeatSenderRetires(t *testing.T) {
	a, b := listen(t, Options{}), listen(t, Options{})
	a.hb.senderIdle = 50 * time.Millisecond
	b.hb.setHandler("g", &Transport{}, func(rpc raft.RPC) {
		rpc.Respond(&raft.AppendEntriesResponse{Term: 1, Success: true}, nil)
	}, nil)
	sender := func() *heartbeatSender {
		a.hb.mu.Lock()
		defer a.hb.mu.Unlock()
		return a.hb.senders[b.Addr().String()]
	}
	call := func() {
		t.Helper()
		resp := &raft.AppendEntriesResponse{}
		_, err := a.hb.call(b.Addr().String(), "g", &raft.AppendEntriesRequest{Term: 1, Leader: []byte("x")}, commitHint{}, resp)
		if err != nil || !resp.Success {
			t.Fatalf("heartbeat: %+v, %v", resp, err)
		}
	}
	call()
	first := sender()
	if first == nil {
		t.Fatal("no sender after a heartbeat")
	}
	waitFor(t, 10*time.Second, "the idle sender to retire", func() bool { return sender() == nil })
	call()
	if s := sender(); s == nil || s == first {
		t.Fatalf("sender after retiring: %p, first %p", s, first)
	}
}

// With no append after a burst (a CommitTimeout of an hour), followers
// still learn the commit index, from the commit hints on heartbeats: they
// apply every entry the leader applied.
func TestIdleFollowersLearnTheCommitIndex(t *testing.T) {
	const nodes, groups, entries = 3, 4, 50
	c := startRaftCluster(t, nodes, groups, Options{}, func(conf *raft.Config) {
		quickRaft(conf)
		conf.CommitTimeout = time.Hour
	})
	c.waitLeaders(t, 60*time.Second)
	for _, g := range c.groups {
		leader := g.leader()
		if leader == nil {
			t.Fatalf("group %s lost its leader", g.name)
		}
		var last raft.ApplyFuture
		for i := range entries {
			last = leader.Apply([]byte(fmt.Sprint(i)), 5*time.Second)
		}
		if err := last.Error(); err != nil {
			t.Fatalf("group %s: apply: %v", g.name, err)
		}
	}
	waitFor(t, 30*time.Second, "every replica to apply every entry", func() bool {
		for _, g := range c.groups {
			for _, fsm := range g.fsms {
				if fsm.applied.Load() != entries {
					return false
				}
			}
		}
		return true
	})
	var hints uint64
	for _, m := range c.muxes {
		hints += m.Stats().CommitHintsApplied
	}
	if hints == 0 {
		t.Error("followers caught up without a commit hint")
	}
}

// When a leader's node dies, its followers' nodes hear of it (OnPeerLost,
// the session carrying its heartbeats closed), and a follower that stands
// for election (StandForElection) wins. The other follower runs with a
// heartbeat timeout of an hour, so it still knows the dead leader and
// refuses any pre-vote: only a leadership transfer's election can win.
func TestLostLeaderIsReplacedAtOnce(t *testing.T) {
	lost := make(chan string, 16)
	opts := Options{OnPeerLost: func(addr string) {
		select {
		case lost <- addr:
		default: // the other nodes closing at the end
		}
	}}
	c := startRaftCluster(t, 3, 1, opts, quickRaft)
	c.waitLeaders(t, 60*time.Second)
	g := c.groups[0]
	old := -1
	for i, r := range g.rafts {
		if r.State() == raft.Leader {
			old = i
		}
	}
	successor, other := (old+1)%3, (old+2)%3
	rc := g.rafts[other].ReloadableConfig()
	rc.HeartbeatTimeout, rc.ElectionTimeout = time.Hour, time.Hour
	if err := g.rafts[other].ReloadConfig(rc); err != nil {
		t.Fatal(err)
	}
	oldAddr := c.muxes[old].Addr().String()
	verifyAll(t, c) // heartbeats flow to both followers
	// The successor's log must be as long as the other follower's, or the
	// other refuses its vote (on a busy machine an append can lag).
	waitFor(t, 30*time.Second, "both followers to hold the leader's log", func() bool {
		last := g.rafts[old].LastIndex()
		return g.rafts[successor].LastIndex() == last && g.rafts[other].LastIndex() == last
	})
	g.rafts[old].Shutdown().Error()
	c.muxes[old].Close()
	select {
	case addr := <-lost:
		if addr != oldAddr {
			t.Fatalf("lost %s, want %s", addr, oldAddr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no node heard of the lost leader")
	}
	if _, id := g.rafts[other].LeaderWithID(); id == "" {
		t.Fatal("the other follower forgot the dead leader: it would grant pre-votes")
	}
	if !g.trans[successor].StandForElection() {
		t.Fatal("StandForElection on a follower refused")
	}
	waitFor(t, 30*time.Second, "the successor to lead", func() bool { return g.rafts[successor].State() == raft.Leader })
	if g.trans[successor].StandForElection() {
		t.Error("StandForElection on the leader accepted")
	}
}
