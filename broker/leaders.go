package broker

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"weir/cluster"
)

// leaderReports are the leaderships this node's replicas have won and the
// metadata does not know yet. Partitions elect their leaders in their own
// Raft groups; the metadata learns of them from these reports, so that
// every node can name any partition's leader in Metadata responses.
type leaderReports struct {
	mu      sync.Mutex
	pending map[replicaKey]cluster.LeaderReport
	wake    chan struct{} // buffered 1
}

// add queues a report; a newer one for the same partition replaces it.
func (l *leaderReports) add(r cluster.LeaderReport) {
	l.mu.Lock()
	k := replicaKey{r.Topic, r.Partition}
	if cur, ok := l.pending[k]; !ok || cur.TopicID != r.TopicID || cur.Epoch <= r.Epoch {
		l.pending[k] = r
	}
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// take removes and returns everything pending, in a stable order.
func (l *leaderReports) take() []cluster.LeaderReport {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]cluster.LeaderReport, 0, len(l.pending))
	for _, k := range slices.SortedFunc(maps.Keys(l.pending), func(a, b replicaKey) int {
		return cmp.Or(strings.Compare(a.topic, b.topic), cmp.Compare(a.partition, b.partition))
	}) {
		out = append(out, l.pending[k])
	}
	clear(l.pending)
	return out
}

// putBack requeues reports that could not be sent, unless newer ones came.
func (l *leaderReports) putBack(reports []cluster.LeaderReport) {
	for _, r := range reports {
		l.mu.Lock()
		k := replicaKey{r.Topic, r.Partition}
		if _, newer := l.pending[k]; !newer {
			l.pending[k] = r
		}
		l.mu.Unlock()
	}
}

// reportLeaders sends pending reports to the metadata group, all at once:
// a node that wins many elections together (another node died) sends one
// entry. Failed sends are retried.
func (b *Broker) reportLeaders() {
	defer b.wg.Done()
	var retry <-chan time.Time
	for {
		select {
		case <-b.stop:
			return
		case <-b.leaders.wake:
		case <-retry:
		}
		retry = nil
		reports := b.leaders.take()
		if len(reports) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := b.controller.ReportLeaders(ctx, reports)
		cancel()
		if err != nil {
			// Not the controller (the cluster forwards these in a later
			// step), or the metadata group is electing: try again soon.
			b.leaders.putBack(reports)
			retry = time.After(200 * time.Millisecond)
		}
	}
}
