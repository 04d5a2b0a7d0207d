package client

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"weir/protocol"
)

// One fetch's life in a fetchLoop, pipelined two deep:
//
//	claim ─▶ send N ─▶ await N ─▶ scan N ─▶ claimNext, send N+1 ─▶ decode N ─▶ store N ─▶ await N+1 ─▶ ...
//
// scanFrames walks N's frame headers (only: decode checks the CRCs) to
// learn where each partition goes on, so N+1 can be sent before N's
// records are decoded: the broker sends N+1 while the client checks and
// decodes N. A partition in both stays claimed (busy) from N's claim to
// N+1's store. What keeps the results right:
//
//   - A seek or unassign while either is in flight changes the partition
//     (gen, or its entry in Consumer.parts): both results are dropped
//     (fetchLoop.current).
//   - If decoding N finds damage scanFrames did not (a bad CRC, or a bad
//     batch inside a frame), N+1 asked for offsets past it: its claim is
//     marked void and its result dropped; the partition is fetched again
//     from what was stored, after the backoff.
//   - N+1 asks for at most MaxPrefetchBytes less what is buffered, what
//     N will add (scanFrames' size) and what the fetches of the
//     consumer's other loops asked for or will add (Consumer.reserved),
//     and for no more than the loop's fair share (roomLocked), so decoded
//     records and responses on their way stay within MaxPrefetchBytes, as
//     closely as without pipelining (a fetch asks in wire bytes; its
//     records count more), and no loop starves the others.
//   - Each fetch carries the group identity of when it was sent
//     (pendingFetch.member), against which its fences are judged.
//   - No N+1 is sent while a partition of the loop waits for ListOffsets
//     (resolve waits for its answer, which would queue behind a long
//     poll): the loop stores N, then claims afresh.

// pendingFetch is a fetch sent and not yet handled.
type pendingFetch struct {
	claims []claim
	// member is the group identity the fetch carries; nil for a plain
	// consumer.
	member *memberIdentity
	// done (capacity 1, so the connection never blocks on it) gets the
	// answer, exactly once.
	done   chan fetchAnswer
	cancel context.CancelFunc
	// into is a fresh buffer for the response to be read into (see
	// conn.doInto), or nil; frame, once answered, the one it was read
	// into. The records alias frame.
	into, frame []byte
	// reserved is the fetch's share of Consumer.reserved: the bytes it
	// asked for, then, once scanned, what its response will add.
	reserved int64
}

type fetchAnswer struct {
	resp  protocol.Response
	frame []byte
	err   error
}

// send sends a fetch of the claimed partitions, asking for at most
// maxBytes in all and for each, without waiting for the answer (see
// await).
func (f *fetchLoop) send(claims []claim, maxBytes int32) *pendingFetch {
	c := f.c
	reserved := int64(maxBytes)
	maxBytes = max(maxBytes, 1)
	req := &protocol.FetchRequest{
		MaxWaitMs: int32(c.cfg.fetchMaxWait.Milliseconds()),
		MinBytes:  1,
		MaxBytes:  maxBytes,
	}
	member := c.member.Load()
	if member != nil {
		// A group member: the broker fences partitions it no longer owns.
		req.Version = 1
		req.GroupID, req.MemberID, req.MemberEpoch = &member.group, member.id, member.epoch
	}
	for _, cl := range claims {
		p := protocol.FetchRequestPartition{Partition: cl.cp.tp.partition, FetchOffset: cl.offset, PartitionMaxBytes: maxBytes}
		added := false
		for i := range req.Topics {
			if req.Topics[i].Name == cl.cp.tp.topic {
				req.Topics[i].Partitions = append(req.Topics[i].Partitions, p)
				added = true
				break
			}
		}
		if !added {
			req.Topics = append(req.Topics, protocol.FetchRequestTopic{Name: cl.cp.tp.topic, Partitions: []protocol.FetchRequestPartition{p}})
		}
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.fetchMaxWait+c.cfg.requestTimeout)
	pf := &pendingFetch{claims: claims, member: member, done: make(chan fetchAnswer, 1), cancel: cancel, reserved: reserved}
	if err := f.dial(ctx); err != nil {
		pf.done <- fetchAnswer{err: err}
		return pf
	}
	pf.into = f.takeBuffer()
	f.conn.doInto(ctx, req, pf.into, func(resp protocol.Response, frame []byte, err error) {
		pf.done <- fetchAnswer{resp, frame, err}
	})
	return pf
}

// takeBuffer returns a buffer for a response to be read into: one whose
// records were all released (see Consumer.Release), or the fresh one the
// loop prepared, or nil (the connection allocates one).
func (f *fetchLoop) takeBuffer() []byte {
	if b := f.pool.get(); b != nil {
		f.reused.Add(1)
		return b
	}
	b := f.fresh
	f.fresh = nil
	return b
}

