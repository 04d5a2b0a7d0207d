package broker

import (
	"context"
	"fmt"
	"slices"
	"time"

	"weir/cluster"
	"weir/protocol"
)

// enterCluster brings this node into its cluster (bootstrapping a new one
// with the other founding nodes, or joining), waits until its metadata has
// caught up with the group's, then opens the broker to clients (ready).
// Serve starts it; the peer APIs are served meanwhile, so that the nodes of
// a new cluster can find each other.
func (b *Broker) enterCluster(addr string) {
	defer b.wg.Done()
	// Until Close: a node of a cluster whose majority is not up yet waits
	// for it (and says so) rather than giving up.
	index, err := b.register(b.ctx, addr)
	for err == nil {
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		err = b.controller.WaitCaughtUp(ctx, index)
		cancel()
		if err == nil || b.ctx.Err() != nil {
			break
		}
		b.logger.Warn("waiting for the metadata group: no leader, or this node is behind it; are a majority of the nodes up?")
		err = nil
	}
	if err != nil {
		if b.ctx.Err() == nil {
			b.logger.Error("entering the cluster", "err", err)
		}
		return
	}
	b.logger.Info("in the cluster: serving clients", "node", b.cfg.NodeID, "controller", b.controller.LeaderID())
	close(b.ready)
}

// awaitBootstrap is the start of a node of a new cluster (BootstrapExpect
// > 1, no state yet). It asks every join seed who it is (NodeInfo) until
// either some node is in a cluster already (this node then joins it, as
// any other would) or every seed has answered, at least BootstrapExpect
// nodes are known and none is in a cluster. Then the node with the lowest
// id, and only it, bootstraps the metadata group with all of them as
// voters; the others get the configuration from the leader it elects.
// Because only one node bootstraps, and only once it has heard from every
// seed, two clusters cannot form as long as every node's seeds name the
// same founding nodes (a node may list itself).
func (b *Broker) awaitBootstrap(ctx context.Context, self cluster.Node) error {
	seeds := b.cfg.Join
	for attempt := 0; ; attempt++ {
		if b.controller.HasState() {
			return nil // the bootstrapping node took this one in
		}
		found, answered, inCluster, conflict := b.discover(ctx, self)
		switch {
		case inCluster:
			return nil
		case conflict != "":
			if attempt%50 == 0 {
				b.logger.Error("cannot bootstrap the cluster", "err", conflict)
			}
		case answered == len(seeds) && len(found) >= b.cfg.BootstrapExpect:
			lowest := slices.MinFunc(found, func(x, y cluster.Node) int { return int(x.ID) - int(y.ID) })
			if lowest.ID != self.ID {
				break // node lowest bootstraps; wait to be taken in
			}
			err := b.controller.Bootstrap(found)
			if err == nil || b.controller.HasState() {
				b.logger.Info("bootstrapped a new cluster", "nodes", len(found))
				return nil
			}
			b.logger.Warn("bootstrapping the cluster", "err", err)
		default:
			if attempt%50 == 49 { // about every 10 s
				b.logger.Warn("waiting for the nodes of a new cluster", "expect", b.cfg.BootstrapExpect,
					"found", len(found), "seeds answering", answered, "seeds", len(seeds))
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// discover asks every seed for NodeInfo. found holds this node and every
// distinct node that answered; conflict describes two nodes claiming one id.
func (b *Broker) discover(ctx context.Context, self cluster.Node) (found []cluster.Node, answered int, inCluster bool, conflict string) {
	found = []cluster.Node{self}
	for _, seed := range b.cfg.Join {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := b.peers.call(cctx, seed, &protocol.NodeInfoRequest{})
		cancel()
		if err != nil {
			continue
		}
		r := resp.(*protocol.NodeInfoResponse)
		answered++
		inCluster = inCluster || r.InCluster
		n := cluster.Node{ID: r.NodeID, ClientAddr: r.ClientAddress, PeerAddr: r.PeerAddress}
		i := slices.IndexFunc(found, func(f cluster.Node) bool { return f.ID == n.ID })
		switch {
		case i < 0:
			found = append(found, n)
		case found[i].PeerAddr != n.PeerAddr:
			conflict = fmt.Sprintf("node id %d at two peer addresses, %s and %s (seed %s)", n.ID, found[i].PeerAddr, n.PeerAddr, seed)
		}
	}
	return found, answered, inCluster, conflict
}

func (b *Broker) handleNodeInfo() *protocol.NodeInfoResponse {
	addr, _ := b.clientAddr.Load().(string)
	return &protocol.NodeInfoResponse{NodeID: b.cfg.NodeID, ClientAddress: addr,
		PeerAddress: b.mux.Addr().String(), InCluster: b.controller.HasState()}
}
