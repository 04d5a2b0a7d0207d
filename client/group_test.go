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

// Tests of GroupConsumer and the group admin calls against a real
// in-process broker (its coordinator). group_fake_test.go scripts the
// fencing cases the real coordinator does not produce on demand.

// newGroupConsumer returns a GroupConsumer on addr, closed at cleanup.
func newGroupConsumer(tb testing.TB, addr, group string, opts ...Opt) *GroupConsumer {
	tb.Helper()
	g, err := NewGroupConsumer(group, append([]Opt{SeedBrokers(addr), RetryBackoff(5*time.Millisecond, 50*time.Millisecond)}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { g.Close() })
	return g
}

// produceValues produces one record per value, spread by key over the
// topic's partitions.
func produceValues(tb testing.TB, ctx context.Context, addr, topic string, values ...string) {
	tb.Helper()
	p := newProducer(tb, addr, Linger(0))
	var recs []*Record
	for _, v := range values {
		recs = append(recs, &Record{Topic: topic, Key: []byte(v), Value: []byte(v)})
	}
	if err := p.ProduceSync(ctx, recs...); err != nil {
		tb.Fatal(err)
	}
}

func valuesN(prefix string, from, n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("%s%d", prefix, from+i))
	}
	return out
}

// pollGroupN polls until n records have come.
func pollGroupN(tb testing.TB, ctx context.Context, g *GroupConsumer, n int) []*Record {
	tb.Helper()
	var out []*Record
	for len(out) < n {
		recs, err := g.PollRecords(ctx, n-len(out))
		if err != nil {
			tb.Fatalf("Poll after %d of %d records: %v", len(out), n, err)
		}
		out = append(out, recs...)
	}
	return out
}

// highWatermarks returns the high watermark of every partition of topic.
func highWatermarks(tb testing.TB, ctx context.Context, a *Admin, topic string) map[TopicPartition]int64 {
	tb.Helper()
	d, err := a.DescribeTopic(ctx, topic)
	if err != nil {
		tb.Fatal(err)
	}
	out := map[TopicPartition]int64{}
	for _, p := range d.Partitions {
		if p.HighWatermark > 0 {
			out[TopicPartition{topic, p.Partition}] = p.HighWatermark
		}
	}
	return out
}

// TestGroupConsumeCommitResume: a member starts at ResetOffset (no
// commits), Commit commits what Poll returned, Close leaves; the next
// member of the group goes on from the commits.
func TestGroupConsumeCommitResume(t *testing.T) {
	addr := startBroker(t)
	ctx := testContext(t, 30*time.Second)
	createTopic(t, addr, "orders", 3, nil)
	admin := newAdmin(t, addr)
	produceValues(t, ctx, addr, "orders", valuesN("a", 0, 30)...)

	var mu sync.Mutex
	var assigned, revoked []TopicPartition
	g := newGroupConsumer(t, addr, "billing", Subscribe("orders"), ResetOffset(Earliest), AutoCommitInterval(0),
		OnAssigned(func(_ context.Context, tps []TopicPartition) {
			mu.Lock()
			defer mu.Unlock()
			assigned = append(assigned, tps...)
		}),
		OnRevoked(func(_ context.Context, tps []TopicPartition) {
			mu.Lock()
			defer mu.Unlock()
			revoked = append(revoked, tps...)
		}))
	got := pollGroupN(t, ctx, g, 30)
	seen := map[string]bool{}
	for _, r := range got {
		seen[string(r.Value)] = true
	}
	if len(seen) != 30 {
		t.Fatalf("%d distinct records of 30", len(seen))
	}
	want := []TopicPartition{{"orders", 0}, {"orders", 1}, {"orders", 2}}
	if a := g.Assignment(); !slices.Equal(a, want) {
		t.Fatalf("Assignment = %v, want %v", a, want)
	}
	mu.Lock()
	if !slices.Equal(assigned, want) {
		t.Errorf("OnAssigned got %v, want %v", assigned, want)
	}
	mu.Unlock()
	if id, epoch := g.Member(); id == "" || epoch <= 0 {
		t.Errorf("Member() = %q, %d", id, epoch)
	}

	if err := g.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	offsets, err := admin.GroupOffsets(ctx, "billing")
	if err != nil {
		t.Fatal(err)
	}
	if hw := highWatermarks(t, ctx, admin, "orders"); !mapsEqual(offsets, hw) {
		t.Fatalf("committed %v, want the high watermarks %v", offsets, hw)
	}
	if err := g.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	mu.Lock()
	if !slices.Equal(revoked, want) {
		t.Errorf("OnRevoked at Close got %v, want %v", revoked, want)
	}
	mu.Unlock()
	d, err := admin.DescribeGroup(ctx, "billing")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Members) != 0 || d.State != "Empty" {
		t.Errorf("after Close: state %s, %d members; want Empty, none", d.State, len(d.Members))
	}
	if _, err := g.Poll(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Poll after Close: %v, want ErrClosed", err)
	}

	// A new member resumes after the commits: only the new records.
	produceValues(t, ctx, addr, "orders", valuesN("b", 0, 5)...)
	g2 := newGroupConsumer(t, addr, "billing", Subscribe("orders"), ResetOffset(Earliest))
	for _, r := range pollGroupN(t, ctx, g2, 5) {
		if seen[string(r.Value)] {
			t.Errorf("record %q delivered again", r.Value)
		}
	}
}

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestGroupResetLatest: without commits and ResetOffset, a member starts
// at the end of the log (Latest, as Kafka).
func TestGroupResetLatest(t *testing.T) {
	addr := startBroker(t)
	ctx := testContext(t, 30*time.Second)
	createTopic(t, addr, "news", 1, nil)
	produceValues(t, ctx, addr, "news", "old")
	g := newGroupConsumer(t, addr, "readers", Subscribe("news"))
	waitFor(t, ctx, func() bool {
		pos, ok := g.c.Position("news", 0)
		return ok && pos == 1
	})
	produceValues(t, ctx, addr, "news", "new")
	recs := pollGroupN(t, ctx, g, 1)
	if string(recs[0].Value) != "new" {
		t.Fatalf("got %q, want the record produced after joining", recs[0].Value)
	}
}

