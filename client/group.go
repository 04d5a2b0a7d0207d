package client

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"weir/protocol"
)

// TopicPartition names a partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// String returns "topic[partition]".
func (tp TopicPartition) String() string { return fmt.Sprintf("%s[%d]", tp.Topic, tp.Partition) }

func (tp TopicPartition) internal() topicPartition { return topicPartition{tp.Topic, tp.Partition} }

func (tp topicPartition) public() TopicPartition { return TopicPartition{tp.topic, tp.partition} }

// memberIdentity is what a group member's fetches carry (Fetch version 1),
// so that the broker can fence a member the group has moved on from. A new
// value is stored at every change: a fetch compares the pointer it sent
// with the current one to tell a stale epoch from a lost partition.
type memberIdentity struct {
	group string
	id    string
	epoch int32
}

// GroupConsumer consumes the partitions a consumer group assigns it, and
// commits its progress to the group, so that the group's members share the
// subscribed topics' partitions and a partition's new owner goes on where
// the old one stopped. It is safe for concurrent use, but Poll is meant to
// be called from one goroutine: the records a Poll returns count as
// finished (processed) when Poll is called again, or Commit, or Close.
//
// The assignment is the coordinator's (the metadata controller's, KIP-848
// style): a heartbeat goroutine reports the member's partitions every
// heartbeat interval, and each answer carries the member's full
// assignment. A partition newly assigned starts at the group's committed
// offset, or, when there is none, at ResetOffset (Latest by default);
// records are fetched in the background by a Consumer, as soon as the
// partition is assigned. A partition missing from the answer is revoked:
// at the next Poll (or at once, if a Poll is waiting), the member stops
// fetching it, commits what it finished of it, calls OnRevoked, and tells
// the coordinator, which then gives it to another member. Revocations wait
// for Poll so that the records being processed are finished before they
// are committed: call Poll often, or the group's rebalances wait for the
// member.
//
// Commits: with AutoCommitInterval (5s by default) a background loop
// commits, per partition, the offset after the last record of the Polls
// before the latest; Commit and CommitAsync commit explicitly; revocations
// and Close commit what is finished. Records are delivered at least once:
// those processed but not committed when a partition moves (a crash, a
// lost session) are delivered again to the next owner.
//
// Fencing: when the group answers a heartbeat with UnknownMemberID or
// FencedMemberEpoch, the member has lost its partitions (its session
// expired, or it was replaced): it drops them without committing, calls
// OnLost (or OnRevoked), and joins again as a new member. When a commit or
// a fetch finds one partition fenced, the member drops that partition (its
// fetched records are not returned) and heartbeats at once for its current
// assignment.
//
// Goroutines: besides the Consumer's, a heartbeat loop, an auto-commit
// loop, and one per CommitAsync. Close ends them all. Callbacks run in
// the goroutine that calls Poll (or Close).
type GroupConsumer struct {
	group string
	cfg   *config // the consumer's
	c     *Consumer
	cl    *cluster // the consumer's: group requests go to the controller

	// ctx is cancelled at the end of Close: it bounds every request.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// hbWake (capacity 1) makes the heartbeat loop send one now. hbStop,
	// closed by Close, ends the loop (hbCtx with it), which then closes
	// hbDone.
	hbWake   chan struct{}
	hbStop   chan struct{}
	hbCtx    context.Context
	hbCancel context.CancelFunc
	hbDone   chan struct{}
	// autoStop ends the auto-commit loop.
	autoStop chan struct{}

	// pollSem (capacity 1) lets one Poll run at a time.
	pollSem chan struct{}

	closeOnce sync.Once
	closeErr  error

	// fenced holds partitions fetches found fenced, from the consumer's
	// hook (which runs under the consumer's lock: this lock is a leaf),
	// for the heartbeat loop.
	fenced struct {
		sync.Mutex
		tps []topicPartition
	}

	// mu guards the membership and the offsets. Never held across a
	// request or a callback. Lock order: mu, then the consumer's.
	mu struct {
		sync.Mutex
		memberID string
		epoch    int32 // 0: not a member (joining)
		// lives counts losses of the membership: work begun in one life is
		// dropped in the next.
		lives int
		// assigned is the latest assignment the coordinator sent.
		assigned map[topicPartition]bool
		// owned are the partitions the member holds (in the consumer), as
		// its heartbeats say: including those being revoked, until their
		// final commit is done.
		owned map[topicPartition]bool
		// revoking are owned partitions missing from assigned, for Poll to
		// give back; releasing, those Poll is giving back now.
		revoking  map[topicPartition]bool
		releasing map[topicPartition]bool
		// returned: per partition, the offset after the last record the
		// latest Poll returned; finished: the same for records finished
		// (returned by earlier Polls); committed: the offset last committed.
		returned  map[topicPartition]int64
		finished  map[topicPartition]int64
		committed map[topicPartition]int64
		// events are the callbacks for Poll to run, in order.
		events []groupEvent
		// changed is closed (and replaced) when events, revocations, an
		// error or Close come: it wakes Poll.
		changed chan struct{}
		err     error // fatal: the heartbeat loop stopped
		closed  bool
		// commitTail is closed when the latest commit begun is done: the
		// next one waits for it (see commitTurn).
		commitTail chan struct{}
	}
}

