package client

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"weir/protocol"
)

// GroupListing is a consumer group as ListGroups returns it.
type GroupListing struct {
	ID string
	// State is "Empty" (no members), "Reconciling" (members are taking or
	// giving back partitions) or "Stable".
	State   string
	Members int
}

// GroupDescription is what DescribeGroup returns.
type GroupDescription struct {
	ID       string
	State    string // see GroupListing
	Assignor string // the group's server-side assignor
	// Epoch is the group epoch: it increases at every change of
	// membership, subscriptions or subscribed topics.
	Epoch   int32
	Members []GroupMember // sorted by id
	// Offsets has every partition the group has committed or is assigned,
	// sorted by topic and partition.
	Offsets []GroupOffset
}

// GroupMember is a member of a group.
type GroupMember struct {
	ID         string
	InstanceID string // "" for a dynamic member
	ClientID   string // the client id of its last heartbeat
	ClientHost string // the address its last heartbeat came from
	Regex      string // its topic pattern, "" for none
	Epoch      int32
	Topics     []string // the topics it names
	// Assignment is the partitions it owns now (including any it is giving
	// back), sorted.
	Assignment []TopicPartition
}

// GroupOffset is a group's progress on one partition.
type GroupOffset struct {
	Topic     string
	Partition int32
	// Committed is the committed offset (the next record to process), -1
	// if none.
	Committed int64
	// HighWatermark is the partition's, -1 if the controller does not know
	// it.
	HighWatermark int64
	// Lag is HighWatermark minus Committed (the whole log when nothing is
	// committed), -1 if unknown.
	Lag      int64
	MemberID string // the member that owns the partition, "" if none
}

// controllerOp sends req to the controller and hands the response to
// check, retrying as Admin does: on connection errors and retriable error
// codes, NotController after a new look at who the controller is.
func (a *Admin) controllerOp(ctx context.Context, req protocol.Request, check func(protocol.Response) error) error {
	return a.retry(ctx, func() error {
		resp, err := a.cl.controllerRequest(ctx, req)
		if err != nil {
			return err
		}
		err = check(resp)
		if errors.Is(err, protocol.ErrNotController) {
			a.cl.forgetController()
		}
		return err
	})
}

