package cluster

import (
	"cmp"
	"maps"
	"slices"
	"strings"
)

// Consumer-group partition assignors, as the group coordinator runs them
// (KIP-848 style: the server, not a client leader, computes the target
// assignment). The coordinator's state lives in a Raft state machine, so an
// assignor runs on every replica and must come to the same answer on each:
// everything here is a pure function of its input, never of map iteration
// order, randomness or time.

// TopicPartition names one partition of a topic.
type TopicPartition struct {
	Topic     string `json:"t"`
	Partition int32  `json:"p"`
}

// Compare orders by topic then partition (for slices.SortFunc).
func (a TopicPartition) Compare(b TopicPartition) int {
	if c := strings.Compare(a.Topic, b.Topic); c != 0 {
		return c
	}
	return cmp.Compare(a.Partition, b.Partition)
}

// AssignMember is one group member as an assignor sees it.
type AssignMember struct {
	ID     string
	Topics []string         // the topics it subscribes to that exist, sorted, no duplicates
	Owned  []TopicPartition // what it holds now (for stickiness), sorted; may name partitions no longer subscribed or no longer existing
}

// AssignInput is what an assignor assigns.
type AssignInput struct {
	Members    []AssignMember   // sorted by ID, IDs unique
	Partitions map[string]int32 // partition count of every topic any member subscribes to
}

// Assignment maps member id to its partitions (each slice sorted by Compare).
// Every member of the input has an entry (possibly empty, non-nil or nil both fine).
type Assignment map[string][]TopicPartition

// Assignor computes a group's target assignment. Assign must be a pure,
// deterministic function of its input: the same input gives the same output on
// every node, in every run (it runs inside a Raft state machine on every
// replica). So: never depend on Go map iteration order, randomness or time.
type Assignor interface {
	Name() string
	Assign(in AssignInput) Assignment
}

// DefaultAssignor is the assignor of a group that names none. Uniform is
// Kafka's default for the new protocol too: it balances load and, being
// sticky, moves as few partitions as possible on a rebalance, so consumers
// lose the least state and pause the fewest partitions.
const DefaultAssignor = "uniform"

// assignors is the registry. It is fixed at build time, never written, so
// reading it concurrently is safe and every replica knows the same names.
var assignors = map[string]Assignor{
	"uniform": uniformAssignor{},
	"range":   rangeAssignor{},
}

// LookupAssignor returns the assignor named name ("uniform" or "range");
// "" means DefaultAssignor.
func LookupAssignor(name string) (Assignor, bool) {
	if name == "" {
		name = DefaultAssignor
	}
	a, ok := assignors[name]
	return a, ok
}

// AssignorNames lists the known assignors, sorted.
func AssignorNames() []string {
	return slices.Sorted(maps.Keys(assignors))
}

// assignView is an assignor's input normalized into dense indices: members
// and topics are numbered in sorted order and every partition of an assigned
// topic gets a global number, so the algorithms work on slices (fast, and
// deterministic by construction) instead of maps keyed by strings.
type assignView struct {
	members []AssignMember // sorted by ID, duplicates dropped

	topics   []string         // topics some member subscribes to with at least one partition, sorted
	topicIdx map[string]int32 // topic name -> index into topics
	offset   []int            // global number of a topic's partition 0; offset[len(topics)] = total

	// memberTopics[memberOff[m]:memberOff[m+1]] are the topics member m
	// subscribes to, ascending, no duplicates, only topics of topics.
	memberOff    []int
	memberTopics []int32
	// topicMembers[topicOff[t]:topicOff[t+1]] are the members subscribing to
	// topic t, ascending.
	topicOff     []int
	topicMembers []int32
}

