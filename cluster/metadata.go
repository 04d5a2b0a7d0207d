package cluster

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
)

// NodeID identifies a node of the cluster. Part of the wire format (i32).
type NodeID = int32

// Node is a member of the cluster and where to reach it.
type Node struct {
	ID         NodeID `json:"id"`
	ClientAddr string `json:"client_addr"` // host:port of the client listener
	PeerAddr   string `json:"peer_addr"`   // host:port of the Raft peer listener
}

// Topic is a topic's metadata: settings and where its partitions live.
type Topic struct {
	Name string `json:"name"`
	// ID is unique across the cluster's history, so a topic deleted and
	// created again under the same name never meets the old one's files.
	ID     uint64      `json:"id"`
	Config TopicConfig `json:"config"`
	// Replicas lists, for each partition, the nodes holding a replica; the
	// first is the preferred leader.
	Replicas [][]NodeID `json:"replicas"`
	// Leaders is, for each partition, its leader as its replicas last
	// reported it (nil until a first report), so that every node can tell
	// clients where any partition's leader is.
	Leaders []PartitionLeader `json:"leaders,omitempty"`
	// Targets holds, per partition being moved, the replicas it is moving
	// to (see reassign.go); Replicas then lists old and new together.
	Targets map[int32][]NodeID `json:"targets,omitempty"`
}

// Metadata is the cluster's metadata at one point of the metadata log. A
// Metadata value is never modified once published: every change makes a new
// one, so readers need no lock.
type Metadata struct {
	// Index is the metadata Raft index of the last change applied.
	Index       uint64            `json:"index"`
	Nodes       map[NodeID]Node   `json:"nodes"`
	Topics      map[string]*Topic `json:"topics"`
	NextTopicID uint64            `json:"next_topic_id"`
	// NextProducerID is the id the next idempotent producer gets.
	NextProducerID int64 `json:"next_producer_id"`
	// Removing lists, sorted, the nodes being decommissioned: their
	// replicas are moving away; they leave Nodes once they hold none.
	Removing []NodeID `json:"removing,omitempty"`
}

func newMetadata() *Metadata {
	return &Metadata{Nodes: map[NodeID]Node{}, Topics: map[string]*Topic{}, NextTopicID: 1}
}

// SortedNodes returns the nodes by id.
func (m *Metadata) SortedNodes() []Node {
	nodes := slices.Collect(maps.Values(m.Nodes))
	slices.SortFunc(nodes, func(a, b Node) int { return int(a.ID) - int(b.ID) })
	return nodes
}

// command is one change to the metadata, as proposed to its Raft group.
// Part of the metadata log's format: add fields, never change them.
type command struct {
	Op         string             `json:"op"`
	Node       *Node              `json:"node,omitempty"`
	Topic      string             `json:"topic,omitempty"`
	Partitions int                `json:"partitions,omitempty"`
	Replicas   int                `json:"replicas,omitempty"`
	Configs    map[string]*string `json:"configs,omitempty"`
	// Consumer group commands.
	GroupID   string         `json:"group,omitempty"`
	MemberID  string         `json:"member,omitempty"`
	Heartbeat *Heartbeat     `json:"heartbeat,omitempty"`
	Commits   []groupCommits `json:"commits,omitempty"`
	NowMs     int64          `json:"now_ms,omitempty"`
	// Leader reports.
	Leaders []LeaderReport `json:"leaders,omitempty"`
	// Reassignments.
	TopicID uint64         `json:"topic_id,omitempty"`
	Moves   []Reassignment `json:"moves,omitempty"`
}

const (
	opRegisterNode     = "register_node"
	opCreateTopic      = "create_topic"
	opDeleteTopic      = "delete_topic"
	opAlterConfig      = "alter_config"
	opAllocProducerID  = "alloc_producer_id"
	opReportLeaders    = "report_leaders"
	opReassign         = "reassign"
	opCompleteReassign = "complete_reassign"
	opRemoveNode       = "remove_node"
	opForgetNode       = "forget_node"
)

// maxPartitions bounds a topic's partition count.
const maxPartitions = 10_000

