package test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"weir/client"
	"weir/protocol"
)

// TestClusterSIGSTOP freezes (SIGSTOP) a node for longer than the election
// timeout while records are produced with acks all to every partition,
// twice: the leader of partition 0, then the controller. Production goes
// on for every partition through the other two nodes; after SIGCONT the
// node catches up. Every acknowledged record is then read once, at its
// offset, in order, and the three replicas' logs are equal.
func TestClusterSIGSTOP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := startFaultCluster(t, ctx, false)
	c.createTopic(ctx, faultTopic, faultPartitions, 3)
	g := startLoad(t, c.brokers, faultTopic, faultPartitions)
	g.waitProgress("records acknowledged on every partition", make([]int, faultPartitions), 20, 0, 30*time.Second)

	var probes []probeAt
	for round, what := range faultVictims {
		victim := c.pickVictim(ctx, round)
		t.Logf("round %d: freezing %s, %v, which leads partitions %v", round+1, what, victim, victim.ledBy(ctx, faultTopic))
		g.resetGaps()
		victim.signal(t, syscall.SIGSTOP)
		trace := c.traceFailover(ctx, faultTopic, faultPartitions, victim, fmt.Sprintf("freeze%d", round+1))
		frozen := true
		thaw := func() {
			if frozen {
				frozen = false
				// Not signal: this also runs deferred, after a failure.
				syscall.Kill(victim.srv.cmd.Process.Pid, syscall.SIGCONT)
			}
		}
		defer thaw()
		resumed := g.waitProgress("every partition acknowledging records with a node frozen",
			g.ackCounts(), 20, faultMinOutage, 30*time.Second)
		t.Logf("every partition acknowledged 20 records within %v of the freeze", resumed.Round(time.Millisecond))
		probes = append(probes, trace.report(t, g.gaps())...)

		want := c.highWatermarks(ctx, faultTopic, victim)
		thaw()
		took := c.waitCaughtUp(ctx, victim, faultTopic, want, 30*time.Second)
		t.Logf("%v caught up %v after SIGCONT", victim, took.Round(time.Millisecond))
		g.waitProgress("records acknowledged after SIGCONT", g.ackCounts(), 20, 0, 30*time.Second)
	}

	acked := g.stopLoad()
	got := c.readAll(ctx, faultTopic, faultPartitions)
	checkLog(t, got, acked, checkProbes(t, got, probes))
	c.waitAllCaughtUp(ctx, got)
	c.checkReplicas(faultTopic, faultPartitions)
}

// waitAllCaughtUp waits until every node's replicas have the high
// watermarks of what readAll read.
func (c *faultCluster) waitAllCaughtUp(ctx context.Context, got [][]*client.Record) {
	c.t.Helper()
	ends := map[int32]int64{}
	for p, recs := range got {
		ends[int32(p)] = int64(len(recs))
	}
	for _, n := range c.nodes {
		c.waitCaughtUp(ctx, n, faultTopic, ends, 30*time.Second)
	}
}

// TestClusterNetworkCut cuts a node off the other two (both directions;
// its clients still reach it) for a few seconds while records are produced
// with acks all, twice: the leader of partition 0, then the controller.
// Every partition keeps taking records through the majority. A record sent
// to the cut-off node itself for a partition it led is not acknowledged
// (it cannot be committed there), or if it is, it must be in the log at
// the end. After the heal the node catches up, and the end checks are
// those of TestClusterSIGSTOP.
func TestClusterNetworkCut(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := startFaultCluster(t, ctx, true)
	c.createTopic(ctx, faultTopic, faultPartitions, 3)
	g := startLoad(t, c.brokers, faultTopic, faultPartitions)
	g.waitProgress("records acknowledged on every partition", make([]int, faultPartitions), 20, 0, 30*time.Second)

	// cutProbes were sent to the cut-off node, leaderProbes to the new
	// leaders (see failoverTrace).
	var cutProbes, leaderProbes []probeAt
	for round, what := range faultVictims {
		victim := c.pickVictim(ctx, round)
		led := victim.ledBy(ctx, faultTopic)
		t.Logf("round %d: cutting off %s, %v, which leads partitions %v", round+1, what, victim, led)
		g.resetGaps()
		c.isolate(victim)
		trace := c.traceFailover(ctx, faultTopic, faultPartitions, victim, fmt.Sprintf("cut%d", round+1))
		healed := false
		heal := func() {
			if !healed {
				healed = true
				c.heal()
			}
		}
		defer heal()

		// A record for a partition the node led sent to it at once (it
		// may still believe it leads), and another once the others have
		// moved on.
		probes := make(chan probeAt, 2)
		var probing sync.WaitGroup
		probe := func(when string) {
			if len(led) == 0 {
				return
			}
			p := led[0]
			value := fmt.Sprintf("probe-%d-%s", round+1, when)
			probing.Add(1)
			go func() {
				defer probing.Done()
				probes <- probeAt{p, probeProduce(victim.client, faultTopic, p, value, 5*time.Second)}
			}()
		}
		probe("at-cut")
		resumed := g.waitProgress("every partition acknowledging records with a node cut off",
			g.ackCounts(), 20, faultMinOutage, 30*time.Second)
		t.Logf("every partition acknowledged 20 records within %v of the cut", resumed.Round(time.Millisecond))
		leaderProbes = append(leaderProbes, trace.report(t, g.gaps())...)
		probe("after-failover")
		probing.Wait() // bounded: each probe gives up 15 s after it was sent
		close(probes)
		for r := range probes {
			t.Logf("probe sent to the cut-off %v for partition %d: %v", victim, r.partition, r.probeResult)
			cutProbes = append(cutProbes, r)
		}
		for _, n := range c.nodes {
			t.Logf("%v proxy while cut: %+v", n, n.proxy.Stats())
		}

		want := c.highWatermarks(ctx, faultTopic, victim)
		// The cut held: the cut-off node has none of what the others took.
		rs, err := victim.replicas(ctx, faultTopic)
		if err != nil {
			t.Fatalf("%v: %v", victim, err)
		}
		for p, hw := range want {
			if rs[p].hw >= hw {
				t.Fatalf("partition %d: the cut-off %v is at %d, the others at %d: the cut did not hold", p, victim, rs[p].hw, hw)
			}
		}
		heal()
		took := c.waitCaughtUp(ctx, victim, faultTopic, want, 30*time.Second)
		t.Logf("%v caught up %v after the heal", victim, took.Round(time.Millisecond))
		g.waitProgress("records acknowledged after the heal", g.ackCounts(), 20, 0, 30*time.Second)
	}

	acked := g.stopLoad()
	got := c.readAll(ctx, faultTopic, faultPartitions)
	checkLog(t, got, acked, checkProbes(t, got, append(slices.Clone(cutProbes), leaderProbes...)))
	for _, r := range cutProbes {
		if r.err == nil && r.code == protocol.CodeNone {
			// Acknowledged by a node that could reach no other: it cannot
			// have been committed by a majority.
			t.Errorf("a cut-off node acknowledged %s for partition %d", r.probeResult, r.partition)
		}
	}
	c.waitAllCaughtUp(ctx, got)
	c.checkReplicas(faultTopic, faultPartitions)
}
