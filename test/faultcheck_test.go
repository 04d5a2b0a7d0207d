package test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"weir/client"
)

// readAll reads every record of every partition of topic, from offset 0
// to the high watermark the leaders report now.
func (c *faultCluster) readAll(ctx context.Context, topic string, partitions int) [][]*client.Record {
	c.t.Helper()
	seeds := client.SeedBrokers(strings.Split(c.brokers, ",")...)
	admin, err := client.NewAdmin(seeds)
	if err != nil {
		c.t.Fatal(err)
	}
	defer admin.Close()
	ends := make([]int64, partitions)
	for p := range ends {
		if ends[p], err = admin.ListOffsets(ctx, topic, int32(p), client.Latest); err != nil {
			c.t.Fatalf("partition %d: latest offset: %v", p, err)
		}
	}
	cons, err := client.NewConsumer(seeds)
	if err != nil {
		c.t.Fatal(err)
	}
	defer cons.Close()
	all := make([]int32, partitions)
	for p := range all {
		all[p] = int32(p)
	}
	cons.Assign(topic, all...)
	out := make([][]*client.Record, partitions)
	done := func() bool {
		for p := range out {
			if int64(len(out[p])) < ends[p] {
				return false
			}
		}
		return true
	}
	for !done() {
		recs, err := cons.Poll(ctx)
		if err != nil {
			c.t.Fatalf("reading %s back: %v (read %d of %v per partition)", topic, err, lens(out), ends)
		}
		for _, r := range recs {
			out[r.Partition] = append(out[r.Partition], r)
		}
	}
	return out
}

func lens(recs [][]*client.Record) []int {
	n := make([]int, len(recs))
	for i := range recs {
		n[i] = len(recs[i])
	}
	return n
}

// checkLog checks what readAll read against the acknowledged records: in
// each partition the offsets run from 0 without a gap or a repeat; every
// acknowledged record is there exactly once, at the offset it was
// acknowledged with; no value is there twice; each partition's load
// records are in the order they were produced; and nothing else is there
// but the probes named.
func checkLog(t *testing.T, got [][]*client.Record, acked map[string]ackPos, probes map[string]bool) {
	t.Helper()
	at := map[string]ackPos{}
	for p, recs := range got {
		lastSeq := -1
		for i, r := range recs {
			v := string(r.Value)
			if r.Offset != int64(i) {
				t.Fatalf("partition %d: record %d has offset %d", p, i, r.Offset)
			}
			if prev, ok := at[v]; ok {
				t.Fatalf("%q is in the log twice: partition %d offset %d and partition %d offset %d", v, prev.p, prev.off, p, r.Offset)
			}
			at[v] = ackPos{p: int32(p), off: r.Offset}
			if probes[v] {
				continue
			}
			var vp, seq int
			if _, err := fmt.Sscanf(v, "p%d-%d", &vp, &seq); err != nil || vp != p {
				t.Fatalf("partition %d offset %d: unexpected record %q", p, r.Offset, v)
			}
			if seq <= lastSeq {
				t.Fatalf("partition %d offset %d: %q after sequence %d: out of order", p, r.Offset, v, lastSeq)
			}
			lastSeq = seq
		}
	}
	var missing []string
	for v, pos := range acked {
		where, ok := at[v]
		if !ok {
			missing = append(missing, fmt.Sprintf("%s (acknowledged at %d/%d)", v, pos.p, pos.off))
			continue
		}
		if where != pos {
			t.Errorf("%q acknowledged at partition %d offset %d is at partition %d offset %d", v, pos.p, pos.off, where.p, where.off)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		t.Fatalf("%d acknowledged records are not in the log (lost), e.g. %v", len(missing), missing[:min(len(missing), 10)])
	}
}

// checkReplicas stops every node (cleanly) and compares, partition by
// partition, the data entries of the three replicas' log files: same
// number, same bytes.
func (c *faultCluster) checkReplicas(topic string, partitions int) {
	c.t.Helper()
	for _, n := range c.nodes {
		n.stop(c.t)
	}
	for p := range partitions {
		var logs [][][]byte
		for _, n := range c.nodes {
			dirs, _ := filepath.Glob(filepath.Join(n.dir, "partitions", fmt.Sprintf("%s-*-%d", topic, p), "log"))
			if len(dirs) != 1 {
				c.t.Fatalf("%v partition %d: log dirs %v", n, p, dirs)
			}
			logs = append(logs, dataPayloads(c.t, dirs[0]))
		}
		for i := 1; i < len(logs); i++ {
			if len(logs[i]) != len(logs[0]) {
				c.t.Errorf("partition %d: %v has %d data entries, %v has %d", p, c.nodes[0], len(logs[0]), c.nodes[i], len(logs[i]))
			}
			for j := range min(len(logs[0]), len(logs[i])) {
				if !bytes.Equal(logs[0][j], logs[i][j]) {
					c.t.Fatalf("partition %d: %v and %v differ at data entry %d", p, c.nodes[0], c.nodes[i], j)
				}
			}
		}
		if len(logs[0]) == 0 {
			c.t.Fatalf("partition %d: no data", p)
		}
	}
}

const (
	faultTopic      = "t"
	faultPartitions = 6
	// faultMinOutage is the least time a node stays frozen or cut off:
	// several election timeouts (500 ms).
	faultMinOutage = 3 * time.Second
)

// faultVictims names the node each round of a fault test picks: the
// leader of partition 0, then the metadata controller (which may be the
// same node), the group coordinator and the node every ReportLeaders goes
// to.
var faultVictims = []string{"the leader of partition 0", "the controller"}

// pickVictim returns the node round picks (see faultVictims).
func (c *faultCluster) pickVictim(ctx context.Context, round int) *faultNode {
	c.t.Helper()
	if round == 0 {
		return c.waitLeader(ctx, faultTopic, 0)
	}
	var ctrl *faultNode
	waitUntil(c.t, 30*time.Second, "a controller", func() (bool, string) {
		n, status := c.controller(ctx)
		ctrl = n
		return n != nil, status
	})
	return ctrl
}

// ledBy returns the partitions of topic that n says it leads.
func (n *faultNode) ledBy(ctx context.Context, topic string) []int32 {
	rs, err := n.replicas(ctx, topic)
	if err != nil {
		return nil
	}
	var ps []int32
	for p, s := range rs {
		if s.leader {
			ps = append(ps, p)
		}
	}
	slices.Sort(ps)
	return ps
}
