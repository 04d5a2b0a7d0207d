package partition

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"weir/internal/raftfuture"
	"weir/internal/raftlog"
	"weir/internal/stablestore"
	wlog "weir/log"
	"weir/protocol/record"
)

// Partition is one replica of a partition: its log and its Raft group.
type Partition struct {
	cfg    Config
	logger *slog.Logger
	log    *wlog.Log
	store  *logStore
	// logCache is Raft's view of store: recent entries kept in memory.
	logCache *raft.LogCache
	snaps    *snapshotStore
	stable   StableStore
	raft     *raft.Raft

	// stateMu guards state, which the FSM owns.
	stateMu sync.Mutex
	state   committed

	// hwMu guards hwChanged, closed and replaced at each advance of the
	// high watermark to wake waiting fetches.
	hwMu      sync.Mutex
	hwChanged chan struct{}

	// produceMu serializes the idempotence check and the proposal, so the
	// order of sequence numbers is the order of entries. leaderView is the
	// committed producer table plus what this leader has proposed; nil when
	// it must be rebuilt (after becoming leader or a failed proposal).
	produceMu  sync.Mutex
	leaderView producerTable

	ready atomic.Bool // leader, and has applied all earlier terms' entries
	// awaitingFirstLeader: this replica bootstraps a new partition, is not
	// its first replica, and has not heard of a leader yet (see
	// firstElectionDelay).
	awaitingFirstLeader atomic.Bool
	leader              atomic.Pointer[LeaderInfo]

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// logCacheEntries is how many recent entries Raft keeps in memory for
// replication and the FSM. Entries are whole produce batches (up to a
// request's size), so the cache is sized in entries small enough that its
// memory stays bounded under a flood of large batches: 64 of them.
const logCacheEntries = 64

// Open opens (or creates) the replica in cfg.Dir and starts its Raft group.
func Open(cfg Config) (*Partition, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("weir/partition: %w", err)
	}
	p := &Partition{cfg: cfg, logger: cfg.Logger, stop: make(chan struct{}), hwChanged: make(chan struct{})}
	p.leader.Store(&LeaderInfo{})
	if err := p.open(); err != nil {
		p.closeFiles()
		return nil, err
	}
	p.goFunc(p.watchLeadership)
	p.goFunc(p.retentionLoop)
	return p, nil
}

func (p *Partition) open() error {
	cfg := &p.cfg
	var err error
	if p.log, err = wlog.Open(filepath.Join(cfg.Dir, "log"), cfg.Log); err != nil {
		return err
	}
	p.store = newLogStore(p.log)
	if p.snaps, err = newSnapshotStore(filepath.Join(cfg.Dir, "snapshots"), p.log); err != nil {
		return err
	}
	if p.stable = cfg.StableStore; p.stable == nil {
		if p.stable, err = stablestore.Open(filepath.Join(cfg.Dir, "raft.db")); err != nil {
			return fmt.Errorf("weir/partition: stable store: %w", err)
		}
	}
	if err := p.restoreState(); err != nil {
		return err
	}

	rc := raft.DefaultConfig()
	rc.LocalID = cfg.ID
	p.awaitingFirstLeader.Store(len(cfg.Peers) > 1 && cfg.Peers[0].ID != cfg.ID)
	rc.HeartbeatTimeout = p.followerTimeout()
	rc.ElectionTimeout = max(cfg.ElectionTimeout, rc.HeartbeatTimeout)
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.MaxAppendEntries = cfg.MaxAppendEntries
	rc.BatchApplyCh = true
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	// Raft must never delete the prefix of the log: retention does, and
	// snapshots carry the retained log to followers (see snapshot.go).
	rc.TrailingLogs = math.MaxUint64
	// The partition rebuilds its state from its newest snapshot itself
	// (restoreState), so Restore is only ever a snapshot installed from a
	// leader.
	rc.NoSnapshotRestoreOnStart = true
	rc.Logger = raftlog.New(p.logger.With("partition", cfg.Dir), "raft")

	// Replication and the FSM read recent entries from memory.
	logs, err := raft.NewLogCache(logCacheEntries, p.store)
	if err != nil {
		return fmt.Errorf("weir/partition: %w", err)
	}
	p.logCache = logs
	if len(cfg.Peers) > 0 {
		exists, err := raft.HasExistingState(logs, p.stable, p.snaps)
		if err != nil {
			return fmt.Errorf("weir/partition: %w", err)
		}
		if !exists {
			if err := raft.BootstrapCluster(rc, logs, p.stable, p.snaps, cfg.Transport, raft.Configuration{Servers: cfg.Peers}); err != nil {
				return fmt.Errorf("weir/partition: bootstrap: %w", err)
			}
		}
	}
	if p.raft, err = raft.NewRaft(rc, fsm{p}, logs, p.stable, p.snaps, cfg.Transport); err != nil {
		return fmt.Errorf("weir/partition: start raft: %w", err)
	}
	return nil
}

