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
	"weir/protocol"
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
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		err := b.sendLeaderReports(ctx, reports)
		cancel()
		if err != nil {
			// The metadata group is electing, or the controller is out of
			// reach: try again soon.
			b.logger.Debug("reporting partition leaders", "err", err)
			b.leaders.putBack(reports)
			retry = time.After(200 * time.Millisecond)
		}
	}
}

// sendLeaderReports hands reports to the controller: directly when this
// node is the controller, else over the controller's client port.
func (b *Broker) sendLeaderReports(ctx context.Context, reports []cluster.LeaderReport) error {
	if b.controller.IsLeader() {
		return b.controller.ReportLeaders(ctx, reports)
	}
	id, addr := b.controllerAddress()
	if id < 0 || addr == "" || id == b.cfg.NodeID {
		return cluster.ErrNotController
	}
	req := &protocol.ReportLeadersRequest{Leaders: make([]protocol.ReportLeadersRequestLeader, len(reports))}
	for i, r := range reports {
		req.Leaders[i] = protocol.ReportLeadersRequestLeader{Topic: r.Topic, TopicID: int64(r.TopicID), Partition: r.Partition,
			LeaderID: r.Leader, LeaderEpoch: int64(r.Epoch)}
	}
	resp, err := b.peers.call(ctx, addr, req)
	if err != nil {
		return err
	}
	r := resp.(*protocol.ReportLeadersResponse)
	return protocol.ErrorForCodeMessage(r.ErrorCode, r.ErrorMessage)
}
