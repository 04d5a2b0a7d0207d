package broker

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/raft"

	"weir/cluster"
	"weir/partition"
	"weir/protocol"
)

// Timing of the replica mover (moveReplicas).
const (
	// moveInterval is how often a partition leader looks for work: a
	// reassignment step, or leadership to hand back to the preferred
	// replica.
	moveInterval = 500 * time.Millisecond
	// balanceBackoff is how long a leader waits before trying again to
	// hand leadership to a partition's preferred replica after a transfer;
	// balanceRecheck, after finding the preferred replica behind.
	balanceBackoff = 5 * time.Second
	balanceRecheck = time.Second
	// peerCallTimeout bounds one broker-to-broker request of the mover.
	peerCallTimeout = 2 * time.Second
	// membershipTimeout bounds one Raft membership change of the mover.
	membershipTimeout = 5 * time.Second
)

// moveReplicas runs on every node: for each partition this node leads, it
// advances the partition's reassignment by a step (advanceMove) or, with
// none under way, makes a caught-up non-voter replica a voter again
// (promoteCaughtUp) or hands leadership to the partition's preferred
// replica when that is another caught-up voter (balanceLeader), so
// leadership spreads back over the nodes after a failed node returns. For
// replicas that lost their data it asks their leaders to demote them
// (demoteLost).
func (b *Broker) moveReplicas() {
	defer b.wg.Done()
	select {
	case <-b.ready:
	case <-b.stop:
		return
	}
	balanceAt := map[replicaKey]time.Time{} // when to try balancing next
	tick := time.NewTicker(moveInterval)
	defer tick.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-tick.C:
		}
		meta := b.controller.Metadata()
		hosted := b.replicas.all()
		if len(balanceAt) > len(hosted) { // some replicas are gone
			keep := make(map[replicaKey]time.Time, len(hosted))
			for _, r := range hosted {
				if at, ok := balanceAt[r.key]; ok {
					keep[r.key] = at
				}
			}
			balanceAt = keep
		}
		for _, r := range hosted {
			if b.ctx.Err() != nil {
				return
			}
			t := meta.Topics[r.key.topic]
			if t == nil || t.ID != r.topicID {
				continue
			}
			if r.lost.Load() {
				b.demoteLost(r, meta)
			}
			if !r.partition.IsLeader() {
				continue
			}
			if target := t.Target(r.key.partition); target != nil {
				b.advanceMove(r, t, target, meta)
				continue
			}
			if b.promoteCaughtUp(r, t, meta) {
				continue
			}
			if now := time.Now(); now.After(balanceAt[r.key]) {
				balanceAt[r.key] = now.Add(b.balanceLeader(r, t, meta))
			}
		}
	}
}

// advanceMove takes one step of a partition's move to target: add a
// missing target replica as a non-voter; make a caught-up non-voter a
// voter; once every target replica votes, hand leadership over if this
// node is leaving, else remove the replicas not in the target; once the
// group is the target, report completion to the controller.
func (b *Broker) advanceMove(r *replica, t *cluster.Topic, target []cluster.NodeID, meta *cluster.Metadata) {
	rn := r.partition.Raft()
	f := rn.GetConfiguration()
	if f.Error() != nil {
		return
	}
	servers := f.Configuration().Servers
	suffrage := map[cluster.NodeID]raft.ServerSuffrage{}
	for _, s := range servers {
		if id, ok := cluster.ParseNodeID(s.ID); ok {
			suffrage[id] = s.Suffrage
		}
	}
	log := b.logger.With("partition", r.key, "target", target)
	for _, n := range target {
		node, ok := meta.Nodes[n]
		if !ok {
			return
		}
		s, in := suffrage[n]
		switch {
		case !in:
			log.Info("reassignment: adding a replica as a non-voter", "node", n)
			if err := rn.AddNonvoter(cluster.ServerID(n), raft.ServerAddress(node.PeerAddr), 0, membershipTimeout).Error(); err != nil {
				log.Warn("reassignment: add non-voter", "node", n, "err", err)
			}
			return
		case s != raft.Voter:
			if !b.caughtUp(r, node) {
				return // not yet: next tick
			}
			log.Info("reassignment: the new replica caught up; making it a voter", "node", n)
			if err := rn.AddVoter(cluster.ServerID(n), raft.ServerAddress(node.PeerAddr), 0, membershipTimeout).Error(); err != nil {
				log.Warn("reassignment: add voter", "node", n, "err", err)
			}
			return
		}
	}
	for _, s := range servers {
		id, _ := cluster.ParseNodeID(s.ID)
		if slices.Contains(target, id) {
			continue
		}
		if id == b.cfg.NodeID {
			// Leaving: a target replica (a caught-up voter) leads from
			// here and removes this one.
			to := meta.Nodes[target[0]]
			log.Info("reassignment: this leader is leaving; handing leadership over", "to", to.ID)
			if err := rn.LeadershipTransferToServer(cluster.ServerID(to.ID), raft.ServerAddress(to.PeerAddr)).Error(); err != nil {
				log.Warn("reassignment: leadership transfer", "err", err)
			}
			return
		}
		log.Info("reassignment: removing a replica", "node", id)
		if err := rn.RemoveServer(s.ID, 0, membershipTimeout).Error(); err != nil {
			log.Warn("reassignment: remove replica", "node", id, "err", err)
			return
		}
	}
	ctx, cancel := context.WithTimeout(b.ctx, peerCallTimeout)
	defer cancel()
	if err := b.completeMove(ctx, r, target); err != nil {
		log.Warn("reassignment: reporting completion", "err", err)
		return
	}
	log.Info("reassignment done")
}

