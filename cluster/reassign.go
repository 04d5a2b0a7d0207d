package cluster

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/hashicorp/raft"
)

// Moving replicas. The metadata records what should be (a partition's
// target replicas, Topic.Targets); the partition's Raft leader makes it so,
// step by step, in its own group (broker/reassign.go): new replicas join as
// non-voters, become voters once caught up, then the replicas not in the
// target leave. The leader then reports completion and the metadata's
// replica list becomes the target. Until then Topic.Replicas lists the old
// and the new replicas together, so every node that holds or will hold
// the partition has it open.

// Reassignment is one partition's target replicas; the first is the
// preferred leader.
type Reassignment struct {
	Partition int32    `json:"partition"`
	Replicas  []NodeID `json:"replicas"`
}

// Target returns partition p's reassignment target, or nil when none is
// under way.
func (t *Topic) Target(p int32) []NodeID { return t.Targets[p] }

// ReassignPartitions sets target replicas for partitions of a topic.
func (c *Controller) ReassignPartitions(ctx context.Context, topic string, moves []Reassignment) error {
	cmd := &command{Op: opReassign, Topic: topic, Moves: moves}
	if _, err := c.Metadata().apply(0, cmd); err != nil {
		return err
	}
	return c.propose(ctx, cmd)
}

// CompleteReassignment records that a partition's Raft group now has
// exactly its target replicas.
func (c *Controller) CompleteReassignment(ctx context.Context, topic string, topicID uint64, p int32, replicas []NodeID) error {
	return c.propose(ctx, &command{Op: opCompleteReassign, Topic: topic, TopicID: topicID,
		Moves: []Reassignment{{Partition: p, Replicas: replicas}}})
}

// RemoveNode starts decommissioning node n: every replica it holds gets a
// target without it (a replacement on the node holding the fewest
// replicas). FinishRemovals takes the node out once it holds none.
func (c *Controller) RemoveNode(ctx context.Context, n NodeID) error {
	cmd := &command{Op: opRemoveNode, Node: &Node{ID: n}}
	if _, err := c.Metadata().apply(0, cmd); err != nil {
		return err
	}
	return c.propose(ctx, cmd)
}

// FinishRemovals takes out of the cluster every node being removed that
// holds no replica any more: out of the metadata group first, then out of
// the metadata (opForgetNode). A controller removing itself steps down once
// its removal commits; its successor then finds the node out of the group
// and forgets it. Only the controller acts; call it again while
// Metadata().Removing is not empty.
func (c *Controller) FinishRemovals(ctx context.Context) error {
	if !c.IsLeader() {
		return nil
	}
	meta := c.Metadata()
	for _, n := range meta.Removing {
		if meta.hosts(n) {
			continue // its replicas are still moving
		}
		f := c.raft.GetConfiguration()
		if err := f.Error(); err != nil {
			return fmt.Errorf("weir/cluster: %w", err)
		}
		if slices.ContainsFunc(f.Configuration().Servers, func(s raft.Server) bool { return s.ID == ServerID(n) }) {
			if err := c.raft.RemoveServer(ServerID(n), 0, membershipTimeout(ctx)).Error(); err != nil {
				return fmt.Errorf("weir/cluster: remove node %d from the metadata group: %w", n, err)
			}
			if n == c.cfg.NodeID {
				return nil // no longer the controller
			}
		}
		if err := c.propose(ctx, &command{Op: opForgetNode, Node: &Node{ID: n}}); err != nil {
			return err
		}
	}
	return nil
}

// hosts reports whether node n holds, or is to hold, a replica.
func (m *Metadata) hosts(n NodeID) bool {
	for _, t := range m.Topics {
		for p, r := range t.Replicas {
			if slices.Contains(r, n) || slices.Contains(t.Target(int32(p)), n) {
				return true
			}
		}
	}
	return false
}

// replicaCounts counts, per node, the replicas it holds or is to hold.
func (m *Metadata) replicaCounts() map[NodeID]int {
	counts := map[NodeID]int{}
	for id := range m.Nodes {
		counts[id] = 0
	}
	for _, t := range m.Topics {
		for p, r := range t.Replicas {
			for _, n := range union(r, t.Target(int32(p))) {
				counts[n]++
			}
		}
	}
	return counts
}

