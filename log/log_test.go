package log

import (
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestAppendRead(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    Options
		batches []int // entries per Append
		size    int   // payload bytes
	}{
		{"single entries", Options{}, []int{1, 1, 1, 1}, 100},
		{"one batch", Options{}, []int{50}, 100},
		{"empty payloads", Options{}, []int{3, 7}, 0},
		{"rolls by size", Options{SegmentBytes: MinSegmentBytes}, []int{10, 40, 1, 100}, 300},
		{"batch larger than a segment", Options{SegmentBytes: MinSegmentBytes}, []int{200}, 100},
		{"entry as large as a segment", Options{SegmentBytes: MinSegmentBytes}, []int{1, 2}, MinSegmentBytes - segmentHeaderSize - frameHeaderSize},
		{"batch larger than the write buffer", Options{}, []int{3}, writeBufferSize/2 + 1},
		{"fsync never", Options{Fsync: FsyncNever}, []int{5, 5}, 10},
		{"fsync interval", Options{Fsync: FsyncInterval, FsyncInterval: time.Millisecond}, []int{5, 5}, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := openTestLog(t, tc.opts)
			var all []Entry
			next := uint64(1)
			for _, n := range tc.batches {
				batch := makeEntries(next, n, tc.size)
				mustAppend(t, l, batch)
				all = append(all, batch...)
				next += uint64(n)
			}
			var offset uint64
			for _, e := range all {
				if e.BaseOffset != offset {
					t.Fatalf("entry %d: BaseOffset %d, want %d", e.Index, e.BaseOffset, offset)
				}
				offset += uint64(e.Count)
			}
			checkLog(t, l, all)
			l = reopen(t, l, tc.opts)
			checkLog(t, l, all)
			more := makeEntries(next, 3, tc.size)
			mustAppend(t, l, more)
			all = append(all, more...)
			checkLog(t, reopen(t, l, tc.opts), all)
		})
	}
}

func TestAppendRejects(t *testing.T) {
	for _, tc := range []struct {
		name  string
		batch func() []Entry
		want  error
	}{
		{"gap", func() []Entry { return makeEntries(4, 1, 10) }, ErrNonContiguous},
		{"repeat", func() []Entry { return makeEntries(2, 1, 10) }, ErrNonContiguous},
		{"not dense", func() []Entry { e := makeEntries(3, 2, 10); e[1].Index = 5; return e }, ErrNonContiguous},
		{"too large", func() []Entry { return makeEntries(3, 1, MinSegmentBytes) }, ErrEntryTooLarge},
		{"control with records", func() []Entry { e := makeEntries(3, 1, 1); e[0].Type, e[0].Count = TypeControl, 2; return e }, nil},
		{"unknown type", func() []Entry { e := makeEntries(3, 1, 1); e[0].Type = 7; return e }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := Options{SegmentBytes: MinSegmentBytes}
			l := openTestLog(t, opts)
			first := makeEntries(1, 2, 10)
			mustAppend(t, l, first)
			err := l.Append(tc.batch())
			if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Append: %v, want %v", err, tc.want)
			}
			// Nothing of a rejected batch is written, and the log goes on.
			checkLog(t, l, first)
			more := makeEntries(3, 2, 10)
			mustAppend(t, l, more)
			checkLog(t, reopen(t, l, opts), append(first, more...))
		})
	}
}

func TestRollByAge(t *testing.T) {
	clock := newTestClock()
	opts := Options{SegmentAge: time.Hour, Now: clock.Now}
	l := openTestLog(t, opts)
	all := makeEntries(1, 3, 10)
	mustAppend(t, l, all)
	clock.Advance(59 * time.Minute)
	batch := makeEntries(4, 1, 10)
	mustAppend(t, l, batch)
	all = append(all, batch...)
	if n := l.Segments(); n != 1 {
		t.Fatalf("rolled too early: %d segments", n)
	}
	clock.Advance(time.Minute)
	batch = makeEntries(5, 1, 10)
	mustAppend(t, l, batch)
	all = append(all, batch...)
	if n := l.Segments(); n != 2 {
		t.Fatalf("did not roll by age: %d segments", n)
	}
	// The age comes from the segment header, so it survives a restart.
	l = reopen(t, l, opts)
	clock.Advance(time.Hour)
	batch = makeEntries(6, 1, 10)
	mustAppend(t, l, batch)
	all = append(all, batch...)
	if n := l.Segments(); n != 3 {
		t.Fatalf("did not roll by age after reopen: %d segments", n)
	}
	checkLog(t, l, all)
}