// restoreState loads the newest snapshot's state: the high watermark and
// the producers as of the snapshot's index. Raft then re-applies the
// committed entries after it.
func (p *Partition) restoreState() error {
	p.state = committed{highWatermark: p.log.FirstOffset(), producers: producerTable{}}
	metas, err := p.snaps.List()
	if err != nil || len(metas) == 0 {
		return err
	}
	f, err := os.Open(filepath.Join(p.snaps.dir, metas[0].ID+snapSuffix))
	if err != nil {
		return fmt.Errorf("weir/partition: %w", err)
	}
	defer f.Close()
	st, err := readState(f)
	if err != nil {
		return fmt.Errorf("weir/partition: snapshot %s: %w", metas[0].ID, err)
	}
	p.state = committed{appliedIndex: st.appliedIndex, highWatermark: st.highWatermark, producers: st.producers}
	// A snapshot received from a leader (logStartIndex > 0) is stored before
	// fsm.Restore rebuilds the log from it. If a crash came in between, the
	// log does not reach the snapshot, after which Raft continues: finish the
	// restore from the stored stream (f is at the frames that follow the
	// state).
	if st.logStartIndex > 0 && p.log.LastIndex() < st.appliedIndex {
		if st.dataBytes == 0 {
			err = p.log.Reset(st.appliedIndex+1, st.highWatermark)
		} else {
			err = restoreFrames(p.log, &st, io.LimitReader(f, int64(min(st.dataBytes, math.MaxInt64))))
		}
		if err != nil {
			return fmt.Errorf("weir/partition: finish restoring snapshot %s: %w", metas[0].ID, err)
		}
		p.logger.Warn("finished restoring a snapshot installed before a crash", "dir", p.cfg.Dir, "index", st.appliedIndex)
	}
	return nil
}

// goFunc runs f in a goroutine that Close waits for.
func (p *Partition) goFunc(f func()) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		f()
	}()
}

// Close stops the Raft group and closes the files. It may be called more
// than once.
func (p *Partition) Close() error {
	var err error
	p.once.Do(func() {
		close(p.stop)
		if p.raft != nil {
			err = p.raft.Shutdown().Error()
		}
		p.wg.Wait()
		if cerr := p.closeFiles(); err == nil {
			err = cerr
		}
	})
	return err
}

func (p *Partition) closeFiles() error {
	var err error
	if p.stable != nil {
		err = p.stable.Close()
	}
	if p.log != nil {
		if cerr := p.log.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// Log is the partition's log, for tests and tools that inspect replicas.
func (p *Partition) Log() *wlog.Log { return p.log }

// Raft is the partition's Raft node, for membership changes.
func (p *Partition) Raft() *raft.Raft { return p.raft }

// Acks says when Produce returns.
type Acks int8

const (
	// AcksAll returns once a quorum of replicas has the batch durably
	// (each fsynced, with fsync always): the batch is committed.
	AcksAll Acks = -1
	// AcksNone returns once the batch is proposed, without its offset.
	AcksNone Acks = 0
)

// proposal is a batch this leader handed to Raft. Several produce calls may
// wait for it (a retry of a batch still in flight waits for the original).
type proposal struct {
	future raft.ApplyFuture
	once   sync.Once // resolves the future once; later waiters block in Do
	offset uint64
	err    error
}

// wait returns the batch's base offset once it is committed.
func (pr *proposal) wait(p *Partition) (uint64, error) {
	pr.once.Do(func() {
		if err := raftfuture.Error(pr.future, p.stop); err != nil {
			pr.err = fmt.Errorf("weir/partition: %w", err)
			if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) ||
				errors.Is(err, raft.ErrLeadershipTransferInProgress) || errors.Is(err, raft.ErrRaftShutdown) {
				pr.err = p.notLeader()
			}
			return
		}
		res := pr.future.Response().(applyResult)
		pr.offset, pr.err = res.baseOffset, res.err
	})
	return pr.offset, pr.err
}

// Produce appends a record batch (protocol/record format) and returns the
// offset of its first record: Propose, then Wait. With AcksNone it returns
// once the batch is proposed, and the offset is 0.
func (p *Partition) Produce(ctx context.Context, batch []byte, acks Acks) (uint64, error) {
	pr, err := p.Propose(ctx, batch)
	if err != nil || acks == AcksNone {
		return 0, err
	}
	return pr.Wait()
}

// Proposal is a produced batch handed to Raft.
type Proposal struct {
	p  *Partition
	pr *proposal // nil for a retry of a batch already committed
	// offset is the committed duplicate's offset when pr is nil.
	offset     uint64
	idempotent bool
}

// Wait returns the offset of the batch's first record once the batch is
// committed (or the error that stopped it). It may be called more than
// once.
func (x *Proposal) Wait() (uint64, error) {
	if x.pr == nil {
		return x.offset, nil
	}
	off, err := x.pr.wait(x.p)
	if err != nil && x.idempotent {
		x.p.produceMu.Lock()
		x.p.leaderView = nil // it may hold a batch that never made it
		x.p.produceMu.Unlock()
	}
	return off, err
}

// Propose validates a record batch and hands it to Raft without waiting
// for the commit: batches proposed one after another are appended in that
// order, so a caller that must keep order (the broker, for one
// connection's requests) proposes in order and waits concurrently. A batch
// from an idempotent producer (a producer id >= 0) that repeats one of its
// recent batches is not appended again: its Proposal waits for, or returns,
// the original offset.
//
// ctx's deadline bounds handing the batch to Raft; Wait then waits for the
// commit or for this replica to lose leadership.
func (p *Partition) Propose(ctx context.Context, batch []byte) (*Proposal, error) {
	// Every record is checked once, here on the leader; replicas and the
	// FSM then only read the header.
	h, err := record.Validate(batch, record.DefaultMaxUncompressedSize)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidBatch, err)
	}
	if !p.ready.Load() {
		return nil, p.notLeader()
	}
	var timeout time.Duration
	if d, ok := ctx.Deadline(); ok {
		if timeout = time.Until(d); timeout <= 0 {
			return nil, ctx.Err()
		}
	}
	if h.ProducerID < 0 {
		return &Proposal{p: p, pr: &proposal{future: p.raft.Apply(batch, timeout)}}, nil
	}
	pr, dupOffset, err := p.proposeIdempotent(batch, &h, timeout)
	if err != nil {
		return nil, err
	}
	return &Proposal{p: p, pr: pr, offset: dupOffset, idempotent: true}, nil
}

