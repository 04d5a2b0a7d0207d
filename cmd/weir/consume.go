package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"weir/client"
)

func (m *Main) newConsumeCmd() *cobra.Command {
	var f clientFlags
	var o consumeOptions
	cmd := &cobra.Command{
		Use:   "consume TOPIC",
		Short: "Print a topic's records, one per line",
		Long: "consume prints the records of the topic (all partitions, or --partition),\n" +
			"from --from: earliest, latest, an offset, or an RFC 3339 time. By default it\n" +
			"prints values and follows the log; it stops after -n records or after\n" +
			"--idle-exit without a new record, or on Ctrl-C.\n\n" +
			"With --group it consumes as a member of a consumer group: it reads the\n" +
			"partitions the group assigns it, from the group's committed offsets (--from\n" +
			"applies only to partitions without one), and commits what it has printed\n" +
			"about every second and when it stops. Ctrl-C or SIGTERM commits and leaves\n" +
			"the group cleanly (but for a static member, --instance-id: its partitions\n" +
			"wait for it until its session times out).\n\n" +
			"--format takes a template with %t (topic), %p (partition), %o (offset),\n" +
			"%k (key), %v (value), %T (timestamp, RFC 3339), %% (a percent sign).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.group != "" {
				if cmd.Flags().Changed("partition") {
					return fmt.Errorf("--partition cannot be used with --group: the group assigns the partitions")
				}
				return m.consumeGroup(cmd.Context(), &f, args[0], &o)
			}
			return m.consume(cmd.Context(), &f, args[0], &o)
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&o.group, "group", "", "consume as a member of consumer group `G`")
	cmd.Flags().StringVar(&o.from, "from", "earliest", "where to start: earliest, latest, OFFSET or an RFC 3339 time (with --group: only\n"+
		"for partitions without a committed offset, and not OFFSET: use weir group reset)")
	cmd.Flags().Int32SliceVar(&o.partitions, "partition", nil, "partitions to read (default all; not with --group)")
	cmd.Flags().Int64VarP(&o.count, "count", "n", 0, "exit after `COUNT` records (0: no limit)")
	cmd.Flags().DurationVar(&o.idle, "idle-exit", 0, "exit after `DURATION` without a new record (0: follow the log)")
	cmd.Flags().StringVar(&o.format, "format", "%v", "output template: %t %p %o %k %v %T")
	cmd.Flags().BoolVar(&o.json, "json", false, "print each record as a JSON object")
	cmd.Flags().DurationVar(&o.sessionTimeout, "session-timeout", 10*time.Second, "with --group: how long the group waits for a silent member before it moves its partitions")
	cmd.Flags().StringVar(&o.instanceID, "instance-id", "", "with --group: a static member `ID`, so that a restart within the session timeout keeps the partitions")
	cmd.Flags().StringVar(&o.assignor, "assignor", "", "with --group: the group's assignor, uniform or range (default: the group's current one)")
	return cmd
}

type consumeOptions struct {
	group, from, format  string
	partitions           []int32
	count                int64
	idle                 time.Duration
	json                 bool
	sessionTimeout       time.Duration
	instanceID, assignor string
}

