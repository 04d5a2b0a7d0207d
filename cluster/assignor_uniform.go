package cluster

import (
	"cmp"
	"slices"
)

// uniformAssignor is the sticky, balancing assignor (Kafka's "uniform"
// server-side assignor of KIP-848). Its two aims, in order:
//
//  1. Balance: spread the partitions so every member has about the same
//     number. With identical subscriptions the counts differ by at most one;
//     otherwise the result is as balanced as the subscriptions allow.
//  2. Stickiness: among balanced assignments, keep as many partitions with
//     their current owners as possible. Each moved partition costs the group
//     something (the old owner must commit and revoke it, the new one must
//     fetch its position and warm caches), so a rebalance should move only
//     what balance needs: a joining member takes its share from the others,
//     a leaving member's partitions are the only ones to move.
//
// The common case, where every member subscribes to the same topics, has an
// exact and cheap solution (assignHomogeneous). The general case is solved by
// keeping what members own, filling in the rest greedily, then moving
// partitions along chains until no move can lower the spread
// (uniformBalancer).
type uniformAssignor struct{}

func (uniformAssignor) Name() string { return "uniform" }

func (uniformAssignor) Assign(in AssignInput) Assignment {
	v := newAssignView(in)
	owner := v.claimOwned()
	if v.homogeneous() {
		v.assignHomogeneous(owner)
	} else {
		newUniformBalancer(v, owner).run()
	}
	return v.result(owner)
}

// homogeneous reports whether every member that subscribes to something
// subscribes to the same topics. Members without topics are left out: they
// get nothing either way and should not push a group onto the slower path.
func (v *assignView) homogeneous() bool {
	var first []int32
	for m := range v.members {
		s := v.subscriptions(m)
		switch {
		case len(s) == 0:
		case first == nil:
			first = s
		case !slices.Equal(first, s):
			return false
		}
	}
	return true
}

// assignHomogeneous assigns when all subscribers share one subscription, so
// any partition can go to any of them. Balance then fixes the counts exactly:
// with P partitions and n members, P%n members get P/n+1 and the rest P/n.
// Which members get the extra one is free, and giving it to those owning
// the most now maximizes what stays put: member i keeps min(owned_i,
// quota_i) partitions, the most any balanced assignment can leave it, so
// the number of moves is the minimum possible. Everything else (revoked,
// orphaned by a leaver, newly created) is dealt out to members below quota.
//
// owner holds the claimed current owners and is updated in place.
// O(partitions + members log members).
func (v *assignView) assignHomogeneous(owner []int32) {
	var eligible []int32 // members subscribing to the shared topics, by ID
	for m := range v.members {
		if len(v.subscriptions(m)) > 0 {
			eligible = append(eligible, int32(m))
		}
	}
	if len(eligible) == 0 {
		return // then nobody subscribes to anything, so there is nothing to assign
	}
	held := make([]int, len(v.members))
	for _, m := range owner {
		if m >= 0 {
			held[m]++
		}
	}
	base, extra := v.total()/len(eligible), v.total()%len(eligible)
	byHeld := slices.Clone(eligible)
	slices.SortStableFunc(byHeld, func(a, b int32) int { return cmp.Compare(held[b], held[a]) }) // stable: ties by ID
	quota := make([]int, len(v.members))
	for i, m := range byHeld {
		quota[m] = base
		if i < extra {
			quota[m]++
		}
	}

	// Keep owned partitions up to quota (the lowest-numbered ones), revoke
	// the rest.
	load := make([]int, len(v.members))
	for g, m := range owner {
		if m < 0 {
			continue
		}
		if load[m] == quota[m] {
			owner[g] = -1
			continue
		}
		load[m]++
	}
	// Deal out the free partitions in order, filling one member at a time,
	// so a member's new partitions tend to be contiguous. The quotas add up
	// to the partition count, so the scan never runs off the end.
	next := 0
	for g, m := range owner {
		if m >= 0 {
			continue
		}
		for load[eligible[next]] == quota[eligible[next]] {
			next++
		}
		owner[g] = eligible[next]
		load[eligible[next]]++
	}
}

