package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"weir/protocol"
	"weir/protocol/record"
)

// holdingFake is a fake broker serving partition 0 of topic "t": a fetch
// at offset o gets a frame of two records, o and o+1 ("r<o>", "r<o+1>"),
// except at offset held, whose answer waits until release is closed.
// fetched gets each fetch offset as the fake reads it.
func holdingFake(t *testing.T, held int64) (fb *fakeBroker, fetched chan int64, release chan struct{}) {
	fb = startFake(t, 1)
	fb.addTopic("t", 1)
	fetched, release = make(chan int64, 100), make(chan struct{})
	t.Cleanup(func() { // before the fake's, which waits for its handlers
		select {
		case <-release:
		default:
			close(release)
		}
	})
	fb.setHandler(func(req protocol.Request) fakeReply {
		r, ok := req.(*protocol.FetchRequest)
		if !ok {
			return fakeReply{pass: true}
		}
		off := r.Topics[0].Partitions[0].FetchOffset
		select {
		case fetched <- off:
		default: // nobody is waiting for it
		}
		if off == held {
			<-release
		}
		frame := appendFrame(nil, frameTypeData, off, 2, buildBatch(t, fmt.Sprintf("r%d", off), fmt.Sprintf("r%d", off+1)))
		return fakeReply{resp: fetchReply(r, protocol.CodeNone, frame, nil)}
	})
	return fb, fetched, release
}

// waitFetch waits for the fake to read a fetch at offset want.
func waitFetch(t *testing.T, ctx context.Context, fetched chan int64, want int64) {
	t.Helper()
	for {
		select {
		case off := <-fetched:
			if off == want {
				return
			}
		case <-ctx.Done():
			t.Fatalf("no fetch at offset %d came", want)
		}
	}
}

// TestFetchPipelinedStale: a seek or an unassign while the next fetch is
// in flight (sent, pipelined, before the previous response was stored)
// drops what that fetch brings.
func TestFetchPipelinedStale(t *testing.T) {
	for _, tc := range []struct {
		name string
		// change acts on the partition while the fetch at offset 2 is
		// held; want is the offset of the first record Poll returns then,
		// or -1 for none.
		change func(c *Consumer)
		want   int64
	}{
		{"seek", func(c *Consumer) { c.SeekTo("t", 0, 100) }, 100},
		{"unassign", func(c *Consumer) { c.Unassign("t", 0) }, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t, 20*time.Second)
			fb, fetched, release := holdingFake(t, 2)
			c := newConsumer(t, fb.addr)
			c.SeekTo("t", 0, 0)
			first := pollN(t, ctx, c, 2)
			if first[0].Offset != 0 || first[1].Offset != 1 {
				t.Fatalf("first records at %d, %d", first[0].Offset, first[1].Offset)
			}
			waitFetch(t, ctx, fetched, 2)
			tc.change(c)
			close(release)
			if tc.want < 0 {
				short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
				defer cancel()
				recs, err := c.Poll(short)
				if len(recs) != 0 || !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("Poll after unassign: %d records, %v", len(recs), err)
				}
				return
			}
			recs := pollN(t, ctx, c, 1)
			if recs[0].Offset != tc.want || string(recs[0].Value) != fmt.Sprintf("r%d", tc.want) {
				t.Fatalf("first record after the change: offset %d %q, want %d", recs[0].Offset, recs[0].Value, tc.want)
			}
		})
	}
}

// TestFetchPipelinedOrder: records come once each, in order, across many
// pipelined fetches.
func TestFetchPipelinedOrder(t *testing.T) {
	ctx := testContext(t, 20*time.Second)
	fb, _, _ := holdingFake(t, -1)
	c := newConsumer(t, fb.addr)
	c.SeekTo("t", 0, 0)
	recs := pollN(t, ctx, c, 200)
	for i, r := range recs {
		if r.Offset != int64(i) || string(r.Value) != fmt.Sprintf("r%d", i) {
			t.Fatalf("record %d: offset %d %q", i, r.Offset, r.Value)
		}
	}
}

