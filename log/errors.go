package log

import (
	"errors"
	"fmt"
)

// Errors returned by the log. Check them with errors.Is.
var (
	// ErrCorrupt marks data that fails its checksum or contradicts the rest
	// of the log where a torn tail cannot explain it. The error that carries
	// it is a *CorruptError naming the file and position.
	ErrCorrupt = errors.New("weir/log: corrupt data")

	// ErrOutOfRange is returned for an entry index or record offset that the
	// log does not hold: below its first entry or past its last.
	ErrOutOfRange = errors.New("weir/log: out of range")

	// ErrNonContiguous is returned by Append when the first entry's index is
	// not the log's next index, or the indexes of a batch are not dense.
	ErrNonContiguous = errors.New("weir/log: entry index is not the next index")

	// ErrEntryTooLarge is returned by Append for a payload that cannot fit in
	// a frame or a segment.
	ErrEntryTooLarge = errors.New("weir/log: entry too large")

	// ErrClosed is returned by every operation on a closed log.
	ErrClosed = errors.New("weir/log: log is closed")

	// ErrFailed wraps the error of a write, sync or file operation that failed
	// halfway. The log refuses further writes until it is reopened, because
	// the files may no longer match what it has in memory; reopening recovers.
	ErrFailed = errors.New("weir/log: log failed; reopen it")
)

// CorruptError describes corrupt data: which file, where, and why.
// It matches ErrCorrupt with errors.Is.
type CorruptError struct {
	File   string // path of the store or index file
	Pos    int64  // byte position of the bad frame, header or slot
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("weir/log: corrupt data in %s at position %d: %s", e.File, e.Pos, e.Reason)
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

func corruptf(file string, pos int64, format string, args ...any) error {
	return &CorruptError{File: file, Pos: pos, Reason: fmt.Sprintf(format, args...)}
}
