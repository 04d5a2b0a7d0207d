package test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"weir/protocol"
)

// offsetWatch follows a group's committed offsets across descriptions
// and fails the test if one goes backwards, with the history of what it
// saw. Descriptions taken concurrently (the poller's and the test's) are
// ordered only when one was asked for after the other was answered: a
// description must not show an offset older than one that had been
// answered before it was asked for. It is safe for concurrent use.
type offsetWatch struct {
	t     *testing.T
	topic string
	start time.Time

	mu      sync.Mutex
	seen    []watchObs // every description so far
	n       int
	history []string
}

type watchObs struct {
	by         string
	asked, got time.Time
	committed  map[int32]int64
}

func newOffsetWatch(t *testing.T, topic string) *offsetWatch {
	return &offsetWatch{t: t, topic: topic, start: time.Now()}
}

func (w *offsetWatch) since(at time.Time) string {
	return "+" + at.Sub(w.start).Round(time.Millisecond).String()
}

// event records something that happened (a kill), for the history.
func (w *offsetWatch) event(what string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.history = append(w.history, fmt.Sprintf("%s %s", w.since(time.Now()), what))
}

// observe checks description d, asked for at asked and answered at got,
// which by says who gave.
func (w *offsetWatch) observe(d groupDesc, by string, asked, got time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n++
	committed := d.committed(w.topic)
	var members []string
	for _, m := range d.Members {
		members = append(members, fmt.Sprintf("%.6s@%d%v", m.MemberID, m.Epoch, m.owned(w.topic)))
	}
	w.history = append(w.history, fmt.Sprintf("%s..%s %s: %s %v committed %v",
		w.since(asked), w.since(got), by, d.State, members, committed))
	for p, off := range committed {
		for _, o := range w.seen {
			if prev, ok := o.committed[p]; ok && o.got.Before(asked) && off < prev {
				h := w.history[max(len(w.history)-25, 0):]
				w.t.Errorf("partition %d: committed offset went back from %d (%s, answered at %s) to %d (%s, asked at %s); the last descriptions (asked..answered):\n  %s",
					p, prev, o.by, w.since(o.got), off, by, w.since(asked), strings.Join(h, "\n  "))
				break
			}
		}
	}
	w.seen = append(w.seen, watchObs{by: by, asked: asked, got: got, committed: committed})
}

// describe runs `weir group describe` through s and observes the answer.
func (w *offsetWatch) describe(ctx context.Context, s *server, group, by string) (groupDesc, error) {
	asked := time.Now()
	d, err := s.tryDescribeGroup(ctx, group)
	if err == nil {
		w.observe(d, by, asked, time.Now())
	}
	return d, err
}

// waitGroup is server.waitGroup with every description observed.
func (w *offsetWatch) waitGroup(ctx context.Context, s *server, timeout time.Duration, group, what string, cond func(groupDesc) bool) groupDesc {
	w.t.Helper()
	var last groupDesc
	waitUntil(w.t, timeout, fmt.Sprintf("group %s: %s", group, what), func() (bool, string) {
		d, err := w.describe(ctx, s, group, "weir group describe ("+what+")")
		if err != nil {
			return false, err.Error()
		}
		last = d
		return cond(d), d.String()
	})
	return last
}

