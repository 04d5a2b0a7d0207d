package cluster

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a clock a test moves by hand.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func openTestCoordinator(t *testing.T, dir string, clock *fakeClock) (*Controller, *Coordinator) {
	t.Helper()
	c := openTestController(t, dir)
	ctx := t.Context()
	if err := c.RegisterNode(ctx, Node{ID: 1, ClientAddr: "127.0.0.1:7420", PeerAddr: "127.0.0.1:7421"}); err != nil {
		t.Fatal(err)
	}
	co := NewCoordinator(c, CoordinatorConfig{Now: clock.Now, MinSessionTimeout: time.Second})
	t.Cleanup(co.Close)
	return c, co
}

func TestCoordinatorGroupLifecycle(t *testing.T) {
	dir := t.TempDir()
	clock := &fakeClock{}
	c, co := openTestCoordinator(t, dir, clock)
	ctx := t.Context()
	if err := c.CreateTopic(ctx, "orders", 4, 1, nil); err != nil {
		t.Fatal(err)
	}
	join := func(instance string) HeartbeatResult {
		t.Helper()
		res, err := co.Heartbeat(ctx, "g", Heartbeat{InstanceID: instance, Topics: []string{"orders"}, TopicsSet: true, SessionTimeoutMs: 2000})
		if err != nil || res.MemberID == "" || res.MemberEpoch <= 0 {
			t.Fatalf("join: %+v %v", res, err)
		}
		return res
	}
	a := join("")
	if len(a.Assignment) != 4 {
		t.Fatalf("first member got %v", a.Assignment)
	}
	b := join("host-b")
	// a gives back two, then b gets them.
	a, _ = co.Heartbeat(ctx, "g", Heartbeat{MemberID: a.MemberID, MemberEpoch: a.MemberEpoch, Owned: a.Assignment})
	a, _ = co.Heartbeat(ctx, "g", Heartbeat{MemberID: a.MemberID, MemberEpoch: a.MemberEpoch, Owned: a.Assignment})
	b, err := co.Heartbeat(ctx, "g", Heartbeat{MemberID: b.MemberID, MemberEpoch: b.MemberEpoch, Owned: b.Assignment})
	if err != nil || len(a.Assignment) != 2 || len(b.Assignment) != 2 || c.Group("g").State() != GroupStable {
		t.Fatalf("after rebalance a %v, b %v (%v), state %s", a.Assignment, b.Assignment, err, c.Group("g").State())
	}

	// Commits: many concurrent requests, few Raft entries.
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			errs, err := co.CommitOffsets(ctx, "g", []OffsetCommit{{MemberID: a.MemberID, MemberEpoch: a.MemberEpoch,
				Topic: "orders", Partition: a.Assignment[i%2].Partition, Offset: int64(100 + i)}})
			if err != nil || errs[0] != nil {
				t.Errorf("commit %d: %v %v", i, err, errs)
			}
		})
	}
	wg.Wait()
	errs, err := co.CommitOffsets(ctx, "g", []OffsetCommit{
		{MemberID: b.MemberID, MemberEpoch: b.MemberEpoch, Topic: "orders", Partition: b.Assignment[0].Partition, Offset: 7, Metadata: "m"},
		{MemberID: b.MemberID, MemberEpoch: b.MemberEpoch, Topic: "orders", Partition: a.Assignment[0].Partition, Offset: 1},
	})
	if err != nil || errs[0] != nil || !errors.Is(errs[1], ErrFencedMember) {
		t.Fatalf("b's commits: %v %v", err, errs)
	}
	if off := c.Group("g").Offsets["orders"][b.Assignment[0].Partition]; off.Offset != 7 || off.Metadata != "m" {
		t.Fatalf("committed %+v", off)
	}

	// A static member restarting keeps its partitions; the old id is fenced.
	b2 := join("host-b")
	if !slices.Equal(b2.Assignment, b.Assignment) {
		t.Fatalf("restarted static member got %v, had %v", b2.Assignment, b.Assignment)
	}
	if _, err := co.Heartbeat(ctx, "g", Heartbeat{MemberID: b.MemberID, MemberEpoch: b.MemberEpoch}); !errors.Is(err, ErrUnknownMember) {
		t.Fatalf("old static instance: %v", err)
	}

	// a stops heartbeating; b2 keeps going. After a's session a is removed
	// and b2 gets everything.
	deadline := time.Now().Add(10 * time.Second)
	for c.Group("g").Members[a.MemberID] != nil {
		if time.Now().After(deadline) {
			t.Fatal("a never expired")
		}
		clock.Advance(500 * time.Millisecond)
		b2, err = co.Heartbeat(ctx, "g", Heartbeat{MemberID: b2.MemberID, MemberEpoch: b2.MemberEpoch, Owned: b2.Assignment})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // let the expiry ticker run at this clock reading
	}
	b2, _ = co.Heartbeat(ctx, "g", Heartbeat{MemberID: b2.MemberID, MemberEpoch: b2.MemberEpoch, Owned: b2.Assignment})
	if len(b2.Assignment) != 4 {
		t.Fatalf("after a expired b2 has %v", b2.Assignment)
	}
	if err := c.CheckMember("g", a.MemberID, a.MemberEpoch, a.Assignment[0]); !errors.Is(err, ErrUnknownMember) {
		t.Fatalf("expired member's fetch: %v", err)
	}
	if err := c.CheckMember("g", b2.MemberID, b2.MemberEpoch, a.Assignment[0]); err != nil {
		t.Fatalf("owner's fetch: %v", err)
	}

	if err := co.DeleteGroup(ctx, "g"); !errors.Is(err, ErrNonEmptyGroup) {
		t.Fatalf("delete of a live group: %v", err)
	}
	if _, err := co.Heartbeat(ctx, "g", Heartbeat{MemberID: b2.MemberID, MemberEpoch: -1}); err != nil {
		t.Fatal(err)
	}

	// The groups survive a restart: from the log, then from a snapshot.
	want := c.Group("g")
	for _, snapshot := range []bool{false, true} {
		if snapshot {
			if err := c.Raft().Snapshot().Error(); err != nil {
				t.Fatal(err)
			}
		}
		co.Close()
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		c, co = openTestCoordinator(t, dir, clock)
		got := c.Group("g")
		if got == nil || got.Epoch != want.Epoch || len(got.Offsets["orders"]) != 3 || got.State() != GroupEmpty {
			t.Fatalf("after restart (snapshot %v): %+v", snapshot, got)
		}
	}
	if err := co.DeleteGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if c.Group("g") != nil || len(c.GroupIDs()) != 0 {
		t.Fatal("group survives its deletion")
	}
	if err := co.DeleteGroup(ctx, "g"); !errors.Is(err, ErrGroupNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestCoordinatorRejects(t *testing.T) {
	clock := &fakeClock{}
	_, co := openTestCoordinator(t, t.TempDir(), clock)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := co.Heartbeat(ctx, "", Heartbeat{}); !errors.Is(err, ErrInvalidGroupID) {
		t.Fatalf("empty group id: %v", err)
	}
	if _, err := co.Heartbeat(ctx, "g", Heartbeat{MemberID: "nobody", MemberEpoch: 3}); !errors.Is(err, ErrUnknownMember) {
		t.Fatalf("unknown member: %v", err)
	}
	if res, err := co.Heartbeat(ctx, "g", Heartbeat{MemberID: "nobody", MemberEpoch: -1}); err != nil || res.MemberEpoch != -1 {
		t.Fatalf("leave of an unknown member: %+v %v", res, err)
	}
	bad := "fancy"
	if _, err := co.Heartbeat(ctx, "g", Heartbeat{Assignor: &bad}); !errors.Is(err, ErrUnsupportedAssignor) {
		t.Fatalf("bad assignor: %v", err)
	}
	if errs, err := co.CommitOffsets(ctx, "g", []OffsetCommit{{MemberEpoch: -1, Topic: "nope", Offset: 1}}); err != nil || !errors.Is(errs[0], ErrUnknownTopic) {
		t.Fatalf("commit to an unknown topic: %v %v", err, errs)
	}
	if got := co.HeartbeatInterval(600); got != 200*time.Millisecond {
		t.Fatalf("heartbeat interval for a 600ms session: %v", got)
	}
}
