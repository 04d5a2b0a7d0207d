package broker

import (
	"context"
	"fmt"
	"time"

	wlog "weir/log"
	"weir/protocol"
)

// maxFetchWait bounds a fetch's long poll whatever the client asks.
const maxFetchWait = 30 * time.Second

// handleFetch reads committed frames for each partition. If they come to
// less than min_bytes it waits, up to max_wait_ms, for a high watermark to
// move, then reads again: a long poll. The response's records are file
// ranges, sent by sendfile; the ranges are returned in the order of the
// response's partitions (a zero range where a partition has none).
func (b *Broker) handleFetch(ctx context.Context, r *protocol.FetchRequest) (protocol.Response, []wlog.FileRange) {
	wait := min(time.Duration(r.MaxWaitMs)*time.Millisecond, maxFetchWait)
	deadline := time.Now().Add(wait)
	for {
		resp, ranges, total := b.fetchOnce(r)
		// An error (not the leader, unknown partition, ...) is answered at
		// once: the client has something to do about it.
		if r.MinBytes <= 0 || total >= int64(r.MinBytes) || !time.Now().Before(deadline) || hasError(resp) {
			b.countFetched(r, ranges)
			return resp, ranges
		}
		for i := range ranges {
			ranges[i].Release()
		}
		if err := b.waitForData(ctx, r, resp, deadline); err != nil {
			resp, ranges, _ := b.fetchOnce(r)
			b.countFetched(r, ranges)
			return resp, ranges
		}
	}
}

func hasError(resp *protocol.FetchResponse) bool {
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != protocol.CodeNone {
				return true
			}
		}
	}
	return false
}

// countFetched adds a response's record bytes to the fetch metrics; ranges
// are in the order of the request's partitions.
func (b *Broker) countFetched(r *protocol.FetchRequest, ranges []wlog.FileRange) {
	i := 0
	for _, t := range r.Topics {
		var n int64
		for range t.Partitions {
			n += ranges[i].Len
			i++
		}
		if n > 0 {
			b.metrics.fetchBytes.WithLabelValues(t.Name).Add(float64(n))
		}
	}
}

// fetchOnce reads what each partition has now, within the request's byte
// limits, and returns the response, its ranges and their total size.
func (b *Broker) fetchOnce(r *protocol.FetchRequest) (*protocol.FetchResponse, []wlog.FileRange, int64) {
	resp := &protocol.FetchResponse{Topics: make([]protocol.FetchResponseTopic, len(r.Topics))}
	var ranges []wlog.FileRange
	var total int64
	budget := int64(r.MaxBytes)
	if budget <= 0 {
		budget = int64(b.cfg.MaxFrameBytes)
	}
	for i, t := range r.Topics {
		rt := &resp.Topics[i]
		rt.Name = t.Name
		rt.Partitions = make([]protocol.FetchResponsePartition, len(t.Partitions))
		for j, p := range t.Partitions {
			out := &rt.Partitions[j]
			out.Partition, out.LeaderID = p.Partition, -1
			// The first frame of the response is sent whatever its size, so
			// a fetch always makes progress; after that, the byte limits hold.
			limit := min(int64(p.PartitionMaxBytes), budget-total)
			if total == 0 {
				limit = max(limit, 1)
			}
			err := b.checkFetchMember(r, t.Name, p.Partition)
			var rng wlog.FileRange
			if err == nil {
				rng, err = b.fetchPartition(t.Name, p, limit, out)
			}
			if err != nil {
				pe := b.partitionError(err)
				out.ErrorCode, out.ErrorMessage, out.LeaderID, out.LeaderAddress = pe.code, pe.message, pe.leaderID, pe.leaderAddress
			}
			total += rng.Len
			ranges = append(ranges, rng)
		}
	}
	return resp, ranges, total
}