// poll asks every running node of c to describe the group every 200 ms
// (only the controller answers), until stop is closed, and observes each
// answer; done is closed when it has stopped. Two nodes answering in one
// round (two controllers at once) is logged in the history.
func (w *offsetWatch) poll(ctx context.Context, c *faultCluster, group string, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	for {
		var answered []string
		for _, n := range c.nodes {
			if _, ok := n.running(); !ok {
				continue
			}
			asked := time.Now()
			r, err := rawCall(n.client, &protocol.DescribeGroupsRequest{GroupIDs: []string{group}}, 2*time.Second)
			if err != nil {
				continue
			}
			resp := r.(*protocol.DescribeGroupsResponse)
			if len(resp.Groups) != 1 || resp.Groups[0].ErrorCode != protocol.CodeNone {
				continue
			}
			answered = append(answered, n.String())
			w.observe(descFromProtocol(&resp.Groups[0]), n.String(), asked, time.Now())
		}
		if len(answered) > 1 {
			w.event(fmt.Sprintf("%d nodes answered as the controller: %v", len(answered), answered))
		}
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// descFromProtocol converts a DescribeGroups result to the CLI's JSON
// form the group helpers use.
func descFromProtocol(g *protocol.DescribeGroupsResponseGroup) groupDesc {
	d := groupDesc{Group: g.GroupID, State: g.State}
	for _, m := range g.Members {
		gm := groupMember{MemberID: m.MemberID, Epoch: m.MemberEpoch}
		for _, a := range m.Assignment {
			for _, p := range a.Partitions {
				gm.Assignment = append(gm.Assignment, topicPartition{Topic: a.Topic, Partition: p})
			}
		}
		d.Members = append(d.Members, gm)
	}
	for _, t := range g.Offsets {
		for _, p := range t.Partitions {
			d.Partitions = append(d.Partitions, groupPartition{Topic: t.Topic, Partition: p.Partition,
				Committed: p.CommittedOffset, HighWatermark: p.HighWatermark, Lag: p.Lag, Owner: p.MemberID})
		}
	}
	return d
}

// produceAcked produces n keyed records PREFIX-i with acks all, retrying
// with fresh values (PREFIX-retryK-i) until one attempt is acknowledged.
// It returns the acknowledged values, and adds every value attempted to
// tried (a failed attempt may have written some).
func produceAcked(t *testing.T, ctx context.Context, brokers, topic, prefix string, n int, tried map[string]bool) []string {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for attempt := 0; ; attempt++ {
		p := prefix
		if attempt > 0 {
			p = fmt.Sprintf("%s-retry%d", prefix, attempt)
		}
		text, vals := keyedLines(p, 0, n)
		for _, v := range vals {
			tried[v] = true
		}
		_, err := weirAt(ctx, brokers, text, "produce", topic, "--key-separator", ":")
		if err == nil {
			return vals
		}
		if time.Now().After(deadline) {
			t.Fatalf("producing %s: no attempt acknowledged in 45 s: %v", prefix, err)
		}
		t.Logf("producing %s, attempt %d: %v", prefix, attempt, err)
	}
}

// TestClusterControllerKillWithGroups kills (kill -9) the metadata
// controller, which is the consumer groups' coordinator, while a group of
// three `weir consume --group` processes consumes a 6-partition topic that
// takes records continuously. A new controller takes over; consumption
// resumes (records produced after the kill are consumed); the group's
// committed offsets, described every 200 ms throughout, never go
// backwards; the killed node comes back as a follower and the group goes
// on; at the end every acknowledged record has been consumed at least
// once and the group has committed everything.
func TestClusterControllerKillWithGroups(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const topic, group = "g", "billing"
	c := startFaultCluster(t, ctx, false)
	c.createTopic(ctx, topic, faultPartitions, 3)
	// A handle for the group helpers with every node as a seed.
	all := &server{t: t, addr: c.brokers}
	tried := map[string]bool{}
	want := produceAcked(t, ctx, c.brokers, topic, "a", 300, tried)
	g := startLoad(t, c.brokers, topic, faultPartitions)

	var consumers []*groupConsumer
	for i := range 3 {
		consumers = append(consumers, all.startGroupConsumer(t, fmt.Sprintf("c%d", i+1), topic, group))
	}
	outputs := func() map[string][]rec {
		o := map[string][]rec{}
		for _, gc := range consumers {
			o[gc.name] = gc.records()
		}
		return o
	}
	// consumed waits until every value of vals has been printed by some
	// consumer, and returns how long that took.
	consumed := func(what string, vals []string, timeout time.Duration) time.Duration {
		t.Helper()
		return waitUntil(t, timeout, what, func() (bool, string) {
			seen := map[string]bool{}
			for _, recs := range outputs() {
				for _, r := range recs {
					seen[r.v] = true
				}
			}
			var missing []string
			for _, v := range vals {
				if !seen[v] {
					missing = append(missing, v)
				}
			}
			var desc []string
			for _, gc := range consumers {
				if gc.exited() {
					desc = append(desc, gc.describe())
				}
			}
			return len(missing) == 0, fmt.Sprintf("%d of %d missing, e.g. %v; exited consumers: %v", len(missing), len(vals), missing[:min(len(missing), 5)], desc)
		})
	}
	// ackedSince returns the load's records acknowledged so far whose
	// sequence is at least from[partition].
	ackedSince := func(from []int) []string {
		g.mu.Lock()
		defer g.mu.Unlock()
		var vals []string
		for v, pos := range g.acked {
			var p, seq int
			fmt.Sscanf(v, "p%d-%d", &p, &seq)
			if seq >= from[pos.p] {
				vals = append(vals, v)
			}
		}
		return vals
	}
	nextSeqs := func() []int {
		g.mu.Lock()
		defer g.mu.Unlock()
		return slices.Clone(g.next)
	}

	watch := newOffsetWatch(t, topic)
	stopPoll, pollDone := make(chan struct{}), make(chan struct{})
	go watch.poll(ctx, c, group, stopPoll, pollDone)
	defer func() {
		select {
		case <-stopPoll:
		default:
			close(stopPoll)
		}
		<-pollDone
	}()

	consumed("the group consuming the first records", want, 45*time.Second)
	g.waitProgress("the load acknowledged on every partition", make([]int, faultPartitions), 20, 0, 30*time.Second)
	consumed("the group consuming the load", ackedSince(make([]int, faultPartitions)), 45*time.Second)
	// Kill once the group is balanced and has committed on every partition.
	before := watch.waitGroup(ctx, all, 45*time.Second, group, "before the kill: three members, two partitions each, offsets committed", func(d groupDesc) bool {
		committed := d.committed(topic)
		for p := range int32(faultPartitions) {
			if committed[p] <= 0 {
				return false
			}
		}
		return d.State == "Stable" && d.balanced(topic, 3, 2)
	})

	victim, status := c.controller(ctx)
	if victim == nil {
		t.Fatalf("no controller in %s", status)
	}
	t.Logf("killing the controller, %v; the group: %v", victim, before)
	victim.srv.kill()
	killed := time.Now()
	watch.event(fmt.Sprintf("killed %v", victim))
	afterKill := nextSeqs() // the load's records from here on are produced after the kill
	// The failover as the CLI sees it: how long until `weir cluster
	// status` names a new controller.
	newCtrl := waitUntil(t, 30*time.Second, "a new controller", func() (bool, string) {
		n, status := c.controller(ctx)
		return n != nil && n != victim, status
	})
	t.Logf("a new controller %v after the kill", newCtrl.Round(time.Millisecond))
	b := produceAcked(t, ctx, c.brokers, topic, "b", 300, tried)
	want = append(want, b...)
	g.waitProgress("the load acknowledged on every partition after the kill", afterKill, 20, 0, 30*time.Second)
	consumed("the group consuming records produced after the controller was killed",
		append(slices.Clone(b), ackedSince(afterKill)...), 45*time.Second)
	t.Logf("records produced after the kill consumed %v after it", time.Since(killed).Round(time.Millisecond))
	after, err := watch.describe(ctx, all, group, "weir group describe (after the kill)")
	if err != nil {
		t.Fatal(err)
	}

	// The old controller comes back as a follower; the group goes on.
	victim.start(t)
	watch.event(fmt.Sprintf("restarted %v", victim))
	waitUntil(t, 30*time.Second, "three nodes up again", func() (bool, string) {
		out, err := weirAt(ctx, c.brokers, "", "cluster", "status", "--json")
		return err == nil && strings.Count(out, `"Alive":true`) == 3, fmt.Sprint(out, err)
	})
	afterRestart := nextSeqs()
	cc := produceAcked(t, ctx, c.brokers, topic, "c", 300, tried)
	want = append(want, cc...)
	g.waitProgress("the load acknowledged on every partition after the restart", afterRestart, 20, 0, 30*time.Second)
	consumed("the group consuming records produced after the restart",
		append(slices.Clone(cc), ackedSince(afterRestart)...), 45*time.Second)

	// The end: everything acknowledged is consumed and committed.
	acked := g.stopLoad()
	for v := range acked {
		want = append(want, v)
	}
	consumed("the group consuming every acknowledged record", want, 45*time.Second)
	var hw map[int32]int64
	final := watch.waitGroup(ctx, all, 45*time.Second, group, "at the end: everything committed", func(d groupDesc) bool {
		// Committed up to the high watermarks of the nodes' own metrics,
		// and the description agrees (lag 0 everywhere).
		hw = c.runningHighWatermarks(ctx, topic)
		committed := d.committed(topic)
		for p := range int32(faultPartitions) {
			if committed[p] != hw[p] {
				return false
			}
		}
		return d.caughtUp(topic, faultPartitions)
	})
	close(stopPoll)
	<-pollDone
	t.Logf("committed offsets before the kill %v, after %v, at the end %v (high watermarks %v); %d descriptions watched",
		before.committed(topic), after.committed(topic), final.committed(topic), hw, watch.n)
	for p, off := range before.committed(topic) {
		if a := after.committed(topic)[p]; a < off {
			t.Errorf("partition %d: committed %d before the kill, %d after", p, off, a)
		}
	}

	stopAll(consumers...)
	// Every acknowledged record at least once; nothing that was not
	// produced; no gap in any partition's offsets; one value per offset.
	counts := map[string]int{}
	byPos := map[[2]int64]string{}
	maxOff := map[int32]int64{}
	for name, recs := range outputs() {
		logRedeliveries(t, name, recs)
		for _, r := range recs {
			var p, seq int
			if _, err := fmt.Sscanf(r.v, "p%d-%d", &p, &seq); !tried[r.v] && (err != nil || p != int(r.p)) {
				t.Fatalf("%s printed %v, which was never produced", name, r)
			}
			counts[r.v]++
			k := [2]int64{int64(r.p), r.o}
			if v, ok := byPos[k]; ok && v != r.v {
				t.Fatalf("partition %d offset %d printed as %q and as %q", r.p, r.o, v, r.v)
			}
			byPos[k] = r.v
			maxOff[r.p] = max(maxOff[r.p], r.o)
		}
	}
	for p, m := range maxOff {
		for o := range m + 1 {
			if _, ok := byPos[[2]int64{int64(p), o}]; !ok {
				t.Fatalf("partition %d: offset %d never consumed (up to %d were)", p, o, m)
			}
		}
	}
	dups := 0
	for _, v := range want {
		if counts[v] == 0 {
			t.Fatalf("acknowledged record %q never consumed", v)
		}
		dups += counts[v] - 1
	}
	t.Logf("%d acknowledged records consumed, %d times more than once (at-least-once redelivery)", len(want), dups)
}

// logRedeliveries logs where one consumer's output goes back in a
// partition: a redelivery from the committed offset after the partition
// was handed back to it (allowed: at least once).
func logRedeliveries(t *testing.T, name string, recs []rec) {
	t.Helper()
	last := map[int32]int64{}
	for _, r := range recs {
		if l, ok := last[r.p]; ok && r.o <= l {
			t.Logf("%s: partition %d went back from offset %d to %d", name, r.p, l, r.o)
		}
		last[r.p] = r.o
	}
}
