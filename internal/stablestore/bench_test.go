package stablestore

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// BenchmarkSharedElectionWrites measures the stable-store writes of a
// thousand groups electing at once: 1,000 writers, each setting its own
// group's term over and over, every Set waiting for its fsync. ns/op is
// the store's throughput (one op = one Set); a vote needs three of them
// in a row on each voter.
func BenchmarkSharedElectionWrites(b *testing.B) {
	s, err := OpenShared(filepath.Join(b.TempDir(), "journal"), "")
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const groups = 1000
	gs := make([]*Group, groups)
	for i := range gs {
		if gs[i], err = s.Group(fmt.Sprint("p/1/", i), ""); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(groups / 2) // GOMAXPROCS is 2 here: 1,000 goroutines
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		g := gs[int(next.Add(1)-1)%groups]
		term := uint64(0)
		for pb.Next() {
			term++
			if err := g.SetUint64([]byte("CurrentTerm"), term); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkSharedSet is one writer alone: the latency of a Set (one bolt
// commit with its fsyncs, after the batch delay).
func BenchmarkSharedSet(b *testing.B) {
	s, err := OpenShared(filepath.Join(b.TempDir(), "journal"), "")
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	g, err := s.Group("p/1/0", "")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := g.SetUint64([]byte("CurrentTerm"), uint64(i)); err != nil {
			b.Fatal(err)
		}
	}
}
