package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"weir/client"
	"weir/protocol"
	"weir/protocol/record"
)

// benchOptions are the flags of weir bench produce and consume.
type benchOptions struct {
	topic       string
	messages    int64
	size        int
	producers   int
	partitions  int32
	acks        string
	batchBytes  int
	linger      time.Duration
	compression string
	rate        int64
	group       string
	json        bool
	cpuProfile  string
}

func (m *Main) newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure a running broker: produce, then consume, as fast as it goes",
		Long: "bench produce sends --messages records of --size bytes to --topic (created\n" +
			"if missing) and reports records/s, MB/s and the latency from send to\n" +
			"acknowledgement; bench consume reads --messages records of the topic from\n" +
			"offset 0 and reports records/s and MB/s, handing each poll's records back\n" +
			"(Consumer.Release) as an application that copies what it keeps would.",
	}
	cmd.AddCommand(m.newBenchProduceCmd(), m.newBenchConsumeCmd(), m.newBenchRebalanceCmd())
	return cmd
}

func (o *benchOptions) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.topic, "topic", "weir-bench", "topic to use")
	cmd.Flags().Int64Var(&o.messages, "messages", 1_000_000, "records to produce or consume")
	cmd.Flags().IntVar(&o.size, "size", 100, "value size in bytes")
	cmd.Flags().BoolVar(&o.json, "json", false, "print the summary as one JSON object")
	cmd.Flags().StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the bench client to `FILE` (go tool pprof)")
}

// profiled runs run, with a CPU profile written to --cpuprofile if set.
func (o *benchOptions) profiled(run func() error) error {
	if o.cpuProfile == "" {
		return run()
	}
	f, err := os.Create(o.cpuProfile)
	if err != nil {
		return err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return err
	}
	err = run()
	pprof.StopCPUProfile()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (m *Main) newBenchProduceCmd() *cobra.Command {
	var f clientFlags
	var o benchOptions
	cmd := &cobra.Command{
		Use:   "produce",
		Short: "Produce records as fast as possible (or at --rate) and report throughput and latency",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.profiled(func() error { return m.benchProduce(cmd.Context(), &f, &o) })
		},
	}
	f.register(cmd)
	o.register(cmd)
	cmd.Flags().IntVar(&o.producers, "producers", 1, "concurrent producers")
	cmd.Flags().Int32Var(&o.partitions, "partitions", 6, "partitions of the topic, if bench creates it")
	cmd.Flags().StringVar(&o.acks, "acks", "all", "all or none")
	cmd.Flags().IntVar(&o.batchBytes, "batch-bytes", 1<<20, "producer batch size in bytes")
	cmd.Flags().DurationVar(&o.linger, "linger", 5*time.Millisecond, "how long a batch waits to fill")
	cmd.Flags().StringVar(&o.compression, "compression", "none", "none, zstd, lz4 or snappy")
	cmd.Flags().Int64Var(&o.rate, "rate", 0, "records/s to send at, in total (0: as fast as possible)")
	return cmd
}

func (m *Main) newBenchConsumeCmd() *cobra.Command {
	var f clientFlags
	var o benchOptions
	cmd := &cobra.Command{
		Use:   "consume",
		Short: "Read records of a topic from offset 0 and report throughput",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.profiled(func() error { return m.benchConsume(cmd.Context(), &f, &o) })
		},
	}
	f.register(cmd)
	o.register(cmd)
	cmd.Flags().StringVar(&o.group, "group", "", "consume as a member of consumer group `G` (from its committed offsets; 0 for a new group)")
	return cmd
}

// benchResult is what a bench run prints; the JSON keys are fixed (scripts
// read them).
type benchResult struct {
	Records       int64   `json:"records"`
	Errors        int64   `json:"errors"`
	RecordsPerSec float64 `json:"records_per_sec"`
	MBPerSec      float64 `json:"mb_per_sec"`
	P50Ms         float64 `json:"p50_ms"`
	P99Ms         float64 `json:"p99_ms"`
	P999Ms        float64 `json:"p999_ms"`
	MaxMs         float64 `json:"max_ms"`
	// FirstMs is, for consume, how long the first record took to come.
	FirstMs float64 `json:"first_ms,omitempty"`
}

func (m *Main) printBench(what string, o *benchOptions, r benchResult, elapsed time.Duration) error {
	if o.json {
		return json.NewEncoder(m.Stdout).Encode(r)
	}
	fmt.Fprintf(m.Stdout, "%s: %d records of %d B in %v: %.0f records/s, %.1f MB/s, %d errors\n",
		what, r.Records, o.size, elapsed.Round(time.Millisecond), r.RecordsPerSec, r.MBPerSec, r.Errors)
	if r.MaxMs > 0 {
		fmt.Fprintf(m.Stdout, "latency: p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms\n", r.P50Ms, r.P99Ms, r.P999Ms, r.MaxMs)
	}
	return nil
}

// progress prints a live line on a terminal until stop is closed.
func (m *Main) progress(what string, done *atomic.Int64, stop <-chan struct{}) {
	f, ok := m.Stderr.(*os.File)
	if !ok {
		return
	}
	if fi, err := f.Stat(); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return
	}
	start := time.Now()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			fmt.Fprint(f, "\r\033[K")
			return
		case <-t.C:
			n := done.Load()
			fmt.Fprintf(f, "\r\033[K%s: %d records, %.0f records/s", what, n, float64(n)/time.Since(start).Seconds())
		}
	}
}

