package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"weir/client"
	"weir/protocol/record"
)

func (m *Main) newProduceCmd() *cobra.Command {
	var f clientFlags
	var keySep, compression, acks string
	var partition int32
	cmd := &cobra.Command{
		Use:   "produce TOPIC",
		Short: "Produce each line of standard input as a record",
		Long: "produce reads standard input and sends each line as a record's value\n" +
			"(with --key-separator, the part before the first separator is the key).\n" +
			"It waits until every record is acknowledged and fails if any is not.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			codec, err := record.ParseCodec(compression)
			if err != nil {
				return err
			}
			opts := append(f.opts(), client.Compression(codec))
			switch acks {
			case "all":
			case "none":
				opts = append(opts, client.Acks(client.AcksNone), client.Idempotent(false))
			default:
				return fmt.Errorf("--acks %q: want all or none", acks)
			}
			if partition >= 0 {
				opts = append(opts, client.WithPartitioner(client.ExplicitPartitioner()))
			}
			p, err := client.NewProducer(opts...)
			if err != nil {
				return err
			}
			n, err := m.produceLines(cmd.Context(), p, args[0], partition, keySep, cmd.InOrStdin())
			if cerr := p.Close(); err == nil {
				err = cerr
			}
			fmt.Fprintf(m.Stderr, "produced %d records to %s\n", n, args[0])
			return err
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&keySep, "key-separator", "", "split each line into key and value at the first `SEP`")
	cmd.Flags().Int32Var(&partition, "partition", -1, "produce to this partition (default: by key hash)")
	cmd.Flags().StringVar(&compression, "compression", "none", "none, zstd, lz4 or snappy")
	cmd.Flags().StringVar(&acks, "acks", "all", "all (wait for replication) or none")
	return cmd
}

// produceLines sends every line of in and waits for the acknowledgements.
// It returns how many were acknowledged and the first failure.
func (m *Main) produceLines(ctx context.Context, p *client.Producer, topic string, partition int32, keySep string, in interface{ Read([]byte) (int, error) }) (int64, error) {
	var acked atomic.Int64
	var firstErr error
	var mu sync.Mutex
	done := func(_ *client.Record, err error) {
		if err != nil {
			mu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
			return
		}
		acked.Add(1)
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := bytes.Clone(sc.Bytes())
		r := &client.Record{Topic: topic, Partition: max(partition, 0), Value: line, Timestamp: time.Now()}
		if keySep != "" {
			if k, v, ok := bytes.Cut(line, []byte(keySep)); ok {
				r.Key, r.Value = k, v
			}
		}
		p.Produce(ctx, r, done)
	}
	if err := sc.Err(); err != nil {
		return acked.Load(), err
	}
	err := p.Flush(ctx)
	mu.Lock()
	defer mu.Unlock()
	if firstErr != nil {
		err = firstErr
	}
	return acked.Load(), err
}
