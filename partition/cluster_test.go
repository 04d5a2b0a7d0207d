package partition

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	wlog "weir/log"
	"weir/protocol/record"
)

// This file tests replication: three voters in one process, over Raft's
// in-memory transport (tcp_test.go runs the same cluster over TCP). The
// helpers below build the cluster, stop and restart replicas on the same
// directory and address, cut a replica off the network, produce through
// whichever replica leads, and compare the replicas' logs entry by entry.

// clusterNode is one replica of a test cluster: its identity, its files,
// its transport and its open partition (p and trans are nil while it is
// down).
type clusterNode struct {
	id    raft.ServerID
	addr  raft.ServerAddress
	dir   string
	trans raft.Transport
	p     *Partition
}

// testCluster is three replicas of one partition.
type testCluster struct {
	t      testing.TB
	tcp    bool // TCP on 127.0.0.1 instead of the in-memory transport
	mutate func(*Config)
	peers  []raft.Server
	nodes  []*clusterNode
}

// clusterTimeout bounds every wait for the cluster to converge. Catching up
// a replica that was down can take about as long as it was down: Raft's
// replication backs off exponentially on transport errors.
const clusterTimeout = 30 * time.Second

// newCluster starts three voters, each with its own directory and the same
// Peers, and waits for exactly one ready leader. mutate (optional) adjusts
// every replica's Config.
func newCluster(t testing.TB, tcp bool, mutate func(*Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t, tcp: tcp, mutate: mutate}
	t.Cleanup(c.shutdown)
	for i := range 3 {
		id := fmt.Sprint(i + 1)
		n := &clusterNode{id: raft.ServerID(id), dir: t.TempDir()}
		if !tcp {
			n.addr = raft.ServerAddress("node-" + id)
		}
		c.listen(n)
		c.nodes = append(c.nodes, n)
		c.peers = append(c.peers, raft.Server{ID: n.id, Address: n.addr})
	}
	for _, n := range c.nodes {
		c.connect(n)
	}
	for _, n := range c.nodes {
		c.open(n)
	}
	c.waitLeader()
	return c
}

// listen gives n a new transport at n.addr (for TCP, a free port the first
// time).
func (c *testCluster) listen(n *clusterNode) {
	c.t.Helper()
	if !c.tcp {
		_, n.trans = raft.NewInmemTransport(n.addr)
		return
	}
	bind := "127.0.0.1:0"
	if n.addr != "" {
		bind = string(n.addr)
	}
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		var tr *raft.NetworkTransport
		if tr, err = raft.NewTCPTransport(bind, nil, 3, 2*time.Second, io.Discard); err == nil {
			n.trans, n.addr = tr, tr.LocalAddr()
			return
		}
		// The old listener's port may take a moment to be free again.
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("listen on %s: %v", bind, err)
}

// connect routes n's in-memory transport to every other live replica's and
// back, replacing routes (and pipelines) to an earlier transport at n's
// address. TCP needs nothing: the address is the route.
func (c *testCluster) connect(n *clusterNode) {
	if c.tcp {
		return
	}
	nt := n.trans.(*raft.InmemTransport)
	for _, o := range c.nodes {
		if o == n || o.trans == nil {
			continue
		}
		ot := o.trans.(*raft.InmemTransport)
		ot.Disconnect(n.addr)
		ot.Connect(n.addr, nt)
		nt.Connect(o.addr, ot)
	}
}

// open opens n's partition on its directory and transport.
func (c *testCluster) open(n *clusterNode) {
	c.t.Helper()
	cfg := Config{
		ID: n.id, Dir: n.dir, Transport: n.trans, Peers: c.peers,
		Log:              wlog.Options{SegmentBytes: 16 << 10},
		HeartbeatTimeout: 50 * time.Millisecond, ElectionTimeout: 50 * time.Millisecond,
		LeaderLeaseTimeout: 50 * time.Millisecond, CommitTimeout: 5 * time.Millisecond,
	}
	if c.mutate != nil {
		c.mutate(&cfg)
	}
	if os.Getenv("WEIR_PARTITION_TEST_LOG") != "" { // Raft's and the partition's logs, for debugging
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil)).With("node", n.id)
	}
	p, err := Open(cfg)
	if err != nil {
		c.t.Fatalf("open replica %s: %v", n.id, err)
	}
	n.p = p
}

// stop closes n's partition and its transport, as if the node died.
func (c *testCluster) stop(n *clusterNode) {
	c.t.Helper()
	if err := n.p.Close(); err != nil {
		c.t.Errorf("close replica %s: %v", n.id, err)
	}
	n.p = nil
	c.closeTransport(n)
}

// start restarts a stopped node on its directory, with a new transport at
// the address it had.
func (c *testCluster) start(n *clusterNode) {
	c.t.Helper()
	c.listen(n)
	c.connect(n)
	c.open(n)
}

