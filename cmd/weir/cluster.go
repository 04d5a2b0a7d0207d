package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"weir/client"
)

func (m *Main) newClusterCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Look at the cluster's nodes, or remove one",
	}
	cmd.AddCommand(m.newClusterStatusCmd(), m.newClusterRemoveCmd())
	return cmd
}

func (m *Main) newClusterStatusCmd() *cobra.Command {
	var f clientFlags
	var asJSON bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "status",
		Short: "List the nodes: id, client address, role, and whether each answers now",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withAdmin(&f, func(a *client.Admin) error {
				nodes, err := a.DescribeCluster(cmd.Context(), timeout)
				if err != nil {
					return err
				}
				if asJSON {
					return json.NewEncoder(m.Stdout).Encode(nodes)
				}
				w := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "NODE\tADDRESS\tROLE\tSTATUS")
				for _, n := range nodes {
					role, status := "broker", "up ("+n.Latency.Round(100*time.Microsecond).String()+")"
					if n.Controller {
						role = "controller"
					}
					if !n.Alive {
						status = "down: " + n.Err
					}
					fmt.Fprintf(w, "%d\t%s\t%s\t%s\n", n.ID, n.Address, role, status)
				}
				return w.Flush()
			})
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Second, "how long to wait for each node's answer")
	return cmd
}
