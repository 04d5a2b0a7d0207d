package cluster

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// maxGroupIDLen bounds a group id (it is a key of the metadata state).
const maxGroupIDLen = 255

// ValidateGroupID checks a consumer group id: 1 to 255 bytes.
func ValidateGroupID(id string) error {
	if id == "" || len(id) > maxGroupIDLen {
		return fmt.Errorf("%w: %q (want 1 to %d bytes)", ErrInvalidGroupID, id, maxGroupIDLen)
	}
	return nil
}

// Group states, as ListGroups and DescribeGroups report them.
const (
	GroupEmpty       = "Empty"       // no members
	GroupReconciling = "Reconciling" // members are taking or giving back partitions
	GroupStable      = "Stable"      // every member holds exactly its target
)

// Group is a consumer group as the metadata state machine keeps it. Every
// node holds the same Groups (they go through the metadata Raft group), so
// any node can check a member's ownership, and a new controller takes over
// the members, their epochs and the offsets.
type Group struct {
	ID string `json:"id"`
	// Epoch increases at each change of membership, subscriptions, assignor
	// or subscribed topics; Target is the assignment computed at Epoch.
	Epoch    int32              `json:"epoch"`
	Assignor string             `json:"assignor"`
	Members  map[string]*Member `json:"members"`
	Target   Assignment         `json:"target"`
	// Offsets are the committed offsets by topic and partition.
	Offsets map[string]map[int32]CommittedOffset `json:"offsets"`
}

// Member is one member of a group.
type Member struct {
	ID               string `json:"id"`
	InstanceID       string `json:"instance_id,omitempty"`
	ClientID         string `json:"client_id,omitempty"`
	ClientHost       string `json:"client_host,omitempty"`
	SessionTimeoutMs int32  `json:"session_timeout_ms"`
	// Epoch increases whenever the member's assignment changes; a request
	// with a higher epoch than this, or a commit or fetch of a partition
	// the member does not hold, is fenced.
	Epoch  int32    `json:"epoch"`
	Topics []string `json:"topics,omitempty"`
	Regex  string   `json:"regex,omitempty"`
	// Assigned are the partitions the member may consume; Revoking those it
	// must give back, and still owns until its heartbeat no longer lists
	// them. No partition is in two members' Assigned or Revoking at once.
	Assigned []TopicPartition `json:"assigned,omitempty"`
	Revoking []TopicPartition `json:"revoking,omitempty"`
}

// Owns reports whether the member holds tp (assigned or being revoked).
func (m *Member) Owns(tp TopicPartition) bool {
	return containsTP(m.Assigned, tp) || containsTP(m.Revoking, tp)
}

// CommittedOffset is a group's committed position in one partition.
type CommittedOffset struct {
	Offset     int64  `json:"offset"`
	Metadata   string `json:"metadata,omitempty"`
	CommitTime int64  `json:"commit_ms"` // Unix ms, by the controller's clock
}

// Heartbeat is a member's heartbeat (join, beat or leave) as the group
// state machine applies it: the coordinator fills MemberID for a join and
// clamps SessionTimeoutMs before it proposes one.
type Heartbeat struct {
	MemberID         string `json:"member_id"`
	MemberEpoch      int32  `json:"member_epoch"` // 0 join, -1 leave
	InstanceID       string `json:"instance_id,omitempty"`
	SessionTimeoutMs int32  `json:"session_timeout_ms"`
	// Topics, Regex and Assignor are nil when unchanged.
	Topics   []string `json:"topics,omitempty"`
	Regex    *string  `json:"regex,omitempty"`
	Assignor *string  `json:"assignor,omitempty"`
	// TopicsSet tells an empty Topics (subscribe to none) from nil.
	TopicsSet bool `json:"topics_set,omitempty"`
	// Owned is what the member holds now.
	Owned      []TopicPartition `json:"owned"`
	ClientID   string           `json:"client_id,omitempty"`
	ClientHost string           `json:"client_host,omitempty"`
}

// HeartbeatResult is the coordinator's answer to a heartbeat.
type HeartbeatResult struct {
	MemberID    string
	MemberEpoch int32
	Assignment  []TopicPartition // everything the member may consume now
	// SessionTimeoutMs is the member's session, which sets its heartbeat
	// interval.
	SessionTimeoutMs int32
}

// newGroup returns an empty group.
func newGroup(id string) *Group {
	return &Group{ID: id, Assignor: DefaultAssignor, Members: map[string]*Member{}, Target: Assignment{},
		Offsets: map[string]map[int32]CommittedOffset{}}
}

// initMaps makes the maps a decoded group lacks.
func (g *Group) initMaps() {
	if g.Members == nil {
		g.Members = map[string]*Member{}
	}
	if g.Target == nil {
		g.Target = Assignment{}
	}
	if g.Offsets == nil {
		g.Offsets = map[string]map[int32]CommittedOffset{}
	}
}