// proposeIdempotent checks a batch of an idempotent producer against what
// this leader has seen, and proposes it if it is new and in order. For a
// retry of a recent batch it returns that batch's proposal if it is still in
// flight, or its offset.
func (p *Partition) proposeIdempotent(batch []byte, h *record.BatchHeader, timeout time.Duration) (*proposal, uint64, error) {
	p.produceMu.Lock()
	defer p.produceMu.Unlock()
	if p.leaderView == nil {
		// Wait until everything proposed so far is applied, then start
		// from the committed table.
		if err := raftfuture.Error(p.raft.Barrier(timeout), p.stop); err != nil {
			return nil, 0, p.notLeader()
		}
		p.stateMu.Lock()
		p.leaderView = p.state.producers.clone()
		p.stateMu.Unlock()
	}
	v, dup, err := p.leaderView.check(h.ProducerID, h.ProducerEpoch, h.BaseSequence, h.Count)
	if err != nil {
		return nil, 0, err
	}
	if v == verdictDuplicate {
		if dup.pending != nil {
			return dup.pending, 0, nil
		}
		return nil, dup.baseOffset, nil
	}
	pr := &proposal{future: p.raft.Apply(batch, timeout)}
	p.leaderView.add(h.ProducerID, h.ProducerEpoch, h.BaseSequence, h.Count, 0, pr)
	return pr, 0, nil
}

// notLeader is the error for a request that needs the leader. A replica
// that has just lost leadership may still have itself as the leader in its
// view (Raft tells it of the new leader a moment later): it names none then,
// rather than send the client back to itself.
func (p *Partition) notLeader() error {
	li := p.leader.Load()
	if li.LeaderID == p.cfg.ID {
		return &NotLeaderError{}
	}
	return &NotLeaderError{LeaderID: string(li.LeaderID), LeaderAddress: string(li.LeaderAddress)}
}

// Leader says who leads the partition, as far as this replica knows.
func (p *Partition) Leader() LeaderInfo { return *p.leader.Load() }

// IsLeader reports whether this replica leads and is ready for produce.
func (p *Partition) IsLeader() bool { return p.ready.Load() }

// Stats are counters of a replica's write path.
type Stats struct {
	// StoreCalls counts log appends (one write, at most one fsync, each);
	// StoredEntries counts the entries they held. StoredEntries/StoreCalls
	// is how many proposals group commit put behind each fsync.
	StoreCalls, StoredEntries uint64
}

// Stats returns the replica's counters.
func (p *Partition) Stats() Stats {
	return Stats{StoreCalls: p.store.storeCalls.Load(), StoredEntries: p.store.storedEntries.Load()}
}