// commitTurn orders commits: each waits for the one begun before it, so
// that a commit is never overtaken by an older one (which would move the
// group's offsets back). Turns are taken under mu.
type commitTurn struct {
	prev, mine chan struct{}
}

// turnLocked takes the next commit turn, for commitOffsets, which must be
// called with it whatever happens (or the commits after it wait forever).
// REQUIRES: mu held.
func (g *GroupConsumer) turnLocked() commitTurn {
	t := commitTurn{prev: g.mu.commitTail, mine: make(chan struct{})}
	g.mu.commitTail = t.mine
	return t
}

// groupEvent is a callback for Poll to run.
type groupEvent struct {
	assigned bool // OnAssigned; else OnLost
	tps      []TopicPartition
}

// minHeartbeatInterval bounds how often the member heartbeats, whatever
// the coordinator says.
const minHeartbeatInterval = 10 * time.Millisecond

// NewGroupConsumer returns a member of the consumer group group. It takes
// the options of every role, the ConsumerOpts, and the GroupOpts; a
// subscription (Subscribe or SubscribeRegex) is required. It joins the
// group in the background at once; Poll returns the records of the
// partitions the group assigns it.
//
// StartOffset has no effect here: a partition starts at the group's
// committed offset, or at ResetOffset when there is none (Latest unless
// set), which is also where a partition goes on an OffsetOutOfRange.
func NewGroupConsumer(group string, opts ...Opt) (*GroupConsumer, error) {
	cfg, err := newConfig(roleGroup, opts)
	if err != nil {
		return nil, err
	}
	if group == "" {
		return nil, fmt.Errorf("weir/client: empty group id")
	}
	if len(cfg.group.topics) == 0 && cfg.group.regex == "" {
		return nil, fmt.Errorf("weir/client: group %q: no subscription: use Subscribe or SubscribeRegex", group)
	}
	if !cfg.autoReset {
		cfg.resetOffset, cfg.autoReset = Latest, true
	}
	cfg.startOffset = cfg.resetOffset

	g := &GroupConsumer{
		group:    group,
		hbWake:   make(chan struct{}, 1),
		hbStop:   make(chan struct{}),
		hbDone:   make(chan struct{}),
		autoStop: make(chan struct{}),
		pollSem:  make(chan struct{}, 1),
	}
	g.mu.memberID = rand.Text()
	g.mu.assigned = map[topicPartition]bool{}
	g.mu.owned = map[topicPartition]bool{}
	g.mu.revoking = map[topicPartition]bool{}
	g.mu.releasing = map[topicPartition]bool{}
	g.mu.returned = map[topicPartition]int64{}
	g.mu.finished = map[topicPartition]int64{}
	g.mu.committed = map[topicPartition]int64{}
	g.mu.changed = make(chan struct{})
	g.mu.commitTail = make(chan struct{})
	close(g.mu.commitTail)

	g.c = startConsumer(cfg, g.fetchFenced)
	g.cfg, g.cl = &g.c.cfg, g.c.cl
	g.ctx, g.cancel = context.WithCancel(context.Background())
	g.hbCtx, g.hbCancel = context.WithCancel(g.ctx)

	g.wg.Add(1)
	go g.heartbeatLoop()
	if d := cfg.group.autoCommitInterval; d > 0 {
		g.wg.Add(1)
		go g.autoCommitLoop(d)
	}
	return g, nil
}

