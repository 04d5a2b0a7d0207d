package test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
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

// End-to-end fault tests of a three-node cluster: a node frozen with
// SIGSTOP, a node cut off the network in both directions, the metadata
// controller killed under consumer groups. Each checks that acknowledged
// records survive exactly once, in order, and that the replicas agree.
//
// Topology. Node N (1..3) listens on 127.0.0.N: its client port, and its
// peer port (the Raft traffic of every group). With proxies, a faultProxy
// on 127.0.0.N forwards to the peer port and the node advertises the
// proxy (--peer-advertise), so every Raft connection to node N passes
// through N's proxy; and since a node dials its peers from its peer
// listener's IP (internal/peer, sourceAddr), the proxies can also tell the
// connections coming from node N. Isolating N cuts N's proxy (everything
// to N) and, on the other proxies, the connections from 127.0.0.N
// (everything from N). Client ports are not proxied: the test's clients,
// and the brokers' own requests to each other's client ports (JoinCluster,
// ReportLeaders), still reach every node.

// faultNode is one weir process of a fault test cluster.
type faultNode struct {
	id        int
	ip        string // 127.0.0.<id>
	dir       string
	client    string // client listener
	peers     string // the node's own peer listener
	advertise string // --peer-advertise: the proxy in front of peers, or peers
	proxy     *faultProxy
	join      string
	// srv is the current process. The test goroutine replaces it (start)
	// and reads it freely; other goroutines use running().
	srv   *server
	srvMu sync.Mutex
	past  []*server // earlier processes, for their logs
}

func (n *faultNode) start(t *testing.T) {
	t.Helper()
	args := []string{"--node-id", strconv.Itoa(n.id), "--peer-listen", n.peers, "--peer-advertise", n.advertise}
	if n.join != "" {
		args = append(args, "--join", n.join)
	}
	srv := startServerOn(t, n.dir, n.client, args...)
	n.srvMu.Lock()
	if n.srv != nil {
		n.past = append(n.past, n.srv)
	}
	n.srv = srv
	n.srvMu.Unlock()
}

// running returns the node's process, and whether it is running.
func (n *faultNode) running() (*server, bool) {
	n.srvMu.Lock()
	srv := n.srv
	n.srvMu.Unlock()
	select {
	case <-srv.exited:
		return srv, false
	default:
		return srv, true
	}
}

// stop ends the node with SIGTERM (a clean shutdown) and fails the test
// unless it exits 0 within 30 s. If it hangs, SIGQUIT makes the Go runtime
// print every goroutine's stack; the node's whole stderr is then kept in a
// file named in the failure.
func (n *faultNode) stop(t *testing.T) {
	t.Helper()
	s := n.srv
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		if code := s.cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("%v exited with %d after SIGTERM; stderr in %s", n, code, n.keepStderr(t))
		}
		return
	case <-time.After(30 * time.Second):
	}
	s.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		s.kill()
	}
	t.Fatalf("%v did not stop within 30 s of SIGTERM; its goroutines (SIGQUIT) and logs are in %s", n, n.keepStderr(t))
}

// keepStderr writes the node's stderr to a file that outlives the test and
// returns its name.
func (n *faultNode) keepStderr(t *testing.T) string {
	f, err := os.CreateTemp("", fmt.Sprintf("weir-%s-node%d-*.log", t.Name(), n.id))
	if err != nil {
		return "(not kept: " + err.Error() + ")"
	}
	defer f.Close()
	n.srvMu.Lock()
	procs := append(slices.Clone(n.past), n.srv)
	n.srvMu.Unlock()
	for i, srv := range procs {
		fmt.Fprintf(f, "=== process %d of %d (pid %d)\n", i+1, len(procs), srv.cmd.Process.Pid)
		f.WriteString(srv.stderr.String())
	}
	return f.Name()
}

