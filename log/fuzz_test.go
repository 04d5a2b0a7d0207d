package log

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// fuzzFrames are valid frames of several sizes and both types.
func fuzzFrames() [][]byte {
	var frames [][]byte
	// Small frames: the fuzzer minimizes every new input it finds, one exec
	// per byte, so large seeds stall it.
	for i, size := range []int{0, 1, 5, 47, 48, 200} {
		e := Entry{Index: uint64(i + 1), Term: 3, Type: TypeData, BaseOffset: 1000, Count: uint32(i + 1),
			Timestamp: -5 + int64(i)*1_700_000_000_000, Payload: bytes.Repeat([]byte{byte(i), 0xff}, size)[:size]}
		if i%3 == 2 {
			e.Type, e.Count = TypeControl, 0
		}
		frames = append(frames, appendFrame(nil, &e))
	}
	return frames
}

// FuzzDecodeFrame: DecodeFrame never panics, and a frame it accepts is
// exactly what appendFrame makes of the entry it returns.
func FuzzDecodeFrame(f *testing.F) {
	frames := fuzzFrames()
	for _, fr := range frames {
		f.Add(fr)
		f.Add(fr[:len(fr)-1])           // torn payload
		f.Add(fr[:frameHeaderSize-1])   // torn header
		f.Add(append(fr, 0xde, 0xad))   // followed by garbage
		f.Add(append(fr, frames[0]...)) // followed by another frame
	}
	f.Add([]byte{})
	f.Add(make([]byte, frameHeaderSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, size, err := DecodeFrame(b)
		if err != nil {
			if size != 0 || e.Index != 0 || e.Payload != nil {
				t.Fatalf("error %v with size %d and entry %+v", err, size, headerOf(e))
			}
			return
		}
		if size < frameHeaderSize || size > len(b) {
			t.Fatalf("decoded size %d out of [%d, %d]", size, frameHeaderSize, len(b))
		}
		if len(e.Payload) != size-frameHeaderSize {
			t.Fatalf("payload of %d bytes in a frame of %d", len(e.Payload), size)
		}
		if len(e.Payload) > 0 && &e.Payload[0] != &b[frameHeaderSize] {
			t.Fatalf("payload does not alias the input")
		}
		if e.Type != TypeData && e.Type != TypeControl || e.Type == TypeControl && e.Count != 0 {
			t.Fatalf("accepted type %d with count %d", e.Type, e.Count)
		}
		if re := appendFrame(nil, &e); !bytes.Equal(re, b[:size]) {
			t.Fatalf("re-encoded frame differs:\n got %x\nwant %x", re, b[:size])
		}
		// The frame alone decodes the same; one byte less is torn.
		e2, size2, err := DecodeFrame(b[:size])
		if err != nil || size2 != size || e2.Index != e.Index {
			t.Fatalf("the frame alone: entry %d, size %d, err %v; want entry %d, size %d", e2.Index, size2, err, e.Index, size)
		}
		if _, _, err := DecodeFrame(b[:size-1]); err == nil {
			t.Fatalf("a frame cut by one byte decodes")
		}
	})
}

// fuzzLogFiles writes entries into a fresh log in dir and returns the store
// body (after the segment header) and the index: snapshotted before Close if
// open is set (the index pre-allocated), after it otherwise.
func fuzzLogFiles(tb testing.TB, dir string, entries []Entry, open bool) (store, index []byte) {
	tb.Helper()
	files := crashWriteLog(tb, dir, Options{SegmentBytes: 64 << 10, Fsync: FsyncNever}, entries, open)
	store, index = files[crashStoreName(1)], files[crashIndexName(1)]
	if len(store) < segmentHeaderSize {
		tb.Fatalf("store of %d bytes", len(store))
	}
	return store[segmentHeaderSize:], index
}

