//go:build soak

package test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"weir/client"
	"weir/protocol"
)

func (s *soak) startConsumer() {
	s.t.Helper()
	gc := s.all.startGroupConsumer(s.t, fmt.Sprintf("c%d", len(s.consumers)+1), soakTopic, soakGroup)
	s.consumers = append(s.consumers, gc)
}

// running returns the consumers still running.
func (s *soak) running() []*groupConsumer {
	var out []*groupConsumer
	for _, gc := range s.consumers {
		if !gc.exited() {
			out = append(out, gc)
		}
	}
	return out
}

// checkConsumers counts a consumer that exited by itself as a finding and
// starts another in its place (at most a few times), so that the run
// goes on.
func (s *soak) checkConsumers() {
	s.t.Helper()
	if s.exited == nil {
		s.exited = map[*groupConsumer]bool{}
	}
	for _, gc := range slices.Clone(s.consumers) {
		if !gc.exited() || s.exited[gc] {
			continue
		}
		s.exited[gc] = true
		s.f.add("CONSUMER-EXITED", "%s", gc.describe())
		if len(s.consumers) < 10 {
			s.startConsumer()
		}
	}
}

// consumedValues returns how many times the consumers printed each value.
func (s *soak) consumedValues() map[string]int {
	s.t.Helper()
	seen := map[string]int{}
	for _, gc := range s.consumers {
		for _, r := range gc.records() {
			seen[r.v]++
		}
	}
	return seen
}

// waitConsumed waits until every acknowledged record has been printed by a
// consumer; what is missing after the timeout is counted by checkGroup.
func (s *soak) waitConsumed(acks [][]loadAck) {
	deadline := time.Now().Add(soakHealthTimeout)
	tick := time.NewTicker(soakPoll)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		seen := s.consumedValues()
		missing := 0
		for p, as := range acks {
			for _, a := range as {
				if seen[loadValue(p, a.seq)] == 0 {
					missing++
				}
			}
		}
		if missing == 0 {
			return
		}
		<-tick.C
	}
	s.t.Logf("not every acknowledged record consumed within %v (counted below)", soakHealthTimeout)
}

// waitCommitted waits until the group has committed every partition up to
// the high watermark.
func (s *soak) waitCommitted() {
	deadline := time.Now().Add(soakHealthTimeout)
	tick := time.NewTicker(soakPoll)
	defer tick.Stop()
	var last string
	for time.Now().Before(deadline) {
		d, err := s.all.tryDescribeGroup(s.ctx, soakGroup)
		if err == nil && d.caughtUp(soakTopic, soakPartitions) {
			return
		}
		last = fmt.Sprint(d, err)
		<-tick.C
	}
	s.f.add("COMMIT-BEHIND", "the group has not committed up to the high watermarks within %v: %s", soakHealthTimeout, last)
}

// checkGroup counts acknowledged records no consumer printed (UNCONSUMED),
// records printed that are not what the log holds at their offset
// (CONSUMED-NOT-IN-LOG: a consumer was served something that did not
// last), and the committed offsets the watch saw go back
// (COMMIT-BACKWARDS).
func (s *soak) checkGroup(got [][]*client.Record, acks [][]loadAck) {
	seen := map[string]int{}
	redelivered := 0
	for _, gc := range s.consumers {
		for _, r := range gc.records() {
			seen[r.v]++
			if seen[r.v] > 1 {
				redelivered++
			}
			if r.p < 0 || int(r.p) >= len(got) || r.o < 0 || r.o >= int64(len(got[r.p])) {
				s.f.add("CONSUMED-NOT-IN-LOG", "%s printed %v, which is past the end of the log", gc.name, r)
			} else if v := string(got[r.p][r.o].Value); v != r.v {
				s.f.add("CONSUMED-NOT-IN-LOG", "%s printed %v; the log has %q there", gc.name, r, v)
			}
		}
	}
	total := 0
	for p, as := range acks {
		for _, a := range as {
			total++
			if v := loadValue(p, a.seq); seen[v] == 0 {
				s.f.add("UNCONSUMED", "%s (acknowledged at %d/%d) never consumed", v, p, a.off)
			}
		}
	}
	w := s.watch
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, e := range w.backwards {
		s.f.add("COMMIT-BACKWARDS", "%s", e)
	}
	s.t.Logf("group: %d consumers started, %d acknowledged records, %d printed more than once (redelivery, allowed); %d group descriptions watched",
		len(s.consumers), total, redelivered, w.n)
}

// soakWatch follows the group's committed offsets as every node that
// answers DescribeGroups (the controller) shows them, from one goroutine,
// one request at a time, so each answer comes after the one before: an
// offset lower than one answered before is a committed offset going back.
type soakWatch struct {
	topic string
	start time.Time

	mu        sync.Mutex
	n         int
	max       map[int32]watchMax
	history   []string // the last descriptions
	backwards []string
}

type watchMax struct {
	off int64
	by  string
	at  time.Time
}

func (w *soakWatch) since(at time.Time) string {
	return "+" + at.Sub(w.start).Round(time.Millisecond).String()
}

func (w *soakWatch) observe(d groupDesc, by string, asked, got time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n++
	committed := d.committed(w.topic)
	w.history = append(w.history, fmt.Sprintf("%s..%s %s: %s committed %v", w.since(asked), w.since(got), by, d.State, committed))
	if len(w.history) > 20 {
		w.history = w.history[1:]
	}
	for p, off := range committed {
		m, ok := w.max[p]
		if ok && off < m.off {
			w.backwards = append(w.backwards, fmt.Sprintf("partition %d: committed %d per %s (asked at %s), after %d per %s (answered at %s); the last descriptions:\n    %s",
				p, off, by, w.since(asked), m.off, m.by, w.since(m.at), strings.Join(w.history, "\n    ")))
			continue
		}
		if !ok || off > m.off {
			w.max[p] = watchMax{off: off, by: by, at: got}
		}
	}
}

// poll asks every running node to describe the group every 250 ms, until
// stop is closed; done is closed when it has stopped.
func (w *soakWatch) poll(ctx context.Context, c *faultCluster, group string, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	for {
		for _, n := range c.nodes {
			srv, ok := n.running()
			if !ok {
				continue
			}
			asked := time.Now()
			r, err := rawCall(srv.addr, &protocol.DescribeGroupsRequest{GroupIDs: []string{group}}, 2*time.Second)
			if err != nil {
				continue
			}
			resp := r.(*protocol.DescribeGroupsResponse)
			if len(resp.Groups) != 1 || resp.Groups[0].ErrorCode != protocol.CodeNone {
				continue
			}
			w.observe(descFromProtocol(&resp.Groups[0]), n.String(), asked, time.Now())
		}
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// The load: loadGen (faultload_test.go) adapted to keep every
// acknowledgement with its time, for the failover times and the checker.
