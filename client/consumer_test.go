package client

import (
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"sync/atomic"
	"testing"
	"time"

	"weir/protocol"
	"weir/protocol/record"
)

// produceTimed produces n records to partition 0 of topic, record i at
// base + i seconds, and returns them.
func produceTimed(t *testing.T, ctx context.Context, addr, topic string, n int, base time.Time) []*Record {
	t.Helper()
	p := newProducer(t, addr)
	var recs []*Record
	for i := range n {
		recs = append(recs, &Record{Topic: topic, Value: []byte{byte(i)}, Timestamp: base.Add(time.Duration(i) * time.Second)})
	}
	if err := p.ProduceSync(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	return recs
}

// firstPolled polls until records come and returns the first.
func firstPolled(t *testing.T, ctx context.Context, c *Consumer) *Record {
	t.Helper()
	recs := pollN(t, ctx, c, 1)
	return recs[0]
}

func TestConsumerSeek(t *testing.T) {
	addr := startBroker(t)
	createTopic(t, addr, "seek", 1, nil)
	ctx := testContext(t, 30*time.Second)
	base := time.UnixMilli(1_700_000_000_000)
	produceTimed(t, ctx, addr, "seek", 100, base)
	c := newConsumer(t, addr)

	if err := c.SeekToEarliest(ctx, "seek", 0); err != nil {
		t.Fatal(err)
	}
	if r := firstPolled(t, ctx, c); r.Offset != 0 {
		t.Fatalf("earliest: first offset %d", r.Offset)
	}
	c.SeekTo("seek", 0, 50)
	if pos, ok := c.Position("seek", 0); !ok || pos != 50 {
		t.Fatalf("position after SeekTo(50): %d %v", pos, ok)
	}
	if r := firstPolled(t, ctx, c); r.Offset != 50 || r.Value[0] != 50 {
		t.Fatalf("SeekTo(50): first offset %d value %d", r.Offset, r.Value[0])
	}
	if err := c.SeekToTime(ctx, "seek", 0, base.Add(30*time.Second)); err != nil {
		t.Fatal(err)
	}
	if r := firstPolled(t, ctx, c); r.Offset != 30 || !r.Timestamp.Equal(base.Add(30*time.Second)) {
		t.Fatalf("SeekToTime(+30s): first offset %d at %v", r.Offset, r.Timestamp)
	}
	if err := c.SeekToLatest(ctx, "seek", 0); err != nil {
		t.Fatal(err)
	}
	if pos, ok := c.Position("seek", 0); !ok || pos != 100 {
		t.Fatalf("position at latest: %d %v", pos, ok)
	}
	produceTimed(t, ctx, addr, "seek", 1, base)
	if r := firstPolled(t, ctx, c); r.Offset != 100 {
		t.Fatalf("after latest: offset %d", r.Offset)
	}
	if pos, _ := c.Position("seek", 0); pos != 101 {
		t.Fatalf("position after the last record: %d", pos)
	}
}

// TestConsumerStartOffset: a partition assigned without a seek starts at
// StartOffset.
func TestConsumerStartOffset(t *testing.T) {
	addr := startBroker(t)
	createTopic(t, addr, "start", 1, nil)
	ctx := testContext(t, 30*time.Second)
	base := time.UnixMilli(1_700_000_000_000)
	produceTimed(t, ctx, addr, "start", 10, base)
	for _, tc := range []struct {
		spec OffsetSpec
		want int64
	}{{Earliest, 0}, {Timestamp(base.Add(7 * time.Second)), 7}} {
		c := newConsumer(t, addr, StartOffset(tc.spec))
		c.Assign("start", 0)
		if r := firstPolled(t, ctx, c); r.Offset != tc.want {
			t.Errorf("start %v: first offset %d, want %d", tc.spec, r.Offset, tc.want)
		}
	}
	c := newConsumer(t, addr, StartOffset(Latest))
	c.Assign("start", 0)
	// Latest is looked up in the background: produce once it is known.
	waitFor(t, ctx, func() bool { _, ok := c.Position("start", 0); return ok })
	if pos, _ := c.Position("start", 0); pos != 10 {
		t.Fatalf("start latest: position %d, want 10", pos)
	}
	produceTimed(t, ctx, addr, "start", 1, base)
	if r := firstPolled(t, ctx, c); r.Offset != 10 {
		t.Errorf("start latest: offset %d, want 10", r.Offset)
	}
}

// TestConsumerLongPoll: Poll blocks until records arrive from a producer
// in another goroutine.
func TestConsumerLongPoll(t *testing.T) {
	addr := startBroker(t)
	createTopic(t, addr, "lp", 2, nil)
	ctx := testContext(t, 30*time.Second)
	c := newConsumer(t, addr, FetchMaxWait(5*time.Second))
	c.Assign("lp", 0, 1)

	// Nothing there: Poll waits until its ctx ends.
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	recs, err := c.Poll(short)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || len(recs) != 0 {
		t.Fatalf("Poll on empty partitions: %d records, err %v", len(recs), err)
	}

	p := newProducer(t, addr)
	produced := make(chan error, 1)
	go func() {
		produced <- p.ProduceSync(ctx, &Record{Topic: "lp", Key: []byte("k"), Value: []byte("late")})
	}()
	got := pollN(t, ctx, c, 1)
	if len(got) != 1 || string(got[0].Value) != "late" {
		t.Fatalf("Poll returned %d records, first %q", len(got), got[0].Value)
	}
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
}

// TestConsumerPrefetchBound: with a small MaxPrefetchBytes the consumer
// stops fetching ahead of Poll.
func TestConsumerPrefetchBound(t *testing.T) {
	addr := startBroker(t)
	createTopic(t, addr, "pf", 1, nil)
	ctx := testContext(t, 30*time.Second)
	p := newProducer(t, addr, BatchBytes(4<<10))
	recs := makeRecords("pf", 2000)
	if err := p.ProduceSync(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	const limit = 16 << 10
	c := newConsumer(t, addr, MaxPrefetchBytes(limit), FetchMaxBytes(8<<10))
	c.Assign("pf", 0)
	var (
		got     []*Record
		largest int64
	)
	for len(got) < len(recs) {
		batch := pollN(t, ctx, c, 1)
		largest = max(largest, recordsBytes(batch))
		got = append(got, batch...)
	}
	t.Logf("largest Poll: %d bytes of records (prefetch limit %d, all records %d)", largest, limit, recordsBytes(recs))
	// A fetch asks for the room left in wire bytes, and the last frame may
	// pass it (4 KiB batches here); decoded records count more than their
	// wire bytes (recordOverhead each). Far below the 2000 records.
	if largest > 4*limit {
		t.Fatalf("Poll returned %d bytes of records, prefetch limit %d", largest, limit)
	}
	checkConsumed(t, recs, got)
}

func TestConsumerOffsetOutOfRange(t *testing.T) {
	addr := startBroker(t)
	createTopic(t, addr, "oor", 1, nil)
	ctx := testContext(t, 30*time.Second)
	produceTimed(t, ctx, addr, "oor", 10, time.Now())

	c := newConsumer(t, addr)
	c.SeekTo("oor", 0, 1000)
	_, err := c.Poll(ctx)
	var pe *PartitionError
	if !errors.Is(err, protocol.ErrOffsetOutOfRange) || !errors.As(err, &pe) || pe.Topic != "oor" || pe.Partition != 0 {
		t.Fatalf("Poll = %v, want OffsetOutOfRange for oor[0]", err)
	}
	// Reported once; the partition waits for a seek.
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	recs, err := c.Poll(short)
	cancel()
	if len(recs) != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Poll: %d records, %v", len(recs), err)
	}
	c.SeekTo("oor", 0, 5)
	if r := firstPolled(t, ctx, c); r.Offset != 5 {
		t.Fatalf("after seek: offset %d", r.Offset)
	}

	reset := newConsumer(t, addr, ResetOffset(Earliest))
	reset.SeekTo("oor", 0, 1000)
	if r := firstPolled(t, ctx, reset); r.Offset != 0 {
		t.Fatalf("auto reset to earliest: offset %d", r.Offset)
	}
}

func TestConsumerUnassign(t *testing.T) {
	addr := startBroker(t)
	createTopic(t, addr, "un", 2, nil)
	ctx := testContext(t, 30*time.Second)
	c := newConsumer(t, addr)
	c.Assign("un", 0, 1)
	c.Unassign("un", 1)
	if _, ok := c.Position("un", 1); ok {
		t.Fatal("unassigned partition has a position")
	}
	p := newProducer(t, addr, WithPartitioner(ExplicitPartitioner()))
	if err := p.ProduceSync(ctx, &Record{Topic: "un", Partition: 1, Value: []byte("one")}, &Record{Topic: "un", Partition: 0, Value: []byte("zero")}); err != nil {
		t.Fatal(err)
	}
	got := pollN(t, ctx, c, 1)
	if len(got) != 1 || got[0].Partition != 0 {
		t.Fatalf("got %d records, first from partition %d", len(got), got[0].Partition)
	}
}

func TestConsumerUnknownTopic(t *testing.T) {
	addr := startBroker(t)
	c := newConsumer(t, addr, MaxRetries(2), RetryBackoff(time.Millisecond, 2*time.Millisecond))
	c.Assign("missing", 0)
	_, err := c.Poll(testContext(t, 30*time.Second))
	if !errors.Is(err, protocol.ErrUnknownTopicOrPartition) {
		t.Fatalf("Poll = %v, want UnknownTopicOrPartition", err)
	}
}

func TestConsumerClose(t *testing.T) {
	addr := startBroker(t)
	createTopic(t, addr, "cl", 1, nil)
	c, err := NewConsumer(SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	c.Assign("cl", 0)
	polled := make(chan error, 1)
	go func() {
		_, err := c.Poll(context.Background())
		polled <- err
	}()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-polled; !errors.Is(err, ErrClosed) {
		t.Fatalf("Poll during Close: %v", err)
	}
	if err := c.SeekToEarliest(context.Background(), "cl", 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("SeekToEarliest after Close: %v", err)
	}
}

// appendFrame appends a log frame (see frames.go) to dst.
func appendFrame(dst []byte, typ uint8, baseOffset int64, count uint32, payload []byte) []byte {
	var h [frameHeaderSize]byte
	binary.BigEndian.PutUint32(h[0:], uint32(frameHeaderSize-frameLengthSize+len(payload)))
	h[frameTypeOff] = typ
	binary.BigEndian.PutUint32(h[frameCountOff:], count)
	binary.BigEndian.PutUint64(h[16:], 1) // index: ignored by clients
	binary.BigEndian.PutUint64(h[frameBaseOffOff:], uint64(baseOffset))
	start := len(dst)
	dst = append(append(dst, h[:]...), payload...)
	crc := crc32.Checksum(dst[start+frameCRCStart:], castagnoli)
	binary.BigEndian.PutUint32(dst[start+frameCRCOffset:], crc)
	return dst
}

// buildBatch encodes values as a record batch.
func buildBatch(t *testing.T, values ...string) []byte {
	t.Helper()
	b := record.NewBuilder(record.CodecNone)
	for _, v := range values {
		b.Append(record.Record{Value: []byte(v), Timestamp: 1000})
	}
	out, err := b.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// fetchReply answers a single-partition fetch with records (or an error).
func fetchReply(r *protocol.FetchRequest, code protocol.ErrorCode, records []byte, edit func(*protocol.FetchResponsePartition)) *protocol.FetchResponse {
	t := r.Topics[0]
	p := protocol.FetchResponsePartition{Partition: t.Partitions[0].Partition, ErrorCode: code, LeaderID: -1, Records: records}
	if edit != nil {
		edit(&p)
	}
	return &protocol.FetchResponse{Topics: []protocol.FetchResponseTopic{{Name: t.Name, Partitions: []protocol.FetchResponsePartition{p}}}}
}

// TestConsumerFollowsNotLeader: the broker the metadata names answers
// NotLeader with the leader's address; the consumer fetches there, skips
// control frames and records below the offset it asked for.
func TestConsumerFollowsNotLeader(t *testing.T) {
	a, b := startFake(t, 1), startFake(t, 2)
	a.addTopic("t", 1)
	a.addPeer(b)
	var frames []byte
	frames = appendFrame(frames, frameTypeControl, 0, 0, nil)
	frames = appendFrame(frames, frameTypeData, 0, 3, buildBatch(t, "r0", "r1", "r2"))
	frames = appendFrame(frames, frameTypeControl, 3, 0, nil)
	frames = appendFrame(frames, frameTypeData, 3, 1, buildBatch(t, "r3"))
	a.setHandler(func(req protocol.Request) fakeReply {
		if r, ok := req.(*protocol.FetchRequest); ok {
			return fakeReply{resp: fetchReply(r, protocol.CodeNotLeader, nil, func(p *protocol.FetchResponsePartition) {
				p.LeaderID, p.LeaderAddress = 2, b.addr
			})}
		}
		return fakeReply{pass: true}
	})
	var wrongOffsets atomic.Int32
	b.setHandler(func(req protocol.Request) fakeReply {
		r, ok := req.(*protocol.FetchRequest)
		if !ok {
			return fakeReply{pass: true}
		}
		switch off := r.Topics[0].Partitions[0].FetchOffset; off {
		case 1:
			return fakeReply{resp: fetchReply(r, protocol.CodeNone, frames, nil)}
		case 4:
			return fakeReply{hang: true} // a long poll with nothing new
		default:
			wrongOffsets.Add(1)
			return fakeReply{hang: true}
		}
	})
	c := newConsumer(t, a.addr)
	c.SeekTo("t", 0, 1)
	got := pollN(t, testContext(t, 20*time.Second), c, 3)
	for i, r := range got {
		if r.Offset != int64(i+1) || string(r.Value) != "r"+string(rune('1'+i)) {
			t.Errorf("record %d: offset %d value %q", i, r.Offset, r.Value)
		}
	}
	if a.count(protocol.KeyFetch) != 1 {
		t.Errorf("%d fetches to the old leader, want 1", a.count(protocol.KeyFetch))
	}
	if pos, _ := c.Position("t", 0); pos != 4 {
		t.Errorf("position %d, want 4", pos)
	}
	if n := wrongOffsets.Load(); n != 0 {
		t.Errorf("%d fetches at unexpected offsets", n)
	}
}

// TestConsumerLeavesAFrozenLeader: the leader stops answering fetches (a
// stopped process keeps its sockets open) and another node takes over.
// The consumer must learn it from the metadata and fetch there, not wait
// out its request timeout (a minute here, more than the test's deadline).
func TestConsumerLeavesAFrozenLeader(t *testing.T) {
	a, b := frozenLeader(t, protocol.KeyFetch)
	frames := appendFrame(nil, frameTypeData, 0, 2, buildBatch(t, "r0", "r1"))
	b.setHandler(func(req protocol.Request) fakeReply {
		if r, ok := req.(*protocol.FetchRequest); ok {
			if r.Topics[0].Partitions[0].FetchOffset == 0 {
				return fakeReply{resp: fetchReply(r, protocol.CodeNone, frames, nil)}
			}
			return fakeReply{resp: fetchReply(r, protocol.CodeNone, nil, nil)}
		}
		return fakeReply{pass: true}
	})
	c := newConsumer(t, a.addr, RequestTimeout(time.Minute), FetchMaxWait(100*time.Millisecond))
	c.SeekTo("t", 0, 0)
	got := pollN(t, testContext(t, 20*time.Second), c, 2)
	if string(got[0].Value) != "r0" || string(got[1].Value) != "r1" {
		t.Fatalf("got %q and %q", got[0].Value, got[1].Value)
	}
}

// TestConsumerCorruptFrame: a frame that fails its CRC is retried, then
// reported.
func TestConsumerCorruptFrame(t *testing.T) {
	fb := startFake(t, 1)
	fb.addTopic("t", 1)
	frames := appendFrame(nil, frameTypeData, 0, 1, buildBatch(t, "x"))
	frames[len(frames)-1] ^= 0xff
	// The fetch pipelined behind the damaged frame (scanning its header
	// cannot tell: decode checks the CRC) asks for offset 1: it gets
	// nothing, and its result is dropped.
	var atZero atomic.Int32
	fb.setHandler(func(req protocol.Request) fakeReply {
		if r, ok := req.(*protocol.FetchRequest); ok {
			if r.Topics[0].Partitions[0].FetchOffset != 0 {
				return fakeReply{resp: fetchReply(r, protocol.CodeNone, nil, nil)}
			}
			atZero.Add(1)
			return fakeReply{resp: fetchReply(r, protocol.CodeNone, frames, nil)}
		}
		return fakeReply{pass: true}
	})
	c := newConsumer(t, fb.addr, MaxRetries(1), RetryBackoff(time.Millisecond, time.Millisecond))
	c.SeekTo("t", 0, 0)
	recs, err := c.Poll(testContext(t, 20*time.Second))
	if !errors.Is(err, ErrCorruptFrame) || len(recs) != 0 {
		t.Fatalf("Poll: %d records, %v; want ErrCorruptFrame", len(recs), err)
	}
	if n := atZero.Load(); n != 2 {
		t.Fatalf("%d fetches of offset 0, want 2 (one and a retry)", n)
	}
}
