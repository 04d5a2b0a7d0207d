package partition

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	wlog "weir/log"
	"weir/protocol/record"
)

// testBatch builds a batch of n records whose values name their producer
// sequence, with timestamps ts, ts+1, ...
func testBatch(t testing.TB, n int, ts int64, producerID int64, epoch int16, seq int32) []byte {
	t.Helper()
	b := record.NewBuilder(record.CodecNone)
	if producerID >= 0 {
		b.SetProducer(producerID, epoch, seq)
	}
	for i := range n {
		b.Append(record.Record{
			Key:       []byte(fmt.Sprintf("k%d", i)),
			Value:     []byte(fmt.Sprintf("ts=%d i=%d", ts, i)),
			Timestamp: ts + int64(i),
		})
	}
	out, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// fetched is one record read back through Fetch.
type fetched struct {
	offset    uint64
	value     string
	timestamp int64
}

// fetchAll reads every committed record from offset on through Fetch, as a
// consumer would: frames, then batches, skipping control entries and
// records below the requested offset.
func fetchAll(t testing.TB, p *Partition, from uint64) []fetched {
	t.Helper()
	out, err := tryFetchAll(p, from)
	if err != nil {
		t.Fatalf("fetch from %d: %v", from, err)
	}
	return out
}

// tryFetchAll is fetchAll for a replica that may lose the leadership
// meanwhile: it returns the error (Fetch's wrapped, for errors.Is) instead
// of failing the test.
func tryFetchAll(p *Partition, from uint64) ([]fetched, error) {
	var out []fetched
	next := from
	for {
		res, err := p.Fetch(next, 4096)
		if err != nil {
			return nil, fmt.Errorf("Fetch(%d): %w", next, err)
		}
		if res.Frames.Len == 0 {
			res.Release()
			return out, nil
		}
		buf := make([]byte, res.Frames.Len)
		_, err = res.Frames.File.ReadAt(buf, res.Frames.Pos)
		res.Release()
		if err != nil {
			return nil, err
		}
		for len(buf) > 0 {
			e, n, err := wlog.DecodeFrame(buf)
			if err != nil {
				return nil, fmt.Errorf("frame at offset %d: %w", next, err)
			}
			buf = buf[n:]
			if e.Type != wlog.TypeData {
				continue
			}
			r, err := record.NewReader(e.Payload)
			if err != nil {
				return nil, fmt.Errorf("entry %d: %w", e.Index, err)
			}
			for {
				rec, err := r.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					return nil, fmt.Errorf("entry %d: %w", e.Index, err)
				}
				if off := e.BaseOffset + uint64(rec.OffsetDelta); off >= next {
					out = append(out, fetched{offset: off, value: string(rec.Value), timestamp: rec.Timestamp})
					next = off + 1
				}
			}
		}
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// singleVoter opens a one-replica partition in dir over an in-memory
// transport and waits until it leads.
func singleVoter(t testing.TB, dir string, mutate func(*Config)) *Partition {
	t.Helper()
	addr, trans := raft.NewInmemTransport("node-1")
	cfg := Config{
		ID: "1", Dir: dir, Transport: trans,
		Peers:            []raft.Server{{ID: "1", Address: addr}},
		HeartbeatTimeout: 50 * time.Millisecond, ElectionTimeout: 50 * time.Millisecond,
		LeaderLeaseTimeout: 50 * time.Millisecond, CommitTimeout: 5 * time.Millisecond,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	p, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	waitFor(t, "leadership", 5*time.Second, p.IsLeader)
	return p
}

func produce(t testing.TB, p *Partition, batch []byte) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	off, err := p.Produce(ctx, batch, AcksAll)
	if err != nil {
		t.Fatalf("Produce: %v", err)
	}
	return off
}
