package test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"weir/protocol"
)

// End-to-end tests of consumer groups: real `weir serve` and `weir consume
// --group` processes, killed, stopped and resumed by pid.

// TestGroupFanOut: two groups on one topic each get every record exactly
// once, and commit all of it when they exit.
func TestGroupFanOut(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := startServer(t, t.TempDir())
	s.weir(ctx, "", "topic", "create", "fan", "--partitions", "6")
	const n = 3000
	want := produceKeyed(ctx, s, "fan", "r", 0, n)
	a := s.startGroupConsumer(t, "group ga", "fan", "ga", "-n", fmt.Sprint(n))
	b := s.startGroupConsumer(t, "group gb", "fan", "gb", "-n", fmt.Sprint(n))
	a.waitExit(30 * time.Second)
	b.waitExit(30 * time.Second)
	for _, c := range []*groupConsumer{a, b} {
		recs := c.records()
		checkOrder(t, c.name, recs)
		counts := checkCoverage(t, want, map[string][]rec{c.name: recs})
		for v, k := range counts {
			if k != 1 {
				t.Fatalf("%s printed %q %d times", c.name, v, k)
			}
		}
		if ps := partitionsOf(recs); len(ps) != 6 {
			t.Fatalf("%s printed records of partitions %v; the keys should spread over all 6", c.name, ps)
		}
	}
	var total int64
	for _, g := range []string{"ga", "gb"} {
		d := s.describeGroup(ctx, g)
		if len(d.Members) != 0 || !d.caughtUp("fan", 6) {
			t.Fatalf("group %s after its member exited: want no members and every partition committed to its end: %s", g, d)
		}
		total = 0
		for _, p := range d.Partitions {
			total += p.HighWatermark
		}
		if total != n {
			t.Fatalf("group %s: high watermarks add up to %d, want %d: %s", g, total, n, d)
		}
	}
	// The commit on exit holds: another member of ga finds nothing left.
	out := s.weir(ctx, "", "consume", "fan", "--group", "ga", "--from", "earliest", "--format", consumeFormat,
		"--session-timeout", groupSession.String(), "--idle-exit", "2s")
	if out != "" {
		t.Fatalf("a second run of group ga printed records already committed:\n%.500s", out)
	}
}

// TestGroupLoadBalancing: three members of a group on a 6-partition topic
// get 2 partitions each; together they print every record once, and each
// partition's records come from one process in offset order.
func TestGroupLoadBalancing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := startServer(t, t.TempDir())
	s.weir(ctx, "", "topic", "create", "lb", "--partitions", "6")
	var cs []*groupConsumer
	for i := range 3 {
		cs = append(cs, s.startGroupConsumer(t, fmt.Sprintf("member %d", i), "lb", "g1"))
	}
	d, took := s.waitGroup(ctx, 20*time.Second, "g1", "3 members owning 2 partitions each",
		func(d groupDesc) bool { return d.balanced("lb", 3, 2) })
	t.Logf("balanced after %v: %v", took, d.assignment("lb"))
	const n = 3000
	want := produceKeyed(ctx, s, "lb", "r", 0, n)
	waitUntil(t, 20*time.Second, "every record printed", func() (bool, string) {
		total := 0
		for _, c := range cs {
			total += c.count()
		}
		return total >= n, fmt.Sprintf("%d of %d printed", total, n)
	})
	stopAll(cs...)

	outputs := map[string][]rec{}
	owner := map[int32]string{}
	for _, c := range cs {
		recs := c.records()
		outputs[c.name] = recs
		checkOrder(t, c.name, recs)
		for _, r := range recs {
			if o, ok := owner[r.p]; ok && o != c.name {
				t.Fatalf("partition %d printed by both %s and %s", r.p, o, c.name)
			}
			owner[r.p] = c.name
		}
		// What it printed is what the coordinator assigned to one member.
		ps := partitionsOf(recs)
		found := false
		for _, m := range d.Members {
			found = found || slices.Equal(m.owned("lb"), ps)
		}
		if !found {
			t.Fatalf("%s printed partitions %v, no member's assignment in %v", c.name, ps, d.assignment("lb"))
		}
	}
	for v, k := range checkCoverage(t, want, outputs) {
		if k != 1 {
			t.Fatalf("%q printed %d times", v, k)
		}
	}
	d = s.describeGroup(ctx, "g1")
	if len(d.Members) != 0 || !d.caughtUp("lb", 6) {
		t.Fatalf("after every member stopped: want no members and everything committed: %s", d)
	}
}

