package log

import (
	"fmt"
	"io"
	"log/slog"
	"time"
)

// FsyncPolicy says when appended data is made durable.
type FsyncPolicy uint8

const (
	// FsyncAlways makes Append return only after the data is on stable
	// storage (fdatasync of the store file).
	FsyncAlways FsyncPolicy = iota
	// FsyncInterval syncs in the background every Options.FsyncInterval.
	FsyncInterval
	// FsyncNever leaves writing back to the kernel; Close still syncs.
	FsyncNever
)

func (p FsyncPolicy) String() string {
	switch p {
	case FsyncAlways:
		return "always"
	case FsyncInterval:
		return "interval"
	case FsyncNever:
		return "never"
	default:
		return fmt.Sprintf("FsyncPolicy(%d)", uint8(p))
	}
}

// ParseFsyncPolicy parses "always", "interval" or "never".
func ParseFsyncPolicy(s string) (FsyncPolicy, error) {
	switch s {
	case "always":
		return FsyncAlways, nil
	case "interval":
		return FsyncInterval, nil
	case "never":
		return FsyncNever, nil
	}
	return 0, fmt.Errorf("weir/log: unknown fsync policy %q (want always, interval or never)", s)
}

// Limits on segment size. Positions in the index are 32-bit.
const (
	MinSegmentBytes     = 4 << 10
	MaxSegmentBytes     = 2 << 30
	DefaultSegmentBytes = 128 << 20
)

// Options configure a log. The zero value of each field means its default.
type Options struct {
	// SegmentBytes is the size at which the active segment is rolled: an
	// append that would grow the store past it starts a new segment (a
	// single entry larger than this still gets a segment of its own).
	// Default 128 MiB; between MinSegmentBytes and MaxSegmentBytes.
	SegmentBytes int64
	// SegmentAge rolls the active segment once it is this old, at the next
	// append. 0: never by age.
	SegmentAge time.Duration
	// Fsync is the durability policy. Default FsyncAlways.
	Fsync FsyncPolicy
	// FsyncInterval is the background sync period for FsyncInterval.
	// Default 100ms.
	FsyncInterval time.Duration
	// RetentionAge lets ApplyRetention delete sealed segments whose newest
	// entry is older than this. 0: keep forever.
	RetentionAge time.Duration
	// RetentionBytes lets ApplyRetention delete the oldest sealed segments
	// while the log stays at least this large without them. 0: no limit.
	RetentionBytes int64
	// Logger receives recovery notices (torn tails truncated, indexes
	// rebuilt). Default: discard.
	Logger *slog.Logger
	// Now is the clock, for segment age and retention. Default time.Now.
	Now func() time.Time
}

// withDefaults returns o with zero fields set to their defaults, or an
// error naming the first invalid field.
func (o Options) withDefaults() (Options, error) {
	if o.SegmentBytes == 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	if o.SegmentBytes < MinSegmentBytes || o.SegmentBytes > MaxSegmentBytes {
		return o, fmt.Errorf("weir/log: SegmentBytes %d out of range [%d, %d]", o.SegmentBytes, MinSegmentBytes, MaxSegmentBytes)
	}
	if o.Fsync > FsyncNever {
		return o, fmt.Errorf("weir/log: unknown fsync policy %d", o.Fsync)
	}
	if o.FsyncInterval == 0 {
		o.FsyncInterval = 100 * time.Millisecond
	}
	if o.FsyncInterval < 0 || o.SegmentAge < 0 || o.RetentionAge < 0 || o.RetentionBytes < 0 {
		return o, fmt.Errorf("weir/log: negative duration or size in options")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, nil
}

// indexCapacity is the number of slots pre-allocated for an active segment:
// enough for a store full of empty frames, so the index never fills first.
func (o *Options) indexCapacity() int64 {
	return (o.SegmentBytes-segmentHeaderSize)/frameHeaderSize + 1
}
