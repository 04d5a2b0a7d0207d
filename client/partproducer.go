package client

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"weir/protocol"
	"weir/protocol/record"
)

// partProducer produces to one partition. Produce callers append records to
// its open batch (under mu); its loop goroutine (run) owns everything else:
// it seals batches, numbers and sends them, and handles the answers.
//
// Batches move through queue in order: the first nextSend have been sent
// (and are in flight, or answered), the rest wait. A batch is completed
// (its promises called) when it reaches the head of the queue acknowledged
// or failed, so promises run in order.
//
// Retrying. A batch that fails retriably marks the partition for a rewind:
// nothing more is sent until every batch in flight has answered, then
// sending starts again from the oldest unacknowledged batch, after a
// backoff. With idempotence the retried batches keep their sequence
// numbers, so the broker writes each once, in order; a batch that fails
// for good makes the partition start over with a fresh producer id (the
// broker would wait forever for the failed batch's sequence otherwise).
//
// NB: the broker handles the requests of one connection concurrently, so
// a partition's pipelined batches may reach it out of order, and a batch
// that overtook its predecessor is refused with OutOfOrderSequence. That
// refusal is retried rather than failed when a predecessor was in flight
// (batch.predecessorInFlight), and without idempotence (where nothing
// would catch the reordering) only one batch per partition is in flight.
type partProducer struct {
	p           *Producer
	topic       string
	partition   int32
	maxInFlight int

	// wake (capacity 1) tells the loop that a batch was opened or sealed,
	// or that a flush began.
	wake chan struct{}
	// results carries the answers to sent batches. Its capacity is
	// maxInFlight: one result per send, so a sender never blocks, even
	// after the loop is gone.
	results chan produceResult

	// mu guards builder, open and sealed. Produce callers hold it while
	// appending; never held while waiting for anything.
	mu      sync.Mutex
	builder *record.Builder // holds open's records, encoded
	open    *batch          // taking records; nil if none
	sealed  []*batch        // sealed by Produce (full), not yet in queue

	// Owned by the loop.
	queue     []*batch
	nextSend  int
	inflight  int
	rewinding bool
	retryAt   time.Time
	// checkAt is when to look whether a batch in flight waits on a node
	// that no longer leads the partition (see checkLeader).
	checkAt time.Time
	id      producerIdentity
}

// producerIdentity is the producer id a partition numbers its batches
// under, and the sequence its next batch gets.
type producerIdentity struct {
	id      int64
	epoch   int16
	nextSeq int32
	valid   bool
	// fresh: the next id must be a new one, not the producer's shared one.
	fresh bool
}

// produceResult is the answer to one send of a batch.
type produceResult struct {
	b    *batch
	send int // which send of b it answers
	resp protocol.Response
	err  error
}

func newPartProducer(p *Producer, topic string, partition int32) *partProducer {
	maxInFlight := 1
	if p.cfg.idempotent {
		maxInFlight = maxInFlightIdempotent
	}
	return &partProducer{
		p:           p,
		topic:       topic,
		partition:   partition,
		maxInFlight: maxInFlight,
		wake:        make(chan struct{}, 1),
		results:     make(chan produceResult, maxInFlight),
		builder:     record.NewBuilder(p.cfg.compression),
	}
}

// signal wakes the loop.
func (pp *partProducer) signal() {
	select {
	case pp.wake <- struct{}{}:
	default:
	}
}

// add appends a record to the open batch, sealing it first if the record
// would take it past BatchBytes, and after if it is full.
func (pp *partProducer) add(r *Record, promise func(*Record, error), size int64) {
	batchBytes := pp.p.cfg.batchBytes
	sealed, opened := false, false
	pp.mu.Lock()
	if pp.open != nil && pp.builder.EstimatedSize()+int(size) > batchBytes {
		pp.sealLocked()
		sealed = true
	}
	if pp.open == nil {
		pp.open = &batch{created: time.Now()}
		opened = true
	}
	pp.builder.Append(toBatchRecord(r))
	pp.open.records = append(pp.open.records, pendingRecord{r: r, promise: promise, size: size})
	pp.open.bytes += size
	if pp.builder.EstimatedSize() >= batchBytes {
		pp.sealLocked()
		sealed = true
	}
	pp.mu.Unlock()
	if sealed {
		pp.p.cfg.partitioner.BatchSealed(pp.topic, pp.partition)
	}
	if sealed || opened {
		pp.signal()
	}
}