// Member returns the member's id and epoch; the epoch is 0 while it joins.
func (g *GroupConsumer) Member() (id string, epoch int32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.mu.memberID, g.mu.epoch
}

// Assignment returns the partitions the member holds now, sorted: those
// the group assigned it, and any it is giving back.
func (g *GroupConsumer) Assignment() []TopicPartition {
	g.mu.Lock()
	defer g.mu.Unlock()
	return sortedTPs(g.mu.owned)
}

// Poll returns records of the member's partitions, waiting until there
// are some, an error, or ctx is done. The records the previous Poll
// returned count as finished from now on: they may be committed. Before it
// returns records, Poll runs the callbacks due (OnAssigned, OnLost) and
// gives revoked partitions back (see GroupConsumer). Errors of single
// partitions come as *PartitionError, as from Consumer.Poll; after a fatal
// group error (protocol.ErrUnsupportedAssignor, protocol.ErrInvalidGroupID, ...)
// every Poll returns it; after Close, ErrClosed.
func (g *GroupConsumer) Poll(ctx context.Context) ([]*Record, error) {
	return g.PollRecords(ctx, 0)
}

// Release hands back records Poll returned, as Consumer.Release does: it
// is optional, and after it the records' bytes may be overwritten.
func (g *GroupConsumer) Release(recs []*Record) {
	g.c.Release(recs)
}

