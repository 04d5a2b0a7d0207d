package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Consumer reads records from the partitions it is assigned. It is safe
// for concurrent use.
//
// Fetching happens in the background: FetchConnections loops per broker
// (see fetchLoop) long-poll the leaders of the assigned partitions, each
// on a connection of its own, and decode what comes back into
// per-partition buffers, as long as they hold less than MaxPrefetchBytes
// in all. Poll hands out what the buffers hold. A metadata loop finds the
// leaders of partitions whose leader is not known.
type Consumer struct {
	cfg config
	cl  *cluster

	// ctx is cancelled by Close: it ends the loops and their requests.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// metaWake (capacity 1) wakes the metadata loop.
	metaWake chan struct{}

	// Group membership, for a GroupConsumer's consumer (group.go); unused
	// otherwise. member is the identity fetches carry (Fetch version 1);
	// nil for a plain consumer. onFenced, set before the loops start, is
	// called (with mu held: it must not block or take other locks) for a
	// partition a fetch found fenced, which the consumer has dropped.
	member   atomic.Pointer[memberIdentity]
	onFenced func(topicPartition)

	// mu guards the fields below. The loops take it to claim partitions
	// and to store results, never across a request; Poll takes it to
	// collect records. Lock order: mu, then the cluster's.
	mu       sync.Mutex
	parts    map[topicPartition]*consumerPartition
	order    []topicPartition // assignment order, which Poll rotates through
	rotate   int
	buffered int64 // bytes of records decoded and not yet polled
	// reserved is what the fetches on their way or being decoded, on
	// every loop, may add to buffered: what each asked for until its
	// response is scanned, then what the response holds, until stored
	// (see fetchLoop.roomLocked).
	reserved int64
	loops    map[fetchLoopKey]*fetchLoop
	closed   bool
	// ready is closed (and replaced) when records or errors arrive, or on
	// Close: it wakes Polls.
	ready chan struct{}
}

// consumerPartition is the state of one assigned partition.
type consumerPartition struct {
	tp topicPartition

	// position is the offset of the next record Poll returns; valid unless
	// needsReset.
	position int64
	// fetchOffset is the offset the next fetch asks for: position plus what
	// is buffered.
	fetchOffset int64
	// needsReset: the position is to be looked up (ListOffsets resetTo)
	// before fetching.
	needsReset bool
	resetTo    OffsetSpec
	// gen counts seeks: a fetch claimed before a seek is dropped.
	gen uint64
	// busy: a loop has the partition in a request now.
	busy bool

	records []*Record // decoded, in offset order, not yet polled
	bytes   int64

	// err stops the partition until a seek; Poll reports it once.
	err         error
	errReported bool

	leader   string    // the leader's address; "" for the metadata loop to find
	lane     int       // which of its leader's fetch loops serves it (see leadLocked)
	retryAt  time.Time // not before this after a failure
	failures int       // consecutive failures, against MaxRetries
}

// NewConsumer returns a Consumer with no partitions. It connects lazily.
func NewConsumer(opts ...Opt) (*Consumer, error) {
	cfg, err := newConfig(roleConsumer, opts)
	if err != nil {
		return nil, err
	}
	return startConsumer(cfg, nil), nil
}

// startConsumer builds a Consumer and starts its metadata loop. onFenced
// is the group hook (see Consumer.onFenced), nil for a plain consumer.
func startConsumer(cfg config, onFenced func(topicPartition)) *Consumer {
	c := &Consumer{
		cfg:      cfg,
		metaWake: make(chan struct{}, 1),
		parts:    map[topicPartition]*consumerPartition{},
		loops:    map[fetchLoopKey]*fetchLoop{},
		ready:    make(chan struct{}),
		onFenced: onFenced,
	}
	c.cl = newCluster(&c.cfg)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.wg.Add(1)
	go c.metadataLoop()
	return c
}

// Assign adds partitions of a topic to consume. A partition not assigned
// before starts at StartOffset (Earliest by default) unless sought; one
// already assigned keeps its position.
func (c *Consumer) Assign(topic string, partitions ...int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	for _, p := range partitions {
		c.assignLocked(topicPartition{topic, p})
	}
	c.wakeMetadata()
}

