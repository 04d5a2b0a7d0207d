package client

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"weir/protocol"
	"weir/protocol/record"
)

// produceOne produces a record and waits for its promise, checking that
// the promise is called exactly once.
func produceOne(t *testing.T, ctx context.Context, p *Producer, r *Record) error {
	t.Helper()
	var calls atomic.Int32
	done := make(chan error, 2)
	p.Produce(ctx, r, func(_ *Record, err error) {
		calls.Add(1)
		done <- err
	})
	select {
	case err := <-done:
		// Flush: a second promise call would come before it returns.
		if ferr := p.Flush(ctx); ferr != nil {
			t.Fatal(ferr)
		}
		if n := calls.Load(); n != 1 {
			t.Fatalf("promise called %d times", n)
		}
		return err
	case <-ctx.Done():
		t.Fatal("record never acknowledged")
		return nil
	}
}

func TestProduceRetriesBackpressure(t *testing.T) {
	fb := startFake(t, 1)
	fb.addTopic("t", 1)
	var (
		mu    sync.Mutex
		times []time.Time
	)
	fb.setHandler(func(req protocol.Request) fakeReply {
		r, ok := req.(*protocol.ProduceRequest)
		if !ok {
			return fakeReply{pass: true}
		}
		mu.Lock()
		times = append(times, time.Now())
		n := len(times)
		mu.Unlock()
		if n <= 2 {
			return fakeReply{resp: produceError(r, protocol.CodeBackpressure, func(p *protocol.ProduceResponsePartition) { p.RetryAfterMs = 50 })}
		}
		return fakeReply{pass: true}
	})
	// A backoff far below retry_after_ms: the wait must come from the hint.
	p := newProducer(t, fb.addr, RetryBackoff(time.Millisecond, 2*time.Millisecond))
	ctx := testContext(t, 20*time.Second)
	r := &Record{Topic: "t", Value: []byte("v")}
	if err := produceOne(t, ctx, p, r); err != nil {
		t.Fatal(err)
	}
	if got := fb.count(protocol.KeyProduce); got != 3 {
		t.Fatalf("%d produce requests, want 3 (two Backpressure, one success)", got)
	}
	if r.Offset != 0 || r.Partition != 0 {
		t.Fatalf("record at %d[%d], want 0[0]", r.Partition, r.Offset)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < 50*time.Millisecond {
			t.Errorf("retry %d came %v after the Backpressure, before retry_after_ms=50", i, gap)
		}
	}
}

func TestProduceGivesUpAtDeliveryTimeout(t *testing.T) {
	fb := startFake(t, 1)
	fb.addTopic("t", 1)
	fb.setHandler(func(req protocol.Request) fakeReply {
		if r, ok := req.(*protocol.ProduceRequest); ok {
			return fakeReply{resp: produceError(r, protocol.CodeBackpressure, func(p *protocol.ProduceResponsePartition) { p.RetryAfterMs = 1 })}
		}
		return fakeReply{pass: true}
	})
	// MaxRetries does not bound a batch: only its delivery deadline does.
	p := newProducer(t, fb.addr, DeliveryTimeout(300*time.Millisecond), MaxRetries(1), RetryBackoff(time.Millisecond, 5*time.Millisecond))
	err := produceOne(t, testContext(t, 20*time.Second), p, &Record{Topic: "t", Value: []byte("v")})
	if !errors.Is(err, ErrDeliveryTimeout) || !errors.Is(err, protocol.ErrBackpressure) {
		t.Fatalf("err = %v, want a delivery timeout wrapping Backpressure", err)
	}
	if got := fb.count(protocol.KeyProduce); got < 3 {
		t.Fatalf("%d produce requests, want retries until the deadline (at least 3)", got)
	}
}

func TestProduceFollowsNotLeader(t *testing.T) {
	a, b := startFake(t, 1), startFake(t, 2)
	a.addTopic("t", 1)
	b.addTopic("t", 1)
	a.addPeer(b)
	a.setHandler(func(req protocol.Request) fakeReply {
		if r, ok := req.(*protocol.ProduceRequest); ok {
			return fakeReply{resp: produceError(r, protocol.CodeNotLeader, func(p *protocol.ProduceResponsePartition) {
				p.LeaderID, p.LeaderAddress = 2, b.addr
			})}
		}
		return fakeReply{pass: true}
	})
	p := newProducer(t, a.addr, RetryBackoff(time.Millisecond, time.Millisecond))
	r := &Record{Topic: "t", Value: []byte("v")}
	if err := produceOne(t, testContext(t, 20*time.Second), p, r); err != nil {
		t.Fatal(err)
	}
	if got := a.count(protocol.KeyProduce); got != 1 {
		t.Errorf("%d produce requests to the old leader, want 1", got)
	}
	if got := b.count(protocol.KeyProduce); got != 1 {
		t.Errorf("%d produce requests to the leader named, want 1", got)
	}
	// The redirect came from the response: no metadata refresh was needed.
	if got := a.count(protocol.KeyMetadata) + b.count(protocol.KeyMetadata); got != 1 {
		t.Errorf("%d metadata requests, want 1 (the first lookup)", got)
	}
}

