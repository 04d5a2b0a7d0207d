package client

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"weir/protocol"
)

// makeRecords returns n records for topic with keys from a small set (so
// that many share a key), a header and a value naming their index.
func makeRecords(topic string, n int) []*Record {
	recs := make([]*Record, n)
	for i := range recs {
		recs[i] = &Record{
			Topic:   topic,
			Key:     []byte(fmt.Sprintf("key-%d", i%97)),
			Value:   []byte(fmt.Sprintf("value-%d-%s", i, bytes.Repeat([]byte{'x'}, i%50))),
			Headers: []Header{{Key: "index", Value: []byte(strconv.Itoa(i))}, {Key: "empty", Value: []byte{}}},
		}
	}
	return recs
}

// checkConsumed checks that got holds each of sent exactly once, at the
// partition and offset its producer was told, with its key, value and
// headers; that each partition's records come in offset order; and that
// offsets are dense from 0.
func checkConsumed(t *testing.T, sent, got []*Record) {
	t.Helper()
	if len(got) != len(sent) {
		t.Fatalf("consumed %d records, produced %d", len(got), len(sent))
	}
	byValue := map[string]*Record{}
	for _, r := range sent {
		byValue[string(r.Value)] = r
	}
	next := map[int32]int64{}
	for _, r := range got {
		want := byValue[string(r.Value)]
		if want == nil {
			t.Fatalf("consumed %q: not produced, or consumed twice", r.Value)
		}
		delete(byValue, string(r.Value))
		if r.Partition != want.Partition || r.Offset != want.Offset {
			t.Fatalf("%q consumed at %d[%d], acknowledged at %d[%d]", r.Value, r.Partition, r.Offset, want.Partition, want.Offset)
		}
		if r.Offset != next[r.Partition] {
			t.Fatalf("partition %d: offset %d after %d", r.Partition, r.Offset, next[r.Partition]-1)
		}
		next[r.Partition]++
		if !bytes.Equal(r.Key, want.Key) || r.Topic != want.Topic {
			t.Fatalf("%q: key %q topic %q, want %q %q", r.Value, r.Key, r.Topic, want.Key, want.Topic)
		}
		if len(r.Headers) != len(want.Headers) {
			t.Fatalf("%q: %d headers, want %d", r.Value, len(r.Headers), len(want.Headers))
		}
		for i, h := range r.Headers {
			w := want.Headers[i]
			if h.Key != w.Key || !bytes.Equal(h.Value, w.Value) || (h.Value == nil) != (w.Value == nil) {
				t.Fatalf("%q: header %d is %q=%q, want %q=%q", r.Value, i, h.Key, h.Value, w.Key, w.Value)
			}
		}
		if !r.Timestamp.Equal(want.Timestamp.Truncate(time.Millisecond)) {
			t.Fatalf("%q: timestamp %v, want %v", r.Value, r.Timestamp, want.Timestamp)
		}
	}
}

