package peer

import (
	"errors"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// pipelineMaxInFlight bounds the appends a pipeline has written and not
// yet had answered: NetworkTransport's default (DefaultMaxRPCsInFlight),
// which overlaps preparing the next append with waiting for the last
// answer without queueing more (hashicorp/raft#541).
const pipelineMaxInFlight = 2

// AppendEntriesPipeline implements raft.Transport: appends to target on a
// stream of their own, at most pipelineMaxInFlight unanswered, their
// results handed to Consumer in the order sent.
//
// hashicorp/raft (v1.7.3, hashicorp/raft#612) stops reading a pipeline's
// results when a follower answers with a newer term or a log mismatch,
// while its replication loop may still send more appends into it, and
// closes the pipeline only once those sends have returned. With
// NetworkTransport's pipeline the response decoder then blocks handing a
// result to nobody, the send blocks handing its request to the decoder,
// and the leader's replication to that follower stops for good (it keeps
// heartbeating, so nobody notices), and Raft's Shutdown never returns.
// Here a send waits only for the network: the reader frees an in-flight
// slot as soon as it has read an answer, and finished appends queue,
// without bound, for Consumer. The queue holds at most the appends sent
// after Raft stopped reading, and Close drops it.
func (t *Transport) AppendEntriesPipeline(_ raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	c, err := t.dial(target)
	if err != nil {
		return nil, err
	}
	p := &pipeline{
		t:         t,
		c:         c,
		slots:     make(chan struct{}, pipelineMaxInFlight),
		inflight:  make(chan *appendFuture, pipelineMaxInFlight),
		completed: make(chan *appendFuture, pipelineMaxInFlight),
		out:       make(chan raft.AppendFuture),
		stop:      make(chan struct{}),
	}
	t.mu.Lock()
	if t.mu.closed {
		t.mu.Unlock()
		c.abort()
		return nil, raft.ErrTransportShutdown
	}
	t.mu.pipelines[p] = struct{}{}
	t.mu.Unlock()
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		p.readResponses()
	}()
	go func() {
		defer p.wg.Done()
		p.forward()
	}()
	return p, nil
}

// pipeline is a raft.AppendPipeline. Its sender is Raft's replication
// goroutine (AppendEntries); readResponses completes the appends in the
// order sent, and forward hands them to Consumer.
type pipeline struct {
	t *Transport
	c *rpcConn

	// slots has a token per append written and not yet answered.
	slots chan struct{}
	// inflight holds the appends written, in order, for readResponses;
	// slots bound it, so a send into it never blocks.
	inflight chan *appendFuture
	// completed carries answered appends from readResponses to forward,
	// which always takes them at once.
	completed chan *appendFuture
	// out is Consumer.
	out chan raft.AppendFuture
	// stop is closed by Close; wg counts the two goroutines.
	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once

	// sendMu serializes sends (AppendEntries), and Close's drain of
	// inflight after them.
	sendMu sync.Mutex
	// mu guards err. NB: never held while waiting: readResponses takes it
	// before it frees a slot that a send may be waiting for.
	mu sync.Mutex
	// err is the stream's first failure: every later append fails with it.
	err error
}

// AppendEntries implements raft.AppendPipeline: it writes the append and
// returns its future. It waits while pipelineMaxInFlight appends are
// unanswered, which the read deadline bounds.
func (p *pipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	p.sendMu.Lock()
	defer p.sendMu.Unlock()
	select {
	case p.slots <- struct{}{}:
	case <-p.stop:
		return nil, raft.ErrPipelineShutdown
	}
	if err := p.failure(); err != nil {
		<-p.slots
		return nil, err
	}
	f := &appendFuture{start: time.Now(), args: args, resp: resp, done: make(chan struct{})}
	p.c.SetWriteDeadline(time.Now().Add(p.t.cfg.Timeout))
	if err := p.c.send(args, p.t.cfg.MaxFrameBytes); err != nil {
		p.fail(err) // fails the reader's read of earlier answers too
		<-p.slots
		p.t.nudgeReplication()
		return nil, err
	}
	p.inflight <- f
	return f, nil
}

