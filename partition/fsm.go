package partition

import (
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/hashicorp/raft"

	wlog "weir/log"
	"weir/protocol/record"
)

// committed is the partition's state as of the last applied Raft entry. The
// FSM owns it; others read it under Partition.stateMu.
type committed struct {
	appliedIndex  uint64 // last Raft index applied
	highWatermark uint64 // offset after the last committed record
	producers     producerTable
}

// fsm is the partition's Raft state machine. It copies no data: the records
// are already in the log (the log is Raft's log). Applying committed entries
// only moves the high watermark and the producers' sequence numbers.
type fsm struct{ p *Partition }

var _ raft.BatchingFSM = fsm{}

// applyResult is what Raft hands back to the proposer of an entry.
type applyResult struct {
	baseOffset uint64
	err        error
}

// ApplyBatch implements raft.BatchingFSM: a burst of commits is one update
// of the high watermark and one wake-up of waiting fetches.
func (f fsm) ApplyBatch(logs []*raft.Log) []any {
	p := f.p
	results := make([]any, len(logs))
	p.stateMu.Lock()
	st := &p.state
	for i, l := range logs {
		st.appliedIndex = l.Index
		if l.Type != raft.LogCommand {
			continue
		}
		base, count, err := p.log.EntryOffsets(l.Index)
		if err != nil {
			// The entry is committed, so it is in the log: this is a bug
			// or a damaged disk, and going on would serve wrong offsets.
			panic(fmt.Sprintf("weir/partition: committed entry %d not in the log: %v", l.Index, err))
		}
		st.highWatermark = base + uint64(count)
		results[i] = applyResult{baseOffset: base}
		// The batch was checked when it was stored (StoreLogs; Validate on
		// the leader): no need to checksum it once more.
		h, err := record.ParseHeaderVerified(l.Data)
		if err == nil && h.ProducerID >= 0 {
			st.producers.add(h.ProducerID, h.ProducerEpoch, h.BaseSequence, h.Count, base, nil)
		}
	}
	p.stateMu.Unlock()
	p.publishHighWatermark()
	return results
}

// Apply implements raft.FSM.
func (f fsm) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// Snapshot implements raft.FSM: a copy of the small state.
func (f fsm) Snapshot() (raft.FSMSnapshot, error) {
	p := f.p
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	return &fsmSnapshot{state: snapshotState{
		appliedIndex:  p.state.appliedIndex,
		highWatermark: p.state.highWatermark,
		producers:     p.state.producers.clone(),
	}}, nil
}

// Restore implements raft.FSM. Raft calls it only for a snapshot installed
// from the leader (the partition sets NoSnapshotRestoreOnStart and rebuilds
// its state itself on open). The stream is the leader's state and the frames
// of its log from its log start to the snapshot index; the local log is
// replaced by them.
func (f fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	p := f.p
	st, err := readState(rc)
	if err != nil {
		return err
	}
	// Raft still believes in the entries the reset drops: see logStore.
	p.store.setPhantomLast(p.log.LastIndex())
	if st.dataBytes == 0 {
		err = p.log.Reset(st.appliedIndex+1, st.highWatermark)
	} else {
		err = restoreFrames(p.log, &st, io.LimitReader(rc, int64(min(st.dataBytes, math.MaxInt64))))
	}
	if err != nil {
		return fmt.Errorf("weir/partition: restore snapshot at %d: %w", st.appliedIndex, err)
	}
	p.invalidateLogCache()
	p.stateMu.Lock()
	p.state = committed{appliedIndex: st.appliedIndex, highWatermark: st.highWatermark, producers: st.producers}
	p.stateMu.Unlock()
	p.publishHighWatermark()
	p.logger.Info("installed snapshot", "index", st.appliedIndex, "log-start", st.logStartIndex, "bytes", st.dataBytes)
	return nil
}

// restoreBatchBytes is how much restoreFrames appends at a time.
const restoreBatchBytes = 1 << 20

// restoreFrames empties l and appends the frames in r, which must be the
// entries st.logStartIndex to st.appliedIndex.
func restoreFrames(l *wlog.Log, st *snapshotState, r io.Reader) error {
	if err := l.Reset(st.logStartIndex, st.logStartOffset); err != nil {
		return err
	}
	var batch []wlog.Entry
	var batchBytes int
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		want := make([]uint64, len(batch))
		for i := range batch {
			want[i] = batch[i].BaseOffset
		}
		if err := l.Append(batch); err != nil {
			return err
		}
		for i := range batch {
			if batch[i].BaseOffset != want[i] {
				return fmt.Errorf("entry %d: offset %d here, %d on the leader", batch[i].Index, batch[i].BaseOffset, want[i])
			}
		}
		batch, batchBytes = batch[:0], 0
		return nil
	}
	remaining := int64(st.dataBytes)
	var lenBuf [4]byte
	for remaining > 0 {
		if _, err := io.ReadFull(r, lenBuf[:]); err != nil {
			return fmt.Errorf("snapshot frames: %w", err)
		}
		size := int64(lenBuf[0])<<24 | int64(lenBuf[1])<<16 | int64(lenBuf[2])<<8 | int64(lenBuf[3]) + 4
		if size < wlog.FrameHeaderSize || size > remaining {
			return errors.New("snapshot frames: frame length out of range")
		}
		frame := make([]byte, size)
		copy(frame, lenBuf[:])
		if _, err := io.ReadFull(r, frame[4:]); err != nil {
			return fmt.Errorf("snapshot frames: %w", err)
		}
		e, _, err := wlog.DecodeFrame(frame)
		if err != nil {
			return fmt.Errorf("snapshot frames: %w", err)
		}
		batch = append(batch, e)
		batchBytes += len(frame)
		remaining -= size
		if batchBytes >= restoreBatchBytes {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if l.LastIndex() != st.appliedIndex || l.NextOffset() != st.highWatermark {
		return fmt.Errorf("snapshot frames end at index %d offset %d, want %d and %d",
			l.LastIndex(), l.NextOffset(), st.appliedIndex, st.highWatermark)
	}
	return nil
}

// fsmSnapshot persists the state copied by fsm.Snapshot.
type fsmSnapshot struct{ state snapshotState }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := writeState(sink, &s.state); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}
