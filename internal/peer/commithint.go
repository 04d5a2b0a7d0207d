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
	// NB: an older append answered late leaves the newer entries: within a
	// term a follower drops entries only by losing them (noteCommit).
	if index >= f.index {
		f.index, f.entryTerm = index, term
	}
	f.commit = max(f.commit, min(req.LeaderCommitIndex, index))
	f.appended = true
	t.mu.followers[target] = f
}

// commitHint returns the hint for the heartbeat of term to target, if it
// needs one, and the last entry the follower is known to hold before the
// heartbeat goes (see noteCommit).
func (t *Transport) commitHint(target raft.ServerAddress, term uint64) (commitHint, uint64) {
	r := t.raft.Load()
	if r == nil {
		return commitHint{}, 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.mu.followers[target]
	if !ok || f.term != term {
		return commitHint{}, 0
	}
	if f.appended {
		// Appends are flowing: the next one carries the commit index.
		f.appended = false
		t.mu.followers[target] = f
		return commitHint{}, f.index
	}
	commit := min(r.CommitIndex(), f.index)
	// NB: checked after reading the commit index. A node that led in term
	// and then followed a later leader may know a commit index covering
	// that leader's entries, which can differ from this term's entries at
	// the same indexes: Raft may still send a heartbeat of the old term.
	if commit <= f.commit || r.State() != raft.Leader || r.CurrentTerm() != term {
		return commitHint{}, f.index
	}
	return commitHint{commit: commit, prevIndex: f.index, prevTerm: f.entryTerm}, f.index
}

// noteCommit records the commit index and last log index a follower
// reported in its answer to a heartbeat of term, sent when it was known to
// hold the entry at known. Its latest report wins: a follower that
// restarted knows less than before. A follower whose log is shorter than
// what it had acknowledged before the heartbeat went (it lost its data, or
// unsynced entries in a crash) gets no hints until an append succeeds
// again: Raft would refuse each one. (An append acknowledged after the
// heartbeat went may have reached the follower after the heartbeat: its
// entries do not count.) It reports whether the follower lost entries.
func (t *Transport) noteCommit(target raft.ServerAddress, term, commit, lastLog, known uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.mu.followers[target]
	if !ok || f.term != term {
		return false
	}
	if lastLog < known {
		delete(t.mu.followers, target)
		return true
	}
	f.commit = min(commit, f.index)
	t.mu.followers[target] = f
	return false
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