// TestGroupAutoCommitFinished: auto-commit commits the records of the
// Polls before the latest, never those the application may still be
// processing.
func TestGroupAutoCommitFinished(t *testing.T) {
	addr := startBroker(t)
	ctx := testContext(t, 30*time.Second)
	createTopic(t, addr, "jobs", 1, nil)
	admin := newAdmin(t, addr)
	g := newGroupConsumer(t, addr, "workers", Subscribe("jobs"), ResetOffset(Earliest), AutoCommitInterval(5*time.Millisecond))
	committed := func() int64 {
		offsets, err := admin.GroupOffsets(ctx, "workers")
		if err != nil {
			t.Fatal(err)
		}
		off, ok := offsets[TopicPartition{"jobs", 0}]
		if !ok {
			return -1
		}
		return off
	}

	produceValues(t, ctx, addr, "jobs", valuesN("j", 0, 3)...)
	pollGroupN(t, ctx, g, 3) // offsets 0-2: being processed
	produceValues(t, ctx, addr, "jobs", valuesN("j", 3, 2)...)
	pollGroupN(t, ctx, g, 2) // 0-2 finished; 3-4 being processed
	waitFor(t, ctx, func() bool { return committed() == 3 })
	// Records 3 and 4 are still the application's: several auto-commits
	// later, they are not committed.
	for range 5 {
		mustAutoCommitTick(t, ctx, g)
	}
	if c := committed(); c != 3 {
		t.Fatalf("committed %d while records 3-4 are in process, want 3", c)
	}
	// A Poll finishes them.
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	g.Poll(short)
	cancel()
	waitFor(t, ctx, func() bool { return committed() == 5 })
}

// mustAutoCommitTick waits until the auto-commit loop has taken at least
// one more turn.
func mustAutoCommitTick(tb testing.TB, ctx context.Context, g *GroupConsumer) {
	tb.Helper()
	g.mu.Lock()
	tail := g.mu.commitTail
	g.mu.Unlock()
	waitFor(tb, ctx, func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		select {
		case <-tail:
			return g.mu.commitTail != tail
		default:
			return false
		}
	})
}

