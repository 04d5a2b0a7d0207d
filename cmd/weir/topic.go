package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"weir/client"
)

func (m *Main) newTopicCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "topic", Short: "Create, list, describe, alter and delete topics"}
	cmd.AddCommand(m.newTopicCreateCmd(), m.newTopicListCmd(), m.newTopicDescribeCmd(), m.newTopicAlterCmd(), m.newTopicDeleteCmd(), m.newTopicReassignCmd())
	return cmd
}

// withAdmin runs fn with an Admin built from the flags.
func withAdmin(f *clientFlags, fn func(*client.Admin) error) error {
	a, err := client.NewAdmin(f.opts()...)
	if err != nil {
		return err
	}
	defer a.Close()
	return fn(a)
}

// parseSettings turns key=value arguments into a map.
func parseSettings(kvs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("setting %q: want key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}

func (m *Main) newTopicCreateCmd() *cobra.Command {
	var f clientFlags
	var partitions int32
	var replicas int16
	var settings []string
	cmd := &cobra.Command{
		Use:   "create TOPIC",
		Short: "Create a topic",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			configs, err := parseSettings(settings)
			if err != nil {
				return err
			}
			return withAdmin(&f, func(a *client.Admin) error {
				if err := a.CreateTopic(cmd.Context(), args[0], partitions, replicas, configs); err != nil {
					return err
				}
				fmt.Fprintf(m.Stdout, "created topic %s (%d partitions)\n", args[0], partitions)
				return nil
			})
		},
	}
	f.register(cmd)
	cmd.Flags().Int32VarP(&partitions, "partitions", "p", 1, "number of partitions")
	cmd.Flags().Int16VarP(&replicas, "replicas", "r", 1, "replicas of each partition")
	cmd.Flags().StringArrayVarP(&settings, "config", "c", nil, "a topic setting as `key=value` (repeatable): retention.ms, retention.bytes, segment.bytes, segment.ms, max.bytes, discard, fsync, compression")
	return cmd
}

func (m *Main) newTopicListCmd() *cobra.Command {
	var f clientFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List topics",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withAdmin(&f, func(a *client.Admin) error {
				names, err := a.ListTopics(cmd.Context())
				if err != nil {
					return err
				}
				if asJSON {
					if names == nil {
						names = []string{}
					}
					return json.NewEncoder(m.Stdout).Encode(names)
				}
				for _, n := range names {
					fmt.Fprintln(m.Stdout, n)
				}
				return nil
			})
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (m *Main) newTopicDescribeCmd() *cobra.Command {
	var f clientFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "describe TOPIC",
		Short: "Show a topic's partitions (leader, offsets) and settings",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAdmin(&f, func(a *client.Admin) error {
				d, err := a.DescribeTopic(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if asJSON {
					e := json.NewEncoder(m.Stdout)
					e.SetIndent("", "  ")
					return e.Encode(d)
				}
				w := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintf(w, "PARTITION\tLEADER\tREPLICAS\tLOG START\tHIGH WATERMARK\n")
				for _, p := range d.Partitions {
					fmt.Fprintf(w, "%d\t%d\t%v\t%d\t%d\n", p.Partition, p.LeaderID, p.Replicas, p.LogStartOffset, p.HighWatermark)
				}
				fmt.Fprintf(w, "\nSETTING\tVALUE\t\n")
				for _, c := range d.Configs {
					def := ""
					if c.IsDefault {
						def = "(default)"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\n", c.Key, c.Value, def)
				}
				return w.Flush()
			})
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (m *Main) newTopicAlterCmd() *cobra.Command {
	var f clientFlags
	var settings, reset []string
	cmd := &cobra.Command{
		Use:   "alter TOPIC",
		Short: "Change a topic's settings",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			values, err := parseSettings(settings)
			if err != nil {
				return err
			}
			changes := map[string]*string{}
			for k, v := range values {
				changes[k] = &v
			}
			for _, k := range reset {
				changes[k] = nil
			}
			if len(changes) == 0 {
				return fmt.Errorf("nothing to change: use --config key=value or --reset key")
			}
			return withAdmin(&f, func(a *client.Admin) error {
				return a.AlterTopicConfig(cmd.Context(), args[0], changes)
			})
		},
	}
	f.register(cmd)
	cmd.Flags().StringArrayVarP(&settings, "config", "c", nil, "set `key=value` (repeatable)")
	cmd.Flags().StringArrayVar(&reset, "reset", nil, "reset `key` to its default (repeatable)")
	return cmd
}

func (m *Main) newTopicDeleteCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "delete TOPIC",
		Short: "Delete a topic and its data",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAdmin(&f, func(a *client.Admin) error { return a.DeleteTopic(cmd.Context(), args[0]) })
		},
	}
	f.register(cmd)
	return cmd
}
