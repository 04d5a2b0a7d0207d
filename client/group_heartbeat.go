package client

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"time"

	"weir/protocol"
)

// heartbeatLoop keeps the member in the group: it joins, heartbeats every
// interval the coordinator asks for (at once when woken: a revocation
// done, a partition fenced), and applies each answer's assignment. A fatal
// error stops it and is Poll's from then on.
func (g *GroupConsumer) heartbeatLoop() {
	defer g.wg.Done()
	defer close(g.hbDone)
	timer := time.NewTimer(0) // join at once
	defer timer.Stop()
	var failures int // consecutive failed heartbeats
	for {
		select {
		case <-timer.C:
		case <-g.hbWake:
		case <-g.hbStop:
			return
		}
		g.takeFenced()
		next, err := g.heartbeat(&failures)
		if g.hbCtx.Err() != nil {
			return
		}
		if err != nil {
			g.mu.Lock()
			g.mu.err = err
			g.notifyLocked()
			g.mu.Unlock()
			return
		}
		timer.Reset(next)
	}
}

// takeFenced drops the partitions fetches found fenced.
func (g *GroupConsumer) takeFenced() {
	g.fenced.Lock()
	tps := g.fenced.tps
	g.fenced.tps = nil
	g.fenced.Unlock()
	if len(tps) > 0 {
		g.mu.Lock()
		g.loseLocked(tps)
		g.mu.Unlock()
	}
}

// heartbeat sends one heartbeat and applies its answer. It returns when
// to send the next, or a fatal error.
func (g *GroupConsumer) heartbeat(failures *int) (time.Duration, error) {
	req, life := g.heartbeatRequest()
	// Within the session: a heartbeat answered later is of no use.
	ctx, cancel := context.WithTimeout(g.hbCtx, min(g.cfg.requestTimeout, g.cfg.group.sessionTimeout))
	defer cancel()
	resp, err := g.cl.controllerRequest(ctx, req)
	if err != nil {
		*failures++
		return g.cfg.backoff(*failures), nil
	}
	r := resp.(*protocol.ConsumerGroupHeartbeatResponse)
	switch r.ErrorCode {
	case protocol.CodeNone:
		*failures = 0
		return g.applyHeartbeat(r, life), nil
	case protocol.CodeUnknownMemberID, protocol.CodeFencedMemberEpoch:
		// The group has moved on without the member: its partitions are
		// someone else's. Join again, as a new member; at once the first
		// time, then backing off, should the coordinator keep refusing.
		g.mu.Lock()
		if g.mu.lives == life {
			g.rejoinLocked()
		}
		g.mu.Unlock()
		*failures++
		if *failures == 1 {
			return 0, nil
		}
		return g.cfg.backoff(*failures - 1), nil
	case protocol.CodeNotController:
		g.cl.forgetController()
	}
	err = protocol.ErrorForCodeMessage(r.ErrorCode, r.ErrorMessage)
	if r.ErrorCode.Retriable() {
		*failures++
		return g.cfg.backoff(*failures), nil
	}
	return 0, fmt.Errorf("weir/client: group %q: heartbeat: %w", g.group, err)
}

// heartbeatRequest builds the next heartbeat: a join (with the whole
// subscription) while the member has no epoch, else the member's id, epoch
// and partitions. It returns the life it was built in.
func (g *GroupConsumer) heartbeatRequest() (*protocol.ConsumerGroupHeartbeatRequest, int) {
	gc := &g.cfg.group
	g.mu.Lock()
	defer g.mu.Unlock()
	req := &protocol.ConsumerGroupHeartbeatRequest{
		GroupID:          g.group,
		MemberID:         g.mu.memberID,
		MemberEpoch:      g.mu.epoch,
		SessionTimeoutMs: int32(gc.sessionTimeout.Milliseconds()),
		Owned:            []protocol.ConsumerGroupHeartbeatRequestTopic{},
	}
	if gc.instanceID != "" {
		req.InstanceID = &gc.instanceID
	}
	if g.mu.epoch == 0 {
		// Joining. Later heartbeats leave these null: no change.
		req.SubscribedTopicNames = append([]string{}, gc.topics...)
		req.SubscribedTopicRegex = &gc.regex
		if gc.assignor != "" {
			req.ServerAssignor = &gc.assignor
		}
	}
	for _, tp := range sortedTPKeys(g.mu.owned) {
		if n := len(req.Owned); n > 0 && req.Owned[n-1].Topic == tp.topic {
			req.Owned[n-1].Partitions = append(req.Owned[n-1].Partitions, tp.partition)
			continue
		}
		req.Owned = append(req.Owned, protocol.ConsumerGroupHeartbeatRequestTopic{Topic: tp.topic, Partitions: []int32{tp.partition}})
	}
	return req, g.mu.lives
}

// rejoinLocked drops every partition without committing (OnLost) and
// makes the next heartbeat a join.
// REQUIRES: mu held.
func (g *GroupConsumer) rejoinLocked() {
	g.loseLocked(sortedTPKeys(g.mu.owned))
	clear(g.mu.assigned)
	// A new life, a new id: the member picks it, so that a join whose
	// answer was lost and is sent again does not make a second member.
	g.mu.memberID, g.mu.epoch = rand.Text(), 0
	g.mu.lives++
	g.c.member.Store(nil)
}