func (c *testCluster) closeTransport(n *clusterNode) {
	switch tr := n.trans.(type) {
	case *raft.NetworkTransport:
		tr.CloseStreams()
		tr.Close()
	case *raft.InmemTransport:
		for _, o := range c.nodes {
			if o != n && o.trans != nil {
				o.trans.(*raft.InmemTransport).Disconnect(n.addr)
			}
		}
		tr.Close()
	}
	n.trans = nil
}

// shutdown closes every replica, then every transport.
func (c *testCluster) shutdown() {
	for _, n := range c.nodes {
		if n.p != nil {
			n.p.Close()
			n.p = nil
		}
	}
	for _, n := range c.nodes {
		if n.trans != nil {
			c.closeTransport(n)
		}
	}
}

// isolate cuts n off from the other replicas, both ways (in-memory only).
func (c *testCluster) isolate(n *clusterNode) {
	n.trans.(*raft.InmemTransport).DisconnectAll()
	for _, o := range c.nodes {
		if o != n && o.trans != nil {
			o.trans.(*raft.InmemTransport).Disconnect(n.addr)
		}
	}
}

// live returns the replicas that are up.
func (c *testCluster) live() []*clusterNode {
	var out []*clusterNode
	for _, n := range c.nodes {
		if n.p != nil {
			out = append(out, n)
		}
	}
	return out
}

// others returns the replicas other than n.
func (c *testCluster) others(n *clusterNode) []*clusterNode {
	var out []*clusterNode
	for _, o := range c.nodes {
		if o != n {
			out = append(out, o)
		}
	}
	return out
}

// leaderAmong returns the one ready leader among nodes, or nil if there is
// none or more than one.
func leaderAmong(nodes []*clusterNode) *clusterNode {
	var leader *clusterNode
	for _, n := range nodes {
		if n.p != nil && n.p.IsLeader() {
			if leader != nil {
				return nil
			}
			leader = n
		}
	}
	return leader
}

// waitLeader waits until exactly one live replica is a ready leader.
func (c *testCluster) waitLeader() *clusterNode {
	c.t.Helper()
	return c.waitLeaderAmong(c.live())
}

func (c *testCluster) waitLeaderAmong(nodes []*clusterNode) *clusterNode {
	c.t.Helper()
	var leader *clusterNode
	waitFor(c.t, "exactly one ready leader", clusterTimeout, func() bool {
		leader = leaderAmong(nodes)
		return leader != nil
	})
	return leader
}

// ackedBatch is a batch that Produce acknowledged, and where.
type ackedBatch struct {
	offset uint64
	ts     int64 // testBatch's ts: the values are "ts=<ts> i=<j>"
	count  int
}

// records are the records the batch holds, as fetchAll returns them.
func (b ackedBatch) records() []fetched {
	out := make([]fetched, b.count)
	for j := range out {
		out[j] = fetched{offset: b.offset + uint64(j), value: fmt.Sprintf("ts=%d i=%d", b.ts, j), timestamp: b.ts + int64(j)}
	}
	return out
}

// clusterProducer is an idempotent producer that sends to whichever replica
// leads. A batch whose Produce fails because leadership moved is sent again
// with the same sequence number, so it is appended at most once whether or
// not the first attempt was committed.
type clusterProducer struct {
	c     *testCluster
	id    int64
	seq   int32
	acked []ackedBatch
}

func (c *testCluster) producer(id int64) *clusterProducer {
	return &clusterProducer{c: c, id: id}
}

// produce sends one batch of n records and waits for its acknowledgement.
func (pr *clusterProducer) produce(n int) ackedBatch {
	pr.c.t.Helper()
	b, err := pr.tryProduce(n)
	if err != nil {
		pr.c.t.Fatal(err)
	}
	return b
}

// tryProduce is produce for goroutines other than the test's.
func (pr *clusterProducer) tryProduce(n int) (ackedBatch, error) {
	ts := pr.id*1_000_000_000 + int64(pr.seq)*100
	batch := testBatch(pr.c.t, n, ts, pr.id, 0, pr.seq)
	off, err := pr.c.produceRetry(batch)
	if err != nil {
		return ackedBatch{}, fmt.Errorf("producer %d sequence %d: %w", pr.id, pr.seq, err)
	}
	pr.seq += int32(n)
	b := ackedBatch{offset: off, ts: ts, count: n}
	pr.acked = append(pr.acked, b)
	return b, nil
}

// produceRetry produces batch with AcksAll to the current leader, trying
// again (up to a deadline) while the request fails for want of a leader.
func (c *testCluster) produceRetry(batch []byte) (uint64, error) {
	deadline := time.Now().Add(clusterTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		nodes := c.live()
		if l := leaderAmong(nodes); l != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			off, err := l.p.Produce(ctx, batch, AcksAll)
			cancel()
			if err == nil {
				return off, nil
			}
			if !errors.Is(err, ErrNotLeader) && !errors.Is(err, raft.ErrEnqueueTimeout) {
				return 0, err
			}
			lastErr = err
		}
		time.Sleep(5 * time.Millisecond) // poll for the next leader
	}
	return 0, fmt.Errorf("no leader took the batch within %v (last error: %v)", clusterTimeout, lastErr)
}

