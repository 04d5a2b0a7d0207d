package broker

import (
	"context"
	"maps"
	"slices"

	"weir/cluster"
	"weir/protocol"
)

// The consumer group APIs are served by the coordinator, which acts on the
// controller; elsewhere they answer NotController. The group state itself
// is on every node (the metadata state machine), which Fetch uses to fence
// members that no longer own a partition.

func (b *Broker) handleGroupHeartbeat(ctx context.Context, from source, r *protocol.ConsumerGroupHeartbeatRequest) *protocol.ConsumerGroupHeartbeatResponse {
	hb := cluster.Heartbeat{
		MemberID: r.MemberID, MemberEpoch: r.MemberEpoch, SessionTimeoutMs: r.SessionTimeoutMs,
		Topics: r.SubscribedTopicNames, TopicsSet: r.SubscribedTopicNames != nil,
		Regex: r.SubscribedTopicRegex, Assignor: r.ServerAssignor,
		ClientID: from.clientID, ClientHost: from.addr,
	}
	if r.InstanceID != nil {
		hb.InstanceID = *r.InstanceID
	}
	for _, t := range r.Owned {
		for _, p := range t.Partitions {
			hb.Owned = append(hb.Owned, cluster.TopicPartition{Topic: t.Topic, Partition: p})
		}
	}
	res, err := b.coordinator.Heartbeat(ctx, r.GroupID, hb)
	resp := &protocol.ConsumerGroupHeartbeatResponse{
		ErrorCode: errorCode(err), ErrorMessage: errorMessage(err),
		MemberID: res.MemberID, MemberEpoch: res.MemberEpoch,
	}
	if err != nil {
		resp.MemberEpoch = -1
		return resp
	}
	resp.HeartbeatIntervalMs = int32(b.coordinator.HeartbeatInterval(res.SessionTimeoutMs).Milliseconds())
	resp.Assignment = []protocol.ConsumerGroupHeartbeatResponseTopic{}
	byTopic(res.Assignment, func(topic string, partitions []int32) {
		resp.Assignment = append(resp.Assignment, protocol.ConsumerGroupHeartbeatResponseTopic{Topic: topic, Partitions: partitions})
	})
	return resp
}

func (b *Broker) handleOffsetCommit(ctx context.Context, r *protocol.OffsetCommitRequest) *protocol.OffsetCommitResponse {
	var commits []cluster.OffsetCommit
	for _, t := range r.Topics {
		for _, p := range t.Partitions {
			c := cluster.OffsetCommit{MemberID: r.MemberID, MemberEpoch: r.MemberEpoch, Topic: t.Name,
				Partition: p.Partition, Offset: p.CommittedOffset}
			if p.CommittedMetadata != nil {
				c.Metadata = *p.CommittedMetadata
			}
			commits = append(commits, c)
		}
	}
	errs, err := b.coordinator.CommitOffsets(ctx, r.GroupID, commits)
	resp := &protocol.OffsetCommitResponse{Topics: make([]protocol.OffsetCommitResponseTopic, len(r.Topics))}
	i := 0
	for ti, t := range r.Topics {
		rt := &resp.Topics[ti]
		rt.Name = t.Name
		rt.Partitions = make([]protocol.OffsetCommitResponsePartition, len(t.Partitions))
		for pi, p := range t.Partitions {
			perr := err
			if perr == nil {
				perr = errs[i]
			}
			rt.Partitions[pi] = protocol.OffsetCommitResponsePartition{Partition: p.Partition, ErrorCode: errorCode(perr)}
			i++
		}
	}
	return resp
}