// keepData copies the node's data directory (logs, Raft state) out of the
// test's temporary directory, which is removed after the test, and returns
// where: after a failure, the replicas' logs are the evidence.
func (n *faultNode) keepData(t *testing.T) string {
	dir, err := os.MkdirTemp("", fmt.Sprintf("weir-%s-node%d-data-*", t.Name(), n.id))
	if err == nil {
		err = os.CopyFS(filepath.Join(dir, "data"), os.DirFS(n.dir))
	}
	if err != nil {
		return "(not kept: " + err.Error() + ")"
	}
	return dir
}

func (n *faultNode) String() string { return fmt.Sprintf("node %d (%s)", n.id, n.ip) }

// signal sends sig to the node's process (by its pid).
func (n *faultNode) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(n.srv.cmd.Process.Pid, sig); err != nil {
		t.Fatalf("%v to %v: %v", sig, n, err)
	}
}

type faultCluster struct {
	t       *testing.T
	nodes   []*faultNode
	brokers string // every node's client address, comma-separated
}

// startFaultCluster starts three nodes on 127.0.0.1-3, node 1 first and
// the others joining it, with a faultProxy in front of each peer listener
// if proxied, and waits until the cluster status shows all three alive.
func startFaultCluster(t *testing.T, ctx context.Context, proxied bool) *faultCluster {
	t.Helper()
	c := &faultCluster{t: t}
	var addrs []string
	for i := range 3 {
		ip := fmt.Sprintf("127.0.0.%d", i+1)
		n := &faultNode{id: i + 1, ip: ip, dir: t.TempDir(), client: freeAddrOn(t, ip), peers: freeAddrOn(t, ip)}
		n.advertise = n.peers
		if proxied {
			n.proxy = newFaultProxy(t, ip+":0", n.peers)
			n.advertise = n.proxy.Addr()
		}
		c.nodes = append(c.nodes, n)
		addrs = append(addrs, n.client)
	}
	c.brokers = strings.Join(addrs, ",")
	for i, n := range c.nodes {
		if i > 0 {
			n.join = c.nodes[0].client
		}
		n.start(t)
	}
	t.Cleanup(func() {
		// Before the processes are killed (cleanups run last first).
		if t.Failed() {
			for _, n := range c.nodes {
				t.Logf("%v's log: %s, data: %s", n, n.keepStderr(t), n.keepData(t))
			}
		}
	})
	waitUntil(t, 30*time.Second, "three nodes up", func() (bool, string) {
		out, err := weirAt(ctx, c.brokers, "", "cluster", "status", "--json")
		return err == nil && strings.Count(out, `"Alive":true`) == 3, fmt.Sprint(out, err)
	})
	return c
}

func (c *faultCluster) createTopic(ctx context.Context, topic string, partitions, replicas int) {
	c.t.Helper()
	if _, err := weirAt(ctx, c.brokers, "", "topic", "create", topic,
		"--partitions", strconv.Itoa(partitions), "--replicas", strconv.Itoa(replicas)); err != nil {
		c.t.Fatal(err)
	}
}

// isolate cuts n off the other nodes in both directions: new connections
// are held without an answer, as across a network partition.
func (c *faultCluster) isolate(n *faultNode) {
	n.proxy.Cut(cutBlackhole)
	for _, o := range c.nodes {
		if o != n {
			o.proxy.CutFrom(n.ip, cutBlackhole)
		}
	}
}

func (c *faultCluster) heal() {
	for _, n := range c.nodes {
		n.proxy.Heal()
	}
}

// controller returns the node that leads the metadata group, per `weir
// cluster status --json`, or nil.
func (c *faultCluster) controller(ctx context.Context) (*faultNode, string) {
	out, err := weirAt(ctx, c.brokers, "", "cluster", "status", "--json")
	if err != nil {
		return nil, err.Error()
	}
	var nodes []client.NodeStatus
	if err := json.Unmarshal([]byte(out), &nodes); err != nil {
		return nil, err.Error()
	}
	for _, s := range nodes {
		if s.Controller && s.Alive && s.ID >= 1 && int(s.ID) <= len(c.nodes) {
			return c.nodes[s.ID-1], out
		}
	}
	return nil, out
}

