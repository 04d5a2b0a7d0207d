package cluster

import "errors"

// Errors returned by the cluster metadata. Check them with errors.Is.
var (
	ErrTopicExists       = errors.New("weir/cluster: topic already exists")
	ErrUnknownTopic      = errors.New("weir/cluster: unknown topic")
	ErrInvalidTopic      = errors.New("weir/cluster: invalid topic name")
	ErrInvalidConfig     = errors.New("weir/cluster: invalid topic config")
	ErrInvalidPartitions = errors.New("weir/cluster: invalid partition count")
	ErrInvalidReplicas   = errors.New("weir/cluster: invalid replication factor")
	// ErrNotController: this node does not lead the metadata group; retry
	// at the controller.
	ErrNotController = errors.New("weir/cluster: not the controller")
	// ErrInvalidNode: a node's id or addresses are not valid.
	ErrInvalidNode = errors.New("weir/cluster: invalid node")
	// ErrInvalidReassignment: a move of replicas that cannot be done (a
	// node being removed as a target, no such move under way).
	ErrInvalidReassignment = errors.New("weir/cluster: invalid reassignment")
)

// Errors of the consumer group coordinator. Check them with errors.Is.
var (
	ErrInvalidGroupID = errors.New("weir/cluster: invalid group id")
	ErrGroupNotFound  = errors.New("weir/cluster: no such group")
	// ErrUnknownMember: the group has no member with this id (it left or
	// its session expired); the client joins again.
	ErrUnknownMember = errors.New("weir/cluster: unknown group member")
	// ErrFencedMember: the member's epoch is stale, or it no longer owns
	// the partition it commits or fetches.
	ErrFencedMember        = errors.New("weir/cluster: fenced group member")
	ErrNonEmptyGroup       = errors.New("weir/cluster: group has members")
	ErrUnsupportedAssignor = errors.New("weir/cluster: unsupported assignor")
	ErrInvalidGroupRequest = errors.New("weir/cluster: invalid group request")
)
