package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"weir/protocol"
)

// cluster is one client's view of the brokers: the seed addresses it
// bootstraps from, a metadata cache (brokers, the controller, and for each
// topic asked about its partitions' leaders), and a pool of one connection
// per broker address. Each Producer, Consumer and Admin has its own.
//
// The cache is refreshed on demand: when a topic is first used, when a
// leader is unknown, and when a broker answers NotLeader (with the leader's
// address, which is put in the cache at once), LeaderNotAvailable or
// UnknownTopicOrPartition (which forget the partition's leader, so the next
// use asks again).
type cluster struct {
	cfg *config

	// refreshMu serializes metadata requests, so that many partitions
	// losing their leader at once share one rather than send a burst (see
	// refresh). It is held during I/O; never take it while holding mu.
	refreshMu sync.Mutex
	// refreshed is when the last successful refresh began. Guarded by
	// refreshMu.
	refreshed time.Time

	// mu guards the cache and the pool. Never held during I/O.
	mu struct {
		sync.Mutex
		brokers    map[int32]string // node id -> host:port
		controller int32            // protocol.NoNode if unknown
		topics     map[string]*topicMeta
		conns      map[string]*conn
		nextAddr   int // rotates the broker tried first
		// suspects are addresses that did not answer in time lately, with
		// when that stops counting: anyRequest tries them last.
		suspects map[string]time.Time
		closed   bool
	}
}

// topicMeta is what the cache knows of a topic.
type topicMeta struct {
	partitions []partitionMeta
}

// partitionMeta is what the cache knows of a partition.
type partitionMeta struct {
	leaderID   int32
	leaderAddr string // "" when unknown: the next use refreshes
}

func newCluster(cfg *config) *cluster {
	cl := &cluster{cfg: cfg}
	cl.mu.brokers = map[int32]string{}
	cl.mu.controller = protocol.NoNode
	cl.mu.topics = map[string]*topicMeta{}
	cl.mu.conns = map[string]*conn{}
	cl.mu.suspects = map[string]time.Time{}
	return cl
}

// close closes every pooled connection; later calls fail with ErrClosed.
func (cl *cluster) close() {
	cl.mu.Lock()
	cl.mu.closed = true
	conns := cl.mu.conns
	cl.mu.conns = map[string]*conn{}
	cl.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// conn returns the pooled connection to addr, dialing it if there is none
// or the last one died.
func (cl *cluster) conn(ctx context.Context, addr string) (*conn, error) {
	cl.mu.Lock()
	if cl.mu.closed {
		cl.mu.Unlock()
		return nil, ErrClosed
	}
	if c := cl.mu.conns[addr]; c != nil && !c.Dead() {
		cl.mu.Unlock()
		return c, nil
	}
	cl.mu.Unlock()

	c, err := dialConn(ctx, addr, cl.cfg)
	if err != nil {
		return nil, err
	}
	cl.mu.Lock()
	old := cl.mu.conns[addr]
	switch {
	case cl.mu.closed:
		cl.mu.Unlock()
		c.Close()
		return nil, ErrClosed
	case old != nil && !old.Dead():
		// Another caller dialed at the same time: keep theirs.
		cl.mu.Unlock()
		c.Close()
		return old, nil
	}
	cl.mu.conns[addr] = c
	cl.mu.Unlock()
	if old != nil {
		old.Close() // dead already; this waits for its goroutines
	}
	return c, nil
}

// suspectFor is how long an address that did not answer in time is tried
// last by anyRequest.
const suspectFor = 10 * time.Second

// suspect makes anyRequest try addr last for a while: it did not answer a
// request in time, so it may be frozen or cut off.
func (cl *cluster) suspect(addr string) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cl.mu.suspects[addr] = time.Now().Add(suspectFor)
}