// TestProduceLeavesAFrozenLeader: the leader stops answering (a stopped
// process keeps its sockets open) and another node takes over. The
// producer must learn it from the metadata and deliver to the new leader,
// not wait out its request timeout (a minute here, more than the test's
// deadline) on the old one.
func TestProduceLeavesAFrozenLeader(t *testing.T) {
	a, b := frozenLeader(t, protocol.KeyProduce)
	p := newProducer(t, a.addr, RequestTimeout(time.Minute))
	if err := produceOne(t, testContext(t, 20*time.Second), p, &Record{Topic: "t", Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if got := b.count(protocol.KeyProduce); got != 1 {
		t.Errorf("%d produce requests to the new leader, want 1", got)
	}
}

// TestInitProducerIDAfterControllerDied: the controller the metadata named
// is gone (its port refuses); the producer must look the controller up
// again, not retry the dead address until it gives up.
func TestInitProducerIDAfterControllerDied(t *testing.T) {
	a, dead := startFake(t, 1), startFake(t, 2)
	a.addTopic("t", 1)
	a.addPeer(dead)
	dead.close()
	var metadataCalls atomic.Int32
	a.setHandler(func(req protocol.Request) fakeReply {
		if r, ok := req.(*protocol.MetadataRequest); ok {
			md := a.metadata(r)
			if metadataCalls.Add(1) == 1 {
				md.ControllerID = 2 // as before the election
			}
			return fakeReply{resp: md}
		}
		return fakeReply{pass: true}
	})
	// Bounded well inside the test's deadline: a producer stuck on the
	// dead address fails the test rather than hang it.
	p := newProducer(t, a.addr, RetryBackoff(time.Millisecond, time.Millisecond), DeliveryTimeout(10*time.Second))
	if err := produceOne(t, testContext(t, 20*time.Second), p, &Record{Topic: "t", Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if got := a.count(protocol.KeyInitProducerID); got != 1 {
		t.Errorf("%d InitProducerID requests to the live controller, want 1", got)
	}
}

func TestProduceRefreshesOnLeaderNotAvailable(t *testing.T) {
	fb := startFake(t, 1)
	fb.addTopic("t", 1)
	var produces atomic.Int32
	fb.setHandler(func(req protocol.Request) fakeReply {
		if r, ok := req.(*protocol.ProduceRequest); ok && produces.Add(1) == 1 {
			return fakeReply{resp: produceError(r, protocol.CodeLeaderNotAvailable, nil)}
		}
		return fakeReply{pass: true}
	})
	p := newProducer(t, fb.addr, RetryBackoff(time.Millisecond, time.Millisecond))
	if err := produceOne(t, testContext(t, 20*time.Second), p, &Record{Topic: "t", Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if got := fb.count(protocol.KeyMetadata); got != 2 {
		t.Fatalf("%d metadata requests, want 2 (lookup, refresh after LeaderNotAvailable)", got)
	}
}

// TestProduceRetryKeepsSequence drops the connection on the first produce
// (after reading it: the broker may have written the batch); the retry must
// carry the same producer id, epoch and base sequence, so that a broker
// that wrote it drops the duplicate.
func TestProduceRetryKeepsSequence(t *testing.T) {
	fb := startFake(t, 1)
	fb.addTopic("t", 1)
	var (
		mu      sync.Mutex
		headers []record.BatchHeader
	)
	fb.setHandler(func(req protocol.Request) fakeReply {
		r, ok := req.(*protocol.ProduceRequest)
		if !ok {
			return fakeReply{pass: true}
		}
		data, err := produceBatch(r)
		if err != nil {
			t.Error(err)
			return fakeReply{drop: true}
		}
		h, err := record.ParseHeader(data)
		if err != nil {
			t.Errorf("batch header: %v", err)
			return fakeReply{drop: true}
		}
		mu.Lock()
		headers = append(headers, h)
		n := len(headers)
		mu.Unlock()
		if n == 1 {
			return fakeReply{drop: true}
		}
		return fakeReply{pass: true}
	})
	p := newProducer(t, fb.addr, RetryBackoff(time.Millisecond, time.Millisecond))
	ctx := testContext(t, 20*time.Second)
	recs := []*Record{{Topic: "t", Value: []byte("a")}, {Topic: "t", Value: []byte("b")}, {Topic: "t", Value: []byte("c")}}
	if err := p.ProduceSync(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceSync(ctx, &Record{Topic: "t", Value: []byte("d")}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(headers) != 3 {
		t.Fatalf("%d produce requests, want 3 (dropped, retried, next)", len(headers))
	}
	for i, h := range headers[:2] {
		if h.ProducerID != 7 || h.ProducerEpoch != 0 || h.BaseSequence != 0 || h.Count != 3 {
			t.Errorf("attempt %d: producer %d epoch %d sequence %d count %d, want 7, 0, 0, 3",
				i+1, h.ProducerID, h.ProducerEpoch, h.BaseSequence, h.Count)
		}
	}
	if h := headers[2]; h.ProducerID != 7 || h.BaseSequence != 3 {
		t.Errorf("next batch: producer %d sequence %d, want 7, 3", h.ProducerID, h.BaseSequence)
	}
	if got := fb.count(protocol.KeyInitProducerID); got != 1 {
		t.Errorf("%d InitProducerID requests, want 1", got)
	}
	for i, r := range recs {
		if r.Offset != int64(i) {
			t.Errorf("record %d acknowledged at offset %d", i, r.Offset)
		}
	}
}

// TestProduceFatalSequenceErrors: OutOfOrderSequence for a batch sent with
// nothing before it in flight, and ProducerFenced, fail the batch's records
// with that error; the partition then starts over under a fresh producer
// id, from sequence 0.
func TestProduceFatalSequenceErrors(t *testing.T) {
	for _, code := range []protocol.ErrorCode{protocol.CodeOutOfOrderSequence, protocol.CodeProducerFenced} {
		t.Run(code.String(), func(t *testing.T) {
			fb := startFake(t, 1)
			fb.addTopic("t", 1)
			var (
				mu      sync.Mutex
				headers []record.BatchHeader
				pids    int64 = 6
			)
			fb.setHandler(func(req protocol.Request) fakeReply {
				switch r := req.(type) {
				case *protocol.InitProducerIDRequest:
					mu.Lock()
					defer mu.Unlock()
					pids++
					return fakeReply{resp: &protocol.InitProducerIDResponse{ProducerID: pids}}
				case *protocol.ProduceRequest:
					data, _ := produceBatch(r)
					h, _ := record.ParseHeader(data)
					mu.Lock()
					headers = append(headers, h)
					n := len(headers)
					mu.Unlock()
					if n == 1 {
						return fakeReply{resp: produceError(r, code, nil)}
					}
				}
				return fakeReply{pass: true}
			})
			p := newProducer(t, fb.addr)
			ctx := testContext(t, 20*time.Second)
			err := produceOne(t, ctx, p, &Record{Topic: "t", Value: []byte("a")})
			if !errors.Is(err, &protocol.Error{Code: code}) {
				t.Fatalf("err = %v, want %v", err, code)
			}
			if err := produceOne(t, ctx, p, &Record{Topic: "t", Value: []byte("b")}); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(headers) != 2 {
				t.Fatalf("%d produce requests, want 2", len(headers))
			}
			if h := headers[1]; h.ProducerID != 8 || h.BaseSequence != 0 {
				t.Errorf("after the failure: producer %d sequence %d, want a fresh id (8) from 0", h.ProducerID, h.BaseSequence)
			}
		})
	}
}

// TestProduceBoundedMemory: with a broker that never answers, Produce
// waits for room once MaxBufferedBytes is taken (and gives up when its ctx
// ends), and the buffer never holds more than the limit.
func TestProduceBoundedMemory(t *testing.T) {
	const limit = 8 << 10
	value := make([]byte, 1000)
	for _, failFast := range []bool{false, true} {
		name := "wait"
		if failFast {
			name = "failfast"
		}
		t.Run(name, func(t *testing.T) {
			fb := startFake(t, 1)
			fb.addTopic("t", 1)
			fb.setHandler(func(req protocol.Request) fakeReply {
				if _, ok := req.(*protocol.ProduceRequest); ok {
					return fakeReply{hang: true}
				}
				return fakeReply{pass: true}
			})
			opts := []Opt{SeedBrokers(fb.addr), MaxBufferedBytes(limit), Linger(0)}
			if failFast {
				opts = append(opts, FailOnFullBuffer())
			}
			p, err := NewProducer(opts...)
			if err != nil {
				t.Fatal(err)
			}
			var (
				accepted atomic.Int32
				closed   atomic.Int32
			)
			promise := func(_ *Record, err error) {
				if errors.Is(err, ErrClosed) {
					closed.Add(1)
				} else {
					t.Errorf("buffered record completed with %v, want ErrClosed", err)
				}
			}
			var refused error
			for i := 0; refused == nil; i++ {
				if i > 2*limit/len(value) {
					t.Fatal("the buffer never filled")
				}
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				errc := make(chan error, 1)
				p.Produce(ctx, &Record{Topic: "t", Value: value}, func(r *Record, err error) {
					if refused == nil && err != nil && !errors.Is(err, ErrClosed) {
						errc <- err // called from Produce: refused
						return
					}
					promise(r, err)
				})
				cancel()
				select {
				case refused = <-errc:
				default:
					accepted.Add(1)
				}
				if used := p.BufferedBytes(); used > limit {
					t.Fatalf("%d bytes buffered, limit %d", used, limit)
				}
			}
			want := error(context.DeadlineExceeded)
			if failFast {
				want = ErrBufferFull
			}
			if !errors.Is(refused, want) {
				t.Fatalf("refused with %v, want %v", refused, want)
			}
			if used, one := p.BufferedBytes(), int64((&Record{Value: value}).size()); used+one <= limit {
				t.Fatalf("refused with %d of %d bytes buffered: room for another", used, limit)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			if err := p.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Shutdown = %v, want the flush cut short", err)
			}
			if a, c := accepted.Load(), closed.Load(); a != c {
				t.Fatalf("%d records accepted, %d failed with ErrClosed at shutdown", a, c)
			}
			if used := p.BufferedBytes(); used != 0 {
				t.Fatalf("%d bytes still buffered after shutdown", used)
			}
		})
	}
}

func TestProduceAcksNone(t *testing.T) {
	fb := startFake(t, 1)
	fb.addTopic("t", 1)
	p := newProducer(t, fb.addr, Acks(AcksNone))
	ctx := testContext(t, 20*time.Second)
	recs := []*Record{{Topic: "t", Value: []byte("a")}, {Topic: "t", Value: []byte("b")}}
	if err := p.ProduceSync(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Offset != -1 {
			t.Errorf("offset %d with acks none, want -1", r.Offset)
		}
	}
	if got := fb.count(protocol.KeyInitProducerID); got != 0 {
		t.Errorf("%d InitProducerID with acks none: idempotence needs answers", got)
	}
}

// TestListOffsetsAfterLeaderDied: the leader the metadata named is gone;
// ListOffsets must look the leader up again, not retry the dead address.
func TestListOffsetsAfterLeaderDied(t *testing.T) {
	a, dead := startFake(t, 1), startFake(t, 2)
	a.addTopic("t", 1)
	a.addPeer(dead)
	dead.close()
	var metadataCalls atomic.Int32
	a.setHandler(func(req protocol.Request) fakeReply {
		switch r := req.(type) {
		case *protocol.MetadataRequest:
			md := a.metadata(r)
			if metadataCalls.Add(1) == 1 {
				md.Topics[0].Partitions[0].LeaderID = 2 // as before the election
			}
			return fakeReply{resp: md}
		case *protocol.ListOffsetsRequest:
			return fakeReply{resp: &protocol.ListOffsetsResponse{Topics: []protocol.ListOffsetsResponseTopic{{Name: "t",
				Partitions: []protocol.ListOffsetsResponsePartition{{Partition: 0, Offset: 42, Timestamp: -1, LeaderID: -1}}}}}}
		}
		return fakeReply{pass: true}
	})
	adm := newAdmin(t, a.addr, RetryBackoff(time.Millisecond, time.Millisecond), MaxRetries(5))
	off, err := adm.ListOffsets(testContext(t, 20*time.Second), "t", 0, Latest)
	if err != nil || off != 42 {
		t.Fatalf("ListOffsets = %d, %v; want 42", off, err)
	}
}

// TestMetadataSkipsAFrozenBroker: a broker that never answers (frozen, cut
// off) costs a metadata lookup a short try, not the whole request timeout.
func TestMetadataSkipsAFrozenBroker(t *testing.T) {
	frozen, live := startFake(t, 1), startFake(t, 2)
	live.addTopic("t", 1)
	frozen.setHandler(func(protocol.Request) fakeReply { return fakeReply{hang: true} })
	adm := newAdmin(t, frozen.addr, SeedBrokers(frozen.addr, live.addr), RequestTimeout(time.Minute))
	ctx := testContext(t, 20*time.Second)
	for range 2 { // the first broker tried rotates: the frozen one is first once
		if _, err := adm.ListTopics(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if frozen.count(protocol.KeyMetadata) == 0 {
		t.Fatal("the frozen broker was never asked: the test proves nothing")
	}
}
