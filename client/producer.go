package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"weir/protocol"
)

// Producer sends records to partition leaders, batched per partition. It is
// safe for concurrent use.
//
// Each partition that gets records has a loop goroutine of its own (see
// partProducer): it seals batches when they are full or have lingered,
// sends them to the leader (up to 5 at a time when idempotent, 1
// otherwise), handles the answers and retries, and calls the records'
// promises in order. Produce itself only picks the partition and appends
// the record to that partition's open batch.
type Producer struct {
	cfg    config
	cl     *cluster
	buffer *budget // MaxBufferedBytes

	// ctx is cancelled when the producer stops, ending requests in flight.
	ctx    context.Context
	cancel context.CancelFunc
	// stop is closed to stop the partition loops; wg counts them.
	stop chan struct{}
	wg   sync.WaitGroup

	// intake guards closed. Produce holds it shared while it hands a record
	// to a partition, Shutdown exclusively to close, so that no record is
	// added (and no loop started) once Shutdown has begun flushing.
	intake sync.RWMutex
	closed bool

	// mu guards parts.
	mu    sync.Mutex
	parts map[topicPartition]*partProducer

	// flushing counts Flush calls in progress: while there are any, batches
	// are sealed at once instead of lingering.
	flushing atomic.Int32

	// pending counts records handed to partitions and not yet completed;
	// drained is closed when it drops to 0.
	pending struct {
		sync.Mutex
		records int64
		drained chan struct{}
	}

	// pid is the producer id InitProducerID gave, shared by the partitions
	// (a partition that must start over gets a fresh one of its own).
	pid struct {
		sync.Mutex
		id    int64
		epoch int16
		valid bool
	}

	shutdownOnce sync.Once
	shutdownDone chan struct{}
	shutdownErr  error
}

// topicPartition names a partition.
type topicPartition struct {
	topic     string
	partition int32
}

// requestTimeoutSlack is added to RequestTimeout for the client's own
// deadline on a request that carries timeout_ms = RequestTimeout (produce,
// admin): the broker answers when that passes (RequestTimedOut, or what it
// has done), which is better than a closed connection.
const requestTimeoutSlack = time.Second

// maxInFlightIdempotent is how many batches of one partition an idempotent
// producer has in flight: as many as the broker remembers per producer for
// spotting duplicates (partition.recentBatches).
const maxInFlightIdempotent = 5

// unknownTopicRetries bounds how often Produce asks again about a topic the
// brokers do not know: a topic just created may be unknown to some brokers
// for a moment, but a misspelt one stays unknown.
const unknownTopicRetries = 3

// NewProducer returns a Producer. It connects lazily: the first record
// dials the seed brokers.
func NewProducer(opts ...Opt) (*Producer, error) {
	cfg, err := newConfig(roleProducer, opts)
	if err != nil {
		return nil, err
	}
	if cfg.acks == AcksNone {
		cfg.idempotent = false // sequences need answers
	}
	p := &Producer{
		cfg:          cfg,
		buffer:       newBudget(cfg.maxBufferedBytes),
		stop:         make(chan struct{}),
		parts:        map[topicPartition]*partProducer{},
		shutdownDone: make(chan struct{}),
	}
	p.cl = newCluster(&p.cfg)
	p.ctx, p.cancel = context.WithCancel(context.Background())
	return p, nil
}

// Produce hands r to the producer and returns; promise (which may be nil)
// is called once r is acknowledged, with r.Partition and r.Offset set, or
// has failed. Produce waits while the buffer is full (MaxBufferedBytes),
// until there is room or ctx is done; ctx bounds only that wait and the
// first lookup of the topic, not the delivery, which DeliveryTimeout bounds.
//
// Promises of one partition are called in order, from that partition's
// goroutine, and must not block for long: they hold up the partition.
// Errors found before r is buffered (ErrRecordTooLarge, ErrBufferFull,
// ErrClosed, an unknown topic, ctx's error) call promise from Produce
// itself. A promise should not call Produce in a way that waits for room,
// since the room may only come after the promise returns.
func (p *Producer) Produce(ctx context.Context, r *Record, promise func(*Record, error)) {
	if promise == nil {
		promise = func(*Record, error) {}
	}
	if err := p.produce(ctx, r, promise); err != nil {
		promise(r, err)
	}
}

