//go:build soak

package test

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"weir/client"
	wlog "weir/log"
)

// findings counts what the checker found, by kind, with a few examples.
type findings struct {
	mu       sync.Mutex
	counts   map[string]int
	examples map[string][]string
}

func newFindings() *findings {
	return &findings{counts: map[string]int{}, examples: map[string][]string{}}
}

func (f *findings) add(kind, format string, args ...any) { f.addN(kind, 1, format, args...) }

func (f *findings) addN(kind string, n int, format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counts[kind] += n
	if len(f.examples[kind]) < 10 {
		f.examples[kind] = append(f.examples[kind], fmt.Sprintf(format, args...))
	}
}

// soakKinds are the kinds the report always lists, found or not.
var soakKinds = []string{"LOST", "DUPLICATED", "REORDERED", "DIVERGENT", "GAP", "UNEXPECTED",
	"REPLICA-LENGTH", "NOT-CAUGHT-UP", "FAILED", "UNSETTLED",
	"UNCONSUMED", "CONSUMED-NOT-IN-LOG", "COMMIT-BACKWARDS", "COMMIT-BEHIND", "CONSUMER-EXITED"}

// report logs every count and fails the test, with examples, for each
// kind found.
func (f *findings) report(t *testing.T, replay string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	kinds := slices.Clone(soakKinds)
	for k := range f.counts {
		if !slices.Contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	var line []string
	for _, k := range kinds {
		line = append(line, fmt.Sprintf("%s %d", k, f.counts[k]))
	}
	t.Logf("checker: %s", strings.Join(line, ", "))
	for _, k := range kinds {
		if f.counts[k] > 0 {
			t.Errorf("%s: %d (%s), e.g.:\n  %s", k, f.counts[k], replay, strings.Join(f.examples[k], "\n  "))
		}
	}
}

// checkSoakLog checks what readAll read against the acknowledgements:
//
//   - GAP: a partition's offsets do not run from 0 without a hole;
//   - DUPLICATED: a value is in the log more than once;
//   - UNEXPECTED: a value the load never produced, or in another partition;
//   - REORDERED: a partition's records are not in the order produced, an
//     acknowledged record is at another offset than acknowledged, or the
//     acknowledged offsets do not grow with the sequence;
//   - LOST: an acknowledged record is not in the log.
func checkSoakLog(got [][]*client.Record, acks [][]loadAck, f *findings) {
	at := map[string]ackPos{}
	for p, recs := range got {
		lastSeq := -1
		for i, r := range recs {
			if r.Offset != int64(i) {
				f.add("GAP", "partition %d: record %d read has offset %d", p, i, r.Offset)
			}
			v := string(r.Value)
			if prev, ok := at[v]; ok {
				f.add("DUPLICATED", "%q at partition %d offset %d and at partition %d offset %d", v, prev.p, prev.off, p, r.Offset)
				continue
			}
			at[v] = ackPos{p: int32(p), off: r.Offset}
			var vp, seq int
			if _, err := fmt.Sscanf(v, "p%d-%d", &vp, &seq); err != nil || vp != p {
				f.add("UNEXPECTED", "partition %d offset %d: %q", p, r.Offset, v)
				continue
			}
			if seq <= lastSeq {
				f.add("REORDERED", "partition %d offset %d: %q after sequence %d in the log", p, r.Offset, v, lastSeq)
			}
			lastSeq = max(lastSeq, seq)
		}
	}
	for p, as := range acks {
		as = slices.Clone(as)
		slices.SortFunc(as, func(a, b loadAck) int { return a.seq - b.seq })
		for i, a := range as {
			v := loadValue(p, a.seq)
			where, ok := at[v]
			switch {
			case !ok:
				f.add("LOST", "%s acknowledged at partition %d offset %d (at %s) is not in the log", v, p, a.off, a.at.Format("15:04:05.000"))
			case where != (ackPos{p: int32(p), off: a.off}):
				f.add("REORDERED", "%s acknowledged at partition %d offset %d is at partition %d offset %d", v, p, a.off, where.p, where.off)
			}
			if i > 0 && a.off <= as[i-1].off {
				f.add("REORDERED", "partition %d: %s acknowledged at offset %d, after %s at %d", p, v, a.off, loadValue(p, as[i-1].seq), as[i-1].off)
			}
		}
	}
}

// waitReplicasCaughtUp waits until every node's replicas hold what readAll
// read; what is behind after the timeout is counted (NOT-CAUGHT-UP), and
// the replicas are compared anyway.
func (s *soak) waitReplicasCaughtUp(got [][]*client.Record) {
	deadline := time.Now().Add(soakHealthTimeout)
	tick := time.NewTicker(soakPoll)
	defer tick.Stop()
	for _, n := range s.c.nodes {
		var last string
		for {
			rs, err := n.replicas(s.ctx, soakTopic)
			behind := err != nil
			if err != nil {
				last = err.Error()
			}
			for p, recs := range got {
				if err == nil && rs[int32(p)].hw < int64(len(recs)) {
					behind = true
					last = fmt.Sprintf("partition %d at %d of %d", p, rs[int32(p)].hw, len(recs))
				}
			}
			if !behind {
				break
			}
			if time.Now().After(deadline) {
				s.f.add("NOT-CAUGHT-UP", "%v: %s", n, last)
				break
			}
			<-tick.C
		}
	}
}

// checkSoakReplicas compares, partition by partition, the data entries of
// the replicas' log files (the nodes stopped): DIVERGENT counts the
// entries, up to the shortest replica, that are not the same on all;
// REPLICA-LENGTH the replicas with a different number of entries.
func checkSoakReplicas(t *testing.T, c *faultCluster, topic string, partitions int, f *findings) {
	t.Helper()
	for p := range partitions {
		var logs [][][]byte
		for _, n := range c.nodes {
			dirs, _ := filepath.Glob(filepath.Join(n.dir, "partitions", fmt.Sprintf("%s-*-%d", topic, p), "log"))
			if len(dirs) != 1 {
				f.add("REPLICA-LENGTH", "%v partition %d: log dirs %v", n, p, dirs)
				logs = append(logs, nil)
				continue
			}
			logs = append(logs, dataPayloads(t, dirs[0]))
		}
		shortest := len(logs[0])
		for i, l := range logs {
			shortest = min(shortest, len(l))
			if len(l) != len(logs[0]) {
				f.add("REPLICA-LENGTH", "partition %d: %v has %d data entries, %v has %d", p, c.nodes[0], len(logs[0]), c.nodes[i], len(l))
			}
		}
		diverge, first := 0, -1
		for j := range shortest {
			for _, l := range logs[1:] {
				if !bytes.Equal(l[j], logs[0][j]) {
					diverge++
					if first < 0 {
						first = j
					}
					break
				}
			}
		}
		if diverge > 0 {
			f.addN("DIVERGENT", diverge, "partition %d: %d of the first %d data entries differ between the replicas, from entry %d", p, diverge, shortest, first)
		}
		if shortest == 0 {
			f.add("REPLICA-LENGTH", "partition %d: a replica has no data", p)
		}
	}
}

// TestSoakChecker checks the checker on made-up logs and replica files
// with one of each fault it counts, so that a clean soak means clean data
// rather than a blind checker. It needs no cluster.
func TestSoakChecker(t *testing.T) {
	t0 := time.Now()
	rec := func(p int, off int64, v string) *client.Record {
		return &client.Record{Topic: soakTopic, Partition: int32(p), Offset: off, Value: []byte(v)}
	}
	ack := func(seq int, off int64) loadAck { return loadAck{at: t0, seq: seq, off: off} }
	got := [][]*client.Record{
		// Partition 0: sequence 2 lost, 1 twice, 4 before 3.
		{rec(0, 0, "p0-000000"), rec(0, 1, "p0-000001"), rec(0, 2, "p0-000001"), rec(0, 3, "p0-000004"), rec(0, 4, "p0-000003")},
		// Partition 1: a record of partition 0, an offset missing, and an
		// acknowledged record at another offset than acknowledged.
		{rec(1, 0, "p1-000000"), rec(1, 1, "p0-000009"), rec(1, 3, "p1-000001")},
	}
	acks := [][]loadAck{
		{ack(0, 0), ack(1, 1), ack(2, 2), ack(3, 4), ack(4, 3)},
		{ack(0, 0), ack(1, 2)},
	}
	f := newFindings()
	checkSoakLog(got, acks, f)
	want := map[string]int{
		"LOST": 1, "DUPLICATED": 1, "UNEXPECTED": 1, "GAP": 1,
		// 3 after 4 in the log, 4 acknowledged before 3 in the offsets,
		// and in partition 1 sequence 1 at offset 3, acknowledged at 2.
		"REORDERED": 3,
	}
	for k, n := range want {
		if f.counts[k] != n {
			t.Errorf("%s: %d, want %d: %v", k, f.counts[k], n, f.examples[k])
		}
	}
	for k, n := range f.counts {
		if want[k] == 0 {
			t.Errorf("%s: %d, want none: %v", k, n, f.examples[k])
		}
	}

	// Replicas: three nodes' files of one partition; node 3 differs at
	// two entries and has one more.
	c := &faultCluster{t: t}
	for id := 1; id <= 3; id++ {
		n := &faultNode{id: id, ip: fmt.Sprintf("127.0.0.%d", id), dir: t.TempDir()}
		c.nodes = append(c.nodes, n)
		l, err := wlog.Open(filepath.Join(n.dir, "partitions", soakTopic+"-7-0", "log"), wlog.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var entries []wlog.Entry
		for i := range 5 + id/3 {
			payload := fmt.Sprintf("batch %d", i)
			if id == 3 && (i == 1 || i == 3) {
				payload = "other"
			}
			entries = append(entries, wlog.Entry{Index: uint64(i + 1), Term: 1, Type: wlog.TypeData, Count: 1, Payload: []byte(payload)})
		}
		if err := l.Append(entries); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	f = newFindings()
	checkSoakReplicas(t, c, soakTopic, 1, f)
	if f.counts["DIVERGENT"] != 2 || f.counts["REPLICA-LENGTH"] != 1 || len(f.counts) != 2 {
		t.Errorf("replicas: counts %v, want DIVERGENT 2 and REPLICA-LENGTH 1: %v", f.counts, f.examples)
	}
}
