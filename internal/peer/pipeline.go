package peer

import (
	"sync"

	"github.com/hashicorp/raft"
)

// AppendEntriesPipeline implements raft.Transport.
//
// hashicorp/raft (v1.7.3, hashicorp/raft#612) stops reading a pipeline's
// responses when a follower answers with a newer term or a log mismatch,
// while the replication loop may be sending one more request into it. The
// pipeline's response decoder then blocks handing a response to nobody, the
// send blocks handing the request to the decoder, and the Close that would
// free both is deferred in the blocked function: the leader's replication to
// that follower stops for good (it keeps heartbeating, so nobody notices),
// and Raft's Shutdown never returns. A drainedPipeline always takes the
// decoder's responses, so the send always completes.
func (t *Transport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	p, err := t.NetworkTransport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	return newDrainedPipeline(p), nil
}

// drainedPipeline moves the inner pipeline's finished requests into a
// queue as soon as they finish and hands them to Consumer from there. The
// queue holds at most the requests sent after Raft stopped consuming: Raft
// sends no more once its decoder has stopped, and Close ends the forwarding.
type drainedPipeline struct {
	raft.AppendPipeline
	out       chan raft.AppendFuture
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

func newDrainedPipeline(p raft.AppendPipeline) *drainedPipeline {
	d := &drainedPipeline{AppendPipeline: p, out: make(chan raft.AppendFuture),
		stop: make(chan struct{}), done: make(chan struct{})}
	go d.forward()
	return d
}

func (d *drainedPipeline) forward() {
	defer close(d.done)
	in := d.AppendPipeline.Consumer()
	var queue []raft.AppendFuture
	for {
		var out chan raft.AppendFuture
		var next raft.AppendFuture
		if len(queue) > 0 {
			out, next = d.out, queue[0]
		}
		select {
		case f := <-in:
			queue = append(queue, f)
		case out <- next:
			queue[0] = nil
			queue = queue[1:]
		case <-d.stop:
			return
		}
	}
}

// Consumer implements raft.AppendPipeline.
func (d *drainedPipeline) Consumer() <-chan raft.AppendFuture { return d.out }

// Close implements raft.AppendPipeline: it stops the forwarding, then
// closes the inner pipeline (whose decoder, if blocked handing over a
// response, then returns).
func (d *drainedPipeline) Close() error {
	d.closeOnce.Do(func() {
		close(d.stop)
		<-d.done
		d.closeErr = d.AppendPipeline.Close()
	})
	return d.closeErr
}