// uniformBalancer assigns with arbitrary subscriptions. Balance is then a
// scheduling problem (partitions are jobs a member may take only if it
// subscribes to their topic; minimize the spread of member loads), so it is
// solved in phases, each cheap, later ones handling what earlier ones leave:
//
//  1. keep: every member keeps all its valid owned partitions (claimOwned);
//  2. fill: the unowned partitions go, one by one, to the least loaded
//     subscriber of their topic, topics with the fewest subscribers first
//     (they have the fewest places to go, so they choose first);
//  3. per-topic balancing: while some holder of a topic's partition has at
//     least two more than the least loaded subscriber of that topic, move
//     one across. Passes repeat until none moves. This fixes most of what
//     keeping everything broke (members joining or leaving) in
//     O(moves log members);
//  4. chains: a single move can be stuck where a chain is not: A (only t1)
//     holds 3, B (t1, t2) holds 2 of t2, C (only t2) holds 1; no pair
//     differs by 2 but A→B (a t1) plus B→C (a t2) gives 2/2/2. A breadth-first
//     search over "holds a partition of a topic the other subscribes to"
//     finds such chains. With none left from any member to one at least two
//     below it, the loads are optimally balanced: this is the
//     cost-reducing-path criterion for semi-matchings (Harvey, Ladner,
//     Lovász, Tamir), so the result is as balanced as the subscriptions allow
//     by any measure (max-min, max, sum of squares).
//
// Balance comes first: a chain moves one partition per link to shift one
// unit of load, so with long chains of overlapping subscriptions (rare in
// practice: groups tend to have a few subscription sets) reaching the optimum
// can move more partitions than a merely greedy result would.
//
// Every move strictly lowers the sum of squared loads, so phases 3 and 4 end.
// When a move has a choice of partition, it takes one the member did not own
// before (assigned in this run) rather than one it owned, to keep stickiness.
type uniformBalancer struct {
	v     *assignView
	owner []int32 // global partition -> member, the assignment being built
	orig  []int32 // global partition -> member that owns it now, or -1
	load  []int   // member -> partitions in owner

	topicOrder []int32 // topics by number of subscribers, then index

	// Scratch for the per-topic phase, reused across topics.
	local []int32   // member -> index in the current topic's subscribers
	lists [][]int32 // per subscriber of the current topic: its partitions, sticky first
	light *memberHeap
	heavy *memberHeap
}

func newUniformBalancer(v *assignView, owner []int32) *uniformBalancer {
	b := &uniformBalancer{
		v:     v,
		owner: owner,
		orig:  slices.Clone(owner),
		load:  make([]int, len(v.members)),
		local: make([]int32, len(v.members)),
	}
	for _, m := range owner {
		if m >= 0 {
			b.load[m]++
		}
	}
	b.light = newMemberHeap(len(v.members), b.lighter)
	b.heavy = newMemberHeap(len(v.members), b.heavier)
	b.topicOrder = make([]int32, len(v.topics))
	for t := range b.topicOrder {
		b.topicOrder[t] = int32(t)
	}
	slices.SortStableFunc(b.topicOrder, func(x, y int32) int {
		return cmp.Compare(len(v.subscribers(x)), len(v.subscribers(y)))
	})
	return b
}

// lighter and heavier order members by load, ties by ID (index), so every
// choice below is deterministic.
func (b *uniformBalancer) lighter(x, y int32) bool {
	return b.load[x] < b.load[y] || b.load[x] == b.load[y] && x < y
}

func (b *uniformBalancer) heavier(x, y int32) bool {
	return b.load[x] > b.load[y] || b.load[x] == b.load[y] && x < y
}

func (b *uniformBalancer) run() {
	b.fill()
	for b.balanceTopics() {
	}
	b.balanceChains()
}

// fill gives every unowned partition to the least loaded subscriber of its
// topic (phase 2).
func (b *uniformBalancer) fill() {
	v := b.v
	for _, t := range b.topicOrder {
		first := v.offset[t]
		for first < v.offset[t+1] && b.owner[first] >= 0 {
			first++
		}
		if first == v.offset[t+1] {
			continue
		}
		b.light.reset()
		for _, m := range v.subscribers(t) {
			b.light.push(m)
		}
		for g := first; g < v.offset[t+1]; g++ {
			if b.owner[g] >= 0 {
				continue
			}
			m := b.light.top()
			b.owner[g] = m
			b.load[m]++
			b.light.fix(m)
		}
	}
}

