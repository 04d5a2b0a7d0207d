package partition

import "testing"

// TestTCPLeaderKill runs the leader-kill scenario of TestClusterLeaderKill
// over Raft's TCP transport on 127.0.0.1: three voters on free ports; the
// leader's partition and transport are closed, the others elect a new leader
// and go on, and the old node comes back on its directory and on the exact
// address it had, catches up, and holds the same log.
func TestTCPLeaderKill(t *testing.T) {
	c := newCluster(t, true, smallSegments)
	for _, n := range c.nodes {
		t.Logf("replica %s at %s", n.id, n.addr)
	}
	pr, _ := c.leaderKill()
	// The restarted replica takes part in new commits.
	for i := range 10 {
		pr.produce(1 + i%2)
	}
	c.requireSameLogs()
	c.checkAcked(pr.acked)
}
