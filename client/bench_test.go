package client

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkProduce produces b.N records asynchronously to a 3-partition
// topic of an in-process broker (fsync off) and waits for them all.
func BenchmarkProduce(b *testing.B) {
	addr := startBroker(b)
	for _, size := range []int{100, 1024} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			topic := fmt.Sprintf("bench-produce-%d-%d", size, b.N)
			createTopic(b, addr, topic, 3, nil)
			p := newProducer(b, addr)
			ctx := context.Background()
			value := make([]byte, size)
			var failed atomic.Int64
			promise := func(_ *Record, err error) {
				if err != nil {
					failed.Add(1)
				}
			}
			// Warm up: metadata, producer id, connections.
			if err := p.ProduceSync(ctx, &Record{Topic: topic, Value: value}); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				p.Produce(ctx, &Record{Topic: topic, Value: value}, promise)
			}
			if err := p.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d records failed", n)
			}
		})
	}
}

// BenchmarkConsume consumes b.N records of each size, produced beforehand
// to a 3-partition topic of an in-process broker, from offset 0, and
// reports records/s; with release, handing each Poll's records back
// (Consumer.Release). The broker and the client share the machine, as a
// bench against a local broker does; compare with benchstat.
func BenchmarkConsume(b *testing.B) {
	addr := startBroker(b)
	for _, bc := range []struct {
		size    int
		release bool
	}{{100, false}, {1024, false}, {100, true}, {1024, true}} {
		size := bc.size
		name := fmt.Sprintf("%dB", size)
		if bc.release {
			name += "/release"
		}
		b.Run(name, func(b *testing.B) {
			topic := fmt.Sprintf("bench-consume-%d-%v-%d", size, bc.release, b.N)
			createTopic(b, addr, topic, 3, nil)
			p := newProducer(b, addr)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			value := make([]byte, size)
			for range b.N {
				p.Produce(ctx, &Record{Topic: topic, Value: value}, nil)
			}
			if err := p.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			c := newConsumer(b, addr)
			c.Assign(topic, 0, 1, 2)
			for n := 0; n < b.N; {
				recs, err := c.Poll(ctx)
				if err != nil {
					b.Fatal(err)
				}
				n += len(recs)
				if bc.release {
					c.Release(recs)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
		})
	}
}