// assignLocked adds a partition if it is new.
// REQUIRES: mu held.
func (c *Consumer) assignLocked(tp topicPartition) *consumerPartition {
	if cp := c.parts[tp]; cp != nil {
		return cp
	}
	cp := &consumerPartition{tp: tp, needsReset: true, resetTo: c.cfg.startOffset, position: -1, fetchOffset: -1}
	c.parts[tp] = cp
	c.order = append(c.order, tp)
	return cp
}

// Unassign stops consuming partitions of a topic and drops what was
// fetched of them.
func (c *Consumer) Unassign(topic string, partitions ...int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range partitions {
		c.unassignLocked(topicPartition{topic, p})
	}
}

// unassignLocked removes a partition, dropping what was fetched of it.
// REQUIRES: mu held.
func (c *Consumer) unassignLocked(tp topicPartition) {
	cp := c.parts[tp]
	if cp == nil {
		return
	}
	c.dropLocked(cp)
	delete(c.parts, tp)
	for i, o := range c.order {
		if o == tp {
			c.order = append(c.order[:i], c.order[i+1:]...)
			break
		}
	}
}

// assignFrom adds a partition for a group member: at offset (its committed
// offset) if it is >= 0, else at StartOffset, looked up. A partition
// already assigned is left alone.
func (c *Consumer) assignFrom(tp topicPartition, offset int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.parts[tp] != nil {
		return
	}
	cp := c.assignLocked(tp)
	if offset >= 0 {
		cp.position, cp.fetchOffset, cp.needsReset = offset, offset, false
	}
	c.wakePartitionLocked(cp)
}

// unassign removes partitions (of any topics), dropping what was fetched
// of them.
func (c *Consumer) unassign(tps []topicPartition) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, tp := range tps {
		c.unassignLocked(tp)
	}
}

// dropLocked discards a partition's buffered records, which nobody had
// seen: they are released (see Release).
// REQUIRES: mu held.
func (c *Consumer) dropLocked(cp *consumerPartition) {
	if cp.bytes > 0 {
		c.wakeFetchersLocked(nil) // room to fetch ahead again
	}
	c.buffered -= cp.bytes
	releaseRecords(cp.records) // never handed out
	cp.records, cp.bytes = nil, 0
}

// SeekTo sets the offset of the next record Poll returns for the partition
// (assigning it if need be), dropping what was fetched ahead of it, and
// clears the partition's error. An offset outside the partition's range
// makes Poll report OffsetOutOfRange (or reset, with ResetOffset).
func (c *Consumer) SeekTo(topic string, partition int32, offset int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	cp := c.assignLocked(topicPartition{topic, partition})
	c.dropLocked(cp)
	cp.position, cp.fetchOffset = offset, offset
	cp.needsReset = false
	cp.gen++
	cp.err, cp.errReported = nil, false
	cp.retryAt, cp.failures = time.Time{}, 0
	c.wakePartitionLocked(cp)
}

// SeekToEarliest moves the partition to its oldest record, looked up with
// ListOffsets.
func (c *Consumer) SeekToEarliest(ctx context.Context, topic string, partition int32) error {
	return c.seekToSpec(ctx, topic, partition, Earliest)
}

// SeekToLatest moves the partition to its end: Poll returns only records
// produced from now on.
func (c *Consumer) SeekToLatest(ctx context.Context, topic string, partition int32) error {
	return c.seekToSpec(ctx, topic, partition, Latest)
}

// SeekToTime moves the partition to its first record with a timestamp at or
// after t (to its end if there is none).
func (c *Consumer) SeekToTime(ctx context.Context, topic string, partition int32, t time.Time) error {
	return c.seekToSpec(ctx, topic, partition, Timestamp(t))
}

func (c *Consumer) seekToSpec(ctx context.Context, topic string, partition int32, spec OffsetSpec) error {
	if c.isClosed() {
		return ErrClosed
	}
	offset, err := listOffset(ctx, c.cl, topic, partition, spec)
	if err != nil {
		return err
	}
	c.SeekTo(topic, partition, offset)
	return nil
}

// Position returns the offset of the next record Poll will return for the
// partition; false if it is not assigned, or its start is not looked up
// yet.
func (c *Consumer) Position(topic string, partition int32) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cp := c.parts[topicPartition{topic, partition}]
	if cp == nil || cp.needsReset {
		return 0, false
	}
	return cp.position, true
}