// State is Empty, Reconciling or Stable.
func (g *Group) State() string {
	if len(g.Members) == 0 {
		return GroupEmpty
	}
	for _, m := range g.Members {
		if len(m.Revoking) > 0 || !slices.Equal(m.Assigned, g.Target[m.ID]) {
			return GroupReconciling
		}
	}
	return GroupStable
}

// Owner returns the member that holds tp, or nil.
func (g *Group) Owner(tp TopicPartition) *Member {
	for _, m := range g.Members {
		if m.Owns(tp) {
			return m
		}
	}
	return nil
}

// SortedMembers returns the members by id.
func (g *Group) SortedMembers() []*Member {
	return slices.SortedFunc(maps.Values(g.Members), func(a, b *Member) int { return strings.Compare(a.ID, b.ID) })
}

// clone copies what a heartbeat may change: the members and the target.
// Offsets are shared: heartbeats do not touch them.
func (g *Group) clone() *Group {
	c := *g
	c.Members = make(map[string]*Member, len(g.Members))
	for id, m := range g.Members {
		mc := *m
		// Deep: a dry run must not write through shared arrays into the
		// live state.
		mc.Topics, mc.Assigned, mc.Revoking = slices.Clone(m.Topics), slices.Clone(m.Assigned), slices.Clone(m.Revoking)
		c.Members[id] = &mc
	}
	c.Target = maps.Clone(g.Target)
	return &c
}

// heartbeat applies hb to g. It is deterministic (it runs in the metadata
// state machine on every node, and on the controller as a dry run to find
// out whether the heartbeat changes anything worth a trip through Raft).
// changed reports whether g was modified.
func (g *Group) heartbeat(hb *Heartbeat, meta *Metadata) (res HeartbeatResult, changed bool, err error) {
	res = HeartbeatResult{MemberID: hb.MemberID, MemberEpoch: -1}
	hb.Owned = normalizeTPs(hb.Owned)
	if hb.MemberID == "" {
		return res, false, fmt.Errorf("%w: no member id", ErrInvalidGroupRequest)
	}
	if hb.MemberEpoch == -1 {
		if m := g.Members[hb.MemberID]; m != nil {
			g.removeMember(m, meta)
			return res, true, nil
		}
		return res, false, nil // leaving twice is fine
	}
	var m *Member
	groupChanged := false
	switch {
	case hb.MemberEpoch == 0:
		m, changed, groupChanged = g.join(hb)
	case hb.MemberEpoch < 0:
		return res, false, fmt.Errorf("%w: member epoch %d", ErrInvalidGroupRequest, hb.MemberEpoch)
	default:
		if m = g.Members[hb.MemberID]; m == nil {
			return res, false, fmt.Errorf("%w: %q in group %q", ErrUnknownMember, hb.MemberID, g.ID)
		}
		// An older epoch is a member that missed our last answer: fine as
		// long as it claims nothing it does not own.
		if hb.MemberEpoch > m.Epoch || (hb.MemberEpoch < m.Epoch && !m.ownsAll(hb.Owned)) {
			return res, false, fmt.Errorf("%w: member %q sent epoch %d, its epoch is %d",
				ErrFencedMember, m.ID, hb.MemberEpoch, m.Epoch)
		}
	}
	if hb.SessionTimeoutMs > 0 && hb.SessionTimeoutMs != m.SessionTimeoutMs {
		m.SessionTimeoutMs = hb.SessionTimeoutMs
		changed = true
	}
	if hb.TopicsSet {
		topics := slices.Compact(slices.Sorted(slices.Values(hb.Topics)))
		if !slices.Equal(topics, m.Topics) {
			m.Topics, changed, groupChanged = topics, true, true
		}
	}
	if hb.Regex != nil && *hb.Regex != m.Regex {
		if _, err := compileSubscription(*hb.Regex); err != nil {
			return res, false, err
		}
		m.Regex, changed, groupChanged = *hb.Regex, true, true
	}
	if hb.Assignor != nil && *hb.Assignor != "" && *hb.Assignor != g.Assignor {
		if _, ok := LookupAssignor(*hb.Assignor); !ok {
			return res, false, fmt.Errorf("%w: %q (have %v)", ErrUnsupportedAssignor, *hb.Assignor, AssignorNames())
		}
		g.Assignor, changed, groupChanged = *hb.Assignor, true, true
	}
	// The member has given back what it was revoking once a heartbeat of
	// its current epoch (one sent after it learned of the revocation) no
	// longer lists any of it.
	if len(m.Revoking) > 0 && hb.MemberEpoch == m.Epoch && !slices.ContainsFunc(m.Revoking, func(tp TopicPartition) bool {
		return containsTP(hb.Owned, tp)
	}) {
		m.Revoking = nil
		changed = true
	}
	if groupChanged {
		g.bumpEpoch(meta)
	}
	if g.reconcile(m) {
		changed = true
	}
	return HeartbeatResult{MemberID: m.ID, MemberEpoch: m.Epoch, Assignment: slices.Clone(m.Assigned),
		SessionTimeoutMs: m.SessionTimeoutMs}, changed, nil
}

