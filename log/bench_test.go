package log

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// benchDir is where benchmarks write: WEIR_BENCH_DIR if set (a tmpfs such
// as /dev/shm takes the disk out and leaves the CPU cost), else a temporary
// directory on the default file system.
func benchDir(b *testing.B) string {
	if root := os.Getenv("WEIR_BENCH_DIR"); root != "" {
		dir, err := os.MkdirTemp(root, "weir-bench")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	return b.TempDir()
}

// benchBatch returns the entries of one Append: one entry, or as many as
// fill 64 KiB of payload.
func benchBatch(payloadSize, batchBytes int) []Entry {
	n := max(1, batchBytes/payloadSize)
	entries := make([]Entry, n)
	payload := make([]byte, payloadSize)
	for i := range entries {
		entries[i] = Entry{Type: TypeData, Count: 1, Timestamp: 1, Payload: payload}
	}
	return entries
}

func framesBytes(entries []Entry) int64 {
	var n int64
	for _, e := range entries {
		n += int64(frameSize(len(e.Payload)))
	}
	return n
}

// BenchmarkAppend measures Append against a baseline that writes the same
// bytes to a plain file with the same fsync pattern (one write, then an
// fdatasync with "always"), side by side in one run: compare log/ with raw/.
// Bytes per op are frame bytes (header and payload) for both.
func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{100, 1024} {
		for _, batch := range []struct {
			name  string
			bytes int
		}{{"batch=1", 0}, {"batch=64KiB", 64 << 10}} {
			for _, policy := range []FsyncPolicy{FsyncNever, FsyncAlways} {
				name := fmt.Sprintf("size=%d/%s/fsync=%s", size, batch.name, policy)
				b.Run(name+"/log", func(b *testing.B) { benchAppendLog(b, size, batch.bytes, policy) })
				b.Run(name+"/raw", func(b *testing.B) { benchAppendRaw(b, size, batch.bytes, policy) })
			}
		}
	}
}

func benchAppendLog(b *testing.B, size, batchBytes int, policy FsyncPolicy) {
	l, err := Open(benchDir(b), Options{Fsync: policy})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	entries := benchBatch(size, batchBytes)
	b.SetBytes(framesBytes(entries))
	b.ReportAllocs()
	b.ResetTimer()
	next := uint64(1)
	for range b.N {
		for i := range entries {
			entries[i].Index = next + uint64(i)
		}
		if err := l.Append(entries); err != nil {
			b.Fatal(err)
		}
		next += uint64(len(entries))
	}
	b.ReportMetric(float64(b.N*len(entries))/b.Elapsed().Seconds(), "entries/s")
}

func benchAppendRaw(b *testing.B, size, batchBytes int, policy FsyncPolicy) {
	f, err := os.Create(filepath.Join(benchDir(b), "raw"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, framesBytes(benchBatch(size, batchBytes)))
	entries := len(benchBatch(size, batchBytes))
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if policy == FsyncAlways {
			if err := fdatasync(f); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*entries)/b.Elapsed().Seconds(), "entries/s")
}

// benchLog fills a log with n entries of size bytes and returns it.
func benchLog(b *testing.B, n, size int) *Log {
	l, err := Open(b.TempDir(), Options{Fsync: FsyncNever, SegmentBytes: 16 << 20})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	entries := benchBatch(size, 64<<10)
	for next := uint64(1); next <= uint64(n); next += uint64(len(entries)) {
		for i := range entries {
			entries[i].Index = next + uint64(i)
			entries[i].Timestamp = int64(next) + int64(i)
		}
		if err := l.Append(entries); err != nil {
			b.Fatal(err)
		}
	}
	return l
}

