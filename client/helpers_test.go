package client

import (
	"context"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"weir/broker"
	weircluster "weir/cluster"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// hashicorp/raft's metrics sink, started once per process.
		goleak.IgnoreTopFunction("github.com/armon/go-metrics.(*InmemSink).run"),
		goleak.IgnoreTopFunction("github.com/hashicorp/go-metrics.(*InmemSink).run"),
	)
}

// startBroker runs a real one-node broker in the process on 127.0.0.1 and
// returns its address. It is closed (and Serve waited for) at cleanup.
// Group members heartbeat every 20ms, so rebalances settle within a test's
// patience.
func startBroker(tb testing.TB) string {
	tb.Helper()
	b, err := broker.Open(broker.Config{
		DataDir:                tb.TempDir(),
		RaftHeartbeatTimeout:   50 * time.Millisecond,
		RaftElectionTimeout:    50 * time.Millisecond,
		RaftLeaderLeaseTimeout: 50 * time.Millisecond,
		Groups:                 weircluster.CoordinatorConfig{HeartbeatInterval: 20 * time.Millisecond},
	})
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Close()
		tb.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- b.Serve(ln) }()
	tb.Cleanup(func() {
		if err := b.Close(); err != nil {
			tb.Errorf("broker Close: %v", err)
		}
		if err := <-served; err != nil {
			tb.Errorf("broker Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// testContext returns a context that ends with the test, bounded so that a
// hang fails instead of running into the test binary's timeout.
func testContext(tb testing.TB, d time.Duration) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	tb.Cleanup(cancel)
	return ctx
}

// newAdmin returns an Admin on addr, closed at cleanup.
func newAdmin(tb testing.TB, addr string, opts ...Opt) *Admin {
	tb.Helper()
	a, err := NewAdmin(append([]Opt{SeedBrokers(addr)}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { a.Close() })
	return a
}

// createTopic creates a topic with fsync off (the tests are not about
// durability, and fsync per batch makes them slow).
func createTopic(tb testing.TB, addr, name string, partitions int32, configs map[string]string) {
	tb.Helper()
	all := map[string]string{"fsync": "never"}
	for k, v := range configs {
		all[k] = v
	}
	ctx := testContext(tb, 30*time.Second)
	if err := newAdmin(tb, addr).CreateTopic(ctx, name, partitions, 1, all); err != nil {
		tb.Fatal(err)
	}
}

// newProducer returns a Producer on addr, closed at cleanup.
func newProducer(tb testing.TB, addr string, opts ...Opt) *Producer {
	tb.Helper()
	p, err := NewProducer(append([]Opt{SeedBrokers(addr)}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			tb.Errorf("producer Shutdown: %v", err)
		}
	})
	return p
}

// newConsumer returns a Consumer on addr, closed at cleanup.
func newConsumer(tb testing.TB, addr string, opts ...Opt) *Consumer {
	tb.Helper()
	c, err := NewConsumer(append([]Opt{SeedBrokers(addr)}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// pollN polls until n records have come, failing on errors and at the
// context's end.
func pollN(tb testing.TB, ctx context.Context, c *Consumer, n int) []*Record {
	tb.Helper()
	var out []*Record
	for len(out) < n {
		recs, err := c.Poll(ctx)
		if err != nil {
			tb.Fatalf("Poll after %d of %d records: %v", len(out), n, err)
		}
		out = append(out, recs...)
	}
	return out
}

// waitFor waits until cond holds, checking every few milliseconds, and
// fails the test at ctx's end.
func waitFor(tb testing.TB, ctx context.Context, cond func() bool) {
	tb.Helper()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-ctx.Done():
			tb.Fatal("condition never held")
		}
	}
}
