package partition

import (
	"time"

	"github.com/hashicorp/raft"

	"weir/internal/raftrole"
)

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
		if err := raftrole.Apply(p.raft, p.cfg.HeartbeatTimeout, p.cfg.ElectionTimeout); err != nil {
			p.logger.Warn("heartbeat timeout", "err", err)
		}
		// Observations may be dropped; each wake-up reads the current state.
		addr, id := p.raft.LeaderWithID()
		info := LeaderInfo{LeaderID: id, LeaderAddress: addr, Term: p.raft.CurrentTerm()}
		if p.raft.State() == raft.Leader {
			if !p.ready.Load() && p.raft.Barrier(p.cfg.ElectionTimeout).Error() == nil && p.raft.State() == raft.Leader {
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
