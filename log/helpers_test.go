package log

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"
)

// testClock is a settable clock for segment age and retention.
type testClock struct{ now time.Time }

func (c *testClock) Now() time.Time          { return c.now }
func (c *testClock) Advance(d time.Duration) { c.now = c.now.Add(d) }

func newTestClock() *testClock { return &testClock{now: time.UnixMilli(1_700_000_000_000)} }

// makeEntries returns n entries starting at index first. Every fifth is a
// control entry; data entries hold i%3+1 records, timestamps grow with i,
// and payloads say which entry they belong to.
func makeEntries(first uint64, n int, payloadSize int) []Entry {
	entries := make([]Entry, n)
	for i := range entries {
		idx := first + uint64(i)
		e := Entry{Index: idx, Term: idx/10 + 1, Timestamp: int64(idx) * 1000}
		if idx%5 == 0 {
			e.Type = TypeControl
		} else {
			e.Type = TypeData
			e.Count = uint32(idx%3 + 1)
		}
		e.Payload = payloadFor(idx, payloadSize)
		entries[i] = e
	}
	return entries
}

// payloadFor is a payload of size bytes (at least the tag) naming idx.
func payloadFor(idx uint64, size int) []byte {
	tag := fmt.Sprintf("entry-%d;", idx)
	p := bytes.Repeat([]byte(tag), size/len(tag)+1)
	return p[:max(size, len(tag))]
}

// openTestLog opens a log in a fresh directory and closes it at cleanup.
func openTestLog(t testing.TB, opts Options) *Log {
	t.Helper()
	return openLogAt(t, t.TempDir(), opts)
}

func openLogAt(t testing.TB, dir string, opts Options) *Log {
	t.Helper()
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func mustAppend(t testing.TB, l *Log, entries []Entry) {
	t.Helper()
	if err := l.Append(entries); err != nil {
		t.Fatalf("Append(%d entries from %d): %v", len(entries), entries[0].Index, err)
	}
}

// reopen closes l and opens its directory again.
func reopen(t testing.TB, l *Log, opts Options) *Log {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return openLogAt(t, l.Dir(), opts)
}

// sameEntry reports how got differs from want, or "".
func sameEntry(got, want Entry) string {
	switch {
	case got.Index != want.Index:
		return fmt.Sprintf("index %d, want %d", got.Index, want.Index)
	case got.Term != want.Term || got.Type != want.Type || got.Count != want.Count || got.Timestamp != want.Timestamp:
		return fmt.Sprintf("entry %d: header %+v, want %+v", want.Index, headerOf(got), headerOf(want))
	case got.BaseOffset != want.BaseOffset:
		return fmt.Sprintf("entry %d: base offset %d, want %d", want.Index, got.BaseOffset, want.BaseOffset)
	case !bytes.Equal(got.Payload, want.Payload):
		return fmt.Sprintf("entry %d: payload differs", want.Index)
	}
	return ""
}

func headerOf(e Entry) Entry { e.Payload = nil; return e }

// checkLog asserts that l holds exactly want (with their BaseOffsets as
// Append set them), through Read, a Reader, and the offset and index bounds.
func checkLog(t testing.TB, l *Log, want []Entry) {
	t.Helper()
	if len(want) == 0 {
		if l.LastIndex()+1 != l.FirstIndex() {
			t.Fatalf("log should be empty: first %d last %d", l.FirstIndex(), l.LastIndex())
		}
		return
	}
	if got := l.FirstIndex(); got != want[0].Index {
		t.Fatalf("FirstIndex = %d, want %d", got, want[0].Index)
	}
	last := want[len(want)-1]
	if got := l.LastIndex(); got != last.Index {
		t.Fatalf("LastIndex = %d, want %d", got, last.Index)
	}
	if got := l.NextOffset(); got != last.NextOffset() {
		t.Fatalf("NextOffset = %d, want %d", got, last.NextOffset())
	}
	for _, w := range want {
		got, err := l.Read(w.Index)
		if err != nil {
			t.Fatalf("Read(%d): %v", w.Index, err)
		}
		if d := sameEntry(got, w); d != "" {
			t.Fatalf("Read: %s", d)
		}
	}
	r, err := l.NewReader(want[0].Index)
	if err != nil {
		t.Fatalf("NewReader: %v", err)
	}
	defer r.Close()
	for _, w := range want {
		got, err := r.Next()
		if err != nil {
			t.Fatalf("Reader.Next at %d: %v", w.Index, err)
		}
		if d := sameEntry(got, w); d != "" {
			t.Fatalf("Reader: %s", d)
		}
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("Reader.Next past the end: %v, want io.EOF", err)
	}
}
