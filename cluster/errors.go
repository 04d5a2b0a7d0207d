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
)