func TestLookups(t *testing.T) {
	opts := Options{SegmentBytes: MinSegmentBytes}
	l := openTestLog(t, opts)
	all := makeEntries(1, 200, 100)
	mustAppend(t, l, all)
	if l.Segments() < 3 {
		t.Fatalf("want several segments, got %d", l.Segments())
	}
	check := func(t *testing.T, l *Log) {
		for _, e := range all {
			for k := uint32(0); k < e.Count; k++ {
				got, err := l.IndexForOffset(e.BaseOffset + uint64(k))
				if err != nil || got != e.Index {
					t.Fatalf("IndexForOffset(%d) = %d, %v; want %d", e.BaseOffset+uint64(k), got, err, e.Index)
				}
			}
			// Timestamps grow with the index, so the first entry at or after
			// an entry's timestamp is that entry, and just after it, the next.
			if got, err := l.IndexForTimestamp(e.Timestamp); err != nil || got != e.Index {
				t.Fatalf("IndexForTimestamp(%d) = %d, %v; want %d", e.Timestamp, got, err, e.Index)
			}
			if got, err := l.IndexForTimestamp(e.Timestamp + 1); err != nil || got != e.Index+1 {
				t.Fatalf("IndexForTimestamp(%d) = %d, %v; want %d", e.Timestamp+1, got, err, e.Index+1)
			}
		}
		next := l.NextOffset()
		if got, err := l.IndexForOffset(next); err != nil || got != l.LastIndex()+1 {
			t.Fatalf("IndexForOffset(next offset) = %d, %v; want %d", got, err, l.LastIndex()+1)
		}
		if _, err := l.IndexForOffset(next + 1); !errors.Is(err, ErrOutOfRange) {
			t.Fatalf("IndexForOffset past the end: %v, want ErrOutOfRange", err)
		}
		if got, _ := l.IndexForTimestamp(-1); got != 1 {
			t.Fatalf("IndexForTimestamp(-1) = %d, want 1", got)
		}
		if _, err := l.Read(0); !errors.Is(err, ErrOutOfRange) {
			t.Fatalf("Read(0): %v, want ErrOutOfRange", err)
		}
		if _, err := l.Read(201); !errors.Is(err, ErrOutOfRange) {
			t.Fatalf("Read(201): %v, want ErrOutOfRange", err)
		}
	}
	check(t, l)
	check(t, reopen(t, l, opts))
}

func TestTimestampsNotInOrder(t *testing.T) {
	l := openTestLog(t, Options{SegmentBytes: MinSegmentBytes})
	ts := []int64{50, 10, 70, 60, 80, 20}
	var entries []Entry
	for i, tm := range ts {
		entries = append(entries, Entry{Index: uint64(i + 1), Count: 1, Timestamp: tm, Payload: []byte("x")})
	}
	mustAppend(t, l, entries)
	for _, tc := range []struct {
		ts   int64
		want uint64
	}{{10, 1}, {50, 1}, {55, 3}, {70, 3}, {75, 5}, {80, 5}, {81, 7}} {
		if got, err := l.IndexForTimestamp(tc.ts); err != nil || got != tc.want {
			t.Errorf("IndexForTimestamp(%d) = %d, %v; want %d", tc.ts, got, err, tc.want)
		}
	}
}

