package test

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"weir/client"
	"weir/protocol"
	"weir/protocol/record"
)

// ackPos is where an acknowledged record is, per the producer.
type ackPos struct {
	p   int32
	off int64
}

// loadAck is one acknowledged record of a partition.
type loadAck struct {
	at  time.Time
	seq int   // the value is loadValue(partition, seq)
	off int64 // the offset it was acknowledged at
}

// loadValue is the value (and key) of a partition's seq-th record.
func loadValue(p, seq int) string { return fmt.Sprintf("p%d-%06d", p, seq) }

// loadGen produces to every partition of a topic continuously, with acks
// all and the idempotent producer (the defaults), at most maxOutstanding
// records per partition unacknowledged (so that a stalled partition does
// not take the others' share), and records every acknowledgement. The
// values are "p<partition>-<sequence>", the sequence counting per
// partition from 0.
type loadGen struct {
	t     *testing.T
	topic string
	prod  *client.Producer
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once

	mu          sync.Mutex
	next        []int // next sequence per partition
	outstanding []int
	history     [][]loadAck // per partition, in the order acknowledged
	lastAck     []time.Time // per partition
	maxGap      []time.Duration
	acked       map[string]ackPos
	failed      int
	errs        []string // the first few failures
}

const (
	loadInterval   = 10 * time.Millisecond // a record per partition this often
	maxOutstanding = 32
)

func startLoad(t *testing.T, brokers, topic string, partitions int) *loadGen {
	t.Helper()
	prod, err := client.NewProducer(client.SeedBrokers(strings.Split(brokers, ",")...),
		client.ClientID("fault-load"),
		client.WithPartitioner(client.ExplicitPartitioner()),
		// Default timeouts otherwise: failover is measured as users get it.
		// Retry for as long as the test runs: a record is given up only
		// when the test ends.
		client.DeliveryTimeout(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	g := &loadGen{t: t, topic: topic, prod: prod, stop: make(chan struct{}), done: make(chan struct{}),
		next: make([]int, partitions), outstanding: make([]int, partitions), history: make([][]loadAck, partitions),
		lastAck: make([]time.Time, partitions), maxGap: make([]time.Duration, partitions), acked: map[string]ackPos{}}
	now := time.Now()
	for p := range g.lastAck {
		g.lastAck[p] = now
	}
	go g.run()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		g.finish(ctx)
	})
	return g
}

func (g *loadGen) run() {
	defer close(g.done)
	tick := time.NewTicker(loadInterval)
	defer tick.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-tick.C:
		}
		for p := range g.next {
			g.mu.Lock()
			if g.outstanding[p] >= maxOutstanding {
				g.mu.Unlock()
				continue
			}
			g.outstanding[p]++
			v := loadValue(p, g.next[p])
			g.next[p]++
			g.mu.Unlock()
			// Not under mu: Produce may call the promise itself.
			g.prod.Produce(context.Background(), &client.Record{Topic: g.topic, Partition: int32(p), Key: []byte(v), Value: []byte(v)}, g.promise)
		}
	}
}

func (g *loadGen) promise(r *client.Record, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now() // under mu: each partition's acknowledgements in time order
	p := r.Partition
	g.outstanding[p]--
	if err != nil {
		g.failed++
		if len(g.errs) < 5 {
			g.errs = append(g.errs, fmt.Sprintf("%s: %v", r.Value, err))
		}
		return
	}
	var vp, seq int
	fmt.Sscanf(string(r.Value), "p%d-%d", &vp, &seq)
	g.history[p] = append(g.history[p], loadAck{at: now, seq: seq, off: r.Offset})
	g.maxGap[p] = max(g.maxGap[p], now.Sub(g.lastAck[p]))
	g.lastAck[p] = now
	g.acked[string(r.Value)] = ackPos{p: p, off: r.Offset}
}

// resetGaps restarts the longest-gap bookkeeping: gaps() then covers the
// time from here on.
func (g *loadGen) resetGaps() {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	for p := range g.maxGap {
		g.maxGap[p] = 0
		if g.lastAck[p].Before(now) {
			g.lastAck[p] = now
		}
	}
}

// gaps returns, per partition, the longest time without an
// acknowledgement since resetGaps, counting the time since the last one.
func (g *loadGen) gaps() []time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := slices.Clone(g.maxGap)
	for p := range out {
		out[p] = max(out[p], time.Since(g.lastAck[p]))
	}
	return out
}