func (b *Broker) fetchPartition(topic string, p protocol.FetchRequestPartition, maxBytes int64, out *protocol.FetchResponsePartition) (wlog.FileRange, error) {
	rep := b.replicas.get(topic, p.Partition)
	if rep == nil {
		return wlog.FileRange{}, fmt.Errorf("%w: %s-%d", errUnknownPartition, topic, p.Partition)
	}
	if p.FetchOffset < 0 {
		return wlog.FileRange{}, protocol.ErrorForCode(protocol.CodeOffsetOutOfRange, "negative fetch offset")
	}
	res, err := rep.partition.Fetch(uint64(p.FetchOffset), max(maxBytes, 1))
	out.HighWatermark, out.LogStartOffset = int64(res.HighWatermark), int64(res.LogStartOffset)
	if err != nil {
		return wlog.FileRange{}, err
	}
	if maxBytes <= 0 && res.Frames.Len > 0 {
		// The request's byte budget is spent: the client asks again.
		res.Release()
		return wlog.FileRange{}, nil
	}
	return res.Frames, nil
}

// waitForData waits until a fetched partition's high watermark moves past
// what the last pass saw, or the deadline.
func (b *Broker) waitForData(ctx context.Context, r *protocol.FetchRequest, resp *protocol.FetchResponse, deadline time.Time) error {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	woke := make(chan struct{}, 1)
	// One watcher per partition, however often the request names it, from
	// the lowest point it asks for.
	from := map[*replica]uint64{}
	for i, t := range r.Topics {
		for j, p := range t.Partitions {
			rep := b.replicas.get(t.Name, p.Partition)
			out := resp.Topics[i].Partitions[j]
			if rep == nil || out.ErrorCode != protocol.CodeNone {
				continue
			}
			hw := uint64(max(out.HighWatermark, p.FetchOffset))
			if cur, ok := from[rep]; !ok || hw < cur {
				from[rep] = hw
			}
		}
	}
	for rep, hw := range from {
		go func() {
			if rep.partition.WaitHighWatermark(ctx, hw) == nil {
				select {
				case woke <- struct{}{}:
				default:
				}
			}
		}()
	}
	if len(from) == 0 {
		<-ctx.Done()
		return ctx.Err()
	}
	select {
	case <-woke:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *Broker) handleListOffsets(r *protocol.ListOffsetsRequest) *protocol.ListOffsetsResponse {
	resp := &protocol.ListOffsetsResponse{Topics: make([]protocol.ListOffsetsResponseTopic, len(r.Topics))}
	for i, t := range r.Topics {
		rt := &resp.Topics[i]
		rt.Name = t.Name
		for _, p := range t.Partitions {
			out := protocol.ListOffsetsResponsePartition{Partition: p.Partition, Offset: -1, Timestamp: -1, LeaderID: -1}
			err := b.listOffset(t.Name, p, &out)
			if err != nil {
				pe := b.partitionError(err)
				out.ErrorCode, out.ErrorMessage, out.LeaderID, out.LeaderAddress = pe.code, pe.message, pe.leaderID, pe.leaderAddress
			}
			rt.Partitions = append(rt.Partitions, out)
		}
	}
	return resp
}

// Special timestamps of ListOffsets.
const (
	timestampLatest   = -1
	timestampEarliest = -2
)

func (b *Broker) listOffset(topic string, p protocol.ListOffsetsRequestPartition, out *protocol.ListOffsetsResponsePartition) error {
	rep := b.replicas.get(topic, p.Partition)
	if rep == nil {
		return fmt.Errorf("%w: %s-%d", errUnknownPartition, topic, p.Partition)
	}
	switch p.Timestamp {
	case timestampEarliest, timestampLatest:
		offs, err := rep.partition.ListOffsets()
		if err != nil {
			return err
		}
		out.Offset = int64(offs.HighWatermark)
		if p.Timestamp == timestampEarliest {
			out.Offset = int64(offs.LogStart)
		}
		return nil
	}
	off, ts, found, err := rep.partition.OffsetForTimestamp(p.Timestamp)
	if err != nil {
		return err
	}
	out.Offset = int64(off)
	if found {
		out.Timestamp = ts
	}
	return nil
}
