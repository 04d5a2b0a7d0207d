package broker

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"weir/cluster"
	wlog "weir/log"
	"weir/protocol"
)

// source is who sent a request.
type source struct {
	clientID string // from the request header
	addr     string // the connection's remote address
}

// handle serves one request. A fetch response also returns the file ranges
// its records are sent from.
func (b *Broker) handle(ctx context.Context, from source, req protocol.Request) (protocol.Response, []wlog.FileRange) {
	switch r := req.(type) {
	case *protocol.APIVersionsRequest:
		return &protocol.APIVersionsResponse{APIs: protocol.SupportedAPIs()}, nil
	case *protocol.MetadataRequest:
		return b.handleMetadata(r), nil
	case *protocol.CreateTopicsRequest:
		return b.handleCreateTopics(ctx, r), nil
	case *protocol.DeleteTopicsRequest:
		return b.handleDeleteTopics(ctx, r), nil
	case *protocol.DescribeConfigsRequest:
		return b.handleDescribeConfigs(r), nil
	case *protocol.AlterConfigsRequest:
		return b.handleAlterConfigs(ctx, r), nil
	case *protocol.FetchRequest:
		return b.handleFetch(ctx, r)
	case *protocol.ListOffsetsRequest:
		return b.handleListOffsets(r), nil
	case *protocol.InitProducerIDRequest:
		return b.handleInitProducerID(ctx), nil
	case *protocol.ConsumerGroupHeartbeatRequest:
		return b.handleGroupHeartbeat(ctx, from, r), nil
	case *protocol.OffsetCommitRequest:
		return b.handleOffsetCommit(ctx, r), nil
	case *protocol.OffsetFetchRequest:
		return b.handleOffsetFetch(r), nil
	case *protocol.ListGroupsRequest:
		return b.handleListGroups(), nil
	case *protocol.DescribeGroupsRequest:
		return b.handleDescribeGroups(r), nil
	case *protocol.DeleteGroupsRequest:
		return b.handleDeleteGroups(ctx, r), nil
	case *protocol.JoinClusterRequest:
		return b.handleJoinCluster(ctx, r), nil
	case *protocol.ReportLeadersRequest:
		return b.handleReportLeaders(ctx, r), nil
	case *protocol.NodeInfoRequest:
		return b.handleNodeInfo(), nil
	case *protocol.ReassignPartitionsRequest:
		return b.handleReassignPartitions(ctx, r), nil
	case *protocol.ReplicaStatusRequest:
		return b.handleReplicaStatus(r), nil
	case *protocol.CompleteReassignmentRequest:
		return b.handleCompleteReassignment(ctx, r), nil
	case *protocol.RemoveNodeRequest:
		return b.handleRemoveNode(ctx, r), nil
	case *protocol.DemoteReplicaRequest:
		return b.handleDemoteReplica(r), nil
	}
	// DecodeRequest only returns requests of known APIs; a new API added to
	// protocol without a handler here is a bug.
	panic(fmt.Sprintf("weir/broker: no handler for %T", req))
}

func (b *Broker) handleMetadata(r *protocol.MetadataRequest) *protocol.MetadataResponse {
	meta := b.controller.Metadata()
	resp := &protocol.MetadataResponse{ControllerID: b.controller.LeaderID()}
	if resp.ControllerID == 0 {
		resp.ControllerID = -1
	}
	for _, n := range meta.SortedNodes() {
		host, portText, err := net.SplitHostPort(n.ClientAddr)
		port, perr := strconv.Atoi(portText)
		if err != nil || perr != nil {
			continue
		}
		resp.Brokers = append(resp.Brokers, protocol.MetadataResponseBroker{NodeID: n.ID, Host: host, Port: int32(port)})
	}
	names := r.Topics
	if names == nil {
		for name := range meta.Topics {
			names = append(names, name)
		}
		slices.Sort(names)
	}
	for _, name := range names {
		t := meta.Topics[name]
		if t == nil {
			code := protocol.CodeUnknownTopicOrPartition
			if cluster.ValidateTopicName(name) != nil {
				code = protocol.CodeInvalidTopic
			}
			resp.Topics = append(resp.Topics, protocol.MetadataResponseTopic{ErrorCode: code, Name: name})
			continue
		}
		mt := protocol.MetadataResponseTopic{Name: name}
		for p, replicas := range t.Replicas {
			mp := protocol.MetadataResponsePartition{Partition: int32(p), LeaderID: -1, Replicas: replicas,
				ErrorCode: protocol.CodeLeaderNotAvailable}
			if rep := b.replicas.get(name, int32(p)); rep != nil {
				li := rep.partition.Leader()
				if id, ok := cluster.ParseNodeID(li.LeaderID); ok {
					mp.LeaderID = id
					mp.ErrorCode = protocol.CodeNone
				}
				mp.LeaderEpoch = int32(rep.partition.Raft().CurrentTerm())
				mp.HighWatermark = int64(rep.partition.HighWatermark())
				mp.LogStartOffset = int64(rep.partition.Log().FirstOffset())
			} else if l := t.Leader(int32(p)); l.Leader != 0 {
				// Hosted elsewhere: the leader its replicas last reported.
				// The offsets are the leader's to tell (ListOffsets).
				mp.LeaderID, mp.LeaderEpoch, mp.ErrorCode = l.Leader, int32(l.Epoch), protocol.CodeNone
				mp.HighWatermark, mp.LogStartOffset = -1, -1
			}
			mt.Partitions = append(mt.Partitions, mp)
		}
		resp.Topics = append(resp.Topics, mt)
	}
	return resp
}