// requireSameLogs waits until every live replica has applied everything the
// leader's log holds and agrees on the high watermark, then compares the
// replicas' logs entry by entry over the range they all hold. It returns the
// leader.
func (c *testCluster) requireSameLogs() *clusterNode {
	t := c.t
	t.Helper()
	leader := c.waitLeader()
	live := c.live()
	var last uint64
	waitFor(t, "replicas to catch up with the leader", clusterTimeout, func() bool {
		last = leader.p.Log().LastIndex()
		hw := leader.p.HighWatermark()
		for _, n := range live {
			if n.p.Raft().AppliedIndex() != last || n.p.Log().LastIndex() != last || n.p.HighWatermark() != hw {
				return false
			}
		}
		return true
	})
	var first uint64
	for _, n := range live {
		first = max(first, n.p.Log().FirstIndex())
	}
	if first > last {
		t.Fatalf("the replicas hold no common entries: first %d, last %d", first, last)
	}
	readers := make([]*wlog.Reader, len(live))
	for i, n := range live {
		r, err := n.p.Log().NewReader(first)
		if err != nil {
			t.Fatalf("replica %s: NewReader(%d): %v", n.id, first, err)
		}
		defer r.Close()
		readers[i] = r
	}
	for idx := first; idx <= last; idx++ {
		ref, err := readers[0].Next()
		if err != nil {
			t.Fatalf("replica %s: entry %d: %v", live[0].id, idx, err)
		}
		if ref.Index != idx {
			t.Fatalf("replica %s: entry %d read as %d", live[0].id, idx, ref.Index)
		}
		for i := 1; i < len(live); i++ {
			e, err := readers[i].Next()
			if err != nil {
				t.Fatalf("replica %s: entry %d: %v", live[i].id, idx, err)
			}
			if e.Index != ref.Index || e.Term != ref.Term || e.Type != ref.Type || e.BaseOffset != ref.BaseOffset ||
				e.Count != ref.Count || e.Timestamp != ref.Timestamp || string(e.Payload) != string(ref.Payload) {
				t.Fatalf("entry %d differs:\nreplica %s: %s\nreplica %s: %s",
					idx, live[0].id, describeEntry(ref), live[i].id, describeEntry(e))
			}
		}
	}
	return leader
}

func describeEntry(e wlog.Entry) string {
	return fmt.Sprintf("index %d term %d %v offset %d count %d ts %d payload %d bytes",
		e.Index, e.Term, e.Type, e.BaseOffset, e.Count, e.Timestamp, len(e.Payload))
}

// fetchFrom reads every committed record from the current leader's log
// start (or from, if later), as a consumer would, going to the new leader if
// the leadership moves meanwhile. It returns the replica that served them.
func (c *testCluster) fetchFrom(from uint64) (*clusterNode, uint64, []fetched) {
	c.t.Helper()
	deadline := time.Now().Add(clusterTimeout)
	for {
		l := c.waitLeader()
		start := max(from, l.p.Log().FirstOffset())
		recs, err := tryFetchAll(l.p, start)
		if err == nil {
			return l, start, recs
		}
		if !errors.Is(err, ErrNotLeader) || time.Now().After(deadline) {
			c.t.Fatalf("fetch from replica %s at %d: %v", l.id, start, err)
		}
	}
}

// checkAcked reads every record from the leader's log start through Fetch
// and checks that they are exactly the records of the acknowledged batches
// from there on: each batch once, at its acknowledged offset, in offset
// order, and nothing else. It returns the replica that served them.
func (c *testCluster) checkAcked(acked []ackedBatch) *clusterNode {
	c.t.Helper()
	l, from, got := c.fetchFrom(0)
	checkRecords(c.t, l.p, from, got, acked)
	return l
}

// checkRecords checks that got, read from p from offset from, holds exactly
// the records of the acknowledged batches from there on.
func checkRecords(t testing.TB, p *Partition, from uint64, got []fetched, acked []ackedBatch) {
	t.Helper()
	batches := slices.Clone(acked)
	slices.SortFunc(batches, func(a, b ackedBatch) int { return cmp.Compare(a.offset, b.offset) })
	var want []fetched
	for _, b := range batches {
		for _, r := range b.records() {
			if r.offset >= from {
				want = append(want, r)
			}
		}
	}
	for i := range max(len(got), len(want)) {
		switch {
		case i >= len(got):
			t.Fatalf("record %v (acknowledged) missing; fetched %d records from %d", want[i], len(got), from)
		case i >= len(want):
			t.Fatalf("fetched record %v that no acknowledged batch holds", got[i])
		case got[i] != want[i]:
			t.Fatalf("record %d from offset %d: fetched %v, acknowledged %v", i, from, got[i], want[i])
		}
	}
	if hw := p.HighWatermark(); len(want) > 0 && hw != want[len(want)-1].offset+1 {
		t.Fatalf("high watermark %d, want %d", hw, want[len(want)-1].offset+1)
	}
}

// smallSegments makes rolls (and, with retention, deletions) happen in tests.
func smallSegments(cfg *Config) { cfg.Log.SegmentBytes = 4 << 10 }