// TestRoundTrip produces 10,000 records to 6 partitions, half with
// ProduceSync and half with Produce, and consumes them back.
func TestRoundTrip(t *testing.T) {
	addr := startBroker(t)
	createTopic(t, addr, "rt", 6, nil)
	ctx := testContext(t, 60*time.Second)
	p := newProducer(t, addr)
	const n = 10000
	recs := makeRecords("rt", n)

	for i := 0; i < n/2; i += 500 {
		if err := p.ProduceSync(ctx, recs[i:i+500]...); err != nil {
			t.Fatal(err)
		}
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	wg.Add(n - n/2)
	for _, r := range recs[n/2:] {
		p.Produce(ctx, r, func(_ *Record, err error) {
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			wg.Done()
		})
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}

	// The key partitioner sends equal keys to the same partition.
	partitionOf := map[string]int32{}
	used := map[int32]bool{}
	for _, r := range recs {
		if p, ok := partitionOf[string(r.Key)]; ok && p != r.Partition {
			t.Fatalf("key %q went to partitions %d and %d", r.Key, p, r.Partition)
		}
		partitionOf[string(r.Key)] = r.Partition
		used[r.Partition] = true
	}
	if len(used) != 6 {
		t.Errorf("97 keys used %d partitions of 6", len(used))
	}

	c := newConsumer(t, addr)
	c.Assign("rt", 0, 1, 2, 3, 4, 5)
	checkConsumed(t, recs, pollN(t, ctx, c, n))

	// Nothing more: the partitions end where the records do.
	a := newAdmin(t, addr)
	var total int64
	for part := range int32(6) {
		end, err := a.ListOffsets(ctx, "rt", part, Latest)
		if err != nil {
			t.Fatal(err)
		}
		total += end
		if pos, ok := c.Position("rt", part); !ok || pos != end {
			t.Errorf("partition %d: position %d (%v), end %d", part, pos, ok, end)
		}
	}
	if total != n {
		t.Fatalf("partitions hold %d records, want %d", total, n)
	}
}

// TestRoundTripPipelined keeps several 1 MiB batches of one partition in
// flight on one connection. The broker handles a connection's requests
// concurrently, so batches overtake each other and are refused with
// OutOfOrderSequence (see brokerbugs_test.go; this test meets it about 20
// times a run); the producer must send them again, in order, so that every
// record is written once and in the order it was produced.
func TestRoundTripPipelined(t *testing.T) {
	addr := startBroker(t)
	createTopic(t, addr, "pipelined", 1, nil)
	ctx := testContext(t, 60*time.Second)
	p := newProducer(t, addr)
	recs := makeRecords("pipelined", 20000)
	for _, r := range recs {
		r.Value = append(r.Value, make([]byte, 1000)...)
	}
	if err := p.ProduceSync(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		if r.Offset != int64(i) {
			t.Fatalf("record %d written at offset %d", i, r.Offset)
		}
	}
	c := newConsumer(t, addr)
	c.Assign("pipelined", 0)
	checkConsumed(t, recs, pollN(t, ctx, c, len(recs)))
}

// TestProducerOptionsRoundTrip round-trips records with each compression
// codec, without idempotence, and with each partitioner.
func TestProducerOptionsRoundTrip(t *testing.T) {
	addr := startBroker(t)
	cases := []struct {
		name string
		opts []Opt
		// explicit sets Record.Partition to i % 3.
		explicit bool
	}{
		{"none", []Opt{Compression(CodecNone)}, false},
		{"zstd", []Opt{Compression(CodecZstd)}, false},
		{"lz4", []Opt{Compression(CodecLZ4)}, false},
		{"snappy", []Opt{Compression(CodecSnappy)}, false},
		{"not-idempotent", []Opt{Idempotent(false), BatchBytes(4 << 10)}, false},
		{"round-robin", []Opt{WithPartitioner(RoundRobinPartitioner())}, false},
		{"explicit", []Opt{WithPartitioner(ExplicitPartitioner())}, true},
		{"no-linger-small-batches", []Opt{Linger(0), BatchBytes(1 << 10)}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			topic := "opts-" + tc.name
			createTopic(t, addr, topic, 3, nil)
			ctx := testContext(t, 30*time.Second)
			p := newProducer(t, addr, tc.opts...)
			recs := makeRecords(topic, 600)
			for i, r := range recs {
				if tc.explicit {
					r.Partition = int32(i % 3)
				}
				if i%7 == 0 {
					r.Key = nil // sticky partitioning for the key hash partitioner
				}
				if i%11 == 0 {
					r.Headers = nil
				}
			}
			if err := p.ProduceSync(ctx, recs...); err != nil {
				t.Fatal(err)
			}
			for i, r := range recs {
				if tc.explicit && r.Partition != int32(i%3) {
					t.Fatalf("record %d went to partition %d, asked for %d", i, r.Partition, i%3)
				}
			}
			c := newConsumer(t, addr)
			c.Assign(topic, 0, 1, 2)
			checkConsumed(t, recs, pollN(t, ctx, c, len(recs)))
		})
	}
}

