package client

import (
	"errors"
	"fmt"
	"time"

	"weir/protocol"
)

// Opt configures a Producer, a Consumer or an Admin. The options that are
// neither ProducerOpt nor ConsumerOpt (SeedBrokers, ClientID, timeouts,
// retries) apply to all three; NewProducer refuses consumer options and
// NewConsumer producer options, so a misplaced option is an error rather
// than a silent no-op.
type Opt interface {
	apply(*config)
}

// ProducerOpt is an option only a Producer takes.
type ProducerOpt interface {
	Opt
	producerOpt()
}

// ConsumerOpt is an option only a Consumer takes.
type ConsumerOpt interface {
	Opt
	consumerOpt()
}

type clientOpt struct{ fn func(*config) }

func (o clientOpt) apply(c *config) { o.fn(c) }

type producerOpt struct{ fn func(*config) }

func (o producerOpt) apply(c *config) { o.fn(c) }
func (producerOpt) producerOpt()      {}

type consumerOpt struct{ fn func(*config) }

func (o consumerOpt) apply(c *config) { o.fn(c) }
func (consumerOpt) consumerOpt()      {}

// AckLevel is how much a produce waits for: the acks of a Produce request.
type AckLevel int16

// Ack levels, the values of the wire's acks field.
const (
	// AcksAll waits until the batch is committed by a quorum of the
	// partition's replicas. The default.
	AcksAll = AckLevel(protocol.AcksAll)
	// AcksNone is fire and forget: the broker does not answer, records are
	// "acknowledged" once written to the connection (with Offset -1), and
	// errors are not reported. It turns idempotence off, which needs
	// answers.
	AcksNone = AckLevel(protocol.AcksNone)
)

// config holds every setting; each role reads its own.
type config struct {
	// All roles.
	seeds            []string
	clientID         string
	dialTimeout      time.Duration
	requestTimeout   time.Duration
	maxResponseBytes int
	maxRetries       int
	retryBackoff     time.Duration
	maxRetryBackoff  time.Duration

	// Producer.
	linger           time.Duration
	batchBytes       int
	maxRecordBytes   int
	maxBufferedBytes int64
	failOnFullBuffer bool
	deliveryTimeout  time.Duration
	compression      Codec
	partitioner      Partitioner
	idempotent       bool
	acks             AckLevel

	// Consumer.
	maxPrefetchBytes int64
	fetchMaxWait     time.Duration
	fetchMaxBytes    int32
	fetchConnections int
	fetchMinBytes    int32
	startOffset      OffsetSpec
	resetOffset      OffsetSpec
	autoReset        bool

	// GroupConsumer (group_options.go).
	group groupConfig
}

// Defaults.
const (
	defaultClientID         = "weir-go"
	defaultDialTimeout      = 10 * time.Second
	defaultRequestTimeout   = 30 * time.Second
	defaultMaxRetries       = 20
	defaultRetryBackoff     = 100 * time.Millisecond
	defaultMaxRetryBackoff  = time.Second
	defaultLinger           = 5 * time.Millisecond
	defaultBatchBytes       = 1 << 20
	defaultMaxRecordBytes   = 1 << 20
	defaultMaxBufferedBytes = 64 << 20
	defaultDeliveryTimeout  = 2 * time.Minute
	defaultMaxPrefetchBytes = 32 << 20 // room for a response decoded and the next fetch (see fetch.go)
	defaultFetchMaxWait     = 500 * time.Millisecond
	defaultFetchMaxBytes    = 8 << 20
	defaultFetchConnections = 2
	maxFetchConnections     = 16
)

