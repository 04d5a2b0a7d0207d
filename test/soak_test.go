//go:build soak

package test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"weir/client"
)

// TestSoak is the long randomized fault-injection run (make soak): a
// three-node cluster with a fault proxy in front of every peer port, a
// 6-partition, 3-replica topic taking records with acks all for the whole
// run, a consumer group of two `weir consume --group` processes reading it
// throughout, and a random schedule of faults, one at a time:
//
//   - kill -9 a random node, restart it;
//   - kill -9 the metadata controller, restart it;
//   - SIGSTOP a random node, SIGCONT;
//   - isolate a random node (both directions, through the proxies), heal;
//   - cut only the traffic to a random node (its own proxy), heal;
//   - kill -9 a random node, wipe its data directory, restart it (it
//     rejoins and copies its replicas back).
//
// Each fault lasts 1-6 s, is healed, and the next one waits until the
// cluster is healthy again (healthy, below). At the end the load stops and
// a checker counts, with examples, LOST, DUPLICATED, REORDERED and
// DIVERGENT records (and a few more kinds), for the log, the replicas'
// files and the group; any of them fails the test.
//
// WEIR_SOAK_SEED (default: the time) seeds everything random: the order of
// the faults, their victims, their lengths and the pauses between them. It
// is logged first thing, so a failing schedule can be replayed; but only
// the schedule: process scheduling, elections, which node is the
// controller and how the client batches are not deterministic, so a replay
// runs the same faults against a cluster that may behave differently.
// WEIR_SOAK_DURATION (default 3m) is how long faults are injected; the end
// checks take a minute or two more.
func TestSoak(t *testing.T) {
	seed := soakSeed(t)
	dur := soakDuration(t)
	t.Logf("soak: seed %d, duration %v (replay with WEIR_SOAK_SEED=%d WEIR_SOAK_DURATION=%v)", seed, dur, seed, dur)
	rng := rand.New(rand.NewPCG(seed, 0x5eed_5eed))
	ctx, cancel := context.WithTimeout(context.Background(), dur+20*time.Minute)
	defer cancel()

	c := startFaultCluster(t, ctx, true)
	s := &soak{t: t, ctx: ctx, c: c, rng: rng, seeds: c.brokers,
		kinds: map[soakFaultKind]int{}, f: newFindings()}
	// Whatever happens, no node stays frozen or cut off (this cleanup runs
	// before the processes are killed: cleanups run last first).
	t.Cleanup(func() {
		if n := s.frozen; n != nil {
			syscall.Kill(n.srv.cmd.Process.Pid, syscall.SIGCONT)
		}
		c.heal()
	})
	t.Cleanup(func() {
		if t.Failed() {
			// Also after a Fatal midway: what ran, and how to run it again.
			t.Logf("soak failed after %d faults; replay with WEIR_SOAK_SEED=%d WEIR_SOAK_DURATION=%v", len(s.faults), seed, dur)
			if !s.reported {
				s.reportFaults()
			}
		}
	})
	c.createTopic(ctx, soakTopic, soakPartitions, 3)
	s.load = startLoad(t, c.brokers, soakTopic, soakPartitions)
	s.waitLoadProgress("the load acknowledged on every partition", make([]int, soakPartitions), 20, soakHealthTimeout)

	// The group: two members, restarted if one exits (which is counted
	// as a finding).
	s.all = &server{t: t, addr: c.brokers}
	for range 2 {
		s.startConsumer()
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, gc := range s.consumers {
				t.Logf("consumer %s: %s", gc.name, keepText(t, "consumer-"+gc.name, gc.describe()))
			}
		}
	})
	s.watch = &soakWatch{topic: soakTopic, start: time.Now(), max: map[int32]watchMax{}}
	stopPoll, pollDone := make(chan struct{}), make(chan struct{})
	go s.watch.poll(ctx, c, soakGroup, stopPoll, pollDone)
	pollStopped := false
	stopPolling := func() {
		if !pollStopped {
			pollStopped = true
			close(stopPoll)
			<-pollDone
		}
	}
	defer stopPolling()
	soakWait(t, soakHealthTimeout, "the group consuming", func() (bool, string) {
		n := 0
		for _, gc := range s.consumers {
			n += gc.count()
		}
		return n > 0, fmt.Sprintf("%d records printed", n)
	})

	// The faults.
	start := time.Now()
	var deck []soakFaultKind
	for round := 1; round <= soakMaxRounds && time.Since(start) < dur; round++ {
		if len(deck) == 0 {
			// Every kind once per deck, in a random order: a short run
			// still sees each kind.
			for k := range soakNumKinds {
				deck = append(deck, k)
			}
			rng.Shuffle(len(deck), func(i, j int) { deck[i], deck[j] = deck[j], deck[i] })
		}
		kind := deck[0]
		deck = deck[1:]
		s.fault(round, kind)
		s.checkConsumers()
	}
	t.Logf("soak: %d faults in %v", len(s.faults), time.Since(start).Round(time.Second))

	// The end: stop the load, let the group consume everything, read the
	// log back, stop the nodes cleanly and compare their files.
	acks := s.load.settle(t, s.f)
	s.waitConsumed(acks)
	s.waitCommitted()
	s.checkConsumers()
	stopPolling()
	stopAll(s.running()...)
	got := c.readAll(ctx, soakTopic, soakPartitions)
	checkSoakLog(got, acks, s.f)
	s.checkGroup(got, acks)
	s.waitReplicasCaughtUp(got)
	for _, n := range c.nodes {
		n.stop(t)
	}
	checkSoakReplicas(t, c, soakTopic, soakPartitions, s.f)
	s.reportFaults()
	s.f.report(t, fmt.Sprintf("seed %d", seed))
}