func TestProduceErrors(t *testing.T) {
	addr := startBroker(t)
	createTopic(t, addr, "errs", 2, map[string]string{"compression": "none"})
	ctx := testContext(t, 30*time.Second)
	p := newProducer(t, addr, MaxRecordBytes(1000), RetryBackoff(time.Millisecond, 10*time.Millisecond))

	t.Run("too large", func(t *testing.T) {
		err := p.ProduceSync(ctx, &Record{Topic: "errs", Value: make([]byte, 1000)})
		if !errors.Is(err, ErrRecordTooLarge) {
			t.Fatalf("err = %v, want ErrRecordTooLarge", err)
		}
	})
	t.Run("no topic", func(t *testing.T) {
		if err := p.ProduceSync(ctx, &Record{Value: []byte("v")}); !errors.Is(err, ErrNoTopic) {
			t.Fatalf("err = %v, want ErrNoTopic", err)
		}
	})
	t.Run("unknown topic", func(t *testing.T) {
		err := p.ProduceSync(ctx, &Record{Topic: "nope", Value: []byte("v")})
		if !errors.Is(err, protocol.ErrUnknownTopicOrPartition) {
			t.Fatalf("err = %v, want UnknownTopicOrPartition", err)
		}
	})
	t.Run("explicit partition out of range", func(t *testing.T) {
		pe := newProducer(t, addr, WithPartitioner(ExplicitPartitioner()))
		err := pe.ProduceSync(ctx, &Record{Topic: "errs", Partition: 2, Value: []byte("v")})
		if !errors.Is(err, ErrInvalidPartition) {
			t.Fatalf("err = %v, want ErrInvalidPartition", err)
		}
	})
	t.Run("codec refused by the topic", func(t *testing.T) {
		pz := newProducer(t, addr, Compression(CodecZstd))
		err := pz.ProduceSync(ctx, &Record{Topic: "errs", Value: bytes.Repeat([]byte("z"), 500)})
		if !errors.Is(err, protocol.ErrInvalidRequest) {
			t.Fatalf("err = %v, want InvalidRequest", err)
		}
	})
	t.Run("closed", func(t *testing.T) {
		pc, err := NewProducer(SeedBrokers(addr))
		if err != nil {
			t.Fatal(err)
		}
		if err := pc.Close(); err != nil {
			t.Fatal(err)
		}
		if err := pc.ProduceSync(ctx, &Record{Topic: "errs", Value: []byte("v")}); !errors.Is(err, ErrClosed) {
			t.Fatalf("err = %v, want ErrClosed", err)
		}
		if err := pc.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
}

// TestProducerCloseFlushes: Close sends what lingers and waits for it.
func TestProducerCloseFlushes(t *testing.T) {
	addr := startBroker(t)
	createTopic(t, addr, "close", 1, nil)
	p, err := NewProducer(SeedBrokers(addr), Linger(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t, 30*time.Second)
	var wg sync.WaitGroup
	recs := makeRecords("close", 50)
	wg.Add(len(recs))
	for _, r := range recs {
		p.Produce(ctx, r, func(_ *Record, err error) {
			if err != nil {
				t.Error(err)
			}
			wg.Done()
		})
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	c := newConsumer(t, addr)
	c.Assign("close", 0)
	checkConsumed(t, recs, pollN(t, ctx, c, len(recs)))
}

func TestOptionValidation(t *testing.T) {
	if _, err := NewProducer(); !errors.Is(err, ErrNoBrokers) {
		t.Errorf("no seeds: %v", err)
	}
	if _, err := NewProducer(SeedBrokers("x:1"), FetchMaxWait(time.Second)); err == nil {
		t.Error("a consumer option was accepted by a producer")
	}
	if _, err := NewConsumer(SeedBrokers("x:1"), Linger(time.Second)); err == nil {
		t.Error("a producer option was accepted by a consumer")
	}
	if _, err := NewAdmin(SeedBrokers("x:1"), BatchBytes(0)); err == nil {
		t.Error("a producer option was accepted by an admin")
	}
	if _, err := NewProducer(SeedBrokers("x:1"), BatchBytes(-1)); err == nil {
		t.Error("a negative BatchBytes was accepted")
	}
	if _, err := NewProducer(SeedBrokers("x:1"), Compression(Codec(7))); err == nil {
		t.Error("an unknown codec was accepted")
	}
	c, err := NewConsumer(SeedBrokers("x:1"), MaxPrefetchBytes(1<<20), ResetOffset(Latest))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}
