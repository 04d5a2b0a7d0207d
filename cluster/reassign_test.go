package cluster

import (
	"errors"
	"slices"
	"testing"
)

// metaWith returns metadata of nodes 1..n and the given topics' replicas,
// built through apply as the FSM would.
func metaWith(t *testing.T, n int, topics map[string][][]NodeID) *Metadata {
	t.Helper()
	m := newMetadata()
	for i := range n {
		id := NodeID(i + 1)
		m.Nodes[id] = Node{ID: id, ClientAddr: "127.0.0.1:1", PeerAddr: "127.0.0.1:2"}
	}
	for name, replicas := range topics {
		m.Topics[name] = &Topic{Name: name, ID: m.NextTopicID, Config: DefaultTopicConfig(), Replicas: replicas}
		m.NextTopicID++
	}
	return m
}

func mustApply(t *testing.T, m *Metadata, cmd *command) *Metadata {
	t.Helper()
	next, err := m.apply(m.Index+1, cmd)
	if err != nil {
		t.Fatalf("%s: %v", cmd.Op, err)
	}
	return next
}

// TestReassignLifecycle: a target lists old and new replicas together until
// the leader reports the group is the target; then the target is the
// replica list, and the old metadata value is untouched throughout.
func TestReassignLifecycle(t *testing.T) {
	m0 := metaWith(t, 4, map[string][][]NodeID{"t": {{1, 2, 3}, {2, 3, 4}}})
	m1 := mustApply(t, m0, &command{Op: opReassign, Topic: "t", Moves: []Reassignment{{Partition: 0, Replicas: []NodeID{4, 2, 3}}}})
	tp := m1.Topics["t"]
	if got := tp.Replicas[0]; !slices.Equal(got, []NodeID{1, 2, 3, 4}) {
		t.Fatalf("replicas during the move = %v, want old then new", got)
	}
	if got := tp.Target(0); !slices.Equal(got, []NodeID{4, 2, 3}) {
		t.Fatalf("target = %v", got)
	}
	if tp.Target(1) != nil || m0.Topics["t"].Targets != nil || !slices.Equal(m0.Topics["t"].Replicas[0], []NodeID{1, 2, 3}) {
		t.Fatal("the move changed another partition or the earlier metadata")
	}
	if !m1.hosts(4) || !m1.hosts(1) {
		t.Fatal("both old and new replicas hold the partition during the move")
	}
	// A completion that does not match the target is refused.
	if _, err := m1.apply(9, &command{Op: opCompleteReassign, Topic: "t", TopicID: tp.ID,
		Moves: []Reassignment{{Partition: 0, Replicas: []NodeID{1, 2, 3}}}}); !errors.Is(err, ErrInvalidReassignment) {
		t.Fatalf("completion with other replicas: %v", err)
	}
	if _, err := m1.apply(9, &command{Op: opCompleteReassign, Topic: "t", TopicID: tp.ID + 1,
		Moves: []Reassignment{{Partition: 0, Replicas: []NodeID{4, 2, 3}}}}); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("completion for another incarnation of the topic: %v", err)
	}
	m2 := mustApply(t, m1, &command{Op: opCompleteReassign, Topic: "t", TopicID: tp.ID,
		Moves: []Reassignment{{Partition: 0, Replicas: []NodeID{2, 3, 4}}}}) // any order
	if got := m2.Topics["t"].Replicas[0]; !slices.Equal(got, []NodeID{4, 2, 3}) {
		t.Fatalf("replicas after the move = %v, want the target in its order", got)
	}
	if m2.Topics["t"].Targets != nil {
		t.Fatalf("targets left: %v", m2.Topics["t"].Targets)
	}
}

