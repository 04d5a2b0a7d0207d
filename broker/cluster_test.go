package broker

import (
	"testing"
	"time"

	"weir/cluster"
	"weir/protocol"
)

// startCluster starts n brokers in this process: the first alone, the others
// joining it through its client address.
func startCluster(t *testing.T, n int) ([]*Broker, []string) {
	t.Helper()
	brokers := make([]*Broker, n)
	addrs := make([]string, n)
	for i := range n {
		brokers[i], addrs[i] = startBroker(t, func(c *Config) {
			c.NodeID = cluster.NodeID(i + 1)
			if i > 0 {
				c.Join = []string{addrs[0]}
			}
		})
	}
	waitUntil(t, "every node knows every node", func() bool {
		for _, b := range brokers {
			if len(b.controller.Metadata().Nodes) != n {
				return false
			}
		}
		return true
	})
	return brokers, addrs
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestThreeNodeCluster runs three brokers over their peer listeners: a
// topic with three replicas per partition takes records on each leader,
// every broker names every leader, and after the leader of a partition is
// closed a new one is elected among the others, with the records.
func TestThreeNodeCluster(t *testing.T) {
	brokers, addrs := startCluster(t, 3)
	clients := []*rawClient{dial(t, addrs[0]), dial(t, addrs[1]), dial(t, addrs[2])}
	c := clients[0]
	createReplicatedTopic(t, controllerOf(t, brokers, clients), "orders", 3, 3)
	leaderOf := func(via *rawClient, p int32) int32 {
		md := via.call(&protocol.MetadataRequest{Topics: []string{"orders"}}).(*protocol.MetadataResponse)
		return md.Topics[0].Partitions[p].LeaderID
	}
	// Every broker, hosting the partition or not, names the same leader.
	for p := range int32(3) {
		waitUntil(t, "all brokers agree on the leader", func() bool {
			first := leaderOf(c, p)
			for _, other := range clients[1:] {
				if leaderOf(other, p) != first || first <= 0 {
					return false
				}
			}
			return true
		})
	}
	produce := func(via *rawClient, p int32, tag string) {
		t.Helper()
		waitUntil(t, "a produce is acknowledged", func() bool {
			leader := leaderOf(via, p)
			if leader <= 0 {
				return false
			}
			r := clients[leader-1].call(produceReq("orders", p, testBatch(t, 5, tag))).(*protocol.ProduceResponse)
			return r.Topics[0].Partitions[0].ErrorCode == protocol.CodeNone
		})
	}
	produce(c, 0, "before")
	old := leaderOf(c, 0)
	if err := brokers[old-1].Close(); err != nil {
		t.Fatal(err)
	}
	survivor := clients[old%3]
	waitUntil(t, "a new leader for partition 0", func() bool {
		l := leaderOf(survivor, 0)
		return l > 0 && l != old
	})
	produce(survivor, 0, "after")
	// Leadership may move on meanwhile (back to the preferred replica):
	// fetch from whoever leads.
	var fp protocol.FetchResponsePartition
	waitUntil(t, "a fetch from the leader", func() bool {
		leader := leaderOf(survivor, 0)
		if leader <= 0 || leader == old {
			return false
		}
		f := clients[leader-1].call(&protocol.FetchRequest{MaxBytes: 1 << 20, Topics: []protocol.FetchRequestTopic{
			{Name: "orders", Partitions: []protocol.FetchRequestPartition{{Partition: 0, PartitionMaxBytes: 1 << 20}}}}}).(*protocol.FetchResponse)
		fp = f.Topics[0].Partitions[0]
		return fp.ErrorCode == protocol.CodeNone
	})
	got := fetchedValues(t, fp.Records, 0)
	want := []string{"before-0", "before-1", "before-2", "before-3", "before-4", "after-0", "after-1", "after-2", "after-3", "after-4"}
	if len(got) != len(want) {
		t.Fatalf("records after failover: %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("records after failover: %v", got)
		}
	}
}
