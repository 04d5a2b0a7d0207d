package broker

import (
	"context"

	"weir/cluster"
	"weir/protocol"
)

// controllerAddress is the controller's node id and client address, for
// the NotController answers of broker-to-broker requests; -1 and "" when
// there is no controller.
func (b *Broker) controllerAddress() (int32, string) {
	id := b.controller.LeaderID()
	if id == 0 {
		return -1, ""
	}
	return id, b.controller.Metadata().Nodes[id].ClientAddr
}

func (b *Broker) handleJoinCluster(ctx context.Context, r *protocol.JoinClusterRequest) *protocol.JoinClusterResponse {
	err := b.controller.AddNode(ctx, cluster.Node{ID: r.NodeID, ClientAddr: r.ClientAddress, PeerAddr: r.PeerAddress})
	if err == nil {
		// AddNode changes nothing for a node it has as it is; a controller
		// that was frozen would then answer with an old commit index.
		err = b.controller.VerifyLeader()
	}
	resp := &protocol.JoinClusterResponse{Version: r.Version, ErrorCode: errorCode(err), ErrorMessage: errorMessage(err)}
	resp.ControllerID, resp.ControllerAddress = b.notControllerAnswer(err)
	if err == nil {
		resp.MetadataIndex = int64(b.controller.CommitIndex())
	}
	return resp
}

func (b *Broker) handleReportLeaders(ctx context.Context, r *protocol.ReportLeadersRequest) *protocol.ReportLeadersResponse {
	reports := make([]cluster.LeaderReport, len(r.Leaders))
	for i, l := range r.Leaders {
		reports[i] = cluster.LeaderReport{Topic: l.Topic, TopicID: uint64(l.TopicID), Partition: l.Partition,
			PartitionLeader: cluster.PartitionLeader{Leader: l.LeaderID, Epoch: uint64(l.LeaderEpoch)}}
	}
	err := b.controller.ReportLeaders(ctx, reports)
	resp := &protocol.ReportLeadersResponse{ErrorCode: errorCode(err), ErrorMessage: errorMessage(err)}
	resp.ControllerID, resp.ControllerAddress = b.notControllerAnswer(err)
	return resp
}
