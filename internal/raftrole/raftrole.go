// Package raftrole runs a hashicorp/raft node with a heartbeat timeout per
// role.
//
// Raft's HeartbeatTimeout does two jobs. A follower that has heard nothing
// from its leader for that long stands for election (it looks at random
// intervals of one to two timeouts, so it notices after one to three). A
// leader heartbeats each follower every tenth to fifth of it. The first
// sets how soon a dead leader is replaced, the second what an idle group
// costs; with one value, fast failover costs heartbeats, and a node hosts
// a thousand groups. Apply gives a leader a timeout 5/3 of its followers':
// with 300 ms, followers notice a silent leader after 0.3-0.9 s while
// leaders heartbeat every 50-100 ms, as often as with a single 500 ms
// timeout, which took 0.5-1.5 s to notice. A follower still hears from its
// leader at least three times within its timeout.
package raftrole

import (
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// LeaderTimeout is the HeartbeatTimeout a leader runs with when its
// followers run with followerTimeout.
func LeaderTimeout(followerTimeout time.Duration) time.Duration {
	return followerTimeout * 5 / 3
}

// Apply gives r the timeouts of the role it has now: followerTimeout and
// electionTimeout while it follows (or stands for election), and
// LeaderTimeout(followerTimeout) while it leads (with an election timeout
// at least that, which Raft requires and a leader does not use). Start r
// with followerTimeout and electionTimeout, and call Apply whenever its
// leadership may have changed (on its LeaderCh or leader observations).
// Raft reloads the settings at once: a follower's election timer is
// rearmed, a leader's heartbeat loops read them each round.
func Apply(r *raft.Raft, followerTimeout, electionTimeout time.Duration) error {
	heartbeat, election := followerTimeout, electionTimeout
	if r.State() == raft.Leader {
		heartbeat = LeaderTimeout(followerTimeout)
		election = max(electionTimeout, heartbeat)
	}
	rc := r.ReloadableConfig()
	if rc.HeartbeatTimeout == heartbeat && rc.ElectionTimeout == election {
		return nil
	}
	rc.HeartbeatTimeout, rc.ElectionTimeout = heartbeat, election
	if err := r.ReloadConfig(rc); err != nil {
		return fmt.Errorf("weir/raftrole: heartbeat timeout %v: %w", heartbeat, err)
	}
	return nil
}