// prepareFresh allocates a buffer for a later response to be read into,
// if the loop has none and its last response was large: it is called
// once a response is decoded, while the next one is read, so that the
// connection's reader, which the fetch waits on, need not allocate (the
// runtime zeroes a large allocation, and the OS faults its pages in,
// about as long as reading it takes). A loop that has caught up gets
// small responses: it prepares none, and the connection allocates each
// its own size.
func (f *fetchLoop) prepareFresh(last int) {
	size := f.maxFreshBytes()
	if last < size/2 {
		f.pool.drain() // caught up: hold no large buffers
		return
	}
	if f.fresh == nil && f.pool.empty() {
		f.fresh = make([]byte, 0, size)
	}
}

// reclaim takes back the buffer a fetch brought if its response was not
// read into it (see conn.frameBuffer): nothing aliases it.
func (f *fetchLoop) reclaim(pf *pendingFetch) {
	into := pf.into
	pf.into = nil
	if cap(into) == 0 || (cap(pf.frame) > 0 && &into[:1][0] == &pf.frame[:1][0]) {
		return
	}
	if f.fresh == nil {
		f.fresh = into
	} else {
		f.pool.put(into)
	}
}

// maxFreshBytes is the size of the buffers a fetch loop prepares: what
// the connection would allocate for a response of FetchMaxBytes (see
// conn.frameBuffer).
func (f *fetchLoop) maxFreshBytes() int {
	return min(f.c.cfg.maxResponseBytes, int(f.c.cfg.fetchMaxBytes)+preallocSlack)
}

// await waits for a fetch's answer. A fetch that failed ends its claims
// (see requestFailed) and returns false.
func (f *fetchLoop) await(pf *pendingFetch) (*protocol.FetchResponse, bool) {
	a := f.answer(pf)
	pf.cancel()
	if a.err != nil {
		pf.into = nil // the connection's (see conn.doInto)
		f.c.mu.Lock()
		f.reserveLocked(-pf.reserved)
		f.c.mu.Unlock()
		f.requestFailed(pf.claims, a.err)
		return nil, false
	}
	pf.frame = a.frame
	f.reclaim(pf)
	return a.resp.(*protocol.FetchResponse), true
}

// answer waits for pf's answer. A broker answers a fetch by its long
// poll's end (FetchMaxWait); one that has not leaderCheckInterval later
// is frozen, cut off or overloaded, and its partitions may have other
// leaders by now. Then, and every leaderRecheckInterval after, the loop asks the
// metadata (other brokers first) whether a partition of the fetch has a
// new leader; if so it drops its connection, which fails the fetch at
// once: its partitions go back to the metadata loop, which finds their
// new leaders, instead of waiting out the request timeout (30 s by
// default). As the producer does (partProducer.checkLeader).
//
// NB: no select on the consumer's ctx: the call's ctx is derived from it,
// and conn.do answers once whatever happens (Close, a dead connection, the
// ctx's end).
func (f *fetchLoop) answer(pf *pendingFetch) fetchAnswer {
	check := time.NewTimer(f.c.cfg.fetchMaxWait + leaderCheckInterval)
	defer check.Stop()
	for {
		select {
		case a := <-pf.done:
			return a
		case <-check.C:
			if moved := f.leaderMoved(pf.claims); moved != nil && f.conn != nil {
				f.conn.fail(moved)
			}
			check.Reset(leaderRecheckInterval)
		}
	}
}

// leaderMoved returns an error naming a partition of claims that the
// metadata says another broker now leads, or nil.
func (f *fetchLoop) leaderMoved(claims []claim) error {
	cl := f.c.cl
	cl.suspect(f.addr)
	var topics []string
	for _, c := range claims {
		if !slices.Contains(topics, c.cp.tp.topic) {
			topics = append(topics, c.cp.tp.topic)
		}
	}
	ctx, cancel := context.WithTimeout(f.c.ctx, f.c.cfg.requestTimeout)
	defer cancel()
	if cl.refresh(ctx, topics...) != nil {
		return nil
	}
	for _, c := range claims {
		if leader := cl.cachedLeader(c.cp.tp.topic, c.cp.tp.partition); leader != "" && leader != f.addr {
			return fmt.Errorf("%w: %s[%d] is led by %s", errLeaderMoved, c.cp.tp.topic, c.cp.tp.partition, leader)
		}
	}
	return nil
}

