package log

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConcurrentReadersDuringWrites runs one writer that appends (rolling
// segments), truncates uncommitted suffixes and applies retention, while
// readers stream, read single entries, take file ranges and look up
// offsets. Readers stay at or below the commit index, as the partition
// layer's do; every entry they see must be the right one. Run with -race.
func TestConcurrentReadersDuringWrites(t *testing.T) {
	opts := Options{SegmentBytes: 8 << 10, RetentionBytes: 64 << 10, Fsync: FsyncNever}
	l := openTestLog(t, opts)
	var committed atomic.Uint64 // readers never go past it
	const total = 3000
	deadline := time.Now().Add(20 * time.Second)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	reader := func(name string, body func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := body(); err != nil {
					errs <- fmt.Errorf("%s: %w", name, err)
					return
				}
			}
		}()
	}
	checkEntry := func(e Entry) error {
		if !bytes.Equal(e.Payload, payloadFor(e.Index, 100+int(e.Index%50))) {
			return fmt.Errorf("entry %d has the wrong payload", e.Index)
		}
		return nil
	}

	// A streaming reader restarts from the log start when retention passes it.
	reader("stream", func() error {
		r, err := l.NewReader(l.FirstIndex())
		if errors.Is(err, ErrOutOfRange) {
			return nil // retention moved the start meanwhile: start over
		}
		if err != nil {
			return err
		}
		defer r.Close()
		for {
			select {
			case <-stop:
				return nil
			default:
			}
			if r.next > committed.Load() {
				continue
			}
			e, err := r.Next()
			switch {
			case errors.Is(err, ErrOutOfRange):
				return nil
			case errors.Is(err, io.EOF):
				continue
			case err != nil:
				return err
			}
			if err := checkEntry(e); err != nil {
				return err
			}
		}
	})
	reader("read", func() error {
		c := committed.Load()
		first := l.FirstIndex()
		if c < first {
			return nil
		}
		idx := first + (c-first)/2
		e, err := l.Read(idx)
		if errors.Is(err, ErrOutOfRange) {
			return nil // retention went past it
		}
		if err != nil {
			return err
		}
		return checkEntry(e)
	})
	reader("range", func() error {
		c := committed.Load()
		first := l.FirstIndex()
		if c < first {
			return nil
		}
		rng, err := l.FileRange(first, c, 4<<10)
		if errors.Is(err, ErrOutOfRange) {
			return nil
		}
		if err != nil {
			return err
		}
		defer rng.Release()
		buf := make([]byte, rng.Len)
		if _, err := rng.File.ReadAt(buf, rng.Pos); err != nil {
			return err
		}
		for len(buf) > 0 {
			e, n, err := DecodeFrame(buf)
			if err != nil {
				return err
			}
			if err := checkEntry(e); err != nil {
				return err
			}
			buf = buf[n:]
		}
		return nil
	})
	reader("lookup", func() error {
		off := l.FirstOffset()
		idx, err := l.IndexForOffset(off)
		if err != nil && !errors.Is(err, ErrOutOfRange) {
			return err
		}
		_ = idx
		_, err = l.IndexForTimestamp(0)
		return err
	})

	// The writer: append, and now and then write a suffix beyond the commit
	// index and truncate it again, as a Raft follower with a conflict would.
	var next uint64 = 1
	for next <= total && time.Now().Before(deadline) {
		n := int(next%7) + 1
		batch := make([]Entry, n)
		for i := range batch {
			idx := next + uint64(i)
			batch[i] = Entry{Index: idx, Type: TypeData, Count: 1, Timestamp: int64(idx), Payload: payloadFor(idx, 100+int(idx%50))}
		}
		if err := l.Append(batch); err != nil {
			t.Fatal(err)
		}
		if next%11 == 0 {
			if err := l.TruncateAfter(next - 1 + uint64(n/2)); err != nil {
				t.Fatal(err)
			}
			next = l.LastIndex() + 1
		} else {
			next += uint64(n)
		}
		committed.Store(l.LastIndex())
		if next%5 == 0 {
			if _, err := l.ApplyRetention(math.MaxUint64); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if next <= total {
		t.Fatalf("writer reached only %d of %d entries before the deadline", next, total)
	}
}

// A reader's read-ahead may hold entries past the commit point; once they
// are truncated and written again, it must read the new ones, not what it
// buffered.
func TestReaderDropsReadAheadAfterTruncation(t *testing.T) {
	l := openTestLog(t, Options{})
	entry := func(idx uint64, size int) Entry {
		return Entry{Index: idx, Type: TypeData, Count: 1, Timestamp: int64(idx), Payload: payloadFor(idx, size)}
	}
	if err := l.Append([]Entry{entry(1, 100), entry(2, 100), entry(3, 100)}); err != nil {
		t.Fatal(err)
	}
	r, err := l.NewReader(1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if e, err := r.Next(); err != nil || e.Index != 1 {
		t.Fatalf("first entry: %+v, %v", e, err)
	}
	// Entries 2 and 3 were read ahead; a Raft follower replaces them.
	if err := l.TruncateAfter(1); err != nil {
		t.Fatal(err)
	}
	if err := l.Append([]Entry{entry(2, 160), entry(3, 170)}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []Entry{entry(2, 160), entry(3, 170)} {
		e, err := r.Next()
		if err != nil {
			t.Fatalf("entry %d: %v", want.Index, err)
		}
		if !bytes.Equal(e.Payload, want.Payload) {
			t.Fatalf("entry %d: %d bytes of payload read, want the %d written after the truncation", want.Index, len(e.Payload), len(want.Payload))
		}
	}
}
