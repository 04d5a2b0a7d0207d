package test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestCLIRoundTrip drives a real `weir serve` with the CLI: create a topic,
// produce lines, read them back, describe, alter and delete it.
func TestCLIRoundTrip(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := startServer(t, t.TempDir())
	s.weir(ctx, "", "topic", "create", "events", "--partitions", "3", "--config", "retention.ms=3600000")
	var lines []string
	for i := range 500 {
		lines = append(lines, fmt.Sprintf("k%d:value-%d", i%7, i))
	}
	s.weir(ctx, strings.Join(lines, "\n")+"\n", "produce", "events", "--key-separator", ":")
	out := s.weir(ctx, "", "consume", "events", "-n", "500", "--format", "%p\t%o\t%T\t%k\t%v")
	got := map[string]string{} // value -> key
	perPartition := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 5 {
			t.Fatalf("consume line %q: want 5 tab-separated fields", line)
		}
		// Offsets within a partition are dense and in order.
		if want := fmt.Sprint(perPartition[f[0]]); f[1] != want {
			t.Fatalf("partition %s: offset %s, want %s", f[0], f[1], want)
		}
		perPartition[f[0]]++
		got[f[4]] = f[3]
	}
	if len(got) != 500 {
		t.Fatalf("consumed %d distinct records, want 500", len(got))
	}
	for i := range 500 {
		if k := got[fmt.Sprintf("value-%d", i)]; k != fmt.Sprintf("k%d", i%7) {
			t.Fatalf("value-%d has key %q", i, k)
		}
	}
	desc := s.weir(ctx, "", "topic", "describe", "events", "--json")
	if !strings.Contains(desc, `"retention.ms"`) || !strings.Contains(desc, `"3600000"`) {
		t.Fatalf("describe does not show the setting:\n%s", desc)
	}
	s.weir(ctx, "", "topic", "alter", "events", "--config", "retention.ms=60000")
	if desc := s.weir(ctx, "", "topic", "describe", "events"); !strings.Contains(desc, "60000") {
		t.Fatalf("alter did not take:\n%s", desc)
	}
	if out, err := s.tryWeir(ctx, "", "topic", "create", "events"); err == nil || !strings.Contains(out, "exists") {
		t.Fatalf("creating a topic twice: %v\n%s", err, out)
	}
	if out, err := s.tryWeir(ctx, "", "topic", "create", "bad/name"); err == nil {
		t.Fatalf("creating a topic with a bad name succeeded:\n%s", out)
	}
	// Metrics and health on the HTTP listener.
	for path, want := range map[string]string{
		"/healthz": "ok",
		"/metrics": `weir_partition_high_watermark{partition="0",topic="events"}`,
	} {
		resp, err := http.Get("http://" + s.http + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Fatalf("GET %s: %d, body lacks %q:\n%.2000s", path, resp.StatusCode, want, body)
		}
	}
	s.weir(ctx, "", "topic", "delete", "events")
	if list := s.weir(ctx, "", "topic", "list"); strings.Contains(list, "events") {
		t.Fatalf("deleted topic still listed:\n%s", list)
	}
	s.stop()
}

// TestServeRestartKeepsData: 200,000 records produced through the CLI come
// back identical and in order per partition; after a clean restart
// (SIGTERM) they are all still there, and after a kill -9 during a second
// produce run everything acknowledged before the kill is there once.
func TestServeRestartKeepsData(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	s := startServer(t, dir)
	s.weir(ctx, "", "topic", "create", "durable", "--partitions", "2")
	const n = 200_000
	var lines []string
	for i := range n {
		lines = append(lines, fmt.Sprintf("r%d", i))
	}
	s.weir(ctx, strings.Join(lines, "\n")+"\n", "produce", "durable", "--partition", "0")
	readAll := func(s *server, count int) []string {
		t.Helper()
		return strings.Fields(s.weir(ctx, "", "consume", "durable", "--partition", "0", "-n", fmt.Sprint(count)))
	}
	if got := readAll(s, n); strings.Join(got, ",") != strings.Join(lines, ",") {
		t.Fatalf("read back %d records, not the %d produced in order", len(got), n)
	}
	addr := s.addr
	s.stop()
	s = startServerOn(t, dir, addr)
	if got := readAll(s, n); strings.Join(got, ",") != strings.Join(lines, ",") {
		t.Fatalf("after a clean restart: %d records, not the %d produced in order", len(got), n)
	}

	// A second run, killed while it produces: the CLI prints nothing per
	// record, so acknowledged ones are counted from the high watermark the
	// broker reports before the kill.
	more := make([]string, 0, n)
	for i := range n {
		more = append(more, fmt.Sprintf("s%d", i))
	}
	produceCtx, stopProducing := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.tryWeir(produceCtx, strings.Join(more, "\n")+"\n", "produce", "durable", "--partition", "0")
	}()
	var acked int
	deadline := time.Now().Add(30 * time.Second)
	for acked < 1000 && time.Now().Before(deadline) {
		out, err := s.tryWeir(ctx, "", "topic", "describe", "durable", "--json")
		if err == nil {
			var hw int
			if i := strings.Index(out, `"HighWatermark": `); i >= 0 {
				fmt.Sscan(out[i+len(`"HighWatermark": `):], &hw)
			}
			acked = hw - n
		}
	}
	s.kill()
	stopProducing()
	<-done
	if acked < 1 {
		t.Fatalf("nothing of the second run was acknowledged before the kill")
	}
	s = startServerOn(t, dir, addr)
	// Everything the partition holds now: the first run, then a prefix of
	// the second, each record once and in order, and at least what was
	// acknowledged before the kill.
	got := strings.Fields(s.weir(ctx, "", "consume", "durable", "--partition", "0", "--idle-exit", "2s"))
	if len(got) < n+acked {
		t.Fatalf("after the kill, %d records; the %d acknowledged before it are not all there", len(got), n+acked)
	}
	if strings.Join(got[:n], ",") != strings.Join(lines, ",") {
		t.Fatal("the first run's records changed after the kill")
	}
	for i, v := range got[n:] {
		if i >= len(more) || v != more[i] {
			t.Fatalf("after the kill, record %d of the second run is %q, want %q (no gap, no duplicate)", i, v, more[min(i, len(more)-1)])
		}
	}
}