func (m *Main) consume(ctx context.Context, f *clientFlags, topic string, o *consumeOptions) error {
	partitions := o.partitions
	if len(partitions) == 0 {
		err := withAdmin(f, func(a *client.Admin) error {
			d, err := a.DescribeTopic(ctx, topic)
			if err != nil {
				return err
			}
			for _, p := range d.Partitions {
				partitions = append(partitions, p.Partition)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	c, err := client.NewConsumer(f.opts()...)
	if err != nil {
		return err
	}
	defer c.Close()
	c.Assign(topic, partitions...)
	for _, p := range partitions {
		if err := seekFrom(ctx, c, topic, p, o.from); err != nil {
			return err
		}
	}
	out := bufio.NewWriter(m.Stdout)
	defer out.Flush()
	return printRecords(ctx, out, o, func(ctx context.Context, _ int) ([]*client.Record, error) { return c.Poll(ctx) })
}

// consumeGroup is consume as a member of the group --group. The records a
// Poll returns are printed and flushed before the next Poll, which is what
// marks them finished for the group consumer's auto-commit (every second)
// and its Close (on exit): so only records printed are committed.
func (m *Main) consumeGroup(ctx context.Context, f *clientFlags, topic string, o *consumeOptions) error {
	spec, err := groupResetSpec(o.from)
	if err != nil {
		return err
	}
	opts := append(f.opts(), client.Subscribe(topic), client.ResetOffset(spec),
		client.SessionTimeout(o.sessionTimeout), client.AutoCommitInterval(time.Second))
	if o.instanceID != "" {
		opts = append(opts, client.InstanceID(o.instanceID))
	}
	if o.assignor != "" {
		opts = append(opts, client.GroupAssignor(o.assignor))
	}
	g, err := client.NewGroupConsumer(o.group, opts...)
	if err != nil {
		return err
	}
	out := bufio.NewWriter(m.Stdout)
	// PollRecords asks for no more than -n still wants: every record
	// polled is printed, so Close commits only what was printed.
	err = printRecords(ctx, out, o, g.PollRecords)
	if ferr := out.Flush(); err == nil {
		err = ferr
	}
	if cerr := g.Close(); err == nil { // commits and leaves the group
		err = cerr
	}
	return err
}

// groupResetSpec turns --from into where a group member starts a partition
// the group has no committed offset for.
func groupResetSpec(from string) (client.OffsetSpec, error) {
	switch from {
	case "earliest":
		return client.Earliest, nil
	case "latest":
		return client.Latest, nil
	}
	if _, err := strconv.ParseInt(from, 10, 64); err == nil {
		return 0, fmt.Errorf("--from %s with --group: a group member starts at the group's committed offsets; "+
			"set them with: weir group reset GROUP --topic TOPIC --to %s", from, from)
	}
	t, err := time.Parse(time.RFC3339Nano, from)
	if err != nil {
		return 0, fmt.Errorf("--from %q: want earliest, latest or an RFC 3339 time", from)
	}
	return client.Timestamp(t), nil
}

// printRecords polls until -n records, --idle-exit without one, or ctx's
// end, and prints each record as --json or --format say. poll gets how
// many records are still wanted (0 for no limit). What was printed is
// flushed before each poll.
func printRecords(ctx context.Context, out *bufio.Writer, o *consumeOptions, poll func(context.Context, int) ([]*client.Record, error)) error {
	enc := json.NewEncoder(out)
	var n int64
	for o.count == 0 || n < o.count {
		pollCtx, cancel := ctx, context.CancelFunc(func() {})
		if o.idle > 0 {
			pollCtx, cancel = context.WithTimeout(ctx, o.idle)
		}
		// What was printed shows up while we wait (and, for a group, is
		// flushed before the poll that lets it be committed).
		if err := out.Flush(); err != nil {
			cancel()
			return err
		}
		recs, err := poll(pollCtx, int(max(o.count-n, 0)))
		stopped := pollCtx.Err() != nil // interrupted, or idle for --idle-exit
		cancel()
		if err != nil && !stopped {
			return err
		}
		// NB: records that came as the poll was stopped are printed all the
		// same: a group consumer counts them as delivered.
		for _, r := range recs {
			if o.json {
				err = enc.Encode(jsonRecord{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset,
					Key: string(r.Key), Value: string(r.Value), Timestamp: r.Timestamp.UTC()})
			} else {
				_, err = out.WriteString(formatRecord(o.format, r) + "\n")
			}
			if err != nil {
				return err
			}
			if n++; o.count > 0 && n >= o.count {
				break
			}
		}
		if stopped {
			return nil
		}
	}
	return nil
}

// jsonRecord is a record as --json prints it.
type jsonRecord struct {
	Topic     string    `json:"topic"`
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
	Key       string    `json:"key"`
	Value     string    `json:"value"`
	Timestamp time.Time `json:"timestamp"`
}

// formatRecord fills a --format template.
func formatRecord(format string, r *client.Record) string {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		if format[i] != '%' || i+1 == len(format) {
			b.WriteByte(format[i])
			continue
		}
		i++
		switch format[i] {
		case 't':
			b.WriteString(r.Topic)
		case 'p':
			b.WriteString(strconv.FormatInt(int64(r.Partition), 10))
		case 'o':
			b.WriteString(strconv.FormatInt(r.Offset, 10))
		case 'k':
			b.Write(r.Key)
		case 'v':
			b.Write(r.Value)
		case 'T':
			b.WriteString(r.Timestamp.UTC().Format(time.RFC3339Nano))
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(format[i])
		}
	}
	return b.String()
}

// seekFrom positions a partition as --from says.
func seekFrom(ctx context.Context, c *client.Consumer, topic string, p int32, from string) error {
	switch from {
	case "earliest":
		return c.SeekToEarliest(ctx, topic, p)
	case "latest":
		return c.SeekToLatest(ctx, topic, p)
	}
	if off, err := strconv.ParseInt(from, 10, 64); err == nil {
		c.SeekTo(topic, p, off)
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, from)
	if err != nil {
		return fmt.Errorf("--from %q: want earliest, latest, an offset or an RFC 3339 time", from)
	}
	return c.SeekToTime(ctx, topic, p, t)
}