// union is a followed by the nodes of b not in a.
func union(a, b []NodeID) []NodeID {
	out := slices.Clone(a)
	for _, n := range b {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// sameNodes reports whether a and b hold the same nodes, in any order.
func sameNodes(a, b []NodeID) bool {
	return len(a) == len(b) && !slices.ContainsFunc(a, func(n NodeID) bool { return !slices.Contains(b, n) })
}

// withTargets returns a copy of t with the moves applied, or why they are
// refused.
func (m *Metadata) withTargets(t *Topic, moves []Reassignment) (*Topic, error) {
	if len(moves) == 0 {
		return nil, fmt.Errorf("%w: no partitions to move", ErrInvalidReassignment)
	}
	cp := *t
	cp.Replicas = slices.Clone(t.Replicas)
	cp.Targets = maps.Clone(t.Targets)
	if cp.Targets == nil {
		cp.Targets = map[int32][]NodeID{}
	}
	seen := map[int32]bool{}
	for _, mv := range moves {
		p := mv.Partition
		if p < 0 || int(p) >= len(t.Replicas) {
			return nil, fmt.Errorf("%w: %q partition %d", ErrUnknownTopic, t.Name, p)
		}
		if seen[p] {
			return nil, fmt.Errorf("%w: partition %d listed twice", ErrInvalidReassignment, p)
		}
		seen[p] = true
		if len(mv.Replicas) == 0 {
			return nil, fmt.Errorf("%w: partition %d: no replicas", ErrInvalidReplicas, p)
		}
		for i, n := range mv.Replicas {
			if _, ok := m.Nodes[n]; !ok {
				return nil, fmt.Errorf("%w: partition %d: node %d is not in the cluster", ErrInvalidReplicas, p, n)
			}
			if slices.Contains(mv.Replicas[:i], n) {
				return nil, fmt.Errorf("%w: partition %d: node %d twice", ErrInvalidReplicas, p, n)
			}
			if slices.Contains(m.Removing, n) {
				return nil, fmt.Errorf("%w: partition %d: node %d is being removed", ErrInvalidReassignment, p, n)
			}
		}
		if slices.Equal(mv.Replicas, t.Replicas[p]) && t.Target(p) == nil {
			continue // already there
		}
		cp.Targets[p] = slices.Clone(mv.Replicas)
		cp.Replicas[p] = union(t.Replicas[p], mv.Replicas)
	}
	if len(cp.Targets) == 0 {
		cp.Targets = nil
	}
	return &cp, nil
}

// applyReassign, applyCompleteReassign, applyRemoveNode and applyForgetNode
// are the FSM's side of the commands above.
func (m *Metadata) applyReassign(next *Metadata, cmd *command) error {
	t, ok := m.Topics[cmd.Topic]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownTopic, cmd.Topic)
	}
	nt, err := m.withTargets(t, cmd.Moves)
	if err != nil {
		return err
	}
	next.Topics = maps.Clone(m.Topics)
	next.Topics[t.Name] = nt
	return nil
}

func (m *Metadata) applyCompleteReassign(next *Metadata, cmd *command) error {
	t, ok := m.Topics[cmd.Topic]
	if !ok || t.ID != cmd.TopicID || len(cmd.Moves) != 1 {
		return fmt.Errorf("%w: %q (id %d)", ErrUnknownTopic, cmd.Topic, cmd.TopicID)
	}
	mv := cmd.Moves[0]
	target := t.Target(mv.Partition)
	if target == nil || !sameNodes(target, mv.Replicas) {
		return fmt.Errorf("%w: partition %d: no reassignment to %v under way", ErrInvalidReassignment, mv.Partition, mv.Replicas)
	}
	cp := *t
	cp.Replicas = slices.Clone(t.Replicas)
	cp.Replicas[mv.Partition] = target
	cp.Targets = maps.Clone(t.Targets)
	delete(cp.Targets, mv.Partition)
	if len(cp.Targets) == 0 {
		cp.Targets = nil
	}
	next.Topics = maps.Clone(m.Topics)
	next.Topics[t.Name] = &cp
	return nil
}

func (m *Metadata) applyRemoveNode(next *Metadata, cmd *command) error {
	n := cmd.Node.ID
	if _, ok := m.Nodes[n]; !ok {
		return fmt.Errorf("%w: node %d is not in the cluster", ErrInvalidNode, n)
	}
	if slices.Contains(m.Removing, n) {
		return nil // already under way
	}
	if len(m.Nodes)-len(m.Removing) <= 1 {
		return fmt.Errorf("%w: node %d is the last node", ErrInvalidNode, n)
	}
	next.Removing = append(slices.Clone(m.Removing), n)
	slices.Sort(next.Removing)
	counts := m.replicaCounts()
	next.Topics = maps.Clone(m.Topics)
	for _, name := range slices.Sorted(maps.Keys(m.Topics)) {
		t := m.Topics[name]
		var moves []Reassignment
		for p, r := range t.Replicas {
			cur := r
			if tg := t.Target(int32(p)); tg != nil {
				cur = tg
			}
			i := slices.Index(cur, n)
			if i < 0 {
				continue
			}
			repl, ok := replacement(next, counts, union(r, cur))
			if !ok {
				return fmt.Errorf("%w: no node left for partition %d of %q (replicas %v)", ErrInvalidReplicas, p, name, cur)
			}
			counts[repl]++
			target := slices.Clone(cur)
			target[i] = repl
			moves = append(moves, Reassignment{Partition: int32(p), Replicas: target})
		}
		if len(moves) == 0 {
			continue
		}
		nt, err := next.withTargets(t, moves)
		if err != nil {
			return err
		}
		next.Topics[name] = nt
	}
	return nil
}

// replacement picks the node to take a replica of a partition held by
// taken: not among them, not being removed, holding the fewest replicas
// (the lowest id on a tie, so every replica of the FSM picks the same).
func replacement(m *Metadata, counts map[NodeID]int, taken []NodeID) (NodeID, bool) {
	var best NodeID
	for _, node := range m.SortedNodes() {
		if slices.Contains(taken, node.ID) || slices.Contains(m.Removing, node.ID) {
			continue
		}
		if best == 0 || counts[node.ID] < counts[best] {
			best = node.ID
		}
	}
	return best, best != 0
}

func (m *Metadata) applyForgetNode(next *Metadata, cmd *command) error {
	n := cmd.Node.ID
	if !slices.Contains(m.Removing, n) || m.hosts(n) {
		return fmt.Errorf("%w: node %d is not removed, or still holds replicas", ErrInvalidNode, n)
	}
	next.Removing = slices.DeleteFunc(slices.Clone(m.Removing), func(x NodeID) bool { return x == n })
	if len(next.Removing) == 0 {
		next.Removing = nil
	}
	next.Nodes = maps.Clone(m.Nodes)
	delete(next.Nodes, n)
	return nil
}