// sealLocked closes the open batch to records and encodes it. An
// idempotent batch gets placeholder producer fields, filled in when it is
// first sent (setBatchProducer).
// REQUIRES: mu held, open != nil.
func (pp *partProducer) sealLocked() {
	b := pp.open
	pp.open = nil
	if pp.p.cfg.idempotent {
		pp.builder.SetProducer(0, 0, 0)
	}
	b.data, b.sealErr = pp.builder.AppendTo(make([]byte, 0, pp.builder.EstimatedSize()))
	pp.builder.Reset()
	pp.sealed = append(pp.sealed, b)
}

// run is the partition's loop.
func (pp *partProducer) run() {
	defer pp.p.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		lingerUntil := pp.collect()
		pp.send()
		pp.arm(timer, lingerUntil)
		select {
		case <-pp.wake:
		case res := <-pp.results:
			pp.handle(res)
		case <-timer.C:
			pp.checkLeader()
		case <-pp.p.stop:
			pp.abort()
			return
		}
	}
}

// arm sets the timer for the next thing due: the open batch's linger, the
// end of a retry backoff, or a look at the leader of batches in flight.
func (pp *partProducer) arm(timer *time.Timer, lingerUntil time.Time) {
	next := lingerUntil
	waiting := pp.rewinding || pp.nextSend < len(pp.queue)
	if waiting && time.Now().Before(pp.retryAt) && (next.IsZero() || pp.retryAt.Before(next)) {
		next = pp.retryAt
	}
	if pp.inflight > 0 && (next.IsZero() || pp.checkAt.Before(next)) {
		next = pp.checkAt
	}
	if next.IsZero() {
		timer.Stop()
		return
	}
	timer.Reset(time.Until(next))
}

// collect moves sealed batches into the queue, and seals the open batch
// if it has lingered long enough (or a flush or shutdown is on). It
// returns when the open batch is due, or zero.
func (pp *partProducer) collect() (lingerUntil time.Time) {
	sealed := false
	pp.mu.Lock()
	if pp.open != nil {
		due := pp.open.created.Add(pp.p.cfg.linger)
		if pp.p.flushing.Load() > 0 || !time.Now().Before(due) {
			pp.sealLocked()
			sealed = true
		} else {
			lingerUntil = due
		}
	}
	for _, b := range pp.sealed {
		if b.sealErr != nil {
			b.failed, b.err = true, b.sealErr
		}
		pp.queue = append(pp.queue, b)
	}
	clear(pp.sealed)
	pp.sealed = pp.sealed[:0]
	pp.mu.Unlock()
	if sealed {
		pp.p.cfg.partitioner.BatchSealed(pp.topic, pp.partition)
	}
	return lingerUntil
}

// send completes what can be completed and sends what can be sent.
func (pp *partProducer) send() {
	for {
		if pp.rewinding {
			if pp.inflight > 0 {
				return // wait for every answer before deciding anything
			}
			pp.rewind()
		}
		pp.completeHead()
		if pp.inflight >= pp.maxInFlight || pp.nextSend >= len(pp.queue) || time.Now().Before(pp.retryAt) {
			return
		}
		b := pp.queue[pp.nextSend]
		if b.acked || b.failed {
			pp.nextSend++
			continue
		}
		if pp.p.cfg.idempotent && !b.seqAssigned && pp.id.valid && int64(pp.id.nextSeq)+int64(len(b.records)) > math.MaxInt32 {
			// The sequence would wrap. Go on under a fresh producer id,
			// from 0, once the batches numbered under this one are back
			// (the broker orders a producer's batches by sequence, not
			// batches of different producers).
			if pp.inflight > 0 {
				return
			}
			pp.id = producerIdentity{fresh: true}
		}
		if err := pp.sendBatch(b); err != nil {
			switch {
			case !retriable(pp.p.ctx, err):
				pp.failLater(b, err) // a producer id refused, the producer closing
			case errors.Is(err, protocol.ErrUnknownTopicOrPartition):
				pp.retryLater(b, err, pp.p.cfg.backoff(b.retries+1))
			default:
				// Finding the leader or reaching it failed: it may be moving.
				pp.retryLater(b, err, pp.p.cfg.leaderBackoff(b.retries+1))
			}
			continue
		}
		pp.nextSend++
	}
}