func TestFileRange(t *testing.T) {
	l := openTestLog(t, Options{SegmentBytes: 16 << 10})
	all := makeEntries(1, 100, 200)
	mustAppend(t, l, all)
	frame := int64(frameSize(200))
	for _, tc := range []struct {
		name                  string
		first, last           uint64
		maxBytes              int64
		wantFirst, wantLast   uint64
		wantSingleSegmentOnly bool
	}{
		{"three frames", 1, 100, 3 * frame, 1, 3, true},
		{"budget between frames", 5, 100, 3*frame - 1, 5, 6, true},
		{"first frame always", 7, 100, 1, 7, 7, true},
		{"up to last", 10, 12, 1 << 20, 10, 12, true},
		{"stops at the segment end", 1, 100, 1 << 20, 1, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := l.FileRange(tc.first, tc.last, tc.maxBytes)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Release()
			if r.FirstIndex != tc.wantFirst || tc.wantLast != 0 && r.LastIndex != tc.wantLast {
				t.Fatalf("range [%d, %d], want [%d, %d]", r.FirstIndex, r.LastIndex, tc.wantFirst, tc.wantLast)
			}
			buf := make([]byte, r.Len)
			if _, err := r.File.ReadAt(buf, r.Pos); err != nil {
				t.Fatal(err)
			}
			// The range is whole frames, decodable as the wire would carry them.
			idx := r.FirstIndex
			for len(buf) > 0 {
				e, n, err := DecodeFrame(buf)
				if err != nil {
					t.Fatalf("frame %d: %v", idx, err)
				}
				if d := sameEntry(e, all[idx-1]); d != "" {
					t.Fatal(d)
				}
				buf = buf[n:]
				idx++
			}
			if idx != r.LastIndex+1 {
				t.Fatalf("decoded up to %d, range ends at %d", idx-1, r.LastIndex)
			}
		})
	}
	if _, err := l.FileRange(101, 200, 100); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("FileRange past the end: %v, want ErrOutOfRange", err)
	}
}

func TestReaderFollowsAppends(t *testing.T) {
	l := openTestLog(t, Options{SegmentBytes: MinSegmentBytes})
	r, err := l.NewReader(1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("Next on an empty log: %v, want io.EOF", err)
	}
	var next uint64 = 1
	for range 20 {
		batch := makeEntries(next, 7, 150)
		mustAppend(t, l, batch)
		for _, w := range batch {
			got, err := r.Next()
			if err != nil {
				t.Fatalf("Next at %d: %v", w.Index, err)
			}
			if d := sameEntry(got, w); d != "" {
				t.Fatal(d)
			}
		}
		if _, err := r.Next(); !errors.Is(err, io.EOF) {
			t.Fatalf("Next at the end: %v, want io.EOF", err)
		}
		next += 7
	}
	if _, err := l.NewReader(next + 1); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("NewReader past the end: %v", err)
	}
}

func TestTruncateAfter(t *testing.T) {
	for _, tc := range []struct {
		name  string
		n     int
		after uint64
	}{
		{"nothing", 60, 60},
		{"inside the active segment", 60, 58},
		{"into a sealed segment", 60, 10},
		{"at a segment boundary", 60, 0}, // set below to the first segment's last index
		{"everything", 60, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := Options{SegmentBytes: MinSegmentBytes}
			l := openTestLog(t, opts)
			all := makeEntries(1, tc.n, 300)
			mustAppend(t, l, all)
			after := tc.after
			if tc.name == "at a segment boundary" {
				l.mu.RLock()
				after = l.segments[0].lastIndex()
				l.mu.RUnlock()
			}
			if err := l.TruncateAfter(after); err != nil {
				t.Fatalf("TruncateAfter(%d): %v", after, err)
			}
			kept := all[:after]
			checkLog(t, l, kept)
			if after < uint64(tc.n) && l.NextOffset() != all[after].BaseOffset {
				t.Fatalf("NextOffset after truncation = %d, want %d", l.NextOffset(), all[after].BaseOffset)
			}
			// Reopen, then write a different suffix: same indexes and offsets.
			l = reopen(t, l, opts)
			checkLog(t, l, kept)
			fresh := makeEntries(after+1, 20, 100)
			for i := range fresh {
				fresh[i].Term = 99
			}
			mustAppend(t, l, fresh)
			want := append(append([]Entry(nil), kept...), fresh...)
			if after < uint64(tc.n) && fresh[0].BaseOffset != all[after].BaseOffset {
				t.Fatalf("rewritten entry %d got offset %d, want %d", after+1, fresh[0].BaseOffset, all[after].BaseOffset)
			}
			checkLog(t, l, want)
			checkLog(t, reopen(t, l, opts), want)
		})
	}
}

func TestTruncateBelowStart(t *testing.T) {
	l := openTestLog(t, Options{SegmentBytes: MinSegmentBytes})
	mustAppend(t, l, makeEntries(1, 60, 300))
	if n, err := l.DeleteBefore(30); err != nil || n == 0 {
		t.Fatalf("DeleteBefore: %d, %v", n, err)
	}
	if err := l.TruncateAfter(l.FirstIndex() - 2); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("TruncateAfter below the start: %v, want ErrOutOfRange", err)
	}
}

