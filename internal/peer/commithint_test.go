package peer

import (
	"testing"

	"github.com/hashicorp/raft"
)

// What a leader's transport knows of a follower's log: appends raise it,
// late answers to older appends do not lower it, and a heartbeat answer
// that shows entries lost since the heartbeat went forgets it.
func TestFollowerLogBookkeeping(t *testing.T) {
	tr := &Transport{}
	tr.mu.followers = map[raft.ServerAddress]followerLog{}
	ok := &raft.AppendEntriesResponse{Term: 3, Success: true}
	check := func(want followerLog, present bool) {
		t.Helper()
		got, found := tr.mu.followers["f"]
		if found != present || got != want {
			t.Fatalf("follower %+v (present %v), want %+v (present %v)", got, found, want, present)
		}
	}
	tr.noteAppend("f", &raft.AppendEntriesRequest{Term: 3, PrevLogEntry: 9, PrevLogTerm: 2, LeaderCommitIndex: 8,
		Entries: []*raft.Log{{Index: 10, Term: 3}, {Index: 11, Term: 3}}}, ok)
	check(followerLog{term: 3, index: 11, entryTerm: 3, commit: 8, appended: true}, true)
	// A late answer to an older, empty append.
	tr.noteAppend("f", &raft.AppendEntriesRequest{Term: 3, PrevLogEntry: 9, PrevLogTerm: 2, LeaderCommitIndex: 9}, ok)
	check(followerLog{term: 3, index: 11, entryTerm: 3, commit: 9, appended: true}, true)
	// Refused appends and answers of another term teach nothing.
	tr.noteAppend("f", &raft.AppendEntriesRequest{Term: 3, PrevLogEntry: 20, PrevLogTerm: 3}, &raft.AppendEntriesResponse{Term: 3})
	if tr.noteCommit("f", 2, 11, 11, 11) {
		t.Fatal("an answer of another term counted")
	}
	check(followerLog{term: 3, index: 11, entryTerm: 3, commit: 9, appended: true}, true)
	// A heartbeat answer: the follower's commit index, never past what it
	// is known to hold.
	if tr.noteCommit("f", 3, 12, 11, 11) {
		t.Fatal("a follower holding its entries counted as losing them")
	}
	check(followerLog{term: 3, index: 11, entryTerm: 3, commit: 11, appended: true}, true)
	// A heartbeat sent before entry 11 was acknowledged may be answered
	// before the follower took it.
	if tr.noteCommit("f", 3, 9, 10, 10) {
		t.Fatal("an answer that may predate the append counted as a loss")
	}
	check(followerLog{term: 3, index: 11, entryTerm: 3, commit: 9, appended: true}, true)
	// One sent after, answered with a shorter log: the follower lost
	// entries, and gets no hints until its next append.
	if !tr.noteCommit("f", 3, 9, 10, 11) {
		t.Fatal("a shorter log than acknowledged not reported")
	}
	check(followerLog{}, false)
	// A new term starts afresh.
	tr.noteAppend("f", &raft.AppendEntriesRequest{Term: 3, PrevLogEntry: 11, PrevLogTerm: 3}, ok)
	tr.noteAppend("f", &raft.AppendEntriesRequest{Term: 4, PrevLogEntry: 5, PrevLogTerm: 2, LeaderCommitIndex: 5}, &raft.AppendEntriesResponse{Term: 4, Success: true})
	check(followerLog{term: 4, index: 5, entryTerm: 2, commit: 5, appended: true}, true)
}
