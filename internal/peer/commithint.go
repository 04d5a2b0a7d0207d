package peer

import (
	"time"

	"github.com/hashicorp/raft"
)

// Commit hints: an idle leader tells its followers the commit index on its
// coalesced heartbeats.
//
// A Raft follower learns what is committed only from the leader's next
// append. hashicorp/raft sends an idle follower an empty append every
// CommitTimeout (1 to 2 times it) for that, one RPC per group and
// follower through both nodes' main loops: at 1,000 replicas per node and
// a CommitTimeout of 1 s, two thirds of an idle node's peer traffic (2,650
// writes a second). A follower's commit index matters only once a burst of
// appends ends, though; while appends flow each one carries it.
//
// So the transport watches the appends it carries. When a follower has had
// no append since its last heartbeat and has not yet learned everything
// committed that it holds, the next heartbeat for it carries a hint: the
// commit index, at most the last entry the follower acknowledged in this
// term, and that entry's index and term. The follower's transport hands
// Raft's main loop the empty append the hint stands for, as if the leader
// had sent it; Raft checks it as any append (term, previous entry). Its
// answers to heartbeats carry its commit index, which ends the hints. This
// is etcd's heartbeat commit (commit = min(match, committed)) through
// hashicorp/raft's API, and it lets a partition's CommitTimeout be long.

// commitHint is a commit index for a follower, and the entry it holds that
// the index may not pass; commit 0 is no hint.
type commitHint struct {
	commit    uint64
	prevIndex uint64
	prevTerm  uint64
}

// followerLog is what a leader's transport knows of one follower's log
// from the appends it carried in one term.
type followerLog struct {
	term uint64
	// index and entryTerm: the last entry the follower acknowledged in term.
	index, entryTerm uint64
	// commit is a commit index the follower is known to have learned.
	commit uint64
	// appended: an append succeeded since the last heartbeat's hint check.
	appended bool
}

// noteAppend records what a follower's answer to an append tells of its
// log. Every successful append passes here, pipelined or not.
func (t *Transport) noteAppend(target raft.ServerAddress, req *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) {
	if !resp.Success || resp.Term != req.Term {
		return
	}
	index, term := req.PrevLogEntry, req.PrevLogTerm
	if n := len(req.Entries); n > 0 {
		index, term = req.Entries[n-1].Index, req.Entries[n-1].Term
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.mu.followers[target]
	if f.term != req.Term {
		f = followerLog{term: req.Term}
	}
	// NB: appends of one term never make a follower drop entries of that
	// term: an older append answered late still leaves the newer ones.
	if index >= f.index {
		f.index, f.entryTerm = index, term
	}
	f.commit = max(f.commit, min(req.LeaderCommitIndex, index))
	f.appended = true
	t.mu.followers[target] = f
}

// commitHint returns the hint for the heartbeat of term to target, if it
// needs one.
func (t *Transport) commitHint(target raft.ServerAddress, term uint64) commitHint {
	r := t.raft.Load()
	if r == nil {
		return commitHint{}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.mu.followers[target]
	if !ok || f.term != term {
		return commitHint{}
	}
	if f.appended {
		// Appends are flowing: the next one carries the commit index.
		f.appended = false
		t.mu.followers[target] = f
		return commitHint{}
	}
	commit := min(r.CommitIndex(), f.index)
	if commit <= f.commit {
		return commitHint{}
	}
	return commitHint{commit: commit, prevIndex: f.index, prevTerm: f.entryTerm}
}

// noteCommit records the commit index a follower reported in its answer to
// a heartbeat of term.
func (t *Transport) noteCommit(target raft.ServerAddress, term, commit uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f, ok := t.mu.followers[target]; ok && f.term == term {
		f.commit = max(f.commit, min(commit, f.index))
		t.mu.followers[target] = f
	}
}

// afterHeartbeat completes r, the answer to the heartbeat e: if the node
// took the heartbeat, r gets its commit index, and e's commit hint goes to
// Raft if it tells more.
func (t *Transport) afterHeartbeat(e *heartbeatEntry, r heartbeatResult) heartbeatResult {
	if r.err != "" || !r.resp.Success {
		return r
	}
	if rn := t.raft.Load(); rn != nil {
		r.commit = rn.CommitIndex()
	}
	if e.hint.commit > r.commit {
		t.applyCommitHint(&e.req, e.hint)
	}
	return r
}

// commitHintWait bounds how long a hint's append waits for Raft's main
// loop; one not taken by then is dropped, and the leader hints again.
const commitHintWait = time.Second

// applyCommitHint hands Raft's main loop the empty append that hint, on the
// heartbeat hb, stands for; it returns at once. A group has one hint in
// Raft's hands at a time: one arriving meanwhile is dropped.
func (t *Transport) applyCommitHint(hb *raft.AppendEntriesRequest, hint commitHint) {
	if !t.hinting.CompareAndSwap(false, true) {
		return
	}
	// NB: hb's byte slices point into its frame's body, which nothing
	// reuses.
	req := &raft.AppendEntriesRequest{RPCHeader: hb.RPCHeader, Term: hb.Term, Leader: hb.Leader,
		PrevLogEntry: hint.prevIndex, PrevLogTerm: hint.prevTerm, LeaderCommitIndex: hint.commit}
	taken := func() { t.mux.commitHintsApplied.Add(1) }
	if !t.handToRaft(req, commitHintWait, taken, func() { t.hinting.Store(false) }) {
		t.hinting.Store(false)
	}
}