// balanceTopics makes one pass of phase 3 over all topics and reports
// whether it moved anything. A move changes two members' loads, which can
// unbalance a topic already passed, hence the caller's loop.
func (b *uniformBalancer) balanceTopics() bool {
	moved := false
	for _, t := range b.topicOrder {
		if b.balanceTopic(t) {
			moved = true
		}
	}
	return moved
}

// balanceTopic moves partitions of topic t from its most loaded holders to
// its least loaded subscribers while they differ by two or more.
func (b *uniformBalancer) balanceTopic(t int32) bool {
	v := b.v
	subs := v.subscribers(t)
	if len(subs) < 2 {
		return false
	}
	// Cheap test first: most topics of a balanced group need nothing.
	lo, hi := b.load[subs[0]], b.load[subs[0]]
	for _, m := range subs {
		lo, hi = min(lo, b.load[m]), max(hi, b.load[m])
	}
	if hi-lo < 2 {
		return false
	}

	// Each subscriber's partitions of t, those it owned before first, so
	// that popping from the end gives away newly assigned ones first.
	for i, m := range subs {
		b.local[m] = int32(i)
	}
	for len(b.lists) < len(subs) {
		b.lists = append(b.lists, nil)
	}
	lists := b.lists[:len(subs)]
	for i := range lists {
		lists[i] = lists[i][:0]
	}
	for _, sticky := range []bool{true, false} {
		for g := v.offset[t]; g < v.offset[t+1]; g++ {
			// Every partition of t has an owner by now, and it subscribes to t.
			if m := b.owner[g]; (b.orig[g] == m) == sticky {
				lists[b.local[m]] = append(lists[b.local[m]], int32(g))
			}
		}
	}

	b.light.reset()
	b.heavy.reset()
	for i, m := range subs {
		b.light.push(m)
		if len(lists[i]) > 0 {
			b.heavy.push(m)
		}
	}
	moved := false
	for b.heavy.len() > 0 {
		from, to := b.heavy.top(), b.light.top()
		if b.load[from]-b.load[to] < 2 {
			break
		}
		lf, lt := b.local[from], b.local[to]
		g := lists[lf][len(lists[lf])-1]
		lists[lf] = lists[lf][:len(lists[lf])-1]
		lists[lt] = append(lists[lt], g)
		b.owner[g] = to
		b.load[from]--
		b.load[to]++
		moved = true
		b.light.fix(from)
		b.light.fix(to)
		if len(lists[lf]) == 0 {
			b.heavy.remove(from)
		} else {
			b.heavy.fix(from)
		}
		if b.heavy.contains(to) {
			b.heavy.fix(to)
		} else {
			b.heavy.push(to)
		}
	}
	return moved
}

// balanceChains is phase 4: while some member u reaches, through a chain of
// members each holding a partition of a topic the next one subscribes to, a
// member w with load(w) <= load(u)-2, shift one partition along each link:
// u loses one, w gains one, the members in between keep their counts.
//
// Sources are tried most loaded first. If the search from u fails, every
// member it reached has load >= load(u)-1, and so do all they reach; a
// later source, being no more loaded than u, can find no target among them
// either. So members and topics reached stay marked for the rest of the
// round, and a round without a chain costs O(subscriptions) in total.
func (b *uniformBalancer) balanceChains() {
	v := b.v
	n := len(v.members)
	// held is aligned with v.memberTopics: how many partitions of that topic
	// the member holds. A member is linked through a topic only if it holds
	// one of its partitions.
	held := make([]int32, len(v.memberTopics))
	for t := range v.topics {
		for g := v.offset[t]; g < v.offset[t+1]; g++ {
			held[v.slot(int(b.owner[g]), int32(t))]++
		}
	}
	var sources []int32
	for m := range n {
		if len(v.subscriptions(m)) > 0 {
			sources = append(sources, int32(m))
		}
	}
	if len(sources) < 2 {
		return
	}
	seenMember := make([]uint32, n)
	seenTopic := make([]uint32, len(v.topics))
	parent := make([]int32, n) // member a chain came from
	via := make([]int32, n)    // topic of the partition it would pass on
	queue := make([]int32, 0, n)
	var round uint32

	// search runs the breadth-first search from u and returns a target, or -1.
	search := func(u int32) int32 {
		seenMember[u] = round
		queue = append(queue[:0], u)
		for i := 0; i < len(queue); i++ {
			x := queue[i]
			for k, t := range v.subscriptions(int(x)) {
				if held[v.memberOff[x]+k] == 0 || seenTopic[t] == round {
					continue
				}
				seenTopic[t] = round
				for _, y := range v.subscribers(t) {
					if seenMember[y] == round {
						continue
					}
					seenMember[y] = round
					parent[y], via[y] = x, t
					if b.load[y] <= b.load[u]-2 {
						return y
					}
					queue = append(queue, y)
				}
			}
		}
		return -1
	}

	for {
		round++
		slices.SortFunc(sources, func(x, y int32) int {
			if c := cmp.Compare(b.load[y], b.load[x]); c != 0 {
				return c
			}
			return cmp.Compare(x, y)
		})
		minLoad := b.load[sources[len(sources)-1]]
		found := false
		for _, u := range sources {
			if b.load[u]-minLoad < 2 {
				break // nobody is two below u, nor below any later source
			}
			if seenMember[u] == round {
				continue
			}
			w := search(u)
			if w < 0 {
				continue
			}
			for w != u {
				x, t := parent[w], via[w]
				b.move(x, w, t, held)
				w = x
			}
			found = true
			break
		}
		if !found {
			return
		}
	}
}

