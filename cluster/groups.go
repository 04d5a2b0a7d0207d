package cluster

import (
	"fmt"
	"maps"
	"slices"
	"sync"
)

// groupTable holds every consumer group. Unlike Metadata it is changed in
// place (copying every committed offset at each commit would not scale);
// the metadata state machine writes it under mu, readers take mu.RLock.
type groupTable struct {
	mu     sync.RWMutex
	groups map[string]*Group
}

// group returns the group id, creating it when create is set. Callers hold
// mu for writing.
func (t *groupTable) group(id string, create bool) *Group {
	g := t.groups[id]
	if g == nil && create {
		g = newGroup(id)
		t.groups[id] = g
	}
	return g
}

// Metadata commands of the consumer group coordinator.
const (
	opGroupHeartbeat = "group_heartbeat"
	opGroupExpire    = "group_expire"
	opGroupCommit    = "group_commit"
	opGroupDelete    = "group_delete"
)

// groupCommits are the offsets one group commits in an opGroupCommit
// command, which carries many groups' commits at once.
type groupCommits struct {
	Group   string         `json:"group"`
	Commits []OffsetCommit `json:"commits"`
}

func isGroupOp(op string) bool {
	switch op {
	case opGroupHeartbeat, opGroupExpire, opGroupCommit, opGroupDelete:
		return true
	}
	return false
}

// applyGroup applies a group command and returns its result: for a
// heartbeat a HeartbeatResult or an error; for a commit a [][]error (one per
// offset of each group, nil for success); else nil or an error.
func (c *Controller) applyGroup(cmd *command) any {
	meta := c.meta.Load()
	t := &c.groups
	t.mu.Lock()
	defer t.mu.Unlock()
	switch cmd.Op {
	case opGroupHeartbeat:
		if cmd.Heartbeat == nil {
			return fmt.Errorf("%w: heartbeat without body", ErrInvalidGroupRequest)
		}
		g := t.group(cmd.GroupID, cmd.Heartbeat.MemberEpoch == 0)
		if g == nil {
			return fmt.Errorf("%w: %q in group %q", ErrUnknownMember, cmd.Heartbeat.MemberID, cmd.GroupID)
		}
		res, _, err := g.heartbeat(cmd.Heartbeat, meta)
		if err != nil {
			return err
		}
		return res
	case opGroupExpire:
		if g := t.group(cmd.GroupID, false); g != nil {
			if m := g.Members[cmd.MemberID]; m != nil {
				g.removeMember(m, meta)
			}
		}
		return nil
	case opGroupCommit:
		results := make([][]error, len(cmd.Commits))
		for i, gc := range cmd.Commits {
			g := t.group(gc.Group, false)
			if g == nil {
				g = newGroup(gc.Group) // kept only if a commit lands in it
			}
			results[i] = make([]error, len(gc.Commits))
			for j := range gc.Commits {
				if results[i][j] = g.commit(&gc.Commits[j], meta, cmd.NowMs); results[i][j] == nil {
					t.groups[gc.Group] = g
				}
			}
		}
		return results
	case opGroupDelete:
		g := t.group(cmd.GroupID, false)
		switch {
		case g == nil:
			return fmt.Errorf("%w: %q", ErrGroupNotFound, cmd.GroupID)
		case len(g.Members) > 0:
			return fmt.Errorf("%w: group %q has %d members", ErrNonEmptyGroup, cmd.GroupID, len(g.Members))
		}
		delete(t.groups, cmd.GroupID)
		return nil
	}
	return fmt.Errorf("weir/cluster: unknown group command %q", cmd.Op)
}

// topicsChanged tells every group that the topics changed.
func (c *Controller) topicsChanged(meta *Metadata) {
	t := &c.groups
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, id := range slices.Sorted(maps.Keys(t.groups)) {
		t.groups[id].topicsChanged(meta)
	}
}

// Group returns a copy of group id, or nil if the group does not exist.
func (c *Controller) Group(id string) *Group { return c.copyGroup(id, true) }

// membership returns a copy of group id without its offsets (what a
// heartbeat works on), or nil if the group does not exist.
func (c *Controller) membership(id string) *Group { return c.copyGroup(id, false) }

func (c *Controller) copyGroup(id string, offsets bool) *Group {
	t := &c.groups
	t.mu.RLock()
	defer t.mu.RUnlock()
	g := t.groups[id]
	if g == nil {
		return nil
	}
	cp := g.clone()
	cp.Offsets = nil
	if offsets {
		cp.Offsets = make(map[string]map[int32]CommittedOffset, len(g.Offsets))
		for topic, offs := range g.Offsets {
			cp.Offsets[topic] = maps.Clone(offs)
		}
	}
	return cp
}

// memberSession is what the expiry of members looks at.
type memberSession struct {
	key       memberKey
	sessionMs int32
	revoking  bool
}

// memberSessions lists every member of every group.
func (c *Controller) memberSessions() []memberSession {
	t := &c.groups
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []memberSession
	for id, g := range t.groups {
		for _, m := range g.Members {
			out = append(out, memberSession{memberKey{id, m.ID}, m.SessionTimeoutMs, len(m.Revoking) > 0})
		}
	}
	return out
}

// GroupIDs lists the groups, sorted.
func (c *Controller) GroupIDs() []string {
	t := &c.groups
	t.mu.RLock()
	defer t.mu.RUnlock()
	return slices.Sorted(maps.Keys(t.groups))
}

// CheckMember reports whether member memberID of group at epoch owns tp:
// nil, or an error wrapping ErrUnknownMember or ErrFencedMember. Any node
// can answer (every node applies the group state), so partition leaders
// fence the fetches of zombie members. A node that is not the controller
// may lag it: a member it does not know yet, or whose epoch is ahead of
// what it has applied, passes, and only what it knows to be stale fails.
func (c *Controller) CheckMember(group, memberID string, epoch int32, tp TopicPartition) error {
	authoritative := c.IsLeader()
	t := &c.groups
	t.mu.RLock()
	defer t.mu.RUnlock()
	var m *Member
	g := t.groups[group]
	if g != nil {
		m = g.Members[memberID]
	}
	switch {
	case memberID == "":
		return fmt.Errorf("%w: no member id", ErrUnknownMember)
	case m == nil && !authoritative, m != nil && epoch > m.Epoch && !authoritative:
		return nil
	case g == nil:
		return fmt.Errorf("%w: %q in group %q", ErrUnknownMember, memberID, group)
	}
	return g.checkOwner(memberID, epoch, tp)
}

// snapshotState is the metadata group's snapshot: the metadata's fields
// and the groups.
type snapshotState struct {
	*Metadata
	Groups map[string]*Group `json:"groups,omitempty"`
}
