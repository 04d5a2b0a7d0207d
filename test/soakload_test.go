//go:build soak

package test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"weir/client"
)

// soakAck is one acknowledged record of a partition.
type soakAck struct {
	at  time.Time
	seq int   // the value is soakValue(partition, seq)
	off int64 // the offset it was acknowledged at
}

func soakValue(p, seq int) string { return fmt.Sprintf("p%d-%06d", p, seq) }

// soakLoad produces to every partition continuously, acks all and
// idempotent (the client's defaults), at most maxOutstanding records per
// partition unacknowledged, one record per partition every loadInterval.
// The values are soakValue(partition, sequence).
type soakLoad struct {
	topic string
	prod  *client.Producer
	stopc chan struct{}
	done  chan struct{}
	once  sync.Once

	mu          sync.Mutex
	next        []int // next sequence per partition
	outstanding []int
	acks        [][]soakAck // per partition, in the order acknowledged
	failed      int
	errs        []string // the first few failures
}

func startSoakLoad(t *testing.T, brokers, topic string, partitions int) *soakLoad {
	t.Helper()
	prod, err := client.NewProducer(client.SeedBrokers(strings.Split(brokers, ",")...),
		client.ClientID("soak-load"),
		client.WithPartitioner(client.ExplicitPartitioner()),
		client.RequestTimeout(3*time.Second),
		client.MaxRetries(1000)) // with backoff up to 1 s: longer than any outage
	if err != nil {
		t.Fatal(err)
	}
	g := &soakLoad{topic: topic, prod: prod, stopc: make(chan struct{}), done: make(chan struct{}),
		next: make([]int, partitions), outstanding: make([]int, partitions), acks: make([][]soakAck, partitions)}
	go g.run()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		g.finish(ctx)
	})
	return g
}

func (g *soakLoad) run() {
	defer close(g.done)
	tick := time.NewTicker(loadInterval)
	defer tick.Stop()
	for {
		select {
		case <-g.stopc:
			return
		case <-tick.C:
		}
		for p := range g.next {
			g.mu.Lock()
			if g.outstanding[p] >= maxOutstanding {
				g.mu.Unlock()
				continue
			}
			g.outstanding[p]++
			v := soakValue(p, g.next[p])
			g.next[p]++
			g.mu.Unlock()
			g.prod.Produce(context.Background(), &client.Record{Topic: g.topic, Partition: int32(p), Key: []byte(v), Value: []byte(v)}, g.promise)
		}
	}
}

func (g *soakLoad) promise(r *client.Record, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now() // under mu: each partition's acknowledgements in time order
	p := r.Partition
	g.outstanding[p]--
	if err != nil {
		g.failed++
		if len(g.errs) < 5 {
			g.errs = append(g.errs, fmt.Sprintf("%s: %v", r.Value, err))
		}
		return
	}
	var vp, seq int
	fmt.Sscanf(string(r.Value), "p%d-%d", &vp, &seq)
	g.acks[p] = append(g.acks[p], soakAck{at: now, seq: seq, off: r.Offset})
}

func (g *soakLoad) ackCounts() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := make([]int, len(g.acks))
	for p := range g.acks {
		n[p] = len(g.acks[p])
	}
	return n
}

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
func (g *soakLoad) failover(p int32, at time.Time) (d time.Duration, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	as := g.acks[p]
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

func (g *soakLoad) failures() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return fmt.Sprintf("%d failed %v", g.failed, g.errs)
}

// finish stops producing and waits (until ctx is done) for every record to
// be acknowledged or to fail; it returns false if some were neither.
func (g *soakLoad) finish(ctx context.Context) bool {
	ok := true
	g.once.Do(func() {
		close(g.stopc)
		<-g.done
		ok = g.prod.Shutdown(ctx) == nil
	})
	return ok
}

// stop stops the load, gives every record a minute to be settled, counts
// records neither acknowledged nor failed (UNSETTLED) and failed ones
// (FAILED: the producer retries for longer than any outage, so a failure
// is an error it was told not to retry), and returns the acknowledgements.
func (g *soakLoad) stop(t *testing.T, f *findings) [][]soakAck {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	settled := g.finish(ctx)
	g.mu.Lock()
	defer g.mu.Unlock()
	produced, acked, unsettled := 0, 0, 0
	for p := range g.next {
		produced += g.next[p]
		acked += len(g.acks[p])
		unsettled += g.outstanding[p]
	}
	t.Logf("load: %d records produced, %d acknowledged, %d failed, %d unsettled", produced, acked, g.failed, unsettled)
	if !settled || unsettled > 0 {
		f.addN("UNSETTLED", max(unsettled, 1), "%d records neither acknowledged nor failed a minute after the load stopped", unsettled)
	}
	if g.failed > 0 {
		f.addN("FAILED", g.failed, "%d records failed, e.g. %v", g.failed, g.errs)
	}
	out := make([][]soakAck, len(g.acks))
	for p := range g.acks {
		out[p] = slices.Clone(g.acks[p])
	}
	return out
}

// The checker.