const (
	soakTopic      = "soak"
	soakGroup      = "soak-group"
	soakPartitions = 6
	// soakMaxRounds bounds the number of faults whatever the duration.
	soakMaxRounds = 1000
	// soakHealthTimeout bounds every wait for the cluster (or the load,
	// or the group) to recover. Generous: the machine may be loaded.
	soakHealthTimeout = 2 * time.Minute
	// soakPoll is how often the waits look again (each look runs the CLI
	// and scrapes three nodes' metrics).
	soakPoll = 500 * time.Millisecond
)

func soakSeed(t *testing.T) uint64 {
	if v := os.Getenv("WEIR_SOAK_SEED"); v != "" {
		seed, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("WEIR_SOAK_SEED=%q: %v", v, err)
		}
		return seed
	}
	return uint64(time.Now().UnixNano())
}

func soakDuration(t *testing.T) time.Duration {
	if v := os.Getenv("WEIR_SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("WEIR_SOAK_DURATION=%q: want a positive duration such as 3m (%v)", v, err)
		}
		return d
	}
	return 3 * time.Minute
}

// soakWait polls cond every soakPoll until it holds and returns how long
// that took; after timeout it fails the test with cond's last state.
func soakWait(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	tick := time.NewTicker(soakPoll)
	defer tick.Stop()
	for {
		ok, state := cond()
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("waited %v for %s; last state: %s", timeout, what, state)
		}
		<-tick.C
	}
}

// keepText writes text to a file that outlives the test and returns its
// name.
func keepText(t *testing.T, what, text string) string {
	f, err := os.CreateTemp("", fmt.Sprintf("weir-%s-%s-*.log", t.Name(), what))
	if err != nil {
		return "(not kept: " + err.Error() + ")"
	}
	defer f.Close()
	f.WriteString(text)
	return f.Name()
}

type soakFaultKind int

const (
	soakKill soakFaultKind = iota
	soakKillController
	soakStop
	soakIsolate
	soakCutInbound
	soakWipe
	soakNumKinds
)

func (k soakFaultKind) String() string {
	return [...]string{"kill -9 node", "kill -9 controller", "SIGSTOP node", "isolate node",
		"cut inbound", "wipe node"}[k]
}

// soakFault is what one fault did, for the report.
type soakFault struct {
	round    int
	kind     soakFaultKind
	victim   *faultNode
	led      []int32         // partitions the victim led just before
	failover []time.Duration // per partition of led: from the fault to its first acknowledgement after
	outage   time.Duration
	recovery time.Duration // from the heal to healthy
}

type soak struct {
	t     *testing.T
	ctx   context.Context
	c     *faultCluster
	rng   *rand.Rand
	seeds string // every node's client address: --join
	load  *loadGen
	all   *server // a handle on every node, for the group helpers
	watch *soakWatch
	f     *findings

	consumers []*groupConsumer // every consumer started, exited ones too
	exited    map[*groupConsumer]bool
	frozen    *faultNode // SIGSTOPped now
	faults    []soakFault
	kinds     map[soakFaultKind]int
	reported  bool // reportFaults ran
}

