package broker

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"

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
	case errors.Is(err, cluster.ErrInvalidGroupID):
		return protocol.CodeInvalidGroupID
	case errors.Is(err, cluster.ErrGroupNotFound):
		return protocol.CodeGroupIDNotFound
	case errors.Is(err, cluster.ErrUnknownMember):
		return protocol.CodeUnknownMemberID
	case errors.Is(err, cluster.ErrFencedMember):
		return protocol.CodeFencedMemberEpoch
	case errors.Is(err, cluster.ErrNonEmptyGroup):
		return protocol.CodeNonEmptyGroup
	case errors.Is(err, cluster.ErrUnsupportedAssignor):
		return protocol.CodeUnsupportedAssignor
	case errors.Is(err, cluster.ErrInvalidGroupRequest), errors.Is(err, cluster.ErrInvalidNode), errors.Is(err, cluster.ErrInvalidReassignment):
		return protocol.CodeInvalidRequest
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, raft.ErrEnqueueTimeout):
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

// partitionError is a partition-level error as the wire carries it: code,
// message, and for NotLeader the leader's node id and client address (from
// the partition's Raft view and the metadata), else -1 and "".
type partitionError struct {
	code          protocol.ErrorCode
	message       *string
	leaderID      int32
	leaderAddress string
}

func (b *Broker) partitionError(err error) partitionError {
	pe := partitionError{code: errorCode(err), message: errorMessage(err), leaderID: -1}
	var nl *partition.NotLeaderError
	if pe.code != protocol.CodeNotLeader || !errors.As(err, &nl) {
		return pe
	}
	if id, ok := cluster.ParseNodeID(raft.ServerID(nl.LeaderID)); ok {
		pe.leaderID = id
		pe.leaderAddress = b.controller.Metadata().Nodes[id].ClientAddr
	}
	return pe
}

var errUnknownPartition = fmt.Errorf("%w: this node hosts no such partition", cluster.ErrUnknownTopic)
