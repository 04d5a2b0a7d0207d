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
			"--format takes a template with %t (topic), %p (partition), %o (offset),\n" +
			"%k (key), %v (value), %T (timestamp, RFC 3339), %% (a percent sign).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.group != "" {
				return fmt.Errorf("--group: consumer groups are not available in this version yet")
			}
			return m.consume(cmd.Context(), &f, args[0], &o)
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&o.group, "group", "", "consume as a member of consumer group `G` (not available yet)")
	cmd.Flags().StringVar(&o.from, "from", "earliest", "where to start: earliest, latest, OFFSET or an RFC 3339 time")
	cmd.Flags().Int32SliceVar(&o.partitions, "partition", nil, "partitions to read (default all)")
	cmd.Flags().Int64VarP(&o.count, "count", "n", 0, "exit after `COUNT` records (0: no limit)")
	cmd.Flags().DurationVar(&o.idle, "idle-exit", 0, "exit after `DURATION` without a new record (0: follow the log)")
	cmd.Flags().StringVar(&o.format, "format", "%v", "output template: %t %p %o %k %v %T")
	cmd.Flags().BoolVar(&o.json, "json", false, "print each record as a JSON object")
	return cmd
}

type consumeOptions struct {
	group, from, format string
	partitions          []int32
	count               int64
	idle                time.Duration
	json                bool
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
	enc := json.NewEncoder(out)
	var n int64
	for o.count == 0 || n < o.count {
		pollCtx, cancel := ctx, context.CancelFunc(func() {})
		if o.idle > 0 {
			pollCtx, cancel = context.WithTimeout(ctx, o.idle)
		}
		out.Flush() // what was printed shows up while we wait
		recs, err := c.Poll(pollCtx)
		stopped := pollCtx.Err() != nil // interrupted, or idle for --idle-exit
		cancel()
		if stopped {
			return nil
		}
		if err != nil {
			return err
		}
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
