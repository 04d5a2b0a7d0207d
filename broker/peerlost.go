package broker

import "github.com/hashicorp/raft"

// peerLost hears from the peer layer that the session carrying the
// heartbeats of the node at addr closed: the node died, or the connection
// broke. For each group here that it leads (the metadata group and the
// partitions), one follower stands for election at once
// (peer.Transport.StandForElection), rather than every follower waiting
// out its heartbeat timeout and then a pre-vote: a crashed leader is
// replaced in milliseconds, as in a leadership transfer. It runs in a peer
// goroutine and does not block.
func (b *Broker) peerLost(addr string) {
	select {
	case <-b.ready:
	default:
		return // b.controller is not set yet, and no partition is open
	}
	lost := raft.ServerAddress(addr)
	self := raft.ServerAddress(b.mux.Addr().String())
	stood := 0
	if standForElection(b.controller.Raft(), b.metaTrans, lost, self) {
		stood++
	}
	for _, r := range b.replicas.all() {
		if standForElection(r.partition.Raft(), r.transport, lost, self) {
			stood++
		}
	}
	b.logger.Info("lost the peer connection of a node", "peer", addr, "elections started", stood)
}

// standForElection makes r, at address self, stand for election if it
// follows the leader at lost and is its successor. It reports whether r
// stood.
func standForElection(r *raft.Raft, trans raft.Transport, lost, self raft.ServerAddress) bool {
	if leader, _ := r.LeaderWithID(); leader != lost || r.State() != raft.Follower {
		return false
	}
	f := r.GetConfiguration()
	if f.Error() != nil || successor(f.Configuration().Servers, lost) != self {
		return false
	}
	st, ok := trans.(interface{ StandForElection() bool })
	return ok && st.StandForElection()
}

// successor is the replica that stands for election when the leader at
// lost is gone: the first voter of the group's configuration other than
// it. One per group, the same on every node: two standing at once would
// split the vote. If its log is behind, the other voters refuse it, and
// the group elects a leader when its timeouts run out, as without this.
func successor(servers []raft.Server, lost raft.ServerAddress) raft.ServerAddress {
	for _, s := range servers {
		if s.Suffrage == raft.Voter && s.Address != lost {
			return s.Address
		}
	}
	return ""
}
