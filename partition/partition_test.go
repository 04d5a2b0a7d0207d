package partition

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Raft's in-memory transport and its metrics sink keep package-level
		// goroutines.
		goleak.IgnoreTopFunction("github.com/armon/go-metrics.(*InmemSink).run"),
		goleak.IgnoreTopFunction("github.com/hashicorp/go-metrics.(*InmemSink).run"),
	)
}

func TestSingleVoterProduceFetch(t *testing.T) {
	dir := t.TempDir()
	p := singleVoter(t, dir, nil)
	var want []fetched
	for i := range 20 {
		ts := int64(1_000_000 + 10*i)
		off := produce(t, p, testBatch(t, 3, ts, -1, 0, 0))
		if off != uint64(3*i) {
			t.Fatalf("batch %d at offset %d, want %d", i, off, 3*i)
		}
		for j := range 3 {
			want = append(want, fetched{offset: off + uint64(j), value: fmt.Sprintf("ts=%d i=%d", ts, j), timestamp: ts + int64(j)})
		}
	}
	check := func(p *Partition) {
		t.Helper()
		if hw := p.HighWatermark(); hw != 60 {
			t.Fatalf("high watermark %d, want 60", hw)
		}
		got := fetchAll(t, p, 0)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("fetched\n%v\nwant\n%v", got, want)
		}
		// From the middle of a batch: records below the offset are skipped.
		if got := fetchAll(t, p, 31); fmt.Sprint(got) != fmt.Sprint(want[31:]) {
			t.Fatalf("fetch from 31: %v", got)
		}
		if _, err := p.Fetch(61, 100); !errors.Is(err, ErrOffsetOutOfRange) {
			t.Fatalf("Fetch past the high watermark: %v", err)
		}
		offs, err := p.ListOffsets()
		if err != nil || offs.LogStart != 0 || offs.HighWatermark != 60 {
			t.Fatalf("ListOffsets = %+v, %v", offs, err)
		}
		for _, tc := range []struct {
			ts    int64
			off   uint64
			found bool
		}{{0, 0, true}, {1_000_001, 1, true}, {1_000_003, 3, true}, {1_000_190, 57, true}, {1_000_192, 59, true}, {1_000_193, 60, false}} {
			off, _, found, err := p.OffsetForTimestamp(tc.ts)
			if err != nil || off != tc.off || found != tc.found {
				t.Errorf("OffsetForTimestamp(%d) = %d, %v, %v; want %d, %v", tc.ts, off, found, err, tc.off, tc.found)
			}
		}
	}
	check(p)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p = singleVoter(t, dir, nil)
	waitFor(t, "high watermark after reopen", 5*time.Second, func() bool { return p.HighWatermark() == 60 })
	check(p)
	if off := produce(t, p, testBatch(t, 1, 5, -1, 0, 0)); off != 60 {
		t.Fatalf("first batch after reopen at %d, want 60", off)
	}
}

func TestIdempotentProducer(t *testing.T) {
	dir := t.TempDir()
	p := singleVoter(t, dir, nil)
	const pid = 7
	first := testBatch(t, 2, 1, pid, 0, 0)
	if off := produce(t, p, first); off != 0 {
		t.Fatalf("first batch at %d", off)
	}
	second := testBatch(t, 3, 2, pid, 0, 2)
	if off := produce(t, p, second); off != 2 {
		t.Fatalf("second batch at %d", off)
	}
	// Retries of either are acknowledged with their original offsets.
	if off := produce(t, p, first); off != 0 {
		t.Fatalf("retry of the first batch at %d, want 0", off)
	}
	if off := produce(t, p, second); off != 2 {
		t.Fatalf("retry of the second batch at %d, want 2", off)
	}
	if hw := p.HighWatermark(); hw != 5 {
		t.Fatalf("high watermark %d after retries, want 5", hw)
	}
	ctx := t.Context()
	if _, err := p.Produce(ctx, testBatch(t, 1, 3, pid, 0, 9), AcksAll); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("gap in sequence: %v", err)
	}
	if _, err := p.Produce(ctx, testBatch(t, 1, 3, pid, 1, 3), AcksAll); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("new epoch not starting at 0: %v", err)
	}
	if off := produce(t, p, testBatch(t, 1, 3, pid, 1, 0)); off != 5 {
		t.Fatalf("new epoch's first batch at %d", off)
	}
	if _, err := p.Produce(ctx, testBatch(t, 1, 3, pid, 0, 5), AcksAll); !errors.Is(err, ErrProducerFenced) {
		t.Fatalf("old epoch: %v", err)
	}
	// The producer state survives a restart (via the log and snapshots).
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p = singleVoter(t, dir, nil)
	if off := produce(t, p, testBatch(t, 1, 3, pid, 1, 0)); off != 5 {
		t.Fatalf("retry after restart at %d, want 5", off)
	}
	if off := produce(t, p, testBatch(t, 1, 4, pid, 1, 1)); off != 6 {
		t.Fatalf("next batch after restart at %d, want 6", off)
	}
}
