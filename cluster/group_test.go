package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// These tests drive the group state machine directly: no sockets, no
// timers, no Raft.

func testMetadata(topics map[string]int) *Metadata {
	m := newMetadata()
	for name, n := range topics {
		m.Topics[name] = &Topic{Name: name, Replicas: make([][]NodeID, n)}
	}
	return m
}

// testMember is a well-behaved client of the state machine: it gives revoked
// partitions back at its next heartbeat.
type testMember struct {
	id    string
	epoch int32
	owned []TopicPartition
}

func (m *testMember) beat(t *testing.T, g *Group, meta *Metadata) HeartbeatResult {
	t.Helper()
	// The coordinator's dry run, on a copy: it must leave g as it was.
	before, _ := json.Marshal(g)
	if _, _, err := g.clone().heartbeat(&Heartbeat{MemberID: m.id, MemberEpoch: m.epoch, Owned: slices.Clone(m.owned)}, meta); err != nil {
		t.Fatalf("%s: dry run: %v", m.id, err)
	}
	if after, _ := json.Marshal(g); string(after) != string(before) {
		t.Fatalf("%s: the dry run changed the group:\n%s\n%s", m.id, before, after)
	}
	res, _, err := g.heartbeat(&Heartbeat{MemberID: m.id, MemberEpoch: m.epoch, Owned: m.owned}, meta)
	if err != nil {
		t.Fatalf("%s: heartbeat: %v", m.id, err)
	}
	m.epoch, m.owned = res.MemberEpoch, res.Assignment
	checkExclusive(t, g)
	return res
}

func join(t *testing.T, g *Group, meta *Metadata, id string, topics ...string) *testMember {
	t.Helper()
	res, changed, err := g.heartbeat(&Heartbeat{MemberID: id, Topics: topics, TopicsSet: true, SessionTimeoutMs: 1000}, meta)
	if err != nil || !changed {
		t.Fatalf("join %s: changed %v, %v", id, changed, err)
	}
	checkExclusive(t, g)
	return &testMember{id: id, epoch: res.MemberEpoch, owned: res.Assignment}
}

// checkExclusive fails if any partition is held by two members.
func checkExclusive(t *testing.T, g *Group) {
	t.Helper()
	holder := map[TopicPartition]string{}
	for _, m := range g.SortedMembers() {
		for _, tp := range append(slices.Clone(m.Assigned), m.Revoking...) {
			if other, ok := holder[tp]; ok {
				t.Fatalf("%v held by %s and %s", tp, other, m.ID)
			}
			holder[tp] = m.ID
		}
	}
}

func TestGroupJoinRebalancesIncrementally(t *testing.T) {
	meta := testMetadata(map[string]int{"orders": 6})
	g := newGroup("g")
	a := join(t, g, meta, "a", "orders")
	if !slices.Equal(a.owned, tps("orders", 0, 1, 2, 3, 4, 5)) || g.State() != GroupStable {
		t.Fatalf("a alone owns %v, state %s", a.owned, g.State())
	}
	b := join(t, g, meta, "b", "orders")
	if len(b.owned) != 0 || g.State() != GroupReconciling {
		t.Fatalf("b must wait for a to revoke: owns %v, state %s", b.owned, g.State())
	}
	// a learns what to give back; it keeps consuming the rest meanwhile.
	aEpoch := a.epoch
	a.beat(t, g, meta)
	if len(a.owned) != 3 || len(g.Members["a"].Revoking) != 3 || a.epoch <= aEpoch {
		t.Fatalf("a keeps %v, revoking %v, epoch %d", a.owned, g.Members["a"].Revoking, a.epoch)
	}
	// b cannot have the revoked partitions before a confirms.
	if b.beat(t, g, meta); len(b.owned) != 0 {
		t.Fatalf("b got %v before a gave them back", b.owned)
	}
	a.beat(t, g, meta) // owned no longer lists them: revocation done
	b.beat(t, g, meta)
	if len(b.owned) != 3 || g.State() != GroupStable {
		t.Fatalf("b owns %v, state %s", b.owned, g.State())
	}
	// A steady heartbeat changes nothing: no Raft entry for it.
	if _, changed, err := g.heartbeat(&Heartbeat{MemberID: "a", MemberEpoch: a.epoch, Owned: a.owned}, meta); changed || err != nil {
		t.Fatalf("steady heartbeat: changed %v, %v", changed, err)
	}
}

