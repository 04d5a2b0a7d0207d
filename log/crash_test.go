package log

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// Crash-recovery tests. They write a log, then damage a copy of its files the
// way a crash (or a bad disk) would, reopen the copy and check what the log
// holds. Helpers here are prefixed "crash" so they cannot collide with the
// package's other test files.

// crashEntries returns n entries from index first: payloads of 0 to 300
// bytes, every fifth entry (from the fourth) a control entry with no
// records, data entries with 1 to 7 records, and timestamps that do not grow
// in order, so the running maximum in the index matters.
func crashEntries(first uint64, n int, seed uint64) []Entry {
	rng := rand.New(rand.NewPCG(seed, uint64(first)))
	entries := make([]Entry, n)
	for i := range entries {
		idx := first + uint64(i)
		e := Entry{
			Index:     idx,
			Term:      1 + idx/6,
			Timestamp: 1_700_000_000_000 + int64(rng.IntN(5000)),
		}
		if i%5 == 3 {
			e.Type = TypeControl
		} else {
			e.Type = TypeData
			e.Count = uint32(1 + rng.IntN(7))
		}
		size := rng.IntN(301)
		if i%7 == 2 {
			size = 0
		}
		e.Payload = make([]byte, size)
		for j := range e.Payload {
			e.Payload[j] = byte(rng.Uint32())
		}
		entries[i] = e
	}
	return entries
}

// crashClone copies entries (payloads shared) so Append, which sets
// BaseOffset, cannot touch the originals.
func crashClone(entries []Entry) []Entry { return slices.Clone(entries) }

// crashAppend appends entries in batches of varied sizes (1, 2, 3, 4, 1, ...)
// and sets their BaseOffsets as Append does.
func crashAppend(t testing.TB, l *Log, entries []Entry) {
	t.Helper()
	for i, b := 0, 1; i < len(entries); b = b%4 + 1 {
		j := min(i+b, len(entries))
		if err := l.Append(entries[i:j]); err != nil {
			t.Fatalf("Append(%d..%d): %v", entries[i].Index, entries[j-1].Index, err)
		}
		i = j
	}
}

// crashDiff says how got differs from want, or "".
func crashDiff(got, want Entry) string {
	switch {
	case got.Index != want.Index:
		return fmt.Sprintf("index %d, want %d", got.Index, want.Index)
	case got.Term != want.Term:
		return fmt.Sprintf("entry %d: term %d, want %d", want.Index, got.Term, want.Term)
	case got.Type != want.Type:
		return fmt.Sprintf("entry %d: type %v, want %v", want.Index, got.Type, want.Type)
	case got.BaseOffset != want.BaseOffset:
		return fmt.Sprintf("entry %d: base offset %d, want %d", want.Index, got.BaseOffset, want.BaseOffset)
	case got.Count != want.Count:
		return fmt.Sprintf("entry %d: count %d, want %d", want.Index, got.Count, want.Count)
	case got.Timestamp != want.Timestamp:
		return fmt.Sprintf("entry %d: timestamp %d, want %d", want.Index, got.Timestamp, want.Timestamp)
	case !bytes.Equal(got.Payload, want.Payload):
		return fmt.Sprintf("entry %d: payload of %d bytes differs from the %d written", want.Index, len(got.Payload), len(want.Payload))
	}
	return ""
}

// crashCheck asserts that l holds exactly want, which starts at index 1
// (or is empty, for a log that must be empty at next index 1 and offset 0):
// the bounds, every entry through Read, and all of them through a Reader
// from FirstIndex that then reports io.EOF.
func crashCheck(t testing.TB, l *Log, want []Entry) {
	t.Helper()
	if got := l.FirstIndex(); got != 1 {
		t.Fatalf("FirstIndex = %d, want 1", got)
	}
	wantLast, wantNext := uint64(0), uint64(0)
	if len(want) > 0 {
		wantLast, wantNext = want[len(want)-1].Index, want[len(want)-1].NextOffset()
	}
	if got := l.LastIndex(); got != wantLast {
		t.Fatalf("LastIndex = %d, want %d", got, wantLast)
	}
	if got := l.NextOffset(); got != wantNext {
		t.Fatalf("NextOffset = %d, want %d", got, wantNext)
	}
	for _, w := range want {
		got, err := l.Read(w.Index)
		if err != nil {
			t.Fatalf("Read(%d): %v", w.Index, err)
		}
		if d := crashDiff(got, w); d != "" {
			t.Fatalf("Read: %s", d)
		}
	}
	r, err := l.NewReader(1)
	if err != nil {
		t.Fatalf("NewReader(1): %v", err)
	}
	defer r.Close()
	for _, w := range want {
		got, err := r.Next()
		if err != nil {
			t.Fatalf("Reader.Next at %d: %v", w.Index, err)
		}
		if d := crashDiff(got, w); d != "" {
			t.Fatalf("Reader: %s", d)
		}
	}
	if e, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("Reader.Next after entry %d: entry %d, err %v; want io.EOF", wantLast, e.Index, err)
	}
}