func defaultConfig() config {
	return config{
		clientID:         defaultClientID,
		dialTimeout:      defaultDialTimeout,
		requestTimeout:   defaultRequestTimeout,
		maxResponseBytes: protocol.DefaultMaxFrameSize,
		maxRetries:       defaultMaxRetries,
		retryBackoff:     defaultRetryBackoff,
		maxRetryBackoff:  defaultMaxRetryBackoff,

		linger:           defaultLinger,
		batchBytes:       defaultBatchBytes,
		maxRecordBytes:   defaultMaxRecordBytes,
		maxBufferedBytes: defaultMaxBufferedBytes,
		deliveryTimeout:  defaultDeliveryTimeout,
		compression:      CodecNone,
		partitioner:      KeyHashPartitioner(),
		idempotent:       true,
		acks:             AcksAll,

		maxPrefetchBytes: defaultMaxPrefetchBytes,
		fetchMaxWait:     defaultFetchMaxWait,
		fetchMaxBytes:    defaultFetchMaxBytes,
		fetchConnections: defaultFetchConnections,
		fetchMinBytes:    1,
		startOffset:      Earliest,

		group: defaultGroupConfig(),
	}
}

// role says which constructor builds the config.
type role int

const (
	roleAdmin role = iota
	roleProducer
	roleConsumer
	roleGroup // a GroupConsumer: consumer options and group options
)

// newConfig applies opts over the defaults and validates the result.
func newConfig(r role, opts []Opt) (config, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if o == nil {
			continue
		}
		_, isProducer := o.(ProducerOpt)
		_, isConsumer := o.(ConsumerOpt)
		_, isGroup := o.(GroupOpt)
		switch {
		case isProducer && r != roleProducer:
			return cfg, fmt.Errorf("weir/client: a producer option was given to a %s", r)
		case isConsumer && r != roleConsumer && r != roleGroup:
			return cfg, fmt.Errorf("weir/client: a consumer option was given to a %s", r)
		case isGroup && r != roleGroup:
			return cfg, fmt.Errorf("weir/client: a group consumer option was given to a %s", r)
		}
		o.apply(&cfg)
	}
	return cfg, cfg.validate()
}

func (r role) String() string {
	switch r {
	case roleProducer:
		return "producer"
	case roleConsumer:
		return "consumer"
	case roleGroup:
		return "group consumer"
	}
	return "admin"
}

// validate checks the settings, naming the first bad one.
func (c *config) validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf("weir/client: "+format, args...))
		}
	}
	if len(c.seeds) == 0 {
		errs = append(errs, fmt.Errorf("%w: set SeedBrokers", ErrNoBrokers))
	}
	check(c.dialTimeout > 0, "DialTimeout must be positive, is %v", c.dialTimeout)
	check(c.requestTimeout > 0, "RequestTimeout must be positive, is %v", c.requestTimeout)
	check(c.maxResponseBytes > 0, "MaxResponseBytes must be positive, is %d", c.maxResponseBytes)
	check(c.maxRetries >= 0, "MaxRetries must not be negative, is %d", c.maxRetries)
	check(c.retryBackoff > 0 && c.maxRetryBackoff >= c.retryBackoff,
		"RetryBackoff wants 0 < base <= max, got %v and %v", c.retryBackoff, c.maxRetryBackoff)
	check(c.linger >= 0, "Linger must not be negative, is %v", c.linger)
	check(c.batchBytes > 0, "BatchBytes must be positive, is %d", c.batchBytes)
	check(c.maxRecordBytes > 0, "MaxRecordBytes must be positive, is %d", c.maxRecordBytes)
	check(c.maxBufferedBytes > 0, "MaxBufferedBytes must be positive, is %d", c.maxBufferedBytes)
	check(c.deliveryTimeout > 0, "DeliveryTimeout must be positive, is %v", c.deliveryTimeout)
	check(c.compression <= CodecSnappy, "unknown compression codec %v", c.compression)
	check(c.partitioner != nil, "Partitioner must not be nil")
	check(c.acks == AcksAll || c.acks == AcksNone, "Acks must be AcksAll or AcksNone, is %d", c.acks)
	check(c.maxPrefetchBytes > 0, "MaxPrefetchBytes must be positive, is %d", c.maxPrefetchBytes)
	check(c.fetchMaxWait >= 0, "FetchMaxWait must not be negative, is %v", c.fetchMaxWait)
	check(c.fetchMaxBytes > 0, "FetchMaxBytes must be positive, is %d", c.fetchMaxBytes)
	check(c.fetchConnections >= 1 && c.fetchConnections <= maxFetchConnections,
		"FetchConnections must be 1 to %d, is %d", maxFetchConnections, c.fetchConnections)
	errs = append(errs, c.group.validate()...)
	return errors.Join(errs...)
}

