package partition

import (
	"context"
	"errors"
	"fmt"

	wlog "weir/log"
)

// FetchResult is the answer to a fetch: whole log frames (a file range to
// send as-is; empty when there is nothing new) and the partition's bounds.
// Release the range when it is sent.
type FetchResult struct {
	Frames         wlog.FileRange
	HighWatermark  uint64 // offset after the last committed record
	LogStartOffset uint64 // first offset still in the log
}

// Release lets go of the frames' segment.
func (r *FetchResult) Release() { r.Frames.Release() }

// Fetch returns committed frames from the entry holding offset, up to
// maxBytes (at least one frame). The frames may begin with records below
// offset and include control entries: readers skip both. Only the leader
// serves fetches, so a consumer never reads a record that a newer leader
// could lack.
func (p *Partition) Fetch(offset uint64, maxBytes int64) (FetchResult, error) {
	if !p.ready.Load() {
		return FetchResult{}, p.notLeader()
	}
	p.stateMu.Lock()
	hw, applied := p.state.highWatermark, p.state.appliedIndex
	p.stateMu.Unlock()
	res := FetchResult{HighWatermark: hw, LogStartOffset: p.log.FirstOffset()}
	if offset < res.LogStartOffset || offset > hw {
		return res, fmt.Errorf("%w: offset %d not in [%d, %d]", ErrOffsetOutOfRange, offset, res.LogStartOffset, hw)
	}
	if offset == hw {
		return res, nil
	}
	idx, err := p.log.IndexForOffset(offset)
	if err == nil {
		res.Frames, err = p.log.FileRange(idx, applied, maxBytes)
	}
	if errors.Is(err, wlog.ErrOutOfRange) {
		// Retention moved the log start since we looked.
		return res, fmt.Errorf("%w: %w", ErrOffsetOutOfRange, err)
	}
	return res, err
}

// HighWatermark is the offset after the last committed record.
func (p *Partition) HighWatermark() uint64 {
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	return p.state.highWatermark
}

// WaitHighWatermark blocks until the high watermark passes offset, ctx is
// done, or the partition closes: the long poll of a fetch.
func (p *Partition) WaitHighWatermark(ctx context.Context, offset uint64) error {
	for {
		p.hwMu.Lock()
		ch := p.hwChanged
		p.hwMu.Unlock()
		if p.HighWatermark() > offset {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-p.stop:
			return ErrClosed
		}
	}
}

// publishHighWatermark wakes everyone waiting for the high watermark.
func (p *Partition) publishHighWatermark() {
	p.hwMu.Lock()
	close(p.hwChanged)
	p.hwChanged = make(chan struct{})
	p.hwMu.Unlock()
}
