package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"weir/protocol"
)

// metadataLoop finds the leaders of assigned partitions whose leader is not
// known, and hands each partition to its leader's fetch loop.
func (c *Consumer) metadataLoop() {
	defer c.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		topics, next := c.leaderless()
		if len(topics) > 0 {
			ctx, cancel := context.WithTimeout(c.ctx, c.cfg.requestTimeout)
			err := c.cl.refresh(ctx, topics...)
			cancel()
			if c.ctx.Err() != nil {
				return
			}
			c.placeLeaderless(err)
			continue
		}
		if next.IsZero() {
			timer.Stop()
		} else {
			timer.Reset(time.Until(next))
		}
		select {
		case <-c.metaWake:
		case <-timer.C:
		case <-c.ctx.Done():
			return
		}
	}
}

// leaderless returns the topics of partitions waiting for a leader now, and
// the earliest time one waiting for a retry is due.
func (c *Consumer) leaderless() (topics []string, next time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	seen := map[string]bool{}
	for _, cp := range c.parts {
		if cp.leader != "" || cp.err != nil {
			continue
		}
		if cp.retryAt.After(now) {
			if next.IsZero() || cp.retryAt.Before(next) {
				next = cp.retryAt
			}
			continue
		}
		if !seen[cp.tp.topic] {
			seen[cp.tp.topic] = true
			topics = append(topics, cp.tp.topic)
		}
	}
	return topics, next
}

// placeLeaderless gives the partitions waiting for a leader the leader the
// refreshed metadata names, or backs them off.
func (c *Consumer) placeLeaderless(refreshErr error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	now := time.Now()
	for _, cp := range c.parts {
		if cp.leader != "" || cp.err != nil || cp.retryAt.After(now) {
			continue
		}
		err := refreshErr
		if err == nil {
			var addr string
			addr, err = c.cl.leaderState(cp.tp.topic, cp.tp.partition)
			if err == nil {
				cp.leader, cp.failures = addr, 0
				c.loopLocked(addr).signal()
				continue
			}
		}
		c.retryLocked(cp, err)
	}
}

// fetchLoop fetches from one broker: the partitions it leads, as one long
// poll at a time on a connection of its own (the broker holds a long poll,
// and a connection answers in order, so sharing it would hold up other
// requests). It also looks up the start offsets of its partitions.
type fetchLoop struct {
	c    *Consumer
	addr string
	// wake (capacity 1) says partitions may be ready to fetch.
	wake chan struct{}

	// Owned by run.
	conn    *conn
	decoder frameDecoder
	rotate  int
}

// claim is a partition a loop has taken for one request, with what it
// looked like then.
type claim struct {
	cp     *consumerPartition
	gen    uint64
	offset int64
}

func (f *fetchLoop) signal() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *fetchLoop) run() {
	defer f.c.wg.Done()
	defer func() {
		if f.conn != nil {
			f.conn.Close()
		}
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		resets, fetches, maxBytes, next := f.claim()
		if len(resets) == 0 && len(fetches) == 0 {
			if next.IsZero() {
				timer.Stop()
			} else {
				timer.Reset(time.Until(next))
			}
			select {
			case <-f.wake:
			case <-timer.C:
			case <-f.c.ctx.Done():
				return
			}
			continue
		}
		if len(resets) > 0 {
			f.resolve(resets)
		}
		if len(fetches) > 0 {
			f.fetch(fetches, maxBytes)
		}
		if f.c.ctx.Err() != nil {
			return
		}
	}
}

// claim takes the partitions this loop can serve now: those whose start
// offset is to be looked up, and, while the consumer holds less than
// MaxPrefetchBytes, those to fetch. It returns the bytes the fetch may ask
// for, and when a partition backing off is due.
func (f *fetchLoop) claim() (resets, fetches []claim, maxBytes int32, next time.Time) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, nil, 0, time.Time{}
	}
	room := c.cfg.maxPrefetchBytes - c.buffered
	now := time.Now()
	n := len(c.order)
	f.rotate++
	for i := range n {
		cp := c.parts[c.order[(f.rotate+i)%n]]
		if cp.leader != f.addr || cp.busy || cp.err != nil {
			continue
		}
		if cp.retryAt.After(now) {
			if next.IsZero() || cp.retryAt.Before(next) {
				next = cp.retryAt
			}
			continue
		}
		switch {
		case cp.needsReset:
			resets = append(resets, claim{cp: cp, gen: cp.gen})
		case room > 0:
			fetches = append(fetches, claim{cp: cp, gen: cp.gen, offset: cp.fetchOffset})
		default:
			continue
		}
		cp.busy = true
	}
	return resets, fetches, int32(min(room, int64(c.cfg.fetchMaxBytes))), next
}

// release ends the claims, waking Polls if records or errors came.
func (f *fetchLoop) release(claims []claim, notify bool) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cl := range claims {
		cl.cp.busy = false
	}
	if notify && !c.closed {
		c.notifyLocked()
	}
}

