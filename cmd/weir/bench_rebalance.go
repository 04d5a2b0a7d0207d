package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"weir/client"
)

// rebalanceOptions are the flags of weir bench rebalance.
type rebalanceOptions struct {
	topic      string
	partitions int32
	members    int
	session    time.Duration
	json       bool
}

func (m *Main) newBenchRebalanceCmd() *cobra.Command {
	var f clientFlags
	var o rebalanceOptions
	cmd := &cobra.Command{
		Use:   "rebalance",
		Short: "Time a consumer group's rebalances: a member joins, a member is killed",
		Long: "bench rebalance starts --members `weir consume --group` processes on --topic\n" +
			"(created with --partitions if missing), waits until the group owns every\n" +
			"partition, then times how long the group takes to own every partition again\n" +
			"(state Stable) after one more member starts, and after one member is killed\n" +
			"with SIGKILL (which includes the --session-timeout the coordinator waits\n" +
			"before it gives up on the dead member).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return m.benchRebalance(cmd.Context(), &f, &o)
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&o.topic, "topic", "weir-bench-rebalance", "topic to use")
	cmd.Flags().Int32Var(&o.partitions, "partitions", 100, "partitions of the topic, if it is created")
	cmd.Flags().IntVar(&o.members, "members", 10, "members before one joins")
	cmd.Flags().DurationVar(&o.session, "session-timeout", 3*time.Second, "the members' session timeout")
	cmd.Flags().BoolVar(&o.json, "json", false, "print the summary as one JSON object")
	return cmd
}

// rebalanceResult is what bench rebalance prints.
type rebalanceResult struct {
	Members          int     `json:"members"`
	Partitions       int     `json:"partitions"`
	InitialMs        float64 `json:"initial_ms"`         // from starting the members to all partitions owned
	JoinMs           float64 `json:"join_ms"`            // from starting one more member to stable
	KillMs           float64 `json:"kill_ms"`            // from SIGKILL of a member to stable
	SessionTimeoutMs float64 `json:"session_timeout_ms"` // part of kill_ms
}

func (m *Main) benchRebalance(ctx context.Context, f *clientFlags, o *rebalanceOptions) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	admin, err := client.NewAdmin(f.opts()...)
	if err != nil {
		return err
	}
	defer admin.Close()
	if err := ensureTopic(ctx, admin, o.topic, o.partitions); err != nil {
		return err
	}
	d, err := admin.DescribeTopic(ctx, o.topic)
	if err != nil {
		return err
	}
	partitions := len(d.Partitions)
	group := fmt.Sprintf("weir-bench-rebalance-%d", time.Now().UnixNano())
	var members []*exec.Cmd
	defer func() {
		for _, c := range members {
			c.Process.Signal(syscall.SIGTERM)
		}
		for _, c := range members {
			c.Wait()
		}
	}()
	start := func() error {
		c := exec.CommandContext(ctx, self, "consume", o.topic, "--brokers", f.brokers, "--group", group,
			"--from", "latest", "--session-timeout", o.session.String(), "--format", "%o")
		c.Stdout, c.Stderr = nil, m.Stderr // stdout to the null device
		if err := c.Start(); err != nil {
			return err
		}
		members = append(members, c)
		return nil
	}
	// settled waits until n members own all the partitions, and nothing is
	// moving.
	settled := func(n int) (time.Duration, error) {
		begin := time.Now()
		deadline := begin.Add(2*o.session + time.Minute)
		for {
			g, err := admin.DescribeGroup(ctx, group)
			if err == nil && g.State == "Stable" && len(g.Members) == n && owned(g) == partitions {
				return time.Since(begin), nil
			}
			if time.Now().After(deadline) {
				return 0, fmt.Errorf("group %s did not settle with %d members in %v (last: %v)", group, n, deadline.Sub(begin), err)
			}
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	r := rebalanceResult{Members: o.members, Partitions: partitions, SessionTimeoutMs: ms(o.session)}
	began := time.Now()
	for range o.members {
		if err := start(); err != nil {
			return err
		}
	}
	if _, err := settled(o.members); err != nil {
		return err
	}
	r.InitialMs = ms(time.Since(began))
	if err := start(); err != nil {
		return err
	}
	d1, err := settled(o.members + 1)
	if err != nil {
		return err
	}
	r.JoinMs = ms(d1)
	victim := members[0]
	if err := victim.Process.Kill(); err != nil {
		return err
	}
	d2, err := settled(o.members)
	if err != nil {
		return err
	}
	victim.Wait()
	members = members[1:]
	r.KillMs = ms(d2)
	if o.json {
		return json.NewEncoder(m.Stdout).Encode(r)
	}
	fmt.Fprintf(m.Stdout, "group of %d members on %d partitions: all owned %.0f ms after start; "+
		"one more member: stable in %.0f ms; one member killed: stable in %.0f ms (session timeout %.0f ms)\n",
		r.Members, r.Partitions, r.InitialMs, r.JoinMs, r.KillMs, r.SessionTimeoutMs)
	return nil
}

// owned counts the partitions the group's members own.
func owned(g *client.GroupDescription) int {
	n := 0
	for _, m := range g.Members {
		n += len(m.Assignment)
	}
	return n
}
