package cluster

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestAddNode grows the metadata group from one node to three over Raft's
// in-memory transport: the new nodes receive the metadata made before they
// joined, and a second join is a no-op.
func TestAddNode(t *testing.T) {
	addrs := []raft.ServerAddress{"127.0.0.1:9101", "127.0.0.1:9102", "127.0.0.1:9103"}
	var trans []*raft.InmemTransport
	for _, a := range addrs {
		_, tr := raft.NewInmemTransport(a)
		trans = append(trans, tr)
	}
	for _, a := range trans {
		for _, b := range trans {
			if a != b {
				a.Connect(b.LocalAddr(), b)
			}
		}
	}
	open := func(i int, peers []raft.Server) *Controller {
		c, err := OpenController(ControllerConfig{NodeID: NodeID(i + 1), Dir: t.TempDir(), Transport: trans[i], Peers: peers,
			HeartbeatTimeout: 50 * time.Millisecond, ElectionTimeout: 50 * time.Millisecond, LeaderLeaseTimeout: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	first := open(0, []raft.Server{{ID: "1", Address: addrs[0]}})
	ctx := t.Context()
	waitFor(t, "first node leads", first.IsLeader)
	if err := first.RegisterNode(ctx, Node{ID: 1, ClientAddr: "127.0.0.1:9201", PeerAddr: string(addrs[0])}); err != nil {
		t.Fatal(err)
	}
	if err := first.CreateTopic(ctx, "orders", 3, 1, nil); err != nil {
		t.Fatal(err)
	}
	others := []*Controller{open(1, nil), open(2, nil)}
	for i, c := range others {
		n := Node{ID: NodeID(i + 2), ClientAddr: fmt.Sprintf("127.0.0.1:%d", 9202+i), PeerAddr: string(addrs[i+1])}
		if err := c.AddNode(ctx, n); !errors.Is(err, ErrNotController) {
			t.Fatalf("AddNode on a follower: %v", err)
		}
		for range 2 { // the second time is a no-op
			if err := first.AddNode(ctx, n); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "the new node has the topic", func() bool { return c.Metadata().Topics["orders"] != nil })
	}
	if err := first.AddNode(ctx, Node{ID: 0, ClientAddr: "x:1", PeerAddr: "y:2"}); !errors.Is(err, ErrInvalidNode) {
		t.Fatalf("node id 0: %v", err)
	}
	if err := first.AddNode(ctx, Node{ID: 9, ClientAddr: "nonsense", PeerAddr: "y:2"}); !errors.Is(err, ErrInvalidNode) {
		t.Fatalf("bad address: %v", err)
	}
	cfg := first.Raft().GetConfiguration()
	if err := cfg.Error(); err != nil || len(cfg.Configuration().Servers) != 3 {
		t.Fatalf("configuration %+v %v", cfg.Configuration(), err)
	}
	// The group survives the loss of its first leader.
	first.Close()
	waitFor(t, "a new controller", func() bool { return others[0].IsLeader() || others[1].IsLeader() })
	leader := others[0]
	if !leader.IsLeader() {
		leader = others[1]
	}
	if err := leader.CreateTopic(ctx, "after", 1, 1, nil); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
