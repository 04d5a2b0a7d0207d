package client

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
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
				cp.failures = 0
				c.leadLocked(cp, addr)
				continue
			}
		}
		c.retryLocked(cp, err)
	}
}

// fetchLoop fetches from one broker: its share of the partitions the
// broker leads (a consumer runs FetchConnections loops per broker, each
// partition served by one, see Consumer.leadLocked), as long polls on a
// connection of its own (the broker holds a long poll, and a connection
// answers in order, so sharing it would hold up other requests). It also
// looks up the start offsets of its partitions. The loops of a broker
// fetch, and decode, side by side.
//
// Fetches are pipelined, two deep: when a response comes, the loop finds
// where each partition goes on from its frame headers (scanFrames), sends
// the next fetch, and only then decodes the response's records, so that
// the broker sends the next response while this one is decoded (see
// handle).
type fetchLoop struct {
	c *Consumer
	fetchLoopKey
	// reserved is the loop's part of Consumer.reserved (guarded by its mu).
	reserved int64
	// wake (capacity 1) says partitions may be ready to fetch.
	wake chan struct{}

	// Owned by run.
	conn    *conn
	decoder frameDecoder
	rotate  int
	// fresh is a buffer nothing aliases, for a later response to be read
	// into (see prepareFresh).
	fresh []byte
	// pool holds buffers whose records were all released.
	pool bufferPool
	// reused counts the responses read into a buffer from pool (for
	// tests).
	reused atomic.Int64
}

// claim is a partition a loop has taken for one request, with what it
// looked like then.
type claim struct {
	cp     *consumerPartition
	gen    uint64
	offset int64
	// void: decoding the response this claim was pipelined behind found
	// damage scanFrames did not, so offset does not follow what was
	// stored: the result is dropped, and the partition fetched again from
	// where it stands.
	void bool
}

// fetchLoopKey names a fetch loop: its broker's address, and its lane,
// which of the broker's FetchConnections loops it is.
type fetchLoopKey struct {
	addr string
	lane int
}

// serves reports whether the loop fetches cp (while cp's leader is its
// broker).
func (f *fetchLoop) serves(cp *consumerPartition) bool {
	return cp.leader == f.addr && cp.lane == f.lane
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
	// inflight is the fetch sent and not yet handled: at most one besides
	// the response being decoded.
	var inflight *pendingFetch
	defer func() {
		if inflight != nil {
			inflight.cancel() // ends its call: conn.do answers into its done
		}
	}()
	for {
		if inflight == nil {
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
			// NB: resolve waits for its answer, with no fetch in flight
			// ahead of it on the connection.
			if len(resets) > 0 {
				f.resolve(resets)
			}
			if len(fetches) > 0 {
				inflight = f.send(fetches, maxBytes)
			}
			if f.c.ctx.Err() != nil {
				return
			}
			if inflight == nil {
				continue
			}
		}
		pf := inflight
		inflight = nil
		if r, ok := f.await(pf); ok {
			inflight = f.handle(pf, r)
		}
		if f.c.ctx.Err() != nil {
			return
		}
	}
}

// claim takes the partitions this loop can serve now: those whose start
// offset is to be looked up, and, while what the consumer holds and what
// its fetches may add stay under MaxPrefetchBytes, those to fetch. It
// returns the bytes the fetch may ask for, reserved for it (see
// Consumer.reserved), and when a partition backing off is due.
func (f *fetchLoop) claim() (resets, fetches []claim, maxBytes int32, next time.Time) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, nil, 0, time.Time{}
	}
	room := f.roomLocked()
	now := time.Now()
	n := len(c.order)
	f.rotate++
	for i := range n {
		cp := c.parts[c.order[(f.rotate+i)%n]]
		if !f.serves(cp) || cp.busy || cp.err != nil {
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
	if len(fetches) > 0 {
		maxBytes = int32(min(room, int64(c.cfg.fetchMaxBytes)))
		f.reserveLocked(int64(maxBytes)) // until the response is scanned (claimNext) or the fetch fails
	}
	return resets, fetches, maxBytes, next
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

// current reports whether a claim still stands: it is not void, and the
// partition is assigned and was not sought since.
// REQUIRES: mu held.
func (f *fetchLoop) current(cl claim) bool {
	return !cl.void && f.c.parts[cl.cp.tp] == cl.cp && cl.cp.gen == cl.gen
}

// request sends req on the loop's connection, dialing it if need be. On a
// connection error the connection is dropped and every claimed partition
// goes back to the metadata loop (its leader may have moved) after a
// backoff.
func (f *fetchLoop) request(claims []claim, req protocol.Request, timeout time.Duration) (protocol.Response, bool) {
	ctx, cancel := context.WithTimeout(f.c.ctx, timeout)
	defer cancel()
	err := f.dial(ctx)
	var resp protocol.Response
	if err == nil {
		resp, err = f.conn.Request(ctx, req)
	}
	if err == nil {
		return resp, true
	}
	f.requestFailed(claims, err)
	return nil, false
}

// dial makes sure the loop has a live connection.
func (f *fetchLoop) dial(ctx context.Context) error {
	if f.conn != nil && !f.conn.Dead() {
		return nil
	}
	if f.conn != nil {
		f.conn.Close()
		f.conn = nil
	}
	nc, err := dialConn(ctx, f.addr, &f.c.cfg)
	if err != nil {
		return err
	}
	f.conn = nc
	return nil
}

// requestFailed ends the claims of a request that failed with err: unless
// the consumer is closing, the partitions go back to the metadata loop
// after a backoff.
func (f *fetchLoop) requestFailed(claims []claim, err error) {
	c := f.c
	if c.ctx.Err() != nil {
		f.release(claims, false)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cl := range claims {
		cl.cp.busy = false
		if f.current(cl) {
			cl.cp.leader = ""
			c.retryLocked(cl.cp, err)
		}
	}
	c.wakeMetadata()
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
			c.leadLocked(cp, leaderAddr)
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