// leaderKill is the leader-kill scenario of TestClusterLeaderKill and
// TestTCPLeaderKill: 30 batches; the leader is stopped and the others elect
// a new leader and take 30 more; the old leader comes back on its directory
// and the exact address it had, catches up and holds the same log, and all
// 60 acknowledged batches are there. It returns the producer and the
// restarted old leader.
func (c *testCluster) leaderKill() (*clusterProducer, *clusterNode) {
	t := c.t
	t.Helper()
	pr := c.producer(1)
	for i := range 30 {
		pr.produce(1 + i%3)
	}
	old := c.waitLeader()
	oldAddr := old.addr
	c.stop(old)
	nl := c.waitLeader()
	t.Logf("leader %s stopped; %s leads", old.id, nl.id)
	for i := range 30 {
		pr.produce(1 + i%4)
	}
	c.start(old)
	if old.addr != oldAddr {
		t.Fatalf("restarted replica listens at %s, want %s", old.addr, oldAddr)
	}
	c.requireSameLogs()
	if len(pr.acked) != 60 {
		t.Fatalf("%d batches acknowledged, want 60", len(pr.acked))
	}
	c.checkAcked(pr.acked)
	return pr, old
}

// TestClusterLeaderKill: the leader dies; the others elect a new one and go
// on; the old leader comes back on its directory and address and catches up.
func TestClusterLeaderKill(t *testing.T) {
	c := newCluster(t, false, smallSegments)
	_, old := c.leaderKill()
	if n := old.p.Log().Segments(); n < 2 {
		t.Errorf("the restarted replica's log has %d segment(s); the test wants rolls", n)
	}
}

// TestClusterFollowerRestart: a follower is down while the others commit,
// then restarts and catches up.
func TestClusterFollowerRestart(t *testing.T) {
	c := newCluster(t, false, smallSegments)
	pr := c.producer(1)
	for i := range 10 {
		pr.produce(1 + i%3)
	}
	f := c.others(c.waitLeader())[0]
	c.stop(f)
	for i := range 40 {
		pr.produce(1 + i%5)
	}
	c.start(f)
	c.requireSameLogs()
	c.checkAcked(pr.acked)
	// The restarted follower keeps up with new writes as well.
	for i := range 10 {
		pr.produce(1 + i%2)
	}
	c.requireSameLogs()
	c.checkAcked(pr.acked)
}

// retainTwoSegments makes retention delete all but the last two segments
// of the small ones. Raft's entry cache holds 2*MaxAppendEntries entries:
// it is kept well below what retention deletes, or the leader replicates
// the deleted entries from memory instead of sending a snapshot.
func retainTwoSegments(cfg *Config) {
	smallSegments(cfg)
	cfg.Log.RetentionBytes = 2 * cfg.Log.SegmentBytes
	cfg.MaxAppendEntries = 8
}

// snapshotScenario is how the snapshot tests begin: a follower is down while
// the others commit enough for retention to delete the part of the log it
// would need next.
type snapshotScenario struct {
	c     *testCluster
	pr    *clusterProducer
	f     *clusterNode // the stopped follower
	fLast uint64       // the last index of f's log when it stopped
}

// newSnapshotScenario starts a cluster (mutate adjusts every replica's
// Config), commits before batches of 3 records on all three replicas, stops
// a follower, then commits behind batches of size records without it.
func newSnapshotScenario(t *testing.T, mutate func(*Config), before, behind, size int) *snapshotScenario {
	t.Helper()
	c := newCluster(t, false, mutate)
	s := &snapshotScenario{c: c, pr: c.producer(1)}
	for range before {
		s.pr.produce(3)
	}
	c.requireSameLogs()
	s.f = c.others(c.waitLeader())[0]
	s.fLast = s.f.p.Log().LastIndex()
	c.stop(s.f)
	for range behind {
		s.pr.produce(size)
	}
	return s
}

// applyRetention applies retention on every live replica and reports
// whether every live log now starts past the stopped follower's next index,
// so that whichever leads when it returns must send it a snapshot.
func (s *snapshotScenario) applyRetention() bool {
	s.c.t.Helper()
	past := true
	for _, n := range s.c.live() {
		if _, err := n.p.ApplyRetention(); err != nil {
			s.c.t.Fatalf("replica %s: ApplyRetention: %v", n.id, err)
		}
		past = past && n.p.Log().FirstIndex() > s.fLast+1
	}
	return past
}

// requireRetention is applyRetention that must move every live log's start
// past the stopped follower at the first attempt.
func (s *snapshotScenario) requireRetention() {
	s.c.t.Helper()
	if !s.applyRetention() {
		s.failRetention()
	}
}

// failRetention fails the test with every live replica's log.
func (s *snapshotScenario) failRetention() {
	s.c.t.Helper()
	s.logLogs()
	s.c.t.Fatalf("retention did not move the log start past the stopped follower's last index %d", s.fLast)
}

