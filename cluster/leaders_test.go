package cluster

import "testing"

func TestReportLeaders(t *testing.T) {
	c := openTestController(t, t.TempDir())
	ctx := t.Context()
	if err := c.RegisterNode(ctx, Node{ID: 1, ClientAddr: "127.0.0.1:7420"}); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateTopic(ctx, "orders", 2, 1, nil); err != nil {
		t.Fatal(err)
	}
	id := c.Metadata().Topics["orders"].ID
	report := func(r ...LeaderReport) {
		t.Helper()
		if err := c.ReportLeaders(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	leader := func(p int32) PartitionLeader { return c.Metadata().Topics["orders"].Leader(p) }
	if got := leader(0); got != (PartitionLeader{}) {
		t.Fatalf("leader before any report: %+v", got)
	}
	report(LeaderReport{Topic: "orders", TopicID: id, Partition: 0, PartitionLeader: PartitionLeader{Leader: 2, Epoch: 5}})
	for _, tc := range []struct {
		name string
		r    LeaderReport
	}{
		{"older term", LeaderReport{Topic: "orders", TopicID: id, Partition: 0, PartitionLeader: PartitionLeader{Leader: 3, Epoch: 4}}},
		{"none in the same term", LeaderReport{Topic: "orders", TopicID: id, Partition: 0, PartitionLeader: PartitionLeader{Epoch: 5}}},
		{"old incarnation of the topic", LeaderReport{Topic: "orders", TopicID: id + 7, Partition: 0, PartitionLeader: PartitionLeader{Leader: 3, Epoch: 9}}},
		{"no such partition", LeaderReport{Topic: "orders", TopicID: id, Partition: 2, PartitionLeader: PartitionLeader{Leader: 3, Epoch: 9}}},
		{"no such topic", LeaderReport{Topic: "nope", TopicID: id, Partition: 0, PartitionLeader: PartitionLeader{Leader: 3, Epoch: 9}}},
	} {
		report(tc.r)
		if got := leader(0); got != (PartitionLeader{Leader: 2, Epoch: 5}) {
			t.Fatalf("%s: leader %+v", tc.name, got)
		}
	}
	// A new term wins, also when it has no leader yet.
	report(LeaderReport{Topic: "orders", TopicID: id, Partition: 0, PartitionLeader: PartitionLeader{Epoch: 6}},
		LeaderReport{Topic: "orders", TopicID: id, Partition: 1, PartitionLeader: PartitionLeader{Leader: 1, Epoch: 1}})
	if got := leader(0); got != (PartitionLeader{Epoch: 6}) {
		t.Fatalf("after a new term: %+v", got)
	}
	if got := leader(1); got != (PartitionLeader{Leader: 1, Epoch: 1}) {
		t.Fatalf("partition 1: %+v", got)
	}
	// A topic's settings change keeps its leaders.
	if err := c.AlterTopicConfig(ctx, "orders", map[string]*string{KeyRetentionMs: str("1000")}); err != nil {
		t.Fatal(err)
	}
	if got := leader(1); got.Leader != 1 {
		t.Fatalf("after alter: %+v", got)
	}
}
