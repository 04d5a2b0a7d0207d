package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"weir/protocol"
)

// fakeGroup is a scripted group coordinator on a fakeBroker, for the
// cases the real one does not produce on demand (fences, lost sessions,
// NotController). It serves one topic, "t", whose partitions each hold
// records "p<partition>-<offset>" at offsets 0 to perPartition-1; it
// assigns the member the partitions in assign, and answers fetches,
// ListOffsets, OffsetCommit and OffsetFetch. Hooks override single
// answers.
type fakeGroup struct {
	tb           testing.TB
	fb           *fakeBroker
	perPartition int64

	mu        sync.Mutex
	joins     int
	memberID  string
	epoch     int32
	assign    []int32
	committed map[int32]int64
	// log records the group requests in the order they came.
	log []protocol.Request
	// Hooks: a non-nil answer replaces the default.
	onHeartbeat func(*protocol.ConsumerGroupHeartbeatRequest) *protocol.ConsumerGroupHeartbeatResponse
	// onFetch returns the error code for a partition, or CodeNone to serve
	// it.
	onFetch  func(r *protocol.FetchRequest, partition int32) protocol.ErrorCode
	onCommit func(r *protocol.OffsetCommitRequest, partition int32) protocol.ErrorCode
}

func startFakeGroup(tb testing.TB, partitions int32, perPartition int64) *fakeGroup {
	fb := startFake(tb, 1)
	fb.addTopic("t", partitions)
	fg := &fakeGroup{tb: tb, fb: fb, perPartition: perPartition, committed: map[int32]int64{}}
	for p := range partitions {
		fg.assign = append(fg.assign, p)
	}
	fb.setHandler(fg.handle)
	return fg
}

func (fg *fakeGroup) handle(req protocol.Request) fakeReply {
	switch r := req.(type) {
	case *protocol.ConsumerGroupHeartbeatRequest:
		return fakeReply{resp: fg.heartbeat(r)}
	case *protocol.OffsetCommitRequest:
		return fakeReply{resp: fg.commit(r)}
	case *protocol.OffsetFetchRequest:
		return fakeReply{resp: fg.offsetFetch(r)}
	case *protocol.ListOffsetsRequest:
		return fakeReply{resp: fg.listOffsets(r)}
	case *protocol.FetchRequest:
		return fakeReply{resp: fg.fetch(r)}
	}
	return fakeReply{pass: true}
}

func (fg *fakeGroup) heartbeat(r *protocol.ConsumerGroupHeartbeatRequest) protocol.Response {
	fg.mu.Lock()
	fg.log = append(fg.log, r)
	hook := fg.onHeartbeat
	fg.mu.Unlock()
	if hook != nil {
		if resp := hook(r); resp != nil {
			return resp
		}
	}
	fg.mu.Lock()
	defer fg.mu.Unlock()
	switch r.MemberEpoch {
	case -1:
		return &protocol.ConsumerGroupHeartbeatResponse{MemberID: r.MemberID, MemberEpoch: -1}
	case 0:
		fg.joins++
		fg.memberID, fg.epoch = fmt.Sprintf("m%d", fg.joins), 1
	}
	return &protocol.ConsumerGroupHeartbeatResponse{MemberID: fg.memberID, MemberEpoch: fg.epoch, HeartbeatIntervalMs: 20,
		Assignment: []protocol.ConsumerGroupHeartbeatResponseTopic{{Topic: "t", Partitions: slices.Clone(fg.assign)}}}
}

