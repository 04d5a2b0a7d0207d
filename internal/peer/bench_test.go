package peer

import (
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// BenchmarkIdleGroups measures what idle Raft groups cost: three in-process
// nodes host N groups with a replica on every node (N replicas per node),
// elect their leaders, and then do nothing but heartbeat. It reports the
// process's CPU time (getrusage, user+system) over a fixed window as a
// percentage of one core per node, and the goroutines and live heap per
// replica, and the heap in use and resident set per node after the window.
//
// N defaults to 1000 (WEIR_PEER_IDLE_GROUPS) and the window to 10s
// (WEIR_PEER_IDLE_WINDOW); WEIR_PEER_IDLE_PROFILE=file writes a CPU profile
// of the window. It ignores b.N: run it with -benchtime=1x.
//
//	go test -run '^$' -bench IdleGroups -benchtime 1x ./internal/peer
func BenchmarkIdleGroups(b *testing.B) {
	const nodes = 3
	groups := envInt(b, "WEIR_PEER_IDLE_GROUPS", 1000)
	window := 10 * time.Second
	if s := os.Getenv("WEIR_PEER_IDLE_WINDOW"); s != "" {
		var err error
		if window, err = time.ParseDuration(s); err != nil {
			b.Fatal(err)
		}
	}
	commitTimeout := envDuration(b, "WEIR_PEER_IDLE_COMMIT_TIMEOUT", 50*time.Millisecond)
	start := time.Now()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c := startRaftCluster(b, nodes, groups, Options{Logger: logger}, func(conf *raft.Config) {
		conf.HeartbeatTimeout = time.Second
		conf.ElectionTimeout = time.Second
		conf.LeaderLeaseTimeout = 500 * time.Millisecond
		conf.CommitTimeout = commitTimeout
	})
	c.waitLeaders(b, 3*time.Minute)
	b.Logf("%d groups x %d nodes: leaders elected in %v", groups, nodes, time.Since(start).Round(time.Millisecond))

	if path := os.Getenv("WEIR_PEER_IDLE_PROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	before, wallStart := rusage(b), time.Now()
	b.ResetTimer()
	// Idle: nothing to do but wait; the Raft groups heartbeat meanwhile.
	time.Sleep(window)
	b.StopTimer()
	cpu, wall := rusage(b)-before, time.Since(wallStart)

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	replicas := float64(nodes * groups)
	perNode := 100 * cpu.Seconds() / wall.Seconds() / nodes
	b.ReportMetric(perNode, "cpu%/node")
	b.ReportMetric(float64(runtime.NumGoroutine())/replicas, "goroutines/replica")
	b.ReportMetric(float64(ms.HeapAlloc)/replicas/1024, "heapKiB/replica")
	b.ReportMetric(float64(ms.HeapInuse)/nodes/(1<<20), "heapInuseMiB/node")
	rss := vmRSS(b)
	b.ReportMetric(float64(rss)/nodes/(1<<20), "rssMiB/node")
	b.Logf("after the window: heap in use %d MiB, RSS %d MiB (the process: %d nodes)", ms.HeapInuse>>20, rss>>20, nodes)
	// NB: not an assertion. On a machine too small for the load (3,000
	// replicas on two cores), a keepalive ping can wait past
	// ConnectionWriteTimeout during the election storm, and the session is
	// replaced: a redial, not a leak. TestRaftGroupsShareOneConnection
	// asserts the count.
	for i, m := range c.muxes {
		st := m.Stats()
		b.Logf("node %d: %+v", i, st)
		if st.InboundSessions != nodes-1 || st.OutboundSessions != nodes-1 {
			b.Errorf("node %d: %d inbound, %d outbound sessions; want %d each", i, st.InboundSessions, st.OutboundSessions, nodes-1)
		}
	}
	b.Logf("idle CPU: %.1f%% of a core per node (%d replicas per node, %v window)", perNode, groups, window)
}

// vmRSS is the process's resident set size, from /proc/self/status (0
// where there is none).
func vmRSS(b *testing.B) uint64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				b.Fatalf("VmRSS %q: %v", rest, err)
			}
			return kib << 10
		}
	}
	return 0
}

// rusage is the process's user+system CPU time so far.
func rusage(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func envInt(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}

func envDuration(b *testing.B, name string, def time.Duration) time.Duration {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		b.Fatalf("%s=%q: want a positive duration", name, s)
	}
	return d
}
