package broker

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"weir/cluster"
	"weir/partition"
	"weir/protocol"
)

// errorCode maps an error of the layers below to its wire code.
func errorCode(err error) protocol.ErrorCode {
	switch {
	case err == nil:
		return protocol.CodeNone
	case errors.Is(err, partition.ErrNotLeader):
		return protocol.CodeNotLeader
	case errors.Is(err, partition.ErrOffsetOutOfRange):
		return protocol.CodeOffsetOutOfRange
	case errors.Is(err, partition.ErrInvalidBatch):
		return protocol.CodeCorruptMessage
	case errors.Is(err, partition.ErrOutOfOrderSequence):
		return protocol.CodeOutOfOrderSequence
	case errors.Is(err, partition.ErrProducerFenced):
		return protocol.CodeProducerFenced
	case errors.Is(err, partition.ErrClosed):
		return protocol.CodeLeaderNotAvailable
	case errors.Is(err, cluster.ErrTopicExists):
		return protocol.CodeTopicAlreadyExists
	case errors.Is(err, cluster.ErrUnknownTopic):
		return protocol.CodeUnknownTopicOrPartition
	case errors.Is(err, cluster.ErrInvalidTopic):
		return protocol.CodeInvalidTopic
	case errors.Is(err, cluster.ErrInvalidConfig):
		return protocol.CodeInvalidConfig
	case errors.Is(err, cluster.ErrInvalidPartitions):
		return protocol.CodeInvalidPartitions
	case errors.Is(err, cluster.ErrInvalidReplicas):
		return protocol.CodeInvalidReplicationFactor
	case errors.Is(err, cluster.ErrNotController):
		return protocol.CodeNotController
	case errors.Is(err, context.DeadlineExceeded):
		return protocol.CodeRequestTimedOut
	case errors.Is(err, context.Canceled):
		return protocol.CodeBrokerShuttingDown
	}
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	return protocol.CodeUnknownServerError
}

// errorMessage is the wire message of err: nil when there is no error.
func errorMessage(err error) *string {
	if err == nil {
		return nil
	}
	s := err.Error()
	return &s
}

// leaderOf says where a NotLeader error points: the leader's node id and
// client address, from the partition's Raft view and the metadata.
func (b *Broker) leaderOf(err error) (int32, string) {
	var nl *partition.NotLeaderError
	if !errors.As(err, &nl) || nl.LeaderID == "" {
		return -1, ""
	}
	id, perr := strconv.ParseInt(nl.LeaderID, 10, 32)
	if perr != nil {
		return -1, ""
	}
	node, ok := b.controller.Metadata().Nodes[int32(id)]
	if !ok {
		return int32(id), ""
	}
	return int32(id), node.ClientAddr
}

var errUnknownPartition = fmt.Errorf("%w: this node hosts no such partition", cluster.ErrUnknownTopic)
