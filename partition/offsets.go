package partition

import (
	"errors"
	"fmt"
	"io"

	wlog "weir/log"
	"weir/protocol/record"
)

// Offsets is the range of committed records a consumer can read.
type Offsets struct {
	LogStart      uint64 // the earliest offset still in the log
	HighWatermark uint64 // the offset after the last committed record
}

// ListOffsets returns the earliest and latest (high watermark) offsets.
func (p *Partition) ListOffsets() (Offsets, error) {
	if !p.ready.Load() {
		return Offsets{}, p.notLeader()
	}
	return Offsets{LogStart: p.log.FirstOffset(), HighWatermark: p.HighWatermark()}, nil
}

// OffsetForTimestamp returns the offset of the first committed record whose
// timestamp is at or after ts, and that record's timestamp; found is false
// (and the offset is the high watermark) when there is none.
func (p *Partition) OffsetForTimestamp(ts int64) (offset uint64, timestamp int64, found bool, err error) {
	if !p.ready.Load() {
		return 0, 0, false, p.notLeader()
	}
	p.stateMu.Lock()
	hw, applied := p.state.highWatermark, p.state.appliedIndex
	p.stateMu.Unlock()
	idx, err := p.log.IndexForTimestamp(ts)
	if err != nil {
		return 0, 0, false, err
	}
	if idx > applied {
		return hw, 0, false, nil
	}
	// The first data entry from there holds the record (control entries,
	// without timestamps, can only match ts <= 0): find it.
	e, err := p.log.Read(idx)
	for err == nil && e.Type != wlog.TypeData {
		if idx++; idx > applied {
			return hw, 0, false, nil
		}
		e, err = p.log.Read(idx)
	}
	if err != nil {
		return 0, 0, false, err
	}
	r, err := record.NewReader(e.Payload)
	if err != nil {
		return 0, 0, false, fmt.Errorf("weir/partition: entry %d: %w", idx, err)
	}
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return 0, 0, false, fmt.Errorf("weir/partition: entry %d has no record at or after %d", idx, ts)
		}
		if err != nil {
			return 0, 0, false, fmt.Errorf("weir/partition: entry %d: %w", idx, err)
		}
		if rec.Timestamp >= ts {
			return e.BaseOffset + uint64(rec.OffsetDelta), rec.Timestamp, true, nil
		}
	}
}
