package broker

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"weir/cluster"
	"weir/internal/syncbuf"
	"weir/protocol"
)

// controllerOf returns a function that waits for a controller among
// brokers and returns the client connected to it.
func controllerOf(t *testing.T, brokers []*Broker, clients []*rawClient) func() *rawClient {
	return func() *rawClient {
		var c *rawClient
		waitUntil(t, "a controller", func() bool {
			for i, b := range brokers {
				if b.controller.IsLeader() {
					c = clients[i]
					return true
				}
			}
			return false
		})
		return c
	}
}

// createReplicatedTopic creates a topic at the controller, asking again while the
// controller changes.
func createReplicatedTopic(t *testing.T, controller func() *rawClient, name string, partitions int32, replicas int16) {
	t.Helper()
	waitUntil(t, "the topic is created", func() bool {
		resp := controller().call(&protocol.CreateTopicsRequest{TimeoutMs: 5_000, Topics: []protocol.CreateTopicsRequestTopic{
			{Name: name, Partitions: partitions, ReplicationFactor: replicas}}}).(*protocol.CreateTopicsResponse)
		switch code := resp.Topics[0].ErrorCode; code {
		case protocol.CodeNone, protocol.CodeTopicAlreadyExists:
			return true
		case protocol.CodeNotController:
			return false
		default:
			t.Fatalf("CreateTopics: %v", code)
			return false
		}
	})
}

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
// are all there after), then decommissions the controller's node: its
// replicas move away and it leaves the metadata and the metadata group.
func TestReassignAndRemoveNode(t *testing.T) {
	brokers, addrs := startCluster(t, 3)
	clients := []*rawClient{dial(t, addrs[0]), dial(t, addrs[1]), dial(t, addrs[2])}
	controller := controllerOf(t, brokers, clients)
	createReplicatedTopic(t, controller, "r", 2, 2)
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
	// Idempotent batches: a retry after an ambiguous failure (leadership
	// moving to the preferred replica meanwhile) is not stored twice.
	var pid int64
	waitUntil(t, "a producer id", func() bool {
		r := controller().call(&protocol.InitProducerIDRequest{}).(*protocol.InitProducerIDResponse)
		pid = r.ProducerID
		return r.ErrorCode == protocol.CodeNone
	})
	seqs := map[int32]int32{}
	produce := func(p int32, tag string) {
		t.Helper()
		batch := producerBatch(t, 5, tag, pid, seqs[p])
		seqs[p] += 5
		waitUntil(t, "a produce is acknowledged", func() bool {
			r := leaderClient(p).call(produceReq("r", p, batch)).(*protocol.ProduceResponse)
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
	waitUntil(t, "the controller takes the reassignment", func() bool {
		rr := controller().call(&protocol.ReassignPartitionsRequest{Topic: "r", Partitions: []protocol.ReassignPartitionsRequestPartition{
			{Partition: 0, Replicas: target}}}).(*protocol.ReassignPartitionsResponse)
		if rr.ErrorCode != protocol.CodeNone && rr.ErrorCode != protocol.CodeNotController {
			t.Fatalf("ReassignPartitions: %v %v", rr.ErrorCode, rr.ErrorMessage)
		}
		return rr.ErrorCode == protocol.CodeNone
	})
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

	// Decommission the controller itself: it removes itself from the
	// metadata group last, and its successor forgets it.
	var victim cluster.NodeID
	waitUntil(t, "the controller takes its own removal", func() bool {
		for _, b := range brokers {
			if b.controller.IsLeader() {
				victim = b.cfg.NodeID
			}
		}
		if victim == 0 {
			return false
		}
		rn := clients[victim-1].call(&protocol.RemoveNodeRequest{NodeID: victim}).(*protocol.RemoveNodeResponse)
		if rn.ErrorCode != protocol.CodeNone && rn.ErrorCode != protocol.CodeNotController {
			t.Fatalf("RemoveNode: %v %v", rn.ErrorCode, rn.ErrorMessage)
		}
		return rn.ErrorCode == protocol.CodeNone
	})
	var others []*Broker
	for _, b := range brokers {
		if b.cfg.NodeID != victim {
			others = append(others, b)
		}
	}
	waitUntil(t, "the node is gone from the metadata and its partitions", func() bool {
		for _, b := range others {
			m := b.controller.Metadata()
			if _, ok := m.Nodes[victim]; ok || m.Removing != nil {
				return false
			}
			for _, r := range m.Topics["r"].Replicas {
				if slices.Contains(r, victim) || len(r) != 2 {
					return false
				}
			}
		}
		return true
	})
	waitUntil(t, "the node is out of the metadata group", func() bool {
		for _, b := range others {
			if b.controller.IsLeader() {
				f := b.controller.Raft().GetConfiguration()
				return f.Error() == nil && !slices.ContainsFunc(f.Configuration().Servers, func(s raft.Server) bool {
					return s.ID == cluster.ServerID(victim)
				})
			}
		}
		return false
	})
	if got := fetchAll(0); len(got) != 10 {
		t.Fatalf("partition 0 after removing node %d: %v", victim, got)
	}
	if got := fetchAll(1); len(got) != 5 || got[0] != "b-0" {
		t.Fatalf("partition 1 after removing node %d: %v", victim, got)
	}
}

// TestLostReplicaIsDemotedUntilCaughtUp restarts a follower whose replica
// of a partition lost its data: it must not come back as a voter with an
// empty log. Its leader demotes it to a non-voter, and makes it a voter
// again once it has copied the log back.
func TestLostReplicaIsDemotedUntilCaughtUp(t *testing.T) {
	t.Run("replica dir removed", func(t *testing.T) { testLostReplica(t, false) })
	// The whole data dir: the node must catch up with the metadata before
	// it opens replicas, or it may see the topic before its leader and
	// take the partition for a new one (and bootstrap it).
	t.Run("data dir removed", func(t *testing.T) { testLostReplica(t, true) })
}

func testLostReplica(t *testing.T, wipeDataDir bool) {
	var logs syncbuf.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the brokers' logs:\n%s", logs.String())
		}
	})
	brokers := make([]*Broker, 3)
	addrs := make([]string, 3)
	for i := range brokers {
		brokers[i], addrs[i] = startBroker(t, func(c *Config) {
			c.NodeID = cluster.NodeID(i + 1)
			c.Logger = logger
			if i > 0 {
				c.Join = []string{addrs[0]}
			}
		})
	}
	waitUntil(t, "three nodes", func() bool { return len(brokers[0].controller.Metadata().Nodes) == 3 })
	ctrl := controllerOf(t, brokers, []*rawClient{dial(t, addrs[0]), dial(t, addrs[1]), dial(t, addrs[2])})
	if wipeDataDir {
		// Metadata changes before the topic, more than the controller
		// sends a follower at once (offset commits of a group without
		// members), so that the node that lost its data applies the topic
		// and its leader in separate batches.
		createReplicatedTopic(t, ctrl, "fill", 1, 1)
		for i, tries := 0, 0; i < 300; tries++ {
			r := ctrl().call(&protocol.OffsetCommitRequest{GroupID: "fill", MemberEpoch: -1, Topics: []protocol.OffsetCommitRequestTopic{{
				Name: "fill", Partitions: []protocol.OffsetCommitRequestPartition{{Partition: 0, CommittedOffset: int64(i)}}}}}).(*protocol.OffsetCommitResponse)
			switch code := r.Topics[0].Partitions[0].ErrorCode; {
			case code == protocol.CodeNone:
				i++
			case !code.Retriable() || tries > 1000:
				t.Fatalf("offset commit %d (try %d): %v", i, tries, code)
			}
		}
	}
	createReplicatedTopic(t, ctrl, "l", 1, 3)
	leader := func() *Broker {
		for _, b := range brokers {
			if r := b.replicas.get("l", 0); r != nil && r.partition.IsLeader() {
				return b
			}
		}
		return nil
	}
	for i := range 3 {
		// Leadership may move (to the preferred replica): ask whoever leads.
		waitUntil(t, "a produce is acknowledged", func() bool {
			l := leader()
			if l == nil {
				return false
			}
			r := dial(t, l.clientAddr.Load().(string)).call(produceReq("l", 0, testBatch(t, 5, fmt.Sprint(i)))).(*protocol.ProduceResponse)
			return r.Topics[0].Partitions[0].ErrorCode == protocol.CodeNone
		})
	}
	// The preferred replica leads once balancing is done.
	preferred := brokers[0].controller.Metadata().Topics["l"].Replicas[0][0]
	waitUntil(t, "the preferred replica leads", func() bool {
		l := leader()
		return l != nil && l.cfg.NodeID == preferred
	})
	// A replica is taken for lost only if the metadata says its partition
	// has had a leader, which the leader reports after it wins: a node
	// wiped before the report is in the metadata takes the partition for
	// a new one (a window of a report's round trip, left open).
	waitUntil(t, "the metadata names the leader", func() bool {
		for _, b := range brokers {
			if tp := b.controller.Metadata().Topics["l"]; tp == nil || tp.Leader(0).Leader != preferred {
				return false
			}
		}
		return true
	})
	l := leader()
	var f int
	for i, b := range brokers {
		if b != l && i > 0 { // not node 1, which the others join through
			f = i
		}
	}
	old := brokers[f]
	topicID := old.controller.Metadata().Topics["l"].ID
	dataDir, peerAddr := old.cfg.DataDir, old.mux.Addr().String()
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	wipe := old.replicaDir(replicaKey{"l", 0}, topicID)
	if wipeDataDir {
		wipe = dataDir
	}
	if err := os.RemoveAll(wipe); err != nil {
		t.Fatal(err)
	}
	brokers[f], _ = startBroker(t, func(c *Config) {
		c.NodeID, c.DataDir, c.PeerListen, c.Logger = cluster.NodeID(f+1), dataDir, peerAddr, logger
		c.Join = []string{addrs[0]}
	})
	back := brokers[f]
	waitUntil(t, "the lost replica is a caught-up voter again", func() bool {
		r := back.replicas.get("l", 0)
		if r == nil || r.lost.Load() {
			return false
		}
		cfg := l.replicas.get("l", 0).partition.Raft().GetConfiguration()
		if cfg.Error() != nil {
			return false
		}
		voter := slices.ContainsFunc(cfg.Configuration().Servers, func(s raft.Server) bool {
			return s.ID == cluster.ServerID(cluster.NodeID(f+1)) && s.Suffrage == raft.Voter
		})
		return voter && r.partition.Raft().LastIndex() >= l.replicas.get("l", 0).partition.Raft().CommitIndex()
	})
	out := logs.String()
	for _, want := range []string{"demoting a replica that lost its data", "caught up: making it a voter again"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in the logs:\n%s", want, out)
		}
	}
}