// Poll returns the records fetched so far, waiting until there are some,
// an error, or ctx is done. Records of a partition come in offset order,
// each partition's after those of the previous Poll. A partition that
// failed (OffsetOutOfRange without ResetOffset, an unknown topic, ...) is
// reported once, as a *PartitionError (joined with errors.Join when there
// are several), and stops until it is sought; records of other partitions
// may come with the error, and are valid.
//
// The records are the caller's, valid as long as they are referenced. A
// caller done with them may hand them back with Release, which makes
// consuming cheaper.
func (c *Consumer) Poll(ctx context.Context) ([]*Record, error) {
	for {
		recs, ready, err := c.pollReady(0)
		if len(recs) > 0 || err != nil {
			return recs, err
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// pollReady is Poll without the wait: it returns what is buffered (at most
// maxRecords records, all for 0) and the partitions' errors, or ErrClosed,
// or else nothing and a channel that is closed when something arrives.
func (c *Consumer) pollReady(maxRecords int) (recs []*Record, ready <-chan struct{}, err error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, nil, ErrClosed
	}
	recs, errs := c.takeLocked(maxRecords)
	ready = c.ready
	c.mu.Unlock()
	if len(recs) > 0 || len(errs) > 0 {
		c.wakeFetchers() // there is room to fetch ahead again
		return recs, nil, errors.Join(errs...)
	}
	return nil, ready, nil
}

// takeLocked collects the buffered records (at most maxRecords, all for 0)
// and unreported errors, starting at a rotating partition so that none is
// always first.
// REQUIRES: mu held.
func (c *Consumer) takeLocked(maxRecords int) ([]*Record, []error) {
	var (
		recs []*Record
		errs []error
	)
	n := len(c.order)
	if n == 0 {
		return nil, nil
	}
	c.rotate = (c.rotate + 1) % n
	total, with := 0, 0
	for _, tp := range c.order {
		if cp := c.parts[tp]; len(cp.records) > 0 {
			total += len(cp.records)
			with++
		}
	}
	if maxRecords > 0 && total > maxRecords {
		total, with = maxRecords, 2 // the slices are cut: always copy
	}
	if with > 1 {
		recs = make([]*Record, 0, total)
	}
	for i := range n {
		cp := c.parts[c.order[(c.rotate+i)%n]]
		if room := total - len(recs); len(cp.records) > room && maxRecords > 0 {
			// Take the first room records; the rest stay for the next Poll.
			if room > 0 {
				taken := cp.records[:room]
				recs = append(recs, taken...)
				cp.position = taken[room-1].Offset + 1
				size := recordsBytes(taken)
				cp.bytes -= size
				c.buffered -= size
				cp.records = cp.records[room:]
			}
		} else if len(cp.records) > 0 {
			if with == 1 {
				recs = cp.records // the partition's slice is dropped below: no copy
			} else {
				recs = append(recs, cp.records...)
			}
			cp.position = cp.records[len(cp.records)-1].Offset + 1
			// Handed out: the caller's now (not dropLocked: the records
			// are not released).
			c.buffered -= cp.bytes
			cp.records, cp.bytes = nil, 0
		}
		if cp.err != nil && !cp.errReported {
			cp.errReported = true
			errs = append(errs, &PartitionError{Topic: cp.tp.topic, Partition: cp.tp.partition, Err: cp.err})
		}
	}
	return recs, errs
}

// Release tells the consumer that the caller is done with records Poll
// returned, so that it may reuse the memory their bytes are in for
// records fetched later. Calling it is optional and only makes consuming
// cheaper: records not released stay valid as long as they are
// referenced.
//
// NB: after Release, the records' Key, Value and header values may be
// overwritten at any time: do not use them, nor slices of them, nor
// release them again from another goroutine at the same time. The Record
// structs themselves (Topic, Partition, Offset, Timestamp, Headers' keys)
// stay valid. Copy what is to be kept before releasing.
//
// Records of uncompressed batches alias the fetch response they came in,
// whose buffer (up to FetchMaxBytes) is reused once all of its records are
// released; without Release, each response gets a new buffer, which the
// runtime zeroes and the OS faults in. Records Poll never returned (those
// dropped by a seek or an unassignment) are released by the consumer.
func (c *Consumer) Release(recs []*Record) {
	releaseRecords(recs)
}

// Close stops the loops, waits for them, and closes the connections. Polls
// in progress return ErrClosed.
func (c *Consumer) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.notifyLocked()
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	c.cl.close()
	return nil
}

func (c *Consumer) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// notifyLocked wakes Polls.
// REQUIRES: mu held.
func (c *Consumer) notifyLocked() {
	close(c.ready)
	c.ready = make(chan struct{})
}

// wakeMetadata wakes the metadata loop.
func (c *Consumer) wakeMetadata() {
	select {
	case c.metaWake <- struct{}{}:
	default:
	}
}

// wakeFetchers wakes every fetch loop.
func (c *Consumer) wakeFetchers() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wakeFetchersLocked(nil)
}