// ackCounts returns the acknowledgements per partition so far.
func (g *loadGen) ackCounts() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := make([]int, len(g.history))
	for p := range g.history {
		n[p] = len(g.history[p])
	}
	return n
}

// waitProgress waits until every partition has at least n more
// acknowledgements than in base, and at least minWait has passed; it
// returns when the last partition got there.
func (g *loadGen) waitProgress(what string, base []int, n int, minWait, timeout time.Duration) time.Duration {
	g.t.Helper()
	start := time.Now()
	var last time.Duration
	waitUntil(g.t, timeout, what, func() (bool, string) {
		now := g.ackCounts()
		for p := range now {
			if now[p] < base[p]+n {
				return false, fmt.Sprintf("acks per partition %v, from %v; %s", now, base, g.failures())
			}
		}
		if last == 0 {
			last = time.Since(start)
		}
		return time.Since(start) >= minWait, ""
	})
	return last
}

func (g *loadGen) failures() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return fmt.Sprintf("%d failed %v", g.failed, g.errs)
}

// finish stops producing and waits (until ctx is done) for every record
// to be acknowledged or to fail; it returns false if some were neither.
func (g *loadGen) finish(ctx context.Context) bool {
	ok := true
	g.once.Do(func() {
		close(g.stop)
		<-g.done
		ok = g.prod.Shutdown(ctx) == nil
	})
	return ok
}