// current reports whether a claim still stands: the partition is assigned
// and was not sought since.
// REQUIRES: mu held.
func (f *fetchLoop) current(cl claim) bool {
	return f.c.parts[cl.cp.tp] == cl.cp && cl.cp.gen == cl.gen
}

// request sends req on the loop's connection, dialing it if need be. On a
// connection error the connection is dropped and every claimed partition
// goes back to the metadata loop (its leader may have moved) after a
// backoff.
func (f *fetchLoop) request(claims []claim, req protocol.Request, timeout time.Duration) (protocol.Response, bool) {
	c := f.c
	ctx, cancel := context.WithTimeout(c.ctx, timeout)
	defer cancel()
	var err error
	if f.conn == nil || f.conn.Dead() {
		if f.conn != nil {
			f.conn.Close()
			f.conn = nil
		}
		var nc *conn
		if nc, err = dialConn(ctx, f.addr, &c.cfg); err == nil {
			f.conn = nc
		}
	}
	var resp protocol.Response
	if err == nil {
		resp, err = f.conn.Request(ctx, req)
	}
	if err == nil {
		return resp, true
	}
	if c.ctx.Err() != nil {
		f.release(claims, false)
		return nil, false
	}
	c.mu.Lock()
	for _, cl := range claims {
		cl.cp.busy = false
		if f.current(cl) {
			cl.cp.leader = ""
			c.retryLocked(cl.cp, err)
		}
	}
	c.wakeMetadata()
	c.mu.Unlock()
	return nil, false
}

// resolve looks up the start offsets of partitions with ListOffsets.
func (f *fetchLoop) resolve(claims []claim) {
	c := f.c
	req := &protocol.ListOffsetsRequest{}
	for _, cl := range claims {
		addListOffsets(req, cl.cp.tp, int64(cl.cp.resetTo))
	}
	resp, ok := f.request(claims, req, c.cfg.requestTimeout)
	if !ok {
		return
	}
	r := resp.(*protocol.ListOffsetsResponse)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cl := range claims {
		cp := cl.cp
		cp.busy = false
		if !f.current(cl) {
			continue
		}
		p, err := listOffsetsPartition(r, cp.tp.topic, cp.tp.partition)
		if err != nil {
			c.retryLocked(cp, err)
			continue
		}
		if err := protocol.ErrorForCodeMessage(p.ErrorCode, p.ErrorMessage); err != nil {
			f.partitionErrorLocked(cp, p.ErrorCode, err, p.LeaderID, p.LeaderAddress)
			continue
		}
		cp.position, cp.fetchOffset, cp.needsReset = p.Offset, p.Offset, false
		cp.failures = 0
	}
	f.signal() // fetch them next
}

// addListOffsets adds a partition to a ListOffsets request.
func addListOffsets(req *protocol.ListOffsetsRequest, tp topicPartition, timestamp int64) {
	p := protocol.ListOffsetsRequestPartition{Partition: tp.partition, Timestamp: timestamp}
	for i := range req.Topics {
		if req.Topics[i].Name == tp.topic {
			req.Topics[i].Partitions = append(req.Topics[i].Partitions, p)
			return
		}
	}
	req.Topics = append(req.Topics, protocol.ListOffsetsRequestTopic{Name: tp.topic, Partitions: []protocol.ListOffsetsRequestPartition{p}})
}

