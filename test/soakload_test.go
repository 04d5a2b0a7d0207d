//go:build soak

package test

import (
	"context"
	"slices"
	"sort"
	"testing"
	"time"
)

// failoverTail is how long after a fault acknowledgements of records
// its victim committed before it may still arrive (answers already on
// their way, or in the client's buffers).
const failoverTail = 500 * time.Millisecond

// failover returns how long partition p took, from a fault at at, to get
// its first acknowledgement from the leader that took over: the end of
// the longest stretch without acknowledgements that began at the fault or
// within failoverTail after it (after the old leader's last answers),
// minus at. Where the leader did not change, that is about the time
// between two records. ok is false if p has no acknowledgement after at.
func (g *loadGen) failover(p int32, at time.Time) (d time.Duration, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	as := g.history[p]
	i := sort.Search(len(as), func(i int) bool { return as[i].at.After(at) })
	if i == len(as) {
		return 0, false
	}
	longest, end := as[i].at.Sub(at), as[i].at
	for j := i + 1; j < len(as) && as[j-1].at.Before(at.Add(failoverTail)); j++ {
		if gap := as[j].at.Sub(as[j-1].at); gap > longest {
			longest, end = gap, as[j].at
		}
	}
	return end.Sub(at), true
}

// settle stops the load, gives every record a minute to be settled, counts
// records neither acknowledged nor failed (UNSETTLED) and failed ones
// (FAILED: the producer retries for longer than any outage, so a failure
// is an error it was told not to retry), and returns the acknowledgements.
func (g *loadGen) settle(t *testing.T, f *findings) [][]loadAck {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	settled := g.finish(ctx)
	g.mu.Lock()
	defer g.mu.Unlock()
	produced, acked, unsettled := 0, 0, 0
	for p := range g.next {
		produced += g.next[p]
		acked += len(g.history[p])
		unsettled += g.outstanding[p]
	}
	t.Logf("load: %d records produced, %d acknowledged, %d failed, %d unsettled", produced, acked, g.failed, unsettled)
	if !settled || unsettled > 0 {
		f.addN("UNSETTLED", max(unsettled, 1), "%d records neither acknowledged nor failed a minute after the load stopped", unsettled)
	}
	if g.failed > 0 {
		f.addN("FAILED", g.failed, "%d records failed, e.g. %v", g.failed, g.errs)
	}
	out := make([][]loadAck, len(g.history))
	for p := range g.history {
		out[p] = slices.Clone(g.history[p])
	}
	return out
}

// The checker.
