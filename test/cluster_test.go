package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	wlog "weir/log"
)

// clusterNode is one weir process of a test cluster, restartable on the
// same addresses and data directory.
type clusterNode struct {
	id                 int
	dir, client, peers string
	join               string
	extra              []string // more flags of weir serve
	srv                *server
}

func (n *clusterNode) start(t *testing.T) {
	t.Helper()
	args := []string{"--node-id", strconv.Itoa(n.id), "--peer-listen", n.peers}
	if n.join != "" {
		args = append(args, "--join", n.join)
	}
	args = append(args, n.extra...)
	n.srv = startServerOn(t, n.dir, n.client, args...)
}

// freeAddr returns a 127.0.0.1 address with a port free a moment ago, for
// a node that must keep its address across restarts. The port is below
// Linux's ephemeral range (32768 and up), from which the kernel picks the
// local ports of outgoing connections: a port from there could be taken by
// some connection while its node is down, and the restart would fail.
func freeAddr(t *testing.T) string { return freeAddrOn(t, "127.0.0.1") }

// handedOut holds every port freeAddrOn has returned in this test process:
// a port is free until its node binds it, so two calls in a row could
// otherwise return the same one (it happened: a node's listen and peer
// addresses collided and it refused to start).
var handedOut struct {
	sync.Mutex
	ports map[int]bool
}

// freeAddrOn is freeAddr on ip; it never returns a port twice.
func freeAddrOn(t *testing.T, ip string) string {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.ports == nil {
		handedOut.ports = make(map[int]bool)
	}
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		if handedOut.ports[port] {
			continue
		}
		addr := net.JoinHostPort(ip, strconv.Itoa(port))
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
			handedOut.ports[port] = true
			return addr
		}
	}
	t.Fatalf("no free port in 20000-32000 on %s", ip)
	return ""
}

// weirAt runs a weir command against brokers and returns stdout, or the
// error with stderr.
func weirAt(ctx context.Context, brokers, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, weirBin, append(args, "--brokers", brokers)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("weir %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// TestClusterFailover runs three weir processes: a topic with 6 partitions
// and 3 replicas takes batches of records with acks all while the leader
// of partition 0 is killed (kill -9) and restarted, twice. Every
// acknowledged record is then read back exactly once, in order per
// partition, and the replicas' logs, read from their files, agree.
func TestClusterFailover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	nodes := make([]*clusterNode, 3)
	for i := range nodes {
		nodes[i] = &clusterNode{id: i + 1, dir: t.TempDir(), client: freeAddr(t), peers: freeAddr(t)}
		if i > 0 {
			nodes[i].join = nodes[0].client
		}
		nodes[i].start(t)
	}
	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, n.client)
	}
	brokers := strings.Join(addrs, ",")
	waitUntil(t, 30*time.Second, "three nodes up", func() (bool, string) {
		out, err := weirAt(ctx, brokers, "", "cluster", "status", "--json")
		return err == nil && strings.Count(out, `"Alive":true`) == 3, out
	})
	if _, err := weirAt(ctx, brokers, "", "topic", "create", "t", "--partitions", "6", "--replicas", "3"); err != nil {
		t.Fatal(err)
	}

	var acked []string
	produce := func(round int) {
		t.Helper()
		text, lines := keyedLines(fmt.Sprintf("r%d", round), 0, 300)
		deadline := time.Now().Add(30 * time.Second)
		for {
			// The same lines again after a failed attempt: the records of a
			// failed run may or may not be there; only acknowledged runs
			// count, and they must be there exactly once.
			_, err := weirAt(ctx, brokers, text, "produce", "t", "--key-separator", ":")
			if err == nil {
				acked = append(acked, lines...)
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: no acknowledged produce: %v", round, err)
			}
			text, lines = keyedLines(fmt.Sprintf("r%d-retry%d", round, time.Now().UnixNano()), 0, 300)
		}
	}
	leaderOf := func(p int) int {
		out, err := weirAt(ctx, brokers, "", "topic", "describe", "t", "--json")
		if err != nil {
			return -1
		}
		var d struct {
			Partitions []struct{ Partition, LeaderID int32 }
		}
		if json.Unmarshal([]byte(out), &d) != nil || len(d.Partitions) <= p {
			return -1
		}
		return int(d.Partitions[p].LeaderID)
	}
	produce(0)
	for round := 1; round <= 2; round++ {
		var victim *clusterNode
		waitUntil(t, 30*time.Second, "partition 0 has a leader", func() (bool, string) {
			l := leaderOf(0)
			if l >= 1 && l <= 3 {
				victim = nodes[l-1]
			}
			return victim != nil, fmt.Sprint(l)
		})
		victim.srv.kill()
		produce(round) // two of three replicas: still a quorum
		victim.start(t)
	}
	produce(3)

	checkReadOnceInOrder(t, ctx, brokers, "t", acked)

	// The replicas' logs agree: stop the nodes, read the files.
	for _, n := range nodes {
		n.srv.stop()
	}
	for p := range 6 {
		var logs [][][]byte
		for _, n := range nodes {
			dirs, _ := filepath.Glob(filepath.Join(n.dir, "partitions", fmt.Sprintf("t-*-%d", p), "log"))
			if len(dirs) != 1 {
				t.Fatalf("node %d partition %d: log dirs %v", n.id, p, dirs)
			}
			logs = append(logs, dataPayloads(t, dirs[0]))
		}
		slices.SortFunc(logs, func(a, b [][]byte) int { return len(a) - len(b) })
		for _, l := range logs[1:] {
			for i := range logs[0] {
				if !bytes.Equal(logs[0][i], l[i]) {
					t.Fatalf("partition %d: replicas differ at data entry %d", p, i)
				}
			}
		}
		if len(logs[0]) == 0 {
			t.Fatalf("partition %d: a replica has no data", p)
		}
	}
}

// checkReadOnceInOrder consumes the whole topic with the CLI and checks
// that offsets are dense per partition and every acknowledged line is read
// exactly once.
func checkReadOnceInOrder(t *testing.T, ctx context.Context, brokers, topic string, acked []string) {
	t.Helper()
	out, err := weirAt(ctx, brokers, "", "consume", topic, "--from", "earliest", "--format", "%p %o %v", "--idle-exit", "3s")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	lastOffset := map[string]int64{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.SplitN(line, " ", 3)
		if len(f) != 3 {
			t.Fatalf("bad line %q", line)
		}
		off, _ := strconv.ParseInt(f[1], 10, 64)
		if last, ok := lastOffset[f[0]]; ok && off != last+1 {
			t.Fatalf("partition %s: offset %d after %d", f[0], off, last)
		}
		lastOffset[f[0]] = off
		seen[f[2]]++
	}
	for _, line := range acked {
		if seen[line] != 1 {
			t.Fatalf("acknowledged record %q read %d times", line, seen[line])
		}
	}
}

// dataPayloads reads the payloads of a log's data entries.
func dataPayloads(t *testing.T, dir string) [][]byte {
	t.Helper()
	l, err := wlog.Open(dir, wlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var out [][]byte
	for i := l.FirstIndex(); i <= l.LastIndex() && l.LastIndex() > 0; i++ {
		e, err := l.Read(i)
		if err != nil {
			t.Fatalf("%s: entry %d: %v", dir, i, err)
		}
		if e.Type == wlog.TypeData {
			out = append(out, e.Payload)
		}
	}
	return out
}
