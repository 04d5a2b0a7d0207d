package test

import (
	"context"
	"errors"
	"fmt"
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
