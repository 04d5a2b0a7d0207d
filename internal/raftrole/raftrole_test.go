package raftrole

import (
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// startGroup starts three in-memory Raft nodes with followerTimeout.
func startGroup(t *testing.T, followerTimeout time.Duration) []*raft.Raft {
	t.Helper()
	var (
		nodes   []*raft.Raft
		trans   []*raft.InmemTransport
		servers []raft.Server
	)
	for i := range 3 {
		_, tr := raft.NewInmemTransport(raft.ServerAddress(fmt.Sprint("n", i)))
		trans = append(trans, tr)
		servers = append(servers, raft.Server{ID: raft.ServerID(fmt.Sprint(i)), Address: tr.LocalAddr()})
	}
	for i, a := range trans {
		for _, b := range trans {
			a.Connect(b.LocalAddr(), b)
		}
		conf := raft.DefaultConfig()
		conf.LocalID = servers[i].ID
		conf.HeartbeatTimeout, conf.ElectionTimeout, conf.LeaderLeaseTimeout = followerTimeout, followerTimeout, followerTimeout/2
		conf.LogLevel = "ERROR"
		store := raft.NewInmemStore()
		r, err := raft.NewRaft(conf, &raft.MockFSM{}, store, store, raft.NewInmemSnapshotStore(), a)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Shutdown().Error() })
		if err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, r)
	}
	return nodes
}

// leader waits for one of nodes to lead, and returns it.
func leader(t *testing.T, nodes []*raft.Raft) *raft.Raft {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, r := range nodes {
			if r.State() == raft.Leader {
				return r
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("no leader within 10s")
	return nil
}

// checkRoles applies the role timeouts to every node and checks them.
func checkRoles(t *testing.T, nodes []*raft.Raft, lead *raft.Raft, followerTimeout time.Duration) {
	t.Helper()
	for i, r := range nodes {
		if err := Apply(r, followerTimeout, followerTimeout); err != nil {
			t.Fatal(err)
		}
		want := followerTimeout
		if r == lead {
			want = LeaderTimeout(followerTimeout)
		}
		if got := r.ReloadableConfig().HeartbeatTimeout; got != want {
			t.Errorf("node %d (%v): heartbeat timeout %v, want %v", i, r.State(), got, want)
		}
	}
}

func TestApplyFollowsTheRole(t *testing.T) {
	const timeout = 60 * time.Millisecond
	nodes := startGroup(t, timeout)
	old := leader(t, nodes)
	checkRoles(t, nodes, old, timeout)

	// Leadership moves: the old leader is a follower again.
	if err := old.LeadershipTransfer().Error(); err != nil {
		t.Fatal(err)
	}
	var next *raft.Raft
	for next == nil || next == old {
		next = leader(t, nodes)
	}
	checkRoles(t, nodes, next, timeout)

}