func (p *Producer) produce(ctx context.Context, r *Record, promise func(*Record, error)) error {
	if r.Topic == "" {
		return ErrNoTopic
	}
	size := int64(r.size())
	if size > int64(p.cfg.maxRecordBytes) || size > p.cfg.maxBufferedBytes {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrRecordTooLarge, size, min(int64(p.cfg.maxRecordBytes), p.cfg.maxBufferedBytes))
	}
	p.intake.RLock()
	closed := p.closed
	p.intake.RUnlock()
	if closed {
		return ErrClosed
	}
	var err error
	if p.cfg.failOnFullBuffer {
		err = p.buffer.TryAcquire(size)
	} else {
		err = p.buffer.Acquire(ctx, size)
	}
	if err != nil {
		return fmt.Errorf("weir/client: produce to %s: %w", r.Topic, err)
	}
	partition, err := p.choosePartition(ctx, r)
	if err != nil {
		p.buffer.Release(size)
		return err
	}
	if r.Timestamp.IsZero() {
		r.Timestamp = time.Now()
	}
	r.Partition = partition
	p.intake.RLock()
	defer p.intake.RUnlock()
	if p.closed {
		p.buffer.Release(size)
		return ErrClosed
	}
	pp := p.partProducer(r.Topic, partition)
	p.addPending(1)
	pp.add(r, promise, size)
	return nil
}

// choosePartition looks up the topic's partition count and asks the
// partitioner.
func (p *Producer) choosePartition(ctx context.Context, r *Record) (int32, error) {
	var n int32
	for attempt := 0; ; attempt++ {
		var err error
		n, err = p.cl.partitionCount(ctx, r.Topic)
		if err == nil {
			break
		}
		limit := p.cfg.maxRetries
		if errors.Is(err, protocol.ErrUnknownTopicOrPartition) {
			limit = min(limit, unknownTopicRetries)
		}
		if attempt >= limit || !retriable(ctx, err) {
			return 0, fmt.Errorf("weir/client: produce to %s: %w", r.Topic, err)
		}
		if err := sleep(ctx, p.cfg.backoff(attempt+1)); err != nil {
			return 0, fmt.Errorf("weir/client: produce to %s: %w", r.Topic, err)
		}
	}
	part := p.cfg.partitioner.Partition(r, n)
	if part < 0 || part >= n {
		return 0, fmt.Errorf("%w: %s[%d], the topic has %d partitions", ErrInvalidPartition, r.Topic, part, n)
	}
	return part, nil
}

// partProducer returns the partition's producer, starting it if need be.
// REQUIRES: intake held shared, and the producer not closed.
func (p *Producer) partProducer(topic string, partition int32) *partProducer {
	key := topicPartition{topic, partition}
	p.mu.Lock()
	defer p.mu.Unlock()
	pp := p.parts[key]
	if pp == nil {
		pp = newPartProducer(p, topic, partition)
		p.parts[key] = pp
		p.wg.Add(1)
		go pp.run()
	}
	return pp
}

// ProduceSync produces records and waits until every one is acknowledged
// or has failed; it returns the first error. ctx bounds the wait for
// buffer room, as in Produce.
func (p *Producer) ProduceSync(ctx context.Context, records ...*Record) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	wg.Add(len(records))
	for _, r := range records {
		p.Produce(ctx, r, func(_ *Record, err error) {
			if err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
			wg.Done()
		})
	}
	wg.Wait()
	return first
}

// Flush sends every buffered record without waiting for Linger and waits
// until all records produced before (and during) the call are acknowledged
// or have failed, or ctx is done.
func (p *Producer) Flush(ctx context.Context) error {
	p.flushing.Add(1)
	defer p.flushing.Add(-1)
	p.wakeAll()
	for {
		p.pending.Lock()
		if p.pending.records == 0 {
			p.pending.Unlock()
			return nil
		}
		drained := p.pending.drained
		p.pending.Unlock()
		select {
		case <-drained:
		case <-ctx.Done():
			return fmt.Errorf("weir/client: flush: %w", ctx.Err())
		}
	}
}

