package broker

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"weir/partition"
	"weir/protocol"
	"weir/protocol/record"
)

// Backpressure errors: retriable, with a retry-after hint.
var (
	errBrokerFull = protocol.ErrorForCode(protocol.CodeBackpressure, "broker: too many produce bytes waiting for replication")
	errTopicFull  = protocol.ErrorForCode(protocol.CodeBackpressure, "topic: partition is at max.bytes (discard: reject)")
)

func (b *Broker) handleProduce(ctx context.Context, r *protocol.ProduceRequest) *protocol.ProduceResponse {
	ctx, cancel := withTimeoutMs(ctx, r.TimeoutMs)
	defer cancel()
	acks := partition.AcksAll
	if r.Acks == 0 {
		acks = partition.AcksNone
	}
	resp := &protocol.ProduceResponse{Topics: make([]protocol.ProduceResponseTopic, len(r.Topics))}
	// The partitions of a request are produced concurrently, so their
	// proposals share Raft's group commits.
	var wg sync.WaitGroup
	for i, t := range r.Topics {
		rt := &resp.Topics[i]
		rt.Name = t.Name
		rt.Partitions = make([]protocol.ProduceResponsePartition, len(t.Partitions))
		for j, p := range t.Partitions {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rt.Partitions[j] = b.producePartition(ctx, t.Name, p, acks)
			}()
		}
	}
	wg.Wait()
	return resp
}

func (b *Broker) producePartition(ctx context.Context, topic string, p protocol.ProduceRequestPartition, acks partition.Acks) protocol.ProduceResponsePartition {
	out := protocol.ProduceResponsePartition{Partition: p.Partition, BaseOffset: -1, LeaderID: -1}
	fail := func(err error) protocol.ProduceResponsePartition {
		out.ErrorCode, out.ErrorMessage = errorCode(err), errorMessage(err)
		if out.ErrorCode == protocol.CodeBackpressure {
			out.RetryAfterMs = int32(b.cfg.BackpressureRetry.Milliseconds())
		}
		if out.ErrorCode == protocol.CodeNotLeader {
			out.LeaderID, out.LeaderAddress = b.leaderOf(err)
		}
		return out
	}
	rep := b.replicas.get(topic, p.Partition)
	if rep == nil {
		return fail(fmt.Errorf("%w: %s-%d", errUnknownPartition, topic, p.Partition))
	}
	h, err := record.ParseHeader(p.Records)
	if err != nil {
		return fail(fmt.Errorf("%w: %w", partition.ErrInvalidBatch, err))
	}
	if !slices.Contains(rep.config.Compression, h.Codec.String()) {
		return fail(protocol.ErrorForCode(protocol.CodeInvalidRequest,
			fmt.Sprintf("topic %s does not allow compression %s (allowed: %v)", topic, h.Codec, rep.config.Compression)))
	}
	cfg := rep.config
	if cfg.MaxBytes > 0 && cfg.Discard == "reject" && rep.partition.Log().Size() >= cfg.MaxBytes {
		return fail(errTopicFull)
	}
	n := int64(len(p.Records))
	if !b.produceBytes.TryAcquire(n) {
		return fail(errBrokerFull)
	}
	off, err := rep.partition.Produce(ctx, p.Records, acks)
	b.produceBytes.Release(n)
	if err != nil {
		return fail(err)
	}
	out.BaseOffset = int64(off)
	if acks == partition.AcksNone {
		out.BaseOffset = -1
	}
	out.LogStartOffset = int64(rep.partition.Log().FirstOffset())
	return out
}
