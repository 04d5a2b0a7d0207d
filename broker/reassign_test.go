package broker

import (
	"net"
	"os"
	"slices"
	"testing"

	"github.com/hashicorp/raft"

	"weir/cluster"
	"weir/protocol"
)

// TestBootstrapExpect starts three nodes with the same seeds (all three)
// and BootstrapExpect 3: they form one cluster, all three voters of the
// metadata group. A fourth node with the same settings joins that cluster
// instead of starting one.
func TestBootstrapExpect(t *testing.T) {
	var lns []net.Listener
	var addrs []string
	for range 4 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns, addrs = append(lns, ln), append(addrs, ln.Addr().String())
	}
	seeds := addrs[:3]
	start := func(i int) *Broker {
		return startBrokerOn(t, lns[i], func(c *Config) {
			c.NodeID = cluster.NodeID(i + 1)
			c.Join = seeds
			c.BootstrapExpect = 3
		})
	}
	// The lowest id last: the others must wait for it.
	brokers := []*Broker{start(2), start(1), start(0)}
	oneCluster := func(n int) func() bool {
		return func() bool {
			leader := brokers[0].controller.LeaderID()
			for _, b := range brokers {
				if b.controller.LeaderID() != leader || leader == 0 || len(b.controller.Metadata().Nodes) != n {
					return false
				}
			}
			return true
		}
	}
	waitUntil(t, "one cluster of three", oneCluster(3))
	f := brokers[0].controller.Raft().GetConfiguration()
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	var voters []raft.ServerID
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			voters = append(voters, s.ID)
		}
	}
	slices.Sort(voters)
	if !slices.Equal(voters, []raft.ServerID{"1", "2", "3"}) {
		t.Fatalf("metadata voters = %v, want 1 2 3", voters)
	}
	brokers = append(brokers, start(3))
	waitUntil(t, "the fourth node joined the same cluster", oneCluster(4))
}

// TestReassignAndRemoveNode moves a partition's replica to another node
// (the new one catches up before the old one is dropped, and the records
// are all there after), then decommissions a node: its replicas move away
// and it leaves the metadata and the metadata group.
func TestReassignAndRemoveNode(t *testing.T) {
	brokers, addrs := startCluster(t, 3)
	clients := []*rawClient{dial(t, addrs[0]), dial(t, addrs[1]), dial(t, addrs[2])}
	controller := func() *rawClient {
		for i, b := range brokers {
			if b.controller.IsLeader() {
				return clients[i]
			}
		}
		return nil
	}
	resp := clients[0].call(&protocol.CreateTopicsRequest{TimeoutMs: 20_000, Topics: []protocol.CreateTopicsRequestTopic{
		{Name: "r", Partitions: 2, ReplicationFactor: 2}}}).(*protocol.CreateTopicsResponse)
	if code := resp.Topics[0].ErrorCode; code != protocol.CodeNone {
		t.Fatalf("CreateTopics: %v", code)
	}
	topic := func() *cluster.Topic { return brokers[0].controller.Metadata().Topics["r"] }
	leaderClient := func(p int32) *rawClient {
		var c *rawClient
		waitUntil(t, "a leader", func() bool {
			for i, b := range brokers {
				if r := b.replicas.get("r", p); r != nil && r.partition.IsLeader() {
					c = clients[i]
					return true
				}
			}
			return false
		})
		return c
	}
	produce := func(p int32, tag string) {
		t.Helper()
		waitUntil(t, "a produce is acknowledged", func() bool {
			r := leaderClient(p).call(produceReq("r", p, testBatch(t, 5, tag))).(*protocol.ProduceResponse)
			return r.Topics[0].Partitions[0].ErrorCode == protocol.CodeNone
		})
	}
	fetchAll := func(p int32) []string {
		t.Helper()
		var got []string
		waitUntil(t, "a fetch from the leader", func() bool {
			f := leaderClient(p).call(&protocol.FetchRequest{MaxBytes: 1 << 20, Topics: []protocol.FetchRequestTopic{
				{Name: "r", Partitions: []protocol.FetchRequestPartition{{Partition: p, PartitionMaxBytes: 1 << 20}}}}}).(*protocol.FetchResponse)
			fp := f.Topics[0].Partitions[0]
			if fp.ErrorCode != protocol.CodeNone {
				return false
			}
			got = fetchedValues(t, fp.Records, 0)
			return true
		})
		return got
	}
	produce(0, "a")
	produce(1, "b")

	// Move partition 0 off its preferred leader to the node without it.
	old := topic().Replicas[0]
	var spare cluster.NodeID
	for id := range cluster.NodeID(3) {
		if !slices.Contains(old, id+1) {
			spare = id + 1
		}
	}
	target := []int32{spare, old[1]}
	rr := controller().call(&protocol.ReassignPartitionsRequest{Topic: "r", Partitions: []protocol.ReassignPartitionsRequestPartition{
		{Partition: 0, Replicas: target}}}).(*protocol.ReassignPartitionsResponse)
	if rr.ErrorCode != protocol.CodeNone {
		t.Fatalf("ReassignPartitions: %v %v", rr.ErrorCode, rr.ErrorMessage)
	}
	waitUntil(t, "the move is complete on every node", func() bool {
		for _, b := range brokers {
			tp := b.controller.Metadata().Topics["r"]
			if !slices.Equal(tp.Replicas[0], target) || tp.Target(0) != nil {
				return false
			}
		}
		return true
	})
	dropped := brokers[old[0]-1]
	waitUntil(t, "the dropped replica's files are gone", func() bool {
		_, err := os.Stat(dropped.replicaDir(replicaKey{"r", 0}, topic().ID))
		return dropped.replicas.get("r", 0) == nil && os.IsNotExist(err)
	})
	produce(0, "c")
	if got := fetchAll(0); len(got) != 10 || got[0] != "a-0" || got[9] != "c-4" {
		t.Fatalf("partition 0 after the move: %v", got)
	}

	// Decommission node 3.
	rn := controller().call(&protocol.RemoveNodeRequest{NodeID: 3}).(*protocol.RemoveNodeResponse)
	if rn.ErrorCode != protocol.CodeNone {
		t.Fatalf("RemoveNode: %v %v", rn.ErrorCode, rn.ErrorMessage)
	}
	waitUntil(t, "node 3 is gone from the metadata and its partitions", func() bool {
		for _, b := range brokers[:2] {
			m := b.controller.Metadata()
			if _, ok := m.Nodes[3]; ok || m.Removing != nil {
				return false
			}
			for _, r := range m.Topics["r"].Replicas {
				if slices.Contains(r, 3) || len(r) != 2 {
					return false
				}
			}
		}
		return true
	})
	waitUntil(t, "node 3 is out of the metadata group", func() bool {
		c := controller()
		if c == nil {
			return false
		}
		for _, b := range brokers[:2] {
			if b.controller.IsLeader() {
				f := b.controller.Raft().GetConfiguration()
				return f.Error() == nil && !slices.ContainsFunc(f.Configuration().Servers, func(s raft.Server) bool { return s.ID == "3" })
			}
		}
		return false
	})
	if got := fetchAll(0); len(got) != 10 {
		t.Fatalf("partition 0 after removing node 3: %v", got)
	}
	if got := fetchAll(1); len(got) != 5 || got[0] != "b-0" {
		t.Fatalf("partition 1 after removing node 3: %v", got)
	}
}