// addrs returns the addresses to try for a request any broker can answer:
// the known brokers, then the seeds, starting at a rotating position so
// that one dead broker does not take every first try, and suspects last.
func (cl *cluster) addrs() []string {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	var out []string
	for _, id := range sortedKeys(cl.mu.brokers) {
		out = append(out, cl.mu.brokers[id])
	}
	for _, s := range cl.cfg.seeds {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	cl.mu.nextAddr++
	k := cl.mu.nextAddr % len(out)
	out = append(out[k:], out[:k]...)
	now := time.Now()
	for addr, until := range cl.mu.suspects {
		if now.After(until) {
			delete(cl.mu.suspects, addr)
		}
	}
	slices.SortStableFunc(out, func(a, b string) int {
		_, sa := cl.mu.suspects[a]
		_, sb := cl.mu.suspects[b]
		switch {
		case sa == sb:
			return 0
		case sb:
			return -1
		default:
			return 1
		}
	})
	return out
}

func sortedKeys(m map[int32]string) []int32 {
	keys := make([]int32, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// metadataTryTimeout bounds one broker's answer to Metadata in anyRequest.
// Every broker answers it from memory, in milliseconds; one that does not
// within this is frozen, cut off or still joining its cluster, and the
// next broker is asked. With the whole request timeout per broker, one
// frozen broker held every metadata lookup that asked it first for that
// long (found by the soak test).
const metadataTryTimeout = 2 * time.Second

// anyRequest sends req to any broker that answers, trying each known
// address once on connection errors (and, for Metadata, on a slow answer).
func (cl *cluster) anyRequest(ctx context.Context, req protocol.Request) (protocol.Response, error) {
	var errs []error
	for _, addr := range cl.addrs() {
		tryCtx, cancel := ctx, context.CancelFunc(func() {})
		if _, ok := req.(*protocol.MetadataRequest); ok {
			tryCtx, cancel = context.WithTimeout(ctx, metadataTryTimeout)
		}
		resp, err := cl.requestTo(tryCtx, addr, req)
		timedOut := tryCtx.Err() != nil
		cancel()
		if err == nil {
			return resp, nil
		}
		if ctx.Err() != nil || errors.Is(err, ErrClosed) {
			return nil, err
		}
		if timedOut {
			cl.suspect(addr)
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("weir/client: no broker answered %v: %w", req.Key(), errors.Join(errs...))
}

// requestTo sends req to addr within one request timeout, and
// requestTimeoutSlack more: admin requests carry timeout_ms =
// RequestTimeout, and the broker's answer when that passes (CreateTopics:
// created, some leaders still electing) must not arrive after the client
// gave up, or its retry gets TopicAlreadyExists.
func (cl *cluster) requestTo(ctx context.Context, addr string, req protocol.Request) (protocol.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, cl.cfg.requestTimeout+requestTimeoutSlack)
	defer cancel()
	c, err := cl.conn(ctx, addr)
	if err != nil {
		return nil, err
	}
	return c.Request(ctx, req)
}

// refresh asks a broker for the metadata of topics (and of every topic
// already cached, which costs little and keeps them fresh), and updates the
// cache.
//
// A caller that waited for another caller's refresh, begun after it asked
// and covering its topics, takes that one's answer instead of sending its
// own: when a broker dies, each of its partitions asks, and one answer
// serves them all.
func (cl *cluster) refresh(ctx context.Context, topics ...string) error {
	asked := time.Now()
	cl.refreshMu.Lock()
	defer cl.refreshMu.Unlock()
	cl.mu.Lock()
	names := []string{} // not nil: nil asks for every topic
	for name := range cl.mu.topics {
		names = append(names, name)
	}
	cl.mu.Unlock()
	covered := true
	for _, t := range topics {
		if !slices.Contains(names, t) {
			names = append(names, t)
			covered = false
		}
	}
	if covered && cl.refreshed.After(asked) {
		return nil
	}
	began := time.Now()
	resp, err := cl.anyRequest(ctx, &protocol.MetadataRequest{Topics: names})
	if err != nil {
		return err
	}
	cl.update(resp.(*protocol.MetadataResponse))
	cl.refreshed = began
	return nil
}

// update puts a metadata response in the cache.
func (cl *cluster) update(m *protocol.MetadataResponse) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if len(m.Brokers) > 0 {
		cl.mu.brokers = map[int32]string{}
		for _, b := range m.Brokers {
			cl.mu.brokers[b.NodeID] = net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))
		}
	}
	cl.mu.controller = m.ControllerID
	for _, t := range m.Topics {
		if t.ErrorCode != protocol.CodeNone {
			delete(cl.mu.topics, t.Name) // gone, or never was
			continue
		}
		tm := &topicMeta{partitions: make([]partitionMeta, len(t.Partitions))}
		for i, p := range t.Partitions {
			pm := partitionMeta{leaderID: protocol.NoNode}
			if p.ErrorCode == protocol.CodeNone && p.LeaderID != protocol.NoNode {
				pm.leaderID = p.LeaderID
				pm.leaderAddr = cl.mu.brokers[p.LeaderID]
			}
			// Partitions come in order, from 0; index by the field anyway.
			if int(p.Partition) < len(tm.partitions) && p.Partition >= 0 {
				tm.partitions[p.Partition] = pm
			} else {
				tm.partitions[i] = pm
			}
		}
		cl.mu.topics[t.Name] = tm
	}
}

// metadataTopic asks for one topic's metadata and returns it as the broker
// sent it (admin's DescribeTopic uses it), updating the cache on the way.
func (cl *cluster) metadataTopic(ctx context.Context, name string) (*protocol.MetadataResponseTopic, error) {
	resp, err := cl.anyRequest(ctx, &protocol.MetadataRequest{Topics: []string{name}})
	if err != nil {
		return nil, err
	}
	m := resp.(*protocol.MetadataResponse)
	cl.update(m)
	for i := range m.Topics {
		if m.Topics[i].Name == name {
			t := &m.Topics[i]
			if err := protocol.ErrorForCode(t.ErrorCode, ""); err != nil {
				return nil, fmt.Errorf("weir/client: topic %q: %w", name, err)
			}
			return t, nil
		}
	}
	return nil, fmt.Errorf("%w: metadata response lacks topic %q", ErrProtocol, name)
}

// partitionCount returns the number of partitions of topic, from the cache
// or else from the brokers.
func (cl *cluster) partitionCount(ctx context.Context, topic string) (int32, error) {
	cl.mu.Lock()
	tm := cl.mu.topics[topic]
	cl.mu.Unlock()
	if tm != nil {
		return int32(len(tm.partitions)), nil
	}
	if err := cl.refresh(ctx, topic); err != nil {
		return 0, err
	}
	cl.mu.Lock()
	tm = cl.mu.topics[topic]
	cl.mu.Unlock()
	if tm == nil {
		return 0, fmt.Errorf("weir/client: topic %q: %w", topic, protocol.ErrUnknownTopicOrPartition)
	}
	return int32(len(tm.partitions)), nil
}

// cachedLeader returns the leader's address from the cache, or "".
func (cl *cluster) cachedLeader(topic string, partition int32) string {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	tm := cl.mu.topics[topic]
	if tm == nil || partition < 0 || int(partition) >= len(tm.partitions) {
		return ""
	}
	return tm.partitions[partition].leaderAddr
}

// leader returns the address of the partition's leader, refreshing the
// metadata if the cache does not know it. It fails with a *protocol.Error:
// UnknownTopicOrPartition or LeaderNotAvailable.
func (cl *cluster) leader(ctx context.Context, topic string, partition int32) (string, error) {
	if addr := cl.cachedLeader(topic, partition); addr != "" {
		return addr, nil
	}
	if err := cl.refresh(ctx, topic); err != nil {
		return "", err
	}
	return cl.leaderState(topic, partition)
}

// leaderState returns the partition's leader from the cache, or why there
// is none: UnknownTopicOrPartition or LeaderNotAvailable.
func (cl *cluster) leaderState(topic string, partition int32) (string, error) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	tm := cl.mu.topics[topic]
	if tm == nil || partition < 0 || int(partition) >= len(tm.partitions) {
		return "", fmt.Errorf("weir/client: %s[%d]: %w", topic, partition, protocol.ErrUnknownTopicOrPartition)
	}
	if addr := tm.partitions[partition].leaderAddr; addr != "" {
		return addr, nil
	}
	return "", fmt.Errorf("weir/client: %s[%d]: %w", topic, partition, protocol.ErrLeaderNotAvailable)
}

