package main

import (
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	for i := 1; i <= 100_000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {0.999, 99900 * time.Microsecond}, {1, 100 * time.Millisecond}} {
		got := h.quantile(tc.q)
		if diff := got - tc.want; diff < -tc.want/200 || diff > tc.want/200 {
			t.Errorf("quantile(%v) = %v, want %v within 0.5%%", tc.q, got, tc.want)
		}
	}
	if h.max != 100*time.Millisecond {
		t.Errorf("max = %v", h.max)
	}
	for _, us := range []uint64{0, 1, 1023, 1024, 1025, 5000, 1 << 20, 1 << 40} {
		if v := bucketValue(bucket(us)); v > us || us-v > us/500+1 {
			t.Errorf("bucket of %d starts at %d", us, v)
		}
	}
}