// sendBatch sends b to the partition's leader, numbering it first if it is
// new. Setup (a producer id, the leader, a connection) may take network
// round trips; their failure is returned, and b was not sent.
func (pp *partProducer) sendBatch(b *batch) error {
	p := pp.p
	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.requestTimeout)
	defer cancel()
	if p.cfg.idempotent && !pp.id.valid {
		id, epoch, err := p.producerID(ctx, pp.id.fresh)
		if err != nil {
			return err
		}
		pp.id = producerIdentity{id: id, epoch: epoch, valid: true}
	}
	addr, err := p.cl.leader(ctx, pp.topic, pp.partition)
	if err != nil {
		return err
	}
	c, err := p.cl.conn(ctx, addr)
	if err != nil {
		// The leader may be down: ask the metadata again next time.
		p.cl.forgetLeader(pp.topic, pp.partition)
		return err
	}
	if p.cfg.idempotent && !b.seqAssigned {
		b.baseSeq = pp.id.nextSeq
		pp.id.nextSeq += int32(len(b.records))
		setBatchProducer(b.data, pp.id.id, pp.id.epoch, b.baseSeq)
		b.seqAssigned = true
	}
	b.predecessorInFlight = false
	for _, q := range pp.queue[:pp.nextSend] {
		if !q.acked && !q.failed {
			b.predecessorInFlight = true
			break
		}
	}
	b.sends++
	send := b.sends
	req := &protocol.ProduceRequest{
		Acks:      int16(p.cfg.acks),
		TimeoutMs: p.cfg.timeoutMs(),
		Topics: []protocol.ProduceRequestTopic{{
			Name:       pp.topic,
			Partitions: []protocol.ProduceRequestPartition{{Partition: pp.partition, Records: b.data}},
		}},
	}
	rctx, rcancel := context.WithTimeout(p.ctx, p.cfg.requestTimeout+requestTimeoutSlack)
	if pp.inflight == 0 {
		pp.checkAt = time.Now().Add(leaderCheckInterval)
	}
	pp.inflight++
	b.inFlight, b.sentAt, b.sentTo, b.cancelSend = true, time.Now(), addr, rcancel
	c.do(rctx, req, p.cfg.acks == AcksNone, func(resp protocol.Response, err error) {
		rcancel()
		pp.results <- produceResult{b: b, send: send, resp: resp, err: err}
	})
	return nil
}

