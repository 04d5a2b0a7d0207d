// Package partition is one replica of a partition: a log (package log) and
// the hashicorp/raft group that replicates it across the partition's
// replicas. It turns the log into a replicated, ordered, durable stream of
// records with per-record offsets.
//
// # One write path
//
// The log is Raft's log (logStore implements raft.LogStore on it), so a
// record batch reaches the disk once. A produced batch (protocol/record
// format) becomes one Raft entry and one log entry; Raft hands the leader's
// loop a group of concurrent proposals at a time, and each group is one
// StoreLogs call: one write and, with fsync always, one fsync. Raft's
// stable state (term, vote) lives in raft.db (raft-boltdb).
//
// # Offsets and the high watermark
//
// The log gives each data entry a base offset (the previous entry's base
// offset plus its record count); control entries (Raft no-ops and
// configuration changes) hold no records. So every replica that holds the
// same entries computes the same offsets. The FSM copies no data: applying
// committed entries only moves the high watermark (the offset after the last
// committed record) and the idempotent producers' sequence numbers. Fetch
// serves frames up to the last applied entry only, from the leader only.
//
// # Retention and Raft compaction
//
// Raft never deletes a prefix of the log: TrailingLogs is set to its
// maximum, so its snapshot compaction is a no-op. Retention deletes whole
// sealed segments, and only entries that the newest snapshot covers (it
// takes a snapshot first if needed), so a restart never needs a deleted
// entry.
//
// A snapshot is the partition's small state: the applied index, the high
// watermark and the producer table (snapshotState). It is cheap to take
// however big the log is. When Raft sends a snapshot to a follower that is
// behind the leader's log start, the snapshot store streams the state
// followed by the leader's log frames from its log start to the snapshot
// index, and the follower rebuilds its log from them (fsm.Restore). So a
// follower that was down while retention moved on ends up holding what the
// leader's retention keeps, not just what came after the snapshot, and
// consumers can replay the same history from any replica that becomes
// leader. See docs/partition.md for why this is not the small-state-only
// snapshot DESIGN.md first described.
//
// On open, the replica loads its newest snapshot's state itself
// (NoSnapshotRestoreOnStart) and Raft re-applies the committed entries after
// it, which rebuilds the high watermark and the producer table.
//
// # Idempotent producers
//
// A batch with a producer id carries its epoch and the sequence number of
// its first record. The leader checks it against the producers' recent
// batches (including ones it proposed that are not yet committed) and the
// proposal is made under the same lock, so sequence order is log order: a
// retry of one of the last five batches gets the original offset, a gap
// gets ErrOutOfOrderSequence, an older epoch ErrProducerFenced. The table is
// part of the committed state (every replica applies it), so it survives
// leader changes: a new leader first applies every entry of earlier terms
// (a Raft barrier) before it takes produce requests.
package partition