// caughtUp asks node whether its replica of r holds every entry this
// leader had committed before the question.
func (b *Broker) caughtUp(r *replica, node cluster.Node) bool {
	commit := r.partition.Raft().CommitIndex()
	ctx, cancel := context.WithTimeout(b.ctx, peerCallTimeout)
	defer cancel()
	resp, err := b.peers.call(ctx, node.ClientAddr, &protocol.ReplicaStatusRequest{
		Topic: r.key.topic, TopicID: int64(r.topicID), Partition: r.key.partition})
	if err != nil {
		return false
	}
	st := resp.(*protocol.ReplicaStatusResponse)
	return st.ErrorCode == protocol.CodeNone && uint64(st.LastIndex) >= commit
}

// completeMove tells the controller that r's group now has exactly target.
func (b *Broker) completeMove(ctx context.Context, r *replica, target []cluster.NodeID) error {
	if b.controller.IsLeader() {
		return b.controller.CompleteReassignment(ctx, r.key.topic, r.topicID, r.key.partition, target)
	}
	id, addr := b.controllerAddress()
	if id < 0 || addr == "" || id == b.cfg.NodeID {
		return cluster.ErrNotController
	}
	resp, err := b.peers.call(ctx, addr, &protocol.CompleteReassignmentRequest{
		Topic: r.key.topic, TopicID: int64(r.topicID), Partition: r.key.partition, Replicas: target})
	if err != nil {
		return err
	}
	cr := resp.(*protocol.CompleteReassignmentResponse)
	return protocol.ErrorForCodeMessage(cr.ErrorCode, cr.ErrorMessage)
}

// balanceLeader hands r's leadership to the partition's preferred replica
// (the first of its replicas) if that is another node, a voter, and caught
// up. It returns how long to wait before looking again.
func (b *Broker) balanceLeader(r *replica, t *cluster.Topic, meta *cluster.Metadata) time.Duration {
	replicas := t.Replicas[r.key.partition]
	if len(replicas) < 2 || replicas[0] == b.cfg.NodeID {
		return 0
	}
	preferred, ok := meta.Nodes[replicas[0]]
	if !ok {
		return 0
	}
	rn := r.partition.Raft()
	f := rn.GetConfiguration()
	if f.Error() != nil {
		return 0
	}
	if !slices.ContainsFunc(f.Configuration().Servers, func(s raft.Server) bool {
		return s.ID == cluster.ServerID(preferred.ID) && s.Suffrage == raft.Voter
	}) {
		return 0
	}
	if !b.caughtUp(r, preferred) {
		return balanceRecheck
	}
	b.logger.Info("handing leadership to the preferred replica", "partition", r.key, "to", preferred.ID)
	if err := rn.LeadershipTransferToServer(cluster.ServerID(preferred.ID), raft.ServerAddress(preferred.PeerAddr)).Error(); err != nil {
		b.logger.Warn("leadership transfer", "partition", r.key, "to", preferred.ID, "err", err)
	}
	return balanceBackoff
}

// demoteLost asks r's leader to make this replica, which lost its data, a
// non-voter until it has caught up (then promoteCaughtUp on the leader
// makes it a voter again). An empty voter could otherwise help elect a
// leader that lacks entries this node acknowledged before it lost them.
func (b *Broker) demoteLost(r *replica, meta *cluster.Metadata) {
	if r.partition.IsLeader() {
		// It won leadership, which only a caught-up replica can (by a
		// transfer to the preferred replica, or an election): nothing to
		// demote any more.
		b.logger.Info("a replica that lost its data caught up and leads: no demotion needed", "partition", r.key, "node", b.cfg.NodeID)
		r.lost.Store(false)
		return
	}
	id, ok := cluster.ParseNodeID(r.partition.Leader().LeaderID)
	if !ok || id == b.cfg.NodeID {
		return // no leader known yet
	}
	leader, ok := meta.Nodes[id]
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, peerCallTimeout+membershipTimeout)
	defer cancel()
	resp, err := b.peers.call(ctx, leader.ClientAddr, &protocol.DemoteReplicaRequest{
		Topic: r.key.topic, TopicID: int64(r.topicID), Partition: r.key.partition, NodeID: b.cfg.NodeID})
	if err != nil {
		return
	}
	if dr := resp.(*protocol.DemoteReplicaResponse); dr.ErrorCode == protocol.CodeNone {
		b.logger.Info("demoted to a non-voter until caught up", "partition", r.key)
		r.lost.Store(false)
	}
}

