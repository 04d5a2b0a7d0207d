package cluster

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// maxVoters is the size of the metadata group's voting membership: five
// voters survive two failures; more would only slow every commit. Further
// nodes follow the metadata as non-voters.
const maxVoters = 5

// AddNode takes a node into the cluster: it records the node's addresses
// and adds it to the metadata Raft group, as a voter while there are fewer
// than five, else as a non-voter. Adding a node that is already in is a
// no-op, so a joining node may retry.
func (c *Controller) AddNode(ctx context.Context, n Node) error {
	if n.ID <= 0 {
		return fmt.Errorf("%w: node id %d", ErrInvalidNode, n.ID)
	}
	for _, addr := range []string{n.ClientAddr, n.PeerAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("%w: address %q: %v", ErrInvalidNode, addr, err)
		}
	}
	if !c.IsLeader() {
		return ErrNotController
	}
	if err := c.fixOwnAddress(ctx); err != nil {
		return err
	}
	if cur, ok := c.Metadata().Nodes[n.ID]; !ok || cur != n {
		if err := c.RegisterNode(ctx, n); err != nil {
			return err
		}
	}
	f := c.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Errorf("weir/cluster: %w", err)
	}
	voters := 0
	for _, s := range f.Configuration().Servers {
		if s.ID == ServerID(n.ID) && s.Address == raft.ServerAddress(n.PeerAddr) {
			return nil
		}
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	timeout := membershipTimeout(ctx)
	var err error
	if voters < maxVoters {
		err = c.raft.AddVoter(ServerID(n.ID), raft.ServerAddress(n.PeerAddr), 0, timeout).Error()
	} else {
		err = c.raft.AddNonvoter(ServerID(n.ID), raft.ServerAddress(n.PeerAddr), 0, timeout).Error()
	}
	if err != nil {
		return fmt.Errorf("weir/cluster: add node %d to the metadata group: %w", n.ID, err)
	}
	return nil
}

// fixOwnAddress updates this node's address in the metadata group's
// configuration when it differs from the transport's: a single node
// bootstrapped before it had a peer listener (or with another one) must be
// reachable at the address it listens on now before others join.
func (c *Controller) fixOwnAddress(ctx context.Context) error {
	f := c.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Errorf("weir/cluster: %w", err)
	}
	self, local := ServerID(c.cfg.NodeID), c.cfg.Transport.LocalAddr()
	for _, s := range f.Configuration().Servers {
		if s.ID == self && s.Address != local {
			if err := c.raft.AddVoter(self, local, 0, membershipTimeout(ctx)).Error(); err != nil {
				return fmt.Errorf("weir/cluster: update own address: %w", err)
			}
		}
	}
	return nil
}

func membershipTimeout(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Millisecond)
	}
	return 10 * time.Second
}