// replicaState is one replica as its node's /metrics shows it.
type replicaState struct {
	hw     int64
	leader bool // leads the partition and is ready
}

var partitionMetric = regexp.MustCompile(`^(weir_partition_high_watermark|weir_partition_leader)\{partition="(\d+)",topic="([^"]*)"\} (\S+)$`)

// replicas scrapes n's /metrics for its replicas of topic, by partition.
// A frozen or dead node fails within a few seconds.
func (n *faultNode) replicas(ctx context.Context, topic string) (map[int32]replicaState, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	srv, _ := n.running()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+srv.http+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	out := map[int32]replicaState{}
	for _, line := range strings.Split(string(body), "\n") {
		m := partitionMetric.FindStringSubmatch(line)
		if m == nil || m[3] != topic {
			continue
		}
		p, _ := strconv.ParseInt(m[2], 10, 32)
		v, err := strconv.ParseFloat(m[4], 64)
		if err != nil {
			return nil, fmt.Errorf("metric line %q: %v", line, err)
		}
		s := out[int32(p)]
		if m[1] == "weir_partition_high_watermark" {
			s.hw = int64(v)
		} else {
			s.leader = v == 1
		}
		out[int32(p)] = s
	}
	return out, nil
}

// waitLeader waits until exactly one node (of nodes) says it leads
// partition p of topic, and returns it.
func (c *faultCluster) waitLeader(ctx context.Context, topic string, p int32) *faultNode {
	c.t.Helper()
	var leader *faultNode
	waitUntil(c.t, 30*time.Second, fmt.Sprintf("one leader of %s/%d", topic, p), func() (bool, string) {
		var leaders []*faultNode
		for _, n := range c.nodes {
			rs, err := n.replicas(ctx, topic)
			if err != nil {
				return false, err.Error()
			}
			if rs[p].leader {
				leaders = append(leaders, n)
			}
		}
		if len(leaders) == 1 {
			leader = leaders[0]
		}
		return len(leaders) == 1, fmt.Sprint(leaders)
	})
	return leader
}

// highWatermarks returns, for each partition of topic, the highest high
// watermark that the nodes but skip report.
func (c *faultCluster) highWatermarks(ctx context.Context, topic string, skip *faultNode) map[int32]int64 {
	c.t.Helper()
	hw := map[int32]int64{}
	for _, n := range c.nodes {
		if n == skip {
			continue
		}
		rs, err := n.replicas(ctx, topic)
		if err != nil {
			c.t.Fatalf("%v: %v", n, err)
		}
		for p, s := range rs {
			hw[p] = max(hw[p], s.hw)
		}
	}
	return hw
}

// runningHighWatermarks is highWatermarks over the nodes whose process is
// running; a node that does not answer counts for nothing.
func (c *faultCluster) runningHighWatermarks(ctx context.Context, topic string) map[int32]int64 {
	hw := map[int32]int64{}
	for _, n := range c.nodes {
		if _, ok := n.running(); !ok {
			continue
		}
		rs, err := n.replicas(ctx, topic)
		if err != nil {
			continue
		}
		for p, s := range rs {
			hw[p] = max(hw[p], s.hw)
		}
	}
	return hw
}

// waitCaughtUp waits until n's replicas of topic have every partition's
// high watermark at least at want.
func (c *faultCluster) waitCaughtUp(ctx context.Context, n *faultNode, topic string, want map[int32]int64, timeout time.Duration) time.Duration {
	c.t.Helper()
	return waitUntil(c.t, timeout, fmt.Sprintf("%v to catch up to %v", n, want), func() (bool, string) {
		rs, err := n.replicas(ctx, topic)
		if err != nil {
			return false, err.Error()
		}
		for p, hw := range want {
			if rs[p].hw < hw {
				return false, fmt.Sprint(rs)
			}
		}
		return true, ""
	})
}
