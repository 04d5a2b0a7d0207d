package cluster

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// TopicConfig is a topic's settings. Every replica of every partition of the
// topic runs with them.
type TopicConfig struct {
	// RetentionMs deletes segments whose newest record is older; -1 keeps
	// them forever.
	RetentionMs int64 `json:"retention.ms"`
	// RetentionBytes deletes the oldest segments while a partition stays at
	// least this large without them; -1: no limit.
	RetentionBytes int64 `json:"retention.bytes"`
	// SegmentBytes rolls a partition's active segment at this size.
	SegmentBytes int64 `json:"segment.bytes"`
	// SegmentMs rolls a partition's active segment once it is this old.
	SegmentMs int64 `json:"segment.ms"`
	// MaxBytes caps a partition's size; -1: no cap. What happens at the cap
	// is Discard's choice.
	MaxBytes int64 `json:"max.bytes"`
	// Discard is "old" (retention drops the oldest segments to stay under
	// MaxBytes) or "reject" (produce gets a retriable Backpressure error).
	Discard string `json:"discard"`
	// Fsync is the partitions' log fsync policy: always, interval or never.
	Fsync string `json:"fsync"`
	// Compression lists the codecs producers may use: none, zstd, lz4,
	// snappy.
	Compression []string `json:"compression"`
}

// DefaultTopicConfig is what a topic gets for settings it does not name.
func DefaultTopicConfig() TopicConfig {
	return TopicConfig{
		RetentionMs:    (7 * 24 * time.Hour).Milliseconds(),
		RetentionBytes: -1,
		SegmentBytes:   128 << 20,
		SegmentMs:      (7 * 24 * time.Hour).Milliseconds(),
		MaxBytes:       -1,
		Discard:        "old",
		Fsync:          "always",
		Compression:    []string{"lz4", "none", "snappy", "zstd"}, // sorted, as Set stores them
	}
}

// Topic config keys, as clients name them.
const (
	KeyRetentionMs    = "retention.ms"
	KeyRetentionBytes = "retention.bytes"
	KeySegmentBytes   = "segment.bytes"
	KeySegmentMs      = "segment.ms"
	KeyMaxBytes       = "max.bytes"
	KeyDiscard        = "discard"
	KeyFsync          = "fsync"
	KeyCompression    = "compression"
)

// TopicConfigKeys lists every key, sorted.
var TopicConfigKeys = []string{KeyCompression, KeyDiscard, KeyFsync, KeyMaxBytes, KeyRetentionBytes, KeyRetentionMs, KeySegmentBytes, KeySegmentMs}

// Limits of segment.bytes, matching the log's.
const (
	minSegmentBytes = 4 << 10
	maxSegmentBytes = 1 << 30
)

// Set applies one key=value setting. A nil value resets the key to its
// default. The error names the key and says what is allowed.
func (c *TopicConfig) Set(key string, value *string) error {
	if value == nil {
		// Reset: set the default's own value, so there is one parser.
		d := DefaultTopicConfig()
		v, ok := d.Get(key)
		if !ok {
			return fmt.Errorf("%w: unknown key %q (known: %s)", ErrInvalidConfig, key, strings.Join(TopicConfigKeys, ", "))
		}
		value = &v
	}
	v := *value
	number := func(dst *int64, lo, hi int64) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("%w: %s=%q: want an integer in [%d, %d]", ErrInvalidConfig, key, v, lo, hi)
		}
		*dst = n
		return nil
	}
	oneOf := func(dst *string, allowed ...string) error {
		if !slices.Contains(allowed, v) {
			return fmt.Errorf("%w: %s=%q: want one of %s", ErrInvalidConfig, key, v, strings.Join(allowed, ", "))
		}
		*dst = v
		return nil
	}
	switch key {
	case KeyRetentionMs:
		return number(&c.RetentionMs, -1, math.MaxInt64)
	case KeyRetentionBytes:
		return number(&c.RetentionBytes, -1, math.MaxInt64)
	case KeySegmentBytes:
		return number(&c.SegmentBytes, minSegmentBytes, maxSegmentBytes)
	case KeySegmentMs:
		return number(&c.SegmentMs, 1, math.MaxInt64)
	case KeyMaxBytes:
		return number(&c.MaxBytes, -1, math.MaxInt64)
	case KeyDiscard:
		return oneOf(&c.Discard, "old", "reject")
	case KeyFsync:
		return oneOf(&c.Fsync, "always", "interval", "never")
	case KeyCompression:
		var codecs []string
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			if !slices.Contains([]string{"none", "zstd", "lz4", "snappy"}, s) {
				return fmt.Errorf("%w: %s=%q: %q is not one of none, zstd, lz4, snappy", ErrInvalidConfig, key, v, s)
			}
			if !slices.Contains(codecs, s) {
				codecs = append(codecs, s)
			}
		}
		sort.Strings(codecs)
		c.Compression = codecs
		return nil
	}
	return fmt.Errorf("%w: unknown key %q (known: %s)", ErrInvalidConfig, key, strings.Join(TopicConfigKeys, ", "))
}

// Get returns a key's value as text.
func (c *TopicConfig) Get(key string) (string, bool) {
	i := func(n int64) string { return strconv.FormatInt(n, 10) }
	switch key {
	case KeyRetentionMs:
		return i(c.RetentionMs), true
	case KeyRetentionBytes:
		return i(c.RetentionBytes), true
	case KeySegmentBytes:
		return i(c.SegmentBytes), true
	case KeySegmentMs:
		return i(c.SegmentMs), true
	case KeyMaxBytes:
		return i(c.MaxBytes), true
	case KeyDiscard:
		return c.Discard, true
	case KeyFsync:
		return c.Fsync, true
	case KeyCompression:
		return strings.Join(c.Compression, ","), true
	}
	return "", false
}

// topicName is what a topic may be called: it becomes a directory name.
var topicName = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

// ValidateTopicName says why name cannot be a topic's, if it cannot.
func ValidateTopicName(name string) error {
	if !topicName.MatchString(name) || name == "." || name == ".." {
		return fmt.Errorf("%w: %q: use 1 to 249 characters of a-z A-Z 0-9 . _ - (not \".\" or \"..\" alone)", ErrInvalidTopic, name)
	}
	return nil
}