func (m *Main) benchProduce(ctx context.Context, f *clientFlags, o *benchOptions) error {
	codec, err := record.ParseCodec(o.compression)
	if err != nil {
		return err
	}
	opts := append(f.opts(), client.Compression(codec), client.BatchBytes(o.batchBytes), client.Linger(o.linger))
	switch o.acks {
	case "all":
	case "none":
		opts = append(opts, client.Acks(client.AcksNone), client.Idempotent(false))
	default:
		return fmt.Errorf("--acks %q: want all or none", o.acks)
	}
	err = withAdmin(f, func(a *client.Admin) error { return ensureTopic(ctx, a, o.topic, o.partitions) })
	if err != nil {
		return err
	}
	var (
		mu       sync.Mutex
		hist     histogram
		errCount atomic.Int64
		firstErr error
		acked    atomic.Int64
		wg       sync.WaitGroup
	)
	value := make([]byte, o.size)
	stop := make(chan struct{})
	go m.progress("produce", &acked, stop)
	start := time.Now()
	per := o.messages / int64(max(o.producers, 1))
	for i := range max(o.producers, 1) {
		n := per
		if i == 0 {
			n += o.messages - per*int64(max(o.producers, 1))
		}
		p, err := client.NewProducer(opts...)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer p.Close()
			var interval time.Duration
			if o.rate > 0 {
				interval = time.Duration(float64(time.Second) * float64(max(o.producers, 1)) / float64(o.rate))
			}
			next := time.Now()
			for j := int64(0); j < n && ctx.Err() == nil; j++ {
				if interval > 0 {
					next = next.Add(interval)
					if d := time.Until(next); d > 0 {
						time.Sleep(d) // pacing the sender, not waiting on a condition
					}
				}
				sent := time.Now()
				p.Produce(ctx, &client.Record{Topic: o.topic, Value: value, Timestamp: sent}, func(_ *client.Record, err error) {
					if err != nil {
						errCount.Add(1)
						mu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
						return
					}
					acked.Add(1)
					mu.Lock()
					hist.record(time.Since(sent))
					mu.Unlock()
				})
			}
			p.Flush(ctx)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stop)
	r := benchResult{Records: acked.Load(), Errors: errCount.Load(),
		RecordsPerSec: float64(acked.Load()) / elapsed.Seconds(),
		MBPerSec:      float64(acked.Load()*int64(o.size)) / 1e6 / elapsed.Seconds(),
		P50Ms:         ms(hist.quantile(0.5)), P99Ms: ms(hist.quantile(0.99)), P999Ms: ms(hist.quantile(0.999)), MaxMs: ms(hist.max)}
	if err := m.printBench("produce", o, r, elapsed); err != nil {
		return err
	}
	if firstErr != nil {
		return fmt.Errorf("%d records failed; the first: %w", r.Errors, firstErr)
	}
	return nil
}

// ensureTopic creates topic with the given partitions unless it exists.
func ensureTopic(ctx context.Context, a *client.Admin, topic string, partitions int32) error {
	err := a.CreateTopic(ctx, topic, partitions, 1, nil)
	if errors.Is(err, protocol.ErrTopicAlreadyExists) {
		return nil
	}
	return err
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (m *Main) benchConsume(ctx context.Context, f *clientFlags, o *benchOptions) error {
	var parts []int32
	err := withAdmin(f, func(a *client.Admin) error {
		d, err := a.DescribeTopic(ctx, o.topic)
		if err != nil {
			return err
		}
		var stored int64
		for _, p := range d.Partitions {
			parts = append(parts, p.Partition)
			stored += p.HighWatermark - p.LogStartOffset
		}
		if stored < o.messages {
			return fmt.Errorf("topic %s holds %d records, fewer than --messages %d", o.topic, stored, o.messages)
		}
		return nil
	})
	if err != nil {
		return err
	}
	var c interface {
		Poll(context.Context) ([]*client.Record, error)
		Release([]*client.Record)
		Close() error
	}
	if o.group != "" {
		// A group consumer reading from where the group is (from 0 for a
		// new group), committing as it goes.
		c, err = client.NewGroupConsumer(o.group, append(f.opts(), client.Subscribe(o.topic), client.ResetOffset(client.Earliest))...)
	} else {
		var pc *client.Consumer
		if pc, err = client.NewConsumer(append(f.opts(), client.StartOffset(client.Earliest))...); err == nil {
			pc.Assign(o.topic, parts...)
			c = pc
		}
	}
	if err != nil {
		return err
	}
	defer c.Close()
	var read atomic.Int64
	var bytes int64
	stop := make(chan struct{})
	go m.progress("consume", &read, stop)
	// The rates are from the first record on, so that a group's join (or
	// a consumer's first metadata and offset lookups), reported apart as
	// first_ms, does not count as consumption time.
	start := time.Now()
	var first time.Time
	var firstRecords, firstBytes int64
	for read.Load() < o.messages && ctx.Err() == nil {
		recs, err := c.Poll(ctx)
		if err != nil && !errors.Is(err, io.EOF) {
			close(stop)
			return fmt.Errorf("consume: %w", err)
		}
		for _, r := range recs {
			bytes += int64(len(r.Value))
		}
		read.Add(int64(len(recs)))
		c.Release(recs) // as a fast application would: see Consumer.Release
		if first.IsZero() && len(recs) > 0 {
			first, firstRecords, firstBytes = time.Now(), read.Load(), bytes
		}
	}
	elapsed := time.Since(first)
	close(stop)
	r := benchResult{Records: read.Load(), RecordsPerSec: float64(read.Load()-firstRecords) / elapsed.Seconds(),
		MBPerSec: float64(bytes-firstBytes) / 1e6 / elapsed.Seconds(), FirstMs: ms(first.Sub(start))}
	return m.printBench("consume", o, r, elapsed)
}