// fetch long-polls the claimed partitions and stores what comes back.
func (f *fetchLoop) fetch(claims []claim, maxBytes int32) {
	c := f.c
	maxBytes = max(maxBytes, 1)
	req := &protocol.FetchRequest{
		MaxWaitMs: int32(c.cfg.fetchMaxWait.Milliseconds()),
		MinBytes:  1,
		MaxBytes:  maxBytes,
	}
	member := c.member.Load()
	if member != nil {
		// A group member: the broker fences partitions it no longer owns.
		req.Version = 1
		req.GroupID, req.MemberID, req.MemberEpoch = &member.group, member.id, member.epoch
	}
	for _, cl := range claims {
		p := protocol.FetchRequestPartition{Partition: cl.cp.tp.partition, FetchOffset: cl.offset, PartitionMaxBytes: maxBytes}
		added := false
		for i := range req.Topics {
			if req.Topics[i].Name == cl.cp.tp.topic {
				req.Topics[i].Partitions = append(req.Topics[i].Partitions, p)
				added = true
				break
			}
		}
		if !added {
			req.Topics = append(req.Topics, protocol.FetchRequestTopic{Name: cl.cp.tp.topic, Partitions: []protocol.FetchRequestPartition{p}})
		}
	}
	resp, ok := f.request(claims, req, c.cfg.fetchMaxWait+c.cfg.requestTimeout)
	if !ok {
		return
	}
	r := resp.(*protocol.FetchResponse)

	// Decode outside the lock: it is the CPU-heavy part.
	type result struct {
		p    *protocol.FetchResponsePartition
		recs []*Record
		size int64
		next int64
		err  error
	}
	results := make([]result, len(claims))
	for i, cl := range claims {
		p, err := fetchPartition(r, cl.cp.tp)
		results[i] = result{p: p, err: err}
		if err == nil && p.ErrorCode == protocol.CodeNone {
			results[i].recs, results[i].size, results[i].next, results[i].err = f.decoder.decodeSized(cl.cp.tp.topic, cl.cp.tp.partition, p.Records, cl.offset)
		}
	}

	notify := false
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, cl := range claims {
		cp, res := cl.cp, results[i]
		cp.busy = false
		if !f.current(cl) {
			continue // sought or unassigned meanwhile: the records are stale
		}
		if res.p == nil {
			c.retryLocked(cp, res.err)
			continue
		}
		if code := res.p.ErrorCode; member != nil && (code == protocol.CodeUnknownMemberID || code == protocol.CodeFencedMemberEpoch) {
			f.fencedLocked(cp, member)
			continue
		}
		if code := res.p.ErrorCode; code != protocol.CodeNone {
			err := protocol.ErrorForCodeMessage(code, res.p.ErrorMessage)
			notify = f.partitionErrorLocked(cp, code, err, res.p.LeaderID, res.p.LeaderAddress) || notify
			continue
		}
		if len(res.recs) > 0 {
			n := res.size
			cp.bytes += n
			c.buffered += n
			if cp.records == nil {
				cp.records = res.recs // decode's own slice: no copy
			} else {
				cp.records = append(cp.records, res.recs...)
			}
			notify = true
		}
		cp.fetchOffset = max(cp.fetchOffset, res.next)
		if res.err != nil {
			// Keep the records before the damage; fetch the rest again.
			c.retryLocked(cp, res.err)
			notify = notify || cp.err != nil
			continue
		}
		cp.failures = 0
	}
	if notify && !c.closed {
		c.notifyLocked()
	}
}

// fencedLocked handles a fetch the group fenced (UnknownMemberID or
// FencedMemberEpoch) for the partition. If the member's identity changed
// since the fetch was sent (a heartbeat brought a new epoch), the fetch is
// just sent again with the new one. Otherwise the member does not own the
// partition any more: it is dropped with its buffered records, and the
// group is told.
// REQUIRES: mu held.
func (f *fetchLoop) fencedLocked(cp *consumerPartition, sent *memberIdentity) {
	c := f.c
	if c.member.Load() != sent {
		f.signal()
		return
	}
	c.unassignLocked(cp.tp)
	if c.onFenced != nil {
		c.onFenced(cp.tp)
	}
}

// recordsBytes is what records count against MaxPrefetchBytes.
func recordsBytes(recs []*Record) int64 {
	var n int64
	for _, r := range recs {
		n += int64(r.size())
	}
	return n
}

// partitionErrorLocked handles a partition's error code from a fetch or a
// list offsets. It reports whether the partition failed (for Poll).
// REQUIRES: mu held.
func (f *fetchLoop) partitionErrorLocked(cp *consumerPartition, code protocol.ErrorCode, err error, leaderID int32, leaderAddr string) bool {
	c := f.c
	switch code {
	case protocol.CodeOffsetOutOfRange:
		if c.cfg.autoReset {
			// A seek to resetOffset: what was fetched before goes.
			c.dropLocked(cp)
			cp.gen++
			cp.needsReset, cp.resetTo = true, c.cfg.resetOffset
			f.signal()
			return false
		}
		c.failLocked(cp, fmt.Errorf("fetch offset %d: %w", cp.fetchOffset, err))
		return true
	case protocol.CodeNotLeader, protocol.CodeLeaderNotAvailable, protocol.CodeUnknownTopicOrPartition:
		c.cl.noteLeaderError(cp.tp.topic, cp.tp.partition, code, leaderID, leaderAddr)
		if code == protocol.CodeNotLeader && leaderAddr != "" {
			// Follow the broker's pointer at once.
			cp.leader = leaderAddr
			c.loopLocked(leaderAddr).signal()
			return false
		}
		cp.leader = ""
		c.retryLocked(cp, err)
		c.wakeMetadata()
		return cp.err != nil
	}
	if errors.Is(err, protocol.ErrCorruptMessage) || code.Retriable() {
		c.retryLocked(cp, err)
		return cp.err != nil
	}
	c.failLocked(cp, err)
	return true
}

// fetchPartition finds a partition's result in a fetch response.
func fetchPartition(r *protocol.FetchResponse, tp topicPartition) (*protocol.FetchResponsePartition, error) {
	for i := range r.Topics {
		if r.Topics[i].Name != tp.topic {
			continue
		}
		for j := range r.Topics[i].Partitions {
			if p := &r.Topics[i].Partitions[j]; p.Partition == tp.partition {
				return p, nil
			}
		}
	}
	return nil, fmt.Errorf("%w: Fetch response lacks %s[%d]", ErrProtocol, tp.topic, tp.partition)
}