// startNode (re)starts n as a node that can rejoin its cluster whatever
// its data directory holds: --join naming every node and --bootstrap-expect
// 3, as in TestClusterMembership. faultNode.start joins only node 1, and
// starts node 1 with no --join at all, which after a wipe would bootstrap
// a new one-node cluster; a node that has state ignores both flags.
func (s *soak) startNode(n *faultNode) {
	s.t.Helper()
	srv := startServerOn(s.t, n.dir, n.client, "--node-id", strconv.Itoa(n.id), "--peer-listen", n.peers,
		"--peer-advertise", n.advertise, "--join", s.seeds, "--bootstrap-expect", "3")
	n.srvMu.Lock()
	if n.srv != nil {
		n.past = append(n.past, n.srv)
	}
	n.srv = srv
	n.srvMu.Unlock()
}

// checkNodes fails the test at once if a node's process ended without the
// test ending it (a crash).
func (s *soak) checkNodes() {
	s.t.Helper()
	for _, n := range s.c.nodes {
		if srv, ok := n.running(); !ok {
			s.t.Fatalf("%v exited by itself (%v); its log: %s", n, srv.cmd.ProcessState, n.keepStderr(s.t))
		}
	}
}

// fault injects one fault of kind, holds it for 1-6 s, heals it, and
// waits until the cluster is healthy again.
func (s *soak) fault(round int, kind soakFaultKind) {
	t := s.t
	s.checkNodes()
	// The random draws come first and always in the same order, so that
	// the schedule depends on the seed alone.
	victim := s.c.nodes[s.rng.IntN(len(s.c.nodes))]
	outage := time.Second + time.Duration(s.rng.Int64N(int64(5*time.Second)))
	pause := time.Duration(s.rng.Int64N(int64(2 * time.Second)))
	if kind == soakKillController {
		soakWait(t, soakHealthTimeout, "a controller", func() (bool, string) {
			n, status := s.c.controller(s.ctx)
			if n != nil {
				victim = n
			}
			return n != nil, status
		})
	}
	led := victim.ledBy(s.ctx, soakTopic)
	marks := s.markLogs()
	t.Logf("fault %d: %s: %v (leads partitions %v) for %v", round, kind, victim, led, outage.Round(time.Millisecond))
	at := time.Now() // before: the fault takes effect as the signal or cut goes out
	switch kind {
	case soakKill, soakKillController, soakWipe:
		victim.srv.kill()
		if kind == soakWipe {
			if err := os.RemoveAll(victim.dir); err != nil {
				t.Fatal(err)
			}
		}
	case soakStop:
		s.frozen = victim
		victim.signal(t, syscall.SIGSTOP)
	case soakIsolate:
		s.c.isolate(victim)
	case soakCutInbound:
		victim.proxy.Cut(cutBlackhole)
	}
	leaders := s.traceLeaders(victim, led, at)
	s.hold(outage)
	switch kind {
	case soakKill, soakKillController, soakWipe:
		s.startNode(victim)
	case soakStop:
		victim.signal(t, syscall.SIGCONT)
		s.frozen = nil
	case soakIsolate, soakCutInbound:
		s.c.heal()
	}
	healed := time.Now()
	var wiped *faultNode
	if kind == soakWipe {
		wiped = victim
	}
	recovery := s.waitHealthy(fmt.Sprintf("fault %d (%s %v) healed", round, kind, victim), wiped, marks)
	newLeaders := leaders()
	f := soakFault{round: round, kind: kind, victim: victim, led: led, outage: healed.Sub(at), recovery: recovery}
	var fo []string
	for _, p := range led {
		d, ok := s.load.failover(p, at)
		if !ok {
			// waitHealthy saw every partition take records: cannot happen.
			t.Fatalf("fault %d: no acknowledgement on partition %d since the fault", round, p)
		}
		f.failover = append(f.failover, d)
		elected := "no other leader seen"
		if l, ok := newLeaders[p]; ok {
			elected = fmt.Sprintf("node %d leading at +%v", l.node, l.at.Round(time.Millisecond))
		}
		fo = append(fo, fmt.Sprintf("p%d %v (%s)", p, d.Round(time.Millisecond), elected))
	}
	s.faults = append(s.faults, f)
	s.kinds[kind]++
	t.Logf("fault %d: healed after %v, healthy %v later; first acknowledgement from the new leader after the fault: %v",
		round, f.outage.Round(time.Millisecond), recovery.Round(time.Millisecond), fo)
	s.hold(pause) // the cluster runs healthy a moment before the next fault
}

