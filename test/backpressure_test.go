package test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"weir/client"
)

// rssBytes reads a process's resident set size from /proc.
func rssBytes(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatalf("reading the broker's memory: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc status")
	return 0
}

// TestProducerFasterThanDiskKeepsBrokerBounded: several producers push as
// fast as they can into a partition that fsyncs every write. The broker's
// memory must stay bounded (it holds producers back instead of queueing),
// and every record it acknowledged must be readable.
func TestProducerFasterThanDiskKeepsBrokerBounded(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Fatalf("this test reads /proc: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := startServer(t, t.TempDir())
	s.weir(ctx, "", "topic", "create", "flood", "--partitions", "1", "--config", "fsync=always")

	const (
		producers   = 4
		valueSize   = 64 << 10
		runFor      = 8 * time.Second
		rssLimit    = 768 << 20 // budgets: 256 MiB of requests, 128 MiB waiting for Raft
		bufferBytes = 256 << 20 // per producer: far more than the disk takes in the run
	)
	var acked atomic.Int64
	var failMu sync.Mutex
	var failed error
	var wg sync.WaitGroup
	produceCtx, stopProducing := context.WithTimeout(ctx, runFor)
	defer stopProducing()
	value := make([]byte, valueSize)
	for range producers {
		p, err := client.NewProducer(client.SeedBrokers(s.addr), client.MaxBufferedBytes(bufferBytes), client.BatchBytes(1<<20))
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for produceCtx.Err() == nil {
				p.Produce(produceCtx, &client.Record{Topic: "flood", Value: value}, func(_ *client.Record, err error) {
					switch {
					case err == nil:
						acked.Add(1)
					case produceCtx.Err() != nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)):
						// Still buffered when the run ended: never sent.
					default:
						failMu.Lock()
						if failed == nil {
							failed = err
						}
						failMu.Unlock()
					}
				})
			}
			// Let what was buffered finish, then stop.
			flushCtx, cancel := context.WithTimeout(ctx, time.Minute)
			p.Flush(flushCtx)
			cancel()
			p.Close()
		}()
	}
	var maxRSS int64
	for produceCtx.Err() == nil {
		maxRSS = max(maxRSS, rssBytes(t, s.cmd.Process.Pid))
		select {
		case <-produceCtx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	wg.Wait()
	maxRSS = max(maxRSS, rssBytes(t, s.cmd.Process.Pid))
	t.Logf("acknowledged %d records of %d KiB; broker RSS peaked at %d MiB", acked.Load(), valueSize>>10, maxRSS>>20)
	if failed != nil {
		t.Fatalf("a record failed: %v", failed)
	}
	if maxRSS > rssLimit {
		t.Fatalf("broker RSS reached %d MiB, over %d MiB", maxRSS>>20, rssLimit>>20)
	}
	if acked.Load() == 0 {
		t.Fatal("nothing was acknowledged")
	}
	// Nothing acknowledged was dropped: the partition holds at least every
	// acknowledged record (a record whose acknowledgement was lost to the
	// end of the run may be there too), and they read back.
	out := s.weir(ctx, "", "topic", "describe", "flood", "--json")
	var hw int64
	if i := strings.Index(out, `"HighWatermark": `); i >= 0 {
		fmt.Sscan(out[i+len(`"HighWatermark": `):], &hw)
	}
	if hw < acked.Load() {
		t.Fatalf("high watermark %d below the %d acknowledged records", hw, acked.Load())
	}
	c, err := client.NewConsumer(client.SeedBrokers(s.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Assign("flood", 0)
	var read int64
	for read < hw {
		recs, err := c.Poll(ctx)
		if err != nil {
			t.Fatalf("reading back after %d of %d records: %v", read, hw, err)
		}
		for _, r := range recs {
			if len(r.Value) != valueSize {
				t.Fatalf("record %d has %d bytes, want %d", r.Offset, len(r.Value), valueSize)
			}
		}
		read += int64(len(recs))
	}
}

// TestTopicFullWaitsForRetention: a topic capped by max.bytes with
// discard=reject answers Backpressure when full; a producer waits (the
// client backs off by the retry hint) and gets through once retention has
// deleted old segments. A producer that cannot wait that long gets a clear
// error. Nothing acknowledged is lost.
func TestTopicFullWaitsForRetention(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := startServer(t, t.TempDir())
	s.weir(ctx, "", "topic", "create", "capped", "--partitions", "1",
		"--config", "max.bytes=16384", "--config", "discard=reject",
		"--config", "segment.bytes=4096", "--config", "retention.ms=500")
	p, err := client.NewProducer(client.SeedBrokers(s.addr), client.Linger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	value := make([]byte, 1000)
	const records = 30 // about 30 KB: twice max.bytes
	for i := range records {
		if err := p.ProduceSync(ctx, &client.Record{Topic: "capped", Value: value}); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	// It was held back on the way, not dropped: the broker counted
	// Backpressure answers, and every record got an offset.
	resp, err := http.Get("http://" + s.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `weir_backpressure_total{reason="topic"}`) {
		t.Fatalf("no Backpressure answers counted; the cap did not hold anything back")
	}
	out := s.weir(ctx, "", "topic", "describe", "capped", "--json")
	if !strings.Contains(out, fmt.Sprintf(`"HighWatermark": %d`, records)) {
		t.Fatalf("high watermark is not %d:\n%s", records, out)
	}

	// A producer that may not wait: a topic that never frees space.
	s.weir(ctx, "", "topic", "create", "stuck", "--partitions", "1",
		"--config", "max.bytes=4096", "--config", "discard=reject", "--config", "retention.ms=-1")
	impatient, err := client.NewProducer(client.SeedBrokers(s.addr), client.Linger(0), client.DeliveryTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer impatient.Close()
	var lastErr error
	for i := 0; i < 20 && lastErr == nil; i++ {
		lastErr = impatient.ProduceSync(ctx, &client.Record{Topic: "stuck", Value: value})
	}
	if lastErr == nil || !strings.Contains(lastErr.Error(), "max.bytes") {
		t.Fatalf("a producer to a full topic got %v, want a Backpressure error naming max.bytes", lastErr)
	}
}
