package client

import (
	"context"
	"fmt"
	"regexp"
	"time"
)

// GroupOpt is an option only a GroupConsumer takes. A GroupConsumer also
// takes the options of every role (SeedBrokers, ClientID, ...) and the
// ConsumerOpts (MaxPrefetchBytes, FetchMaxWait, ResetOffset, ...).
type GroupOpt interface {
	Opt
	groupOpt()
}

type groupOpt struct{ fn func(*config) }

func (o groupOpt) apply(c *config) { o.fn(c) }
func (groupOpt) groupOpt()         {}

// groupConfig holds the settings of a GroupConsumer.
type groupConfig struct {
	topics             []string
	regex              string
	instanceID         string
	assignor           string
	sessionTimeout     time.Duration
	autoCommitInterval time.Duration
	onAssigned         func(context.Context, []TopicPartition)
	onRevoked          func(context.Context, []TopicPartition)
	onLost             func(context.Context, []TopicPartition)
}

// Group defaults.
const (
	defaultSessionTimeout     = 10 * time.Second
	defaultAutoCommitInterval = 5 * time.Second
)

func defaultGroupConfig() groupConfig {
	return groupConfig{
		sessionTimeout:     defaultSessionTimeout,
		autoCommitInterval: defaultAutoCommitInterval,
	}
}

// validate checks the group settings, whatever the role (they are the
// defaults unless a GroupOpt was given, and only a GroupConsumer takes
// those). That a subscription is given is checked by NewGroupConsumer.
func (g *groupConfig) validate() []error {
	var errs []error
	if g.sessionTimeout <= 0 || g.sessionTimeout.Milliseconds() > 1<<31-1 {
		errs = append(errs, fmt.Errorf("weir/client: SessionTimeout must be positive and fit in an int32 of ms, is %v", g.sessionTimeout))
	}
	if g.autoCommitInterval < 0 {
		errs = append(errs, fmt.Errorf("weir/client: AutoCommitInterval must not be negative, is %v", g.autoCommitInterval))
	}
	if g.regex != "" {
		if _, err := regexp.Compile(g.regex); err != nil {
			errs = append(errs, fmt.Errorf("weir/client: SubscribeRegex: %w", err))
		}
	}
	return errs
}

// Subscribe adds topics to the group consumer's subscription. Repeatable;
// it can be combined with SubscribeRegex.
func Subscribe(topics ...string) GroupOpt {
	return groupOpt{func(c *config) { c.group.topics = append(c.group.topics, topics...) }}
}

// SubscribeRegex subscribes to every topic whose whole name matches pattern
// (RE2 syntax, as package regexp), including topics created later: the
// coordinator matches it, and assigns the new topics' partitions as they
// appear.
func SubscribeRegex(pattern string) GroupOpt {
	return groupOpt{func(c *config) { c.group.regex = pattern }}
}

// InstanceID makes the member static: a member that joins with the
// instance id of a current member takes over its partitions (and fences
// the old one) without a rebalance, so a process that restarts within the
// session timeout gets its partitions back at once. Each running member
// needs its own id. NB: for that, Close does not leave the group for a
// static member: its partitions wait for it until its session times out.
func InstanceID(id string) GroupOpt {
	return groupOpt{func(c *config) { c.group.instanceID = id }}
}

// GroupAssignor names the coordinator's assignor: "uniform" (balanced and
// sticky) or "range". A member that names one when it joins switches the
// group to it; by default a member names none, and the group keeps its
// assignor (the broker's default, "uniform", for a new group). An unknown
// name fails Poll with protocol.ErrUnsupportedAssignor.
func GroupAssignor(name string) GroupOpt {
	return groupOpt{func(c *config) { c.group.assignor = name }}
}

// SessionTimeout sets how long the coordinator waits for a heartbeat
// before it removes the member and gives its partitions to others (the
// broker clamps it to its bounds). Default 10s.
func SessionTimeout(d time.Duration) GroupOpt {
	return groupOpt{func(c *config) { c.group.sessionTimeout = d }}
}

// AutoCommitInterval sets how often the group consumer commits, in the
// background, the records the application has finished: those of every
// Poll but the latest (see GroupConsumer). 0 turns auto-commit off: then
// only Commit, CommitAsync, revocations and Close commit. Default 5s.
func AutoCommitInterval(d time.Duration) GroupOpt {
	return groupOpt{func(c *config) { c.group.autoCommitInterval = d }}
}

// OnAssigned sets a function called with the partitions the group gives
// the member, before Poll returns any of their records. It runs in the
// goroutine that calls Poll; ctx is Poll's.
func OnAssigned(fn func(ctx context.Context, tps []TopicPartition)) GroupOpt {
	return groupOpt{func(c *config) { c.group.onAssigned = fn }}
}

// OnRevoked sets a function called with the partitions the member gives
// up: partitions revoked by a rebalance, after their final commit; at
// Close, every partition, after the final commit; and, unless OnLost is
// set, partitions lost. It runs in the goroutine that calls Poll (or
// Close); ctx is Poll's.
func OnRevoked(fn func(ctx context.Context, tps []TopicPartition)) GroupOpt {
	return groupOpt{func(c *config) { c.group.onRevoked = fn }}
}

// OnLost sets a function called with partitions the member lost: its
// session expired, or the group fenced it (a heartbeat, a commit or a
// fetch answered UnknownMemberID or FencedMemberEpoch). They were not
// committed (another member may own them already), and the records of
// them processed since the last commit will be delivered again, to their
// new owner. Default: OnRevoked's function. It runs in the goroutine that
// calls Poll.
func OnLost(fn func(ctx context.Context, tps []TopicPartition)) GroupOpt {
	return groupOpt{func(c *config) { c.group.onLost = fn }}
}
