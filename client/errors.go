package client

import (
	"errors"
	"fmt"
)

// Errors of this package. Errors that come from the broker are
// *protocol.Error values, wrapped with what failed: check them with
// errors.Is against protocol's sentinels (protocol.ErrNotLeader,
// protocol.ErrTopicAlreadyExists, ...).
var (
	// Lifecycle.

	// ErrClosed is returned by calls on a closed Producer, Consumer, Admin or
	// connection, and fails records still buffered when a Producer is shut
	// down before they were acknowledged.
	ErrClosed = errors.New("weir/client: closed")

	// Producing.

	// ErrBufferFull fails a record that does not fit in MaxBufferedBytes,
	// when the producer is configured with FailOnFullBuffer instead of
	// waiting for room.
	ErrBufferFull = errors.New("weir/client: producer buffer full")

	// ErrRecordTooLarge fails a record whose encoded size exceeds
	// MaxRecordBytes (or MaxBufferedBytes, which it could never fit in).
	ErrRecordTooLarge = errors.New("weir/client: record too large")

	// ErrNoTopic fails a record without a topic.
	ErrNoTopic = errors.New("weir/client: record has no topic")

	// ErrInvalidPartition fails a record whose partitioner chose a partition
	// the topic does not have (with the explicit partitioner, a
	// Record.Partition out of range).
	ErrInvalidPartition = errors.New("weir/client: invalid partition")

	// ErrDeliveryTimeout fails a record whose batch was not acknowledged
	// within DeliveryTimeout. It wraps the last retriable error.
	ErrDeliveryTimeout = errors.New("weir/client: delivery timeout")

	// ErrDeliveryUnknown marks a record whose batch was sent but whose fate
	// is unknown: a batch before it failed with an unknown outcome (its
	// delivery timed out after lost connections or timeouts), so it may or may not
	// have been written. It wraps the cause.
	ErrDeliveryUnknown = errors.New("weir/client: delivery unknown")

	// Consuming.

	// ErrNotAssigned is returned for a partition the consumer was not
	// assigned.
	ErrNotAssigned = errors.New("weir/client: partition not assigned")

	// Connections and responses.

	// ErrNoBrokers is returned when no seed broker is configured.
	ErrNoBrokers = errors.New("weir/client: no seed brokers")

	// ErrProtocol marks a broker that broke the protocol: a response out of
	// step with the requests, one that does not decode, or records that fail
	// their checks. The connection is closed.
	ErrProtocol = errors.New("weir/client: protocol violation")

	// ErrCorruptFrame marks a fetched log frame that is short, of an unknown
	// version, or fails its CRC32-C.
	ErrCorruptFrame = errors.New("weir/client: corrupt log frame")
)

// PartitionError is an error of one partition: a Consumer's Poll reports
// them (joined with errors.Join when there are several).
type PartitionError struct {
	Topic     string
	Partition int32
	Err       error
}

// Error names the partition and its error.
func (e *PartitionError) Error() string {
	return fmt.Sprintf("weir/client: %s[%d]: %v", e.Topic, e.Partition, e.Err)
}

// Unwrap returns the partition's error, so errors.Is sees through it.
func (e *PartitionError) Unwrap() error { return e.Err }