// crashOpen opens dir or fails the test.
func crashOpen(t testing.TB, dir string, opts Options) *Log {
	t.Helper()
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return l
}

func crashClose(t testing.TB, l *Log) {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// crashFiles is a snapshot of a log directory: file name to contents.
type crashFiles map[string][]byte

// crashSnapshot reads every file of dir. Reading the active index while the
// log is open sees what the writer put through its mapping (the page cache is
// shared), which is what the disk holds after a kill -9.
func crashSnapshot(t testing.TB, dir string) crashFiles {
	t.Helper()
	names, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := crashFiles{}
	for _, d := range names {
		b, err := os.ReadFile(filepath.Join(dir, d.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[d.Name()] = b
	}
	return files
}

// write writes the snapshot into dir, which must exist.
func (fs crashFiles) write(t testing.TB, dir string) {
	t.Helper()
	for name, b := range fs {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// crashFilesDiff says how two snapshots differ, or "".
func crashFilesDiff(a, b crashFiles) string {
	for name, x := range a {
		y, ok := b[name]
		switch {
		case !ok:
			return name + " is missing"
		case !bytes.Equal(x, y):
			return fmt.Sprintf("%s differs (%d and %d bytes)", name, len(x), len(y))
		}
	}
	for name := range b {
		if _, ok := a[name]; !ok {
			return name + " is new"
		}
	}
	return ""
}

// bases returns the base indexes of the segments, in order.
func (fs crashFiles) bases() []uint64 {
	var bases []uint64
	for name := range fs {
		if base, ok := parseSegmentName(name, storeSuffix); ok {
			bases = append(bases, base)
		}
	}
	slices.Sort(bases)
	return bases
}

func (fs crashFiles) clone() crashFiles {
	c := crashFiles{}
	for name, b := range fs {
		c[name] = slices.Clone(b)
	}
	return c
}

func crashStoreName(base uint64) string { return segmentName(base) + storeSuffix }
func crashIndexName(base uint64) string { return segmentName(base) + indexSuffix }

// crashFramePos is the store position of entry index's frame in the segment
// whose first entry is base, computed from the payload sizes alone: the
// segment header, then a 48-byte header and the payload per frame.
func crashFramePos(entries []Entry, base, index uint64) int64 {
	pos := int64(40)
	for _, e := range entries {
		if e.Index >= base && e.Index < index {
			pos += int64(48 + len(e.Payload))
		}
	}
	return pos
}

// crashWriteLog writes entries into a fresh log in dir with opts and returns
// a snapshot of its files: taken before Close if open is set (the index of
// the active segment still pre-allocated, as a kill -9 leaves it), after
// Close otherwise. entries get their BaseOffsets.
func crashWriteLog(t testing.TB, dir string, opts Options, entries []Entry, open bool) crashFiles {
	t.Helper()
	l := crashOpen(t, dir, opts)
	crashAppend(t, l, entries)
	var files crashFiles
	if open {
		files = crashSnapshot(t, dir)
	}
	crashClose(t, l)
	if !open {
		files = crashSnapshot(t, dir)
	}
	return files
}

// crashRecorder is a slog handler that keeps the messages logged.
type crashRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *crashRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *crashRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *crashRecorder) WithGroup(string) slog.Handler            { return r }
func (r *crashRecorder) Handle(_ context.Context, rec slog.Record) error {
	msg := rec.Message
	rec.Attrs(func(a slog.Attr) bool {
		msg += " " + a.String()
		return true
	})
	r.mu.Lock()
	r.msgs = append(r.msgs, msg)
	r.mu.Unlock()
	return nil
}

func (r *crashRecorder) logged(substr string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.msgs {
		if bytes.Contains([]byte(m), []byte(substr)) {
			return true
		}
	}
	return false
}

// TestCrashCutStoreAtEveryByte cuts the last store at every byte from the
// start of its third-to-last frame to its end (and at every frame boundary
// before that), as a crash in the middle of a write does, and checks that
// the log recovers exactly the entries whose frames are whole, that the torn
// bytes are gone from the file, and that the log takes the lost entries again
// and keeps them across another reopen.
func TestCrashCutStoreAtEveryByte(t *testing.T) {
	for _, cfg := range []struct {
		name         string
		segmentBytes int64
		n            int
	}{
		{"one segment", 64 << 10, 20},
		{"several segments", 4096, 60},
	} {
		for _, open := range []bool{false, true} {
			name := cfg.name + "/closed cleanly"
			if open {
				name = cfg.name + "/copied while open"
			}
			t.Run(name, func(t *testing.T) {
				opts := Options{SegmentBytes: cfg.segmentBytes, Fsync: FsyncNever}
				want := crashEntries(1, cfg.n, uint64(cfg.n))
				files := crashWriteLog(t, t.TempDir(), opts, want, open)
				bases := files.bases()
				if several := cfg.segmentBytes == 4096; several && len(bases) < 3 || !several && len(bases) != 1 {
					t.Fatalf("the log has %d segments", len(bases))
				}
				last := bases[len(bases)-1]
				store := files[crashStoreName(last)]

				// Frame ends in the last store, from the entry sizes.
				var inLast []Entry
				for _, e := range want {
					if e.Index >= last {
						inLast = append(inLast, e)
					}
				}
				if len(inLast) < 3 {
					t.Fatalf("the last segment holds %d entries; want at least 3", len(inLast))
				}
				ends := []int64{segmentHeaderSize}
				for _, e := range inLast {
					ends = append(ends, ends[len(ends)-1]+int64(frameSize(len(e.Payload))))
				}
				if ends[len(ends)-1] != int64(len(store)) {
					t.Fatalf("last store is %d bytes; its frames end at %d", len(store), ends[len(ends)-1])
				}
				// The snapshot is what it claims to be: an index pre-allocated
				// for a whole segment, or shrunk to its entries by Close.
				wantIndex := len(inLast) * slotSize
				if open {
					wantIndex = int(opts.indexCapacity()) * slotSize
				}
				if got := len(files[crashIndexName(last)]); got != wantIndex {
					t.Fatalf("last index is %d bytes, want %d", got, wantIndex)
				}
				from := ends[len(inLast)-3]
				cuts := slices.Clone(ends[:len(inLast)-3])
				for L := from; L <= int64(len(store)); L++ {
					cuts = append(cuts, L)
				}

				// recovered[whole] is the directory as Open left it for a cut
				// that keeps whole frames of the last segment.
				recovered := map[int]crashFiles{}
				base := t.TempDir()
				for _, L := range cuts {
					// whole: entries of the last segment whose frames end within L.
					whole := 0
					for whole < len(inLast) && ends[whole+1] <= L {
						whole++
					}
					prefix := len(want) - len(inLast) + whole
					torn := L - ends[whole]

					dir, err := os.MkdirTemp(base, "cut")
					if err != nil {
						t.Fatal(err)
					}
					cut := crashFiles{}
					for name, b := range files {
						cut[name] = b
					}
					cut[crashStoreName(last)] = store[:L]
					cut.write(t, dir)

					rec := &crashRecorder{}
					ropts := opts
					ropts.Logger = slog.New(rec)
					l, err := Open(dir, ropts)
					if err != nil {
						t.Fatalf("cut at %d: Open: %v", L, err)
					}
					if !t.Run(fmt.Sprintf("cut at %d", L), func(t *testing.T) {
						crashCheck(t, l, want[:prefix])
					}) {
						l.Close()
						t.FailNow()
					}
					if torn > 0 && !rec.logged("torn") {
						t.Errorf("cut at %d: %d torn bytes truncated without a log message; logged %q", L, torn, rec.msgs)
					}
					fi, err := os.Stat(filepath.Join(dir, crashStoreName(last)))
					if err != nil {
						t.Fatal(err)
					}
					if fi.Size() != ends[whole] {
						t.Errorf("cut at %d: store is %d bytes after recovery, want %d (torn tail removed)", L, fi.Size(), ends[whole])
					}

					// Every cut inside the same frame must leave the same files;
					// from the same files, appending and reopening behave the
					// same, so that is done once per recovered state.
					after := crashSnapshot(t, dir)
					if prev, ok := recovered[whole]; ok {
						if d := crashFilesDiff(prev, after); d != "" {
							t.Errorf("cut at %d: files after recovery differ from a shorter cut's with the same %d whole frames: %s", L, whole, d)
						} else {
							crashClose(t, l)
							if err := os.RemoveAll(dir); err != nil {
								t.Fatal(err)
							}
							continue
						}
					}
					recovered[whole] = after

					// Append what was lost, reopen, and find everything.
					crashAppend(t, l, crashClone(want[prefix:]))
					crashClose(t, l)
					l = crashOpen(t, dir, opts)
					crashCheck(t, l, want)
					crashClose(t, l)
					if err := os.RemoveAll(dir); err != nil {
						t.Fatal(err)
					}
					if t.Failed() {
						t.FailNow()
					}
				}
			})
		}
	}
}

// crashDamage is a way to damage a log of several segments.
type crashDamage struct {
	name string
	// damage changes the snapshot; bases are the segment base indexes.
	damage func(t *testing.T, fs crashFiles, bases []uint64, rng *rand.Rand)
	// sealedRebuilt names the sealed segment (by position in bases) whose
	// index must be rebuilt to its exact size by Open, or -1.
	sealedRebuilt int
}

func crashRandomize(rng *rand.Rand, b []byte) {
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
}

// crashSlotCount is the number of entries of want in the segment from base
// to next (exclusive; 0: to the end).
func crashSlotCount(want []Entry, base, next uint64) int {
	n := 0
	for _, e := range want {
		if e.Index >= base && (next == 0 || e.Index < next) {
			n++
		}
	}
	return n
}

// TestCrashIndexDamage garbles, zeroes, deletes and cuts index files. The
// index is derived data: whatever happens to it, the log must come back
// with everything that was written, and a sealed index that does not match
// its store must be rebuilt.
func TestCrashIndexDamage(t *testing.T) {
	const n = 60
	garbleLast := func(k int) func(t *testing.T, fs crashFiles, bases []uint64, rng *rand.Rand) {
		return func(t *testing.T, fs crashFiles, bases []uint64, rng *rand.Rand) {
			last := bases[len(bases)-1]
			written := crashSlotCount(crashEntries(1, n, 7), last, 0)
			if written < k {
				t.Fatalf("last segment has %d entries, fewer than %d", written, k)
			}
			idx := fs[crashIndexName(last)]
			// The last k written slots (for a closed log, the last k of the file).
			crashRandomize(rng, idx[(written-k)*slotSize:written*slotSize])
		}
	}
	cases := []crashDamage{
		{"last index: last slot random", garbleLast(1), -1},
		{"last index: last 3 slots random", garbleLast(3), -1},
		{"last index: zeroed", func(t *testing.T, fs crashFiles, bases []uint64, _ *rand.Rand) {
			clear(fs[crashIndexName(bases[len(bases)-1])])
		}, -1},
		{"last index: deleted", func(t *testing.T, fs crashFiles, bases []uint64, _ *rand.Rand) {
			delete(fs, crashIndexName(bases[len(bases)-1]))
		}, -1},
		{"last index: 5 bytes", func(t *testing.T, fs crashFiles, bases []uint64, _ *rand.Rand) {
			name := crashIndexName(bases[len(bases)-1])
			fs[name] = fs[name][:5]
		}, -1},
		{"last index: first slot random", func(t *testing.T, fs crashFiles, bases []uint64, rng *rand.Rand) {
			crashRandomize(rng, fs[crashIndexName(bases[len(bases)-1])][:slotSize])
		}, -1},
		{"sealed index: zeroed", func(t *testing.T, fs crashFiles, bases []uint64, _ *rand.Rand) {
			clear(fs[crashIndexName(bases[1])])
		}, 1},
		{"sealed index: deleted", func(t *testing.T, fs crashFiles, bases []uint64, _ *rand.Rand) {
			delete(fs, crashIndexName(bases[1]))
		}, 1},
		{"sealed index: cut 5 bytes short", func(t *testing.T, fs crashFiles, bases []uint64, _ *rand.Rand) {
			name := crashIndexName(bases[0])
			fs[name] = fs[name][:len(fs[name])-5]
		}, 0},
		{"sealed index: cut to 47 bytes", func(t *testing.T, fs crashFiles, bases []uint64, _ *rand.Rand) {
			name := crashIndexName(bases[1])
			fs[name] = fs[name][:47]
		}, 1},
		{"sealed index: 13 bytes longer", func(t *testing.T, fs crashFiles, bases []uint64, _ *rand.Rand) {
			name := crashIndexName(bases[1])
			fs[name] = append(fs[name], make([]byte, 13)...)
		}, 1},
		{"sealed index: one slot short", func(t *testing.T, fs crashFiles, bases []uint64, _ *rand.Rand) {
			name := crashIndexName(bases[1])
			fs[name] = fs[name][:len(fs[name])-slotSize]
		}, 1},
		{"sealed index: last slot random", func(t *testing.T, fs crashFiles, bases []uint64, rng *rand.Rand) {
			name := crashIndexName(bases[0])
			crashRandomize(rng, fs[name][len(fs[name])-slotSize:])
		}, 0},
		{"every index deleted", func(t *testing.T, fs crashFiles, bases []uint64, _ *rand.Rand) {
			for _, b := range bases {
				delete(fs, crashIndexName(b))
			}
		}, 0},
		{"every index zeroed", func(t *testing.T, fs crashFiles, bases []uint64, _ *rand.Rand) {
			for _, b := range bases {
				clear(fs[crashIndexName(b)])
			}
		}, 1},
		{"last store: zeros after the last frame", func(t *testing.T, fs crashFiles, bases []uint64, _ *rand.Rand) {
			name := crashStoreName(bases[len(bases)-1])
			fs[name] = append(fs[name], make([]byte, 100)...)
		}, -1},
		{"last store: garbage after the last frame", func(t *testing.T, fs crashFiles, bases []uint64, rng *rand.Rand) {
			name := crashStoreName(bases[len(bases)-1])
			g := make([]byte, 100)
			crashRandomize(rng, g)
			fs[name] = append(fs[name], g...)
		}, -1},
		{"leftover temporary store of a segment being created", func(t *testing.T, fs crashFiles, bases []uint64, _ *rand.Rand) {
			fs[crashStoreName(bases[len(bases)-1]+1000)+tmpSuffix] = []byte("WLOG")
		}, -1},
	}
	for _, open := range []bool{false, true} {
		for _, tc := range cases {
			name := tc.name + "/closed cleanly"
			if open {
				name = tc.name + "/copied while open"
			}
			t.Run(name, func(t *testing.T) {
				opts := Options{SegmentBytes: 4096, Fsync: FsyncNever}
				want := crashEntries(1, n, 7)
				files := crashWriteLog(t, t.TempDir(), opts, want, open)
				bases := files.bases()
				if len(bases) < 3 {
					t.Fatalf("want at least 3 segments, got %d", len(bases))
				}
				fs := files.clone()
				tc.damage(t, fs, bases, rand.New(rand.NewPCG(1, 2)))
				dir := t.TempDir()
				fs.write(t, dir)

				l := crashOpen(t, dir, opts)
				defer l.Close()
				if tc.sealedRebuilt >= 0 {
					b := bases[tc.sealedRebuilt]
					entries := crashSlotCount(want, b, bases[tc.sealedRebuilt+1])
					fi, err := os.Stat(filepath.Join(dir, crashIndexName(b)))
					if err != nil {
						t.Fatalf("sealed index after Open: %v", err)
					}
					if fi.Size() != int64(entries)*slotSize {
						t.Errorf("sealed index %s is %d bytes after Open, want %d (%d slots)", crashIndexName(b), fi.Size(), entries*slotSize, entries)
					}
				}
				for name := range fs {
					if filepath.Ext(name) == tmpSuffix {
						if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
							t.Errorf("temporary file %s left after Open (stat: %v)", name, err)
						}
					}
				}
				crashCheck(t, l, want)

				// The repaired log takes appends and keeps everything.
				more := crashEntries(n+1, 10, 8)
				crashAppend(t, l, more)
				crashClose(t, l)
				l = crashOpen(t, dir, opts)
				defer l.Close()
				crashCheck(t, l, append(slices.Clone(want), more...))
			})
		}
	}
}

// TestCrashIndexAheadOfStore keeps an index whose slots point past the end of
// a shortened store (the store lost its tail, the index did not) and checks
// that the log recovers to the entries whose frames are whole.
func TestCrashIndexAheadOfStore(t *testing.T) {
	const n = 30
	for _, open := range []bool{false, true} {
		for _, tc := range []struct {
			name string
			keep int   // entries of the last segment kept whole
			cut  int64 // bytes of the next frame kept
		}{
			{"at a frame boundary", 5, 0},
			{"inside a frame header", 5, 20},
			{"inside a payload", 5, 60},
			{"one frame short", -1, 0},
			{"only the segment header left", 0, 0},
			{"inside the first frame", 0, 47},
		} {
			name := tc.name + "/closed cleanly"
			if open {
				name = tc.name + "/copied while open"
			}
			t.Run(name, func(t *testing.T) {
				opts := Options{SegmentBytes: 64 << 10, Fsync: FsyncNever}
				want := crashEntries(1, n, 3)
				// Make sure the frames cut inside are long enough.
				for i := range want {
					if len(want[i].Payload) < 40 {
						want[i].Payload = append(want[i].Payload, make([]byte, 40)...)
					}
				}
				files := crashWriteLog(t, t.TempDir(), opts, want, open)
				keep := tc.keep
				if keep < 0 {
					keep = n - 1
				}
				L := crashFramePos(want, 1, uint64(keep)+1) + tc.cut
				fs := files.clone()
				fs[crashStoreName(1)] = fs[crashStoreName(1)][:L]
				if got := len(fs[crashIndexName(1)]) / slotSize; got < n {
					t.Fatalf("index holds %d slots, want at least %d", got, n)
				}
				dir := t.TempDir()
				fs.write(t, dir)
				l := crashOpen(t, dir, opts)
				defer l.Close()
				crashCheck(t, l, want[:keep])
				crashAppend(t, l, crashClone(want[keep:]))
				crashClose(t, l)
				l = crashOpen(t, dir, opts)
				defer l.Close()
				crashCheck(t, l, want)
			})
		}
	}
}

// TestCrashStaleIndexAfterTruncate gives the active segment the index it had
// before a TruncateAfter replaced its tail with shorter entries: the index
// the disk may still hold after a power loss, since the active index is
// written through a mapping that is never synced, while the store is synced
// on every Append. The index is stale, so the log must rebuild it from the
// store and hold all the new entries, which were acknowledged as durable.
func TestCrashStaleIndexAfterTruncate(t *testing.T) {
	opts := Options{SegmentBytes: 64 << 10}
	dir := t.TempDir()
	mk := func(first uint64, n, size int, term uint64) []Entry {
		es := make([]Entry, n)
		for i := range es {
			es[i] = Entry{Index: first + uint64(i), Term: term, Count: 1, Timestamp: 1000,
				Payload: bytes.Repeat([]byte{byte(first) + byte(i)}, size)}
		}
		return es
	}
	old := mk(1, 10, 100, 1)
	l := crashOpen(t, dir, opts)
	crashAppend(t, l, old)
	stale := crashSnapshot(t, dir)[crashIndexName(1)]
	if err := l.TruncateAfter(5); err != nil {
		t.Fatal(err)
	}
	// The same indexes, offsets and record counts; shorter payloads.
	replacement := mk(6, 5, 50, 2)
	crashAppend(t, l, replacement)
	crashClose(t, l)
	want := append(slices.Clone(old[:5]), replacement...)
	storePath := filepath.Join(dir, crashStoreName(1))
	before, err := os.Stat(storePath)
	if err != nil {
		t.Fatal(err)
	}

	if err := os.WriteFile(filepath.Join(dir, crashIndexName(1)), stale, 0o644); err != nil {
		t.Fatal(err)
	}
	l = crashOpen(t, dir, opts)
	defer l.Close()
	if got := l.LastIndex(); got != 10 {
		t.Errorf("LastIndex = %d after Open, want 10: whole, valid, synced entries were dropped", got)
	}
	if after, err := os.Stat(storePath); err != nil {
		t.Fatal(err)
	} else if after.Size() != before.Size() {
		t.Errorf("Open truncated the store from %d to %d bytes; it holds no torn tail", before.Size(), after.Size())
	}

	// Whatever it recovered, the log must stay consistent: an entry appended
	// now is read back by a Reader that passes through the recovered ones.
	next := l.LastIndex() + 1
	more := mk(next, 1, 10, 3)
	crashAppend(t, l, more)
	r, err := l.NewReader(1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i := uint64(1); i <= next; i++ {
		if e, err := r.Next(); err != nil || e.Index != i {
			t.Fatalf("after recovery and one append, Reader.Next at %d: entry %d, %v", i, e.Index, err)
		}
	}
	crashCheck(t, l, append(want[:next-1], more...))
}

// crashFlip describes a bit to flip in a frame: byte offset within the frame
// (negative: from the middle of the payload) and bit.
type crashFlip struct {
	name string
	off  int // byte offset in the frame; -1 means the middle of the payload
	bit  uint
}

var crashFlips = []crashFlip{
	{"payload bit", -1, 3},
	{"length field high bit", 0, 7},
	{"length field bit 0", 3, 0},
	{"length field bit 1", 3, 1},
	{"length field bit 2", 3, 2},
	{"checksum bit", 5, 4},
	{"index field bit", 23, 0},
	{"count field bit", 15, 1},
	{"timestamp bit", 47, 6},
}

// crashSealedLog writes a log of several small segments and returns its
// entries, a snapshot and the segment bases.
func crashSealedLog(t *testing.T) ([]Entry, crashFiles, []uint64) {
	t.Helper()
	want := crashEntries(1, 60, 11)
	for i := range want {
		// Payloads of at least 100 bytes, so the middle byte is a payload byte
		// well away from the header.
		if len(want[i].Payload) < 100 {
			want[i].Payload = append(want[i].Payload, make([]byte, 100)...)
		}
	}
	files := crashWriteLog(t, t.TempDir(), Options{SegmentBytes: 4096, Fsync: FsyncNever}, want, false)
	bases := files.bases()
	if len(bases) < 3 {
		t.Fatalf("want at least 3 segments, got %d", len(bases))
	}
	return want, files, bases
}

// crashFlipBit flips the bit in the frame of entry index (in the segment at
// base) and returns the frame's position.
func crashFlipBit(fs crashFiles, want []Entry, base, index uint64, f crashFlip) int64 {
	pos := crashFramePos(want, base, index)
	off := int64(f.off)
	if f.off < 0 {
		off = 48 + int64(len(want[index-1].Payload))/2
	}
	fs[crashStoreName(base)][pos+off] ^= 1 << f.bit
	return pos
}

// crashWantCorrupt checks that err is corruption of file at pos.
func crashWantCorrupt(t *testing.T, what string, err error, file string, pos int64) {
	t.Helper()
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("%s: err %v, want one matching ErrCorrupt", what, err)
	}
	var ce *CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("%s: err %v (%T) is not a *CorruptError", what, err, err)
	}
	if ce.File != file || ce.Pos != pos {
		t.Fatalf("%s: corruption reported in %s at %d, want %s at %d (%v)", what, ce.File, ce.Pos, file, pos, err)
	}
}

// TestCrashBitFlipSealed flips one bit in a frame in the middle of a sealed
// segment. Open trusts sealed segments without reading their data, so it
// succeeds; reading the entry, directly or by passing it with a Reader,
// reports corruption of that store at that frame, and never serves it.
func TestCrashBitFlipSealed(t *testing.T) {
	want, files, bases := crashSealedLog(t)
	seg, next := bases[1], bases[2]
	bad := seg + (next-seg)/2
	if bad == seg || bad == next-1 {
		t.Fatalf("segment %d..%d has no middle entry", seg, next-1)
	}
	opts := Options{SegmentBytes: 4096, Fsync: FsyncNever}
	for _, f := range crashFlips {
		t.Run(f.name, func(t *testing.T) {
			fs := files.clone()
			pos := crashFlipBit(fs, want, seg, bad, f)
			dir := t.TempDir()
			fs.write(t, dir)
			storePath := filepath.Join(dir, crashStoreName(seg))

			l := crashOpen(t, dir, opts)
			defer l.Close()
			if got := l.LastIndex(); got != want[len(want)-1].Index {
				t.Fatalf("LastIndex = %d, want %d", got, want[len(want)-1].Index)
			}
			for _, w := range want {
				got, err := l.Read(w.Index)
				if w.Index == bad {
					crashWantCorrupt(t, fmt.Sprintf("Read(%d)", bad), err, storePath, pos)
					if got.Index != 0 || got.Payload != nil {
						t.Fatalf("Read(%d) served an entry with its error: %+v", bad, headerOf(got))
					}
					continue
				}
				if err != nil {
					t.Fatalf("Read(%d): %v", w.Index, err)
				}
				if d := crashDiff(got, w); d != "" {
					t.Fatalf("Read: %s", d)
				}
			}

			// A Reader from the start serves everything before the bad
			// frame, then the error, again on a retry.
			r, err := l.NewReader(1)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			for _, w := range want[:bad-1] {
				got, err := r.Next()
				if err != nil {
					t.Fatalf("Reader.Next at %d: %v", w.Index, err)
				}
				if d := crashDiff(got, w); d != "" {
					t.Fatalf("Reader: %s", d)
				}
			}
			for range 2 {
				got, err := r.Next()
				crashWantCorrupt(t, fmt.Sprintf("Reader.Next at %d", bad), err, storePath, pos)
				if got.Index != 0 || got.Payload != nil {
					t.Fatalf("Reader.Next at %d served an entry with its error: %+v", bad, headerOf(got))
				}
			}

			// A Reader started on the bad entry fails the same way; one started
			// after it reads to the end.
			r2, err := l.NewReader(bad)
			if err != nil {
				t.Fatal(err)
			}
			defer r2.Close()
			_, err = r2.Next()
			crashWantCorrupt(t, fmt.Sprintf("Reader from %d", bad), err, storePath, pos)
			r3, err := l.NewReader(bad + 1)
			if err != nil {
				t.Fatal(err)
			}
			defer r3.Close()
			for _, w := range want[bad:] {
				got, err := r3.Next()
				if err != nil {
					t.Fatalf("Reader from %d: Next at %d: %v", bad+1, w.Index, err)
				}
				if d := crashDiff(got, w); d != "" {
					t.Fatalf("Reader from %d: %s", bad+1, d)
				}
			}
			if _, err := r3.Next(); !errors.Is(err, io.EOF) {
				t.Fatalf("Reader from %d at the end: %v, want io.EOF", bad+1, err)
			}
		})
	}
}

// TestCrashBitFlipSealedWithoutIndex flips a bit in the middle of a sealed
// segment whose index is gone, so Open must rebuild the index from the
// store: it meets the bad frame where the store cannot be torn, and refuses
// to open the log, naming the file and the frame.
func TestCrashBitFlipSealedWithoutIndex(t *testing.T) {
	want, files, bases := crashSealedLog(t)
	seg, next := bases[1], bases[2]
	bad := seg + (next-seg)/2
	opts := Options{SegmentBytes: 4096, Fsync: FsyncNever}
	for _, f := range crashFlips {
		t.Run(f.name, func(t *testing.T) {
			fs := files.clone()
			pos := crashFlipBit(fs, want, seg, bad, f)
			delete(fs, crashIndexName(seg))
			dir := t.TempDir()
			fs.write(t, dir)
			l, err := Open(dir, opts)
			if err == nil {
				l.Close()
				t.Fatalf("Open succeeded on a sealed segment with a bad frame and no index")
			}
			crashWantCorrupt(t, "Open", err, filepath.Join(dir, crashStoreName(seg)), pos)
			// The sealed store was not truncated to hide the damage.
			fi, err := os.Stat(filepath.Join(dir, crashStoreName(seg)))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Size() != int64(len(fs[crashStoreName(seg)])) {
				t.Fatalf("sealed store is %d bytes after the failed Open, want %d", fi.Size(), len(fs[crashStoreName(seg)]))
			}
		})
	}
}

// TestCrashSegmentGap removes segments and checks that a hole in the middle
// of the chain is corruption, while a log that merely starts later (its
// first segments deleted, as retention does) opens.
func TestCrashSegmentGap(t *testing.T) {
	want, files, bases := crashSealedLog(t)
	if len(bases) < 4 {
		t.Fatalf("want at least 4 segments, got %d", len(bases))
	}
	opts := Options{SegmentBytes: 4096, Fsync: FsyncNever}
	for _, tc := range []struct {
		name    string
		remove  []string
		corrupt string // store named by the error; "" when Open must succeed
	}{
		{"middle segment gone", []string{crashStoreName(bases[1]), crashIndexName(bases[1])}, crashStoreName(bases[2])},
		{"middle store gone", []string{crashStoreName(bases[2])}, crashStoreName(bases[3])},
		{"first segment gone", []string{crashStoreName(bases[0]), crashIndexName(bases[0])}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := files.clone()
			for _, name := range tc.remove {
				delete(fs, name)
			}
			dir := t.TempDir()
			fs.write(t, dir)
			l, err := Open(dir, opts)
			if tc.corrupt != "" {
				if err == nil {
					l.Close()
					t.Fatalf("Open succeeded on a log with a gap")
				}
				crashWantCorrupt(t, "Open", err, filepath.Join(dir, tc.corrupt), 0)
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer l.Close()
			if got := l.FirstIndex(); got != bases[1] {
				t.Fatalf("FirstIndex = %d, want %d", got, bases[1])
			}
			if got := l.FirstOffset(); got != want[bases[1]-1].BaseOffset {
				t.Fatalf("FirstOffset = %d, want %d", got, want[bases[1]-1].BaseOffset)
			}
			if got := l.LastIndex(); got != want[len(want)-1].Index {
				t.Fatalf("LastIndex = %d, want %d", got, want[len(want)-1].Index)
			}
			r, err := l.NewReader(bases[1])
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			for _, w := range want[bases[1]-1:] {
				got, err := r.Next()
				if err != nil {
					t.Fatalf("Reader.Next at %d: %v", w.Index, err)
				}
				if d := crashDiff(got, w); d != "" {
					t.Fatalf("Reader: %s", d)
				}
			}
		})
	}
}