func TestGroupLeaveAndExpiryFreePartitions(t *testing.T) {
	meta := testMetadata(map[string]int{"orders": 4})
	g := newGroup("g")
	a := join(t, g, meta, "a", "orders")
	b := join(t, g, meta, "b", "orders")
	settle(t, g, meta, a, b)
	// b leaves: a gets everything at its next heartbeat.
	if res, changed, err := g.heartbeat(&Heartbeat{MemberID: "b", MemberEpoch: -1}, meta); err != nil || !changed || res.MemberEpoch != -1 {
		t.Fatalf("leave: %+v %v %v", res, changed, err)
	}
	a.beat(t, g, meta)
	if len(a.owned) != 4 {
		t.Fatalf("a owns %v after b left", a.owned)
	}
	// An expired member (the coordinator's removeMember) is unknown after.
	g.removeMember(g.Members["a"], meta)
	if _, _, err := g.heartbeat(&Heartbeat{MemberID: "a", MemberEpoch: a.epoch, Owned: a.owned}, meta); !errors.Is(err, ErrUnknownMember) {
		t.Fatalf("heartbeat of an expired member: %v", err)
	}
	if g.State() != GroupEmpty {
		t.Fatalf("state %s", g.State())
	}
}

// settle heartbeats every member until the group is stable.
func settle(t *testing.T, g *Group, meta *Metadata, members ...*testMember) {
	t.Helper()
	for range 10 {
		for _, m := range members {
			m.beat(t, g, meta)
		}
		if g.State() == GroupStable {
			return
		}
	}
	for _, m := range g.SortedMembers() {
		t.Logf("%s epoch %d topics %v assigned %v revoking %v target %v", m.ID, m.Epoch, m.Topics, m.Assigned, m.Revoking, g.Target[m.ID])
	}
	t.Fatalf("group %s did not settle", g.State())
}

func TestGroupCommitFencing(t *testing.T) {
	meta := testMetadata(map[string]int{"orders": 2})
	g := newGroup("g")
	a := join(t, g, meta, "a", "orders")
	b := join(t, g, meta, "b", "orders")
	settle(t, g, meta, a, b)
	pa, pb := a.owned[0], b.owned[0]
	commit := func(memberID string, epoch int32, tp TopicPartition, offset int64) error {
		return g.commit(&OffsetCommit{MemberID: memberID, MemberEpoch: epoch, Topic: tp.Topic, Partition: tp.Partition, Offset: offset}, meta, 1)
	}
	if err := commit("a", a.epoch, pa, 10); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		err    error
		member string
		epoch  int32
		tp     TopicPartition
		offset int64
	}{
		{"not the owner", ErrFencedMember, "a", a.epoch, pb, 5},
		{"future epoch", ErrFencedMember, "a", a.epoch + 1, pa, 5},
		{"unknown member", ErrUnknownMember, "zombie", 3, pa, 5},
		{"tool into a live group", ErrNonEmptyGroup, "", -1, pa, 5},
		{"unknown partition", ErrUnknownTopic, "a", a.epoch, TopicPartition{"orders", 2}, 5},
		{"negative offset", ErrInvalidGroupRequest, "a", a.epoch, pa, -1},
	} {
		if err := commit(tc.member, tc.epoch, tc.tp, tc.offset); !errors.Is(err, tc.err) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.err)
		}
	}
	if got := g.Offsets["orders"][pa.Partition].Offset; got != 10 {
		t.Fatalf("a refused commit changed the offset: %d", got)
	}
	// Once everyone has left, a tool may reset the offsets.
	for _, id := range []string{"a", "b"} {
		g.removeMember(g.Members[id], meta)
	}
	if err := commit("", -1, pa, 0); err != nil {
		t.Fatal(err)
	}
	if got := g.Offsets["orders"][pa.Partition].Offset; got != 0 {
		t.Fatalf("reset offset %d", got)
	}
}