// stopLoad stops the load, requires every record to be settled within
// 30 s and none to have failed, and returns the acknowledged records.
func (g *loadGen) stopLoad() map[string]ackPos {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if !g.finish(ctx) {
		g.t.Errorf("records neither acknowledged nor failed 30 s after the load stopped")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	var produced int
	for _, n := range g.next {
		produced += n
	}
	g.t.Logf("load: %d records produced, %d acknowledged, %d failed; longest gap between acknowledgements per partition: %v",
		produced, len(g.acked), g.failed, g.maxGap)
	if g.failed > 0 {
		// The producer retries for longer than the test runs: a failure
		// is an error it got that is not retriable.
		g.t.Errorf("%d records failed: %v", g.failed, g.errs)
	}
	return g.acked
}

// probeResult is the answer to one produce request sent by hand.
type probeResult struct {
	value string
	code  protocol.ErrorCode
	msg   string
	base  int64
	err   error // no answer: connection closed or timed out
	took  time.Duration
}

func (r probeResult) String() string {
	if r.err != nil {
		return fmt.Sprintf("%s: no answer after %v: %v", r.value, r.took.Round(time.Millisecond), r.err)
	}
	return fmt.Sprintf("%s: %v %q base offset %d after %v", r.value, r.code, r.msg, r.base, r.took.Round(time.Millisecond))
}

// probeAt is a probe's result and the partition it was sent for.
type probeAt struct {
	partition int32
	probeResult
}

// checkProbes checks that every acknowledged probe is in the log at the
// offset it was acknowledged with, and returns the probes' values (for
// checkLog).
func checkProbes(t *testing.T, got [][]*client.Record, probes []probeAt) map[string]bool {
	t.Helper()
	values := map[string]bool{}
	for _, r := range probes {
		values[r.value] = true
		if r.err != nil || r.code != protocol.CodeNone {
			continue // not acknowledged: it may or may not be there
		}
		log := got[r.partition]
		if r.base < 0 || r.base >= int64(len(log)) || string(log[r.base].Value) != r.value {
			t.Errorf("probe %s acknowledged for partition %d is not at that offset in the log (lost)", r.probeResult, r.partition)
		}
	}
	return values
}

// probeProduce sends one record to partition of topic at the broker at
// addr, on a connection of its own, with acks all and the broker-side
// timeout given, and waits for the answer up to 10 s past that timeout.
// No client logic: no retry, no redirect to another leader.
func probeProduce(addr, topic string, partition int32, value string, timeout time.Duration) probeResult {
	start := time.Now()
	res := probeResult{value: value, base: -1}
	fail := func(err error) probeResult {
		res.err, res.took = err, time.Since(start)
		return res
	}
	b := record.NewBuilder(record.CodecNone)
	b.Append(record.Record{Key: []byte(value), Value: []byte(value), Timestamp: time.Now().UnixMilli()})
	batch, err := b.Build()
	if err != nil {
		return fail(err)
	}
	req := &protocol.ProduceRequest{Acks: protocol.AcksAll, TimeoutMs: int32(timeout.Milliseconds()),
		Topics: []protocol.ProduceRequestTopic{{Name: topic,
			Partitions: []protocol.ProduceRequestPartition{{Partition: partition, Records: batch}}}}}
	r, err := rawCall(addr, req, timeout+10*time.Second)
	if err != nil {
		return fail(err)
	}
	resp := r.(*protocol.ProduceResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return fail(fmt.Errorf("answer for %d topics", len(resp.Topics)))
	}
	part := resp.Topics[0].Partitions[0]
	res.code, res.base, res.took = part.ErrorCode, part.BaseOffset, time.Since(start)
	if part.ErrorMessage != nil {
		res.msg = *part.ErrorMessage
	}
	return res
}

// rawCall sends req to the broker at addr on a connection of its own and
// returns the response, all within timeout. Unlike rawRequest it does not
// fail the test: a node may be down, frozen or cut off.
func rawCall(addr string, req protocol.Request, timeout time.Duration) (protocol.Response, error) {
	frame, err := protocol.AppendRequestFrame(nil, 1, "fault-test", req)
	if err != nil {
		return nil, err
	}
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	if _, err := conn.Write(frame); err != nil {
		return nil, err
	}
	return readResponse(conn, req)
}

// readResponse reads the response to req from r.
func readResponse(r io.Reader, req protocol.Request) (protocol.Response, error) {
	frame, err := protocol.ReadFrame(r, 64<<20, nil)
	if err != nil {
		return nil, fmt.Errorf("reading the %v response: %w", req.Key(), err)
	}
	_, body, err := protocol.DecodeResponseHeader(frame)
	if err != nil {
		return nil, err
	}
	resp := req.ResponseKind()
	if err := resp.Decode(protocol.NewReader(body)); err != nil {
		return nil, fmt.Errorf("decoding the %v response: %w", req.Key(), err)
	}
	return resp, nil
}

// failoverTrace follows a failover from the brokers' side: when each
// partition of the topic has a leader again among the nodes but the one
// at fault, and how that leader answers a record sent straight to it (no
// client logic in between). Set against the load's longest gaps, it tells
// a broker-side stall from a client-side one. The probes' values are
// "probe-<tag>-p<partition>".
type failoverTrace struct {
	start    time.Time
	leaderAt []time.Duration // 0 until seen
	leader   []*faultNode
	probes   []probeResult
	done     chan struct{}
}

// traceFailover starts a failoverTrace of topic's partitions from now,
// ignoring skip (the node at fault); it gives up after 20 s, or when ctx
// is done (the end of the test waits for it).
func (c *faultCluster) traceFailover(ctx context.Context, topic string, partitions int, skip *faultNode, tag string) *failoverTrace {
	tr := &failoverTrace{start: time.Now(), leaderAt: make([]time.Duration, partitions),
		leader: make([]*faultNode, partitions), probes: make([]probeResult, partitions), done: make(chan struct{})}
	c.t.Cleanup(func() { <-tr.done })
	go func() {
		defer close(tr.done)
		var probing sync.WaitGroup
		defer probing.Wait()
		deadline := time.Now().Add(20 * time.Second)
		for found := 0; found < partitions && time.Now().Before(deadline) && ctx.Err() == nil; {
			for _, n := range c.nodes {
				if n == skip {
					continue
				}
				rs, err := n.replicas(ctx, topic)
				if err != nil {
					continue
				}
				for p, s := range rs {
					if !s.leader || tr.leader[p] != nil {
						continue
					}
					tr.leaderAt[p], tr.leader[p] = time.Since(tr.start), n
					found++
					probing.Add(1)
					go func() {
						defer probing.Done()
						tr.probes[p] = probeProduce(n.client, topic, p, fmt.Sprintf("probe-%s-p%d", tag, p), 5*time.Second)
					}()
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	return tr
}

// report waits for the trace to end, logs it with the load's gaps, and
// returns the probes sent.
func (tr *failoverTrace) report(t *testing.T, gaps []time.Duration) []probeAt {
	t.Helper()
	<-tr.done
	var probes []probeAt
	for p := range tr.leaderAt {
		if tr.leader[p] == nil {
			t.Logf("  partition %d: no leader among the others within 20 s; longest ack gap %v", p, gaps[p].Round(time.Millisecond))
			continue
		}
		probes = append(probes, probeAt{int32(p), tr.probes[p]})
		t.Logf("  partition %d: leader %v seen at +%v; a record sent to it: %v; longest ack gap of the load %v",
			p, tr.leader[p], tr.leaderAt[p].Round(time.Millisecond), tr.probes[p], gaps[p].Round(time.Millisecond))
	}
	return probes
}
