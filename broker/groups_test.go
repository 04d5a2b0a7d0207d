package broker

import (
	"testing"

	"weir/protocol"
)

// beat sends one heartbeat and fails the test on an error code.
func beat(t *testing.T, c *rawClient, req *protocol.ConsumerGroupHeartbeatRequest) *protocol.ConsumerGroupHeartbeatResponse {
	t.Helper()
	resp := c.call(req).(*protocol.ConsumerGroupHeartbeatResponse)
	if resp.ErrorCode != protocol.CodeNone {
		t.Fatalf("heartbeat %+v: %v %v", req, resp.ErrorCode, resp.ErrorMessage)
	}
	return resp
}

func owned(resp *protocol.ConsumerGroupHeartbeatResponse) []protocol.ConsumerGroupHeartbeatRequestTopic {
	out := []protocol.ConsumerGroupHeartbeatRequestTopic{}
	for _, t := range resp.Assignment {
		out = append(out, protocol.ConsumerGroupHeartbeatRequestTopic(t))
	}
	return out
}

func countPartitions(a []protocol.ConsumerGroupHeartbeatResponseTopic) int {
	n := 0
	for _, t := range a {
		n += len(t.Partitions)
	}
	return n
}

func TestGroupAPIsOverTCP(t *testing.T) {
	_, addr := startBroker(t, nil)
	c := dial(t, addr)
	createTopic(t, c, "orders", 2)
	if r := c.call(produceReq("orders", 0, testBatch(t, 10, "a"))).(*protocol.ProduceResponse); r.Topics[0].Partitions[0].ErrorCode != protocol.CodeNone {
		t.Fatalf("produce: %+v", r)
	}

	a := beat(t, c, &protocol.ConsumerGroupHeartbeatRequest{GroupID: "g", SessionTimeoutMs: 5000,
		SubscribedTopicNames: []string{"orders"}})
	if a.MemberID == "" || countPartitions(a.Assignment) != 2 || a.HeartbeatIntervalMs <= 0 {
		t.Fatalf("join: %+v", a)
	}
	b := beat(t, c, &protocol.ConsumerGroupHeartbeatRequest{GroupID: "g", SubscribedTopicNames: []string{"orders"}})
	a = beat(t, c, &protocol.ConsumerGroupHeartbeatRequest{GroupID: "g", MemberID: a.MemberID, MemberEpoch: a.MemberEpoch,
		Owned: owned(a)})
	if countPartitions(a.Assignment) != 1 {
		t.Fatalf("a after b joined: %+v", a.Assignment)
	}
	a = beat(t, c, &protocol.ConsumerGroupHeartbeatRequest{GroupID: "g", MemberID: a.MemberID, MemberEpoch: a.MemberEpoch,
		Owned: owned(a)})
	b = beat(t, c, &protocol.ConsumerGroupHeartbeatRequest{GroupID: "g", MemberID: b.MemberID, MemberEpoch: b.MemberEpoch,
		Owned: owned(b)})
	if countPartitions(b.Assignment) != 1 {
		t.Fatalf("b: %+v", b.Assignment)
	}
	pa, pb := a.Assignment[0].Partitions[0], b.Assignment[0].Partitions[0]

	commit := func(member string, epoch int32, p int32, offset int64) protocol.ErrorCode {
		r := c.call(&protocol.OffsetCommitRequest{GroupID: "g", MemberID: member, MemberEpoch: epoch,
			Topics: []protocol.OffsetCommitRequestTopic{{Name: "orders", Partitions: []protocol.OffsetCommitRequestPartition{
				{Partition: p, CommittedOffset: offset}}}}}).(*protocol.OffsetCommitResponse)
		return r.Topics[0].Partitions[0].ErrorCode
	}
	if code := commit(a.MemberID, a.MemberEpoch, pa, 4); code != protocol.CodeNone {
		t.Fatalf("commit: %v", code)
	}
	if code := commit(a.MemberID, a.MemberEpoch, pb, 4); code != protocol.CodeFencedMemberEpoch {
		t.Fatalf("commit of b's partition by a: %v", code)
	}
	if code := commit("ghost", 1, pa, 4); code != protocol.CodeUnknownMemberID {
		t.Fatalf("commit by an unknown member: %v", code)
	}
	if code := commit("", -1, pa, 0); code != protocol.CodeNonEmptyGroup {
		t.Fatalf("tool commit into a live group: %v", code)
	}

	// Fetch v1 fences members that do not own the partition.
	fetch := func(member string, epoch int32, p int32) protocol.ErrorCode {
		g := "g"
		r := c.call(&protocol.FetchRequest{Version: 1, MaxBytes: 1 << 20, GroupID: &g, MemberID: member, MemberEpoch: epoch,
			Topics: []protocol.FetchRequestTopic{{Name: "orders", Partitions: []protocol.FetchRequestPartition{
				{Partition: p, PartitionMaxBytes: 1 << 20}}}}}).(*protocol.FetchResponse)
		return r.Topics[0].Partitions[0].ErrorCode
	}
	if code := fetch(a.MemberID, a.MemberEpoch, pa); code != protocol.CodeNone {
		t.Fatalf("owner's fetch: %v", code)
	}
	if code := fetch(a.MemberID, a.MemberEpoch, pb); code != protocol.CodeFencedMemberEpoch {
		t.Fatalf("fetch of another's partition: %v", code)
	}
	if code := fetch("ghost", 3, pa); code != protocol.CodeUnknownMemberID {
		t.Fatalf("fetch by an unknown member: %v", code)
	}

	of := c.call(&protocol.OffsetFetchRequest{GroupID: "g"}).(*protocol.OffsetFetchResponse)
	if of.ErrorCode != protocol.CodeNone || len(of.Topics) != 1 || of.Topics[0].Partitions[0].CommittedOffset != 4 {
		t.Fatalf("offset fetch: %+v", of)
	}
	of = c.call(&protocol.OffsetFetchRequest{GroupID: "g", Topics: []protocol.OffsetFetchRequestTopic{
		{Name: "orders", Partitions: []int32{pb, 9}}}}).(*protocol.OffsetFetchResponse)
	if ps := of.Topics[0].Partitions; ps[0].CommittedOffset != -1 || ps[1].ErrorCode != protocol.CodeUnknownTopicOrPartition {
		t.Fatalf("offset fetch of uncommitted and unknown: %+v", ps)
	}

	lg := c.call(&protocol.ListGroupsRequest{}).(*protocol.ListGroupsResponse)
	if len(lg.Groups) != 1 || lg.Groups[0].GroupID != "g" || lg.Groups[0].State != "Stable" || lg.Groups[0].Members != 2 {
		t.Fatalf("list: %+v", lg)
	}
	dg := c.call(&protocol.DescribeGroupsRequest{GroupIDs: []string{"g", "nope", ""}}).(*protocol.DescribeGroupsResponse)
	if dg.Groups[1].ErrorCode != protocol.CodeGroupIDNotFound || dg.Groups[2].ErrorCode != protocol.CodeInvalidGroupID {
		t.Fatalf("describe of missing and invalid: %+v", dg.Groups[1:])
	}
	g := dg.Groups[0]
	if g.ErrorCode != protocol.CodeNone || len(g.Members) != 2 || g.Assignor != "uniform" || len(g.Offsets) != 1 {
		t.Fatalf("describe: %+v", g)
	}
	for _, o := range g.Offsets[0].Partitions {
		wantLag := int64(0) // partition 1 is empty
		switch {
		case o.Partition == 0 && pa == 0:
			wantLag = 6 // 10 records, 4 committed
		case o.Partition == 0:
			wantLag = 10 // nothing committed
		}
		if o.HighWatermark < 0 || o.Lag != wantLag || o.MemberID == "" {
			t.Fatalf("describe offsets: %+v, want lag %d", o, wantLag)
		}
	}

	if r := c.call(&protocol.DeleteGroupsRequest{GroupIDs: []string{"g"}}).(*protocol.DeleteGroupsResponse); r.Results[0].ErrorCode != protocol.CodeNonEmptyGroup {
		t.Fatalf("delete of a live group: %+v", r)
	}
	for _, m := range []*protocol.ConsumerGroupHeartbeatResponse{a, b} {
		if r := beat(t, c, &protocol.ConsumerGroupHeartbeatRequest{GroupID: "g", MemberID: m.MemberID, MemberEpoch: -1}); r.MemberEpoch != -1 {
			t.Fatalf("leave: %+v", r)
		}
	}
	if code := commit("", -1, pb, 0); code != protocol.CodeNone {
		t.Fatalf("tool commit into an empty group: %v", code)
	}
	if r := c.call(&protocol.DeleteGroupsRequest{GroupIDs: []string{"g", "g"}}).(*protocol.DeleteGroupsResponse); r.Results[0].ErrorCode != protocol.CodeNone || r.Results[1].ErrorCode != protocol.CodeGroupIDNotFound {
		t.Fatalf("delete: %+v", r)
	}
	if r := c.call(&protocol.ConsumerGroupHeartbeatRequest{GroupID: "g", MemberID: "x", MemberEpoch: 5}).(*protocol.ConsumerGroupHeartbeatResponse); r.ErrorCode != protocol.CodeUnknownMemberID || r.MemberEpoch != -1 {
		t.Fatalf("heartbeat of an unknown member: %+v", r)
	}
	regex := "("
	if r := c.call(&protocol.ConsumerGroupHeartbeatRequest{GroupID: "g", SubscribedTopicRegex: &regex}).(*protocol.ConsumerGroupHeartbeatResponse); r.ErrorCode != protocol.CodeInvalidRequest || r.ErrorMessage == nil {
		t.Fatalf("bad regex: %+v", r)
	}
}
