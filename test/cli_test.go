package test

import (
	"context"
	"fmt"
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
	s.weir(ctx, "", "topic", "delete", "events")
	if list := s.weir(ctx, "", "topic", "list"); strings.Contains(list, "events") {
		t.Fatalf("deleted topic still listed:\n%s", list)
	}
	s.stop()
}

// TestServeRestartKeepsData: records acknowledged before a kill -9 of the
// broker are all there after it restarts on the same data.
func TestServeRestartKeepsData(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	s := startServer(t, dir)
	s.weir(ctx, "", "topic", "create", "durable", "--partitions", "2")
	var lines []string
	for i := range 2000 {
		lines = append(lines, fmt.Sprintf("r%d", i))
	}
	s.weir(ctx, strings.Join(lines, "\n")+"\n", "produce", "durable")
	addr := s.addr
	s.kill()

	s = startServerOn(t, dir, addr)
	out := s.weir(ctx, "", "consume", "durable", "-n", "2000")
	seen := map[string]bool{}
	for _, v := range strings.Fields(out) {
		seen[v] = true
	}
	for _, v := range lines {
		if !seen[v] {
			t.Fatalf("record %s acknowledged before the kill is missing after restart", v)
		}
	}
	if len(seen) != 2000 {
		t.Fatalf("read %d distinct records after restart, want 2000", len(seen))
	}
}