// TestFetchPipelinedDamage: when a response's frame headers are whole but
// a frame is damaged inside (a bad CRC, or a bad batch under a good CRC),
// which only decoding finds, the fetch already sent past it is dropped,
// and the partition is fetched again from the damage, not past it.
func TestFetchPipelinedDamage(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(off int64, batch []byte) []byte
	}{
		{"batch", func(off int64, batch []byte) []byte {
			// A batch that is not one, in a frame with a good CRC.
			return appendFrame(nil, frameTypeData, off, 2, slices.Repeat([]byte{0xee}, len(batch)))
		}},
		{"crc", func(off int64, batch []byte) []byte {
			frame := appendFrame(nil, frameTypeData, off, 2, batch)
			frame[len(frame)-1] ^= 0xff
			return frame
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fb := startFake(t, 1)
			fb.addTopic("t", 1)
			fetched := make(chan int64, 100)
			fb.setHandler(func(req protocol.Request) fakeReply {
				r, ok := req.(*protocol.FetchRequest)
				if !ok {
					return fakeReply{pass: true}
				}
				off := r.Topics[0].Partitions[0].FetchOffset
				select {
				case fetched <- off:
				default:
				}
				batch := buildBatch(t, fmt.Sprintf("r%d", off), fmt.Sprintf("r%d", off+1))
				frame := appendFrame(nil, frameTypeData, off, 2, batch)
				if off == 2 {
					frame = tc.damage(off, batch)
				}
				return fakeReply{resp: fetchReply(r, protocol.CodeNone, frame, nil)}
			})
			c := newConsumer(t, fb.addr, MaxRetries(1000), RetryBackoff(time.Millisecond, time.Millisecond))
			c.SeekTo("t", 0, 0)
			ctx := testContext(t, 20*time.Second)
			waitFetch(t, ctx, fetched, 4) // the fetch sent past the damage
			recs := pollN(t, ctx, c, 2)
			short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer cancel()
			more, _ := c.Poll(short)
			recs = append(recs, more...)
			for i, r := range recs {
				if r.Offset != int64(i) {
					t.Fatalf("record %d at offset %d: got past the damage", i, r.Offset)
				}
			}
			if len(recs) != 2 {
				t.Fatalf("%d records, want the 2 before the damage", len(recs))
			}
			if pos, _ := c.Position("t", 0); pos != 2 {
				t.Fatalf("position %d, want 2", pos)
			}
		})
	}
}