// scanned is what handle learns of a partition's result before decoding
// its records.
type scanned struct {
	p   *protocol.FetchResponsePartition // nil if the response lacks it (err says so)
	err error
	// whole: the partition has no error code and scanFrames found its
	// frame headers whole; next is the offset after the frames.
	whole bool
	next  int64
	// carried is the index of the partition's claim in the next fetch, or
	// -1.
	carried int
}

// handle deals with a fetch's response: it sends the next fetch if it can
// (claimNext), then decodes the records and stores them. It returns the
// next fetch, or nil if none was sent.
func (f *fetchLoop) handle(pf *pendingFetch, r *protocol.FetchResponse) *pendingFetch {
	c := f.c
	// The records of the response's uncompressed batches alias its buffer:
	// it is reused once they are all released, and decoded (this hold).
	fb := &fetchBuffer{b: pf.frame, pool: &f.pool}
	fb.refs.Store(1)
	pf.frame = nil
	defer f.prepareFresh(len(fb.b)) // after the records are stored, while the next response is read
	defer fb.release(1)
	scans := make([]scanned, len(pf.claims))
	var pending int64
	for i, cl := range pf.claims {
		s := &scans[i]
		s.carried = -1
		s.p, s.err = fetchPartition(r, cl.cp.tp)
		if s.err != nil || s.p.ErrorCode != protocol.CodeNone {
			continue
		}
		next, size, err := scanFrames(s.p.Records, cl.offset)
		s.whole, s.next = err == nil, next
		pending += size
	}
	var next *pendingFetch
	if claims, maxBytes := f.claimNext(pf, scans, pending); len(claims) > 0 {
		next = f.send(claims, maxBytes)
	}

	// Decode outside the lock: it is the CPU-heavy part.
	type result struct {
		recs []*Record
		size int64
		next int64
		err  error
	}
	results := make([]result, len(pf.claims))
	for i, cl := range pf.claims {
		if s := &scans[i]; s.err == nil && s.p.ErrorCode == protocol.CodeNone {
			res := &results[i]
			res.recs, res.size, res.next, res.err = f.decoder.decodeSized(cl.cp.tp.topic, cl.cp.tp.partition, s.p.Records, cl.offset, fb)
		}
	}

	notify := false
	c.mu.Lock()
	defer c.mu.Unlock()
	f.reserveLocked(-pf.reserved) // stored now (or dropped): in buffered, as much as kept
	for i, cl := range pf.claims {
		cp, s, res := cl.cp, &scans[i], results[i]
		if s.carried < 0 {
			cp.busy = false
		}
		if !f.current(cl) {
			releaseRecords(res.recs) // nobody had them
			continue                 // sought or unassigned meanwhile: the records are stale
		}
		if s.carried >= 0 && (res.err != nil || res.next != s.next) {
			// The next fetch asked for offsets that do not follow what is
			// stored below.
			next.claims[s.carried].void = true
		}
		if s.p == nil {
			c.retryLocked(cp, s.err)
			continue
		}
		if code := s.p.ErrorCode; pf.member != nil && (code == protocol.CodeUnknownMemberID || code == protocol.CodeFencedMemberEpoch) {
			f.fencedLocked(cp, pf.member)
			continue
		}
		if code := s.p.ErrorCode; code != protocol.CodeNone {
			err := protocol.ErrorForCodeMessage(code, s.p.ErrorMessage)
			notify = f.partitionErrorLocked(cp, code, err, s.p.LeaderID, s.p.LeaderAddress) || notify
			continue
		}
		if len(res.recs) > 0 {
			n := res.size
			cp.bytes += n
			c.buffered += n
			if cp.records == nil {
				cp.records = res.recs // decode's own slice: no copy
			} else {
				cp.records = append(cp.records, res.recs...)
			}
			notify = true
		}
		cp.fetchOffset = max(cp.fetchOffset, res.next)
		if res.err != nil {
			// Keep the records before the damage; fetch the rest again.
			c.retryLocked(cp, res.err)
			notify = notify || cp.err != nil
			continue
		}
		cp.failures = 0
	}
	if notify && !c.closed {
		c.notifyLocked()
	}
	return next
}

