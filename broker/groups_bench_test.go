package broker

import (
	"fmt"
	"sync"
	"testing"

	"weir/protocol"
)

// BenchmarkOffsetCommit measures the offset commits the coordinator
// sustains: committers members of one group each commit their own
// partition, one synchronous OffsetCommit after another, over their own
// connections, as consumers committing after every poll would. Reports
// commits/s; every commit is durable (the metadata group fsyncs).
func BenchmarkOffsetCommit(b *testing.B) {
	for _, committers := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("committers=%d", committers), func(b *testing.B) {
			benchmarkOffsetCommit(b, committers)
		})
	}
}

func benchmarkOffsetCommit(b *testing.B, committers int) {
	_, addr := startBroker(b, nil)
	admin := dial(b, addr)
	createTopic(b, admin, "commits", int32(committers))
	// One member owning every partition: its commits are all valid.
	m := admin.call(&protocol.ConsumerGroupHeartbeatRequest{GroupID: "bench", SessionTimeoutMs: 60000,
		SubscribedTopicNames: []string{"commits"}}).(*protocol.ConsumerGroupHeartbeatResponse)
	if m.ErrorCode != protocol.CodeNone {
		b.Fatalf("join: %v", m.ErrorCode)
	}
	conns := make([]*rawClient, committers)
	for i := range conns {
		conns[i] = dial(b, addr)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	per := b.N/committers + 1
	for i, c := range conns {
		wg.Go(func() {
			for n := range per {
				r := c.call(&protocol.OffsetCommitRequest{GroupID: "bench", MemberID: m.MemberID, MemberEpoch: m.MemberEpoch,
					Topics: []protocol.OffsetCommitRequestTopic{{Name: "commits", Partitions: []protocol.OffsetCommitRequestPartition{
						{Partition: int32(i), CommittedOffset: int64(n)}}}}}).(*protocol.OffsetCommitResponse)
				if code := r.Topics[0].Partitions[0].ErrorCode; code != protocol.CodeNone {
					b.Errorf("commit: %v", code)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(per*committers)/b.Elapsed().Seconds(), "commits/s")
}
