package client

import (
	"context"

	"weir/protocol"
)

// partitionOffsets is a partition's log start and high watermark.
type partitionOffsets struct{ logStart, highWatermark int64 }

// leaderOffsets asks each partition's leader for its log start and high
// watermark (ListOffsets, one request per leader and kind). Metadata and
// DescribeGroups answer these from the answering broker's own replica,
// which may lag the leader or, on a broker without a replica, be unknown
// (-1); admin views want the leader's. Partitions whose leader does not
// answer are left out.
func (a *Admin) leaderOffsets(ctx context.Context, tps []topicPartition) map[topicPartition]partitionOffsets {
	byLeader := map[string][]topicPartition{}
	for _, tp := range tps {
		if addr, err := a.cl.leader(ctx, tp.topic, tp.partition); err == nil {
			byLeader[addr] = append(byLeader[addr], tp)
		}
	}
	out := map[topicPartition]partitionOffsets{}
	for addr, parts := range byLeader {
		earliest := a.listOffsetsAt(ctx, addr, parts, int64(Earliest))
		latest := a.listOffsetsAt(ctx, addr, parts, int64(Latest))
		for tp, hw := range latest {
			if start, ok := earliest[tp]; ok {
				out[tp] = partitionOffsets{logStart: start, highWatermark: hw}
			}
		}
	}
	return out
}

// listOffsetsAt sends one ListOffsets for parts to addr and returns the
// offsets it found.
func (a *Admin) listOffsetsAt(ctx context.Context, addr string, parts []topicPartition, timestamp int64) map[topicPartition]int64 {
	req := &protocol.ListOffsetsRequest{}
	for _, tp := range parts {
		p := protocol.ListOffsetsRequestPartition{Partition: tp.partition, Timestamp: timestamp}
		if n := len(req.Topics); n > 0 && req.Topics[n-1].Name == tp.topic {
			req.Topics[n-1].Partitions = append(req.Topics[n-1].Partitions, p)
			continue
		}
		req.Topics = append(req.Topics, protocol.ListOffsetsRequestTopic{Name: tp.topic, Partitions: []protocol.ListOffsetsRequestPartition{p}})
	}
	resp, err := a.cl.requestTo(ctx, addr, req)
	if err != nil {
		return nil
	}
	out := map[topicPartition]int64{}
	for _, t := range resp.(*protocol.ListOffsetsResponse).Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode == protocol.CodeNone {
				out[topicPartition{t.Name, p.Partition}] = p.Offset
			}
		}
	}
	return out
}