// ListGroups returns the consumer groups the controller knows (those with
// members or committed offsets), sorted by id.
func (a *Admin) ListGroups(ctx context.Context) ([]GroupListing, error) {
	var out []GroupListing
	err := a.controllerOp(ctx, &protocol.ListGroupsRequest{}, func(resp protocol.Response) error {
		r := resp.(*protocol.ListGroupsResponse)
		if err := protocol.ErrorForCode(r.ErrorCode, ""); err != nil {
			return err
		}
		out = out[:0]
		for _, g := range r.Groups {
			out = append(out, GroupListing{ID: g.GroupID, State: g.State, Members: int(g.Members)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("weir/client: list groups: %w", err)
	}
	slices.SortFunc(out, func(x, y GroupListing) int { return compareStrings(x.ID, y.ID) })
	return out, nil
}

func compareStrings(x, y string) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// DescribeGroup returns a group's members, their assignments, and its
// committed offsets with the lag of each partition. An unknown group
// fails with protocol.ErrGroupIDNotFound.
func (a *Admin) DescribeGroup(ctx context.Context, group string) (*GroupDescription, error) {
	var d *GroupDescription
	req := &protocol.DescribeGroupsRequest{GroupIDs: []string{group}}
	err := a.controllerOp(ctx, req, func(resp protocol.Response) error {
		r := resp.(*protocol.DescribeGroupsResponse)
		if len(r.Groups) != 1 {
			return fmt.Errorf("%w: DescribeGroups answered %d groups for 1", ErrProtocol, len(r.Groups))
		}
		g := &r.Groups[0]
		if err := groupError(g.ErrorCode); err != nil {
			return err
		}
		d = describedGroup(g)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("weir/client: describe group %q: %w", group, unwrapNonRetriable(err))
	}
	var tps []topicPartition
	for _, o := range d.Offsets {
		tps = append(tps, topicPartition{o.Topic, o.Partition})
	}
	offsets := a.leaderOffsets(ctx, tps)
	for i, o := range d.Offsets {
		if lo, ok := offsets[topicPartition{o.Topic, o.Partition}]; ok {
			d.Offsets[i].HighWatermark = lo.highWatermark
			d.Offsets[i].Lag = max(lo.highWatermark-max(o.Committed, lo.logStart), 0)
		}
	}
	return d, nil
}

// groupError turns a group's error code into an error; the codes about
// the group itself are not retried.
func groupError(code protocol.ErrorCode) error {
	err := protocol.ErrorForCode(code, "")
	switch code {
	case protocol.CodeGroupIDNotFound, protocol.CodeNonEmptyGroup, protocol.CodeInvalidGroupID:
		return nonRetriable{err}
	}
	return err
}

// describedGroup converts a DescribeGroups result.
func describedGroup(g *protocol.DescribeGroupsResponseGroup) *GroupDescription {
	d := &GroupDescription{ID: g.GroupID, State: g.State, Assignor: g.Assignor, Epoch: g.GroupEpoch}
	for _, m := range g.Members {
		gm := GroupMember{ID: m.MemberID, ClientID: m.ClientID, ClientHost: m.ClientHost,
			Regex: m.SubscribedTopicRegex, Epoch: m.MemberEpoch, Topics: m.SubscribedTopicNames}
		if m.InstanceID != nil {
			gm.InstanceID = *m.InstanceID
		}
		for _, t := range m.Assignment {
			for _, p := range t.Partitions {
				gm.Assignment = append(gm.Assignment, TopicPartition{t.Topic, p})
			}
		}
		slices.SortFunc(gm.Assignment, func(x, y TopicPartition) int { return compareTP(x.internal(), y.internal()) })
		d.Members = append(d.Members, gm)
	}
	slices.SortFunc(d.Members, func(x, y GroupMember) int { return compareStrings(x.ID, y.ID) })
	for _, t := range g.Offsets {
		for _, p := range t.Partitions {
			d.Offsets = append(d.Offsets, GroupOffset{Topic: t.Topic, Partition: p.Partition, Committed: p.CommittedOffset,
				HighWatermark: p.HighWatermark, Lag: p.Lag, MemberID: p.MemberID})
		}
	}
	slices.SortFunc(d.Offsets, func(x, y GroupOffset) int {
		return compareTP(topicPartition{x.Topic, x.Partition}, topicPartition{y.Topic, y.Partition})
	})
	return d
}

// DeleteGroup deletes an empty group and its committed offsets. It fails
// with protocol.ErrNonEmptyGroup while the group has members, and
// protocol.ErrGroupIDNotFound for an unknown group.
func (a *Admin) DeleteGroup(ctx context.Context, group string) error {
	req := &protocol.DeleteGroupsRequest{GroupIDs: []string{group}}
	err := a.controllerOp(ctx, req, func(resp protocol.Response) error {
		r := resp.(*protocol.DeleteGroupsResponse)
		if len(r.Results) != 1 {
			return fmt.Errorf("%w: DeleteGroups answered %d groups for 1", ErrProtocol, len(r.Results))
		}
		return groupError(r.Results[0].ErrorCode)
	})
	if err != nil {
		return fmt.Errorf("weir/client: delete group %q: %w", group, unwrapNonRetriable(err))
	}
	return nil
}

// GroupOffsets returns the group's committed offsets: the offset of the
// next record to process, for every partition it has committed. An unknown
// group has none.
func (a *Admin) GroupOffsets(ctx context.Context, group string) (map[TopicPartition]int64, error) {
	out := map[TopicPartition]int64{}
	req := &protocol.OffsetFetchRequest{GroupID: group, Topics: nil} // nil: every partition
	err := a.controllerOp(ctx, req, func(resp protocol.Response) error {
		offsets, err := offsetFetchResult(resp.(*protocol.OffsetFetchResponse))
		if err != nil {
			return err
		}
		clear(out)
		for tp, off := range offsets {
			if off >= 0 {
				out[tp.public()] = off
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("weir/client: offsets of group %q: %w", group, err)
	}
	return out, nil
}

// CommitGroupOffsets sets a group's committed offsets, as a tool (no
// member). The group must be empty: while it has members, it fails with
// protocol.ErrNonEmptyGroup (the members own their partitions' offsets).
// A group that does not exist yet is created with these offsets.
func (a *Admin) CommitGroupOffsets(ctx context.Context, group string, offsets map[TopicPartition]int64) error {
	req := &protocol.OffsetCommitRequest{GroupID: group, MemberID: "", MemberEpoch: -1}
	tps := make([]topicPartition, 0, len(offsets))
	for tp := range offsets {
		tps = append(tps, tp.internal())
	}
	slices.SortFunc(tps, compareTP)
	for _, tp := range tps {
		addOffsetCommit(req, tp, offsets[tp.public()])
	}
	err := a.controllerOp(ctx, req, func(resp protocol.Response) error {
		r := resp.(*protocol.OffsetCommitResponse)
		var errs []error
		for _, t := range r.Topics {
			for _, p := range t.Partitions {
				if err := groupError(p.ErrorCode); err != nil {
					errs = append(errs, err)
				}
			}
		}
		if len(errs) > 0 {
			// One code for all, usually (NonEmptyGroup, NotController): the
			// first says what to do.
			return errs[0]
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("weir/client: commit offsets of group %q: %w", group, unwrapNonRetriable(err))
	}
	return nil
}

// ResetGroupOffsets sets the committed offset of every partition of topic
// in an empty group to spec (Earliest, Latest or Timestamp(t)), looked up
// with ListOffsets, and returns the offsets by partition. It fails with
// protocol.ErrNonEmptyGroup while the group has members.
func (a *Admin) ResetGroupOffsets(ctx context.Context, group, topic string, spec OffsetSpec) (map[int32]int64, error) {
	t, err := a.cl.metadataTopic(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("weir/client: reset offsets of group %q: %w", group, err)
	}
	byPartition := map[int32]int64{}
	offsets := map[TopicPartition]int64{}
	for _, p := range t.Partitions {
		off, err := listOffset(ctx, a.cl, topic, p.Partition, spec)
		if err != nil {
			return nil, fmt.Errorf("weir/client: reset offsets of group %q: %w", group, err)
		}
		byPartition[p.Partition] = off
		offsets[TopicPartition{topic, p.Partition}] = off
	}
	if err := a.CommitGroupOffsets(ctx, group, offsets); err != nil {
		return nil, err
	}
	return byPartition, nil
}