// setLeader records the leader a NotLeader response named, without a
// metadata round trip.
func (cl *cluster) setLeader(topic string, partition int32, id int32, addr string) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	tm := cl.mu.topics[topic]
	if tm == nil || partition < 0 || int(partition) >= len(tm.partitions) {
		return
	}
	tm.partitions[partition] = partitionMeta{leaderID: id, leaderAddr: addr}
	if id != protocol.NoNode {
		if _, ok := cl.mu.brokers[id]; !ok {
			cl.mu.brokers[id] = addr
		}
	}
}

// forgetLeader clears the partition's leader, so the next use refreshes.
func (cl *cluster) forgetLeader(topic string, partition int32) {
	cl.setLeader(topic, partition, protocol.NoNode, "")
}

// noteLeaderError updates the cache after a partition-level error: a
// NotLeader naming the leader moves the partition there; NotLeader without
// an address, LeaderNotAvailable and UnknownTopicOrPartition forget its
// leader.
func (cl *cluster) noteLeaderError(topic string, partition int32, code protocol.ErrorCode, leaderID int32, leaderAddr string) {
	switch code {
	case protocol.CodeNotLeader:
		if leaderAddr != "" {
			cl.setLeader(topic, partition, leaderID, leaderAddr)
			return
		}
		cl.forgetLeader(topic, partition)
	case protocol.CodeLeaderNotAvailable, protocol.CodeUnknownTopicOrPartition:
		cl.forgetLeader(topic, partition)
	}
}

