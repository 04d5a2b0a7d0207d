package partition

import (
	"errors"
	"math"
	"time"

	"github.com/hashicorp/raft"
)

// retentionLoop applies retention every RetentionInterval.
func (p *Partition) retentionLoop() {
	t := time.NewTicker(p.cfg.RetentionInterval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			if _, err := p.ApplyRetention(); err != nil {
				p.logger.Warn("retention failed", "dir", p.cfg.Dir, "err", err)
			}
		}
	}
}

// ApplyRetention deletes the log segments that the topic's retention no
// longer wants, and returns how many. It removes only entries that a
// snapshot covers, so neither a restart nor a follower that is behind ever
// needs them: it takes a snapshot first when entries were applied since the
// last one. Every replica applies retention to its own log.
func (p *Partition) ApplyRetention() (int, error) {
	p.stateMu.Lock()
	applied := p.state.appliedIndex
	p.stateMu.Unlock()
	if p.snaps.latest.Load() < applied {
		err := p.raft.Snapshot().Error()
		if err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
			return 0, err
		}
	}
	// Never past what this replica has applied either: a snapshot received
	// from a leader is recorded before its restore, which may yet fail.
	p.stateMu.Lock()
	applied = p.state.appliedIndex
	p.stateMu.Unlock()
	n, err := p.log.ApplyRetention(min(p.snaps.latest.Load(), applied) + 1)
	if n > 0 {
		p.invalidateLogCache()
	}
	return n, err
}

// invalidateLogCache empties Raft's in-memory entry cache, so Raft sees the
// log as it is on disk: after retention it must not replicate deleted
// entries from memory (a follower behind the log start gets a snapshot),
// and after a restore it must not serve the replaced log's entries.
// DeleteRange on the cache always empties it; an empty range past the end
// deletes nothing from the log.
func (p *Partition) invalidateLogCache() {
	if err := p.logCache.DeleteRange(math.MaxUint64, math.MaxUint64); err != nil {
		p.logger.Warn("emptying the raft entry cache", "err", err)
	}
}
