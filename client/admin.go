package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"weir/protocol"
)

// OffsetSpec names an offset to look up with ListOffsets: Earliest, Latest,
// or Timestamp(t).
type OffsetSpec int64

const (
	// Earliest is the partition's log start offset: its oldest record still
	// kept.
	Earliest = OffsetSpec(protocol.TimestampEarliest)
	// Latest is the partition's high watermark: the offset the next record
	// will get.
	Latest = OffsetSpec(protocol.TimestampLatest)
)

// Timestamp is the offset of the first record whose timestamp is at or
// after t (the high watermark if there is none). Times before 1970 mean
// the epoch.
func Timestamp(t time.Time) OffsetSpec { return OffsetSpec(max(t.UnixMilli(), 0)) }

// String returns "earliest", "latest", or the time in RFC 3339.
func (s OffsetSpec) String() string {
	switch s {
	case Earliest:
		return "earliest"
	case Latest:
		return "latest"
	}
	return time.UnixMilli(int64(s)).UTC().Format(time.RFC3339Nano)
}

// Admin manages topics and looks up offsets.
type Admin struct {
	cfg config
	cl  *cluster
}

// TopicDescription is what DescribeTopic returns.
type TopicDescription struct {
	Name       string
	Partitions []PartitionDescription // by partition number
	Configs    []ConfigEntry          // every setting, sorted by key
}

// Config returns the value of a setting of the topic.
func (d *TopicDescription) Config(key string) (string, bool) {
	for _, c := range d.Configs {
		if c.Key == key {
			return c.Value, true
		}
	}
	return "", false
}

// PartitionDescription describes one partition, as the answering broker
// sees it.
type PartitionDescription struct {
	Partition      int32
	LeaderID       int32 // -1 if there is no leader
	LeaderEpoch    int32
	Replicas       []int32
	HighWatermark  int64 // the offset after the last committed record
	LogStartOffset int64 // the first offset still in the log
	// Err is the partition's error (LeaderNotAvailable), or nil.
	Err error
}

// ConfigEntry is one topic setting.
type ConfigEntry struct {
	Key   string
	Value string
	// IsDefault is true when the topic does not set it.
	IsDefault bool
}

// NewAdmin returns an Admin. It connects lazily: the first call dials.
func NewAdmin(opts ...Opt) (*Admin, error) {
	cfg, err := newConfig(roleAdmin, opts)
	if err != nil {
		return nil, err
	}
	a := &Admin{cfg: cfg}
	a.cl = newCluster(&a.cfg)
	return a, nil
}

// Close closes the Admin's connections.
func (a *Admin) Close() error {
	a.cl.close()
	return nil
}

// retry runs op until it succeeds, fails with an error that is not
// retriable, or has been retried MaxRetries times, backing off in between.
func (a *Admin) retry(ctx context.Context, op func() error) error {
	return retryOp(ctx, &a.cfg, op)
}

func retryOp(ctx context.Context, cfg *config, op func() error) error {
	for attempt := 0; ; attempt++ {
		err := op()
		limit := cfg.maxRetries
		if errors.Is(err, protocol.ErrUnknownTopicOrPartition) {
			// Retriable, since a new topic may be unknown to some brokers
			// for a moment; but a missing one stays missing.
			limit = min(limit, unknownTopicRetries)
		}
		if err == nil || attempt >= limit || !retriable(ctx, err) {
			return err
		}
		if serr := sleep(ctx, cfg.backoff(attempt+1)); serr != nil {
			return err
		}
	}
}

// timeoutMs is the timeout_ms requests carry: RequestTimeout.
func (cfg *config) timeoutMs() int32 { return int32(cfg.requestTimeout.Milliseconds()) }

// CreateTopic creates a topic with the given number of partitions and
// replicas per partition; configs sets topic settings (retention.ms,
// compression, ...) and those left out take the broker's defaults. It
// returns once the broker says the partitions can take requests. Errors
// match protocol.ErrTopicAlreadyExists, ErrInvalidTopic, ErrInvalidPartitions,
// ErrInvalidReplicationFactor, ErrInvalidConfig.
//
// NB: a create that times out or loses its connection is retried, and the
// retry may then report TopicAlreadyExists for the topic it created.
func (a *Admin) CreateTopic(ctx context.Context, name string, partitions int32, replicationFactor int16, configs map[string]string) error {
	t := protocol.CreateTopicsRequestTopic{Name: name, Partitions: partitions, ReplicationFactor: replicationFactor}
	keys := make([]string, 0, len(configs))
	for k := range configs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		t.Configs = append(t.Configs, protocol.CreateTopicsRequestConfig{Key: k, Value: configs[k]})
	}
	req := &protocol.CreateTopicsRequest{Topics: []protocol.CreateTopicsRequestTopic{t}, TimeoutMs: a.cfg.timeoutMs()}
	err := a.retry(ctx, func() error {
		resp, err := a.cl.controllerRequest(ctx, req)
		if err != nil {
			return err
		}
		r := resp.(*protocol.CreateTopicsResponse)
		if len(r.Topics) != 1 {
			return fmt.Errorf("%w: CreateTopics answered %d topics for 1", ErrProtocol, len(r.Topics))
		}
		return a.topicError(r.Topics[0].ErrorCode, r.Topics[0].ErrorMessage)
	})
	if err != nil {
		return fmt.Errorf("weir/client: create topic %q: %w", name, err)
	}
	return nil
}