func (b *Broker) handleOffsetFetch(r *protocol.OffsetFetchRequest) *protocol.OffsetFetchResponse {
	resp := &protocol.OffsetFetchResponse{}
	if err := b.groupReadable(r.GroupID); err != nil {
		resp.ErrorCode = errorCode(err)
		return resp
	}
	g := b.controller.Group(r.GroupID)
	committed := func(topic string, p int32) (cluster.CommittedOffset, bool) {
		if g == nil {
			return cluster.CommittedOffset{}, false
		}
		off, ok := g.Offsets[topic][p]
		return off, ok
	}
	topics := r.Topics
	if topics == nil && g != nil {
		for _, topic := range slices.Sorted(maps.Keys(g.Offsets)) {
			topics = append(topics, protocol.OffsetFetchRequestTopic{Name: topic,
				Partitions: slices.Sorted(maps.Keys(g.Offsets[topic]))})
		}
	}
	meta := b.controller.Metadata()
	for _, t := range topics {
		rt := protocol.OffsetFetchResponseTopic{Name: t.Name}
		for _, p := range t.Partitions {
			out := protocol.OffsetFetchResponsePartition{Partition: p, CommittedOffset: -1}
			if topic := meta.Topics[t.Name]; topic == nil || p < 0 || int(p) >= len(topic.Replicas) {
				out.ErrorCode = protocol.CodeUnknownTopicOrPartition
			} else if off, ok := committed(t.Name, p); ok {
				out.CommittedOffset, out.CommittedMetadata = off.Offset, &off.Metadata
			}
			rt.Partitions = append(rt.Partitions, out)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// groupReadable checks that this node may answer reads of group id's state:
// only the controller is sure to have applied every commit, and only once
// it verified that it still leads (see cluster.Controller.VerifyLeader).
func (b *Broker) groupReadable(id string) error {
	if err := cluster.ValidateGroupID(id); err != nil {
		return err
	}
	return b.controller.VerifyLeader()
}

func (b *Broker) handleListGroups() *protocol.ListGroupsResponse {
	resp := &protocol.ListGroupsResponse{Groups: []protocol.ListGroupsResponseGroup{}}
	if err := b.controller.VerifyLeader(); err != nil {
		resp.ErrorCode = errorCode(err)
		return resp
	}
	for _, id := range b.controller.GroupIDs() {
		if g := b.controller.Group(id); g != nil {
			resp.Groups = append(resp.Groups, protocol.ListGroupsResponseGroup{GroupID: id, State: g.State(), Members: int32(len(g.Members))})
		}
	}
	return resp
}

func (b *Broker) handleDescribeGroups(r *protocol.DescribeGroupsRequest) *protocol.DescribeGroupsResponse {
	resp := &protocol.DescribeGroupsResponse{}
	verified := b.controller.VerifyLeader() // once for all the groups
	for _, id := range r.GroupIDs {
		out := protocol.DescribeGroupsResponseGroup{GroupID: id}
		err := cluster.ValidateGroupID(id)
		if err == nil {
			err = verified
		}
		var g *cluster.Group
		if err == nil {
			g = b.controller.Group(id) // read after the leadership check
		}
		if err != nil || g == nil {
			if err == nil {
				err = cluster.ErrGroupNotFound
			}
			out.ErrorCode = errorCode(err)
			resp.Groups = append(resp.Groups, out)
			continue
		}
		out.State, out.GroupEpoch, out.Assignor = g.State(), g.Epoch, g.Assignor
		owners := map[cluster.TopicPartition]string{}
		for _, m := range g.SortedMembers() {
			dm := protocol.DescribeGroupsResponseMember{MemberID: m.ID, ClientID: m.ClientID, ClientHost: m.ClientHost,
				MemberEpoch: m.Epoch, SubscribedTopicNames: slices.Clone(m.Topics), SubscribedTopicRegex: m.Regex}
			if dm.SubscribedTopicNames == nil {
				dm.SubscribedTopicNames = []string{}
			}
			if m.InstanceID != "" {
				dm.InstanceID = &m.InstanceID
			}
			owned := append(slices.Clone(m.Assigned), m.Revoking...)
			slices.SortFunc(owned, cluster.TopicPartition.Compare)
			dm.Assignment = []protocol.DescribeGroupsResponseTopic{}
			byTopic(owned, func(topic string, partitions []int32) {
				dm.Assignment = append(dm.Assignment, protocol.DescribeGroupsResponseTopic{Topic: topic, Partitions: partitions})
			})
			for _, tp := range owned {
				owners[tp] = m.ID
			}
			out.Members = append(out.Members, dm)
		}
		out.Offsets = b.describeOffsets(g, owners)
		resp.Groups = append(resp.Groups, out)
	}
	return resp
}

// describeOffsets lists, for every partition g has committed or owns, the
// committed offset, the high watermark and the lag where this node leads the
// partition, and the owner.
func (b *Broker) describeOffsets(g *cluster.Group, owners map[cluster.TopicPartition]string) []protocol.DescribeGroupsResponseOffsetTopic {
	parts := map[cluster.TopicPartition]bool{}
	for topic, offsets := range g.Offsets {
		for p := range offsets {
			parts[cluster.TopicPartition{Topic: topic, Partition: p}] = true
		}
	}
	for tp := range owners {
		parts[tp] = true
	}
	var out []protocol.DescribeGroupsResponseOffsetTopic
	for _, tp := range slices.SortedFunc(maps.Keys(parts), cluster.TopicPartition.Compare) {
		o := protocol.DescribeGroupsResponseOffset{Partition: tp.Partition, CommittedOffset: -1, HighWatermark: -1, Lag: -1,
			MemberID: owners[tp]}
		if off, ok := g.Offsets[tp.Topic][tp.Partition]; ok {
			o.CommittedOffset = off.Offset
		}
		if rep := b.replicas.get(tp.Topic, tp.Partition); rep != nil {
			if offs, err := rep.partition.ListOffsets(); err == nil {
				o.HighWatermark = int64(offs.HighWatermark)
				from := max(o.CommittedOffset, int64(offs.LogStart))
				o.Lag = max(o.HighWatermark-from, 0)
			}
		}
		if n := len(out); n > 0 && out[n-1].Topic == tp.Topic {
			out[n-1].Partitions = append(out[n-1].Partitions, o)
			continue
		}
		out = append(out, protocol.DescribeGroupsResponseOffsetTopic{Topic: tp.Topic, Partitions: []protocol.DescribeGroupsResponseOffset{o}})
	}
	if out == nil {
		out = []protocol.DescribeGroupsResponseOffsetTopic{}
	}
	return out
}

func (b *Broker) handleDeleteGroups(ctx context.Context, r *protocol.DeleteGroupsRequest) *protocol.DeleteGroupsResponse {
	resp := &protocol.DeleteGroupsResponse{Results: []protocol.DeleteGroupsResponseResult{}}
	for _, id := range r.GroupIDs {
		err := b.coordinator.DeleteGroup(ctx, id)
		resp.Results = append(resp.Results, protocol.DeleteGroupsResponseResult{GroupID: id, ErrorCode: errorCode(err)})
	}
	return resp
}

// checkFetchMember fences a fetch by a group member that does not own the
// partition (a zombie whose session expired, or one that has given the
// partition back).
func (b *Broker) checkFetchMember(r *protocol.FetchRequest, topic string, partition int32) error {
	if r.GroupID == nil {
		return nil
	}
	return b.controller.CheckMember(*r.GroupID, r.MemberID, r.MemberEpoch, cluster.TopicPartition{Topic: topic, Partition: partition})
}

// byTopic calls fn for each run of one topic's partitions in sorted tps.
func byTopic(tps []cluster.TopicPartition, fn func(topic string, partitions []int32)) {
	for i := 0; i < len(tps); {
		j := i
		var partitions []int32
		for ; j < len(tps) && tps[j].Topic == tps[i].Topic; j++ {
			partitions = append(partitions, tps[j].Partition)
		}
		fn(tps[i].Topic, partitions)
		i = j
	}
}