// move gives one partition of topic t from member from to member to,
// preferring one from did not own before this run.
func (b *uniformBalancer) move(from, to, t int32, held []int32) {
	v := b.v
	pick := -1
	for g := v.offset[t]; g < v.offset[t+1]; g++ {
		if b.owner[g] != from {
			continue
		}
		if b.orig[g] != from {
			pick = g
			break
		}
		if pick < 0 {
			pick = g
		}
	}
	b.owner[pick] = to
	b.load[from]--
	b.load[to]++
	held[v.slot(int(from), t)]--
	held[v.slot(int(to), t)]++
}

// slot returns the index in v.memberTopics of member m's subscription to
// topic t, which must exist.
func (v *assignView) slot(m int, t int32) int {
	i, _ := slices.BinarySearch(v.subscriptions(m), t)
	return v.memberOff[m] + i
}

// memberHeap is a binary heap of member indices under an order on their
// (changing) loads. It records where each member sits, so that a member
// whose load changed can be fixed in place or removed in O(log n), which
// container/heap leaves to its user anyway.
type memberHeap struct {
	items []int32
	pos   []int32 // member -> index in items, -1 if absent
	less  func(a, b int32) bool
}

func newMemberHeap(members int, less func(a, b int32) bool) *memberHeap {
	pos := make([]int32, members)
	for i := range pos {
		pos[i] = -1
	}
	return &memberHeap{pos: pos, less: less}
}

func (h *memberHeap) len() int              { return len(h.items) }
func (h *memberHeap) top() int32            { return h.items[0] }
func (h *memberHeap) contains(m int32) bool { return h.pos[m] >= 0 }

func (h *memberHeap) reset() {
	for _, m := range h.items {
		h.pos[m] = -1
	}
	h.items = h.items[:0]
}

func (h *memberHeap) push(m int32) {
	h.items = append(h.items, m)
	h.pos[m] = int32(len(h.items) - 1)
	h.up(len(h.items) - 1)
}

// fix restores the heap after m's load changed.
func (h *memberHeap) fix(m int32) {
	if i := int(h.pos[m]); !h.down(i) {
		h.up(i)
	}
}

func (h *memberHeap) remove(m int32) {
	i, last := int(h.pos[m]), len(h.items)-1
	h.swap(i, last)
	h.items = h.items[:last]
	h.pos[m] = -1
	if i != last {
		h.fix(h.items[i])
	}
}

func (h *memberHeap) swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.pos[h.items[i]] = int32(i)
	h.pos[h.items[j]] = int32(j)
}

func (h *memberHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(h.items[i], h.items[p]) {
			break
		}
		h.swap(i, p)
		i = p
	}
}

// down sifts item i down and reports whether it moved.
func (h *memberHeap) down(i0 int) bool {
	i := i0
	for {
		l := 2*i + 1
		if l >= len(h.items) {
			break
		}
		j := l
		if r := l + 1; r < len(h.items) && h.less(h.items[r], h.items[l]) {
			j = r
		}
		if !h.less(h.items[j], h.items[i]) {
			break
		}
		h.swap(i, j)
		i = j
	}
	return i > i0
}
