package cluster

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// CoordinatorConfig tunes the consumer group coordinator.
type CoordinatorConfig struct {
	// HeartbeatInterval is how often members heartbeat (at most a third of
	// their session timeout). Default 500ms: short, so a rebalance, which
	// advances one heartbeat at a time, settles in about a second.
	HeartbeatInterval time.Duration
	// Session timeouts: the default, and the bounds a member's request is
	// clamped to. Defaults 10s, 1s, 5m.
	DefaultSessionTimeout, MinSessionTimeout, MaxSessionTimeout time.Duration
	// RebalanceTimeout is how long a live member may take to give back a
	// revoked partition before the coordinator removes it. Default 60s.
	RebalanceTimeout time.Duration
	// MaxCommitBatch bounds the offsets one Raft entry carries. Default 4096.
	MaxCommitBatch int
	Logger         *slog.Logger
	// Now is the clock, for tests; default time.Now.
	Now func() time.Time
}

func (c CoordinatorConfig) withDefaults() CoordinatorConfig {
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = 500 * time.Millisecond
	}
	if c.DefaultSessionTimeout <= 0 {
		c.DefaultSessionTimeout = 10 * time.Second
	}
	if c.MinSessionTimeout <= 0 {
		c.MinSessionTimeout = time.Second
	}
	if c.MaxSessionTimeout <= 0 {
		c.MaxSessionTimeout = 5 * time.Minute
	}
	if c.RebalanceTimeout <= 0 {
		c.RebalanceTimeout = time.Minute
	}
	if c.MaxCommitBatch <= 0 {
		c.MaxCommitBatch = 4096
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Coordinator runs the consumer groups on the controller: it answers
// heartbeats, proposes the changes they cause to the metadata group,
// batches offset commits into few Raft entries, and removes members whose
// session expires. The group state itself lives in the Controller's state
// machine, on every node; a Coordinator acts only while its node leads.
type Coordinator struct {
	ctrl *Controller
	cfg  CoordinatorConfig

	// mu serializes the heartbeats that change state (dry run, propose,
	// apply) and the expiry of members, so a dry run sees the state its
	// proposal applies to.
	mu sync.Mutex
	// seen is when this node, as controller, last heard from each member;
	// revoking is since when a member has been giving partitions back.
	// Neither is replicated: a new controller gives every member a fresh
	// session.
	seen     map[memberKey]time.Time
	revoking map[memberKey]time.Time
	leading  bool

	commits   chan *commitRequest
	stop      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

type memberKey struct{ group, member string }

// commitRequest is one OffsetCommit waiting for its Raft entry.
type commitRequest struct {
	group   string
	commits []OffsetCommit
	done    chan commitResult // buffered: the flusher never blocks on it
}

type commitResult struct {
	errs []error
	err  error
}

// NewCoordinator starts the coordinator of ctrl's node. Close stops it.
func NewCoordinator(ctrl *Controller, cfg CoordinatorConfig) *Coordinator {
	co := &Coordinator{ctrl: ctrl, cfg: cfg.withDefaults(), seen: map[memberKey]time.Time{},
		revoking: map[memberKey]time.Time{}, commits: make(chan *commitRequest, 1024), stop: make(chan struct{})}
	co.wg.Add(2)
	go co.expireLoop()
	go co.commitLoop()
	return co
}

// Close stops the coordinator's goroutines; requests waiting for a commit
// get ErrNotController.
func (co *Coordinator) Close() {
	co.closeOnce.Do(func() { close(co.stop) })
	co.wg.Wait()
}

// HeartbeatInterval is how often a member with this session timeout should
// heartbeat.
func (co *Coordinator) HeartbeatInterval(sessionTimeoutMs int32) time.Duration {
	return min(co.cfg.HeartbeatInterval, time.Duration(sessionTimeoutMs)*time.Millisecond/3)
}

// Heartbeat handles a member's join, heartbeat or leave. A heartbeat that
// changes nothing is answered from the local state; one that changes the
// group (a join, a new subscription, a revocation done, partitions handed
// over) is committed through the metadata group first.
func (co *Coordinator) Heartbeat(ctx context.Context, group string, hb Heartbeat) (HeartbeatResult, error) {
	if err := ValidateGroupID(group); err != nil {
		return HeartbeatResult{MemberEpoch: -1}, err
	}
	if !co.ctrl.IsLeader() {
		return HeartbeatResult{MemberEpoch: -1}, ErrNotController
	}
	if hb.MemberEpoch == 0 && hb.MemberID == "" {
		hb.MemberID = rand.Text()
	}
	if len(hb.MemberID) > maxGroupIDLen {
		return HeartbeatResult{MemberEpoch: -1}, fmt.Errorf("%w: member id of %d bytes (at most %d)", ErrInvalidGroupRequest, len(hb.MemberID), maxGroupIDLen)
	}
	if hb.MemberEpoch == 0 || hb.SessionTimeoutMs != 0 {
		hb.SessionTimeoutMs = co.clampSession(hb.SessionTimeoutMs)
	}
	co.mu.Lock()
	defer co.mu.Unlock()
	g := co.ctrl.membership(group)
	if g == nil {
		if hb.MemberEpoch != 0 {
			if hb.MemberEpoch == -1 {
				return HeartbeatResult{MemberID: hb.MemberID, MemberEpoch: -1}, nil
			}
			return HeartbeatResult{MemberEpoch: -1}, fmt.Errorf("%w: %q in group %q", ErrUnknownMember, hb.MemberID, group)
		}
		g = newGroup(group)
	}
	res, changed, err := g.heartbeat(&hb, co.ctrl.Metadata())
	if err != nil || !changed {
		if err == nil {
			co.seen[memberKey{group, res.MemberID}] = co.cfg.Now()
		}
		return res, err
	}
	out, err := co.ctrl.proposeResult(ctx, &command{Op: opGroupHeartbeat, GroupID: group, Heartbeat: &hb})
	if err != nil {
		return HeartbeatResult{MemberEpoch: -1}, err
	}
	res = out.(HeartbeatResult)
	if res.MemberEpoch >= 0 {
		co.seen[memberKey{group, res.MemberID}] = co.cfg.Now()
	}
	return res, nil
}

func (co *Coordinator) clampSession(ms int32) int32 {
	d := time.Duration(ms) * time.Millisecond
	if ms <= 0 {
		d = co.cfg.DefaultSessionTimeout
	}
	d = min(max(d, co.cfg.MinSessionTimeout), co.cfg.MaxSessionTimeout)
	return int32(d.Milliseconds())
}

// CommitOffsets commits a group's offsets and returns one result per offset
// (nil, or why that offset was refused). Commits from many requests share
// one Raft entry: while one entry is being committed the next batch gathers.
func (co *Coordinator) CommitOffsets(ctx context.Context, group string, commits []OffsetCommit) ([]error, error) {
	if err := ValidateGroupID(group); err != nil {
		return nil, err
	}
	if !co.ctrl.IsLeader() {
		return nil, ErrNotController
	}
	req := &commitRequest{group: group, commits: commits, done: make(chan commitResult, 1)}
	select {
	case co.commits <- req:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-co.stop:
		return nil, ErrNotController
	}
	select {
	case r := <-req.done:
		return r.errs, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// commitLoop turns queued commit requests into Raft entries, one at a time.
func (co *Coordinator) commitLoop() {
	defer co.wg.Done()
	for {
		var first *commitRequest
		select {
		case first = <-co.commits:
		case <-co.stop:
			co.failQueuedCommits()
			return
		}
		batch := []*commitRequest{first}
		n := len(first.commits)
	gather:
		for n < co.cfg.MaxCommitBatch {
			select {
			case req := <-co.commits:
				batch = append(batch, req)
				n += len(req.commits)
			default:
				break gather
			}
		}
		co.flushCommits(batch)
	}
}

func (co *Coordinator) flushCommits(batch []*commitRequest) {
	cmd := &command{Op: opGroupCommit, NowMs: co.cfg.Now().UnixMilli()}
	for _, req := range batch {
		cmd.Commits = append(cmd.Commits, groupCommits{Group: req.group, Commits: req.commits})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	out, err := co.ctrl.proposeResult(ctx, cmd)
	cancel()
	for i, req := range batch {
		if err != nil {
			req.done <- commitResult{err: err}
			continue
		}
		req.done <- commitResult{errs: out.([][]error)[i]}
	}
}

func (co *Coordinator) failQueuedCommits() {
	for {
		select {
		case req := <-co.commits:
			req.done <- commitResult{err: ErrNotController}
		default:
			return
		}
	}
}

// DeleteGroup deletes an empty group and its offsets.
func (co *Coordinator) DeleteGroup(ctx context.Context, group string) error {
	if err := ValidateGroupID(group); err != nil {
		return err
	}
	return co.ctrl.propose(ctx, &command{Op: opGroupDelete, GroupID: group})
}

// expireLoop removes members whose session has expired, and members that
// hold on to revoked partitions past the rebalance timeout.
func (co *Coordinator) expireLoop() {
	defer co.wg.Done()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-co.stop:
			return
		case <-tick.C:
			co.expire()
		}
	}
}

func (co *Coordinator) expire() {
	co.mu.Lock()
	defer co.mu.Unlock()
	if !co.ctrl.IsLeader() {
		if co.leading {
			co.leading = false
			clear(co.seen)
			clear(co.revoking)
		}
		return
	}
	co.leading = true
	now := co.cfg.Now()
	live := map[memberKey]bool{}
	var expired []memberKey
	for _, ms := range co.ctrl.memberSessions() {
		k := ms.key
		live[k] = true
		last, ok := co.seen[k]
		if !ok {
			last = now // a member this controller has not heard from yet: a fresh session
			co.seen[k] = now
		}
		since, revoking := co.revoking[k]
		switch {
		case !ms.revoking:
			delete(co.revoking, k)
		case !revoking:
			co.revoking[k] = now
			since = now
		}
		session := time.Duration(ms.sessionMs) * time.Millisecond
		if now.Sub(last) > session || (ms.revoking && now.Sub(since) > co.cfg.RebalanceTimeout) {
			expired = append(expired, k)
		}
	}
	slices.SortFunc(expired, func(a, b memberKey) int {
		return cmp.Or(strings.Compare(a.group, b.group), strings.Compare(a.member, b.member))
	})
	for k := range co.seen {
		if !live[k] {
			delete(co.seen, k)
			delete(co.revoking, k)
		}
	}
	for _, k := range expired {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := co.ctrl.propose(ctx, &command{Op: opGroupExpire, GroupID: k.group, MemberID: k.member})
		cancel()
		if err != nil {
			if !errors.Is(err, ErrNotController) {
				co.cfg.Logger.Warn("expire group member", "group", k.group, "member", k.member, "err", err)
			}
			return
		}
		co.cfg.Logger.Info("group member removed: session or rebalance timeout", "group", k.group, "member", k.member)
		delete(co.seen, k)
		delete(co.revoking, k)
	}
}