// TestGroupRedeliveryAfterKill: one of three members is killed with
// SIGKILL while records stream in. The other two take over its partitions
// within the session timeout and resume from its last commit: no record
// is lost, and the only records printed twice are ones the killed member
// printed (after its last commit).
func TestGroupRedeliveryAfterKill(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := startServer(t, t.TempDir())
	s.weir(ctx, "", "topic", "create", "rd", "--partitions", "6")
	var cs []*groupConsumer
	for i := range 3 {
		cs = append(cs, s.startGroupConsumer(t, fmt.Sprintf("member %d", i), "rd", "g3"))
	}
	before, _ := s.waitGroup(ctx, 20*time.Second, "g3", "3 members owning 2 partitions each",
		func(d groupDesc) bool { return d.balanced("rd", 3, 2) })

	// A steady stream: batches of 100 records, one every 100 ms, until the
	// takeover has been seen.
	var (
		mu       sync.Mutex
		produced []string
		prodErr  error
	)
	stopProducing := make(chan struct{})
	producing := make(chan struct{})
	go func() {
		defer close(producing)
		for i := 0; ; i++ {
			select {
			case <-stopProducing:
				return
			case <-time.After(100 * time.Millisecond):
			}
			in, vals := keyedLines("r", i*100, 100)
			if out, err := s.tryWeir(ctx, in, "produce", "rd", "--key-separator", ":"); err != nil {
				mu.Lock()
				prodErr = fmt.Errorf("produce: %v: %s", err, out)
				mu.Unlock()
				return
			}
			mu.Lock()
			produced = append(produced, vals...)
			mu.Unlock()
		}
	}()
	defer func() {
		select {
		case <-producing:
		default:
			close(stopProducing)
			<-producing
		}
	}()

	victim := cs[0]
	waitUntil(t, 20*time.Second, victim.name+" printing records", func() (bool, string) {
		return victim.count() >= 200, fmt.Sprintf("%d printed", victim.count())
	})
	victim.signal(syscall.SIGKILL)
	<-victim.done
	killedAt := time.Now()
	victimRecs := victim.records()
	t.Logf("killed %s after it printed %d records", victim.name, len(victimRecs))

	ids := map[string]bool{}
	for _, m := range before.Members {
		ids[m.MemberID] = true
	}
	after, _ := s.waitGroup(ctx, groupSession+takeoverSlack, "g3",
		"the two live members owning all 6 partitions after the kill", func(d groupDesc) bool {
			if len(d.Members) != 2 || !ids[d.Members[0].MemberID] || !ids[d.Members[1].MemberID] {
				return false
			}
			return len(d.Members[0].owned("rd")) == 3 && len(d.Members[1].owned("rd")) == 3 &&
				len(slices.Compact(slices.Sorted(slices.Values(append(d.Members[0].owned("rd"), d.Members[1].owned("rd")...))))) == 6
		})
	t.Logf("takeover %v after the kill (session timeout %v): %v -> %v", time.Since(killedAt).Round(time.Millisecond), groupSession, before.assignment("rd"), after.assignment("rd"))

	// Records produced after the takeover reach the new owners too.
	close(stopProducing)
	<-producing
	mu.Lock()
	if prodErr != nil {
		t.Fatal(prodErr)
	}
	want := append([]string(nil), produced...)
	mu.Unlock()
	want = append(want, produceKeyed(ctx, s, "rd", "r", len(want), 600)...)

	live := cs[1:]
	printedBy := func() map[string]bool {
		seen := map[string]bool{}
		for _, c := range cs {
			c.mu.Lock()
			for _, l := range c.lines {
				if _, v, ok := strings.Cut(l, " "); ok {
					if _, v, ok := strings.Cut(v, " "); ok {
						seen[v] = true
					}
				}
			}
			c.mu.Unlock()
		}
		return seen
	}
	waitUntil(t, 20*time.Second, "every record printed by some member", func() (bool, string) {
		seen := printedBy()
		missing := 0
		for _, v := range want {
			if !seen[v] {
				missing++
			}
		}
		return missing == 0, fmt.Sprintf("%d of %d not printed yet", missing, len(want))
	})
	stopAll(live...)

	outputs := map[string][]rec{victim.name: victimRecs}
	for _, c := range live {
		outputs[c.name] = c.records()
		checkOrder(t, c.name, outputs[c.name])
	}
	checkOrder(t, victim.name, victimRecs)
	counts := checkCoverage(t, want, outputs)
	byVictim := map[string]int{}
	for _, r := range victimRecs {
		byVictim[r.v]++
	}
	dups := 0
	for v, k := range counts {
		if k == 1 {
			continue
		}
		dups++
		if k != 2 || byVictim[v] != 1 {
			t.Fatalf("%q printed %d times, %d of them by the killed member: only records the killed member printed may come again, once", v, k, byVictim[v])
		}
	}
	t.Logf("%d records printed again after the kill (printed by the killed member after its last commit)", dups)
	if d := s.describeGroup(ctx, "g3"); len(d.Members) != 0 || !d.caughtUp("rd", 6) {
		t.Fatalf("after the live members stopped: want no members and everything committed: %s", d)
	}
}