// topicError turns a topic result into an error, and forgets the
// controller on NotController so that the retry looks it up.
func (a *Admin) topicError(code protocol.ErrorCode, msg *string) error {
	if code == protocol.CodeNotController {
		a.cl.forgetController()
	}
	return protocol.ErrorForCodeMessage(code, msg)
}

// DeleteTopic deletes a topic and its data. Deleting a topic that does not
// exist fails with protocol.ErrUnknownTopicOrPartition.
func (a *Admin) DeleteTopic(ctx context.Context, name string) error {
	req := &protocol.DeleteTopicsRequest{Names: []string{name}, TimeoutMs: a.cfg.timeoutMs()}
	err := a.retry(ctx, func() error {
		resp, err := a.cl.controllerRequest(ctx, req)
		if err != nil {
			return err
		}
		r := resp.(*protocol.DeleteTopicsResponse)
		if len(r.Topics) != 1 {
			return fmt.Errorf("%w: DeleteTopics answered %d topics for 1", ErrProtocol, len(r.Topics))
		}
		err = a.topicError(r.Topics[0].ErrorCode, r.Topics[0].ErrorMessage)
		if errors.Is(err, protocol.ErrUnknownTopicOrPartition) {
			return nonRetriable{err} // the topic is not there: no use asking again
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("weir/client: delete topic %q: %w", name, unwrapNonRetriable(err))
	}
	return nil
}

// nonRetriable marks an error that retriable would otherwise retry.
type nonRetriable struct{ err error }

func (e nonRetriable) Error() string { return e.err.Error() }
func (e nonRetriable) Unwrap() error { return e.err }

func unwrapNonRetriable(err error) error {
	var nr nonRetriable
	if errors.As(err, &nr) {
		return nr.err
	}
	return err
}

// DescribeTopic returns a topic's partitions (leader, replicas, high
// watermark, log start) and settings. An unknown topic fails with
// protocol.ErrUnknownTopicOrPartition.
func (a *Admin) DescribeTopic(ctx context.Context, name string) (*TopicDescription, error) {
	d := &TopicDescription{Name: name}
	err := a.retry(ctx, func() error {
		t, err := a.cl.metadataTopic(ctx, name)
		if errors.Is(err, protocol.ErrUnknownTopicOrPartition) {
			return nonRetriable{err}
		}
		if err != nil {
			return err
		}
		d.Partitions = d.Partitions[:0]
		var tps []topicPartition
		for _, p := range t.Partitions {
			d.Partitions = append(d.Partitions, PartitionDescription{
				Partition: p.Partition, LeaderID: p.LeaderID, LeaderEpoch: p.LeaderEpoch,
				Replicas: p.Replicas, HighWatermark: p.HighWatermark, LogStartOffset: p.LogStartOffset,
				Err: protocol.ErrorForCode(p.ErrorCode, ""),
			})
			tps = append(tps, topicPartition{name, p.Partition})
		}
		offsets := a.leaderOffsets(ctx, tps)
		for i, p := range d.Partitions {
			if o, ok := offsets[topicPartition{name, p.Partition}]; ok {
				d.Partitions[i].LogStartOffset, d.Partitions[i].HighWatermark = o.logStart, o.highWatermark
			}
		}
		resp, err := a.cl.anyRequest(ctx, &protocol.DescribeConfigsRequest{Topics: []string{name}})
		if err != nil {
			return err
		}
		r := resp.(*protocol.DescribeConfigsResponse)
		if len(r.Topics) != 1 {
			return fmt.Errorf("%w: DescribeConfigs answered %d topics for 1", ErrProtocol, len(r.Topics))
		}
		if err := protocol.ErrorForCodeMessage(r.Topics[0].ErrorCode, r.Topics[0].ErrorMessage); err != nil {
			if errors.Is(err, protocol.ErrUnknownTopicOrPartition) {
				return nonRetriable{err}
			}
			return err
		}
		d.Configs = d.Configs[:0]
		for _, c := range r.Topics[0].Configs {
			d.Configs = append(d.Configs, ConfigEntry{Key: c.Key, Value: c.Value, IsDefault: c.IsDefault})
		}
		slices.SortFunc(d.Configs, func(x, y ConfigEntry) int {
			switch {
			case x.Key < y.Key:
				return -1
			case x.Key > y.Key:
				return 1
			}
			return 0
		})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("weir/client: describe topic %q: %w", name, unwrapNonRetriable(err))
	}
	return d, nil
}

// AlterTopicConfig changes settings of a topic: each key gets its value, or
// its default for a nil value. Keys not named keep their values. Errors
// match protocol.ErrInvalidConfig and ErrUnknownTopicOrPartition.
func (a *Admin) AlterTopicConfig(ctx context.Context, name string, changes map[string]*string) error {
	t := protocol.AlterConfigsRequestTopic{Name: name}
	keys := make([]string, 0, len(changes))
	for k := range changes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		t.Configs = append(t.Configs, protocol.AlterConfigsRequestConfig{Key: k, Value: changes[k]})
	}
	req := &protocol.AlterConfigsRequest{Topics: []protocol.AlterConfigsRequestTopic{t}}
	err := a.retry(ctx, func() error {
		resp, err := a.cl.controllerRequest(ctx, req)
		if err != nil {
			return err
		}
		r := resp.(*protocol.AlterConfigsResponse)
		if len(r.Topics) != 1 {
			return fmt.Errorf("%w: AlterConfigs answered %d topics for 1", ErrProtocol, len(r.Topics))
		}
		err = a.topicError(r.Topics[0].ErrorCode, r.Topics[0].ErrorMessage)
		if errors.Is(err, protocol.ErrUnknownTopicOrPartition) {
			return nonRetriable{err}
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("weir/client: alter config of topic %q: %w", name, unwrapNonRetriable(err))
	}
	return nil
}

// ListTopics returns the names of every topic, sorted.
func (a *Admin) ListTopics(ctx context.Context) ([]string, error) {
	var names []string
	err := a.retry(ctx, func() error {
		resp, err := a.cl.anyRequest(ctx, &protocol.MetadataRequest{Topics: nil})
		if err != nil {
			return err
		}
		names = names[:0]
		for _, t := range resp.(*protocol.MetadataResponse).Topics {
			names = append(names, t.Name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("weir/client: list topics: %w", err)
	}
	slices.Sort(names)
	return names, nil
}

// ListOffsets looks up an offset of a partition: its log start (Earliest),
// its high watermark (Latest), or the first record at or after a time
// (Timestamp(t); the high watermark if there is none).
func (a *Admin) ListOffsets(ctx context.Context, topic string, partition int32, spec OffsetSpec) (int64, error) {
	return listOffset(ctx, a.cl, topic, partition, spec)
}

// listOffset asks the partition's leader for an offset, following NotLeader
// and refreshing metadata as the client rules say.
func listOffset(ctx context.Context, cl *cluster, topic string, partition int32, spec OffsetSpec) (int64, error) {
	var offset int64
	err := retryOp(ctx, cl.cfg, func() error {
		addr, err := cl.leader(ctx, topic, partition)
		if err != nil {
			return err
		}
		req := &protocol.ListOffsetsRequest{Topics: []protocol.ListOffsetsRequestTopic{{
			Name:       topic,
			Partitions: []protocol.ListOffsetsRequestPartition{{Partition: partition, Timestamp: int64(spec)}},
		}}}
		resp, err := cl.requestTo(ctx, addr, req)
		if err != nil {
			// The leader may be dead: look it up again next time.
			cl.forgetLeader(topic, partition)
			return err
		}
		p, err := listOffsetsPartition(resp.(*protocol.ListOffsetsResponse), topic, partition)
		if err != nil {
			return err
		}
		if err := protocol.ErrorForCodeMessage(p.ErrorCode, p.ErrorMessage); err != nil {
			cl.noteLeaderError(topic, partition, p.ErrorCode, p.LeaderID, p.LeaderAddress)
			return err
		}
		offset = p.Offset
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("weir/client: list offsets of %s[%d] (%v): %w", topic, partition, spec, err)
	}
	return offset, nil
}

// listOffsetsPartition finds the partition's result in a response.
func listOffsetsPartition(r *protocol.ListOffsetsResponse, topic string, partition int32) (*protocol.ListOffsetsResponsePartition, error) {
	for i := range r.Topics {
		if r.Topics[i].Name != topic {
			continue
		}
		for j := range r.Topics[i].Partitions {
			if p := &r.Topics[i].Partitions[j]; p.Partition == partition {
				return p, nil
			}
		}
	}
	return nil, fmt.Errorf("%w: ListOffsets response lacks %s[%d]", ErrProtocol, topic, partition)
}