func TestDeleteBefore(t *testing.T) {
	opts := Options{SegmentBytes: MinSegmentBytes}
	l := openTestLog(t, opts)
	all := makeEntries(1, 100, 300)
	mustAppend(t, l, all)
	segs := l.Segments()
	n, err := l.DeleteBefore(40)
	if err != nil || n == 0 {
		t.Fatalf("DeleteBefore(40) = %d, %v", n, err)
	}
	first := l.FirstIndex()
	if first > 40 || l.Segments() != segs-n {
		t.Fatalf("first index %d after DeleteBefore(40), %d segments of %d", first, l.Segments(), segs)
	}
	checkLog(t, l, all[first-1:])
	if _, err := l.Read(first - 1); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("Read of a deleted entry: %v", err)
	}
	if _, err := l.IndexForOffset(all[0].BaseOffset); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("IndexForOffset of a deleted offset: %v", err)
	}
	l = reopen(t, l, opts)
	checkLog(t, l, all[first-1:])
	if l.FirstOffset() != all[first-1].BaseOffset {
		t.Fatalf("FirstOffset %d, want %d", l.FirstOffset(), all[first-1].BaseOffset)
	}
	// The active segment is never deleted.
	if _, err := l.DeleteBefore(1000); err != nil {
		t.Fatal(err)
	}
	if l.Segments() != 1 || l.LastIndex() != 100 {
		t.Fatalf("%d segments, last index %d", l.Segments(), l.LastIndex())
	}
	files, _ := filepath.Glob(filepath.Join(l.Dir(), "*"))
	if len(files) != 2 {
		t.Fatalf("files left: %v", files)
	}
}

func TestRetention(t *testing.T) {
	t.Run("by size", func(t *testing.T) {
		opts := Options{SegmentBytes: MinSegmentBytes, RetentionBytes: 3 * MinSegmentBytes}
		l := openTestLog(t, opts)
		mustAppend(t, l, makeEntries(1, 200, 300))
		before := l.Size()
		n, err := l.ApplyRetention(math.MaxUint64)
		if err != nil || n == 0 {
			t.Fatalf("ApplyRetention = %d, %v", n, err)
		}
		if size := l.Size(); size < opts.RetentionBytes || size >= opts.RetentionBytes+MinSegmentBytes || size >= before {
			t.Fatalf("size %d after retention of %d bytes (was %d)", size, opts.RetentionBytes, before)
		}
		if n, _ := l.ApplyRetention(math.MaxUint64); n != 0 {
			t.Fatalf("second ApplyRetention removed %d more", n)
		}
	})
	t.Run("never past keepFrom", func(t *testing.T) {
		opts := Options{SegmentBytes: MinSegmentBytes, RetentionBytes: 1}
		l := openTestLog(t, opts)
		mustAppend(t, l, makeEntries(1, 200, 300))
		if _, err := l.ApplyRetention(60); err != nil {
			t.Fatal(err)
		}
		if first := l.FirstIndex(); first > 60 || first < 40 {
			t.Fatalf("first index %d after retention kept from 60", first)
		}
		for i := l.FirstIndex(); i <= 200; i++ {
			base, count, err := l.EntryOffsets(i)
			e, rerr := l.Read(i)
			if err != nil || rerr != nil || base != e.BaseOffset || count != e.Count {
				t.Fatalf("EntryOffsets(%d) = %d, %d, %v; entry has %d, %d (%v)", i, base, count, err, e.BaseOffset, e.Count, rerr)
			}
		}
	})
	t.Run("by age", func(t *testing.T) {
		clock := newTestClock()
		opts := Options{SegmentBytes: MinSegmentBytes, RetentionAge: time.Hour, Now: clock.Now}
		l := openTestLog(t, opts)
		// Timestamps from makeEntries are tiny (long ago); use the clock's.
		old := makeEntries(1, 50, 300)
		for i := range old {
			old[i].Timestamp = clock.Now().UnixMilli()
		}
		mustAppend(t, l, old)
		clock.Advance(2 * time.Hour)
		recent := makeEntries(51, 50, 300)
		for i := range recent {
			recent[i].Timestamp = clock.Now().UnixMilli()
		}
		mustAppend(t, l, recent)
		if _, err := l.ApplyRetention(math.MaxUint64); err != nil {
			t.Fatal(err)
		}
		// Every old segment goes; the one where old meets recent stays.
		if first := l.FirstIndex(); first > 51 || first < 40 {
			t.Fatalf("first index %d after age retention", first)
		}
		r, err := l.NewReader(l.FirstIndex())
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		for i := l.FirstIndex(); i <= 100; i++ {
			if _, err := r.Next(); err != nil {
				t.Fatalf("entry %d: %v", i, err)
			}
		}
	})
}

