package peer

import (
	"time"

	"github.com/hashicorp/raft"
)

// standWait bounds how long StandForElection's request waits for Raft's
// main loop. Short: Raft takes a TimeoutNow in any state, so one taken
// late could depose a leader elected meanwhile.
const standWait = 100 * time.Millisecond

// StandForElection makes the bound Raft node, a follower, stand for
// election now: it hands Raft the TimeoutNow that a leader transferring
// its leadership sends. The node starts an election at once, without
// pre-vote, and the voters grant their votes even while they still know a
// leader (Raft's leadership transfer); a voter still refuses a candidate
// whose log is behind its own, so safety is Raft's as ever. It returns at
// once, false if the transport is closed or not bound to a follower.
//
// It is for a follower that knows its leader's node is gone (its peer
// connection closed: Options.OnPeerLost): otherwise the group waits out
// its heartbeat timeout, and then an election timeout for the pre-vote.
// If that leader was alive after all, it is deposed: one needless
// election, never two leaders in a term.
func (t *Transport) StandForElection() bool {
	r := t.raft.Load()
	if r == nil || r.State() != raft.Follower {
		return false
	}
	req := &raft.TimeoutNowRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, Addr: []byte(t.LocalAddr())}}
	return t.handToRaft(req, standWait, nil, nil)
}

// handToRaft hands cmd to Raft's main loop, as if it came from the
// network, in a goroutine of the transport that waits at most wait for the
// main loop to take it, and then for its answer. taken runs if the main
// loop took it; done, if not nil, when the goroutine ends. It returns
// false, without starting the goroutine, if the transport is closed.
func (t *Transport) handToRaft(cmd any, wait time.Duration, taken, done func()) bool {
	t.mu.Lock()
	if t.mu.closed {
		t.mu.Unlock()
		return false
	}
	t.wg.Add(1)
	t.mu.Unlock()
	go func() {
		defer t.wg.Done()
		if done != nil {
			defer done()
		}
		timer := time.NewTimer(wait)
		defer timer.Stop()
		answer := make(chan raft.RPCResponse, 1)
		select {
		case t.consumeCh <- raft.RPC{Command: cmd, RespChan: answer}:
			if taken != nil {
				taken()
			}
		case <-timer.C:
			return
		case <-t.shutdownCh:
			return
		}
		select {
		case <-answer:
		case <-t.shutdownCh:
		}
	}()
	return true
}