// TestGroupRebalance: a second member joins; the first gives half the
// partitions back, committing what it finished, and the second goes on
// from there: every record is delivered exactly once across the two.
func TestGroupRebalance(t *testing.T) {
	addr := startBroker(t)
	ctx := testContext(t, 60*time.Second)
	createTopic(t, addr, "events", 4, nil)
	const total = 400
	produceValues(t, ctx, addr, "events", valuesN("e", 0, 100)...)

	var revokedMu sync.Mutex
	var revokedA []TopicPartition
	a := newGroupConsumer(t, addr, "g", Subscribe("events"), ResetOffset(Earliest), AutoCommitInterval(0),
		OnRevoked(func(_ context.Context, tps []TopicPartition) {
			revokedMu.Lock()
			defer revokedMu.Unlock()
			revokedA = append(revokedA, tps...)
		}))
	var mu sync.Mutex
	count := map[string]int{}
	note := func(recs []*Record) {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range recs {
			count[string(r.Value)]++
		}
	}
	note(pollGroupN(t, ctx, a, 50))

	b := newGroupConsumer(t, addr, "g", Subscribe("events"), ResetOffset(Earliest), AutoCommitInterval(0))
	produceValues(t, ctx, addr, "events", valuesN("e", 100, total-100)...)

	// Both poll until every record has come; then until both hold two
	// partitions.
	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, m := range []*GroupConsumer{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				pctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
				recs, err := m.Poll(pctx)
				cancel()
				note(recs)
				if err != nil && !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("Poll: %v", err)
					return
				}
				select {
				case <-done:
					return
				default:
				}
			}
		}()
	}
	waitFor(t, ctx, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(count) == total && len(a.Assignment()) == 2 && len(b.Assignment()) == 2
	})
	close(done)
	wg.Wait()

	for v, n := range count {
		if n != 1 {
			t.Errorf("record %s delivered %d times", v, n)
		}
	}
	aa, ba := a.Assignment(), b.Assignment()
	if all := append(slices.Clone(aa), ba...); len(all) != 4 || slices.ContainsFunc(aa, func(tp TopicPartition) bool { return slices.Contains(ba, tp) }) {
		t.Errorf("assignments %v and %v: want the 4 partitions split", aa, ba)
	}
	revokedMu.Lock()
	if len(revokedA) != 2 {
		t.Errorf("first member revoked %v, want 2 partitions", revokedA)
	}
	revokedMu.Unlock()
}

// TestGroupCloseLeaves: Close commits what Poll returned and leaves at
// once: the other member gets the partitions without waiting for a
// session timeout.
func TestGroupCloseLeaves(t *testing.T) {
	addr := startBroker(t)
	ctx := testContext(t, 30*time.Second)
	createTopic(t, addr, "t", 2, nil)
	admin := newAdmin(t, addr)
	produceValues(t, ctx, addr, "t", valuesN("v", 0, 20)...)
	a := newGroupConsumer(t, addr, "g", Subscribe("t"), ResetOffset(Earliest), SessionTimeout(time.Minute))
	got := pollGroupN(t, ctx, a, 20)
	b := newGroupConsumer(t, addr, "g", Subscribe("t"), ResetOffset(Earliest), SessionTimeout(time.Minute))
	waitFor(t, ctx, func() bool {
		d, err := admin.DescribeGroup(ctx, "g")
		return err == nil && len(d.Members) == 2
	})
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, func() bool { return len(b.Assignment()) == 2 })
	// b starts where a's Close committed: nothing is left to read.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if recs, _ := b.Poll(short); len(recs) != 0 {
		t.Errorf("b got %d records already delivered to a (of %d)", len(recs), len(got))
	}
}

// TestGroupFetchVersion: a member's fetches carry its identity; the
// broker accepts them while it owns the partition.
func TestGroupSubscribeRegex(t *testing.T) {
	addr := startBroker(t)
	ctx := testContext(t, 30*time.Second)
	createTopic(t, addr, "logs-a", 1, nil)
	g := newGroupConsumer(t, addr, "g", SubscribeRegex("logs-.*"), ResetOffset(Earliest))
	waitFor(t, ctx, func() bool { return len(g.Assignment()) == 1 })
	createTopic(t, addr, "logs-b", 1, nil)
	createTopic(t, addr, "other", 1, nil)
	produceValues(t, ctx, addr, "logs-b", "x")
	produceValues(t, ctx, addr, "other", "y")
	recs := pollGroupN(t, ctx, g, 1)
	if recs[0].Topic != "logs-b" {
		t.Fatalf("got a record of %s", recs[0].Topic)
	}
	want := []TopicPartition{{"logs-a", 0}, {"logs-b", 0}}
	if a := g.Assignment(); !slices.Equal(a, want) {
		t.Errorf("Assignment = %v, want %v", a, want)
	}
}