// newLeader is when a node other than a fault's victim was first seen
// leading a partition the victim led.
type newLeader struct {
	node int
	at   time.Duration // since the fault
}

// traceLeaders watches, from the fault at at until the returned function
// is called (which returns what it saw), which other node takes over each
// partition of led, per the nodes' metrics: set against the first
// acknowledgement, it tells an election that took long from a leader that
// was elected but took records late (or a client that came late).
func (s *soak) traceLeaders(victim *faultNode, led []int32, at time.Time) func() map[int32]newLeader {
	seen := map[int32]newLeader{}
	var mu sync.Mutex
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			for _, n := range s.c.nodes {
				if n == victim {
					continue
				}
				rs, err := n.replicas(s.ctx, soakTopic)
				if err != nil {
					continue
				}
				mu.Lock()
				for _, p := range led {
					if _, ok := seen[p]; !ok && rs[p].leader {
						seen[p] = newLeader{node: n.id, at: time.Since(at)}
					}
				}
				mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-s.ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return func() map[int32]newLeader {
		close(stop)
		<-done
		mu.Lock()
		defer mu.Unlock()
		return seen
	}
}

// hold waits d (a fault's length, a pause: time the test chooses to let
// pass, not a wait for a condition), or until the test's context ends.
func (s *soak) hold(d time.Duration) {
	select {
	case <-time.After(d):
	case <-s.ctx.Done():
	}
}

// logMark is where a node's log stood when a fault began.
type logMark struct {
	srv *server
	off int
}

func (s *soak) markLogs() map[*faultNode]logMark {
	m := map[*faultNode]logMark{}
	for _, n := range s.c.nodes {
		srv, _ := n.running()
		m[n] = logMark{srv: srv, off: len(srv.stderr.String())}
	}
	return m
}

// The log lines of a partition leader promoting a replica that lost its
// data back to a voter, or failing to (broker/reassign.go,
// promoteCaughtUp).
var (
	promotedLine = regexp.MustCompile(`msg="(?:a replica caught up: making it a voter again|a replica that lost its data caught up and leads: no demotion needed)" .*partition=` + soakTopic + `-(\d+) node=(\d+)`)
	promoteFail  = regexp.MustCompile(`msg="promote replica" .*partition=` + soakTopic + `-(\d+) node=(\d+)`)
)

// promoted returns the partitions whose replica on node wiped the nodes'
// logs since marks show promoted back to a voter (and not failing to).
// No API shows a partition's Raft configuration: the leaders' logs are
// the only witness.
func (s *soak) promoted(wiped *faultNode, marks map[*faultNode]logMark) map[int]bool {
	out := map[int]bool{}
	for _, n := range s.c.nodes {
		srv, _ := n.running()
		text := srv.stderr.String()
		if m, ok := marks[n]; ok && m.srv == srv {
			text = text[min(m.off, len(text)):]
		}
		for _, line := range strings.Split(text, "\n") {
			if m := promotedLine.FindStringSubmatch(line); m != nil && m[2] == strconv.Itoa(wiped.id) {
				p, _ := strconv.Atoi(m[1])
				out[p] = true
			}
			if m := promoteFail.FindStringSubmatch(line); m != nil && m[2] == strconv.Itoa(wiped.id) {
				p, _ := strconv.Atoi(m[1])
				out[p] = false
			}
		}
	}
	for p, ok := range out {
		if !ok {
			delete(out, p)
		}
	}
	return out
}

// waitHealthy waits until the cluster is healthy: every node running and
// answering (cluster status: three alive, one controller), every
// partition led by exactly one node, every node's replicas caught up to
// the high watermarks the leaders had once that held, the load taking
// records on every partition again, and, after a wipe, the wiped node's
// replicas voters again. It returns how long that took.
func (s *soak) waitHealthy(what string, wiped *faultNode, marks map[*faultNode]logMark) time.Duration {
	s.t.Helper()
	base := s.load.ackCounts()
	var target map[int32]int64
	return soakWait(s.t, soakHealthTimeout, what+": the cluster healthy again", func() (bool, string) {
		s.checkNodes()
		out, err := weirAt(s.ctx, s.c.brokers, "", "cluster", "status", "--json")
		if err != nil {
			return false, err.Error()
		}
		var status []client.NodeStatus
		if err := json.Unmarshal([]byte(out), &status); err != nil {
			return false, fmt.Sprint(err, out)
		}
		alive, ctrl := 0, 0
		for _, n := range status {
			if n.Alive {
				alive++
			}
			if n.Controller && n.Alive {
				ctrl++
			}
		}
		if alive != len(s.c.nodes) || ctrl != 1 {
			return false, "cluster status: " + out
		}
		states := map[*faultNode]map[int32]replicaState{}
		for _, n := range s.c.nodes {
			rs, err := n.replicas(s.ctx, soakTopic)
			if err != nil {
				return false, fmt.Sprintf("%v: %v", n, err)
			}
			states[n] = rs
		}
		for p := range int32(soakPartitions) {
			var leaders []int
			for n, rs := range states {
				if rs[p].leader {
					leaders = append(leaders, n.id)
				}
			}
			if len(leaders) != 1 {
				return false, fmt.Sprintf("partition %d led by nodes %v", p, leaders)
			}
		}
		if target == nil {
			target = map[int32]int64{}
			for _, rs := range states {
				for p, st := range rs {
					target[p] = max(target[p], st.hw)
				}
			}
		}
		for n, rs := range states {
			for p, hw := range target {
				if rs[p].hw < hw {
					return false, fmt.Sprintf("%v: partition %d at %d, catching up to %d", n, p, rs[p].hw, hw)
				}
			}
		}
		now := s.load.ackCounts()
		for p := range now {
			if now[p] < base[p]+20 {
				return false, fmt.Sprintf("the load: acknowledgements per partition %v since %v; %s", now, base, s.load.failures())
			}
		}
		if wiped != nil {
			if got := s.promoted(wiped, marks); len(got) < soakPartitions {
				return false, fmt.Sprintf("%v's replicas promoted back to voters: %v", wiped, got)
			}
		}
		return true, ""
	})
}

// waitLoadProgress waits until every partition has n acknowledgements
// more than base.
func (s *soak) waitLoadProgress(what string, base []int, n int, timeout time.Duration) {
	s.t.Helper()
	soakWait(s.t, timeout, what, func() (bool, string) {
		now := s.load.ackCounts()
		for p := range now {
			if now[p] < base[p]+n {
				return false, fmt.Sprintf("acknowledgements per partition %v; %s", now, s.load.failures())
			}
		}
		return true, ""
	})
}

// reportFaults logs the faults by kind, the failover times (from a fault
// to the first acknowledgement on each partition its victim led) and the
// recovery times (from the heal to healthy).
func (s *soak) reportFaults() {
	t := s.t
	s.reported = true
	var kinds []string
	for k := range soakNumKinds {
		kinds = append(kinds, fmt.Sprintf("%s: %d", k, s.kinds[k]))
	}
	t.Logf("faults by kind: %s", strings.Join(kinds, ", "))
	var all, rec []time.Duration
	byKind := map[soakFaultKind][]time.Duration{}
	for _, f := range s.faults {
		all = append(all, f.failover...)
		byKind[f.kind] = append(byKind[f.kind], f.failover...)
		rec = append(rec, f.recovery)
	}
	t.Logf("failover, from the fault to the first acknowledgement on each partition the victim led: %s", durStats(all))
	for k := range soakNumKinds {
		t.Logf("  %-18s %s", k.String()+":", durStats(byKind[k]))
	}
	t.Logf("recovery, from the heal to the cluster healthy: %s", durStats(rec))
}

// durStats is "n samples: min, median, p90, max".
func durStats(ds []time.Duration) string {
	if len(ds) == 0 {
		return "no samples"
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	q := func(f float64) time.Duration {
		i := int(f*float64(len(ds))+0.999999) - 1
		return ds[min(max(i, 0), len(ds)-1)].Round(time.Millisecond)
	}
	return fmt.Sprintf("%d samples: min %v, median %v, p90 %v, max %v",
		len(ds), ds[0].Round(time.Millisecond), q(0.5), q(0.9), ds[len(ds)-1].Round(time.Millisecond))
}

// The group.
