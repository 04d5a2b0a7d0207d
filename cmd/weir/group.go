package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"weir/client"
	"weir/protocol"
)

func (m *Main) newGroupCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "group", Short: "List, describe, reset and delete consumer groups"}
	cmd.AddCommand(m.newGroupListCmd(), m.newGroupDescribeCmd(), m.newGroupResetCmd(), m.newGroupDeleteCmd())
	return cmd
}

// groupError explains the errors a tool gets for a group with members or
// without existence.
func groupError(group string, err error) error {
	switch {
	case errors.Is(err, protocol.ErrNonEmptyGroup):
		return fmt.Errorf("group %s has active members: stop its consumers first (this needs an empty group): %w", group, err)
	case errors.Is(err, protocol.ErrGroupIDNotFound):
		return fmt.Errorf("no group %s: %w", group, err)
	}
	return err
}

func (m *Main) newGroupListCmd() *cobra.Command {
	var f clientFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List consumer groups",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withAdmin(&f, func(a *client.Admin) error {
				groups, err := a.ListGroups(cmd.Context())
				if err != nil {
					return err
				}
				if asJSON {
					if groups == nil {
						groups = []client.GroupListing{}
					}
					return json.NewEncoder(m.Stdout).Encode(groups)
				}
				w := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintf(w, "GROUP\tSTATE\tMEMBERS\n")
				for _, g := range groups {
					fmt.Fprintf(w, "%s\t%s\t%d\n", g.ID, g.State, g.Members)
				}
				return w.Flush()
			})
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (m *Main) newGroupDescribeCmd() *cobra.Command {
	var f clientFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "describe GROUP",
		Short: "Show a group's members and partitions: committed offsets, lag, owners",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAdmin(&f, func(a *client.Admin) error {
				d, err := a.DescribeGroup(cmd.Context(), args[0])
				if err != nil {
					return groupError(args[0], err)
				}
				if asJSON {
					e := json.NewEncoder(m.Stdout)
					e.SetIndent("", "  ")
					return e.Encode(d)
				}
				return printGroup(m, d)
			})
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printGroup prints a group description as three tables: the group, its
// members, its partitions.
func printGroup(m *Main, d *client.GroupDescription) error {
	w := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "GROUP\tSTATE\tASSIGNOR\tEPOCH\tMEMBERS\n")
	fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\n", d.ID, d.State, dash(d.Assignor), d.Epoch, len(d.Members))
	if len(d.Members) > 0 {
		fmt.Fprintf(w, "\nMEMBER\tINSTANCE\tCLIENT\tHOST\tEPOCH\tPARTITIONS\n")
		for _, mb := range d.Members {
			parts := make([]string, len(mb.Assignment))
			for i, tp := range mb.Assignment {
				parts[i] = tp.String()
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\n", mb.ID, dash(mb.InstanceID), dash(mb.ClientID), dash(mb.ClientHost),
				mb.Epoch, dash(strings.Join(parts, " ")))
		}
	}
	if len(d.Offsets) > 0 {
		fmt.Fprintf(w, "\nTOPIC\tPARTITION\tCOMMITTED\tHIGH WATERMARK\tLAG\tOWNER\n")
		for _, o := range d.Offsets {
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", o.Topic, o.Partition, known(o.Committed), known(o.HighWatermark),
				known(o.Lag), dash(o.MemberID))
		}
	}
	return w.Flush()
}

// dash is s, or "-" for nothing.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// known is n, or "-" for -1 (none, unknown).
func known(n int64) string {
	if n < 0 {
		return "-"
	}
	return strconv.FormatInt(n, 10)
}

func (m *Main) newGroupResetCmd() *cobra.Command {
	var f clientFlags
	var topic, to string
	cmd := &cobra.Command{
		Use:   "reset GROUP --topic TOPIC --to earliest|latest|OFFSET|RFC3339",
		Short: "Set a group's committed offsets for every partition of a topic (the group must have no members)",
		Long: "reset sets the committed offset of every partition of --topic in the group:\n" +
			"to the oldest record (earliest), the end of the log (latest), an offset\n" +
			"(brought within each partition's log start and high watermark), or the\n" +
			"first record at or after an RFC 3339 time. The group's consumers must be\n" +
			"stopped first: a group with members owns its offsets.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			group := args[0]
			return withAdmin(&f, func(a *client.Admin) error {
				offsets, err := resetGroup(cmd.Context(), a, group, topic, to)
				if err != nil {
					return groupError(group, err)
				}
				w := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintf(w, "TOPIC\tPARTITION\tNEW OFFSET\n")
				for _, p := range slices.Sorted(maps.Keys(offsets)) {
					fmt.Fprintf(w, "%s\t%d\t%d\n", topic, p, offsets[p])
				}
				return w.Flush()
			})
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&topic, "topic", "", "the `TOPIC` whose partitions to reset (required)")
	cmd.Flags().StringVar(&to, "to", "", "the new offsets: earliest, latest, OFFSET or an RFC 3339 time (required)")
	cmd.MarkFlagRequired("topic")
	cmd.MarkFlagRequired("to")
	return cmd
}

// resetGroup sets the group's offsets of every partition of topic as --to
// says, and returns them by partition.
func resetGroup(ctx context.Context, a *client.Admin, group, topic, to string) (map[int32]int64, error) {
	var spec client.OffsetSpec
	switch to {
	case "earliest":
		spec = client.Earliest
	case "latest":
		spec = client.Latest
	default:
		if off, err := strconv.ParseInt(to, 10, 64); err == nil {
			if off < 0 {
				return nil, fmt.Errorf("--to %d: an offset must not be negative", off)
			}
			return resetGroupTo(ctx, a, group, topic, off)
		}
		t, err := time.Parse(time.RFC3339Nano, to)
		if err != nil {
			return nil, fmt.Errorf("--to %q: want earliest, latest, an offset or an RFC 3339 time", to)
		}
		spec = client.Timestamp(t)
	}
	return a.ResetGroupOffsets(ctx, group, topic, spec)
}

// resetGroupTo commits offset for every partition of topic, brought within
// the partition's log.
func resetGroupTo(ctx context.Context, a *client.Admin, group, topic string, offset int64) (map[int32]int64, error) {
	d, err := a.DescribeTopic(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	offsets := map[client.TopicPartition]int64{}
	for _, p := range d.Partitions {
		// From the partition's leader: a broker that does not host the
		// partition does not know its offsets.
		start, err := a.ListOffsets(ctx, topic, p.Partition, client.Earliest)
		if err != nil {
			return nil, err
		}
		end, err := a.ListOffsets(ctx, topic, p.Partition, client.Latest)
		if err != nil {
			return nil, err
		}
		off := min(max(offset, start), end)
		out[p.Partition] = off
		offsets[client.TopicPartition{Topic: topic, Partition: p.Partition}] = off
	}
	if err := a.CommitGroupOffsets(ctx, group, offsets); err != nil {
		return nil, err
	}
	return out, nil
}

func (m *Main) newGroupDeleteCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "delete GROUP",
		Short: "Delete a group and its committed offsets (the group must have no members)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAdmin(&f, func(a *client.Admin) error {
				if err := a.DeleteGroup(cmd.Context(), args[0]); err != nil {
					return groupError(args[0], err)
				}
				fmt.Fprintf(m.Stdout, "deleted group %s\n", args[0])
				return nil
			})
		},
	}
	f.register(cmd)
	return cmd
}