func TestReassignRefusals(t *testing.T) {
	m := metaWith(t, 3, map[string][][]NodeID{"t": {{1, 2}}})
	m.Removing = []NodeID{3}
	for _, tc := range []struct {
		name  string
		topic string
		moves []Reassignment
		want  error
	}{
		{"unknown topic", "nope", []Reassignment{{0, []NodeID{1}}}, ErrUnknownTopic},
		{"partition out of range", "t", []Reassignment{{1, []NodeID{1}}}, ErrUnknownTopic},
		{"no replicas", "t", []Reassignment{{0, nil}}, ErrInvalidReplicas},
		{"unknown node", "t", []Reassignment{{0, []NodeID{1, 9}}}, ErrInvalidReplicas},
		{"node twice", "t", []Reassignment{{0, []NodeID{1, 1}}}, ErrInvalidReplicas},
		{"node being removed", "t", []Reassignment{{0, []NodeID{1, 3}}}, ErrInvalidReassignment},
		{"partition twice", "t", []Reassignment{{0, []NodeID{1}}, {0, []NodeID{2}}}, ErrInvalidReassignment},
		{"nothing", "t", nil, ErrInvalidReassignment},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := m.apply(1, &command{Op: opReassign, Topic: tc.topic, Moves: tc.moves}); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestRemoveNode: every replica of the node gets a target on the node with
// the fewest replicas; new topics avoid it; once its moves are complete it
// can be forgotten, not before.
func TestRemoveNode(t *testing.T) {
	m0 := metaWith(t, 4, map[string][][]NodeID{
		"a": {{1, 2}, {2, 3}, {3, 1}},
		"b": {{1, 3}},
	})
	m1 := mustApply(t, m0, &command{Op: opRemoveNode, Node: &Node{ID: 1}})
	if !slices.Equal(m1.Removing, []NodeID{1}) {
		t.Fatalf("removing = %v", m1.Removing)
	}
	// Node 4 held nothing: it takes node 1's replicas first, then the
	// counts even out (node 4: 1 then 2; node 2 had 2).
	if got := m1.Topics["a"].Target(0); !slices.Equal(got, []NodeID{4, 2}) {
		t.Fatalf("a/0 target = %v", got)
	}
	if got := m1.Topics["a"].Target(1); got != nil {
		t.Fatalf("a/1 does not hold node 1 but got target %v", got)
	}
	for name, tp := range m1.Topics {
		for p := range tp.Replicas {
			if tg := tp.Target(int32(p)); tg != nil && slices.Contains(tg, 1) {
				t.Fatalf("%s/%d target %v keeps the removed node", name, p, tg)
			}
		}
	}
	if _, err := m1.apply(9, &command{Op: opCreateTopic, Topic: "c", Partitions: 4, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	m2 := mustApply(t, m1, &command{Op: opCreateTopic, Topic: "c", Partitions: 4, Replicas: 3})
	for _, r := range m2.Topics["c"].Replicas {
		if slices.Contains(r, 1) {
			t.Fatalf("new topic placed on the node being removed: %v", r)
		}
	}
	if _, err := m2.apply(9, &command{Op: opForgetNode, Node: &Node{ID: 1}}); !errors.Is(err, ErrInvalidNode) {
		t.Fatalf("forget while it holds replicas: %v", err)
	}
	m3 := m2
	for _, name := range []string{"a", "b"} {
		tp := m3.Topics[name]
		for p := range tp.Replicas {
			if tg := tp.Target(int32(p)); tg != nil {
				m3 = mustApply(t, m3, &command{Op: opCompleteReassign, Topic: name, TopicID: tp.ID,
					Moves: []Reassignment{{Partition: int32(p), Replicas: tg}}})
				tp = m3.Topics[name]
			}
		}
	}
	m4 := mustApply(t, m3, &command{Op: opForgetNode, Node: &Node{ID: 1}})
	if _, ok := m4.Nodes[1]; ok || m4.Removing != nil {
		t.Fatalf("node 1 still there: nodes %v removing %v", m4.Nodes, m4.Removing)
	}
}

func TestRemoveNodeRefusals(t *testing.T) {
	m := metaWith(t, 2, map[string][][]NodeID{"t": {{1, 2}}})
	if _, err := m.apply(1, &command{Op: opRemoveNode, Node: &Node{ID: 7}}); !errors.Is(err, ErrInvalidNode) {
		t.Fatalf("unknown node: %v", err)
	}
	if _, err := m.apply(1, &command{Op: opRemoveNode, Node: &Node{ID: 1}}); !errors.Is(err, ErrInvalidReplicas) {
		t.Fatalf("a 2-replica partition on 2 nodes: %v", err)
	}
	one := metaWith(t, 1, nil)
	if _, err := one.apply(1, &command{Op: opRemoveNode, Node: &Node{ID: 1}}); !errors.Is(err, ErrInvalidNode) {
		t.Fatalf("the last node: %v", err)
	}
}
