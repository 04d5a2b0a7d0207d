package test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// topicLayout is what `weir topic describe --json` says of the partitions.
type topicLayout []struct {
	Partition, LeaderID int32
	Replicas            []int32
}

func describeLayout(ctx context.Context, brokers, topic string) (topicLayout, error) {
	out, err := weirAt(ctx, brokers, "", "topic", "describe", topic, "--json")
	if err != nil {
		return nil, err
	}
	var d struct{ Partitions topicLayout }
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		return nil, fmt.Errorf("%w: %s", err, out)
	}
	return d.Partitions, nil
}

// preferredLeaders reports whether every partition is led by its first
// replica.
func (l topicLayout) preferredLeaders() bool {
	for _, p := range l {
		if len(p.Replicas) == 0 || p.LeaderID != p.Replicas[0] {
			return false
		}
	}
	return len(l) > 0
}

// TestClusterMembership runs real processes through the life of a cluster:
// three nodes found each other with --bootstrap-expect; leadership goes
// back to the preferred replicas after a killed node returns; a node whose
// data directory is wiped rejoins and copies its replicas back; a fourth
// node joins, a partition moves onto it (weir topic reassign) and a node is
// decommissioned (weir cluster remove). Throughout, records are produced
// with acks all; at the end every acknowledged record is read exactly
// once, in order, and every partition's replicas hold the same log.
func TestClusterMembership(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	nodes := make([]*clusterNode, 4)
	var seeds []string
	for i := range nodes {
		nodes[i] = &clusterNode{id: i + 1, dir: t.TempDir(), client: freeAddr(t), peers: freeAddr(t)}
		if i < 3 {
			seeds = append(seeds, nodes[i].client)
		}
	}
	for _, n := range nodes {
		n.join = strings.Join(seeds, ",")
		n.extra = []string{"--bootstrap-expect", "3"}
	}
	for _, n := range nodes[:3] {
		n.start(t)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range nodes {
				if n.srv != nil {
					os.WriteFile(filepath.Join(os.TempDir(), fmt.Sprintf("weir-membership-node%d.log", n.id)), []byte(n.srv.stderr.String()), 0o644)
				}
			}
			t.Logf("node logs in %s/weir-membership-node*.log", os.TempDir())

		}
	})
	brokers := strings.Join(seeds, ",")
	alive := func(n int) func() (bool, string) {
		return func() (bool, string) {
			out, err := weirAt(ctx, brokers, "", "cluster", "status", "--json")
			return err == nil && strings.Count(out, `"Alive":true`) == n, out + fmt.Sprint(err)
		}
	}
	waitUntil(t, 30*time.Second, "three nodes up", alive(3))
	if _, err := weirAt(ctx, brokers, "", "topic", "create", "m", "--partitions", "3", "--replicas", "3"); err != nil {
		t.Fatal(err)
	}
	var acked []string
	produce := func(tag string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for attempt := 0; ; attempt++ {
			text, lines := keyedLines(fmt.Sprintf("%s-%d", tag, attempt), 0, 200)
			if _, err := weirAt(ctx, brokers, text, "produce", "m", "--key-separator", ":"); err == nil {
				acked = append(acked, lines...)
				return
			} else if time.Now().After(deadline) {
				t.Fatalf("%s: no acknowledged produce: %v", tag, err)
			}
		}
	}
	layout := func() topicLayout {
		l, _ := describeLayout(ctx, brokers, "m")
		return l
	}
	balanced := func() (bool, string) {
		l := layout()
		return l.preferredLeaders(), fmt.Sprint(l)
	}
	produce("start")
	waitUntil(t, 30*time.Second, "every partition led by its preferred replica", balanced)

	// One node's describe of partitions it does not host gives their
	// leaders' offsets.
	if _, err := weirAt(ctx, brokers, "", "topic", "create", "single", "--partitions", "3", "--replicas", "1"); err != nil {
		t.Fatal(err)
	}
	text, _ := keyedLines("single", 0, 30)
	if _, err := weirAt(ctx, brokers, text, "produce", "single", "--key-separator", ":"); err != nil {
		t.Fatal(err)
	}
	out, err := weirAt(ctx, nodes[0].client, "", "topic", "describe", "single", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var single struct {
		Partitions []struct{ HighWatermark int64 }
	}
	if err := json.Unmarshal([]byte(out), &single); err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, p := range single.Partitions {
		total += p.HighWatermark
	}
	if total != 30 {
		t.Fatalf("high watermarks of an RF 1 topic seen from node 1 sum to %d, want 30: %s", total, out)
	}

	// A killed node returns: leadership goes back to it.
	nodes[0].srv.kill()
	produce("node1-down")
	nodes[0].start(t)
	took := waitUntil(t, 60*time.Second, "leaders back on the preferred replicas after node 1 returned", balanced)
	t.Logf("leadership rebalanced %v after node 1 restarted", took.Round(time.Millisecond))

	// A node loses its data directory and rejoins: it copies its replicas
	// back from the others instead of serving empty (checked at the end,
	// on its files).
	nodes[1].srv.kill()
	if err := os.RemoveAll(nodes[1].dir); err != nil {
		t.Fatal(err)
	}
	produce("node2-wiped")
	nodes[1].start(t)
	waitUntil(t, 30*time.Second, "the wiped node is back", alive(3))
	produce("node2-back")

	// A fourth node joins; partition 0 moves onto it; node 3 leaves.
	nodes[3].start(t)
	waitUntil(t, 30*time.Second, "four nodes up", alive(4))
	brokers4 := brokers + "," + nodes[3].client
	if _, err := weirAt(ctx, brokers4, "", "topic", "reassign", "m", "0=4,1,2", "--wait", "60s"); err != nil {
		t.Fatal(err)
	}
	produce("moved")
	if _, err := weirAt(ctx, brokers4, "", "cluster", "remove", "3", "--wait", "60s"); err != nil {
		t.Fatal(err)
	}
	produce("removed")
	final, err := describeLayout(ctx, brokers4, "m")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range final {
		if slices.Contains(p.Replicas, 3) || len(p.Replicas) != 3 {
			t.Fatalf("partition %d replicas %v after removing node 3", p.Partition, p.Replicas)
		}
	}
	if !slices.Equal(final[0].Replicas, []int32{4, 1, 2}) {
		t.Fatalf("partition 0 replicas %v, want the reassignment's 4 1 2", final[0].Replicas)
	}
	waitUntil(t, 30*time.Second, "node 3's replicas deleted", func() (bool, string) {
		dirs, _ := filepath.Glob(filepath.Join(nodes[2].dir, "partitions", "m-*"))
		return len(dirs) == 0, fmt.Sprint(dirs)
	})

	// Every acknowledged record, once, in order per partition.
	checkReadOnceInOrder(t, ctx, brokers4, "m", acked)

	// The replicas of each partition hold the same data, the wiped node's
	// and the moved partition's new replica included.
	for _, n := range nodes {
		n.srv.stop()
	}
	for _, p := range final {
		var logs [][][]byte
		for _, id := range p.Replicas {
			dirs, _ := filepath.Glob(filepath.Join(nodes[id-1].dir, "partitions", fmt.Sprintf("m-*-%d", p.Partition), "log"))
			if len(dirs) != 1 {
				t.Fatalf("node %d partition %d: log dirs %v", id, p.Partition, dirs)
			}
			logs = append(logs, dataPayloads(t, dirs[0]))
		}
		for i, l := range logs[1:] {
			if len(l) != len(logs[0]) {
				t.Fatalf("partition %d: node %d has %d data entries, node %d has %d", p.Partition,
					p.Replicas[0], len(logs[0]), p.Replicas[i+1], len(l))
			}
			for j := range l {
				if string(l[j]) != string(logs[0][j]) {
					t.Fatalf("partition %d: replicas differ at data entry %d", p.Partition, j)
				}
			}
		}
	}
}
