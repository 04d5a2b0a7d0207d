package client

import (
	"errors"
	"testing"
	"time"

	"weir/protocol"
)

func TestAdminTopics(t *testing.T) {
	addr := startBroker(t)
	a := newAdmin(t, addr)
	ctx := testContext(t, 30*time.Second)

	if err := a.CreateTopic(ctx, "orders", 3, 1, map[string]string{"retention.ms": "60000", "fsync": "never"}); err != nil {
		t.Fatal(err)
	}
	d, err := a.DescribeTopic(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Partitions) != 3 {
		t.Fatalf("%d partitions, want 3", len(d.Partitions))
	}
	for i, p := range d.Partitions {
		if p.Partition != int32(i) || p.LeaderID != 1 || p.Err != nil || len(p.Replicas) != 1 || p.HighWatermark != 0 || p.LogStartOffset != 0 {
			t.Errorf("partition %d: %+v", i, p)
		}
	}
	checkConfig := func(d *TopicDescription, key, want string, isDefault bool) {
		t.Helper()
		for _, c := range d.Configs {
			if c.Key == key {
				if c.Value != want || c.IsDefault != isDefault {
					t.Errorf("%s = %q (default %v), want %q (default %v)", key, c.Value, c.IsDefault, want, isDefault)
				}
				return
			}
		}
		t.Errorf("%s missing from %+v", key, d.Configs)
	}
	checkConfig(d, "retention.ms", "60000", false)
	checkConfig(d, "discard", "old", true)

	t.Run("duplicate", func(t *testing.T) {
		err := a.CreateTopic(ctx, "orders", 1, 1, nil)
		if !errors.Is(err, protocol.ErrTopicAlreadyExists) {
			t.Fatalf("err = %v, want TopicAlreadyExists", err)
		}
	})
	t.Run("invalid", func(t *testing.T) {
		for _, tc := range []struct {
			name       string
			topic      string
			partitions int32
			replicas   int16
			configs    map[string]string
			want       error
		}{
			{"bad config key", "t1", 1, 1, map[string]string{"nope": "1"}, protocol.ErrInvalidConfig},
			{"bad config value", "t2", 1, 1, map[string]string{"retention.ms": "soon"}, protocol.ErrInvalidConfig},
			{"no partitions", "t3", 0, 1, nil, protocol.ErrInvalidPartitions},
			{"too many replicas", "t4", 1, 3, nil, protocol.ErrInvalidReplicationFactor},
			{"bad name", "a/b", 1, 1, nil, protocol.ErrInvalidTopic},
		} {
			if err := a.CreateTopic(ctx, tc.topic, tc.partitions, tc.replicas, tc.configs); !errors.Is(err, tc.want) {
				t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
			}
		}
	})
	t.Run("alter", func(t *testing.T) {
		v := "reject"
		if err := a.AlterTopicConfig(ctx, "orders", map[string]*string{"discard": &v, "retention.ms": nil}); err != nil {
			t.Fatal(err)
		}
		d, err := a.DescribeTopic(ctx, "orders")
		if err != nil {
			t.Fatal(err)
		}
		checkConfig(d, "discard", "reject", false)
		checkConfig(d, "retention.ms", "604800000", true)
		bad := "sometimes"
		if err := a.AlterTopicConfig(ctx, "orders", map[string]*string{"fsync": &bad}); !errors.Is(err, protocol.ErrInvalidConfig) {
			t.Fatalf("bad value: err = %v, want InvalidConfig", err)
		}
		if err := a.AlterTopicConfig(ctx, "missing", map[string]*string{"discard": &v}); !errors.Is(err, protocol.ErrUnknownTopicOrPartition) {
			t.Fatalf("unknown topic: err = %v, want UnknownTopicOrPartition", err)
		}
	})
	t.Run("list", func(t *testing.T) {
		names, err := a.ListTopics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(names) != 1 || names[0] != "orders" {
			t.Fatalf("topics %v, want [orders]", names)
		}
	})
	t.Run("unknown", func(t *testing.T) {
		if _, err := a.DescribeTopic(ctx, "missing"); !errors.Is(err, protocol.ErrUnknownTopicOrPartition) {
			t.Errorf("describe: err = %v", err)
		}
		if err := a.DeleteTopic(ctx, "missing"); !errors.Is(err, protocol.ErrUnknownTopicOrPartition) {
			t.Errorf("delete: err = %v", err)
		}
		if _, err := a.ListOffsets(ctx, "missing", 0, Latest); !errors.Is(err, protocol.ErrUnknownTopicOrPartition) {
			t.Errorf("list offsets: err = %v", err)
		}
	})
	t.Run("delete", func(t *testing.T) {
		if err := a.DeleteTopic(ctx, "orders"); err != nil {
			t.Fatal(err)
		}
		if _, err := a.DescribeTopic(ctx, "orders"); !errors.Is(err, protocol.ErrUnknownTopicOrPartition) {
			t.Fatalf("describe after delete: err = %v", err)
		}
		// The name can be used again.
		if err := a.CreateTopic(ctx, "orders", 1, 1, nil); err != nil {
			t.Fatal(err)
		}
	})
}

