package client

import (
	"context"
	"fmt"
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