// TestGroupZombieFencing: a member is frozen (SIGSTOP) past its session
// timeout; the other member takes its partitions and commits. When the
// zombie thaws (SIGCONT) its commits must be rejected: the group's
// committed offsets never go below what the live owner committed, the
// zombie reads nothing of what was produced while it was gone, and it
// rejoins (or exits cleanly). In the end every record is committed.
func TestGroupZombieFencing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	s := startServer(t, t.TempDir())
	const parts = 4
	s.weir(ctx, "", "topic", "create", "zt", "--partitions", fmt.Sprint(parts))
	zombie := s.startGroupConsumer(t, "zombie", "zt", "gz")
	alone, _ := s.waitGroup(ctx, 20*time.Second, "gz", "the first member owning all partitions",
		func(d groupDesc) bool { return d.balanced("zt", 1, parts) })
	zombieID := alone.Members[0].MemberID
	live := s.startGroupConsumer(t, "live", "zt", "gz")
	s.waitGroup(ctx, 20*time.Second, "gz", "2 members owning 2 partitions each",
		func(d groupDesc) bool { return d.balanced("zt", 2, parts/2) })

	// Freeze the zombie as soon as it prints some of the first batch,
	// likely before it commits them.
	want := produceKeyed(ctx, s, "zt", "b1", 0, 800)
	waitUntil(t, 20*time.Second, "the zombie printing the first batch", func() (bool, string) {
		return zombie.count() > 0, "nothing printed"
	})
	zombie.signal(syscall.SIGSTOP)
	stoppedAt := time.Now()
	zombieBefore := zombie.records()
	printedBefore := map[string]bool{}
	for _, r := range zombieBefore {
		printedBefore[r.v] = true
	}
	frozen := s.describeGroup(ctx, "gz")
	zombieEpoch := int32(-1)
	for _, m := range frozen.Members {
		if m.MemberID == zombieID {
			zombieEpoch = m.Epoch
		}
	}
	if zombieEpoch < 0 {
		t.Fatalf("the zombie %s is not a member when it freezes: %s", zombieID, frozen)
	}
	t.Logf("zombie stopped after printing %d records; committed then: %v", len(zombieBefore), frozen.committed("zt"))
	// What the zombie will send when it thaws, sent by hand with its member
	// id and epoch: a commit (of offset 0, which would move every partition
	// back) and a fetch. Before its session expires, its fetch of its own
	// partitions is served (the probe is right); after, the group turns
	// both away.
	commit := &protocol.OffsetCommitRequest{GroupID: "gz", MemberID: zombieID, MemberEpoch: zombieEpoch}
	fetch := &protocol.FetchRequest{Version: 1, MaxWaitMs: 0, MinBytes: 1, MaxBytes: 1 << 20,
		GroupID: new("gz"), MemberID: zombieID, MemberEpoch: zombieEpoch}
	commitTopic := protocol.OffsetCommitRequestTopic{Name: "zt"}
	fetchTopic := protocol.FetchRequestTopic{Name: "zt"}
	for p := range int32(parts) {
		commitTopic.Partitions = append(commitTopic.Partitions, protocol.OffsetCommitRequestPartition{Partition: p, CommittedOffset: 0})
		fetchTopic.Partitions = append(fetchTopic.Partitions, protocol.FetchRequestPartition{Partition: p, PartitionMaxBytes: 1 << 20})
	}
	commit.Topics = []protocol.OffsetCommitRequestTopic{commitTopic}
	fetch.Topics = []protocol.FetchRequestTopic{fetchTopic}
	var zombieOwns []int32
	for _, m := range frozen.Members {
		if m.MemberID == zombieID {
			zombieOwns = m.owned("zt")
		}
	}
	for _, tr := range rawRequest(t, s.addr, fetch).(*protocol.FetchResponse).Topics {
		for _, p := range tr.Partitions {
			if want := slices.Contains(zombieOwns, p.Partition); want != (p.ErrorCode == protocol.CodeNone) {
				t.Fatalf("a fetch as the frozen member %s (epoch %d, owning %v) before its session expired, partition %d: error %v",
					zombieID, zombieEpoch, zombieOwns, p.Partition, p.ErrorCode)
			}
		}
	}

	s.waitGroup(ctx, groupSession+takeoverSlack, "gz", "the live member alone, owning every partition",
		func(d groupDesc) bool { return d.balanced("zt", 1, parts) && d.Members[0].MemberID != zombieID })
	t.Logf("zombie's session expired and the live member took over %v after SIGSTOP", time.Since(stoppedAt).Round(time.Millisecond))

	for _, tr := range rawRequest(t, s.addr, commit).(*protocol.OffsetCommitResponse).Topics {
		for _, p := range tr.Partitions {
			if !fenced(p.ErrorCode) {
				t.Fatalf("a commit as the expired member %s (epoch %d), partition %d: error %v, want UnknownMemberID or FencedMemberEpoch",
					zombieID, zombieEpoch, p.Partition, p.ErrorCode)
			}
		}
	}
	for _, tr := range rawRequest(t, s.addr, fetch).(*protocol.FetchResponse).Topics {
		for _, p := range tr.Partitions {
			if !fenced(p.ErrorCode) {
				t.Fatalf("a fetch as the expired member %s (epoch %d), partition %d: error %v, want UnknownMemberID or FencedMemberEpoch",
					zombieID, zombieEpoch, p.Partition, p.ErrorCode)
			}
		}
	}

	second := produceKeyed(ctx, s, "zt", "b2", 800, 800)
	want = append(want, second...)
	allPrinted := func() (bool, string) {
		seen := map[string]bool{}
		for _, c := range []*groupConsumer{zombie, live} {
			for _, r := range c.records() {
				seen[r.v] = true
			}
		}
		missing := 0
		for _, v := range want {
			if !seen[v] {
				missing++
			}
		}
		return missing == 0, fmt.Sprintf("%d of %d not printed", missing, len(want))
	}
	waitUntil(t, 20*time.Second, "the live member printing both batches", allPrinted)
	floorDesc, _ := s.waitGroup(ctx, 20*time.Second, "gz", "every partition committed to its end by the live member",
		func(d groupDesc) bool { return d.caughtUp("zt", parts) })
	floor := floorDesc.committed("zt")

	// check fails the test if a committed offset is below the floor.
	check := func(d groupDesc) {
		t.Helper()
		for p, c := range d.committed("zt") {
			if c < floor[p] {
				t.Fatalf("partition %d: committed offset went back to %d, below the %d the live owner committed (a zombie's commit was accepted?): %s\nzombie: %s",
					p, c, floor[p], d, zombie.describe())
			}
		}
	}

	zombie.signal(syscall.SIGCONT)
	contAt := time.Now()
	// Watch the offsets while the zombie learns it is fenced and rejoins
	// (or exits): at least 3 heartbeat/commit intervals of it.
	var rejoined groupDesc
	waitUntil(t, 20*time.Second, "the zombie rejoining as a new member (or exiting)", func() (bool, string) {
		d, err := s.tryDescribeGroup(ctx, "gz")
		if err != nil {
			return false, err.Error()
		}
		check(d)
		settled := zombie.exited() || (d.balanced("zt", 2, parts/2) && d.caughtUp("zt", parts))
		if settled {
			rejoined = d
		}
		return settled && time.Since(contAt) > 3*time.Second, fmt.Sprintf("zombie exited: %v; %s", zombie.exited(), d)
	})
	if zombie.exited() {
		zombie.checkCleanExit()
		t.Logf("the zombie exited after SIGCONT: %s", zombie.describe())
	} else {
		for _, m := range rejoined.Members {
			if m.MemberID == zombieID {
				t.Fatalf("the expired member id %s is back in the group, not a new member: %s", zombieID, rejoined)
			}
		}
		t.Logf("the zombie rejoined: %v; its stderr:\n%s", rejoined.assignment("zt"), zombie.stderr)
	}
	// The zombie never reads what was produced and committed while it was
	// expired: its fetches are fenced, and when it rejoins it starts from
	// the live member's commits.
	inSecond := map[string]bool{}
	for _, v := range second {
		inSecond[v] = true
	}
	checkNoSecond := func() {
		t.Helper()
		for _, r := range zombie.records()[len(zombieBefore):] {
			if inSecond[r.v] {
				t.Fatalf("the zombie printed %v, produced and committed by the live member while it was expired", r)
			}
		}
	}
	checkNoSecond()

	third := produceKeyed(ctx, s, "zt", "b3", 1600, 800)
	want = append(want, third...)
	waitUntil(t, 20*time.Second, "every record printed", allPrinted)
	waitUntil(t, 20*time.Second, "every partition committed to its end", func() (bool, string) {
		d, err := s.tryDescribeGroup(ctx, "gz")
		if err != nil {
			return false, err.Error()
		}
		check(d)
		return d.caughtUp("zt", parts), d.String()
	})
	stopAll(zombie, live)
	checkNoSecond()

	outputs := map[string][]rec{zombie.name: zombie.records(), live.name: live.records()}
	checkOrder(t, live.name, outputs[live.name])
	counts := checkCoverage(t, want, outputs)
	byZombie := map[string]int{}
	for _, r := range outputs[zombie.name] {
		byZombie[r.v]++
	}
	dups, dupsBefore := 0, 0
	for v, k := range counts {
		if k == 1 {
			continue
		}
		// The zombie may print what it had fetched before it froze even
		// after it thaws, until it learns it is fenced: those records, and
		// only those, come again from their new owner.
		if k != 2 || byZombie[v] != 1 {
			t.Fatalf("%q printed %d times, %d of them by the zombie; only records the zombie printed may come twice", v, k, byZombie[v])
		}
		dups++
		if printedBefore[v] {
			dupsBefore++
		}
	}
	t.Logf("%d records printed twice (%d of them printed by the zombie before it froze)", dups, dupsBefore)
	d := s.describeGroup(ctx, "gz")
	check(d)
	if len(d.Members) != 0 || !d.caughtUp("zt", parts) {
		t.Fatalf("after both members stopped: want no members and every record committed: %s", d)
	}
	var total int64
	for _, p := range d.Partitions {
		total += p.Committed
	}
	if total != int64(len(want)) {
		t.Fatalf("committed offsets add up to %d, want the %d records produced: %s", total, len(want), d)
	}
}

