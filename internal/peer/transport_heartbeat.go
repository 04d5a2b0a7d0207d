package peer

import (
	"time"

	"github.com/hashicorp/raft"
)

// lastBeat is when the last heartbeat of a term that a follower answered
// successfully was sent.
type lastBeat struct {
	term uint64
	sent time.Time
}

// heartbeat sends a Raft heartbeat to target, coalesced with the node's
// other heartbeats, once (Raft retries heartbeats itself, with a capped
// backoff). With a HeartbeatPeriod and a bound Raft node, a heartbeat asked
// for within the period after one of the same term that target answered
// successfully waits for the period to end before it goes.
//
// Why: hashicorp/raft sends each follower a heartbeat every 1/10 to 2/10 of
// HeartbeatTimeout (30 to 60 ms with weir's 300 ms), ten or more per
// follower timeout, and that interval cannot be set apart from the
// timeouts. With a thousand partitions per node, Raft's heartbeat loops
// (a timer, a goroutine wake-up and an RPC each time) were most of an idle
// node's CPU. A follower needs a few per timeout: the broker's period is a
// third of HeartbeatTimeout. Raft's heartbeat goroutine waits here, so its
// loop turns once per period; a heartbeat that failed is not waited for.
//
// The wait ends early when the node's Raft state changes (see Bind): a
// leader that steps down or shuts down does not wait for a heartbeat it no
// longer wants, which gets an unsuccessful answer without being sent.
// raft.VerifyLeader also waits for heartbeats: a group that uses it keeps
// HeartbeatPeriod zero.
func (t *Transport) heartbeat(target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	r := t.raft.Load()
	period := t.cfg.HeartbeatPeriod
	if period > 0 && r != nil {
		t.mu.Lock()
		last, ok := t.mu.beats[target]
		t.mu.Unlock()
		if ok && last.term == args.Term {
			if wait := time.Until(last.sent.Add(period)); wait > 0 {
				t.mux.heartbeatsWaiting.Add(1)
				stillLeads := t.sleepWhileLeading(r, args.Term, wait)
				t.mux.heartbeatsWaiting.Add(-1)
				if !stillLeads {
					*resp = raft.AppendEntriesResponse{Term: args.Term}
					return nil
				}
			}
		}
	}
	sent := time.Now()
	err := t.mux.hb.call(string(target), t.group, args, resp)
	if period > 0 && r != nil {
		t.mu.Lock()
		if err == nil && resp.Success && resp.Term == args.Term {
			t.mu.beats[target] = lastBeat{term: args.Term, sent: sent}
		} else {
			delete(t.mu.beats, target) // the next one goes at once
		}
		t.mu.Unlock()
	}
	return err
}

// sleepWhileLeading waits d, or less if r's state changes or the transport
// closes, and reports whether r still leads in term afterwards.
func (t *Transport) sleepWhileLeading(r *raft.Raft, term uint64, d time.Duration) bool {
	t.mu.Lock()
	changed := t.mu.stateChanged
	t.mu.Unlock()
	// NB: checked after taking the channel: a change from here on closes it.
	if !leadsInTerm(r, term) {
		return false
	}
	timer := time.NewTimer(d)
	select {
	case <-timer.C:
	case <-changed:
	case <-t.shutdownCh:
	}
	timer.Stop()
	return !t.IsShutdown() && leadsInTerm(r, term)
}

func leadsInTerm(r *raft.Raft, term uint64) bool {
	return r.State() == raft.Leader && r.CurrentTerm() == term
}

// observeState wakes every sleepWhileLeading: it is called (by Raft, see
// Bind) whenever the bound node's state changes.
func (t *Transport) observeState() {
	t.mu.Lock()
	if t.mu.stateChanged != nil { // nil only in tests' bare Transports
		close(t.mu.stateChanged)
	}
	t.mu.stateChanged = make(chan struct{})
	t.mu.Unlock()
}