// TestGroupUnsupportedAssignor: a fatal group error comes out of Poll.
func TestGroupUnsupportedAssignor(t *testing.T) {
	addr := startBroker(t)
	ctx := testContext(t, 30*time.Second)
	createTopic(t, addr, "t", 1, nil)
	g := newGroupConsumer(t, addr, "g", Subscribe("t"), GroupAssignor("nosuch"))
	if _, err := g.Poll(ctx); !errors.Is(err, protocol.ErrUnsupportedAssignor) {
		t.Fatalf("Poll: %v, want UnsupportedAssignor", err)
	}
}

// TestGroupOptions: bad options are refused by NewGroupConsumer, and
// group options by the other constructors.
func TestGroupOptions(t *testing.T) {
	for name, opts := range map[string][]Opt{
		"no subscription": {SeedBrokers("x:1")},
		"bad regex":       {SeedBrokers("x:1"), SubscribeRegex("(")},
		"session":         {SeedBrokers("x:1"), Subscribe("t"), SessionTimeout(0)},
		"producer option": {SeedBrokers("x:1"), Subscribe("t"), Linger(0)},
	} {
		t.Run(name, func(t *testing.T) {
			if g, err := NewGroupConsumer("g", opts...); err == nil {
				g.Close()
				t.Fatal("no error")
			}
		})
	}
	if _, err := NewGroupConsumer("", SeedBrokers("x:1"), Subscribe("t")); err == nil {
		t.Error("empty group id: no error")
	}
	if _, err := NewConsumer(SeedBrokers("x:1"), Subscribe("t")); err == nil {
		t.Error("NewConsumer took a group option")
	}
	if _, err := NewAdmin(SeedBrokers("x:1"), InstanceID("i")); err == nil {
		t.Error("NewAdmin took a group option")
	}
}

// TestAdminGroups: list, describe (members, assignment, offsets, lag),
// reset (empty groups only), delete.
func TestAdminGroups(t *testing.T) {
	addr := startBroker(t)
	ctx := testContext(t, 30*time.Second)
	createTopic(t, addr, "t", 2, nil)
	admin := newAdmin(t, addr)
	produceValues(t, ctx, addr, "t", valuesN("v", 0, 10)...)
	hw := highWatermarks(t, ctx, admin, "t")

	if gs, err := admin.ListGroups(ctx); err != nil || len(gs) != 0 {
		t.Fatalf("ListGroups = %v, %v; want none", gs, err)
	}
	if _, err := admin.DescribeGroup(ctx, "nosuch"); !errors.Is(err, protocol.ErrGroupIDNotFound) {
		t.Errorf("DescribeGroup(nosuch): %v, want GroupIDNotFound", err)
	}

	g := newGroupConsumer(t, addr, "g", Subscribe("t"), ResetOffset(Earliest), InstanceID("host-1"), ClientID("tester"),
		SessionTimeout(time.Second))
	pollGroupN(t, ctx, g, 10)
	if err := g.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	gs, err := admin.ListGroups(ctx)
	if err != nil || len(gs) != 1 || gs[0].ID != "g" || gs[0].Members != 1 {
		t.Fatalf("ListGroups = %+v, %v", gs, err)
	}
	d, err := admin.DescribeGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	id, _ := g.Member()
	if len(d.Members) != 1 || d.Members[0].ID != id || d.Members[0].InstanceID != "host-1" ||
		d.Members[0].ClientID != "tester" || !slices.Equal(d.Members[0].Topics, []string{"t"}) ||
		!slices.Equal(d.Members[0].Assignment, []TopicPartition{{"t", 0}, {"t", 1}}) {
		t.Errorf("members: %+v", d.Members)
	}
	if d.Assignor != "uniform" || d.Epoch <= 0 {
		t.Errorf("assignor %q epoch %d", d.Assignor, d.Epoch)
	}
	if len(d.Offsets) != 2 {
		t.Fatalf("offsets: %+v", d.Offsets)
	}
	for _, o := range d.Offsets {
		tp := TopicPartition{o.Topic, o.Partition}
		if o.Committed != hw[tp] || o.HighWatermark != hw[tp] || o.Lag != 0 || o.MemberID != id {
			t.Errorf("offset %+v, want committed = high watermark %d, lag 0, owner %s", o, hw[tp], id)
		}
	}

	// Members own the offsets: tools may not change them, nor delete.
	if _, err := admin.ResetGroupOffsets(ctx, "g", "t", Earliest); !errors.Is(err, protocol.ErrNonEmptyGroup) {
		t.Errorf("reset of a group with members: %v, want NonEmptyGroup", err)
	}
	if err := admin.DeleteGroup(ctx, "g"); !errors.Is(err, protocol.ErrNonEmptyGroup) {
		t.Errorf("delete of a group with members: %v, want NonEmptyGroup", err)
	}

	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	// A static member does not leave: the group keeps it until its
	// session (1s) times out.
	if d, err := admin.DescribeGroup(ctx, "g"); err != nil || len(d.Members) != 1 {
		t.Fatalf("right after the static member's Close: %+v, %v; want it still there", d, err)
	}
	waitFor(t, ctx, func() bool {
		d, err := admin.DescribeGroup(ctx, "g")
		return err == nil && len(d.Members) == 0
	})
	reset, err := admin.ResetGroupOffsets(ctx, "g", "t", Earliest)
	if err != nil || len(reset) != 2 || reset[0] != 0 || reset[1] != 0 {
		t.Fatalf("ResetGroupOffsets = %v, %v", reset, err)
	}
	d, err = admin.DescribeGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range d.Offsets {
		if o.Committed != 0 || o.Lag != hw[TopicPartition{o.Topic, o.Partition}] || o.MemberID != "" {
			t.Errorf("after reset: %+v", o)
		}
	}
	if err := admin.CommitGroupOffsets(ctx, "g", map[TopicPartition]int64{{"t", 0}: 1}); err != nil {
		t.Fatal(err)
	}
	offsets, err := admin.GroupOffsets(ctx, "g")
	if err != nil || offsets[TopicPartition{"t", 0}] != 1 || offsets[TopicPartition{"t", 1}] != 0 {
		t.Fatalf("GroupOffsets = %v, %v", offsets, err)
	}
	if err := admin.DeleteGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if err := admin.DeleteGroup(ctx, "g"); !errors.Is(err, protocol.ErrGroupIDNotFound) {
		t.Errorf("second delete: %v, want GroupIDNotFound", err)
	}
	if gs, err := admin.ListGroups(ctx); err != nil || len(gs) != 0 {
		t.Errorf("ListGroups after delete = %v, %v", gs, err)
	}
}