// TestFetchLoopsShareRoom: a broker's partition that has nothing to
// fetch, its fetch loop long-polling, does not keep the loop of the
// broker's other partition from fetching, although their fetches together
// may ask for no more than MaxPrefetchBytes: each loop gets a fair share.
func TestFetchLoopsShareRoom(t *testing.T) {
	const idle, busy = 0, 1
	fb := tenRecordsFake(t, idle)
	const limit = 64 << 10
	c := newConsumer(t, fb.addr, MaxPrefetchBytes(limit), FetchMaxBytes(limit), FetchMaxWait(200*time.Millisecond), FetchConnections(2))
	ctx := testContext(t, 10*time.Second)
	// The idle partition's loop fetches first, asking for all it may.
	c.SeekTo("t", idle, 0)
	for fb.count(protocol.KeyFetch) == 0 {
		if ctx.Err() != nil {
			t.Fatal("no fetch of the idle partition")
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.SeekTo("t", busy, 0)
	recs := pollN(t, ctx, c, 10)
	if recs[0].Partition != busy || recs[0].Offset != 0 {
		t.Fatalf("first record t[%d]@%d, want t[%d]@0", recs[0].Partition, recs[0].Offset, busy)
	}
	c.mu.Lock()
	lanes := []int{c.parts[topicPartition{"t", idle}].lane, c.parts[topicPartition{"t", busy}].lane}
	c.mu.Unlock()
	if lanes[0] == lanes[1] {
		t.Errorf("both partitions on lane %d of their broker", lanes[0])
	}
}

// tenRecordsFake serves topic "t" of two partitions: a fetch gets ten
// 100-byte records of its one partition (one per request: each partition
// on a connection of its own) from the offset asked for, except that a
// fetch of partition idle (-1: none) gets none, after its long poll.
func tenRecordsFake(t *testing.T, idle int32) *fakeBroker {
	fb := startFake(t, 1)
	fb.addTopic("t", 2)
	value := string(make([]byte, 100))
	fb.setHandler(func(req protocol.Request) fakeReply {
		r, ok := req.(*protocol.FetchRequest)
		if !ok {
			return fakeReply{pass: true}
		}
		p := r.Topics[0].Partitions[0]
		if p.Partition == idle {
			time.Sleep(time.Duration(r.MaxWaitMs) * time.Millisecond) // a long poll that finds nothing
			return fakeReply{resp: fetchReply(r, protocol.CodeNone, nil, nil)}
		}
		frames := appendFrame(nil, frameTypeData, p.FetchOffset, 10, buildBatch(t, slices.Repeat([]string{value}, 10)...))
		return fakeReply{resp: fetchReply(r, protocol.CodeNone, frames, nil)}
	})
	return fb
}

// TestFetchTinyPrefetch: a MaxPrefetchBytes below the number of fetch
// loops still fetches (a loop's share is at least a byte, and the broker
// sends a first batch whatever its size).
func TestFetchTinyPrefetch(t *testing.T) {
	fb := tenRecordsFake(t, -1)
	c := newConsumer(t, fb.addr, MaxPrefetchBytes(1), FetchMaxWait(100*time.Millisecond), FetchConnections(2))
	c.SeekTo("t", 0, 0)
	c.SeekTo("t", 1, 0)
	pollN(t, testContext(t, 10*time.Second), c, 20)
}

// TestFetchUnassignFreesRoom: records dropped by an unassignment give
// their room back to a loop that waits for it.
func TestFetchUnassignFreesRoom(t *testing.T) {
	fb := tenRecordsFake(t, -1)
	const limit = 1000 // less than ten records
	c := newConsumer(t, fb.addr, MaxPrefetchBytes(limit), FetchMaxWait(100*time.Millisecond), FetchConnections(2))
	ctx := testContext(t, 10*time.Second)
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for {
			c.mu.Lock()
			ok := cond()
			c.mu.Unlock()
			if ok {
				return
			}
			if ctx.Err() != nil {
				t.Fatal("never: " + what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	c.SeekTo("t", 0, 0)
	waitFor("t[0] fills the room", func() bool { return c.buffered >= limit })
	c.SeekTo("t", 1, 0)
	waitFor("t[1] has its leader", func() bool { return c.parts[topicPartition{"t", 1}].leader != "" })
	c.Unassign("t", 0)
	recs := pollN(t, ctx, c, 10)
	if recs[0].Partition != 1 {
		t.Fatalf("a record of t[%d], want t[1]", recs[0].Partition)
	}
}

// TestLeadBalancesLanes: a partition whose leader the consumer learns
// goes to the broker's fetch loop that serves the fewest partitions.
func TestLeadBalancesLanes(t *testing.T) {
	c := &Consumer{parts: map[topicPartition]*consumerPartition{}}
	c.cfg.fetchConnections = 3
	c.closed = true // loopFor starts no loops
	lead := func(p int32, addr string) int {
		cp := c.assignLocked(topicPartition{"t", p})
		c.leadLocked(cp, addr)
		return cp.lane
	}
	for p, want := range []int{0, 1, 2, 0, 1} {
		if got := lead(int32(p), "b1"); got != want {
			t.Fatalf("t[%d] on lane %d, want %d", p, got, want)
		}
	}
	if got := lead(9, "b2"); got != 0 {
		t.Fatalf("another broker's first partition on lane %d, want 0", got)
	}
	// t[0] and t[3] (lane 0) move away: lane 0 serves none now.
	c.leadLocked(c.parts[topicPartition{"t", 0}], "b2")
	c.leadLocked(c.parts[topicPartition{"t", 3}], "b2")
	if got := lead(7, "b1"); got != 0 {
		t.Fatalf("t[7] on lane %d, want the emptied lane 0", got)
	}
}

// TestClaimNext: the partitions and bytes of a pipelined fetch, and the
// bytes it reserves.
func TestClaimNext(t *testing.T) {
	const limit, fetchMax = 1000, 600
	setup := func() (*fetchLoop, []claim, []scanned) {
		c := &Consumer{parts: map[topicPartition]*consumerPartition{}}
		c.cfg.maxPrefetchBytes, c.cfg.fetchMaxBytes, c.cfg.fetchConnections = limit, fetchMax, 1
		f := &fetchLoop{c: c, fetchLoopKey: fetchLoopKey{addr: "b1"}}
		var prev []claim
		for p := range int32(3) {
			cp := c.assignLocked(topicPartition{"t", p})
			cp.needsReset, cp.leader, cp.fetchOffset = false, "b1", 10
			if p < 2 {
				cp.busy = true // in the response
				prev = append(prev, claim{cp: cp, gen: cp.gen, offset: 10})
			}
		}
		scans := []scanned{{whole: true, next: 20, carried: -1}, {whole: true, next: 15, carried: -1}}
		return f, prev, scans
	}
	for _, tc := range []struct {
		name     string
		edit     func(f *fetchLoop, prev []claim, scans []scanned)
		buffered int64
		pending  int64
		others   int64 // reserved by other loops' fetches
		loops    int   // the loops serving partitions, this one among them (0: 1)
		// offsets of t[0], t[1], t[2] in the next fetch (-1: not in it),
		// and its bytes.
		want     [3]int64
		maxBytes int32
	}{
		{"all", nil, 0, 100, 0, 0, [3]int64{20, 15, 10}, fetchMax},
		{"room", nil, 300, 400, 0, 0, [3]int64{20, 15, 10}, 300},
		{"full", nil, 600, 400, 0, 0, [3]int64{-1, -1, -1}, 0},
		{"other loops", nil, 0, 400, 300, 2, [3]int64{20, 15, 10}, 100},
		{"fair share", nil, 0, 100, 0, 2, [3]int64{20, 15, 10}, 400},
		{"full with other loops", nil, 300, 400, 300, 2, [3]int64{-1, -1, -1}, 0},
		{"damaged", func(_ *fetchLoop, _ []claim, s []scanned) { s[1].whole = false }, 0, 0, 0, 0, [3]int64{20, -1, 10}, fetchMax},
		{"sought", func(f *fetchLoop, prev []claim, _ []scanned) { prev[0].cp.gen++ }, 0, 0, 0, 0, [3]int64{-1, 15, 10}, fetchMax},
		{"unassigned", func(f *fetchLoop, _ []claim, _ []scanned) { f.c.unassignLocked(topicPartition{"t", 0}) }, 0, 0, 0, 0, [3]int64{-1, 15, 10}, fetchMax},
		{"reset", func(f *fetchLoop, _ []claim, _ []scanned) { f.c.parts[topicPartition{"t", 2}].needsReset = true }, 0, 0, 0, 0, [3]int64{-1, -1, -1}, 0},
		{"closed", func(f *fetchLoop, _ []claim, _ []scanned) { f.c.closed = true }, 0, 0, 0, 0, [3]int64{-1, -1, -1}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, prev, scans := setup()
			f.c.buffered = tc.buffered
			if tc.edit != nil {
				tc.edit(f, prev, scans)
			}
			// The response asked for fetchMax; its records will add pending.
			pf := &pendingFetch{claims: prev, reserved: fetchMax}
			f.reserved, f.c.reserved = fetchMax, fetchMax+tc.others
			for i := 1; i < tc.loops; i++ {
				// A partition of the broker on another lane: another
				// loop's, which shares the room.
				cp := f.c.assignLocked(topicPartition{"u", int32(i)})
				cp.needsReset, cp.leader, cp.lane = false, "b1", i
			}
			claims, maxBytes := f.claimNext(pf, scans, tc.pending)
			wantOwn := tc.pending
			if len(claims) > 0 {
				wantOwn += int64(maxBytes)
			}
			if pf.reserved != tc.pending || f.reserved != wantOwn || f.c.reserved != wantOwn+tc.others {
				t.Errorf("reserved %d, the loop's %d, the response's %d; want %d, %d, %d",
					f.c.reserved, f.reserved, pf.reserved, wantOwn+tc.others, wantOwn, tc.pending)
			}
			got := [3]int64{-1, -1, -1}
			for _, cl := range claims {
				got[cl.cp.tp.partition] = cl.offset
				if !cl.cp.busy {
					t.Errorf("t[%d] claimed and not busy", cl.cp.tp.partition)
				}
			}
			if got != tc.want || (len(claims) > 0 && maxBytes != tc.maxBytes) {
				t.Fatalf("claimed offsets %v with %d bytes, want %v with %d", got, maxBytes, tc.want, tc.maxBytes)
			}
			for i, s := range scans {
				if carried := s.carried >= 0; carried != (tc.want[i] >= 0) || carried && claims[s.carried].cp != prev[i].cp {
					t.Errorf("t[%d] carried at %d", i, s.carried)
				}
			}
		})
	}
}

// TestFetchPipelinedBound: without Polls, what the consumer holds stays
// within MaxPrefetchBytes (give or take a frame per fetch, which a broker
// sends whole) although fetches are pipelined, and when two partitions
// are fetched over two connections at once.
func TestFetchPipelinedBound(t *testing.T) {
	for _, parts := range []int32{1, 2} {
		t.Run(fmt.Sprint(parts, "partitions"), func(t *testing.T) {
			fb := startFake(t, 1)
			fb.addTopic("t", parts)
			value := string(make([]byte, 100))
			fb.setHandler(func(req protocol.Request) fakeReply {
				r, ok := req.(*protocol.FetchRequest)
				if !ok {
					return fakeReply{pass: true}
				}
				// Frames of 10 records, as many as MaxBytes takes (at
				// least one), for the request's one partition (its
				// partitions are on different connections).
				off := r.Topics[0].Partitions[0].FetchOffset
				var frames []byte
				for len(frames) == 0 || len(frames)+1200 <= int(r.MaxBytes) {
					frames = appendFrame(frames, frameTypeData, off, 10, buildBatch(t, slices.Repeat([]string{value}, 10)...))
					off += 10
				}
				return fakeReply{resp: fetchReply(r, protocol.CodeNone, frames, nil)}
			})
			// NB: a fetch as large as the limit, so that a pipelined fetch
			// that did not count the response before it, or the other
			// connection's fetches, would ask for as much again.
			const limit = 32 << 10
			c := newConsumer(t, fb.addr, MaxPrefetchBytes(limit), FetchMaxBytes(limit), FetchConnections(2))
			for p := range parts {
				c.SeekTo("t", p, 0)
			}
			ctx := testContext(t, 20*time.Second)
			// Wait until fetching has stopped for good: no fetch on its way
			// (nothing reserved) and no room left (a response counts more
			// than the wire bytes its fetch asked for, so the buffer fills).
			var buffered int64
			var loops int
			for {
				c.mu.Lock()
				reserved := c.reserved
				buffered, loops = c.buffered, len(c.loops)
				c.mu.Unlock()
				if reserved == 0 && buffered >= limit {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("fetching never stopped: %d bytes buffered, %d reserved", buffered, reserved)
				}
				time.Sleep(5 * time.Millisecond)
			}
			last := fb.count(protocol.KeyFetch)
			if loops != int(parts) {
				t.Errorf("%d fetch loops for %d partitions on two lanes", loops, parts)
			}
			// A fetch asks for the room left in wire bytes, and its records
			// count more (recordOverhead each: half as much again here);
			// the last frame of each partition may pass it.
			const frame = 10 * (100 + recordOverhead)
			t.Logf("%d fetches, %d bytes buffered (limit %d)", last, buffered, limit)
			if buffered > limit*3/2+2*frame*int64(parts) {
				t.Fatalf("%d bytes buffered, limit %d", buffered, limit)
			}
			recs := pollN(t, ctx, c, 1)
			if recs[0].Offset != 0 {
				t.Fatalf("first record at %d", recs[0].Offset)
			}
		})
	}
}

// TestGroupFetchFencedPipelined: a fence that comes on a fetch pipelined
// behind one with records drops the partition: the records of the fenced
// fetch and of any after it are not returned, those before are, in order.
func TestGroupFetchFencedPipelined(t *testing.T) {
	fg := startFakeGroup(t, 2, 1000)
	ctx := testContext(t, 20*time.Second)
	var cb callbacks
	const fence = 20 // partition 1's fetches from here on are fenced
	fg.mu.Lock()
	fg.onFetch = func(r *protocol.FetchRequest, p int32) protocol.ErrorCode {
		for _, rp := range r.Topics[0].Partitions {
			if p == 1 && rp.Partition == 1 && rp.FetchOffset >= fence {
				// The coordinator has moved it away.
				fg.mu.Lock()
				fg.assign = []int32{0}
				fg.mu.Unlock()
				return protocol.CodeFencedMemberEpoch
			}
		}
		return protocol.CodeNone
	}
	// NB: as in TestGroupFetchFenced, heartbeats keep answering with the
	// old assignment while the member holds t[1], so that it learns of
	// the move by the fence (OnLost), not by a revocation.
	fg.onHeartbeat = holdAssignmentWhileOwned(1)
	fg.mu.Unlock()
	g := newGroupConsumer(t, fg.fb.addr, "grp", append(cb.opts(), Subscribe("t"), ResetOffset(Earliest), AutoCommitInterval(0))...)
	recs := pollUntil(t, ctx, g, func() bool { return len(cb.get(&cb.lost)) > 0 })
	if lost := cb.get(&cb.lost); !slices.Equal(lost[0], []TopicPartition{{"t", 1}}) {
		t.Fatalf("OnLost got %v, want t[1]", lost)
	}
	recs = append(recs, pollGroupN(t, ctx, g, 10)...)
	var next int64
	for _, r := range recs {
		if r.Partition != 1 {
			continue
		}
		if r.Offset >= fence || r.Offset != next {
			t.Fatalf("t[1]@%d returned, want %d (fenced from %d)", r.Offset, next, fence)
		}
		next++
	}
}

// valueAt is the value of the record at offset o in bigFramesFake's
// partition: 1000 bytes that tell the offset.
func valueAt(o int64) []byte {
	v := slices.Repeat([]byte{byte(o)}, 1000)
	copy(v, fmt.Sprintf("r%d:", o))
	return v
}

// bigFrameRecords is how many records bigFramesFake serves a fetch: about
// 1.1 MB, large enough for the fetch loop of a consumer with
// FetchMaxBytes 1 MiB to keep response buffers (see prepareFresh).
const bigFrameRecords = 1100

// bigFramesFake serves partition 0 of topic "t": a fetch at offset o gets
// bigFrameRecords records of valueAt from o.

func bigFramesFake(t *testing.T) *fakeBroker {
	fb := startFake(t, 1)
	fb.addTopic("t", 1)
	fb.setHandler(func(req protocol.Request) fakeReply {
		r, ok := req.(*protocol.FetchRequest)
		if !ok {
			return fakeReply{pass: true}
		}
		off := r.Topics[0].Partitions[0].FetchOffset
		b := record.NewBuilder(record.CodecNone)
		for i := range int64(bigFrameRecords) {
			b.Append(record.Record{Value: valueAt(off + i), Timestamp: 1000})
		}
		batch, err := b.AppendTo(nil)
		if err != nil {
			t.Error(err)
		}
		return fakeReply{resp: fetchReply(r, protocol.CodeNone, appendFrame(nil, frameTypeData, off, bigFrameRecords, batch), nil)}
	})
	return fb
}

// TestConsumerRecordsStayValid: records Poll returned keep their bytes as
// long as they are not released, however many responses come after; a
// caller that releases each Poll's records sees them right until then.
func TestConsumerRecordsStayValid(t *testing.T) {
	const n = 20 * bigFrameRecords
	check := func(t *testing.T, recs []*Record, from int64) {
		t.Helper()
		for i, r := range recs {
			if want := from + int64(i); r.Offset != want || !bytes.Equal(r.Value, valueAt(want)) {
				t.Fatalf("record %d: offset %d, value %.12q...", want, r.Offset, r.Value)
			}
		}
	}
	for _, release := range []bool{false, true} {
		t.Run(fmt.Sprint("release=", release), func(t *testing.T) {
			fb := bigFramesFake(t)
			c := newConsumer(t, fb.addr, FetchMaxBytes(1<<20), MaxPrefetchBytes(2<<20))
			c.SeekTo("t", 0, 0)
			ctx := testContext(t, 20*time.Second)
			var kept []*Record
			for len(kept) < n {
				recs, err := c.Poll(ctx)
				if err != nil {
					t.Fatal(err)
				}
				check(t, recs, int64(len(kept)))
				kept = append(kept, recs...)
				if release {
					c.Release(recs)
					c.Release(recs) // twice is harmless
				}
			}
			if !release {
				check(t, kept, 0)
			}
			c.mu.Lock()
			reused := c.loops[fetchLoopKey{fb.addr, c.parts[topicPartition{"t", 0}].lane}].reused.Load()
			c.mu.Unlock()
			if release && reused == 0 {
				t.Error("no response buffer was reused")
			}
			if !release && reused != 0 {
				t.Errorf("%d response buffers reused, with no records released", reused)
			}
		})
	}
}