func newAssignView(in AssignInput) *assignView {
	v := &assignView{members: in.Members}
	// The contract says Members is sorted by ID with unique IDs; make sure
	// anyway (cheaply, when it holds), because a caller's slip here would
	// otherwise make the result depend on the order members were listed in.
	if !slices.IsSortedFunc(v.members, compareMemberID) {
		v.members = slices.Clone(v.members)
		slices.SortStableFunc(v.members, compareMemberID)
	}
	for i := 1; i < len(v.members); i++ {
		if v.members[i].ID == v.members[i-1].ID {
			v.members = slices.CompactFunc(slices.Clone(v.members), func(a, b AssignMember) bool { return a.ID == b.ID })
			break
		}
	}

	// Topics: the subscribed ones with partitions. A topic missing from
	// Partitions (deleted while subscribed) counts as having none.
	v.topicIdx = make(map[string]int32)
	for _, m := range v.members {
		for _, t := range m.Topics {
			if _, seen := v.topicIdx[t]; !seen && in.Partitions[t] > 0 {
				v.topicIdx[t] = 0
				v.topics = append(v.topics, t)
			}
		}
	}
	slices.Sort(v.topics)
	v.offset = make([]int, len(v.topics)+1)
	for i, t := range v.topics {
		v.topicIdx[t] = int32(i)
		v.offset[i+1] = v.offset[i] + int(in.Partitions[t])
	}

	// Member -> topics, flattened.
	v.memberOff = make([]int, len(v.members)+1)
	topicCount := make([]int, len(v.topics))
	for i, m := range v.members {
		start := len(v.memberTopics)
		for _, t := range m.Topics {
			if ti, ok := v.topicIdx[t]; ok {
				v.memberTopics = append(v.memberTopics, ti)
			}
		}
		own := v.memberTopics[start:]
		slices.Sort(own) // Topics is sorted, but do not rely on it for correctness
		own = slices.Compact(own)
		v.memberTopics = v.memberTopics[:start+len(own)]
		for _, ti := range own {
			topicCount[ti]++
		}
		v.memberOff[i+1] = len(v.memberTopics)
	}

	// Topic -> members, by counting sort; filling in member order keeps each
	// topic's list sorted by member index, i.e. by ID.
	v.topicOff = make([]int, len(v.topics)+1)
	for t, c := range topicCount {
		v.topicOff[t+1] = v.topicOff[t] + c
	}
	v.topicMembers = make([]int32, len(v.memberTopics))
	fill := slices.Clone(v.topicOff[:len(v.topics)])
	for m := range v.members {
		for _, ti := range v.subscriptions(m) {
			v.topicMembers[fill[ti]] = int32(m)
			fill[ti]++
		}
	}
	return v
}

func compareMemberID(a, b AssignMember) int { return strings.Compare(a.ID, b.ID) }

// total is the number of partitions to assign.
func (v *assignView) total() int { return v.offset[len(v.topics)] }

// subscriptions returns member m's topic indices, ascending.
func (v *assignView) subscriptions(m int) []int32 {
	return v.memberTopics[v.memberOff[m]:v.memberOff[m+1]]
}

// subscribers returns the members subscribing to topic t, ascending.
func (v *assignView) subscribers(t int32) []int32 {
	return v.topicMembers[v.topicOff[t]:v.topicOff[t+1]]
}

// subscribes reports whether member m subscribes to topic t.
func (v *assignView) subscribes(m int, t int32) bool {
	_, ok := slices.BinarySearch(v.subscriptions(m), t)
	return ok
}

// claimOwned returns, for every global partition, the member that holds it
// now and may keep it, or -1. A claim counts only if the member still
// subscribes to the topic and the partition still exists. A partition two
// members claim (ownership is handed over asynchronously, so the input can
// briefly say so) goes to the first of them by ID, so it is never assigned
// twice and the choice is the same on every replica.
func (v *assignView) claimOwned() []int32 {
	owner := make([]int32, v.total())
	for i := range owner {
		owner[i] = -1
	}
	for m, mem := range v.members {
		for _, tp := range mem.Owned {
			t, ok := v.topicIdx[tp.Topic]
			if !ok || tp.Partition < 0 || int(tp.Partition) >= v.offset[t+1]-v.offset[t] || !v.subscribes(m, t) {
				continue
			}
			if g := v.offset[t] + int(tp.Partition); owner[g] < 0 {
				owner[g] = int32(m)
			}
		}
	}
	return owner
}

// result turns owner (global partition -> member) into an Assignment. Walking
// partitions in global order yields every member's list already sorted by
// Compare, since topics are numbered in name order. All lists share one
// backing array (one allocation instead of one per member), each capped so
// that a caller appending to one cannot overwrite another.
func (v *assignView) result(owner []int32) Assignment {
	count := make([]int, len(v.members)+1)
	for _, m := range owner {
		if m >= 0 {
			count[m+1]++
		}
	}
	for i := 1; i < len(count); i++ {
		count[i] += count[i-1]
	}
	all := make([]TopicPartition, count[len(v.members)])
	next := slices.Clone(count)
	for t, name := range v.topics {
		for g := v.offset[t]; g < v.offset[t+1]; g++ {
			if m := owner[g]; m >= 0 {
				all[next[m]] = TopicPartition{Topic: name, Partition: int32(g - v.offset[t])}
				next[m]++
			}
		}
	}
	out := make(Assignment, len(v.members))
	for m, mem := range v.members {
		out[mem.ID] = all[count[m]:count[m+1]:count[m+1]]
	}
	return out
}