// claimNext claims the partitions of the fetch sent while pf's response
// is decoded: those of the response whose frames are whole, at the offset
// after them (marking them carried in scans; they stay busy), and those
// waiting to be fetched. pending is what the response's records will add
// to the buffered bytes: pf's reservation becomes that. It claims nothing,
// so that the loop stores the response and then claims afresh, if there
// is no room under MaxPrefetchBytes or a partition waits for its start
// offset; else it reserves what the next fetch may ask for.
func (f *fetchLoop) claimNext(pf *pendingFetch, scans []scanned, pending int64) ([]claim, int32) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	f.reserveLocked(pending - pf.reserved)
	pf.reserved = pending
	prev := pf.claims
	room := f.roomLocked()
	if c.closed || room <= 0 {
		return nil, 0
	}
	now := time.Now()
	var waiting []*consumerPartition
	n := len(c.order)
	f.rotate++
	for i := range n {
		cp := c.parts[c.order[(f.rotate+i)%n]]
		if !f.serves(cp) || cp.busy || cp.err != nil || cp.retryAt.After(now) {
			continue
		}
		if cp.needsReset {
			return nil, 0
		}
		waiting = append(waiting, cp)
	}
	var claims []claim
	for i, cl := range prev {
		s, cp := &scans[i], cl.cp
		if !s.whole || !f.current(cl) || cp.err != nil || !f.serves(cp) || cp.retryAt.After(now) {
			continue
		}
		s.carried = len(claims)
		claims = append(claims, claim{cp: cp, gen: cl.gen, offset: s.next})
	}
	for _, cp := range waiting {
		cp.busy = true
		claims = append(claims, claim{cp: cp, gen: cp.gen, offset: cp.fetchOffset})
	}
	if len(claims) == 0 {
		return nil, 0
	}
	maxBytes := int32(min(room, int64(c.cfg.fetchMaxBytes)))
	f.reserveLocked(int64(maxBytes)) // until the response is scanned, or the fetch fails
	return claims, maxBytes
}

// roomLocked is how many bytes a new fetch of the loop may ask for under
// MaxPrefetchBytes: what neither the buffered records nor the fetches of
// every loop (Consumer.reserved) take, and at most the loop's fair share
// less its own fetches. The share, MaxPrefetchBytes over the loops that
// serve a partition now (at least one byte), keeps loops whose partitions
// are idle, their long polls holding reservations, from leaving a busy
// loop no room.
// REQUIRES: the consumer's mu held.
func (f *fetchLoop) roomLocked() int64 {
	c := f.c
	share := max(c.cfg.maxPrefetchBytes/int64(c.servingLoopsLocked(f)), 1)
	return min(c.cfg.maxPrefetchBytes-c.buffered-c.reserved, share-f.reserved)
}

// reserveLocked adds n to the loop's and the consumer's reservations. A
// negative n gives room back, and wakes the other loops, which may be
// waiting for it.
// REQUIRES: the consumer's mu held.
func (f *fetchLoop) reserveLocked(n int64) {
	f.reserved += n
	f.c.reserved += n
	if n < 0 {
		f.c.wakeFetchersLocked(f)
	}
}

// fetchBuffer is the buffer a fetch response was read into, which the
// records of its uncompressed batches alias. It counts them, so that the
// fetch loop can read a later response into it once every one has been
// released (see Consumer.Release) or dropped unseen.
type fetchBuffer struct {
	b    []byte
	refs atomic.Int64 // records not released, plus 1 while decoded
	pool *bufferPool
}

// release drops n of the buffer's references; the last one returns the
// buffer to its loop's pool.
func (fb *fetchBuffer) release(n int64) {
	if fb.refs.Add(-n) == 0 {
		fb.pool.put(fb.b)
	}
}

// releaseRecords releases records' hold on the buffers they alias. The
// records' bytes must not be used afterwards.
func releaseRecords(recs []*Record) {
	var (
		fb *fetchBuffer
		n  int64
	)
	for _, r := range recs {
		if r.buf == nil {
			continue
		}
		if r.buf != fb {
			if fb != nil {
				fb.release(n)
			}
			fb, n = r.buf, 0
		}
		n++
		r.buf = nil
	}
	if fb != nil {
		fb.release(n)
	}
}

// maxPooledBuffers is how many released buffers a fetch loop keeps: one
// for the fetch in flight, one for the next.
const maxPooledBuffers = 2

// bufferPool holds the released buffers of a fetch loop's responses, for
// later responses. Consumer.Release fills it from any goroutine.
type bufferPool struct {
	mu sync.Mutex
	// min is the smallest buffer kept: the size the loop prepares (see
	// prepareFresh), which holds any response of FetchMaxBytes.
	min  int
	bufs [][]byte
}

func (p *bufferPool) put(b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cap(b) >= p.min && cap(b) > 0 && len(p.bufs) < maxPooledBuffers {
		p.bufs = append(p.bufs, b[:0])
	}
}

func (p *bufferPool) get() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.bufs)
	if n == 0 {
		return nil
	}
	b := p.bufs[n-1]
	p.bufs[n-1] = nil
	p.bufs = p.bufs[:n-1]
	return b
}

func (p *bufferPool) empty() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.bufs) == 0
}

func (p *bufferPool) drain() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.bufs)
	p.bufs = p.bufs[:0]
}