func BenchmarkRead(b *testing.B) {
	const n, size = 200_000, 100
	l := benchLog(b, n, size)
	last := l.LastIndex()
	b.Run("by-index", func(b *testing.B) {
		b.SetBytes(int64(frameSize(size)))
		b.ReportAllocs()
		for i := range b.N {
			if _, err := l.Read(1 + uint64(i*7919)%last); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("scan", func(b *testing.B) {
		b.SetBytes(int64(frameSize(size)))
		b.ReportAllocs()
		r, err := l.NewReader(1)
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		for range b.N {
			if _, err := r.Next(); err != nil {
				r.Close()
				if r, err = l.NewReader(1); err != nil {
					b.Fatal(err)
				}
				if _, err := r.Next(); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("index-for-offset", func(b *testing.B) {
		b.ReportAllocs()
		next := l.NextOffset()
		for i := range b.N {
			if _, err := l.IndexForOffset(uint64(i*7919) % next); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("index-for-timestamp", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			if _, err := l.IndexForTimestamp(int64(i*7919) % int64(last)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("file-range-1MiB", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			r, err := l.FileRange(1+uint64(i*7919)%last, last, 1<<20)
			if err != nil {
				b.Fatal(err)
			}
			r.Release()
		}
	})
}

// BenchmarkOpen measures opening a 1 GiB log of 1 KiB entries, after a
// clean close and in the state a kill leaves (index files not shrunk: the
// log is opened while another instance still has it open).
func BenchmarkOpen(b *testing.B) {
	const size = 1024
	dir := b.TempDir()
	opts := Options{Fsync: FsyncNever}
	l, err := Open(dir, opts)
	if err != nil {
		b.Fatal(err)
	}
	entries := benchBatch(size, 1<<20)
	for next := uint64(1); l.Size() < 1<<30; next += uint64(len(entries)) {
		for i := range entries {
			entries[i].Index = next + uint64(i)
		}
		if err := l.Append(entries); err != nil {
			b.Fatal(err)
		}
	}
	gib := l.Size()
	b.Run("after-kill", func(b *testing.B) {
		b.SetBytes(gib)
		for range b.N {
			l2, err := Open(dir, opts)
			if err != nil {
				b.Fatal(err)
			}
			l2.releaseAll() // leave the files as they are: no Close
		}
	})
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	b.Run("after-close", func(b *testing.B) {
		b.SetBytes(gib)
		for range b.N {
			l2, err := Open(dir, opts)
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			l2.Close() // shrinks the index again for the next round
			b.StartTimer()
		}
	})
}

// BenchmarkAppendVsRaw alternates, op by op, one log Append of a 64 KiB
// batch and one plain write of the same bytes (with an fdatasync for
// "always") to a file in the same directory, timing each, and reports both
// throughputs and their ratio. Alternating keeps the two under the same
// page-cache and writeback conditions, which separate runs do not.
func BenchmarkAppendVsRaw(b *testing.B) {
	for _, size := range []int{100, 1024} {
		for _, policy := range []FsyncPolicy{FsyncNever, FsyncAlways} {
			b.Run(fmt.Sprintf("size=%d/batch=64KiB/fsync=%s", size, policy), func(b *testing.B) {
				dir := benchDir(b)
				l, err := Open(filepath.Join(dir, "log"), Options{Fsync: policy})
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				f, err := os.Create(filepath.Join(dir, "raw"))
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				entries := benchBatch(size, 64<<10)
				bytesPerOp := framesBytes(entries)
				raw := make([]byte, bytesPerOp)
				b.SetBytes(bytesPerOp)
				b.ReportAllocs()
				var logTime, rawTime time.Duration
				next := uint64(1)
				for range b.N {
					for i := range entries {
						entries[i].Index = next + uint64(i)
					}
					start := time.Now()
					if err := l.Append(entries); err != nil {
						b.Fatal(err)
					}
					logTime += time.Since(start)
					next += uint64(len(entries))

					start = time.Now()
					if _, err := f.Write(raw); err != nil {
						b.Fatal(err)
					}
					if policy == FsyncAlways {
						if err := fdatasync(f); err != nil {
							b.Fatal(err)
						}
					}
					rawTime += time.Since(start)
				}
				total := float64(bytesPerOp) * float64(b.N) / 1e6
				b.ReportMetric(total/logTime.Seconds(), "log-MB/s")
				b.ReportMetric(total/rawTime.Seconds(), "raw-MB/s")
				b.ReportMetric(rawTime.Seconds()/logTime.Seconds(), "log/raw")
			})
		}
	}
}
