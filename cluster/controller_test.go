package cluster

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/armon/go-metrics.(*InmemSink).run"),
		goleak.IgnoreTopFunction("github.com/hashicorp/go-metrics.(*InmemSink).run"),
	)
}

func openTestController(t *testing.T, dir string) *Controller {
	t.Helper()
	addr, trans := raft.NewInmemTransport("meta-1")
	c, err := OpenController(ControllerConfig{
		NodeID: 1, Dir: dir, Transport: trans,
		Peers:            []raft.Server{{ID: "1", Address: addr}},
		HeartbeatTimeout: 50 * time.Millisecond, ElectionTimeout: 50 * time.Millisecond, LeaderLeaseTimeout: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for !c.IsLeader() {
		if err := c.WaitLeader(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ctx.Done():
			t.Fatal("no leadership")
		case <-time.After(5 * time.Millisecond):
		}
	}
	return c
}

func str(s string) *string { return &s }

func TestControllerTopics(t *testing.T) {
	dir := t.TempDir()
	c := openTestController(t, dir)
	ctx := t.Context()
	if err := c.RegisterNode(ctx, Node{ID: 1, ClientAddr: "127.0.0.1:7420", PeerAddr: "127.0.0.1:7421"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		topic      string
		partitions int
		replicas   int
		configs    map[string]*string
		want       error
	}{
		{"ok", "orders", 6, 1, map[string]*string{KeyRetentionMs: str("60000"), KeyDiscard: str("reject")}, nil},
		{"exists", "orders", 1, 1, nil, ErrTopicExists},
		{"bad name", "a/b", 1, 1, nil, ErrInvalidTopic},
		{"dot dot", "..", 1, 1, nil, ErrInvalidTopic},
		{"no partitions", "t1", 0, 1, nil, ErrInvalidPartitions},
		{"too many replicas", "t2", 1, 2, nil, ErrInvalidReplicas},
		{"unknown config", "t3", 1, 1, map[string]*string{"retention.msec": str("1")}, ErrInvalidConfig},
		{"bad config value", "t4", 1, 1, map[string]*string{KeyFsync: str("sometimes")}, ErrInvalidConfig},
		{"bad segment size", "t5", 1, 1, map[string]*string{KeySegmentBytes: str("12")}, ErrInvalidConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := c.CreateTopic(ctx, tc.topic, tc.partitions, tc.replicas, tc.configs)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("CreateTopic: %v, want %v", err, tc.want)
			}
		})
	}
	topic := c.Metadata().Topics["orders"]
	if topic == nil || len(topic.Replicas) != 6 || topic.Config.RetentionMs != 60000 || topic.Config.Discard != "reject" || topic.Config.Fsync != "always" {
		t.Fatalf("topic %+v", topic)
	}
	if err := c.AlterTopicConfig(ctx, "orders", map[string]*string{KeyDiscard: nil, KeyCompression: str("zstd,none")}); err != nil {
		t.Fatal(err)
	}
	if err := c.AlterTopicConfig(ctx, "orders", map[string]*string{KeyMaxBytes: str("-5")}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("bad alter: %v", err)
	}
	if err := c.CreateTopic(ctx, "gone", 1, 1, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteTopic(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteTopic(ctx, "gone"); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("second delete: %v", err)
	}
	check := func(c *Controller) {
		t.Helper()
		m := c.Metadata()
		topic := m.Topics["orders"]
		if topic == nil || topic.Config.Discard != "old" || len(topic.Config.Compression) != 2 || m.Topics["gone"] != nil || m.Nodes[1].ClientAddr != "127.0.0.1:7420" {
			t.Fatalf("metadata %+v, orders %+v", m, topic)
		}
	}
	check(c)
	ids := map[int64]bool{}
	for range 3 {
		id, err := c.AllocateProducerID(ctx)
		if err != nil || ids[id] {
			t.Fatalf("AllocateProducerID = %d, %v (had %v)", id, err, ids)
		}
		ids[id] = true
	}
	// The metadata survives a restart: Raft replays it.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = openTestController(t, dir)
	deadline := time.Now().Add(5 * time.Second)
	for c.Metadata().Topics["orders"] == nil && time.Now().Before(deadline) {
		select {
		case <-c.Changed():
		case <-time.After(time.Until(deadline)):
		}
	}
	check(c)
	if id, err := c.AllocateProducerID(t.Context()); err != nil || ids[id] {
		t.Fatalf("AllocateProducerID after restart = %d, %v (had %v)", id, err, ids)
	}
}

func TestPlacementSpreads(t *testing.T) {
	nodes := []Node{{ID: 1}, {ID: 2}, {ID: 3}}
	got := place(nodes, 1, 6, 3)
	leaders := map[NodeID]int{}
	for p, rs := range got {
		seen := map[NodeID]bool{}
		for _, r := range rs {
			if seen[r] {
				t.Fatalf("partition %d has node %d twice: %v", p, r, rs)
			}
			seen[r] = true
		}
		leaders[rs[0]]++
	}
	for _, n := range nodes {
		if leaders[n.ID] != 2 {
			t.Fatalf("preferred leaders %v, want 2 each", leaders)
		}
	}
}