// PollRecords is Poll returning at most maxRecords records (all that are
// ready for maxRecords <= 0); the others stay for the next Poll.
func (g *GroupConsumer) PollRecords(ctx context.Context, maxRecords int) ([]*Record, error) {
	select {
	case g.pollSem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-g.pollSem }()

	g.mu.Lock()
	if g.mu.closed {
		g.mu.Unlock()
		return nil, ErrClosed
	}
	g.finishLocked()
	g.mu.Unlock()

	for {
		g.runEvents(ctx)
		g.mu.Lock()
		switch {
		case g.mu.closed:
			g.mu.Unlock()
			return nil, ErrClosed
		case g.mu.err != nil:
			err := g.mu.err
			g.mu.Unlock()
			return nil, err
		case len(g.mu.events) > 0 || len(g.mu.revoking) > 0:
			g.mu.Unlock()
			continue
		}
		// Under mu, so that no assignment lands between the events run
		// and the records taken: OnAssigned always comes first.
		recs, ready, err := g.c.pollReady(maxRecords)
		// Records come in runs of one partition, in offset order: the last
		// of each run is the one that counts (and a map update per record
		// was 15% of a fast consumer's CPU).
		for i, r := range recs {
			if i+1 < len(recs) && recs[i+1].Partition == r.Partition && recs[i+1].Topic == r.Topic {
				continue
			}
			tp := topicPartition{r.Topic, r.Partition}
			g.mu.returned[tp] = max(g.mu.returned[tp], r.Offset+1)
		}
		changed := g.mu.changed
		g.mu.Unlock()
		if len(recs) > 0 || err != nil {
			return recs, err
		}
		select {
		case <-ready:
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// finishLocked marks the records of the latest Poll finished.
// REQUIRES: mu held.
func (g *GroupConsumer) finishLocked() {
	for tp, off := range g.mu.returned {
		g.mu.finished[tp] = max(g.mu.finished[tp], off)
	}
	clear(g.mu.returned)
}

// notifyLocked wakes Poll.
// REQUIRES: mu held.
func (g *GroupConsumer) notifyLocked() {
	close(g.mu.changed)
	g.mu.changed = make(chan struct{})
}

// runEvents runs the callbacks due and gives revoked partitions back, in
// the goroutine that polls.
func (g *GroupConsumer) runEvents(ctx context.Context) {
	for {
		g.mu.Lock()
		if g.mu.closed {
			g.mu.Unlock()
			return
		}
		if len(g.mu.events) > 0 {
			ev := g.mu.events[0]
			g.mu.events = g.mu.events[1:]
			g.mu.Unlock()
			fn := g.cfg.group.onAssigned
			if !ev.assigned {
				fn = g.cfg.group.onLost
				if fn == nil {
					fn = g.cfg.group.onRevoked
				}
			}
			if fn != nil {
				fn(ctx, ev.tps)
			}
			continue
		}
		if len(g.mu.revoking) > 0 {
			g.mu.Unlock()
			g.release(ctx)
			continue
		}
		g.mu.Unlock()
		return
	}
}

// release gives the revoked partitions back: it stops fetching them,
// commits what is finished of them, calls OnRevoked, drops them from the
// partitions its heartbeats own, and heartbeats at once.
func (g *GroupConsumer) release(ctx context.Context) {
	g.mu.Lock()
	tps := sortedTPKeys(g.mu.revoking)
	clear(g.mu.revoking)
	offsets := map[topicPartition]int64{}
	for _, tp := range tps {
		g.mu.releasing[tp] = true
		if off, ok := g.mu.finished[tp]; ok {
			offsets[tp] = off
		}
	}
	turn := g.turnLocked()
	g.mu.Unlock()

	g.c.unassign(tps)
	// Not bounded by the Poll's ctx: a Poll that times out or is
	// interrupted must not give the partitions back uncommitted.
	cctx, cancel := context.WithTimeout(g.ctx, g.cfg.requestTimeout)
	// An error here leaves the partitions uncommitted: their records are
	// delivered again to their next owner. Nothing better to do.
	_ = g.commitOffsets(cctx, turn, offsets, false, nil)
	cancel()
	if fn := g.cfg.group.onRevoked; fn != nil {
		fn(ctx, publicTPs(tps))
	}

	g.mu.Lock()
	for _, tp := range tps {
		delete(g.mu.releasing, tp)
		g.forgetLocked(tp)
	}
	g.mu.Unlock()
	g.wakeHeartbeat()
}

// forgetLocked drops a partition from the member's state.
// REQUIRES: mu held.
func (g *GroupConsumer) forgetLocked(tp topicPartition) {
	delete(g.mu.owned, tp)
	delete(g.mu.revoking, tp)
	delete(g.mu.returned, tp)
	delete(g.mu.finished, tp)
	delete(g.mu.committed, tp)
}

// loseLocked drops partitions the member lost, without committing them,
// and queues OnLost for them (but for those Poll is giving back already,
// which get OnRevoked).
// REQUIRES: mu held.
func (g *GroupConsumer) loseLocked(tps []topicPartition) {
	var dropped, lost []topicPartition
	for _, tp := range tps {
		if !g.mu.owned[tp] {
			continue
		}
		if !g.mu.releasing[tp] {
			lost = append(lost, tp)
		}
		g.forgetLocked(tp)
		dropped = append(dropped, tp)
	}
	g.c.unassign(dropped)
	if len(lost) > 0 {
		slices.SortFunc(lost, compareTP)
		g.mu.events = append(g.mu.events, groupEvent{tps: publicTPs(lost)})
		g.notifyLocked()
	}
}

// fetchFenced is the consumer's hook for a partition a fetch found fenced
// (the consumer has dropped it). It runs under the consumer's lock.
func (g *GroupConsumer) fetchFenced(tp topicPartition) {
	g.fenced.Lock()
	g.fenced.tps = append(g.fenced.tps, tp)
	g.fenced.Unlock()
	g.wakeHeartbeat()
}

// wakeHeartbeat makes the heartbeat loop send one now.
func (g *GroupConsumer) wakeHeartbeat() {
	select {
	case g.hbWake <- struct{}{}:
	default:
	}
}

// Commit commits, with no records, every record Poll has returned (they
// all count as finished); with records, for each partition the offset
// after the highest record given. It returns when the group has the
// offsets, or the first error: a partition the member does not own (any
// more) fails with ErrNotAssigned; one the group fenced, with
// protocol.ErrFencedMemberEpoch or protocol.ErrUnknownMemberID (and the
// member drops it).
func (g *GroupConsumer) Commit(ctx context.Context, records ...*Record) error {
	offsets, explicit, turn, err := g.toCommit(records, false)
	if err != nil {
		return err
	}
	return g.commitOffsets(ctx, turn, offsets, explicit, nil)
}

// CommitAsync is Commit without the wait: it commits in the background
// and calls done (if not nil) with the result, from another goroutine.
// Commits are sent, and their dones called, in the order they are made:
// done should be quick, since the commits after it wait for it. Close
// waits for it.
func (g *GroupConsumer) CommitAsync(records []*Record, done func(error)) {
	offsets, explicit, turn, err := g.toCommit(records, true)
	if err != nil {
		if done != nil {
			done(err)
		}
		return
	}
	go func() {
		defer g.wg.Done()
		ctx, cancel := context.WithTimeout(g.ctx, g.cfg.requestTimeout)
		defer cancel()
		g.commitOffsets(ctx, turn, offsets, explicit, done)
	}()
}

// toCommit returns the offsets a Commit of records commits. For an
// asynchronous commit it counts the goroutine in wg, under mu with the
// group open, so that Close (which closes the group, then waits for wg)
// waits for it.
func (g *GroupConsumer) toCommit(records []*Record, async bool) (map[topicPartition]int64, bool, commitTurn, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mu.closed {
		return nil, false, commitTurn{}, ErrClosed
	}
	if async {
		g.wg.Add(1)
	}
	offsets := map[topicPartition]int64{}
	if len(records) == 0 {
		g.finishLocked()
		maps.Copy(offsets, g.mu.finished)
		return offsets, false, g.turnLocked(), nil
	}
	for _, r := range records {
		tp := topicPartition{r.Topic, r.Partition}
		if off, ok := offsets[tp]; !ok || r.Offset+1 > off {
			offsets[tp] = r.Offset + 1
		}
	}
	return offsets, true, g.turnLocked(), nil
}

// commitOffsets commits offsets with the member's id and epoch. An
// explicit commit sends what it is given, and fails for partitions the
// member does not own; otherwise only offsets past the last commit are
// sent, and others are skipped quietly. A partition the group fences is
// dropped (see GroupConsumer); a fence that only says the epoch moved on
// since the request was sent is retried with the new one. It waits for
// its turn first, and ends it after calling then (if not nil) with the
// result, so that the results come in order too.
func (g *GroupConsumer) commitOffsets(ctx context.Context, turn commitTurn, offsets map[topicPartition]int64, explicit bool, then func(error)) error {
	// NB: the wait ignores ctx, so that the turns stay in order; it is
	// bounded, since every commit's requests and retries are.
	<-turn.prev
	defer close(turn.mine)
	err := g.commitNow(ctx, offsets, explicit)
	if then != nil {
		then(err)
	}
	return err
}

// commitNow is commitOffsets in its turn.
func (g *GroupConsumer) commitNow(ctx context.Context, offsets map[topicPartition]int64, explicit bool) error {
	var errs []error
	pending := maps.Clone(offsets)
	g.mu.Lock()
	life := g.mu.lives
	g.mu.Unlock()
	for attempt := 1; ; attempt++ {
		g.mu.Lock()
		id, epoch := g.mu.memberID, g.mu.epoch
		for tp, off := range pending {
			switch {
			// Offsets of a membership lost since (even if the member holds
			// the partition again) are not this member's to commit: the
			// group may have moved the partition on meanwhile.
			case !g.mu.owned[tp] || epoch <= 0 || g.mu.lives != life:
				if explicit {
					errs = append(errs, &PartitionError{Topic: tp.topic, Partition: tp.partition, Err: ErrNotAssigned})
				}
				delete(pending, tp)
			case !explicit && off <= g.mu.committed[tp]:
				delete(pending, tp) // committed already, by a later commit
			}
		}
		g.mu.Unlock()
		if len(pending) == 0 {
			break
		}
		req := &protocol.OffsetCommitRequest{GroupID: g.group, MemberID: id, MemberEpoch: epoch}
		for _, tp := range sortedTPKeys(pending) {
			addOffsetCommit(req, tp, pending[tp])
		}
		// retryErr is why some partitions are to be sent again.
		resp, retryErr := g.cl.controllerRequest(ctx, req)
		if retryErr == nil {
			results := map[topicPartition]protocol.ErrorCode{}
			for _, t := range resp.(*protocol.OffsetCommitResponse).Topics {
				for _, p := range t.Partitions {
					results[topicPartition{t.Name, p.Partition}] = p.ErrorCode
				}
			}
			for tp, off := range pending {
				code, ok := results[tp]
				if !ok {
					errs = append(errs, &PartitionError{Topic: tp.topic, Partition: tp.partition,
						Err: fmt.Errorf("%w: OffsetCommit response lacks the partition", ErrProtocol)})
					delete(pending, tp)
					continue
				}
				if err := g.commitResult(tp, off, code, id, epoch); err != nil {
					if errors.Is(err, errRetryCommit) || code.Retriable() {
						retryErr = err
						continue
					}
					errs = append(errs, &PartitionError{Topic: tp.topic, Partition: tp.partition, Err: err})
				}
				delete(pending, tp)
			}
			if len(pending) == 0 {
				break
			}
		}
		if attempt > g.cfg.maxRetries || !retriable(ctx, retryErr) {
			for tp := range pending {
				errs = append(errs, &PartitionError{Topic: tp.topic, Partition: tp.partition, Err: retryErr})
			}
			break
		}
		if err := sleep(ctx, g.cfg.backoff(attempt)); err != nil {
			errs = append(errs, err)
			break
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("weir/client: group %q: commit: %w", g.group, err)
	}
	return nil
}

// errRetryCommit marks a partition's commit to send again at once: it was
// fenced for an epoch the member has moved on from.
var errRetryCommit = errors.New("weir/client: commit sent with an old member epoch")

// commitResult handles one partition's result of a commit sent as member
// id at epoch, and returns its error: errRetryCommit or a retriable error
// to send it again.
func (g *GroupConsumer) commitResult(tp topicPartition, off int64, code protocol.ErrorCode, id string, epoch int32) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch code {
	case protocol.CodeNone:
		if g.mu.owned[tp] {
			g.mu.committed[tp] = off
		}
		return nil
	case protocol.CodeUnknownMemberID, protocol.CodeFencedMemberEpoch:
		if (g.mu.memberID != id || g.mu.epoch != epoch) && g.mu.owned[tp] && g.mu.epoch > 0 {
			return errRetryCommit
		}
		if g.mu.memberID == id {
			// The group has moved on: the partition is not the member's.
			g.loseLocked([]topicPartition{tp})
			g.wakeHeartbeat()
		}
	case protocol.CodeNotController:
		g.cl.forgetController()
	}
	return protocol.ErrorForCode(code, "")
}

// addOffsetCommit adds a partition to an OffsetCommit request.
func addOffsetCommit(req *protocol.OffsetCommitRequest, tp topicPartition, offset int64) {
	p := protocol.OffsetCommitRequestPartition{Partition: tp.partition, CommittedOffset: offset}
	if n := len(req.Topics); n > 0 && req.Topics[n-1].Name == tp.topic {
		req.Topics[n-1].Partitions = append(req.Topics[n-1].Partitions, p)
		return
	}
	req.Topics = append(req.Topics, protocol.OffsetCommitRequestTopic{Name: tp.topic, Partitions: []protocol.OffsetCommitRequestPartition{p}})
}

// autoCommitLoop commits what is finished every interval.
func (g *GroupConsumer) autoCommitLoop(interval time.Duration) {
	defer g.wg.Done()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-g.autoStop:
			return
		}
		g.mu.Lock()
		offsets := maps.Clone(g.mu.finished)
		turn := g.turnLocked()
		g.mu.Unlock()
		ctx, cancel := context.WithTimeout(g.ctx, g.cfg.requestTimeout)
		// Errors: the next tick tries again; fences are handled inside.
		_ = g.commitOffsets(ctx, turn, offsets, false, nil)
		cancel()
	}
}

// Close commits every record Poll returned, calls OnRevoked with the
// member's partitions, leaves the group (a heartbeat with epoch -1, so
// that the group gives the partitions to others at once), and stops every
// goroutine, waiting for them and for CommitAsyncs in flight. A Poll in
// progress returns ErrClosed. It returns the first error of the commit
// and the leave; calling it again returns nil.
//
// NB: a static member (InstanceID) does not leave: the group keeps its
// partitions for it until its session times out, so that a restart with
// the same instance id gets them back at once, without a rebalance.
func (g *GroupConsumer) Close() error {
	first := false
	g.closeOnce.Do(func() {
		first = true
		g.closeErr = g.close()
	})
	if !first {
		return nil
	}
	return g.closeErr
}

func (g *GroupConsumer) close() error {
	var errs []error
	g.mu.Lock()
	g.finishLocked()
	offsets := maps.Clone(g.mu.finished)
	turn := g.turnLocked()
	g.mu.closed = true // Poll, Commit: ErrClosed; events are not run any more
	g.notifyLocked()
	g.mu.Unlock()
	close(g.autoStop)

	// The final commit, while the heartbeats go on.
	ctx, cancel := context.WithTimeout(g.ctx, g.cfg.requestTimeout)
	err := g.commitOffsets(ctx, turn, offsets, false, nil)
	cancel()
	if err != nil {
		errs = append(errs, err)
	}
	g.mu.Lock()
	var revoked []topicPartition
	for tp := range g.mu.owned {
		if !g.mu.releasing[tp] { // a Poll giving them back calls OnRevoked itself
			revoked = append(revoked, tp)
		}
	}
	g.mu.Unlock()
	if fn := g.cfg.group.onRevoked; fn != nil && len(revoked) > 0 {
		slices.SortFunc(revoked, compareTP)
		fn(g.ctx, publicTPs(revoked))
	}

	// Stop heartbeating and fetching, then leave.
	close(g.hbStop)
	g.hbCancel()
	<-g.hbDone
	g.mu.Lock()
	id, epoch := g.mu.memberID, g.mu.epoch
	tps := slices.Collect(maps.Keys(g.mu.owned))
	for _, tp := range tps {
		g.forgetLocked(tp)
	}
	g.c.unassign(tps)
	g.mu.Unlock()
	if id != "" && epoch > 0 && g.cfg.group.instanceID == "" {
		if err := g.leave(id); err != nil {
			errs = append(errs, err)
		}
	}

	g.cancel()
	g.wg.Wait()
	g.c.Close()
	return errors.Join(errs...)
}

// leave sends the heartbeat that leaves the group.
func (g *GroupConsumer) leave(id string) error {
	ctx, cancel := context.WithTimeout(g.ctx, g.cfg.requestTimeout)
	defer cancel()
	req := &protocol.ConsumerGroupHeartbeatRequest{GroupID: g.group, MemberID: id, MemberEpoch: -1,
		Owned: []protocol.ConsumerGroupHeartbeatRequestTopic{}}
	resp, err := g.cl.controllerRequest(ctx, req)
	if err == nil {
		r := resp.(*protocol.ConsumerGroupHeartbeatResponse)
		switch r.ErrorCode {
		case protocol.CodeUnknownMemberID, protocol.CodeFencedMemberEpoch:
			// Gone already: fine.
		case protocol.CodeNotController:
			// One more try, at the controller the metadata names now.
			g.cl.forgetController()
			if resp, err = g.cl.controllerRequest(ctx, req); err == nil {
				r = resp.(*protocol.ConsumerGroupHeartbeatResponse)
				err = protocol.ErrorForCodeMessage(r.ErrorCode, r.ErrorMessage)
			}
		default:
			err = protocol.ErrorForCodeMessage(r.ErrorCode, r.ErrorMessage)
		}
	}
	if err != nil {
		return fmt.Errorf("weir/client: group %q: leave: %w", g.group, err)
	}
	return nil
}

// Sorting and conversions.

func compareTP(a, b topicPartition) int {
	return cmp.Or(cmp.Compare(a.topic, b.topic), cmp.Compare(a.partition, b.partition))
}

func sortedTPKeys[V any](m map[topicPartition]V) []topicPartition {
	tps := slices.Collect(maps.Keys(m))
	slices.SortFunc(tps, compareTP)
	return tps
}

func sortedTPs(m map[topicPartition]bool) []TopicPartition {
	return publicTPs(sortedTPKeys(m))
}

func publicTPs(tps []topicPartition) []TopicPartition {
	out := make([]TopicPartition, len(tps))
	for i, tp := range tps {
		out[i] = tp.public()
	}
	return out
}
