package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"weir/client"
)

func (m *Main) newTopicReassignCmd() *cobra.Command {
	var f clientFlags
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "reassign TOPIC PARTITION=NODE,NODE,... [PARTITION=...]",
		Short: "Move partitions' replicas to other nodes (the first node listed is the preferred leader)",
		Long: `Move partitions' replicas to other nodes, e.g.

  weir topic reassign orders 0=2,3,4 1=3,4,2

The new replicas copy the partition's data and become voters once caught
up; only then are the replicas not listed dropped. With --wait, the
command returns when every move is done (topic describe then lists the
new replicas), else as soon as the moves have begun.`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			targets, err := parseReassignments(args[1:])
			if err != nil {
				return err
			}
			return withAdmin(&f, func(a *client.Admin) error {
				if err := a.ReassignPartitions(cmd.Context(), args[0], targets); err != nil {
					return err
				}
				if wait <= 0 {
					fmt.Fprintf(m.Stderr, "moving %d partition(s) of %s\n", len(targets), args[0])
					return nil
				}
				start := time.Now()
				err := waitFor(cmd.Context(), wait, func(ctx context.Context) (bool, error) {
					d, err := a.DescribeTopic(ctx, args[0])
					if err != nil {
						return false, err
					}
					for _, p := range d.Partitions {
						if t, ok := targets[p.Partition]; ok && !slices.Equal(p.Replicas, t) {
							return false, nil
						}
					}
					return true, nil
				})
				if err != nil {
					return fmt.Errorf("reassignment of %s not done: %w", args[0], err)
				}
				fmt.Fprintf(m.Stderr, "moved %d partition(s) of %s in %v\n", len(targets), args[0], time.Since(start).Round(time.Millisecond))
				return nil
			})
		},
	}
	f.register(cmd)
	cmd.Flags().DurationVar(&wait, "wait", 0, "wait this long for the moves to finish (0: do not wait)")
	return cmd
}

// parseReassignments reads PARTITION=NODE,NODE,... arguments.
func parseReassignments(args []string) (map[int32][]int32, error) {
	out := map[int32][]int32{}
	for _, arg := range args {
		ptext, ntext, ok := strings.Cut(arg, "=")
		p, err := strconv.ParseInt(ptext, 10, 32)
		if !ok || err != nil || p < 0 {
			return nil, fmt.Errorf("%q: want PARTITION=NODE,NODE,... (e.g. 0=1,2,3)", arg)
		}
		if _, dup := out[int32(p)]; dup {
			return nil, fmt.Errorf("partition %d given twice", p)
		}
		var nodes []int32
		for _, n := range strings.Split(ntext, ",") {
			id, err := strconv.ParseInt(strings.TrimSpace(n), 10, 32)
			if err != nil || id <= 0 {
				return nil, fmt.Errorf("%q: %q is not a node id", arg, n)
			}
			nodes = append(nodes, int32(id))
		}
		out[int32(p)] = nodes
	}
	return out, nil
}

func (m *Main) newClusterRemoveCmd() *cobra.Command {
	var f clientFlags
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "remove NODE",
		Short: "Decommission a node: move its replicas to the other nodes, then take it out of the cluster",
		Long: `Decommission a node: every replica it holds moves to another node (the one
holding the fewest replicas), each new replica catching up before the old
one is dropped; then the node leaves the metadata group and the broker
list, and can be stopped. With --wait, the command returns when the node is
gone.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 32)
			if err != nil || id <= 0 {
				return fmt.Errorf("%q is not a node id", args[0])
			}
			return withAdmin(&f, func(a *client.Admin) error {
				if err := a.RemoveNode(cmd.Context(), int32(id)); err != nil {
					return err
				}
				if wait <= 0 {
					fmt.Fprintf(m.Stderr, "removing node %d\n", id)
					return nil
				}
				start := time.Now()
				err := waitFor(cmd.Context(), wait, func(ctx context.Context) (bool, error) {
					nodes, err := a.DescribeCluster(ctx, time.Second)
					if err != nil {
						return false, err
					}
					return !slices.ContainsFunc(nodes, func(n client.NodeStatus) bool { return n.ID == int32(id) }), nil
				})
				if err != nil {
					return fmt.Errorf("node %d not removed yet: %w", id, err)
				}
				fmt.Fprintf(m.Stderr, "removed node %d in %v; it can be stopped\n", id, time.Since(start).Round(time.Millisecond))
				return nil
			})
		},
	}
	f.register(cmd)
	cmd.Flags().DurationVar(&wait, "wait", 0, "wait this long for the removal to finish (0: do not wait)")
	return cmd
}

// waitFor polls done every 200 ms until it reports true, fails, or
// timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, done func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		ok, err := done(ctx)
		if ok {
			return nil
		}
		if ctx.Err() != nil {
			if err != nil {
				return err
			}
			return ctx.Err()
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}