func TestAdminListOffsets(t *testing.T) {
	addr := startBroker(t)
	createTopic(t, addr, "lo", 1, nil)
	ctx := testContext(t, 30*time.Second)
	p := newProducer(t, addr)
	base := time.UnixMilli(1_700_000_000_000)
	var recs []*Record
	for i := range 10 {
		recs = append(recs, &Record{Topic: "lo", Value: []byte{byte(i)}, Timestamp: base.Add(time.Duration(i) * time.Second)})
	}
	if err := p.ProduceSync(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	a := newAdmin(t, addr)
	for _, tc := range []struct {
		spec OffsetSpec
		want int64
	}{
		{Earliest, 0},
		{Latest, 10},
		{Timestamp(base), 0},
		{Timestamp(base.Add(3500 * time.Millisecond)), 4},
		{Timestamp(base.Add(time.Hour)), 10},
	} {
		got, err := a.ListOffsets(ctx, "lo", 0, tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("%v: offset %d, want %d", tc.spec, got, tc.want)
		}
	}
	d, err := a.DescribeTopic(ctx, "lo")
	if err != nil {
		t.Fatal(err)
	}
	if hw := d.Partitions[0].HighWatermark; hw != 10 {
		t.Errorf("high watermark %d, want 10", hw)
	}
}

// TestAdminFollowsController: admin requests go to the controller the
// metadata names; a NotController answer makes the admin look again.
func TestAdminFollowsController(t *testing.T) {
	a, b := startFake(t, 1), startFake(t, 2)
	a.addPeer(b)
	b.addPeer(a)
	b.setController(1) // the controller moves from a to b
	a.setController(2)
	create := func(name string, code protocol.ErrorCode) fakeReply {
		return fakeReply{resp: &protocol.CreateTopicsResponse{Topics: []protocol.CreateTopicsResponseTopic{{Name: name, ErrorCode: code}}}}
	}
	a.setHandler(func(req protocol.Request) fakeReply {
		if r, ok := req.(*protocol.CreateTopicsRequest); ok {
			b.setController(2) // b has taken over by now
			return create(r.Topics[0].Name, protocol.CodeNotController)
		}
		return fakeReply{pass: true}
	})
	b.setHandler(func(req protocol.Request) fakeReply {
		if r, ok := req.(*protocol.CreateTopicsRequest); ok {
			return create(r.Topics[0].Name, protocol.CodeNone)
		}
		return fakeReply{pass: true}
	})
	adm := newAdmin(t, b.addr, RetryBackoff(time.Millisecond, time.Millisecond))
	if err := adm.CreateTopic(testContext(t, 10*time.Second), "t", 1, 1, nil); err != nil {
		t.Fatal(err)
	}
	if a.count(protocol.KeyCreateTopics) != 1 || b.count(protocol.KeyCreateTopics) != 1 {
		t.Fatalf("CreateTopics: %d to the old controller, %d to the new, want 1 and 1",
			a.count(protocol.KeyCreateTopics), b.count(protocol.KeyCreateTopics))
	}
}

// TestAdminWaitsForTheBrokersTimeoutAnswer: the broker answers a
// CreateTopics when its timeout_ms passes (a large topic whose leaders are
// still electing is created all the same). The client must wait for that
// answer rather than give up at the same moment and retry into
// TopicAlreadyExists.
func TestAdminWaitsForTheBrokersTimeoutAnswer(t *testing.T) {
	fb := startFake(t, 1)
	fb.setHandler(func(req protocol.Request) fakeReply {
		if r, ok := req.(*protocol.CreateTopicsRequest); ok {
			time.Sleep(time.Duration(r.TimeoutMs) * time.Millisecond) // the broker's own wait
			return fakeReply{resp: &protocol.CreateTopicsResponse{Topics: []protocol.CreateTopicsResponseTopic{{Name: r.Topics[0].Name}}}}
		}
		return fakeReply{pass: true}
	})
	adm := newAdmin(t, fb.addr, RequestTimeout(300*time.Millisecond), RetryBackoff(time.Millisecond, time.Millisecond))
	if err := adm.CreateTopic(testContext(t, 10*time.Second), "big", 1000, 3, nil); err != nil {
		t.Fatal(err)
	}
	if got := fb.count(protocol.KeyCreateTopics); got != 1 {
		t.Fatalf("%d CreateTopics requests, want 1", got)
	}
}

func TestDescribeCluster(t *testing.T) {
	addr := startBroker(t)
	a, err := NewAdmin(SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	nodes, err := a.DescribeCluster(t.Context(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 1 || nodes[0].ID != 1 || nodes[0].Address != addr || !nodes[0].Controller || !nodes[0].Alive {
		t.Fatalf("nodes %+v", nodes)
	}
}