func (s *snapshotScenario) logLogs() {
	s.c.t.Helper()
	for _, n := range s.c.live() {
		s.c.t.Logf("replica %s: log [%d, %d], %d segments, %d bytes", n.id,
			n.p.Log().FirstIndex(), n.p.Log().LastIndex(), n.p.Log().Segments(), n.p.Log().Size())
	}
}

// restartFollower starts the stopped follower, waits until the replicas'
// logs agree, and fails unless the follower's log was rebuilt from a
// snapshot: it must start past the index after the one it stopped at. It
// returns the leader.
func (s *snapshotScenario) restartFollower() *clusterNode {
	s.c.t.Helper()
	s.c.start(s.f)
	leader := s.c.requireSameLogs()
	if first := s.f.p.Log().FirstIndex(); first <= s.fLast+1 {
		s.c.t.Fatalf("follower log starts at %d: it was not rebuilt from a snapshot (it stopped at %d)", first, s.fLast)
	}
	return leader
}

// checkGoesOn checks the acknowledged batches, then that the cluster takes
// 10 more batches, agrees on its logs and still holds every acknowledged
// batch.
func (s *snapshotScenario) checkGoesOn() {
	s.c.t.Helper()
	s.c.checkAcked(s.pr.acked)
	for range 10 {
		s.pr.produce(2)
	}
	s.c.requireSameLogs()
	s.c.checkAcked(s.pr.acked)
}

// TestClusterSnapshotInstall: a follower is down while retention deletes
// the part of the log it would need next. When it comes back, the leader
// sends it a snapshot with the leader's retained log; afterwards the
// follower holds the same entries and offsets from the leader's log start,
// and serves the same records when it becomes leader.
func TestClusterSnapshotInstall(t *testing.T) {
	s := newSnapshotScenario(t, retainTwoSegments, 10, 250, 5)
	c, f := s.c, s.f
	// Retention on both live replicas, so that whichever leads when the
	// follower returns no longer holds the entries after its last one.
	for attempt := 0; !s.applyRetention(); attempt++ {
		if attempt == 20 {
			s.failRetention()
		}
		// Produce more so that there are sealed segments to delete.
		for range 20 {
			s.pr.produce(5)
		}
	}
	s.logLogs()

	leader := s.restartFollower()
	fFirst := f.p.Log().FirstIndex()
	t.Logf("follower %s stopped at index %d; its log is now [%d, %d]", f.id, s.fLast, fFirst, f.p.Log().LastIndex())
	if fFirst > leader.p.Log().FirstIndex() || f.p.Log().FirstOffset() > leader.p.Log().FirstOffset() {
		t.Fatalf("follower log starts at index %d offset %d, after the leader's (%s) log start: index %d offset %d", fFirst,
			f.p.Log().FirstOffset(), leader.id, leader.p.Log().FirstIndex(), leader.p.Log().FirstOffset())
	}
	c.checkAcked(s.pr.acked)

	// The follower becomes leader: consumers see the same records from its
	// log start as the old leader served.
	from := f.p.Log().FirstOffset()
	_, servedFrom, before := c.fetchFrom(from)
	after := fetchFromReplica(c, f, servedFrom)
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("replica %s serves %d records from %d, the old leader served %d", f.id, len(after), servedFrom, len(before))
	}
	if all := fetchFromReplica(c, f, from); len(all) == 0 || all[0].offset != from {
		t.Fatalf("replica %s serves no record at its log start %d", f.id, from)
	}
	// And the cluster goes on with new writes.
	s.checkGoesOn()
}

// TestClusterSnapshotInstallCrash: a follower crashes after it stored a
// snapshot received from the leader but before its log was rebuilt from it
// (simulated by putting back the log it had before). On restart it must
// finish the restore, not resume after a snapshot its log does not reach.
func TestClusterSnapshotInstallCrash(t *testing.T) {
	s := newSnapshotScenario(t, retainTwoSegments, 5, 150, 5)
	c, f := s.c, s.f
	s.requireRetention()
	logDir := filepath.Join(f.dir, "log")
	saved := filepath.Join(t.TempDir(), "log")
	copyDir(t, logDir, saved)

	s.restartFollower()
	c.stop(f)
	// The crash: the received snapshot is on disk, the log is the old one.
	if err := os.RemoveAll(logDir); err != nil {
		t.Fatal(err)
	}
	copyDir(t, saved, logDir)
	metas, err := (&snapshotStore{dir: filepath.Join(f.dir, "snapshots")}).List()
	if err != nil || len(metas) == 0 || metas[0].Index <= s.fLast {
		t.Fatalf("follower snapshots: %v, %v; want one past its old log's end %d", metas, err, s.fLast)
	}

	c.start(f)
	// Raft resumes after the snapshot: the log must reach it from the start,
	// not only once a new entry makes the leader notice the gap.
	if last := f.p.Log().LastIndex(); last < metas[0].Index {
		t.Fatalf("reopened follower's log ends at %d, before its snapshot at %d", last, metas[0].Index)
	}
	c.requireSameLogs()
	s.checkGoesOn()
}