// BufferedBytes returns the bytes of records produced and not yet
// acknowledged or failed: what counts against MaxBufferedBytes.
func (p *Producer) BufferedBytes() int64 { return p.buffer.Used() }

// Close flushes every buffered record, waiting as long as their retries
// take, then stops the producer. See Shutdown to bound the wait.
func (p *Producer) Close() error { return p.Shutdown(context.Background()) }

// Shutdown stops taking records (Produce fails with ErrClosed, and calls
// waiting for buffer room give up), flushes until ctx is done, then fails
// whatever is left with ErrClosed, stops every goroutine and closes the
// connections. It returns ctx's error if the flush did not finish. Calls
// after the first wait for it and return its result.
func (p *Producer) Shutdown(ctx context.Context) error {
	first := false
	p.shutdownOnce.Do(func() { first = true })
	if !first {
		<-p.shutdownDone
		return p.shutdownErr
	}
	p.intake.Lock()
	p.closed = true
	p.intake.Unlock()
	p.buffer.close()
	err := p.Flush(ctx)
	close(p.stop)
	p.cancel()
	p.wg.Wait()
	p.cl.close()
	p.shutdownErr = err
	close(p.shutdownDone)
	return err
}

// wakeAll wakes every partition loop (for Flush).
func (p *Producer) wakeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pp := range p.parts {
		pp.signal()
	}
}

func (p *Producer) addPending(n int64) {
	p.pending.Lock()
	defer p.pending.Unlock()
	if p.pending.records == 0 {
		p.pending.drained = make(chan struct{})
	}
	p.pending.records += n
}

func (p *Producer) donePending(n int64) {
	p.pending.Lock()
	defer p.pending.Unlock()
	p.pending.records -= n
	if p.pending.records == 0 {
		close(p.pending.drained)
	}
}

// producerID returns the producer id and epoch to number batches with: the
// shared one, asked for once, or with fresh a new one (for a partition that
// must start its sequence over).
func (p *Producer) producerID(ctx context.Context, fresh bool) (int64, int16, error) {
	if !fresh {
		// Held during the request: one InitProducerID for all partitions.
		p.pid.Lock()
		defer p.pid.Unlock()
		if p.pid.valid {
			return p.pid.id, p.pid.epoch, nil
		}
	}
	resp, err := p.cl.controllerRequest(ctx, &protocol.InitProducerIDRequest{})
	if err != nil {
		return 0, 0, fmt.Errorf("weir/client: init producer id: %w", err)
	}
	r := resp.(*protocol.InitProducerIDResponse)
	if err := protocol.ErrorForCodeMessage(r.ErrorCode, r.ErrorMessage); err != nil {
		if r.ErrorCode == protocol.CodeNotController {
			p.cl.forgetController()
		}
		return 0, 0, fmt.Errorf("weir/client: init producer id: %w", err)
	}
	if !fresh {
		p.pid.id, p.pid.epoch, p.pid.valid = r.ProducerID, r.ProducerEpoch, true
	}
	return r.ProducerID, r.ProducerEpoch, nil
}

// finishBatch completes a batch: returns its bytes to the buffer, then
// calls its records' promises in order.
func (p *Producer) finishBatch(pp *partProducer, b *batch) {
	p.buffer.Release(b.bytes)
	var err error
	if b.failed {
		err = fmt.Errorf("weir/client: produce to %s[%d]: %w", pp.topic, pp.partition, b.err)
	}
	for i, pr := range b.records {
		pr.r.Partition = pp.partition
		pr.r.Offset = -1
		if err == nil && b.baseOffset >= 0 {
			pr.r.Offset = b.baseOffset + int64(i)
		}
		pr.promise(pr.r, err)
	}
	p.donePending(int64(len(b.records)))
}