// handle takes the answer to a send.
func (pp *partProducer) handle(res produceResult) {
	pp.inflight--
	b := res.b
	if res.send != b.sends || b.acked || b.failed {
		return // stale; cannot happen while sends wait for rewinds, but cheap to check
	}
	b.inFlight = false
	if res.err != nil {
		// No answer: the batch may have been written. The leader may be
		// down: ask the metadata again before the retry.
		b.outcomeUnknown = true
		if pp.p.cl.cachedLeader(pp.topic, pp.partition) == b.sentTo {
			pp.p.cl.forgetLeader(pp.topic, pp.partition)
		}
		pp.retryLater(b, res.err, pp.p.cfg.leaderBackoff(b.retries+1))
		return
	}
	if pp.p.cfg.acks == AcksNone {
		b.acked, b.baseOffset = true, -1
		return
	}
	part, err := producePartition(res.resp.(*protocol.ProduceResponse), pp.topic, pp.partition)
	if err != nil {
		b.outcomeUnknown = true
		pp.retryLater(b, err, pp.p.cfg.backoff(b.retries+1))
		return
	}
	if part.ErrorCode == protocol.CodeNone {
		b.acked, b.baseOffset = true, part.BaseOffset
		return
	}
	werr := protocol.ErrorForCodeMessage(part.ErrorCode, part.ErrorMessage)
	pp.p.cl.noteLeaderError(pp.topic, pp.partition, part.ErrorCode, part.LeaderID, part.LeaderAddress)
	switch part.ErrorCode {
	case protocol.CodeOutOfOrderSequence:
		if b.predecessorInFlight {
			// Overtook a batch before it (see the type's doc): send
			// again, in order, once everything in flight is back.
			pp.rewinding = true
			return
		}
		pp.failLater(b, werr)
	case protocol.CodeBackpressure:
		hint := time.Duration(part.RetryAfterMs) * time.Millisecond
		pp.retryLater(b, werr, max(pp.p.cfg.backoff(b.retries+1), hint))
	case protocol.CodeRequestTimedOut:
		b.outcomeUnknown = true // not committed in time, but it may still be
		pp.retryLater(b, werr, pp.p.cfg.backoff(b.retries+1))
	case protocol.CodeNotLeader, protocol.CodeLeaderNotAvailable:
		pp.retryLater(b, werr, pp.p.cfg.leaderBackoff(b.retries+1))
	default:
		if part.ErrorCode.Retriable() {
			pp.retryLater(b, werr, pp.p.cfg.backoff(b.retries+1))
		} else {
			pp.failLater(b, werr) // ProducerFenced, MessageTooLarge, InvalidRequest, ...
		}
	}
}

// producePartition finds the partition's result in a response.
func producePartition(r *protocol.ProduceResponse, topic string, partition int32) (*protocol.ProduceResponsePartition, error) {
	for i := range r.Topics {
		if r.Topics[i].Name != topic {
			continue
		}
		for j := range r.Topics[i].Partitions {
			if p := &r.Topics[i].Partitions[j]; p.Partition == partition {
				return p, nil
			}
		}
	}
	return nil, fmt.Errorf("%w: Produce response lacks %s[%d]", ErrProtocol, topic, partition)
}

// retryLater schedules b to be sent again after wait, or to fail with err
// if that would be past its delivery deadline.
func (pp *partProducer) retryLater(b *batch, err error, wait time.Duration) {
	pp.rewinding = true
	b.retries++
	at := time.Now().Add(wait)
	if deadline := b.created.Add(pp.p.cfg.deliveryTimeout); at.After(deadline) {
		b.pendingErr = fmt.Errorf("%w (%v) after %d tries: %w", ErrDeliveryTimeout, pp.p.cfg.deliveryTimeout, b.retries, err)
		return
	}
	if at.After(pp.retryAt) {
		pp.retryAt = at
	}
}

// leaderCheckInterval is how long a produce request may wait for its
// answer before the partition's producer asks the metadata whether its
// leader changed. Commits take milliseconds (tens in a disk's worst
// stalls); a request waiting half a second is stuck on a node that is
// frozen or cut off, whose partitions another node leads soon: followers
// elect one 0.3-0.9 s after their leader goes quiet. While it waits on,
// the producer asks again every leaderRecheckInterval, so that it learns
// of the new leader soon after the election. A check that finds the same
// leader costs one Metadata request, shared by every partition that asks
// at the same time (see cluster.refresh).
const (
	leaderCheckInterval   = 500 * time.Millisecond
	leaderRecheckInterval = 100 * time.Millisecond
)

// errLeaderMoved fails the requests on a connection to a partition's
// former leader (see checkLeader); the batches are retried.
var errLeaderMoved = errors.New("partition leader moved")