// copyDir copies the regular files of directory src into a new directory
// dst.
func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// fetchFromReplica makes n the leader (transferring the leadership to it as
// often as needed) and reads every record from offset from through it.
func fetchFromReplica(c *testCluster, n *clusterNode, from uint64) []fetched {
	c.t.Helper()
	deadline := time.Now().Add(clusterTimeout)
	for time.Now().Before(deadline) {
		if n.p.IsLeader() {
			recs, err := tryFetchAll(n.p, from)
			if err == nil {
				return recs
			}
			if !errors.Is(err, ErrNotLeader) {
				c.t.Fatalf("fetch from replica %s at %d: %v", n.id, from, err)
			}
		} else if l := leaderAmong(c.live()); l != nil {
			if err := l.p.Raft().LeadershipTransferToServer(n.id, n.addr).Error(); err != nil {
				c.t.Logf("leadership transfer from %s to %s: %v", l.id, n.id, err)
			}
		}
		time.Sleep(10 * time.Millisecond) // poll for the transfer
	}
	c.t.Fatalf("replica %s did not take over the leadership within %v", n.id, clusterTimeout)
	return nil
}

// changeLeader moves the leadership to another live replica and waits
// until a replica leads (and is ready) in a later term. The new leader's
// log then ends with its no-op and the barrier it waits on: control
// entries that no FSM sees.
func (c *testCluster) changeLeader() *clusterNode {
	c.t.Helper()
	old := c.waitLeader()
	term := old.p.Raft().CurrentTerm()
	deadline := time.Now().Add(clusterTimeout)
	for {
		if l := leaderAmong(c.live()); l != nil && l.p.Raft().CurrentTerm() > term {
			return l
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no new leader after term %d within %v", term, clusterTimeout)
		}
		if old.p.IsLeader() {
			for _, n := range c.live() {
				if n != old {
					old.p.Raft().LeadershipTransferToServer(n.id, n.addr).Error()
					break
				}
			}
		}
		time.Sleep(10 * time.Millisecond) // poll for the transfer
	}
}

// waitApplied waits until every live replica has applied (in Raft's sense:
// including control entries) everything the leader's log holds.
func (c *testCluster) waitApplied() {
	c.t.Helper()
	waitFor(c.t, "every replica to apply the whole log", clusterTimeout, func() bool {
		l := leaderAmong(c.live())
		if l == nil {
			return false
		}
		last := l.p.Log().LastIndex()
		for _, n := range c.live() {
			if n.p.Raft().AppliedIndex() != last || n.p.Log().LastIndex() != last {
				return false
			}
		}
		return true
	})
}

// fsmApplied is the last entry the replica's FSM applied.
func fsmApplied(p *Partition) uint64 {
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	return p.state.appliedIndex
}

// TestClusterSnapshotAfterLeaderChange: Raft's index for a snapshot counts
// the no-op and barrier that end the log after a leader change, which the
// FSM never sees. A follower restored from such a snapshot must still hold
// the log up to the snapshot's index, or it cannot append what follows.
func TestClusterSnapshotAfterLeaderChange(t *testing.T) {
	s := newSnapshotScenario(t, retainTwoSegments, 5, 150, 5)
	c := s.c
	c.changeLeader()
	c.waitApplied()
	for _, n := range c.live() {
		if err := n.p.Raft().Snapshot().Error(); err != nil {
			t.Fatalf("replica %s: snapshot: %v", n.id, err)
		}
		snap, applied := n.p.snaps.latest.Load(), fsmApplied(n.p)
		if snap <= applied {
			t.Fatalf("replica %s: snapshot at %d, FSM applied %d: the log does not end with control entries", n.id, snap, applied)
		}
		t.Logf("replica %s: snapshot at %d (FSM applied %d)", n.id, snap, applied)
	}
	s.requireRetention()
	s.logLogs()
	s.restartFollower()
	s.checkGoesOn()
}