// FuzzOpen opens a one-segment log made of a valid segment header for
// base 1 followed by fuzzed bytes, and a fuzzed index. Open must not panic
// and must succeed: the only segment is the last one, whose invalid tail is
// a torn write to truncate. The log it opens must be self-consistent:
//   - every entry in [FirstIndex, LastIndex] reads with its own index and
//     dense offsets, or (only when the index claims frames that the store
//     no longer holds intact) fails with ErrCorrupt, never another error;
//     with no index at all every entry was scanned and must read;
//   - a Reader from FirstIndex returns the same entries, then io.EOF after
//     LastIndex-FirstIndex+1 of them (or stops at the first corrupt one);
//   - the log takes an append, and reopening it gives the same log.
//
// Each run does file I/O, and Close syncs even with FsyncNever, so on a disk
// it runs at a few hundred execs a second; TMPDIR on a tmpfs (/dev/shm)
// makes it several times faster. From a cold corpus the fuzzer spends its
// first seconds minimizing new inputs (-fuzzminimizetime bounds that).
func FuzzOpen(f *testing.F) {
	// A small log (the fuzzer minimizes every new input, one exec per byte):
	// eight entries of 0 to 29 bytes, some control entries.
	entries := make([]Entry, 8)
	for i := range entries {
		e := Entry{Index: uint64(i + 1), Term: 1 + uint64(i)/3, Type: TypeData, Count: uint32(i%3 + 1),
			Timestamp: 1000 - int64(i%4)*10, Payload: bytes.Repeat([]byte{byte('a' + i)}, i*7%30)}
		if i%4 == 2 {
			e.Type, e.Count = TypeControl, 0
		}
		entries[i] = e
	}
	store, closedIndex := fuzzLogFiles(f, f.TempDir(), crashClone(entries), false)
	_, openIndex := fuzzLogFiles(f, f.TempDir(), crashClone(entries), true)
	// The pre-allocated index is mostly zeros; keep a few empty slots.
	openIndex = openIndex[:min(len(openIndex), (len(entries)+3)*slotSize)]

	f.Add(store, closedIndex)
	f.Add(store, openIndex)
	f.Add(store, []byte{})
	f.Add(store[:len(store)-7], closedIndex)         // torn tail, index ahead
	f.Add(store[:len(store)/2], openIndex)           // cut in the middle
	f.Add(append(store, 0, 0, 0, 0, 1), closedIndex) // garbage after the end
	f.Add(store, make([]byte, len(closedIndex)))     // zeroed index
	f.Add(store, closedIndex[:len(closedIndex)-5])   // index cut mid-slot
	f.Add([]byte{}, []byte{})                        // empty log
	f.Add([]byte{}, closedIndex)                     // index with no store
	flipped := bytes.Clone(store)
	flipped[len(flipped)/3] ^= 0x10
	f.Add(flipped, closedIndex) // a bad frame in the middle, behind a valid index
	f.Add(flipped, []byte{})    // the same, scanned

	header := (&segmentHeader{baseIndex: 1}).encode()
	f.Fuzz(func(t *testing.T, storeBody, index []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, crashStoreName(1)), append(bytes.Clone(header), storeBody...), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, crashIndexName(1)), index, 0o644); err != nil {
			t.Fatal(err)
		}
		opts := Options{SegmentBytes: 64 << 10, Fsync: FsyncNever}
		l, err := Open(dir, opts)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer func() { l.Close() }()
		first, last := l.FirstIndex(), l.LastIndex()
		if first != 1 || last+1 < first {
			t.Fatalf("FirstIndex %d, LastIndex %d", first, last)
		}

		good := map[uint64]Entry{}
		corrupt := uint64(0) // first corrupt entry, 0 if none
		var prev *Entry
		for i := first; i <= last; i++ {
			e, err := l.Read(i)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Read(%d): %v, want success or ErrCorrupt", i, err)
				}
				if len(index) == 0 {
					t.Fatalf("Read(%d): %v, but with no index every entry was checked by Open", i, err)
				}
				if corrupt == 0 {
					corrupt = i
				}
				prev = nil
				continue
			}
			if e.Index != i {
				t.Fatalf("Read(%d) returned entry %d", i, e.Index)
			}
			if i == first && e.BaseOffset != 0 {
				t.Fatalf("entry %d has base offset %d, want 0", i, e.BaseOffset)
			}
			if prev != nil && e.BaseOffset != prev.NextOffset() {
				t.Fatalf("entry %d has base offset %d, want %d", i, e.BaseOffset, prev.NextOffset())
			}
			good[i] = e
			prev = &e
		}
		if corrupt == 0 {
			want := uint64(0)
			if last >= first {
				e := good[last]
				want = e.NextOffset()
			}
			if got := l.NextOffset(); got != want {
				t.Fatalf("NextOffset %d, want %d", got, want)
			}
		}

		if corrupt != 0 {
			t.Logf("log [%d, %d]: entry %d is corrupt", first, last, corrupt)
		}
		r, err := l.NewReader(first)
		if err != nil {
			t.Fatalf("NewReader(%d): %v", first, err)
		}
		for i := first; ; i++ {
			e, err := r.Next()
			if i > last {
				if !errors.Is(err, io.EOF) {
					t.Fatalf("Reader.Next past LastIndex %d: entry %d, err %v; want io.EOF", last, e.Index, err)
				}
				break
			}
			if i == corrupt {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Reader.Next at corrupt entry %d: entry %d, err %v; want ErrCorrupt", i, e.Index, err)
				}
				break
			}
			if err != nil {
				t.Fatalf("Reader.Next at %d: %v (Read found it fine)", i, err)
			}
			if d := crashDiff(e, good[i]); d != "" {
				t.Fatalf("Reader and Read disagree: %s", d)
			}
		}
		r.Close()

		// The recovered log takes an append, which every path reads back.
		next := Entry{Index: last + 1, Term: 1, Type: TypeData, Count: 2, Timestamp: 1, Payload: []byte("after recovery")}
		batch := []Entry{next}
		if err := l.Append(batch); err != nil {
			t.Fatalf("Append(%d) after recovery: %v", last+1, err)
		}
		next = batch[0]
		if next.BaseOffset != l.NextOffset()-2 {
			t.Fatalf("appended entry got base offset %d; the log's next offset is now %d", next.BaseOffset, l.NextOffset())
		}
		if e, err := l.Read(last + 1); err != nil || crashDiff(e, next) != "" {
			t.Fatalf("Read(%d) of the appended entry: %+v, %v", last+1, headerOf(e), err)
		}
		r, err = l.NewReader(last + 1)
		if err != nil {
			t.Fatalf("NewReader(%d): %v", last+1, err)
		}
		e, err := r.Next()
		r.Close()
		if err != nil || crashDiff(e, next) != "" {
			t.Fatalf("Reader at the appended entry %d: %+v, %v", last+1, headerOf(e), err)
		}
		if err := l.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}

		// Recovery is done: opening again changes nothing.
		l, err = Open(dir, opts)
		if err != nil {
			t.Fatalf("second Open: %v", err)
		}
		if l.FirstIndex() != first || l.LastIndex() != last+1 || l.NextOffset() != next.NextOffset() {
			t.Fatalf("second Open: [%d, %d] next offset %d, want [%d, %d] next offset %d",
				l.FirstIndex(), l.LastIndex(), l.NextOffset(), first, last+1, next.NextOffset())
		}
		if corrupt == 0 {
			r, err := l.NewReader(first)
			if err != nil {
				t.Fatalf("NewReader(%d): %v", first, err)
			}
			defer r.Close()
			for i := first; i <= last+1; i++ {
				if e, err := r.Next(); err != nil || e.Index != i {
					t.Fatalf("after the second Open: Reader.Next at %d: entry %d, %v", i, e.Index, err)
				}
			}
		}
	})
}