// controllerAddr returns the controller's address if the cache knows it.
func (cl *cluster) controllerAddr() string {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.mu.controller == protocol.NoNode {
		return ""
	}
	return cl.mu.brokers[cl.mu.controller]
}

// controllerRequest sends req to the controller (learning who it is first if
// need be), or to any broker if it is unknown. On a connection error it
// forgets the controller, so that the caller's next try looks it up again
// (a dead controller's successor is elsewhere); the caller does the same on
// NotController.
func (cl *cluster) controllerRequest(ctx context.Context, req protocol.Request) (protocol.Response, error) {
	addr := cl.controllerAddr()
	if addr == "" {
		if err := cl.refresh(ctx); err != nil {
			return nil, err
		}
		addr = cl.controllerAddr()
	}
	if addr == "" {
		return cl.anyRequest(ctx, req)
	}
	resp, err := cl.requestTo(ctx, addr, req)
	if err != nil {
		cl.forgetController()
	}
	return resp, err
}

// forgetController makes the next controllerRequest look the controller up.
func (cl *cluster) forgetController() {
	cl.mu.Lock()
	cl.mu.controller = protocol.NoNode
	cl.mu.Unlock()
}

// backoff returns how long to wait before retry number attempt (from 1):
// the base doubled per retry up to the max, jittered by ±20%.
func (cfg *config) backoff(attempt int) time.Duration {
	return cfg.backoffUpTo(attempt, cfg.maxRetryBackoff)
}

// maxLeaderRetryBackoff caps the backoff of a request whose partition's
// leader is moving. An election takes about a second; polling for its
// outcome more often than the usual backoff (which reaches 1s) is what
// makes a leader change cost a producer little more than the election.
const maxLeaderRetryBackoff = 250 * time.Millisecond

// leaderBackoff is backoff for a retry after the leader was found gone
// or changed: capped at maxLeaderRetryBackoff.
func (cfg *config) leaderBackoff(attempt int) time.Duration {
	return cfg.backoffUpTo(attempt, min(cfg.maxRetryBackoff, maxLeaderRetryBackoff))
}

func (cfg *config) backoffUpTo(attempt int, limit time.Duration) time.Duration {
	d := min(cfg.retryBackoff, limit)
	for i := 1; i < attempt && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	jitter := 0.8 + 0.4*rand.Float64()
	return time.Duration(float64(d) * jitter)
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// retriable reports whether a failed request may be sent again: a
// retriable wire error, or a connection that failed (dial, I/O, a request
// timeout). Not: the caller's own cancellation, a closed client.
func retriable(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil || errors.Is(err, ErrClosed) {
		return false
	}
	var nr nonRetriable
	if errors.As(err, &nr) {
		return false
	}
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return pe.Retriable()
	}
	// A connection error, or a broker that broke the protocol (whose
	// connection is closed): a new connection may do better.
	return true
}
