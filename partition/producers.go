package partition

import "fmt"

// recentBatches is how many batches per producer are remembered for
// duplicate detection: as many as a producer may have in flight.
const recentBatches = 5

// batchMeta is one remembered batch of an idempotent producer.
type batchMeta struct {
	firstSeq, lastSeq int32
	baseOffset        uint64
	// pending is set on the leader while the batch is proposed but not yet
	// applied; a retry waits for it instead of reading baseOffset.
	pending *proposal
}

// producerState is what a partition remembers of one producer id.
type producerState struct {
	epoch  int16
	recent []batchMeta // oldest first, at most recentBatches
}

// producerTable tracks idempotent producers: a plain state machine, fed by
// the FSM (committed batches, on every replica) and by the leader's produce
// path (proposed batches).
type producerTable map[int64]*producerState

// verdict is what check decides about a batch.
type verdict int

const (
	verdictAppend    verdict = iota // new and in order
	verdictDuplicate                // a retry of a recent batch
)

// check decides whether the batch (producer id, epoch, first sequence,
// record count) is new, a duplicate (returned), or refused.
func (t producerTable) check(id int64, epoch int16, firstSeq int32, count uint32) (verdict, batchMeta, error) {
	st := t[id]
	if st == nil || epoch > st.epoch {
		// A new producer, or a new epoch of one: sequences start over.
		if firstSeq != 0 {
			return 0, batchMeta{}, fmt.Errorf("%w: producer %d epoch %d starts at sequence %d, want 0", ErrOutOfOrderSequence, id, epoch, firstSeq)
		}
		return verdictAppend, batchMeta{}, nil
	}
	if epoch < st.epoch {
		return 0, batchMeta{}, fmt.Errorf("%w: producer %d epoch %d, current %d", ErrProducerFenced, id, epoch, st.epoch)
	}
	lastSeq := firstSeq + int32(count) - 1
	for i := range st.recent {
		if b := st.recent[i]; b.firstSeq == firstSeq && b.lastSeq == lastSeq {
			return verdictDuplicate, b, nil
		}
	}
	if len(st.recent) > 0 {
		if next := st.recent[len(st.recent)-1].lastSeq + 1; firstSeq != next {
			return 0, batchMeta{}, fmt.Errorf("%w: producer %d sent sequence %d, want %d", ErrOutOfOrderSequence, id, firstSeq, next)
		}
	}
	return verdictAppend, batchMeta{}, nil
}

// add records an appended batch.
func (t producerTable) add(id int64, epoch int16, firstSeq int32, count uint32, baseOffset uint64, pending *proposal) {
	st := t[id]
	if st == nil || epoch != st.epoch {
		st = &producerState{epoch: epoch}
		t[id] = st
	}
	if len(st.recent) == recentBatches {
		copy(st.recent, st.recent[1:])
		st.recent = st.recent[:recentBatches-1]
	}
	st.recent = append(st.recent, batchMeta{firstSeq: firstSeq, lastSeq: firstSeq + int32(count) - 1, baseOffset: baseOffset, pending: pending})
}

// clone copies the table without pending proposals.
func (t producerTable) clone() producerTable {
	c := make(producerTable, len(t))
	for id, st := range t {
		cp := &producerState{epoch: st.epoch, recent: make([]batchMeta, len(st.recent))}
		copy(cp.recent, st.recent)
		for i := range cp.recent {
			cp.recent[i].pending = nil
		}
		c[id] = cp
	}
	return c
}
