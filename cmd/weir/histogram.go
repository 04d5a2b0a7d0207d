package main

import (
	"math/bits"
	"time"
)

// histogram records durations in log-linear buckets (HDR style): values
// keep about three significant digits, in fixed memory whatever the count.
type histogram struct {
	counts [64 * 512]uint64
	total  uint64
	max    time.Duration
}

// bucket maps microseconds to a bucket: exact below 1024, then 512 buckets
// per power of two.
func bucket(us uint64) int {
	if us < 1024 {
		return int(us)
	}
	e := bits.Len64(us) - 10 // >= 1; us>>e is in [512, 1024)
	return min(512*(e+1)+int(us>>uint(e)), len(histogram{}.counts)-1)
}

// bucketValue is the smallest value of bucket i, in microseconds.
func bucketValue(i int) uint64 {
	if i < 1024 {
		return uint64(i)
	}
	e := i/512 - 2 // i = 512*(e+1) + m with m in [512, 1024)
	return uint64(i-512*(e+1)) << uint(e)
}

func (h *histogram) record(d time.Duration) {
	h.counts[bucket(uint64(max(d.Microseconds(), 0)))]++
	h.total++
	h.max = max(h.max, d)
}

// quantile returns the value at or below which a fraction q of the
// recorded durations lie.
func (h *histogram) quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(q * float64(h.total))
	var seen uint64
	for i, c := range h.counts {
		if seen += c; seen > rank {
			return min(time.Duration(bucketValue(i))*time.Microsecond, h.max)
		}
	}
	return h.max
}
