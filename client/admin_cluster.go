package client

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"time"

	"weir/protocol"
)

// NodeStatus is a node of the cluster as DescribeCluster sees it.
type NodeStatus struct {
	ID         int32
	Address    string // host:port of its client listener
	Controller bool   // it leads the metadata group
	// Alive is whether it answered a request just now; Err says why not.
	Alive   bool
	Latency time.Duration // of that request
	Err     string        `json:",omitempty"`
}

// DescribeCluster lists the nodes the metadata knows, which one is the
// controller, and whether each answers a request now (an ApiVersions
// request of its own, with timeout per node).
func (a *Admin) DescribeCluster(ctx context.Context, timeout time.Duration) ([]NodeStatus, error) {
	var md *protocol.MetadataResponse
	err := a.retry(ctx, func() error {
		resp, err := a.cl.anyRequest(ctx, &protocol.MetadataRequest{Topics: []string{}})
		if err == nil {
			md = resp.(*protocol.MetadataResponse)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("weir/client: describe cluster: %w", err)
	}
	out := make([]NodeStatus, len(md.Brokers))
	done := make(chan int, len(out))
	for i, b := range md.Brokers {
		out[i] = NodeStatus{ID: b.NodeID, Address: net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))), Controller: b.NodeID == md.ControllerID}
		go func() {
			pctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			start := time.Now()
			_, err := a.cl.requestTo(pctx, out[i].Address, &protocol.APIVersionsRequest{})
			out[i].Latency = time.Since(start)
			out[i].Alive = err == nil
			if err != nil {
				out[i].Err = err.Error()
			}
			done <- i
		}()
	}
	for range out {
		<-done
	}
	slices.SortFunc(out, func(x, y NodeStatus) int { return int(x.ID - y.ID) })
	return out, nil
}

// ReassignPartitions moves partitions of a topic to new replicas
// (partition -> target node ids, the first the preferred leader). It
// returns once the controller has recorded the targets; the partitions'
// leaders then move the data (new replicas catch up before old ones are
// dropped). DescribeTopic shows a partition's replicas as the target once
// its move is complete.
func (a *Admin) ReassignPartitions(ctx context.Context, topic string, targets map[int32][]int32) error {
	req := &protocol.ReassignPartitionsRequest{Topic: topic}
	for _, p := range slices.Sorted(maps.Keys(targets)) {
		req.Partitions = append(req.Partitions, protocol.ReassignPartitionsRequestPartition{Partition: p, Replicas: targets[p]})
	}
	err := a.controllerOp(ctx, req, func(resp protocol.Response) error {
		r := resp.(*protocol.ReassignPartitionsResponse)
		return protocol.ErrorForCodeMessage(r.ErrorCode, r.ErrorMessage)
	})
	if err != nil {
		return fmt.Errorf("weir/client: reassign partitions of %q: %w", topic, err)
	}
	return nil
}

// RemoveNode decommissions a node: its replicas move to other nodes, then
// it leaves the cluster. It returns once the removal has begun;
// DescribeCluster stops listing the node when it is done.
func (a *Admin) RemoveNode(ctx context.Context, node int32) error {
	err := a.controllerOp(ctx, &protocol.RemoveNodeRequest{NodeID: node}, func(resp protocol.Response) error {
		r := resp.(*protocol.RemoveNodeResponse)
		return protocol.ErrorForCodeMessage(r.ErrorCode, r.ErrorMessage)
	})
	if err != nil {
		return fmt.Errorf("weir/client: remove node %d: %w", node, err)
	}
	return nil
}