func (b *Broker) handleDemoteReplica(r *protocol.DemoteReplicaRequest) *protocol.DemoteReplicaResponse {
	rep := b.replicas.get(r.Topic, r.Partition)
	var err error
	switch {
	case rep == nil || rep.topicID != uint64(r.TopicID):
		err = errUnknownPartition
	case !rep.partition.IsLeader():
		err = partition.ErrNotLeader
	case r.NodeID == b.cfg.NodeID:
		err = fmt.Errorf("%w: a leader does not demote itself", cluster.ErrInvalidNode)
	default:
		rn := rep.partition.Raft()
		f := rn.GetConfiguration()
		if err = f.Error(); err != nil {
			break
		}
		if slices.ContainsFunc(f.Configuration().Servers, func(s raft.Server) bool {
			return s.ID == cluster.ServerID(r.NodeID) && s.Suffrage == raft.Voter
		}) {
			b.logger.Info("demoting a replica that lost its data", "partition", rep.key, "node", r.NodeID)
			err = rn.DemoteVoter(cluster.ServerID(r.NodeID), 0, membershipTimeout).Error()
		}
	}
	return &protocol.DemoteReplicaResponse{ErrorCode: errorCode(err), ErrorMessage: errorMessage(err)}
}

// promoteCaughtUp makes a replica of r's partition that is a non-voter
// (demoted after losing its data, or left so by a leader that died
// mid-move) a voter again once it has caught up. It reports whether it
// found such a replica.
func (b *Broker) promoteCaughtUp(r *replica, t *cluster.Topic, meta *cluster.Metadata) bool {
	rn := r.partition.Raft()
	f := rn.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, s := range f.Configuration().Servers {
		id, ok := cluster.ParseNodeID(s.ID)
		node, known := meta.Nodes[id]
		if !ok || !known || s.Suffrage == raft.Voter || !slices.Contains(t.Replicas[r.key.partition], id) {
			continue
		}
		if b.caughtUp(r, node) {
			b.logger.Info("a replica caught up: making it a voter again", "partition", r.key, "node", id)
			if err := rn.AddVoter(s.ID, s.Address, 0, membershipTimeout).Error(); err != nil {
				b.logger.Warn("promote replica", "partition", r.key, "node", id, "err", err)
			}
		}
		return true
	}
	return false
}

func (b *Broker) handleReplicaStatus(r *protocol.ReplicaStatusRequest) *protocol.ReplicaStatusResponse {
	rep := b.replicas.get(r.Topic, r.Partition)
	if rep == nil || rep.topicID != uint64(r.TopicID) {
		return &protocol.ReplicaStatusResponse{ErrorCode: errorCode(errUnknownPartition), ErrorMessage: errorMessage(errUnknownPartition)}
	}
	return &protocol.ReplicaStatusResponse{LastIndex: int64(rep.partition.Raft().LastIndex())}
}

func (b *Broker) handleReassignPartitions(ctx context.Context, r *protocol.ReassignPartitionsRequest) *protocol.ReassignPartitionsResponse {
	moves := make([]cluster.Reassignment, len(r.Partitions))
	for i, p := range r.Partitions {
		moves[i] = cluster.Reassignment{Partition: p.Partition, Replicas: p.Replicas}
	}
	err := b.controller.ReassignPartitions(ctx, r.Topic, moves)
	resp := &protocol.ReassignPartitionsResponse{ErrorCode: errorCode(err), ErrorMessage: errorMessage(err)}
	resp.ControllerID, resp.ControllerAddress = b.notControllerAnswer(err)
	return resp
}

func (b *Broker) handleCompleteReassignment(ctx context.Context, r *protocol.CompleteReassignmentRequest) *protocol.CompleteReassignmentResponse {
	err := b.controller.CompleteReassignment(ctx, r.Topic, uint64(r.TopicID), r.Partition, r.Replicas)
	resp := &protocol.CompleteReassignmentResponse{ErrorCode: errorCode(err), ErrorMessage: errorMessage(err)}
	resp.ControllerID, resp.ControllerAddress = b.notControllerAnswer(err)
	return resp
}

func (b *Broker) handleRemoveNode(ctx context.Context, r *protocol.RemoveNodeRequest) *protocol.RemoveNodeResponse {
	err := b.controller.RemoveNode(ctx, r.NodeID)
	resp := &protocol.RemoveNodeResponse{ErrorCode: errorCode(err), ErrorMessage: errorMessage(err)}
	resp.ControllerID, resp.ControllerAddress = b.notControllerAnswer(err)
	return resp
}

// notControllerAnswer is the controller's id and, when err is that this
// node is not the controller, its address, for the answers of
// controller-only requests.
func (b *Broker) notControllerAnswer(err error) (int32, string) {
	id, addr := b.controllerAddress()
	if err == nil {
		addr = ""
	}
	return id, addr
}