// failure returns the stream's first failure, or nil.
func (p *pipeline) failure() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// readResponses reads the answers to the appends sent, in order, until
// Close. After the stream fails it fails each append sent meanwhile.
func (p *pipeline) readResponses() {
	for {
		var f *appendFuture
		select {
		case f = <-p.inflight:
		case <-p.stop:
			return
		}
		f.err = p.failure()
		if f.err == nil {
			f.err = p.read(f)
		}
		switch {
		case f.err == nil && f.resp.Success:
			p.t.noteAppend(p.c.target, f.args, f.resp)
		case f.err != nil || f.resp.Term == f.args.Term:
			p.t.nudgeReplication()
		}
		close(f.done)
		<-p.slots
		select {
		case p.completed <- f:
		case <-p.stop:
			return
		}
	}
}

// fail records the stream's first failure and closes the stream.
func (p *pipeline) fail(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.mu.Unlock()
	p.c.abort()
}

// read reads the answer to f within the timeout. A stream failure sticks.
func (p *pipeline) read(f *appendFuture) error {
	p.c.SetReadDeadline(time.Now().Add(p.t.cfg.Timeout))
	remoteErr, err := p.c.receive(f.resp, p.t.cfg.MaxFrameBytes)
	if err != nil {
		p.fail(err)
		return err
	}
	if remoteErr != "" {
		return errors.New(remoteErr)
	}
	return nil
}

// forward moves answered appends to Consumer, queueing those Raft does
// not take yet, until Close.
func (p *pipeline) forward() {
	var queue []*appendFuture
	for {
		var out chan raft.AppendFuture
		var next raft.AppendFuture
		if len(queue) > 0 {
			out, next = p.out, queue[0]
		}
		select {
		case f := <-p.completed:
			queue = append(queue, f)
		case out <- next:
			queue[0] = nil
			queue = queue[1:]
		case <-p.stop:
			return
		}
	}
}

// Consumer implements raft.AppendPipeline.
func (p *pipeline) Consumer() <-chan raft.AppendFuture { return p.out }

// Close implements raft.AppendPipeline: it closes the stream, stops the
// pipeline's goroutines and returns once they have exited. Appends not
// yet answered fail with raft.ErrPipelineShutdown.
func (p *pipeline) Close() error {
	p.closeOnce.Do(func() {
		close(p.stop)
		p.fail(raft.ErrPipelineShutdown) // fails a read or write in progress at once
		p.wg.Wait()
		// NB: after any send in progress, which returns promptly now.
		p.sendMu.Lock()
		defer p.sendMu.Unlock()
		for {
			select {
			case f := <-p.inflight:
				f.err = raft.ErrPipelineShutdown
				close(f.done)
				continue
			default:
			}
			break
		}
		p.t.mu.Lock()
		delete(p.t.mu.pipelines, p)
		p.t.mu.Unlock()
	})
	return nil
}

// appendFuture is a raft.AppendFuture: an append sent on a pipeline.
type appendFuture struct {
	start time.Time
	args  *raft.AppendEntriesRequest
	resp  *raft.AppendEntriesResponse
	// err is set before done is closed.
	err  error
	done chan struct{}
}

// Error implements raft.Future: it waits for the answer.
func (f *appendFuture) Error() error {
	<-f.done
	return f.err
}

// Start implements raft.AppendFuture.
func (f *appendFuture) Start() time.Time { return f.start }

// Request implements raft.AppendFuture.
func (f *appendFuture) Request() *raft.AppendEntriesRequest { return f.args }

// Response implements raft.AppendFuture.
func (f *appendFuture) Response() *raft.AppendEntriesResponse { return f.resp }

// nudgeWait bounds how long a nudge waits for Raft's main loop to take its
// barrier.
const nudgeWait = time.Second

// nudgeReplication appends a barrier to the bound Raft's log, in the
// background. It is called when a follower's pipeline ends (a failed
// stream, or an append refused because the follower's log is shorter than
// the leader believed) and when a follower's heartbeat answer shows it
// lost entries it had acknowledged (noteCommit). hashicorp/raft retries
// such a follower only at the leader's next entry or after CommitTimeout
// (10 s for partitions, random up to twice that): on an idle partition a
// follower that came back empty stayed empty that long. The barrier is
// that next entry. One nudge at a time per group.
func (t *Transport) nudgeReplication() {
	r := t.raft.Load()
	if r == nil || r.State() != raft.Leader || !t.nudging.CompareAndSwap(false, true) {
		return
	}
	t.mu.Lock()
	if t.mu.closed {
		t.mu.Unlock()
		t.nudging.Store(false)
		return
	}
	t.wg.Add(1)
	t.mu.Unlock()
	go func() {
		defer t.wg.Done()
		defer t.nudging.Store(false)
		r.Barrier(nudgeWait) // NB: not waiting for it; Raft answers it
	}()
}
