package broker

import (
	"context"
	"fmt"
	"slices"

	"weir/partition"
	"weir/protocol"
	"weir/protocol/record"
)

// Backpressure errors: retriable, with a retry-after hint.
var (
	errBrokerFull = protocol.ErrorForCode(protocol.CodeBackpressure, "broker: too many produce bytes waiting for replication")
	errTopicFull  = protocol.ErrorForCode(protocol.CodeBackpressure, "topic: partition is at max.bytes (discard: reject)")
)

// startProduce proposes every partition's batch of a produce request, in
// the request's order, and returns a function that waits for the commits
// and builds the response. The connection's reader calls it for each
// produce request before it reads the next, so the batches of pipelined
// requests reach each partition in the order they were sent (an idempotent
// producer's sequence numbers depend on it); the waiting is concurrent.
func (b *Broker) startProduce(ctx context.Context, r *protocol.ProduceRequest) func() protocol.Response {
	ctx, cancel := withTimeoutMs(ctx, r.TimeoutMs)
	acks := partition.AcksAll
	if r.Acks == protocol.AcksNone {
		acks = partition.AcksNone
	}
	resp := &protocol.ProduceResponse{Topics: make([]protocol.ProduceResponseTopic, len(r.Topics))}
	var waits []func()
	for i, t := range r.Topics {
		rt := &resp.Topics[i]
		rt.Name = t.Name
		rt.Partitions = make([]protocol.ProduceResponsePartition, len(t.Partitions))
		for j, p := range t.Partitions {
			out := &rt.Partitions[j]
			if wait := b.proposePartition(ctx, t.Name, p, acks, out); wait != nil {
				waits = append(waits, wait)
			}
		}
	}
	return func() protocol.Response {
		defer cancel()
		for _, wait := range waits {
			wait()
		}
		return resp
	}
}

// proposePartition proposes one partition's batch, filling out at once on
// an error, or returning a function that waits for the commit and fills
// out then.
func (b *Broker) proposePartition(ctx context.Context, topic string, p protocol.ProduceRequestPartition, acks partition.Acks, out *protocol.ProduceResponsePartition) func() {
	*out = protocol.ProduceResponsePartition{Partition: p.Partition, BaseOffset: -1, LeaderID: -1}
	fail := func(err error) {
		pe := b.partitionError(err)
		out.ErrorCode, out.ErrorMessage, out.LeaderID, out.LeaderAddress = pe.code, pe.message, pe.leaderID, pe.leaderAddress
		if out.ErrorCode == protocol.CodeBackpressure {
			out.RetryAfterMs = int32(b.cfg.BackpressureRetry.Milliseconds())
		}
	}
	rep := b.replicas.get(topic, p.Partition)
	if rep == nil {
		fail(fmt.Errorf("%w: %s-%d", errUnknownPartition, topic, p.Partition))
		return nil
	}
	h, err := record.ParseHeader(p.Records)
	if err != nil {
		fail(fmt.Errorf("%w: %w", partition.ErrInvalidBatch, err))
		return nil
	}
	cfg := rep.config
	if !slices.Contains(cfg.Compression, h.Codec.String()) {
		fail(protocol.ErrorForCode(protocol.CodeInvalidRequest,
			fmt.Sprintf("topic %s does not allow compression %s (allowed: %v)", topic, h.Codec, cfg.Compression)))
		return nil
	}
	if cfg.MaxBytes > 0 && cfg.Discard == "reject" && rep.partition.Log().Size() >= cfg.MaxBytes {
		b.metrics.backpressure.WithLabelValues("topic").Inc()
		fail(errTopicFull)
		return nil
	}
	n := int64(len(p.Records))
	if !b.produceBytes.TryAcquire(n) {
		b.metrics.backpressure.WithLabelValues("broker").Inc()
		fail(errBrokerFull)
		return nil
	}
	pr, err := rep.partition.Propose(ctx, p.Records)
	if err != nil {
		b.produceBytes.Release(n)
		fail(err)
		return nil
	}
	return func() {
		off, err := pr.Wait()
		b.produceBytes.Release(n)
		if err != nil {
			fail(err)
			return
		}
		out.BaseOffset = int64(off)
		b.metrics.produceBytes.WithLabelValues(topic).Add(float64(n))
		b.metrics.produceRecords.WithLabelValues(topic).Add(float64(h.Count))
		out.LogStartOffset = int64(rep.partition.Log().FirstOffset())
	}
}