// apply returns the metadata after cmd, or why cmd is refused. It is
// deterministic, so every replica of the metadata group agrees.
func (m *Metadata) apply(index uint64, cmd *command) (*Metadata, error) {
	next := *m
	next.Index = index
	var err error
	switch cmd.Op {
	case opRegisterNode:
		if cmd.Node == nil || cmd.Node.ID <= 0 {
			return nil, fmt.Errorf("weir/cluster: register node: bad node %+v", cmd.Node)
		}
		next.Nodes = maps.Clone(m.Nodes)
		next.Nodes[cmd.Node.ID] = *cmd.Node
	case opCreateTopic:
		if err := ValidateTopicName(cmd.Topic); err != nil {
			return nil, err
		}
		if _, ok := m.Topics[cmd.Topic]; ok {
			return nil, fmt.Errorf("%w: %q", ErrTopicExists, cmd.Topic)
		}
		if cmd.Partitions < 1 || cmd.Partitions > maxPartitions {
			return nil, fmt.Errorf("%w: %d (want 1 to %d)", ErrInvalidPartitions, cmd.Partitions, maxPartitions)
		}
		nodes := m.placeableNodes()
		if cmd.Replicas < 1 || cmd.Replicas > len(nodes) {
			return nil, fmt.Errorf("%w: %d with %d nodes", ErrInvalidReplicas, cmd.Replicas, len(nodes))
		}
		cfg := DefaultTopicConfig()
		for _, k := range slices.Sorted(maps.Keys(cmd.Configs)) {
			if err := cfg.Set(k, cmd.Configs[k]); err != nil {
				return nil, err
			}
		}
		t := &Topic{Name: cmd.Topic, ID: m.NextTopicID, Config: cfg,
			Replicas: place(nodes, m.NextTopicID, cmd.Partitions, cmd.Replicas)}
		next.NextTopicID++
		next.Topics = maps.Clone(m.Topics)
		next.Topics[t.Name] = t
	case opDeleteTopic:
		if _, ok := m.Topics[cmd.Topic]; !ok {
			return nil, fmt.Errorf("%w: %q", ErrUnknownTopic, cmd.Topic)
		}
		next.Topics = maps.Clone(m.Topics)
		delete(next.Topics, cmd.Topic)
	case opAlterConfig:
		old, ok := m.Topics[cmd.Topic]
		if !ok {
			return nil, fmt.Errorf("%w: %q", ErrUnknownTopic, cmd.Topic)
		}
		t := *old
		t.Config.Compression = slices.Clone(old.Config.Compression)
		for _, k := range slices.Sorted(maps.Keys(cmd.Configs)) {
			if err := t.Config.Set(k, cmd.Configs[k]); err != nil {
				return nil, err
			}
		}
		next.Topics = maps.Clone(m.Topics)
		next.Topics[t.Name] = &t
	case opAllocProducerID:
		next.NextProducerID++
	case opReportLeaders:
		next.Topics = m.withLeaders(cmd.Leaders)
	case opReassign:
		err = m.applyReassign(&next, cmd)
	case opCompleteReassign:
		err = m.applyCompleteReassign(&next, cmd)
	case opRemoveNode, opForgetNode:
		if cmd.Node == nil {
			return nil, fmt.Errorf("%w: no node", ErrInvalidNode)
		}
		if cmd.Op == opRemoveNode {
			err = m.applyRemoveNode(&next, cmd)
		} else {
			err = m.applyForgetNode(&next, cmd)
		}
	default:
		return nil, fmt.Errorf("weir/cluster: unknown metadata command %q", cmd.Op)
	}
	if err != nil {
		return nil, err
	}
	return &next, nil
}

// placeableNodes are the nodes new replicas may go to (not being removed),
// by id.
func (m *Metadata) placeableNodes() []Node {
	return slices.DeleteFunc(m.SortedNodes(), func(n Node) bool { return slices.Contains(m.Removing, n.ID) })
}

// place spreads a new topic's replicas over the nodes: partition p's
// replicas are consecutive nodes starting at (topic id + p), so replicas
// (and the preferred leaders, the first of each list) go round the nodes
// evenly and one topic's partitions do not all start on the same node.
func place(nodes []Node, topicID uint64, partitions, replicas int) [][]NodeID {
	out := make([][]NodeID, partitions)
	n := len(nodes)
	for p := range out {
		start := int((topicID + uint64(p)) % uint64(n))
		for k := range replicas {
			out[p] = append(out[p], nodes[(start+k)%n].ID)
		}
	}
	return out
}

func encodeCommand(c *command) []byte {
	b, err := json.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("weir/cluster: encode command: %v", err)) // plain data: cannot fail
	}
	return b
}
