package cluster

import (
	"context"
	"maps"
	"slices"
)

// PartitionLeader is a partition's leader as the metadata knows it.
type PartitionLeader struct {
	Leader NodeID `json:"leader"` // 0 when the partition has none
	// Epoch is the partition's Raft term when the leader was reported: a
	// report with an older term never overwrites a newer one.
	Epoch uint64 `json:"epoch"`
}

// LeaderReport is one replica's news of its partition's leader.
type LeaderReport struct {
	Topic string `json:"topic"`
	// TopicID tells the topic from an older one of the same name, whose
	// late reports must not land on it.
	TopicID   uint64 `json:"topic_id"`
	Partition int32  `json:"partition"`
	PartitionLeader
}

// Leader returns partition p's reported leader, or a zero PartitionLeader
// when none was reported.
func (t *Topic) Leader(p int32) PartitionLeader {
	if p < 0 || int(p) >= len(t.Leaders) {
		return PartitionLeader{}
	}
	return t.Leaders[p]
}

// ReportLeaders records where partitions' leaders are. Replicas report
// their partition's leader whenever it changes; the newest term wins.
func (c *Controller) ReportLeaders(ctx context.Context, reports []LeaderReport) error {
	return c.propose(ctx, &command{Op: opReportLeaders, Leaders: reports})
}

// withLeaders returns the topics with the reports applied: stale reports
// (an older term, another incarnation of the topic, a partition out of
// range) are ignored, and a topic whose leaders do not change keeps its
// value.
func (m *Metadata) withLeaders(reports []LeaderReport) map[string]*Topic {
	var changed map[string]*Topic
	for _, r := range reports {
		t := m.Topics[r.Topic]
		if changed[r.Topic] != nil {
			t = changed[r.Topic]
		}
		if t == nil || t.ID != r.TopicID || r.Partition < 0 || int(r.Partition) >= len(t.Replicas) {
			continue
		}
		cur := t.Leader(r.Partition)
		// In one term there is at most one leader: a report of "none" in
		// the term that has one is a replica that has not heard yet.
		if r.Epoch < cur.Epoch || r.PartitionLeader == cur || (r.Epoch == cur.Epoch && r.Leader == 0) {
			continue
		}
		if changed[r.Topic] == nil {
			cp := *t
			cp.Leaders = make([]PartitionLeader, len(t.Replicas))
			copy(cp.Leaders, t.Leaders)
			t = &cp
			if changed == nil {
				changed = map[string]*Topic{}
			}
			changed[r.Topic] = t
		}
		t.Leaders[r.Partition] = r.PartitionLeader
	}
	if changed == nil {
		return m.Topics
	}
	topics := maps.Clone(m.Topics)
	for _, name := range slices.Sorted(maps.Keys(changed)) {
		topics[name] = changed[name]
	}
	return topics
}