// applyHeartbeat takes in a successful heartbeat's answer, sent in life:
// the member's identity, and its assignment. Owned partitions missing from
// it are to be revoked (by Poll); new ones are looked up (their committed
// offsets) and handed to the consumer. It returns when to heartbeat next.
func (g *GroupConsumer) applyHeartbeat(r *protocol.ConsumerGroupHeartbeatResponse, life int) time.Duration {
	interval := time.Duration(r.HeartbeatIntervalMs) * time.Millisecond
	if interval <= 0 {
		interval = g.cfg.group.sessionTimeout / 3
	}
	interval = max(interval, minHeartbeatInterval)

	g.mu.Lock()
	if g.mu.lives != life || g.mu.closed || r.MemberEpoch <= 0 {
		g.mu.Unlock()
		return interval
	}
	if r.MemberID != g.mu.memberID || r.MemberEpoch != g.mu.epoch {
		g.mu.memberID, g.mu.epoch = r.MemberID, r.MemberEpoch
		g.c.member.Store(&memberIdentity{group: g.group, id: r.MemberID, epoch: r.MemberEpoch})
	}
	clear(g.mu.assigned)
	for _, t := range r.Assignment {
		for _, p := range t.Partitions {
			g.mu.assigned[topicPartition{t.Topic, p}] = true
		}
	}
	revoked := false
	for tp := range g.mu.owned {
		switch {
		case g.mu.assigned[tp]:
			delete(g.mu.revoking, tp) // the coordinator changed its mind
		case !g.mu.revoking[tp] && !g.mu.releasing[tp]:
			g.mu.revoking[tp] = true
			revoked = true
		}
	}
	if revoked {
		g.notifyLocked()
	}
	var added []topicPartition
	for tp := range g.mu.assigned {
		if !g.mu.owned[tp] {
			added = append(added, tp)
		}
	}
	g.mu.Unlock()

	if len(added) > 0 && !g.assign(added, life) {
		// Try again soon: the next answer lists them again.
		return min(interval, g.cfg.backoff(1))
	}
	return interval
}

// assign starts consuming partitions newly assigned in life, at their
// committed offsets, and queues OnAssigned. It reports false if the
// offsets could not be looked up.
func (g *GroupConsumer) assign(tps []topicPartition, life int) bool {
	// Bounded well within the session, which heartbeats must keep alive.
	ctx, cancel := context.WithTimeout(g.hbCtx, min(g.cfg.requestTimeout, g.cfg.group.sessionTimeout/2))
	defer cancel()
	offsets, err := g.committedOffsets(ctx, tps)
	if err != nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mu.lives != life || g.mu.closed {
		return true
	}
	var got []topicPartition
	for _, tp := range tps {
		if !g.mu.assigned[tp] || g.mu.owned[tp] {
			continue
		}
		g.mu.owned[tp] = true
		off, ok := offsets[tp]
		if !ok {
			off = -1
		}
		g.c.assignFrom(tp, off)
		got = append(got, tp)
	}
	if len(got) > 0 {
		slices.SortFunc(got, compareTP)
		g.mu.events = append(g.mu.events, groupEvent{assigned: true, tps: publicTPs(got)})
		g.notifyLocked()
	}
	return true
}

// committedOffsets looks up the group's committed offsets of partitions
// (OffsetFetch): -1 for those with none.
func (g *GroupConsumer) committedOffsets(ctx context.Context, tps []topicPartition) (map[topicPartition]int64, error) {
	req := &protocol.OffsetFetchRequest{GroupID: g.group, Topics: []protocol.OffsetFetchRequestTopic{}}
	slices.SortFunc(tps, compareTP)
	for _, tp := range tps {
		if n := len(req.Topics); n > 0 && req.Topics[n-1].Name == tp.topic {
			req.Topics[n-1].Partitions = append(req.Topics[n-1].Partitions, tp.partition)
			continue
		}
		req.Topics = append(req.Topics, protocol.OffsetFetchRequestTopic{Name: tp.topic, Partitions: []int32{tp.partition}})
	}
	var offsets map[topicPartition]int64
	err := retryOp(ctx, g.cfg, func() error {
		resp, err := g.cl.controllerRequest(ctx, req)
		if err != nil {
			return err
		}
		offsets, err = offsetFetchResult(resp.(*protocol.OffsetFetchResponse))
		if errors.Is(err, protocol.ErrNotController) {
			g.cl.forgetController()
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("weir/client: group %q: fetch committed offsets: %w", g.group, err)
	}
	return offsets, nil
}

// offsetFetchResult reads an OffsetFetch response: every partition's
// committed offset (-1 for none), or the first error.
func offsetFetchResult(r *protocol.OffsetFetchResponse) (map[topicPartition]int64, error) {
	if err := protocol.ErrorForCodeMessage(r.ErrorCode, nil); err != nil {
		return nil, err
	}
	offsets := map[topicPartition]int64{}
	for _, t := range r.Topics {
		for _, p := range t.Partitions {
			if err := protocol.ErrorForCode(p.ErrorCode, ""); err != nil {
				return nil, fmt.Errorf("%s[%d]: %w", t.Name, p.Partition, err)
			}
			offsets[topicPartition{t.Name, p.Partition}] = p.CommittedOffset
		}
	}
	return offsets, nil
}