// join adds a member, or, for a static member whose instance id is already
// in the group, hands the old member's partitions to the new one and fences
// the old member id.
func (g *Group) join(hb *Heartbeat) (m *Member, changed, groupChanged bool) {
	if m := g.Members[hb.MemberID]; m != nil {
		return m, false, false // the join's answer was lost and the member asks again
	}
	m = &Member{ID: hb.MemberID, InstanceID: hb.InstanceID, ClientID: hb.ClientID, ClientHost: hb.ClientHost,
		SessionTimeoutMs: hb.SessionTimeoutMs, Epoch: 1}
	if hb.InstanceID != "" {
		for _, old := range g.SortedMembers() {
			if old.InstanceID != hb.InstanceID {
				continue
			}
			m.Epoch = old.Epoch + 1
			m.Topics, m.Regex = old.Topics, old.Regex
			m.Assigned, m.Revoking = old.Assigned, old.Revoking
			delete(g.Members, old.ID)
			g.Target[m.ID] = g.Target[old.ID]
			delete(g.Target, old.ID)
			g.Members[m.ID] = m
			// Same subscriptions, same partitions: no rebalance, unless the
			// heartbeat changes the subscription.
			return m, true, false
		}
	}
	g.Members[m.ID] = m
	return m, true, true
}

// removeMember drops m; its partitions are free for the others at once.
func (g *Group) removeMember(m *Member, meta *Metadata) {
	delete(g.Members, m.ID)
	delete(g.Target, m.ID)
	g.bumpEpoch(meta)
}

// bumpEpoch starts a new group epoch and computes its target assignment.
func (g *Group) bumpEpoch(meta *Metadata) {
	g.Epoch++
	g.Target = g.computeTarget(meta)
}

// computeTarget runs the group's assignor over the members and the topics
// they subscribe to as they exist in meta.
func (g *Group) computeTarget(meta *Metadata) Assignment {
	assignor, ok := LookupAssignor(g.Assignor)
	if !ok {
		assignor, _ = LookupAssignor(DefaultAssignor)
	}
	in := AssignInput{Partitions: map[string]int32{}}
	names := slices.Sorted(maps.Keys(meta.Topics))
	for _, m := range g.SortedMembers() {
		topics := subscribedTopics(m, meta, names)
		for _, t := range topics {
			in.Partitions[t] = int32(len(meta.Topics[t].Replicas))
		}
		in.Members = append(in.Members, AssignMember{ID: m.ID, Topics: topics, Owned: m.Assigned})
	}
	if len(in.Members) == 0 {
		return Assignment{}
	}
	return assignor.Assign(in)
}

// subscribedTopics lists the existing topics m subscribes to, by name or
// pattern, sorted.
func subscribedTopics(m *Member, meta *Metadata, names []string) []string {
	var out []string
	re, _ := compileSubscription(m.Regex) // checked when it was set
	for _, name := range names {
		if slices.Contains(m.Topics, name) || (re != nil && re.MatchString(name)) {
			out = append(out, name)
		}
	}
	return out
}

// compileSubscription compiles a subscription pattern, anchored to match
// whole topic names; "" is no pattern (nil).
func compileSubscription(pattern string) (*regexp.Regexp, error) {
	if pattern == "" {
		return nil, nil
	}
	re, err := regexp.Compile("^(?:" + pattern + ")$")
	if err != nil {
		return nil, fmt.Errorf("%w: subscription pattern: %v", ErrInvalidGroupRequest, err)
	}
	return re, nil
}

// reconcile moves m one step towards its target: first it revokes what the
// target no longer gives it (the member gives those back before it gets
// anything new), then it hands over the target partitions nobody else
// holds. Partitions another member still holds come on a later heartbeat.
// It reports whether m changed.
func (g *Group) reconcile(m *Member) bool {
	if len(m.Revoking) > 0 {
		return false
	}
	target := g.Target[m.ID]
	var keep, revoke []TopicPartition
	for _, tp := range m.Assigned {
		if containsTP(target, tp) {
			keep = append(keep, tp)
		} else {
			revoke = append(revoke, tp)
		}
	}
	if len(revoke) > 0 {
		m.Assigned, m.Revoking = keep, revoke
		m.Epoch++
		return true
	}
	var add []TopicPartition
	for _, tp := range target {
		if containsTP(m.Assigned, tp) {
			continue
		}
		if owner := g.Owner(tp); owner == nil {
			add = append(add, tp)
		}
	}
	if len(add) == 0 {
		return false
	}
	// A new slice, never an append into the old one's spare capacity.
	m.Assigned = slices.SortedFunc(slices.Values(slices.Concat(m.Assigned, add)), TopicPartition.Compare)
	m.Epoch++
	return true
}