func TestGroupStaleEpoch(t *testing.T) {
	meta := testMetadata(map[string]int{"orders": 4})
	g := newGroup("g")
	a := join(t, g, meta, "a", "orders")
	old := a.epoch
	b := join(t, g, meta, "b", "orders")
	a.beat(t, g, meta) // a now revokes two: epoch moves on
	_ = b
	// The answer was lost: a heartbeats with its old epoch and everything
	// it had. That is fine: it owns all of it still (some as revoking).
	res, _, err := g.heartbeat(&Heartbeat{MemberID: "a", MemberEpoch: old, Owned: tps("orders", 0, 1, 2, 3)}, meta)
	if err != nil || res.MemberEpoch != a.epoch {
		t.Fatalf("lost answer: %+v, %v", res, err)
	}
	// A zombie claiming a partition it lost is fenced.
	a.beat(t, g, meta)
	b.beat(t, g, meta)
	if _, _, err := g.heartbeat(&Heartbeat{MemberID: "a", MemberEpoch: old, Owned: tps("orders", 0, 1, 2, 3)}, meta); !errors.Is(err, ErrFencedMember) {
		t.Fatalf("stale epoch claiming another's partitions: %v", err)
	}
	if _, _, err := g.heartbeat(&Heartbeat{MemberID: "a", MemberEpoch: a.epoch + 5, Owned: a.owned}, meta); !errors.Is(err, ErrFencedMember) {
		t.Fatalf("future epoch: %v", err)
	}
}

func TestGroupStaticMemberTakesOver(t *testing.T) {
	meta := testMetadata(map[string]int{"orders": 4})
	g := newGroup("g")
	hb := Heartbeat{MemberID: "a1", InstanceID: "host-a", Topics: []string{"orders"}, TopicsSet: true}
	if _, _, err := g.heartbeat(&hb, meta); err != nil {
		t.Fatal(err)
	}
	b := join(t, g, meta, "b", "orders")
	a1 := &testMember{id: "a1", epoch: g.Members["a1"].Epoch, owned: g.Members["a1"].Assigned}
	settle(t, g, meta, a1, b)
	epoch := g.Epoch
	// The member restarts with the same instance id: it gets the same
	// partitions at once, the group does not rebalance, the old id is fenced.
	res, _, err := g.heartbeat(&Heartbeat{MemberID: "a2", InstanceID: "host-a"}, meta)
	if err != nil || !slices.Equal(res.Assignment, a1.owned) || g.Epoch != epoch || g.State() != GroupStable {
		t.Fatalf("takeover: %+v %v, group epoch %d→%d, state %s", res, err, epoch, g.Epoch, g.State())
	}
	if _, _, err := g.heartbeat(&Heartbeat{MemberID: "a1", MemberEpoch: a1.epoch, Owned: a1.owned}, meta); !errors.Is(err, ErrUnknownMember) {
		t.Fatalf("old instance: %v", err)
	}
	if err := g.checkOwner("a1", a1.epoch, a1.owned[0]); !errors.Is(err, ErrUnknownMember) {
		t.Fatalf("old instance commits: %v", err)
	}
}