func TestReaderOutlivesDeletedSegment(t *testing.T) {
	l := openTestLog(t, Options{SegmentBytes: MinSegmentBytes})
	all := makeEntries(1, 100, 300)
	mustAppend(t, l, all)
	r, err := l.NewReader(1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	first, err := r.Next()
	if err != nil || first.Index != 1 {
		t.Fatalf("Next: %v", err)
	}
	rng, err := l.FileRange(2, 3, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer rng.Release()
	if n, err := l.DeleteBefore(50); err != nil || n == 0 {
		t.Fatalf("DeleteBefore: %d, %v", n, err)
	}
	if _, err := os.Stat(filepath.Join(l.Dir(), segmentName(1)+storeSuffix)); !os.IsNotExist(err) {
		t.Fatalf("deleted segment still on disk: %v", err)
	}
	// The range and the reader still read their segment to its end...
	buf := make([]byte, rng.Len)
	if _, err := rng.File.ReadAt(buf, rng.Pos); err != nil {
		t.Fatalf("read from a deleted segment's range: %v", err)
	}
	if e, _, err := DecodeFrame(buf); err != nil || e.Index != 2 {
		t.Fatalf("frame from a deleted segment: %v", err)
	}
	var idx uint64 = 1
	for {
		e, err := r.Next()
		if errors.Is(err, ErrOutOfRange) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		idx++
		if d := sameEntry(e, all[idx-1]); d != "" {
			t.Fatal(d)
		}
	}
	// ...and then find that the log has moved on without them.
	if idx+1 >= l.FirstIndex() {
		t.Fatalf("reader stopped at %d, but the log holds %d", idx, idx+1)
	}
}

func TestReset(t *testing.T) {
	opts := Options{SegmentBytes: MinSegmentBytes}
	l := openTestLog(t, opts)
	mustAppend(t, l, makeEntries(1, 40, 300))
	if err := l.Reset(1000, 5000); err != nil {
		t.Fatal(err)
	}
	check := func(l *Log) {
		t.Helper()
		if l.FirstIndex() != 1000 || l.LastIndex() != 999 || l.NextOffset() != 5000 || l.FirstOffset() != 5000 {
			t.Fatalf("after Reset: first %d last %d next offset %d first offset %d", l.FirstIndex(), l.LastIndex(), l.NextOffset(), l.FirstOffset())
		}
	}
	check(l)
	l = reopen(t, l, opts)
	check(l)
	more := makeEntries(1000, 5, 10)
	mustAppend(t, l, more)
	if more[0].BaseOffset != 5000 {
		t.Fatalf("first entry after Reset at offset %d", more[0].BaseOffset)
	}
	checkLog(t, reopen(t, l, opts), more)
}

func TestClosed(t *testing.T) {
	l := openTestLog(t, Options{Fsync: FsyncInterval})
	mustAppend(t, l, makeEntries(1, 3, 10))
	r, err := l.NewReader(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := l.Append(makeEntries(4, 1, 10)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	if _, err := l.Read(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	if _, err := r.Next(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Reader after Close: %v", err)
	}
	r.Close()
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{
		{SegmentBytes: 100},
		{SegmentBytes: MaxSegmentBytes + 1},
		{Fsync: 9},
		{RetentionAge: -time.Second},
	} {
		if _, err := Open(t.TempDir(), o); err == nil {
			t.Errorf("Open with %+v succeeded", o)
		}
	}
	for _, s := range []string{"always", "interval", "never"} {
		p, err := ParseFsyncPolicy(s)
		if err != nil || p.String() != s {
			t.Errorf("ParseFsyncPolicy(%q) = %v, %v", s, p, err)
		}
	}
	if _, err := ParseFsyncPolicy("sometimes"); err == nil {
		t.Error("ParseFsyncPolicy accepted sometimes")
	}
}