// Options for every role.

// SeedBrokers sets the "host:port" addresses of the brokers to bootstrap
// from; the client learns the others from their metadata. Required.
func SeedBrokers(addrs ...string) Opt {
	return clientOpt{func(c *config) { c.seeds = append([]string(nil), addrs...) }}
}

// ClientID sets the name the client gives itself in every request header,
// for the brokers' logs and metrics. Default "weir-go".
func ClientID(id string) Opt { return clientOpt{func(c *config) { c.clientID = id }} }

// DialTimeout bounds how long opening a connection may take. Default 10s.
func DialTimeout(d time.Duration) Opt { return clientOpt{func(c *config) { c.dialTimeout = d }} }

// RequestTimeout bounds how long the client waits for a response (a
// fetch's long poll comes on top), and is the timeout_ms the broker gets
// in produce and admin requests. A request that times out closes its
// connection: the responses behind it are stuck anyway, since a connection
// answers in order. Default 30s.
func RequestTimeout(d time.Duration) Opt {
	return clientOpt{func(c *config) { c.requestTimeout = d }}
}

// MaxResponseBytes bounds the size of a response frame, checked before it
// is read: a larger one closes the connection. Default 100 MiB.
func MaxResponseBytes(n int) Opt { return clientOpt{func(c *config) { c.maxResponseBytes = n }} }

// MaxRetries bounds how many times a request that failed with a retriable
// error is sent again before its error is returned. A Producer's batches
// are bounded by DeliveryTimeout instead. Default 20.
func MaxRetries(n int) Opt { return clientOpt{func(c *config) { c.maxRetries = n }} }

// RetryBackoff sets the backoff between retries: it starts at base, doubles
// with every retry up to max, and is jittered by ±20% so that clients that
// failed together do not retry together. A Backpressure error's
// retry_after_ms is waited at least. A produced batch whose partition's
// leader is moving (NotLeader, LeaderNotAvailable, the leader unreachable)
// backs off at most 250ms, so that it reaches the new leader soon after
// the election. Default 100ms up to 1s.
func RetryBackoff(base, max time.Duration) Opt {
	return clientOpt{func(c *config) { c.retryBackoff, c.maxRetryBackoff = base, max }}
}

// Producer options.

// Linger sets how long a partition's batch waits for more records before it
// is sent, unless it fills up first. 0 sends as soon as possible. Default
// 5ms.
func Linger(d time.Duration) ProducerOpt {
	return producerOpt{func(c *config) { c.linger = d }}
}

// BatchBytes sets the size at which a partition's batch is sent without
// waiting for Linger: records go into the next batch once a batch holds
// this many bytes (uncompressed). Default 1 MiB.
func BatchBytes(n int) ProducerOpt { return producerOpt{func(c *config) { c.batchBytes = n }} }

// MaxRecordBytes sets the largest record accepted (its key, value and
// headers, plus a few bytes of framing); larger records fail at once with
// ErrRecordTooLarge. A record larger than BatchBytes travels in a batch of
// its own. Default 1 MiB.
func MaxRecordBytes(n int) ProducerOpt {
	return producerOpt{func(c *config) { c.maxRecordBytes = n }}
}

// MaxBufferedBytes bounds the bytes of records produced and not yet
// acknowledged. Produce waits for room (or fails with ErrBufferFull, see
// FailOnFullBuffer). Default 64 MiB.
func MaxBufferedBytes(n int64) ProducerOpt {
	return producerOpt{func(c *config) { c.maxBufferedBytes = n }}
}

// DeliveryTimeout bounds how long a record may take from Produce to its
// acknowledgement: retries of its batch stop once the next one would start
// later than this, and its records fail with ErrDeliveryTimeout. Retries
// are not counted (MaxRetries does not apply to batches), so a partition
// whose leader is moving is retried as often as needed, for as long as
// this allows. A send under way when the deadline passes is waited for
// (at most RequestTimeout), so a record may fail up to that much later.
// Default 2m.
func DeliveryTimeout(d time.Duration) ProducerOpt {
	return producerOpt{func(c *config) { c.deliveryTimeout = d }}
}