// TestGroupStaticRestart: a static member that restarts within its session
// gets its partitions back at once, as the same member slot, while the
// other member keeps its own.
func TestGroupStaticRestart(t *testing.T) {
	addr := startBroker(t)
	ctx := testContext(t, 30*time.Second)
	createTopic(t, addr, "t", 4, nil)
	admin := newAdmin(t, addr)
	a := newGroupConsumer(t, addr, "g", Subscribe("t"), InstanceID("a"), SessionTimeout(time.Minute))
	b := newGroupConsumer(t, addr, "g", Subscribe("t"), InstanceID("b"), SessionTimeout(time.Minute))
	// NB: poll both: either may have to give partitions back to the other.
	pollEachUntil(t, ctx, []*GroupConsumer{a, b}, func() bool { return len(a.Assignment()) == 2 && len(b.Assignment()) == 2 })
	before, bBefore := a.Assignment(), b.Assignment()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a2 := newGroupConsumer(t, addr, "g", Subscribe("t"), InstanceID("a"), SessionTimeout(time.Minute))
	pollUntil(t, ctx, a2, func() bool { return len(a2.Assignment()) == 2 })
	if got := a2.Assignment(); !slices.Equal(got, before) {
		t.Errorf("restarted static member got %v, had %v", got, before)
	}
	if got := b.Assignment(); !slices.Equal(got, bBefore) {
		t.Errorf("the other member went from %v to %v", bBefore, got)
	}
	d, err := admin.DescribeGroup(ctx, "g")
	if err != nil || len(d.Members) != 2 {
		t.Fatalf("describe: %+v, %v; want 2 members", d, err)
	}
}

// pollEachUntil polls the members in turn, briefly, until cond holds.
func pollEachUntil(tb testing.TB, ctx context.Context, members []*GroupConsumer, cond func() bool) {
	tb.Helper()
	for !cond() {
		for _, m := range members {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
			_, err := m.Poll(pctx)
			cancel()
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				tb.Fatalf("Poll: %v", err)
			}
		}
		if ctx.Err() != nil {
			tb.Fatal("condition never held")
		}
	}
}