// TestLogStoreOverlappingAppend: after a snapshot install Raft's idea of a
// follower's last index is stale (it is the one from before the install), so
// a leader whose next index for the follower is below the snapshot's (seen in
// TestClusterSnapshotAfterLeaderChange when the snapshot came from a deposed
// leader) makes Raft store entries the rebuilt log already holds. Like
// Raft's own stores, the log store must take them: the same entry again is
// skipped, an entry of another term replaces the log from there.
func TestLogStoreOverlappingAppend(t *testing.T) {
	l, err := wlog.Open(t.TempDir(), wlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s := newLogStore(l)
	entry := func(index, term uint64) *raft.Log {
		return &raft.Log{Index: index, Term: term, Type: raft.LogCommand, Data: testBatch(t, 1, int64(100*index+term), -1, 0, 0)}
	}
	var logs []*raft.Log
	for i := uint64(1); i <= 10; i++ {
		logs = append(logs, entry(i, 1))
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	check := func(want ...[2]uint64) {
		t.Helper()
		if first, last := l.FirstIndex(), l.LastIndex(); first != 1 || last != uint64(len(want)) {
			t.Fatalf("log holds [%d, %d], want [1, %d]", first, last, len(want))
		}
		for i, w := range want {
			var got raft.Log
			if err := s.GetLog(uint64(i+1), &got); err != nil {
				t.Fatal(err)
			}
			if e := entry(w[0], w[1]); got.Index != e.Index || got.Term != e.Term || string(got.Data) != string(e.Data) {
				t.Fatalf("entry %d: index %d term %d, want index %d term %d", i+1, got.Index, got.Term, e.Index, e.Term)
			}
			if base, _, _ := l.EntryOffsets(uint64(i + 1)); base != uint64(i) {
				t.Fatalf("entry %d at offset %d, want %d", i+1, base, i)
			}
		}
	}
	// Entries 8..10 again, then 11 and 12.
	if err := s.StoreLogs([]*raft.Log{entry(8, 1), entry(9, 1), entry(10, 1), entry(11, 2), entry(12, 2)}); err != nil {
		t.Fatalf("StoreLogs over entries the log holds: %v", err)
	}
	want := [][2]uint64{{1, 1}, {2, 1}, {3, 1}, {4, 1}, {5, 1}, {6, 1}, {7, 1}, {8, 1}, {9, 1}, {10, 1}, {11, 2}, {12, 2}}
	check(want...)
	// Only entries the log holds: nothing changes.
	if err := s.StoreLogs([]*raft.Log{entry(11, 2)}); err != nil {
		t.Fatalf("StoreLogs of an entry the log holds: %v", err)
	}
	check(want...)
	// Entry 11 of another term conflicts: 11 and 12 are replaced.
	if err := s.StoreLogs([]*raft.Log{entry(10, 1), entry(11, 3)}); err != nil {
		t.Fatalf("StoreLogs with a conflicting entry: %v", err)
	}
	check(append(want[:10:10], [2]uint64{11, 3})...)
}

// testClock is a settable clock for the logs' segment ages.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *testClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *testClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// TestClusterSnapshotInstallNoFrames: when retention has deleted
// everything up to the snapshot's index, the snapshot the leader sends holds
// no frames, only the state. The follower must take it as it is (its log
// restarts after the snapshot), not as a snapshot of its own.
func TestClusterSnapshotInstallNoFrames(t *testing.T) {
	clock := newTestClock()
	s := newSnapshotScenario(t, func(cfg *Config) {
		cfg.Log.Now = clock.Now
		cfg.Log.SegmentAge = time.Hour
		cfg.Log.RetentionBytes = 1 // keep only the active segment
		cfg.RetentionInterval = time.Hour
		cfg.MaxAppendEntries = 4 // see retainTwoSegments
	}, 5, 20, 3)
	c, f := s.c, s.f
	c.waitApplied()
	// A snapshot at the last batch on every live replica...
	s.applyRetention()
	// ...then a new segment that starts right after it (the new leader's
	// no-op rolls the aged segment), and retention of everything before.
	clock.Advance(2 * time.Hour)
	c.changeLeader()
	c.waitApplied()
	s.applyRetention()
	for _, n := range c.live() {
		snap, first := n.p.snaps.latest.Load(), n.p.Log().FirstIndex()
		if first != snap+1 || first <= s.fLast+1 {
			t.Fatalf("replica %s: log starts at %d, snapshot at %d, follower stopped at %d: not the case under test", n.id, first, snap, s.fLast)
		}
	}
	c.start(f)
	c.requireSameLogs()
	if first, want := f.p.Log().FirstIndex(), c.waitLeader().p.Log().FirstIndex(); first != want {
		t.Fatalf("follower log starts at %d, want the leader's log start %d", first, want)
	}
	s.checkGoesOn()
	// The follower serves from its log start once it leads.
	from := f.p.Log().FirstOffset()
	recs := fetchFromReplica(c, f, from)
	var want []fetched
	for _, b := range s.pr.acked {
		if b.offset >= from {
			want = append(want, b.records()...)
		}
	}
	if fmt.Sprint(recs) != fmt.Sprint(want) {
		t.Fatalf("replica %s serves %v from %d, want %v", f.id, recs, from, want)
	}
}

// TestClusterConflictingSuffix: a leader cut off from the others appends
// batches that never commit; the others elect a leader and commit other
// batches at the same indexes. When the network heals the old leader drops
// its conflicting suffix and takes the new leader's entries.
func TestClusterConflictingSuffix(t *testing.T) {
	c := newCluster(t, false, smallSegments)
	pr := c.producer(1)
	for i := range 10 {
		pr.produce(1 + i%3)
	}
	var lost []string // values of batches that must never be committed
	var old *clusterNode
	// The cut-off leader must append the AcksNone batches before its lease
	// runs out and it steps down; in the rare case that none made it, heal
	// and try again.
	for attempt := 0; ; attempt++ {
		c.requireSameLogs()
		old = c.waitLeader()
		before := old.p.Log().LastIndex()
		c.isolate(old)
		for i := range 3 {
			ts := int64(900_000_000 + 1000*attempt + 10*i)
			batch := testBatch(t, 2, ts, -1, 0, 0)
			if _, err := old.p.Produce(t.Context(), batch, AcksNone); err != nil && !errors.Is(err, ErrNotLeader) {
				t.Fatalf("AcksNone produce to the cut-off leader: %v", err)
			}
			lost = append(lost, fmt.Sprintf("ts=%d i=0", ts), fmt.Sprintf("ts=%d i=1", ts))
		}
		waitFor(t, "the cut-off leader to step down", clusterTimeout, func() bool {
			return !old.p.IsLeader() && old.p.Raft().State() != raft.Leader
		})
		nl := c.waitLeaderAmong(c.others(old))
		if old.p.Log().LastIndex() > before {
			t.Logf("leader %s cut off with entries (%d, %d]; %s leads", old.id, before, old.p.Log().LastIndex(), nl.id)
			break
		}
		if attempt == 4 {
			t.Fatalf("in %d attempts the cut-off leader never appended a batch before stepping down", attempt+1)
		}
		c.connect(old)
	}
	for i := range 10 {
		pr.produce(1 + i%2)
	}
	c.connect(old)
	c.requireSameLogs()
	l := c.checkAcked(pr.acked)
	for _, r := range fetchAll(t, l.p, l.p.Log().FirstOffset()) {
		if slices.Contains(lost, r.value) {
			t.Fatalf("uncommitted batch record %q was served at offset %d", r.value, r.offset)
		}
	}
}

// TestClusterGroupCommit: many concurrent producers; every batch is
// acknowledged once at its own offset, and the offsets are dense.
func TestClusterGroupCommit(t *testing.T) {
	const producers, perProducer = 32, 20
	c := newCluster(t, false, nil)
	prs := make([]*clusterProducer, producers)
	for i := range prs {
		prs[i] = c.producer(int64(i + 1))
	}
	stats := make(map[raft.ServerID]Stats)
	for _, n := range c.nodes {
		stats[n.id] = n.p.Stats()
	}
	var wg sync.WaitGroup
	for _, pr := range prs {
		wg.Go(func() {
			for range perProducer {
				if _, err := pr.tryProduce(1); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	var all []ackedBatch
	var offsets []uint64
	for _, pr := range prs {
		all = append(all, pr.acked...)
		for _, b := range pr.acked {
			offsets = append(offsets, b.offset)
		}
	}
	slices.Sort(offsets)
	if len(offsets) != producers*perProducer {
		t.Fatalf("%d batches acknowledged, want %d", len(offsets), producers*perProducer)
	}
	for i, off := range offsets {
		if off != uint64(i) {
			t.Fatalf("acknowledged offsets are not 0..%d: position %d holds %d", len(offsets)-1, i, off)
		}
	}
	leader := c.requireSameLogs()
	c.checkAcked(all)
	// Log the group commit factor (timing-dependent: not asserted).
	for _, n := range c.nodes {
		after := n.p.Stats()
		calls, entries := after.StoreCalls-stats[n.id].StoreCalls, after.StoredEntries-stats[n.id].StoredEntries
		role := "follower"
		if n == leader {
			role = "leader"
		}
		if calls > 0 {
			t.Logf("replica %s (%s now): %d entries in %d appends, %.2f entries per fsync",
				n.id, role, entries, calls, float64(entries)/float64(calls))
		}
	}
}

// BenchmarkProduceConcurrent: 16*GOMAXPROCS producers of one-record batches
// with AcksAll on a single voter, fsync always. entries/fsync is the group
// commit factor.
func BenchmarkProduceConcurrent(b *testing.B) {
	benchProduce(b, func(b *testing.B, p *Partition, batch []byte) {
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := p.Produce(context.Background(), batch, AcksAll); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkProduceSerial: one producer at a time, for comparison.
func BenchmarkProduceSerial(b *testing.B) {
	benchProduce(b, func(b *testing.B, p *Partition, batch []byte) {
		for range b.N {
			if _, err := p.Produce(context.Background(), batch, AcksAll); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchProduce runs a produce benchmark for each batch size on a new single
// voter: run sends batch b.N times; the timer covers only run.
func benchProduce(b *testing.B, run func(b *testing.B, p *Partition, batch []byte)) {
	for _, size := range []int{100, 1 << 10} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			p := singleVoter(b, b.TempDir(), nil)
			batch := benchBatch(b, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			before := p.Stats()
			b.ResetTimer()
			run(b, p, batch)
			b.StopTimer()
			reportGroupCommit(b, before, p.Stats())
		})
	}
}

// benchBatch is a batch of one record with a value of size bytes.
func benchBatch(b *testing.B, size int) []byte {
	bld := record.NewBuilder(record.CodecNone)
	bld.Append(record.Record{Key: []byte("k"), Value: make([]byte, size), Timestamp: 1})
	batch, err := bld.Build()
	if err != nil {
		b.Fatal(err)
	}
	return batch
}

func reportGroupCommit(b *testing.B, before, after Stats) {
	if calls := after.StoreCalls - before.StoreCalls; calls > 0 {
		b.ReportMetric(float64(after.StoredEntries-before.StoredEntries)/float64(calls), "entries/fsync")
	}
}