// checkLeader looks whether the oldest batch in flight has waited
// leaderCheckInterval for a node that no longer leads the partition, by a
// metadata refresh, and if so stops waiting for the partition's requests
// to that node: they fail and are retried on the new leader at once,
// instead of after the request timeout (30s by default) that a frozen
// node would take. With idempotence, a batch the old leader did write is
// not written twice. Only this partition's requests are given up: the
// metadata may lag (right after a failover the client can know the new
// leader from a NotLeader answer before other brokers do), and the other
// partitions on that connection check for themselves.
func (pp *partProducer) checkLeader() {
	now := time.Now()
	if pp.inflight == 0 || now.Before(pp.checkAt) {
		return
	}
	pp.checkAt = now.Add(leaderRecheckInterval)
	var waiting *batch
	for _, b := range pp.queue[:pp.nextSend] {
		if b.inFlight {
			waiting = b
			break
		}
	}
	if waiting == nil {
		return
	}
	if due := waiting.sentAt.Add(leaderCheckInterval); now.Before(due) {
		pp.checkAt = due
		return
	}
	// Ask the others first: if that node is frozen, it would not answer.
	pp.p.cl.suspect(waiting.sentTo)
	ctx, cancel := context.WithTimeout(pp.p.ctx, pp.p.cfg.requestTimeout)
	defer cancel()
	if pp.p.cl.refresh(ctx, pp.topic) != nil {
		return
	}
	if leader := pp.p.cl.cachedLeader(pp.topic, pp.partition); leader != "" && leader != waiting.sentTo {
		for _, b := range pp.queue[:pp.nextSend] {
			if b.inFlight && b.sentTo == waiting.sentTo {
				b.cancelSend()
			}
		}
	}
}

// failLater schedules b to fail with err once the batches in flight are
// back.
func (pp *partProducer) failLater(b *batch, err error) {
	pp.rewinding = true
	b.pendingErr = err
}

// rewind runs once nothing is in flight after a failure: it fails the
// batches that failed for good and restarts sending from the oldest batch
// not acknowledged.
// REQUIRES: inflight == 0.
func (pp *partProducer) rewind() {
	pp.rewinding = false
	pp.nextSend = 0
	var failed, unknown error
	for _, b := range pp.queue {
		if b.acked || b.failed {
			continue
		}
		switch {
		case b.pendingErr != nil:
			b.failed, b.err = true, b.pendingErr
			b.pendingErr = nil
			failed = b.err
			if b.outcomeUnknown {
				unknown = b.err
			}
		case unknown != nil && b.sends > 0:
			// Sent after a batch that may or may not have been written:
			// it may have been written too, so it cannot be sent again
			// under a new producer id without risking a duplicate.
			b.failed = true
			b.err = fmt.Errorf("%w: an earlier batch of the partition failed: %w", ErrDeliveryUnknown, unknown)
		}
	}
	if failed != nil && pp.p.cfg.idempotent {
		// The broker now expects the failed batch's sequence, which will
		// never come: start over under a new producer id, numbering the
		// batches left from 0.
		pp.id = producerIdentity{fresh: true}
		for _, b := range pp.queue {
			if !b.acked && !b.failed {
				b.seqAssigned = false
			}
		}
	}
}

// completeHead completes the batches at the head of the queue that are
// acknowledged or failed.
func (pp *partProducer) completeHead() {
	for len(pp.queue) > 0 {
		b := pp.queue[0]
		if !b.acked && !b.failed {
			return
		}
		pp.queue[0] = nil
		pp.queue = pp.queue[1:]
		pp.nextSend = max(pp.nextSend-1, 0)
		pp.p.finishBatch(pp, b)
	}
}

// abort fails everything not yet acknowledged with ErrClosed: the producer
// is stopping without waiting for it.
func (pp *partProducer) abort() {
	pp.mu.Lock()
	if pp.open != nil {
		pp.sealed = append(pp.sealed, pp.open)
		pp.open = nil
	}
	pp.queue = append(pp.queue, pp.sealed...)
	pp.sealed = nil
	pp.mu.Unlock()
	for _, b := range pp.queue {
		if !b.acked && !b.failed {
			b.failed = true
			b.err = fmt.Errorf("%w before the batch was acknowledged", ErrClosed)
		}
	}
	pp.completeHead()
}