// wakeFetchersLocked wakes every fetch loop but except (nil: all): room
// under MaxPrefetchBytes was given back, which they may be waiting for.
// REQUIRES: mu held.
func (c *Consumer) wakeFetchersLocked(except *fetchLoop) {
	for _, f := range c.loops {
		if f != except {
			f.signal()
		}
	}
}

// wakePartitionLocked wakes whoever serves the partition next: its
// leader's fetch loop, or the metadata loop.
// REQUIRES: mu held.
func (c *Consumer) wakePartitionLocked(cp *consumerPartition) {
	if cp.leader == "" {
		c.wakeMetadata()
		return
	}
	c.loopFor(cp).signal()
}

// leadLocked makes addr cp's leader, on the lane of that broker that
// serves the fewest of the consumer's partitions, so that the partitions
// a broker leads spread evenly over its FetchConnections loops, and wakes
// the loop that serves it now. NB: only while cp is not busy: a loop's
// claims are its own.
// REQUIRES: mu held.
func (c *Consumer) leadLocked(cp *consumerPartition, addr string) {
	served := make([]int, c.cfg.fetchConnections)
	for _, o := range c.parts {
		if o != cp && o.leader == addr {
			served[o.lane]++
		}
	}
	cp.leader, cp.lane = addr, slices.Index(served, slices.Min(served))
	c.loopFor(cp).signal()
}

// servingLoopsLocked counts the fetch loops that serve an assigned
// partition now, and f: loops stay after their partitions move away (to
// another broker, or unassigned), and do not count then.
// REQUIRES: mu held.
func (c *Consumer) servingLoopsLocked(f *fetchLoop) int {
	serving := []fetchLoopKey{f.fetchLoopKey}
	for _, cp := range c.parts {
		if k := (fetchLoopKey{cp.leader, cp.lane}); cp.leader != "" && !slices.Contains(serving, k) {
			serving = append(serving, k)
		}
	}
	return len(serving)
}

// loopFor returns the fetch loop that serves cp from its leader, starting
// it if need be. Once closed it starts none (a loop may still be
// finishing a response that points elsewhere) and returns one that is
// never run.
// REQUIRES: mu held; cp.leader set.
func (c *Consumer) loopFor(cp *consumerPartition) *fetchLoop {
	key := fetchLoopKey{cp.leader, cp.lane}
	if c.closed {
		return &fetchLoop{c: c, fetchLoopKey: key, wake: make(chan struct{}, 1)}
	}
	f := c.loops[key]
	if f == nil {
		f = &fetchLoop{c: c, fetchLoopKey: key, wake: make(chan struct{}, 1)}
		f.pool.min = f.maxFreshBytes()
		c.loops[key] = f
		c.wg.Add(1)
		go f.run()
	}
	return f
}

// failLocked stops a partition with err, for Poll to report.
// REQUIRES: mu held.
func (c *Consumer) failLocked(cp *consumerPartition, err error) {
	cp.err, cp.errReported = err, false
	c.notifyLocked()
}

// retryLocked backs a partition off after a retriable failure, or fails it
// once MaxRetries failures in a row have passed.
// REQUIRES: mu held.
func (c *Consumer) retryLocked(cp *consumerPartition, err error) {
	cp.failures++
	if cp.failures > c.cfg.maxRetries {
		c.failLocked(cp, fmt.Errorf("giving up after %d retries: %w", c.cfg.maxRetries, err))
		return
	}
	cp.retryAt = time.Now().Add(c.cfg.backoff(cp.failures))
}