// TestGroupResetReplayDelete: an empty group's offsets can be reset (to
// earliest, an offset, a time, latest) and it then reads from there; a
// reset or delete of a group with members fails; delete removes an empty
// group and its offsets.
func TestGroupResetReplayDelete(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := startServer(t, t.TempDir())
	s.weir(ctx, "", "topic", "create", "rp", "--partitions", "3")
	beforeProduce := time.Now().Add(-2 * time.Second)
	const n = 300
	want := produceKeyed(ctx, s, "rp", "r", 0, n)
	consumeAll := func(count int) []rec {
		t.Helper()
		c := s.startGroupConsumer(t, "member of g5", "rp", "g5", "-n", fmt.Sprint(count))
		c.waitExit(30 * time.Second)
		recs := c.records()
		checkOrder(t, c.name, recs)
		return recs
	}
	exactlyOnce := func(recs []rec) {
		t.Helper()
		for v, k := range checkCoverage(t, want, map[string][]rec{"g5": recs}) {
			if k != 1 {
				t.Fatalf("%q printed %d times", v, k)
			}
		}
	}
	exactlyOnce(consumeAll(n))
	d := s.describeGroup(ctx, "g5")
	if len(d.Members) != 0 || !d.caughtUp("rp", 3) {
		t.Fatalf("after the member exited: want no members and everything committed: %s", d)
	}
	hw := map[int32]int64{}
	for _, p := range d.Partitions {
		hw[p.Partition] = p.HighWatermark
	}

	resetTo := func(to string, want func(p int32) int64) {
		t.Helper()
		s.weir(ctx, "", "group", "reset", "g5", "--topic", "rp", "--to", to)
		d := s.describeGroup(ctx, "g5")
		got := d.committed("rp")
		if len(got) != 3 {
			t.Fatalf("after reset --to %s: %d partitions described, want 3: %s", to, len(got), d)
		}
		for p, c := range got {
			if c != want(p) {
				t.Fatalf("after reset --to %s: partition %d committed %d, want %d: %s", to, p, c, want(p), d)
			}
		}
		for _, p := range d.Partitions {
			if p.Lag != p.HighWatermark-p.Committed {
				t.Fatalf("after reset --to %s: partition %d lag %d, want %d: %s", to, p.Partition, p.Lag, p.HighWatermark-p.Committed, d)
			}
		}
	}
	// Replay everything.
	resetTo("earliest", func(int32) int64 { return 0 })
	exactlyOnce(consumeAll(n))
	// From an offset: each partition from offset 40 on.
	resetTo("40", func(int32) int64 { return 40 })
	rest := 0
	for _, h := range hw {
		if h < 40 {
			t.Fatalf("a partition got only %d records; the test wants 40 in each: %v", h, hw)
		}
		rest += int(h - 40)
	}
	for _, r := range consumeAll(rest) {
		if r.o < 40 {
			t.Fatalf("after reset --to 40, printed %v", r)
		}
	}
	if d := s.describeGroup(ctx, "g5"); !d.caughtUp("rp", 3) {
		t.Fatalf("after the replay from 40: want everything committed: %s", d)
	}
	// By time: before the first record, that is the start; latest: the end.
	resetTo(beforeProduce.UTC().Format(time.RFC3339), func(int32) int64 { return 0 })
	resetTo("latest", func(p int32) int64 { return hw[p] })

	// Not while the group has a member.
	m := s.startGroupConsumer(t, "active member", "rp", "g5")
	s.waitGroup(ctx, 20*time.Second, "g5", "one member owning the 3 partitions",
		func(d groupDesc) bool { return d.balanced("rp", 1, 3) })
	for _, args := range [][]string{
		{"group", "reset", "g5", "--topic", "rp", "--to", "earliest"},
		{"group", "delete", "g5"},
	} {
		out, err := s.tryWeir(ctx, "", args...)
		if err == nil {
			t.Fatalf("weir %s succeeded while the group has a member:\n%s", strings.Join(args, " "), out)
		}
		if !strings.Contains(strings.ToLower(out), "member") && !strings.Contains(strings.ToLower(out), "not empty") {
			t.Fatalf("weir %s with a member: %v, but the message does not say the group has members:\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("weir %s with a member: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(out))
	}
	if d := s.describeGroup(ctx, "g5"); !d.caughtUp("rp", 3) {
		t.Fatalf("a refused reset changed the offsets: %s", d)
	}
	m.stop()
	if got := m.records(); len(got) != 0 {
		t.Fatalf("after reset --to latest the member printed %d records, e.g. %v", len(got), got[0])
	}
	s.waitGroup(ctx, 10*time.Second, "g5", "no members after the member stopped",
		func(d groupDesc) bool { return len(d.Members) == 0 })

	// Delete an empty group: it is gone from the list, and its offsets too.
	s.weir(ctx, "", "group", "delete", "g5")
	for _, g := range s.listGroups(ctx) {
		if g.Group == "g5" {
			t.Fatalf("deleted group still in `weir group list --json`: %+v", g)
		}
	}
	if out := s.weir(ctx, "", "group", "list"); strings.Contains(out, "g5") {
		t.Fatalf("deleted group still in `weir group list`:\n%s", out)
	}
	if d, err := s.tryDescribeGroup(ctx, "g5"); err == nil && (len(d.Members) != 0 || len(d.committed("rp")) != 0) {
		t.Fatalf("deleted group still described with members or offsets: %s", d)
	}
	exactlyOnce(consumeAll(n))
}

// TestGroupListDescribeJSON: the --json forms of group list and describe
// carry members, assignments, committed offsets, high watermarks, lag and
// owners that agree with what the group did.
func TestGroupListDescribeJSON(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := startServer(t, t.TempDir())
	s.weir(ctx, "", "topic", "create", "js", "--partitions", "2")
	produceKeyed(ctx, s, "js", "r", 0, 100)
	c := s.startGroupConsumer(t, "member of gj", "js", "gj", "-n", "100")
	c.waitExit(30 * time.Second)

	findListed := func() (groupListing, bool) {
		for _, g := range s.listGroups(ctx) {
			if g.Group == "gj" {
				return g, true
			}
		}
		return groupListing{}, false
	}
	if g, ok := findListed(); !ok || g.Members != 0 {
		t.Fatalf("group list --json: want gj with 0 members, got %+v (found %v)", g, ok)
	}
	d := s.describeGroup(ctx, "gj")
	if d.Group != "gj" || len(d.Members) != 0 || len(d.Partitions) != 2 || !d.caughtUp("js", 2) {
		t.Fatalf("describe --json of an empty, caught-up group: %s", d)
	}
	var total int64
	for _, p := range d.Partitions {
		if p.Topic != "js" || p.Owner != "" {
			t.Fatalf("describe --json: partition %+v, want topic js and no owner", p)
		}
		total += p.HighWatermark
	}
	if total != 100 {
		t.Fatalf("describe --json: high watermarks add up to %d, want 100: %s", total, d)
	}

	produceKeyed(ctx, s, "js", "r", 100, 10)
	d = s.describeGroup(ctx, "gj")
	var lag int64
	for _, p := range d.Partitions {
		if p.Lag != p.HighWatermark-p.Committed {
			t.Fatalf("partition %d: lag %d, want high watermark %d - committed %d", p.Partition, p.Lag, p.HighWatermark, p.Committed)
		}
		lag += p.Lag
	}
	if lag != 10 {
		t.Fatalf("after 10 more records, lag %d, want 10: %s", lag, d)
	}

	m := s.startGroupConsumer(t, "active member of gj", "js", "gj")
	d, _ = s.waitGroup(ctx, 20*time.Second, "gj", "one member owning both partitions, caught up",
		func(d groupDesc) bool { return d.balanced("js", 1, 2) && d.caughtUp("js", 2) })
	id := d.Members[0].MemberID
	if id == "" {
		t.Fatalf("describe --json: a member without an id: %s", d)
	}
	for _, p := range d.Partitions {
		if p.Owner != id {
			t.Fatalf("describe --json: partition %d owned by %q, want the member %q: %s", p.Partition, p.Owner, id, d)
		}
	}
	if g, ok := findListed(); !ok || g.Members != 1 {
		t.Fatalf("group list --json with a member: want gj with 1 member, got %+v (found %v)", g, ok)
	}
	for _, args := range [][]string{{"group", "list"}, {"group", "describe", "gj"}} {
		if out := s.weir(ctx, "", args...); !strings.Contains(out, "gj") && !strings.Contains(out, id) {
			t.Fatalf("weir %s does not show the group:\n%s", strings.Join(args, " "), out)
		}
	}
	if out, err := s.tryWeir(ctx, "", "group", "describe", "no-such-group"); err == nil {
		t.Logf("describe of an unknown group succeeds:\n%s", out)
	}
	m.stop()
	if got := len(m.records()); got != 10 {
		t.Fatalf("the second member printed %d records, want the 10 produced after the first one's commit", got)
	}
}