// topicsChanged follows a change of the topics: partitions of deleted
// topics leave assignments and offsets, and a group whose subscriptions now
// resolve to other partitions gets a new epoch and target.
func (g *Group) topicsChanged(meta *Metadata) {
	exists := func(tp TopicPartition) bool {
		t := meta.Topics[tp.Topic]
		return t != nil && int(tp.Partition) < len(t.Replicas)
	}
	for _, topic := range slices.Sorted(maps.Keys(g.Offsets)) {
		if meta.Topics[topic] == nil {
			delete(g.Offsets, topic)
		}
	}
	for _, m := range g.SortedMembers() {
		m.Assigned = slices.DeleteFunc(m.Assigned, func(tp TopicPartition) bool { return !exists(tp) })
		m.Revoking = slices.DeleteFunc(m.Revoking, func(tp TopicPartition) bool { return !exists(tp) })
	}
	if len(g.Members) == 0 {
		return
	}
	if target := g.computeTarget(meta); !assignmentEqual(target, g.Target) {
		g.Epoch++
		g.Target = target
	}
}

// commit checks and records one committed offset. A member commits only
// partitions it owns; a commit without a member (memberID "" and epoch
// -1, as tools reset offsets) only into an empty group.
func (g *Group) commit(c *OffsetCommit, meta *Metadata, nowMs int64) error {
	t := meta.Topics[c.Topic]
	if t == nil || c.Partition < 0 || int(c.Partition) >= len(t.Replicas) {
		return fmt.Errorf("%w: %s/%d", ErrUnknownTopic, c.Topic, c.Partition)
	}
	if c.Offset < 0 {
		return fmt.Errorf("%w: offset %d", ErrInvalidGroupRequest, c.Offset)
	}
	if err := g.checkOwner(c.MemberID, c.MemberEpoch, TopicPartition{Topic: c.Topic, Partition: c.Partition}); err != nil {
		return err
	}
	offsets := g.Offsets[c.Topic]
	if offsets == nil {
		offsets = map[int32]CommittedOffset{}
		g.Offsets[c.Topic] = offsets
	}
	offsets[c.Partition] = CommittedOffset{Offset: c.Offset, Metadata: c.Metadata, CommitTime: nowMs}
	return nil
}

// checkOwner checks that memberID at memberEpoch owns tp; memberID "" with
// epoch -1 stands for a tool and passes only while the group is empty.
func (g *Group) checkOwner(memberID string, epoch int32, tp TopicPartition) error {
	if memberID == "" && epoch == -1 {
		if len(g.Members) > 0 {
			return fmt.Errorf("%w: group %q has %d members", ErrNonEmptyGroup, g.ID, len(g.Members))
		}
		return nil
	}
	m := g.Members[memberID]
	switch {
	case m == nil:
		return fmt.Errorf("%w: %q in group %q", ErrUnknownMember, memberID, g.ID)
	case epoch > m.Epoch:
		return fmt.Errorf("%w: member %q sent epoch %d, its epoch is %d", ErrFencedMember, memberID, epoch, m.Epoch)
	case !m.Owns(tp):
		return fmt.Errorf("%w: member %q does not own %s/%d", ErrFencedMember, memberID, tp.Topic, tp.Partition)
	}
	return nil
}

// OffsetCommit is one partition's offset to commit.
type OffsetCommit struct {
	MemberID    string `json:"member_id,omitempty"`
	MemberEpoch int32  `json:"member_epoch"`
	Topic       string `json:"topic"`
	Partition   int32  `json:"partition"`
	Offset      int64  `json:"offset"`
	Metadata    string `json:"metadata,omitempty"`
}

// ownsAll reports whether m holds every partition in tps.
func (m *Member) ownsAll(tps []TopicPartition) bool {
	for _, tp := range tps {
		if !m.Owns(tp) {
			return false
		}
	}
	return true
}

func containsTP(tps []TopicPartition, tp TopicPartition) bool {
	_, found := slices.BinarySearchFunc(tps, tp, TopicPartition.Compare)
	return found
}

func assignmentEqual(a, b Assignment) bool {
	return maps.EqualFunc(a, b, func(x, y []TopicPartition) bool { return slices.Equal(x, y) })
}

// normalizeTPs sorts tps and drops duplicates, in a copy.
func normalizeTPs(tps []TopicPartition) []TopicPartition {
	if tps == nil {
		return nil
	}
	return slices.CompactFunc(slices.SortedFunc(slices.Values(tps), TopicPartition.Compare),
		func(a, b TopicPartition) bool { return a == b })
}
