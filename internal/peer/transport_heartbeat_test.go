package peer

import (
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// slowRaft: Raft heartbeats every 100 to 200 ms, followers time out after
// 1 to 2 s.
func slowRaft(conf *raft.Config) {
	conf.HeartbeatTimeout = time.Second
	conf.ElectionTimeout = time.Second
	conf.LeaderLeaseTimeout = 500 * time.Millisecond
}

// With a HeartbeatPeriod, a leader's heartbeats to a follower go at most
// once per period however often Raft asks, and they still keep the
// followers from starting elections.
func TestHeartbeatsGoOncePerPeriod(t *testing.T) {
	const period = 300 * time.Millisecond
	c := startRaftCluster(t, 3, 1, Options{}, TransportConfig{HeartbeatPeriod: period}, slowRaft)
	c.waitLeaders(t, 10*time.Second)
	g := c.groups[0]
	leader := g.leader()
	node := slices.Index(g.rafts, leader)
	term := leader.CurrentTerm()

	before, start := c.muxes[node].Stats().HeartbeatsSent, time.Now()
	time.Sleep(3 * time.Second) // a window to count in, not a wait for a condition
	sent, window := c.muxes[node].Stats().HeartbeatsSent-before, time.Since(start)

	// Per follower, at most one heartbeat per period plus the one that
	// started the window; Raft alone would send 15 to 30 per follower in it.
	if most := 2 * (uint64(window/period) + 1); sent > most {
		t.Errorf("%d heartbeats sent in %v, want at most %d (2 followers, one per %v)", sent, window, most, period)
	}
	if sent == 0 {
		t.Errorf("no heartbeats sent in %v", window)
	}
	if g.leader() != leader || leader.CurrentTerm() != term {
		t.Errorf("leadership changed during the window: heartbeats once per %v did not hold the followers", period)
	}
}

// A leader shutting down (or stepping down, as its followers time out
// here) does not wait out its heartbeats' period: the change of state ends
// the wait. With a minute's period, Raft's shutdown, which waits for its
// heartbeat goroutines, would otherwise take up to a minute.
func TestShutdownEndsHeartbeatWait(t *testing.T) {
	c := startRaftCluster(t, 3, 1, Options{}, TransportConfig{HeartbeatPeriod: time.Minute}, slowRaft)
	c.waitLeaders(t, 10*time.Second)
	g := c.groups[0]
	leader := g.leader()
	node := slices.Index(g.rafts, leader)
	waitFor(t, 10*time.Second, "the heartbeats to both followers waiting", func() bool {
		return c.muxes[node].Stats().HeartbeatsWaiting == 2
	})

	done := make(chan error, 1)
	go func() { done <- leader.Shutdown().Error() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("leader's shutdown still waiting after 20 s: its heartbeats waited out the period")
	}
}