func TestGroupFollowsTopics(t *testing.T) {
	meta := testMetadata(map[string]int{"audit-1": 2, "orders": 2})
	g := newGroup("g")
	pattern := "audit-.*"
	res, _, err := g.heartbeat(&Heartbeat{MemberID: "a", Regex: &pattern}, meta)
	if err != nil || !slices.Equal(res.Assignment, tps("audit-1", 0, 1)) {
		t.Fatalf("regex join: %+v %v", res, err)
	}
	a := &testMember{id: "a", epoch: res.MemberEpoch, owned: res.Assignment}
	if err := g.commit(&OffsetCommit{MemberID: "a", MemberEpoch: a.epoch, Topic: "audit-1", Partition: 1, Offset: 3}, meta, 1); err != nil {
		t.Fatal(err)
	}
	// A new matching topic joins the subscription.
	meta2 := testMetadata(map[string]int{"audit-1": 2, "audit-2": 1, "orders": 2})
	g.topicsChanged(meta2)
	a.beat(t, g, meta2)
	if !slices.Equal(a.owned, append(tps("audit-1", 0, 1), tps("audit-2", 0)...)) {
		t.Fatalf("after audit-2 was created: %v", a.owned)
	}
	// A deleted topic leaves the assignment and the offsets.
	meta3 := testMetadata(map[string]int{"audit-2": 1, "orders": 2})
	g.topicsChanged(meta3)
	if _, ok := g.Offsets["audit-1"]; ok {
		t.Fatal("offsets of a deleted topic survive")
	}
	a.beat(t, g, meta3)
	if !slices.Equal(a.owned, tps("audit-2", 0)) || g.State() != GroupStable {
		t.Fatalf("after audit-1 was deleted: %v, %s", a.owned, g.State())
	}
	bad := "("
	if _, _, err := g.heartbeat(&Heartbeat{MemberID: "a", MemberEpoch: a.epoch, Regex: &bad, Owned: a.owned}, meta3); !errors.Is(err, ErrInvalidGroupRequest) {
		t.Fatalf("bad regex: %v", err)
	}
	unknown := "fancy"
	if _, _, err := g.heartbeat(&Heartbeat{MemberID: "a", MemberEpoch: a.epoch, Assignor: &unknown, Owned: a.owned}, meta3); !errors.Is(err, ErrUnsupportedAssignor) {
		t.Fatalf("unknown assignor: %v", err)
	}
}

// TestGroupRandomMembership runs seeded random joins, leaves, expiries and
// heartbeats (members give revoked partitions back at once, late, or die
// holding them) and checks after every step that no partition has two
// owners, and at the end that the group settles with every partition owned.
func TestGroupRandomMembership(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			meta := testMetadata(map[string]int{"a": 7, "b": 5})
			g := newGroup("g")
			if rng.IntN(2) == 0 {
				g.Assignor = "range"
			}
			var members []*testMember
			next := 0
			for range 300 {
				switch op := rng.IntN(10); {
				case op == 0 && len(members) < 8:
					topics := [][]string{{"a"}, {"b"}, {"a", "b"}}[rng.IntN(3)]
					members = append(members, join(t, g, meta, fmt.Sprintf("m%02d", next), topics...))
					next++
				case op == 1 && len(members) > 0:
					i := rng.IntN(len(members))
					if m := g.Members[members[i].id]; m != nil {
						g.removeMember(m, meta) // leave or session expiry
					}
					members = slices.Delete(members, i, i+1)
				case len(members) > 0:
					members[rng.IntN(len(members))].beat(t, g, meta)
				}
			}
			if len(members) == 0 {
				members = append(members, join(t, g, meta, "last", "a", "b"))
			}
			settle(t, g, meta, members...)
			owned := 0
			for _, m := range g.Members {
				owned += len(m.Assigned)
			}
			subscribed := map[string]bool{}
			for _, m := range g.Members {
				for _, topic := range m.Topics {
					subscribed[topic] = true
				}
			}
			want := 0
			for topic := range subscribed {
				want += len(meta.Topics[topic].Replicas)
			}
			if owned != want {
				t.Fatalf("settled with %d of %d partitions owned: %+v", owned, want, g.Members)
			}
		})
	}
}