func (b *Broker) handleCreateTopics(ctx context.Context, r *protocol.CreateTopicsRequest) *protocol.CreateTopicsResponse {
	ctx, cancel := withTimeoutMs(ctx, r.TimeoutMs)
	defer cancel()
	resp := &protocol.CreateTopicsResponse{}
	for _, t := range r.Topics {
		configs := map[string]*string{}
		for k, v := range b.cfg.TopicDefaults {
			configs[k] = &v
		}
		for _, c := range t.Configs {
			configs[c.Key] = &c.Value
		}
		err := b.controller.CreateTopic(ctx, t.Name, int(t.Partitions), int(t.ReplicationFactor), configs)
		if err == nil {
			// Answer once the partitions can take requests, so a client that
			// produces right after creating does not meet LeaderNotAvailable.
			// The topic exists either way: past the timeout (thousands of
			// partitions take a while to elect) say so, rather than a
			// timeout after which a retry would find TopicAlreadyExists.
			if werr := b.waitTopicReady(ctx, t.Name); werr != nil {
				b.logger.Info("topic created; some partitions are still electing their leaders", "topic", t.Name, "err", werr)
			}
		}
		resp.Topics = append(resp.Topics, protocol.CreateTopicsResponseTopic{Name: t.Name, ErrorCode: errorCode(err), ErrorMessage: errorMessage(err)})
	}
	return resp
}

// waitTopicReady waits until every partition of the topic has a leader
// that has reported itself in the metadata (so that every broker's
// Metadata names it).
func (b *Broker) waitTopicReady(ctx context.Context, name string) error {
	for {
		changed := b.controller.Changed()
		t := b.controller.Metadata().Topics[name]
		if t == nil {
			return fmt.Errorf("%w: %q", cluster.ErrUnknownTopic, name)
		}
		ready := true
		for p := range t.Replicas {
			if t.Leader(int32(p)).Leader == 0 {
				ready = false
				break
			}
		}
		if ready {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

func (b *Broker) handleDeleteTopics(ctx context.Context, r *protocol.DeleteTopicsRequest) *protocol.DeleteTopicsResponse {
	ctx, cancel := withTimeoutMs(ctx, r.TimeoutMs)
	defer cancel()
	resp := &protocol.DeleteTopicsResponse{}
	for _, name := range r.Names {
		err := b.controller.DeleteTopic(ctx, name)
		resp.Topics = append(resp.Topics, protocol.DeleteTopicsResponseTopic{Name: name, ErrorCode: errorCode(err), ErrorMessage: errorMessage(err)})
	}
	return resp
}

func (b *Broker) handleDescribeConfigs(r *protocol.DescribeConfigsRequest) *protocol.DescribeConfigsResponse {
	meta := b.controller.Metadata()
	def := cluster.DefaultTopicConfig()
	resp := &protocol.DescribeConfigsResponse{}
	for _, name := range r.Topics {
		t := meta.Topics[name]
		if t == nil {
			err := fmt.Errorf("%w: %q", cluster.ErrUnknownTopic, name)
			resp.Topics = append(resp.Topics, protocol.DescribeConfigsResponseTopic{Name: name, ErrorCode: errorCode(err), ErrorMessage: errorMessage(err)})
			continue
		}
		rt := protocol.DescribeConfigsResponseTopic{Name: name}
		for _, key := range cluster.TopicConfigKeys {
			v, _ := t.Config.Get(key)
			d, _ := def.Get(key)
			rt.Configs = append(rt.Configs, protocol.DescribeConfigsResponseConfig{Key: key, Value: v, IsDefault: v == d})
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (b *Broker) handleAlterConfigs(ctx context.Context, r *protocol.AlterConfigsRequest) *protocol.AlterConfigsResponse {
	ctx, cancel := withTimeoutMs(ctx, 0)
	defer cancel()
	resp := &protocol.AlterConfigsResponse{}
	for _, t := range r.Topics {
		changes := map[string]*string{}
		for _, c := range t.Configs {
			changes[c.Key] = c.Value
		}
		err := b.controller.AlterTopicConfig(ctx, t.Name, changes)
		resp.Topics = append(resp.Topics, protocol.AlterConfigsResponseTopic{Name: t.Name, ErrorCode: errorCode(err), ErrorMessage: errorMessage(err)})
	}
	return resp
}

func (b *Broker) handleInitProducerID(ctx context.Context) *protocol.InitProducerIDResponse {
	ctx, cancel := withTimeoutMs(ctx, 0)
	defer cancel()
	id, err := b.controller.AllocateProducerID(ctx)
	if err != nil {
		return &protocol.InitProducerIDResponse{ErrorCode: errorCode(err), ErrorMessage: errorMessage(err), ProducerID: -1, ProducerEpoch: -1}
	}
	return &protocol.InitProducerIDResponse{ProducerID: id}
}

// withTimeoutMs bounds ctx by a request's timeout_ms (<= 0: 30s).
func withTimeoutMs(ctx context.Context, ms int32) (context.Context, context.CancelFunc) {
	d := time.Duration(ms) * time.Millisecond
	if d <= 0 {
		d = 30 * time.Second
	}
	return context.WithTimeout(ctx, d)
}