// FailOnFullBuffer makes Produce fail a record with ErrBufferFull at once
// when it does not fit in MaxBufferedBytes, instead of waiting for room.
func FailOnFullBuffer() ProducerOpt {
	return producerOpt{func(c *config) { c.failOnFullBuffer = true }}
}

// Compression sets the codec batches are compressed with. The topic's
// compression setting must allow it. Default CodecNone.
func Compression(codec Codec) ProducerOpt {
	return producerOpt{func(c *config) { c.compression = codec }}
}

// WithPartitioner sets how records are spread over partitions. Default
// KeyHashPartitioner.
func WithPartitioner(p Partitioner) ProducerOpt {
	return producerOpt{func(c *config) { c.partitioner = p }}
}

// Idempotent turns idempotence on (the default) or off. An idempotent
// producer numbers its records so that retries are written once, and keeps
// up to 5 batches per partition in flight. Without idempotence a retry may
// write a batch twice, and the producer keeps one batch per partition in
// flight, so that a retry cannot reorder the partition.
func Idempotent(on bool) ProducerOpt {
	return producerOpt{func(c *config) { c.idempotent = on }}
}

// Acks sets what a produce waits for. Default AcksAll.
func Acks(level AckLevel) ProducerOpt { return producerOpt{func(c *config) { c.acks = level }} }

// Consumer options.

// MaxPrefetchBytes bounds the bytes of records the consumer fetches and
// decodes ahead of Poll. A fetch is sent only while the consumer holds
// less, and asks for no more than the room left by what it holds and what
// its other fetches asked for, nor for more than its connection's fair
// share: MaxPrefetchBytes over the fetch connections that serve a
// partition, less what that connection's fetches asked for. (The broker
// still sends a partition's first batch whatever its size, so the bound
// may be passed by one batch per fetch connection.) A record counts its
// key, value and headers and 64 bytes more. Default 32 MiB: room, on each
// of one broker's two fetch connections, for the next fetch of
// FetchMaxBytes to be on its way while a response is decoded; with more
// brokers, fetches ask for less.
func MaxPrefetchBytes(n int64) ConsumerOpt {
	return consumerOpt{func(c *config) { c.maxPrefetchBytes = n }}
}

// FetchMaxWait sets how long the broker may hold a fetch while it has no new
// records: the long poll. Default 500ms.
func FetchMaxWait(d time.Duration) ConsumerOpt {
	return consumerOpt{func(c *config) { c.fetchMaxWait = d }}
}

// FetchMaxBytes bounds the records of one fetch response (and of each of its
// partitions). Default 8 MiB.
func FetchMaxBytes(n int32) ConsumerOpt {
	return consumerOpt{func(c *config) { c.fetchMaxBytes = n }}
}

// FetchConnections sets how many connections the consumer fetches from
// each broker over, 1 to 16, each serving its share of the partitions the
// broker leads (a partition goes to the one serving the fewest when the
// consumer finds its leader). Their fetches are answered, and their
// records decoded, side by side, where one connection answers in order
// and its fetches wait on each other's decoding. A broker leading a
// single assigned partition uses one. Default 2:
// consuming stored 1 KiB records from one broker on two cores, a quarter
// faster than with 1 (docs/broker.md, "Fetch").
func FetchConnections(n int) ConsumerOpt {
	return consumerOpt{func(c *config) { c.fetchConnections = n }}
}

// StartOffset sets where a partition assigned without a seek starts:
// Earliest (the default), Latest, or the first record at or after a
// Timestamp.
func StartOffset(spec OffsetSpec) ConsumerOpt {
	return consumerOpt{func(c *config) { c.startOffset = spec }}
}

// ResetOffset makes the consumer handle OffsetOutOfRange itself, by moving
// the partition to spec (Earliest or Latest, usually) and going on. Without
// it, Poll reports OffsetOutOfRange as a *PartitionError and the partition
// stops until it is sought. For a GroupConsumer it is also where a
// partition the group has no committed offset for starts; there the
// default is Latest, as in Kafka.
func ResetOffset(spec OffsetSpec) ConsumerOpt {
	return consumerOpt{func(c *config) { c.resetOffset, c.autoReset = spec, true }}
}
