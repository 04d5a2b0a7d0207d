package partition

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	wlog "weir/log"
	"weir/protocol/record"
)

// recordBatch is a batch of records of size bytes, as many as fill about
// batchBytes, and how many it holds.
func recordBatch(b *testing.B, size, batchBytes int) ([]byte, int) {
	bld := record.NewBuilder(record.CodecNone)
	n := max(1, batchBytes/(size+16))
	for range n {
		bld.Append(record.Record{Value: make([]byte, size), Timestamp: 1})
	}
	batch, err := bld.AppendTo(nil)
	if err != nil {
		b.Fatal(err)
	}
	return batch, n
}

// BenchmarkPartitionProduce measures a single voter (fsync always) taking
// batches of 16 KiB and 256 KiB of 100 B and 1 KiB records from 1 and 16
// concurrent producers, and, side by side, the log package appending the
// same batches as entries (its own throughput: the partition's ceiling).
func BenchmarkPartitionProduce(b *testing.B) {
	for _, size := range []int{100, 1 << 10} {
		for _, batchBytes := range []int{16 << 10, 256 << 10} {
			for _, producers := range []int{1, 16} {
				name := fmt.Sprintf("record=%dB/batch=%dKiB/producers=%d", size, batchBytes>>10, producers)
				b.Run(name, func(b *testing.B) {
					p := singleVoter(b, b.TempDir(), nil)
					batch, n := recordBatch(b, size, batchBytes)
					b.SetBytes(int64(len(batch)))
					b.ReportAllocs()
					before := p.Stats()
					var sent atomic.Int64
					b.ResetTimer()
					b.SetParallelism(producers) // producers per GOMAXPROCS: 2x on this machine
					if producers == 1 {
						for range b.N {
							if _, err := p.Produce(context.Background(), batch, AcksAll); err != nil {
								b.Fatal(err)
							}
						}
						sent.Store(int64(b.N))
					} else {
						b.RunParallel(func(pb *testing.PB) {
							for pb.Next() {
								if _, err := p.Produce(context.Background(), batch, AcksAll); err != nil {
									b.Error(err)
									return
								}
								sent.Add(1)
							}
						})
					}
					b.StopTimer()
					b.ReportMetric(float64(sent.Load()*int64(n))/b.Elapsed().Seconds(), "records/s")
					reportGroupCommit(b, before, p.Stats())
				})
			}
			b.Run(fmt.Sprintf("record=%dB/batch=%dKiB/log-append", size, batchBytes>>10), func(b *testing.B) {
				l, err := wlog.Open(b.TempDir(), wlog.Options{Fsync: wlog.FsyncAlways})
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				batch, n := recordBatch(b, size, batchBytes)
				b.SetBytes(int64(len(batch)))
				b.ReportAllocs()
				e := []wlog.Entry{{Type: wlog.TypeData, Count: uint32(n), Payload: batch}}
				for i := range b.N {
					e[0].Index = uint64(i + 1)
					if err := l.Append(e); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "records/s")
			})
		}
	}
}

// BenchmarkThreeVoterProduce measures three replicas in one process over
// loopback TCP (fsync always): 16 producers send 256 KiB batches to the
// leader, and each is acknowledged once a majority has it on disk.
func BenchmarkThreeVoterProduce(b *testing.B) {
	for _, size := range []int{100, 1 << 10} {
		b.Run(fmt.Sprintf("record=%dB/batch=256KiB/producers=16/tcp", size), func(b *testing.B) {
			// Default timeouts: the tests' 50 ms elections would change
			// leaders under a benchmark's fsync stalls.
			c := newCluster(b, true, func(cfg *Config) {
				cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 500*time.Millisecond, 500*time.Millisecond, 250*time.Millisecond
				cfg.Log.SegmentBytes = 0 // the default, not the tests' tiny segments
			})
			leader := c.waitLeader()
			batch, n := recordBatch(b, size, 256<<10)
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			before := leader.p.Stats()
			var sent atomic.Int64
			b.ResetTimer()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := leader.p.Produce(context.Background(), batch, AcksAll); err != nil {
						b.Error(err)
						return
					}
					sent.Add(1)
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(sent.Load()*int64(n))/b.Elapsed().Seconds(), "records/s")
			reportGroupCommit(b, before, leader.p.Stats())
		})
	}
}
