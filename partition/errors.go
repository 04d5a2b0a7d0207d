package partition

import (
	"errors"
	"fmt"
)

// Errors returned by a partition. Check them with errors.Is.
var (
	// ErrNotLeader: this replica does not lead the partition (or has just
	// become leader and is not ready yet). Retriable at the leader; the error
	// is a *NotLeaderError that says which replica leads, if known.
	ErrNotLeader = errors.New("weir/partition: not the leader")

	// ErrOffsetOutOfRange: a fetch below the log start or past the high
	// watermark.
	ErrOffsetOutOfRange = errors.New("weir/partition: offset out of range")

	// ErrInvalidBatch: a produced batch that does not parse.
	ErrInvalidBatch = errors.New("weir/partition: invalid record batch")

	// ErrOutOfOrderSequence: an idempotent producer's batch whose sequence is
	// neither the next one nor a recent duplicate; records may be missing.
	ErrOutOfOrderSequence = errors.New("weir/partition: out of order sequence number")

	// ErrProducerFenced: a batch from an older epoch of a producer id than
	// one already seen.
	ErrProducerFenced = errors.New("weir/partition: producer epoch is stale")

	// ErrClosed: the partition is closed.
	ErrClosed = errors.New("weir/partition: partition closed")
)

// NotLeaderError says who leads, so a client can retry there without a
// metadata refresh. It matches ErrNotLeader.
type NotLeaderError struct {
	LeaderID      string // empty when unknown
	LeaderAddress string // the leader's Raft address; empty when unknown
}

func (e *NotLeaderError) Error() string {
	if e.LeaderID == "" {
		return "weir/partition: not the leader; leader unknown"
	}
	return fmt.Sprintf("weir/partition: not the leader; leader is %s at %s", e.LeaderID, e.LeaderAddress)
}

// Is makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }
