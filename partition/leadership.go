package partition

import (
	"time"

	"github.com/hashicorp/raft"

	"weir/internal/raftfuture"
	"weir/internal/raftrole"
)

// firstElectionDelay is how much longer than HeartbeatTimeout the replicas
// of a new partition other than its first (preferred) one wait before
// they stand for election, until some leader is known. Without it every
// replica of every partition of a new topic stands at once: with 1,000
// partitions, 3,000 candidates split each other's votes and, on two
// cores, the elections outran their own RPCs, the stream opens piled up
// and no partition got a leader.
const firstElectionDelay = 10

// followerTimeout is the heartbeat timeout this replica follows with.
func (p *Partition) followerTimeout() time.Duration {
	if p.awaitingFirstLeader.Load() {
		return p.cfg.HeartbeatTimeout * firstElectionDelay
	}
	return p.cfg.HeartbeatTimeout
}

// watchLeadership follows Raft's view of the leader. When this replica
// becomes leader it waits (Barrier) until it has applied every entry of
// earlier terms, so the high watermark and the producers' sequences are
// complete, and only then takes produce requests.
func (p *Partition) watchLeadership() {
	obs := make(chan raft.Observation, 16)
	observer := raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	p.raft.RegisterObserver(observer)
	defer p.raft.DeregisterObserver(observer)
	leaderCh := p.raft.LeaderCh()
	var last LeaderInfo
	for {
		// Observations may be dropped; each wake-up reads the current state.
		addr, id := p.raft.LeaderWithID()
		if id != "" {
			p.awaitingFirstLeader.Store(false)
		}
		follower := p.followerTimeout()
		if err := raftrole.Apply(p.raft, follower, max(p.cfg.ElectionTimeout, follower)); err != nil {
			p.logger.Warn("heartbeat timeout", "err", err)
		}
		info := LeaderInfo{LeaderID: id, LeaderAddress: addr, Term: p.raft.CurrentTerm()}
		if p.raft.State() == raft.Leader {
			if !p.ready.Load() && raftfuture.Error(p.raft.Barrier(p.cfg.ElectionTimeout), p.stop) == nil && p.raft.State() == raft.Leader {
				p.produceMu.Lock()
				p.leaderView = nil // rebuilt from the committed table on first use
				p.produceMu.Unlock()
				p.ready.Store(true)
			}
			info.IsLeader = p.ready.Load()
		} else {
			p.ready.Store(false)
		}
		p.leader.Store(&info)
		if info != last {
			last = info
			p.logger.Info("leader", "dir", p.cfg.Dir, "leader", info.LeaderID, "ready", info.IsLeader)
			if p.cfg.OnLeaderChange != nil {
				p.cfg.OnLeaderChange(info)
			}
		}
		var timer <-chan time.Time
		if p.raft.State() == raft.Leader && !p.ready.Load() {
			// The barrier failed: try again soon, not in a tight loop.
			timer = time.After(10 * time.Millisecond)
		}
		select {
		case <-p.stop:
			return
		case <-leaderCh:
		case <-obs:
		case <-timer:
		}
	}
}