func (fg *fakeGroup) commit(r *protocol.OffsetCommitRequest) protocol.Response {
	fg.mu.Lock()
	fg.log = append(fg.log, r)
	hook := fg.onCommit
	fg.mu.Unlock()
	resp := &protocol.OffsetCommitResponse{}
	for _, t := range r.Topics {
		rt := protocol.OffsetCommitResponseTopic{Name: t.Name}
		for _, p := range t.Partitions {
			code := protocol.CodeNone
			if hook != nil {
				code = hook(r, p.Partition)
			}
			if code == protocol.CodeNone {
				fg.mu.Lock()
				fg.committed[p.Partition] = p.CommittedOffset
				fg.mu.Unlock()
			}
			rt.Partitions = append(rt.Partitions, protocol.OffsetCommitResponsePartition{Partition: p.Partition, ErrorCode: code})
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (fg *fakeGroup) offsetFetch(r *protocol.OffsetFetchRequest) protocol.Response {
	fg.mu.Lock()
	defer fg.mu.Unlock()
	fg.log = append(fg.log, r)
	resp := &protocol.OffsetFetchResponse{}
	for _, t := range r.Topics {
		rt := protocol.OffsetFetchResponseTopic{Name: t.Name}
		for _, p := range t.Partitions {
			off, ok := fg.committed[p]
			if !ok {
				off = -1
			}
			rt.Partitions = append(rt.Partitions, protocol.OffsetFetchResponsePartition{Partition: p, CommittedOffset: off})
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (fg *fakeGroup) listOffsets(r *protocol.ListOffsetsRequest) protocol.Response {
	resp := &protocol.ListOffsetsResponse{}
	for _, t := range r.Topics {
		rt := protocol.ListOffsetsResponseTopic{Name: t.Name}
		for _, p := range t.Partitions {
			off := int64(0)
			if p.Timestamp == protocol.TimestampLatest {
				off = fg.perPartition
			}
			rt.Partitions = append(rt.Partitions, protocol.ListOffsetsResponsePartition{Partition: p.Partition, Offset: off, LeaderID: -1})
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// fetch serves records from the fetch offset on, two per response (so
// that the consumer keeps fetching), or waits a little as a long poll with
// nothing new does.
func (fg *fakeGroup) fetch(r *protocol.FetchRequest) protocol.Response {
	fg.mu.Lock()
	hook := fg.onFetch
	fg.mu.Unlock()
	resp := &protocol.FetchResponse{}
	data := false
	for _, t := range r.Topics {
		rt := protocol.FetchResponseTopic{Name: t.Name}
		for _, p := range t.Partitions {
			out := protocol.FetchResponsePartition{Partition: p.Partition, LeaderID: -1, HighWatermark: fg.perPartition}
			if hook != nil {
				out.ErrorCode = hook(r, p.Partition)
			}
			if out.ErrorCode == protocol.CodeNone && p.FetchOffset < fg.perPartition {
				n := min(2, fg.perPartition-p.FetchOffset)
				var values []string
				for i := range n {
					values = append(values, fmt.Sprintf("p%d-%d", p.Partition, p.FetchOffset+i))
				}
				out.Records = appendFrame(nil, frameTypeData, p.FetchOffset, uint32(n), buildBatch(fg.tb.(*testing.T), values...))
				data = true
			}
			rt.Partitions = append(rt.Partitions, out)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if !data {
		// A long poll with nothing to send: the broker would hold it.
		<-time.After(5 * time.Millisecond)
	}
	return resp
}

// requests returns the logged requests of one type.
func logged[T protocol.Request](fg *fakeGroup) []T {
	fg.mu.Lock()
	defer fg.mu.Unlock()
	var out []T
	for _, r := range fg.log {
		if t, ok := r.(T); ok {
			out = append(out, t)
		}
	}
	return out
}

func ownedPartitions(r *protocol.ConsumerGroupHeartbeatRequest) []int32 {
	var out []int32
	for _, t := range r.Owned {
		out = append(out, t.Partitions...)
	}
	return out
}

// callbacks records OnAssigned, OnRevoked and OnLost calls.
type callbacks struct {
	mu                      sync.Mutex
	assigned, revoked, lost [][]TopicPartition
}

func (cb *callbacks) opts() []Opt {
	note := func(to *[][]TopicPartition) func(context.Context, []TopicPartition) {
		return func(_ context.Context, tps []TopicPartition) {
			cb.mu.Lock()
			defer cb.mu.Unlock()
			*to = append(*to, tps)
		}
	}
	return []Opt{OnAssigned(note(&cb.assigned)), OnRevoked(note(&cb.revoked)), OnLost(note(&cb.lost))}
}

func (cb *callbacks) get(which *[][]TopicPartition) [][]TopicPartition {
	cb.mu.Lock()
	defer cb.mu.Unlock()
	return slices.Clone(*which)
}

// pollUntil polls (short polls, so that callbacks run) until cond holds.
func pollUntil(tb testing.TB, ctx context.Context, g *GroupConsumer, cond func() bool) []*Record {
	tb.Helper()
	var out []*Record
	for !cond() {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
		recs, err := g.Poll(pctx)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			tb.Fatalf("Poll: %v", err)
		}
		if ctx.Err() != nil {
			tb.Fatal("condition never held")
		}
		out = append(out, recs...)
	}
	return out
}

// TestGroupFetchIdentity: a member's fetches are version 1 and carry its
// group, id and epoch; a join carries the subscription.
func TestGroupFetchIdentity(t *testing.T) {
	fg := startFakeGroup(t, 1, 4)
	ctx := testContext(t, 20*time.Second)
	g := newGroupConsumer(t, fg.fb.addr, "grp", Subscribe("t"), ResetOffset(Earliest), InstanceID("i1"),
		SessionTimeout(7*time.Second), GroupAssignor("range"))
	pollGroupN(t, ctx, g, 4)
	hb := logged[*protocol.ConsumerGroupHeartbeatRequest](fg)
	join := hb[0]
	if len(join.MemberID) < 16 || join.MemberEpoch != 0 || join.GroupID != "grp" || *join.InstanceID != "i1" ||
		join.SessionTimeoutMs != 7000 || !slices.Equal(join.SubscribedTopicNames, []string{"t"}) ||
		*join.SubscribedTopicRegex != "" || *join.ServerAssignor != "range" {
		t.Errorf("join: %+v", join)
	}
	if len(hb) > 1 && (hb[1].MemberID != "m1" || hb[1].MemberEpoch != 1 || hb[1].SubscribedTopicNames != nil) {
		t.Errorf("second heartbeat: %+v", hb[1])
	}
	var seen *protocol.FetchRequest
	fg.mu.Lock()
	fg.onFetch = func(r *protocol.FetchRequest, _ int32) protocol.ErrorCode {
		fg.mu.Lock()
		defer fg.mu.Unlock()
		if seen == nil {
			seen = r
		}
		return protocol.CodeNone
	}
	fg.mu.Unlock()
	waitFor(t, ctx, func() bool {
		fg.mu.Lock()
		defer fg.mu.Unlock()
		return seen != nil
	})
	fg.mu.Lock()
	defer fg.mu.Unlock()
	if seen.Version != 1 || seen.GroupID == nil || *seen.GroupID != "grp" || seen.MemberID != "m1" || seen.MemberEpoch != 1 {
		t.Errorf("fetch v%d group %v member %q epoch %d", seen.Version, seen.GroupID, seen.MemberID, seen.MemberEpoch)
	}
}

// TestGroupFetchFenced: a fetch fenced for one partition drops it (its
// records are not returned), calls OnLost, and heartbeats at once without
// it; the other partition goes on.
func TestGroupFetchFenced(t *testing.T) {
	fg := startFakeGroup(t, 2, 1000)
	ctx := testContext(t, 20*time.Second)
	var cb callbacks
	g := newGroupConsumer(t, fg.fb.addr, "grp", append(cb.opts(), Subscribe("t"), ResetOffset(Earliest), AutoCommitInterval(0))...)
	pollUntil(t, ctx, g, func() bool { return len(cb.get(&cb.assigned)) > 0 })

	// The coordinator moves partition 1 away: its fetches are fenced.
	fg.mu.Lock()
	fg.assign = []int32{0}
	fg.onFetch = func(r *protocol.FetchRequest, p int32) protocol.ErrorCode {
		if p == 1 {
			return protocol.CodeFencedMemberEpoch
		}
		return protocol.CodeNone
	}
	// NB: the heartbeat answers no longer list 1 either, so the member may
	// see it revoked (OnRevoked) or fenced (OnLost) first; make it the
	// fence by holding heartbeats' answers at the old assignment until
	// the fence has happened.
	fg.onHeartbeat = holdAssignmentWhileOwned(1)
	fg.mu.Unlock()

	pollUntil(t, ctx, g, func() bool { return len(cb.get(&cb.lost)) > 0 })
	if lost := cb.get(&cb.lost); !slices.Equal(lost[0], []TopicPartition{{"t", 1}}) {
		t.Fatalf("OnLost got %v, want t[1]", lost)
	}
	if r := cb.get(&cb.revoked); len(r) != 0 {
		t.Errorf("OnRevoked got %v, want nothing (lost, not revoked)", r)
	}
	if a := g.Assignment(); !slices.Equal(a, []TopicPartition{{"t", 0}}) {
		t.Errorf("Assignment = %v, want t[0]", a)
	}
	// Its records are not returned any more; partition 0's are.
	recs := pollUntil(t, ctx, g, func() bool {
		hb := logged[*protocol.ConsumerGroupHeartbeatRequest](fg)
		return slices.Equal(ownedPartitions(hb[len(hb)-1]), []int32{0})
	})
	recs = append(recs, pollGroupN(t, ctx, g, 4)...)
	for _, r := range recs {
		if r.Partition == 1 {
			t.Fatalf("Poll returned %s[%d]@%d after the fence", r.Topic, r.Partition, r.Offset)
		}
	}
	// And nothing of it is committed.
	if err := g.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range logged[*protocol.OffsetCommitRequest](fg) {
		for _, p := range c.Topics[0].Partitions {
			if p.Partition == 1 {
				t.Errorf("committed t[1] at %d after losing it", p.CommittedOffset)
			}
		}
	}
}

// TestGroupFetchFencedStaleEpoch: a fetch fenced because it carried an
// epoch the member has since moved on from is sent again with the new
// one: the partition is kept.
func TestGroupFetchFencedStaleEpoch(t *testing.T) {
	fg := startFakeGroup(t, 1, 1000)
	ctx := testContext(t, 20*time.Second)
	var cb callbacks
	g := newGroupConsumer(t, fg.fb.addr, "grp", append(cb.opts(), Subscribe("t"), ResetOffset(Earliest))...)
	pollGroupN(t, ctx, g, 1)
	var once sync.Once
	fenced := make(chan struct{})
	fg.mu.Lock()
	fg.onFetch = func(r *protocol.FetchRequest, _ int32) protocol.ErrorCode {
		if r.MemberEpoch != 1 {
			return protocol.CodeNone
		}
		// Bump the epoch, hold this fetch until the member has it, then
		// fence the fetch for its old epoch.
		fg.mu.Lock()
		fg.epoch = 2
		fg.mu.Unlock()
		for ctx.Err() == nil {
			if _, e := g.Member(); e == 2 {
				break
			}
			<-time.After(time.Millisecond)
		}
		once.Do(func() { close(fenced) })
		return protocol.CodeFencedMemberEpoch
	}
	fg.mu.Unlock()
	select {
	case <-fenced:
	case <-ctx.Done():
		t.Fatal("no fetch with epoch 1 came")
	}
	// The partition goes on, fetched with epoch 2.
	pollGroupN(t, ctx, g, 5)
	if lost := cb.get(&cb.lost); len(lost) != 0 {
		t.Errorf("OnLost %v for a fence of an old epoch", lost)
	}
	if a := g.Assignment(); len(a) != 1 {
		t.Errorf("Assignment = %v", a)
	}
}

// TestGroupHeartbeatFenced: a heartbeat answered UnknownMemberID loses
// every partition (OnLost, no commit) and joins again as a new member,
// which starts at the committed offsets.
func TestGroupHeartbeatFenced(t *testing.T) {
	fg := startFakeGroup(t, 2, 1000)
	ctx := testContext(t, 20*time.Second)
	var cb callbacks
	g := newGroupConsumer(t, fg.fb.addr, "grp", append(cb.opts(), Subscribe("t"), ResetOffset(Earliest), AutoCommitInterval(0))...)
	pollGroupN(t, ctx, g, 6)
	if err := g.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	fg.mu.Lock()
	committed := map[int32]int64{0: fg.committed[0], 1: fg.committed[1]}
	fg.mu.Unlock()
	pollGroupN(t, ctx, g, 4) // processed, never committed

	fenceOnce := sync.Once{}
	fg.mu.Lock()
	fg.onHeartbeat = func(r *protocol.ConsumerGroupHeartbeatRequest) *protocol.ConsumerGroupHeartbeatResponse {
		var resp *protocol.ConsumerGroupHeartbeatResponse
		if r.MemberID == "m1" {
			fenceOnce.Do(func() {
				resp = &protocol.ConsumerGroupHeartbeatResponse{ErrorCode: protocol.CodeUnknownMemberID, MemberEpoch: -1}
			})
		}
		return resp
	}
	fg.mu.Unlock()
	// Callbacks run in Poll: the new membership can be in place a Poll
	// before OnLost has run.
	pollUntil(t, ctx, g, func() bool {
		id, _ := g.Member()
		return id == "m2" && len(g.Assignment()) == 2 && len(cb.get(&cb.lost)) > 0
	})

	lost := cb.get(&cb.lost)
	if len(lost) != 1 || !slices.Equal(lost[0], []TopicPartition{{"t", 0}, {"t", 1}}) {
		t.Errorf("OnLost got %v, want both partitions", lost)
	}
	for _, c := range logged[*protocol.OffsetCommitRequest](fg) {
		if c.MemberID == "m1" && len(c.Topics) > 0 {
			for _, p := range c.Topics[0].Partitions {
				if p.CommittedOffset != committed[p.Partition] {
					t.Errorf("m1 committed t[%d] at %d, past its last Commit (%d)", p.Partition, p.CommittedOffset, committed[p.Partition])
				}
			}
		}
	}
	// The rejoin: a new member id, epoch 0, owning nothing.
	var rejoin *protocol.ConsumerGroupHeartbeatRequest
	beats := logged[*protocol.ConsumerGroupHeartbeatRequest](fg)
	for _, hb := range beats[1:] {
		if hb.MemberEpoch == 0 {
			rejoin = hb
			break
		}
	}
	if rejoin == nil || rejoin.MemberID == beats[0].MemberID || len(rejoin.MemberID) < 16 || len(rejoin.Owned) != 0 || rejoin.SubscribedTopicNames == nil {
		t.Fatalf("rejoin: %+v", rejoin)
	}
	// The new member goes on from the commits: the 4 uncommitted records
	// come again.
	recs := pollGroupN(t, ctx, g, 2)
	for _, r := range recs {
		if r.Offset < committed[r.Partition] {
			t.Errorf("record %s[%d]@%d below the committed offset %d", r.Topic, r.Partition, r.Offset, committed[r.Partition])
		}
	}
}

// TestGroupCommitFenced: a commit fenced for a partition drops it and
// fails with the fence.
func TestGroupCommitFenced(t *testing.T) {
	fg := startFakeGroup(t, 2, 1000)
	ctx := testContext(t, 20*time.Second)
	var cb callbacks
	g := newGroupConsumer(t, fg.fb.addr, "grp", append(cb.opts(), Subscribe("t"), ResetOffset(Earliest), AutoCommitInterval(0))...)
	var last0 *Record
	pollUntil(t, ctx, g, func() bool { return len(g.Assignment()) == 2 })
	for last0 == nil {
		for _, r := range pollGroupN(t, ctx, g, 1) {
			if r.Partition == 0 {
				last0 = r
			}
		}
	}
	fg.mu.Lock()
	fg.assign = []int32{1}
	fg.onCommit = func(_ *protocol.OffsetCommitRequest, p int32) protocol.ErrorCode {
		if p == 0 {
			return protocol.CodeFencedMemberEpoch
		}
		return protocol.CodeNone
	}
	fg.onHeartbeat = holdAssignmentWhileOwned(0)
	fg.mu.Unlock()
	err := g.Commit(ctx, last0)
	if !errors.Is(err, protocol.ErrFencedMemberEpoch) {
		t.Fatalf("Commit: %v, want FencedMemberEpoch", err)
	}
	if a := g.Assignment(); !slices.Equal(a, []TopicPartition{{"t", 1}}) {
		t.Errorf("Assignment = %v, want t[1]", a)
	}
	pollUntil(t, ctx, g, func() bool { return len(cb.get(&cb.lost)) > 0 })
	if lost := cb.get(&cb.lost); !slices.Equal(lost[0], []TopicPartition{{"t", 0}}) {
		t.Errorf("OnLost got %v", lost)
	}
	if err := g.Commit(ctx, last0); !errors.Is(err, ErrNotAssigned) {
		t.Errorf("Commit of a lost partition: %v, want ErrNotAssigned", err)
	}
}

// TestGroupRevoke: a revoked partition is committed (what Poll returned
// before) before the heartbeat that gives it back, and OnRevoked comes
// after the commit.
func TestGroupRevoke(t *testing.T) {
	fg := startFakeGroup(t, 2, 1000)
	ctx := testContext(t, 20*time.Second)
	var cb callbacks
	var commitsAtRevoke int
	opts := append(cb.opts(), Subscribe("t"), ResetOffset(Earliest), AutoCommitInterval(0),
		OnRevoked(func(_ context.Context, tps []TopicPartition) {
			commitsAtRevoke = len(logged[*protocol.OffsetCommitRequest](fg))
			cb.mu.Lock()
			defer cb.mu.Unlock()
			cb.revoked = append(cb.revoked, tps)
		}))
	g := newGroupConsumer(t, fg.fb.addr, "grp", opts...)
	recs := pollUntil(t, ctx, g, func() bool { return len(g.Assignment()) == 2 })
	recs = append(recs, pollGroupN(t, ctx, g, 10)...)

	fg.mu.Lock()
	fg.assign = []int32{0}
	fg.mu.Unlock()
	recs = append(recs, pollUntil(t, ctx, g, func() bool { return len(cb.get(&cb.revoked)) > 0 })...)
	// Every record Poll returned before the revocation is finished by the
	// Poll that gives t[1] back: the commit is after the last of them.
	var next1 int64 = -1
	for _, r := range recs {
		if r.Partition == 1 {
			next1 = max(next1, r.Offset+1)
		}
	}
	if r := cb.get(&cb.revoked); !slices.Equal(r[0], []TopicPartition{{"t", 1}}) {
		t.Fatalf("OnRevoked got %v", r)
	}
	if lost := cb.get(&cb.lost); len(lost) != 0 {
		t.Errorf("OnLost got %v", lost)
	}
	// Which log entries: the commit of t[1], then a heartbeat without it.
	fg.mu.Lock()
	logCopy := slices.Clone(fg.log)
	fg.mu.Unlock()
	commitAt, releaseAt := -1, -1
	for i, r := range logCopy {
		switch r := r.(type) {
		case *protocol.OffsetCommitRequest:
			for _, p := range r.Topics[0].Partitions {
				if p.Partition == 1 && commitAt < 0 {
					commitAt = i
					if p.CommittedOffset != next1 {
						t.Errorf("t[1] committed at %d, want %d (after the last record returned)", p.CommittedOffset, next1)
					}
				}
			}
		case *protocol.ConsumerGroupHeartbeatRequest:
			if commitAt >= 0 && releaseAt < 0 && !slices.Contains(ownedPartitions(r), 1) {
				releaseAt = i
			}
		}
	}
	if commitAt < 0 || commitsAtRevoke == 0 {
		t.Fatalf("t[1] was not committed before OnRevoked (commit at %d)", commitAt)
	}
	waitFor(t, ctx, func() bool {
		hb := logged[*protocol.ConsumerGroupHeartbeatRequest](fg)
		return !slices.Contains(ownedPartitions(hb[len(hb)-1]), 1)
	})
	if releaseAt >= 0 && releaseAt < commitAt {
		t.Errorf("t[1] given back (log %d) before its commit (log %d)", releaseAt, commitAt)
	}
}

// TestGroupNotController: heartbeats follow the controller when a broker
// answers NotController.
func TestGroupNotController(t *testing.T) {
	a := startFake(t, 1)
	fg := startFakeGroup(t, 1, 10)
	fg.fb.nodeID = 2
	a.addTopic("t", 1)
	a.addPeer(fg.fb)
	a.setHandler(func(req protocol.Request) fakeReply {
		if _, ok := req.(*protocol.ConsumerGroupHeartbeatRequest); ok {
			a.setController(2) // it was the controller a moment ago
			return fakeReply{resp: &protocol.ConsumerGroupHeartbeatResponse{ErrorCode: protocol.CodeNotController, MemberEpoch: -1}}
		}
		return fakeReply{pass: true}
	})
	ctx := testContext(t, 20*time.Second)
	g := newGroupConsumer(t, a.addr, "grp", Subscribe("t"), ResetOffset(Earliest))
	waitFor(t, ctx, func() bool { id, _ := g.Member(); return id == "m1" })
	if a.count(protocol.KeyConsumerGroupHeartbeat) != 1 {
		t.Errorf("%d heartbeats to the old controller, want 1", a.count(protocol.KeyConsumerGroupHeartbeat))
	}
}

// TestGroupCloseCommitsAndLeaves: Close commits every record Poll
// returned, calls OnRevoked, then leaves with epoch -1.
func TestGroupCloseCommitsAndLeaves(t *testing.T) {
	fg := startFakeGroup(t, 1, 10)
	ctx := testContext(t, 20*time.Second)
	var cb callbacks
	g, err := NewGroupConsumer("grp", append(cb.opts(), SeedBrokers(fg.fb.addr), Subscribe("t"), ResetOffset(Earliest), AutoCommitInterval(0))...)
	if err != nil {
		t.Fatal(err)
	}
	pollGroupN(t, ctx, g, 10)
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	fg.mu.Lock()
	if fg.committed[0] != 10 {
		t.Errorf("committed %d, want 10", fg.committed[0])
	}
	fg.mu.Unlock()
	hb := logged[*protocol.ConsumerGroupHeartbeatRequest](fg)
	if last := hb[len(hb)-1]; last.MemberEpoch != -1 || last.MemberID != "m1" {
		t.Errorf("last heartbeat: member %q epoch %d, want m1 leaving", last.MemberID, last.MemberEpoch)
	}
	if r := cb.get(&cb.revoked); len(r) != 1 || !slices.Equal(r[0], []TopicPartition{{"t", 0}}) {
		t.Errorf("OnRevoked at Close: %v", r)
	}
	if err := g.Commit(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Commit after Close: %v", err)
	}
	done := make(chan error, 1)
	g.CommitAsync(nil, func(err error) { done <- err })
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Errorf("CommitAsync after Close: %v", err)
	}
}

// TestGroupCommitAsyncOrder: asynchronous commits complete in the order
// they were made, and the group ends with the last one.
func TestGroupCommitAsyncOrder(t *testing.T) {
	fg := startFakeGroup(t, 1, 100)
	ctx := testContext(t, 20*time.Second)
	g := newGroupConsumer(t, fg.fb.addr, "grp", Subscribe("t"), ResetOffset(Earliest), AutoCommitInterval(0))
	recs := pollGroupN(t, ctx, g, 20)
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	for i, r := range recs {
		wg.Add(1)
		g.CommitAsync([]*Record{r}, func(err error) {
			defer wg.Done()
			if err != nil {
				t.Errorf("commit %d: %v", i, err)
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
		})
	}
	wg.Wait()
	if !slices.IsSorted(order) {
		t.Errorf("commits completed in order %v", order)
	}
	fg.mu.Lock()
	defer fg.mu.Unlock()
	if fg.committed[0] != 20 {
		t.Errorf("committed %d, want 20", fg.committed[0])
	}
}

// holdAssignmentWhileOwned answers heartbeats with the old assignment
// (t[0] and t[1], epoch 1) while the member still holds t[p], so that it
// loses t[p] to a fence (OnLost) rather than to a revocation; after that
// the fake's own answers resume.
func holdAssignmentWhileOwned(p int32) func(*protocol.ConsumerGroupHeartbeatRequest) *protocol.ConsumerGroupHeartbeatResponse {
	return func(r *protocol.ConsumerGroupHeartbeatRequest) *protocol.ConsumerGroupHeartbeatResponse {
		if slices.Contains(ownedPartitions(r), p) {
			return &protocol.ConsumerGroupHeartbeatResponse{MemberID: "m1", MemberEpoch: 1, HeartbeatIntervalMs: 20,
				Assignment: []protocol.ConsumerGroupHeartbeatResponseTopic{{Topic: "t", Partitions: []int32{0, 1}}}}
		}
		return nil
	}
}
