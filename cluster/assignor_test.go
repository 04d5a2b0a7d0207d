package cluster

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// tps builds a sorted partition list of one topic.
func tps(topic string, parts ...int32) []TopicPartition {
	out := make([]TopicPartition, len(parts))
	for i, p := range parts {
		out[i] = TopicPartition{Topic: topic, Partition: p}
	}
	return out
}

// asgConcat joins partition lists and sorts the result.
func asgConcat(lists ...[]TopicPartition) []TopicPartition {
	out := []TopicPartition{}
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.SortFunc(out, TopicPartition.Compare)
	return out
}

func asgMember(id string, topics []string, owned ...[]TopicPartition) AssignMember {
	return AssignMember{ID: id, Topics: topics, Owned: asgConcat(owned...)}
}

// asgNormalize makes empty lists comparable whether nil or not.
func asgNormalize(a Assignment) Assignment {
	out := Assignment{}
	for id, l := range a {
		if len(l) == 0 {
			l = []TopicPartition{}
		}
		out[id] = l
	}
	return out
}

// checkAssignValid asserts the invariants every assignor must keep: each member of
// the input has an entry, sorted and without duplicates; each partition of a
// subscribed topic is assigned exactly once, to a subscriber; nothing else is
// assigned.
func checkAssignValid(t *testing.T, in AssignInput, out Assignment) {
	t.Helper()
	if len(out) != len(in.Members) {
		t.Fatalf("assignment has %d entries, want one per member (%d): %v", len(out), len(in.Members), out)
	}
	subscribed := map[string]map[string]bool{} // member -> topic set
	want := map[TopicPartition]bool{}
	for _, m := range in.Members {
		subscribed[m.ID] = map[string]bool{}
		for _, topic := range m.Topics {
			subscribed[m.ID][topic] = true
			if want[TopicPartition{topic, 0}] {
				continue // topic seen already
			}
			for p := range in.Partitions[topic] {
				want[TopicPartition{topic, p}] = true
			}
		}
	}
	got := map[TopicPartition]string{}
	for _, m := range in.Members {
		l, ok := out[m.ID]
		if !ok {
			t.Fatalf("member %s has no entry", m.ID)
		}
		if !slices.IsSortedFunc(l, TopicPartition.Compare) {
			t.Fatalf("member %s: list not sorted: %v", m.ID, l)
		}
		for _, tp := range l {
			if prev, dup := got[tp]; dup {
				t.Fatalf("%v assigned to both %s and %s", tp, prev, m.ID)
			}
			got[tp] = m.ID
			if !want[tp] {
				t.Fatalf("%v assigned to %s is not a subscribed partition", tp, m.ID)
			}
			if !subscribed[m.ID][tp.Topic] {
				t.Fatalf("%v assigned to %s, which does not subscribe to %s", tp, m.ID, tp.Topic)
			}
		}
	}
	if len(got) != len(want) {
		for tp := range want {
			if _, ok := got[tp]; !ok {
				t.Fatalf("%v not assigned (%d of %d assigned)", tp, len(got), len(want))
			}
		}
	}
}

// asgSpread returns max-min of the counts of members that subscribe to
// something.
func asgSpread(in AssignInput, out Assignment) int {
	lo, hi, any := 0, 0, false
	for _, m := range in.Members {
		if len(m.Topics) == 0 {
			continue
		}
		n := len(out[m.ID])
		if !any {
			lo, hi, any = n, n, true
		}
		lo, hi = min(lo, n), max(hi, n)
	}
	return hi - lo
}

// checkAssignOptimal asserts that no chain of moves can lower the spread: no member
// u reaches a member w with count(w) <= count(u)-2 through members each
// holding a partition of a topic the next subscribes to. That is the
// certificate that the counts are as balanced as the subscriptions allow.
func checkAssignOptimal(t *testing.T, in AssignInput, out Assignment) {
	t.Helper()
	subs := map[string][]string{} // topic -> subscribers
	for _, m := range in.Members {
		for _, topic := range m.Topics {
			subs[topic] = append(subs[topic], m.ID)
		}
	}
	for _, u := range in.Members {
		seen := map[string]bool{u.ID: true}
		queue := []string{u.ID}
		for len(queue) > 0 {
			x := queue[0]
			queue = queue[1:]
			for _, tp := range out[x] {
				for _, y := range subs[tp.Topic] {
					if seen[y] {
						continue
					}
					seen[y] = true
					if len(out[y]) <= len(out[u.ID])-2 {
						t.Fatalf("not balanced: %s (%d) can pass a partition down a chain to %s (%d)\n%v",
							u.ID, len(out[u.ID]), y, len(out[y]), out)
					}
					queue = append(queue, y)
				}
			}
		}
	}
}

// cloneAssignInput deep-copies in, building the map in a different insertion
// order, so a result depending on map layout or aliasing would show.
func cloneAssignInput(in AssignInput) AssignInput {
	out := AssignInput{Partitions: map[string]int32{}}
	keys := slices.Sorted(maps.Keys(in.Partitions))
	slices.Reverse(keys)
	for _, k := range keys {
		out.Partitions[k] = in.Partitions[k]
	}
	for _, m := range in.Members {
		out.Members = append(out.Members, AssignMember{ID: m.ID, Topics: slices.Clone(m.Topics), Owned: slices.Clone(m.Owned)})
	}
	return out
}

// randomAssignInput makes a group: up to 5 topics of 0-19 partitions, one topic no
// member subscribes to, up to 12 members. With homogeneous, all members
// subscribe to the same topics (a few to none). Owned lists mix real
// partitions, unsubscribed or deleted topics and out-of-range partitions,
// and with overlap some partitions are claimed twice.
func randomAssignInput(r *rand.Rand, homogeneous, overlap bool) AssignInput {
	in := AssignInput{Partitions: map[string]int32{"unsubscribed": int32(r.IntN(5) + 1)}}
	var topics []string
	for i := range r.IntN(5) + 1 {
		name := fmt.Sprintf("t%d", i)
		topics = append(topics, name)
		in.Partitions[name] = int32(r.IntN(20))
	}
	subset := func() []string {
		var s []string
		for _, topic := range topics {
			if r.IntN(2) == 0 {
				s = append(s, topic)
			}
		}
		return s
	}
	common := subset()
	if len(common) == 0 {
		common = topics[:1]
	}
	claimed := map[TopicPartition]bool{}
	for i := range r.IntN(13) {
		m := AssignMember{ID: fmt.Sprintf("m%02d", i)}
		switch {
		case homogeneous && r.IntN(8) == 0:
			// subscribes to nothing
		case homogeneous:
			m.Topics = common
		default:
			m.Topics = subset()
		}
		for range r.IntN(12) {
			topic := topics[r.IntN(len(topics))]
			switch r.IntN(10) {
			case 0:
				topic = "deleted"
			case 1:
				topic = "unsubscribed"
			}
			tp := TopicPartition{topic, int32(r.IntN(int(in.Partitions[topic]) + 3))}
			if !overlap && claimed[tp] {
				continue
			}
			claimed[tp] = true
			m.Owned = append(m.Owned, tp)
		}
		slices.SortFunc(m.Owned, TopicPartition.Compare)
		m.Owned = slices.Compact(m.Owned)
		in.Members = append(in.Members, m)
	}
	return in
}

// asgValidOwned returns who validly owns what in in: subscribed, existing
// partitions. Assumes no partition is claimed twice.
func asgValidOwned(in AssignInput) map[TopicPartition]string {
	out := map[TopicPartition]string{}
	for _, m := range in.Members {
		for _, tp := range m.Owned {
			if slices.Contains(m.Topics, tp.Topic) && tp.Partition >= 0 && tp.Partition < in.Partitions[tp.Topic] {
				out[tp] = m.ID
			}
		}
	}
	return out
}

// asgMoves counts the validly owned partitions that changed owner.
func asgMoves(in AssignInput, out Assignment) int {
	owner := map[TopicPartition]string{}
	for id, l := range out {
		for _, tp := range l {
			owner[tp] = id
		}
	}
	n := 0
	for tp, id := range asgValidOwned(in) {
		if owner[tp] != id {
			n++
		}
	}
	return n
}

// asgMinMoves is the fewest moves any balanced assignment of a homogeneous
// group needs: members get total/n or total/n+1, and member i can keep at
// most min(owned_i, quota_i), which is largest when the bigger quotas go to
// the members owning the most.
func asgMinMoves(in AssignInput) int {
	owned := map[string]int{}
	for _, id := range asgValidOwned(in) {
		owned[id]++
	}
	var counts []int
	total := 0
	for _, m := range in.Members {
		if len(m.Topics) == 0 {
			continue
		}
		counts = append(counts, owned[m.ID])
		if len(counts) == 1 {
			for _, topic := range m.Topics {
				total += int(in.Partitions[topic])
			}
		}
	}
	if len(counts) == 0 {
		return 0
	}
	slices.Sort(counts)
	slices.Reverse(counts)
	base, extra := total/len(counts), total%len(counts)
	n := 0
	for i, c := range counts {
		q := base
		if i < extra {
			q++
		}
		n += max(0, c-q)
	}
	return n
}

// asgWithOwned returns in with every member's Owned set from a.
func asgWithOwned(in AssignInput, a Assignment) AssignInput {
	out := cloneAssignInput(in)
	for i := range out.Members {
		out.Members[i].Owned = slices.Clone(a[out.Members[i].ID])
	}
	return out
}

func TestLookupAssignor(t *testing.T) {
	if got := AssignorNames(); !slices.Equal(got, []string{"range", "uniform"}) {
		t.Fatalf("AssignorNames() = %v", got)
	}
	for _, name := range AssignorNames() {
		a, ok := LookupAssignor(name)
		if !ok || a.Name() != name {
			t.Fatalf("LookupAssignor(%q) = %v, %v", name, a, ok)
		}
	}
	if a, ok := LookupAssignor(""); !ok || a.Name() != DefaultAssignor {
		t.Fatalf(`LookupAssignor("") = %v, %v; want the default`, a, ok)
	}
	if _, ok := LookupAssignor("cooperative-sticky"); ok {
		t.Fatal("unknown assignor found")
	}
}

func TestAssignTopicPartitionCompare(t *testing.T) {
	l := []TopicPartition{{"b", 0}, {"a", 10}, {"a", 2}, {"b", -1}}
	slices.SortFunc(l, TopicPartition.Compare)
	want := []TopicPartition{{"a", 2}, {"a", 10}, {"b", -1}, {"b", 0}}
	if !slices.Equal(l, want) {
		t.Fatalf("sorted = %v, want %v", l, want)
	}
}

// TestAssignorsEdgeCases runs both assignors over the corner cases.
func TestAssignorsEdgeCases(t *testing.T) {
	for _, name := range AssignorNames() {
		a, _ := LookupAssignor(name)
		t.Run(name, func(t *testing.T) {
			cases := []struct {
				name string
				in   AssignInput
				want Assignment
			}{
				{"empty group", AssignInput{Partitions: map[string]int32{"t": 3}}, Assignment{}},
				{"nil partitions", AssignInput{Members: []AssignMember{asgMember("a", nil)}}, Assignment{"a": {}}},
				{
					"member without topics",
					AssignInput{
						Members:    []AssignMember{asgMember("a", nil, tps("t", 0)), asgMember("b", []string{"t"})},
						Partitions: map[string]int32{"t": 2},
					},
					Assignment{"a": {}, "b": tps("t", 0, 1)},
				},
				{
					"topic nobody subscribes to",
					AssignInput{
						Members:    []AssignMember{asgMember("a", []string{"t"}, tps("x", 0, 1))},
						Partitions: map[string]int32{"t": 1, "x": 5},
					},
					Assignment{"a": tps("t", 0)},
				},
				{
					"topic with no partitions",
					AssignInput{
						Members:    []AssignMember{asgMember("a", []string{"e", "t"}), asgMember("b", []string{"e"})},
						Partitions: map[string]int32{"t": 2, "e": 0},
					},
					Assignment{"a": tps("t", 0, 1), "b": {}},
				},
				{
					"subscribed topic missing from Partitions",
					AssignInput{
						Members:    []AssignMember{asgMember("a", []string{"gone", "t"}, tps("gone", 0))},
						Partitions: map[string]int32{"t": 1},
					},
					Assignment{"a": tps("t", 0)},
				},
				{
					"more members than partitions",
					AssignInput{
						Members:    []AssignMember{asgMember("a", []string{"t"}), asgMember("b", []string{"t"}), asgMember("c", []string{"t"})},
						Partitions: map[string]int32{"t": 2},
					},
					Assignment{"a": tps("t", 0), "b": tps("t", 1), "c": {}},
				},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					got := a.Assign(tc.in)
					checkAssignValid(t, tc.in, got)
					if !reflect.DeepEqual(asgNormalize(got), asgNormalize(tc.want)) {
						t.Fatalf("got %v, want %v", got, tc.want)
					}
				})
			}
		})
	}
}

// TestAssignorsProperties checks validity and determinism of both assignors
// on random groups.
func TestAssignorsProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, name := range AssignorNames() {
		a, _ := LookupAssignor(name)
		for i := range 400 {
			in := randomAssignInput(r, i%2 == 0, i%3 == 0)
			before := cloneAssignInput(in)
			out := a.Assign(in)
			checkAssignValid(t, in, out)
			if !reflect.DeepEqual(in, before) {
				t.Fatalf("%s: Assign modified its input", name)
			}
			if again := a.Assign(in); !reflect.DeepEqual(out, again) {
				t.Fatalf("%s: same input, different output:\n%v\n%v", name, out, again)
			}
			if other := a.Assign(cloneAssignInput(in)); !reflect.DeepEqual(out, other) {
				t.Fatalf("%s: equal input, different output:\n%v\n%v", name, out, other)
			}
			// Members out of order (against the contract) still give the
			// same answer rather than a replica-dependent one.
			shuffled := cloneAssignInput(in)
			r.Shuffle(len(shuffled.Members), func(i, j int) {
				shuffled.Members[i], shuffled.Members[j] = shuffled.Members[j], shuffled.Members[i]
			})
			if other := a.Assign(shuffled); !reflect.DeepEqual(out, other) {
				t.Fatalf("%s: reordered members, different output:\n%v\n%v", name, out, other)
			}
		}
	}
}

func TestRangeAssignLayouts(t *testing.T) {
	a, _ := LookupAssignor("range")
	cases := []struct {
		name string
		in   AssignInput
		want Assignment
	}{
		{
			"uneven split: first count%n members get one more",
			AssignInput{
				Members:    []AssignMember{asgMember("a", []string{"t"}), asgMember("b", []string{"t"}), asgMember("c", []string{"t"})},
				Partitions: map[string]int32{"t": 7},
			},
			Assignment{"a": tps("t", 0, 1, 2), "b": tps("t", 3, 4), "c": tps("t", 5, 6)},
		},
		{
			"co-partitioned topics line up, extras pile on the first member",
			AssignInput{
				Members:    []AssignMember{asgMember("a", []string{"x", "y"}), asgMember("b", []string{"x", "y"})},
				Partitions: map[string]int32{"x": 3, "y": 3},
			},
			Assignment{"a": asgConcat(tps("x", 0, 1), tps("y", 0, 1)), "b": asgConcat(tps("x", 2), tps("y", 2))},
		},
		{
			"per-topic subscribers",
			AssignInput{
				Members: []AssignMember{
					asgMember("a", []string{"x", "y"}),
					asgMember("b", []string{"x"}),
					asgMember("c", []string{"y"}),
				},
				Partitions: map[string]int32{"x": 3, "y": 2},
			},
			Assignment{"a": asgConcat(tps("x", 0, 1), tps("y", 0)), "b": tps("x", 2), "c": tps("y", 1)},
		},
		{
			"owned partitions are ignored",
			AssignInput{
				Members:    []AssignMember{asgMember("a", []string{"t"}, tps("t", 2, 3)), asgMember("b", []string{"t"}, tps("t", 0, 1))},
				Partitions: map[string]int32{"t": 4},
			},
			Assignment{"a": tps("t", 0, 1), "b": tps("t", 2, 3)},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := a.Assign(tc.in)
			checkAssignValid(t, tc.in, got)
			if !reflect.DeepEqual(asgNormalize(got), asgNormalize(tc.want)) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

var uniformAsg, _ = LookupAssignor("uniform")

func TestUniformAssignJoin(t *testing.T) {
	// A and B hold 3 each of a 6-partition topic; C joins. Exactly one
	// partition must leave each of A and B for C.
	in := AssignInput{
		Members: []AssignMember{
			asgMember("a", []string{"t"}, tps("t", 0, 1, 2)),
			asgMember("b", []string{"t"}, tps("t", 3, 4, 5)),
			asgMember("c", []string{"t"}),
		},
		Partitions: map[string]int32{"t": 6},
	}
	out := uniformAsg.Assign(in)
	checkAssignValid(t, in, out)
	for _, id := range []string{"a", "b", "c"} {
		if len(out[id]) != 2 {
			t.Fatalf("%s has %d partitions, want 2: %v", id, len(out[id]), out)
		}
	}
	for _, m := range in.Members[:2] {
		for _, tp := range out[m.ID] {
			if !slices.Contains(m.Owned, tp) {
				t.Fatalf("%s got %v it did not own: %v", m.ID, tp, out)
			}
		}
	}
	if n := asgMoves(in, out); n != 2 {
		t.Fatalf("moved %d partitions, want 2: %v", n, out)
	}
}

func TestUniformAssignLeave(t *testing.T) {
	// C leaves; only its partitions move, and they go where balance needs.
	in := AssignInput{
		Members: []AssignMember{
			asgMember("a", []string{"t"}, tps("t", 0, 1)),
			asgMember("b", []string{"t"}, tps("t", 2, 3)),
		},
		Partitions: map[string]int32{"t": 6}, // C owned 4 and 5
	}
	out := uniformAsg.Assign(in)
	checkAssignValid(t, in, out)
	want := Assignment{"a": tps("t", 0, 1, 4), "b": tps("t", 2, 3, 5)}
	if !reflect.DeepEqual(out, want) {
		t.Fatalf("got %v, want %v", out, want)
	}
}

func TestUniformAssignDoubleClaim(t *testing.T) {
	// Both claim t/1 (a hand-over in flight): one of them gets it, and the
	// other claims still count.
	in := AssignInput{
		Members: []AssignMember{
			asgMember("a", []string{"t"}, tps("t", 0, 1)),
			asgMember("b", []string{"t"}, tps("t", 1, 2, 3)),
		},
		Partitions: map[string]int32{"t": 4},
	}
	out := uniformAsg.Assign(in)
	checkAssignValid(t, in, out)
	if asgSpread(in, out) != 0 || !slices.Contains(out["a"], tps("t", 0)[0]) || !slices.Contains(out["b"], tps("t", 2)[0]) || !slices.Contains(out["b"], tps("t", 3)[0]) {
		t.Fatalf("got %v", out)
	}
}

func TestUniformAssignInvalidOwned(t *testing.T) {
	// Claims on deleted topics, unsubscribed topics and vanished partitions
	// are ignored; the valid one (t/3) is kept.
	in := AssignInput{
		Members: []AssignMember{
			asgMember("a", []string{"t"}, tps("gone", 0), tps("t", 3, 9, -1), tps("u", 0)),
			asgMember("b", []string{"t", "u"}),
		},
		Partitions: map[string]int32{"t": 4, "u": 2},
	}
	out := uniformAsg.Assign(in)
	checkAssignValid(t, in, out)
	if !slices.Contains(out["a"], tps("t", 3)[0]) || asgSpread(in, out) > 1 {
		t.Fatalf("got %v", out)
	}
}

func TestUniformAssignHeterogeneous(t *testing.T) {
	cases := []struct {
		name  string
		in    AssignInput
		loads map[string]int
		moves int
	}{
		{
			// No single move helps (pairs differ by one at most), but a
			// chain does: a gives a t1 to b, b gives a t2 to c.
			"chain",
			AssignInput{
				Members: []AssignMember{
					asgMember("a", []string{"t1"}, tps("t1", 0, 1, 2)),
					asgMember("b", []string{"t1", "t2"}, tps("t2", 0, 1)),
					asgMember("c", []string{"t2"}, tps("t2", 2)),
				},
				Partitions: map[string]int32{"t1": 3, "t2": 3},
			},
			map[string]int{"a": 2, "b": 2, "c": 2},
			2,
		},
		{
			// b could take t1 but a has nothing else: b takes all of t2
			// and a all of t1.
			"constrained member keeps its only topic",
			AssignInput{
				Members: []AssignMember{
					asgMember("a", []string{"t1"}),
					asgMember("b", []string{"t1", "t2"}, tps("t1", 0, 1)),
				},
				Partitions: map[string]int32{"t1": 4, "t2": 4},
			},
			map[string]int{"a": 4, "b": 4},
			2,
		},
		{
			// A small topic alone cannot be balanced with a big one.
			"as balanced as subscriptions allow",
			AssignInput{
				Members: []AssignMember{
					asgMember("a", []string{"small"}),
					asgMember("b", []string{"big"}),
					asgMember("c", []string{"big"}),
				},
				Partitions: map[string]int32{"small": 1, "big": 9},
			},
			map[string]int{"a": 1, "b": 5, "c": 4},
			0,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := uniformAsg.Assign(tc.in)
			checkAssignValid(t, tc.in, out)
			checkAssignOptimal(t, tc.in, out)
			for id, n := range tc.loads {
				if len(out[id]) != n {
					t.Fatalf("%s has %d partitions, want %d: %v", id, len(out[id]), n, out)
				}
			}
			if n := asgMoves(tc.in, out); n != tc.moves {
				t.Fatalf("moved %d, want %d: %v", n, tc.moves, out)
			}
		})
	}
}

// TestUniformAssignProperties checks, on random groups: balance (spread <= 1
// with identical subscriptions, optimal otherwise), minimal movement with
// identical subscriptions, and stability (an assignment fed back as what
// members own comes back unchanged).
func TestUniformAssignProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 600 {
		homogeneous := i%2 == 0
		in := randomAssignInput(r, homogeneous, false)
		out := uniformAsg.Assign(in)
		checkAssignValid(t, in, out)
		checkAssignOptimal(t, in, out)
		if homogeneous {
			if s := asgSpread(in, out); s > 1 {
				t.Fatalf("spread %d: %v", s, out)
			}
			if got, want := asgMoves(in, out), asgMinMoves(in); got != want {
				t.Fatalf("moved %d partitions, the minimum is %d\nin: %+v\nout: %v", got, want, in.Members, out)
			}
		}
		again := asgWithOwned(in, out)
		if out2 := uniformAsg.Assign(again); !reflect.DeepEqual(out, out2) {
			t.Fatalf("not stable:\n%v\n%v", out, out2)
		}
	}
}

// TestUniformAssignMembershipChanges plays random joins and leaves on a
// group, feeding each assignment back as what members own: with identical
// subscriptions every step must move the fewest partitions possible, and a
// leave must move only the leaver's partitions.
func TestUniformAssignMembershipChanges(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for round := range 30 {
		parts := map[string]int32{"a": int32(r.IntN(40)), "b": int32(r.IntN(40)), "c": int32(r.IntN(10))}
		topics := []string{"a", "b", "c"}
		in := AssignInput{Partitions: parts}
		next := 0
		var out Assignment
		for step := range 40 {
			if len(in.Members) > 0 && (r.IntN(2) == 0 || len(in.Members) > 30) {
				// Leave.
				i := r.IntN(len(in.Members))
				leaver := in.Members[i]
				in.Members = slices.Delete(slices.Clone(in.Members), i, i+1)
				prev := out
				out = uniformAsg.Assign(in)
				checkAssignValid(t, in, out)
				for _, m := range in.Members {
					for _, tp := range prev[m.ID] {
						if !slices.Contains(out[m.ID], tp) {
							t.Fatalf("round %d step %d: %s left, but %s lost %v", round, step, leaver.ID, m.ID, tp)
						}
					}
				}
			} else {
				// Join, with an ID anywhere in the order.
				id := fmt.Sprintf("m%03d-%d", r.IntN(1000), next)
				next++
				in.Members = append(slices.Clone(in.Members), AssignMember{ID: id, Topics: topics})
				slices.SortFunc(in.Members, compareMemberID)
				out = uniformAsg.Assign(in)
				checkAssignValid(t, in, out)
			}
			if got, want := asgMoves(in, out), asgMinMoves(in); got != want {
				t.Fatalf("round %d step %d: moved %d, minimum %d", round, step, got, want)
			}
			if s := asgSpread(in, out); s > 1 {
				t.Fatalf("round %d step %d: spread %d", round, step, s)
			}
			in = asgWithOwned(in, out)
		}
	}
}

// TestUniformAssignLarge runs a big heterogeneous rebalance: 1,000 members
// and 10,000 partitions, a fifth of the members new.
func TestUniformAssignLarge(t *testing.T) {
	for _, homogeneous := range []bool{true, false} {
		in := largeAssignInput(1000, 20, 500, homogeneous)
		out := uniformAsg.Assign(in)
		checkAssignValid(t, in, out)
		if homogeneous && asgSpread(in, out) > 1 {
			t.Fatalf("spread %d", asgSpread(in, out))
		}
		in = asgWithOwned(in, out)
		// A fifth of the members leave and as many join.
		for i := 0; i < len(in.Members); i += 5 {
			in.Members[i] = AssignMember{ID: in.Members[i].ID + "-new", Topics: in.Members[i].Topics}
		}
		slices.SortFunc(in.Members, compareMemberID)
		out = uniformAsg.Assign(in)
		checkAssignValid(t, in, out)
		if homogeneous {
			if got, want := asgMoves(in, out), asgMinMoves(in); got != want {
				t.Fatalf("moved %d, minimum %d", got, want)
			}
		}
	}
}

// largeAssignInput makes members members subscribing to topics topics of
// partitions partitions each; when heterogeneous, member i subscribes to
// topics i%topics, i%topics+1, ... (1 to 4 topics).
func largeAssignInput(members, topics int, partitions int32, homogeneous bool) AssignInput {
	in := AssignInput{Partitions: map[string]int32{}}
	var names []string
	for i := range topics {
		name := fmt.Sprintf("topic-%03d", i)
		names = append(names, name)
		in.Partitions[name] = partitions
	}
	for i := range members {
		m := AssignMember{ID: fmt.Sprintf("member-%05d", i), Topics: names}
		if !homogeneous {
			m.Topics = nil
			for k := range i%4 + 1 {
				m.Topics = append(m.Topics, names[(i+k)%topics])
			}
			slices.Sort(m.Topics)
		}
		in.Members = append(in.Members, m)
	}
	return in
}

// BenchmarkUniformAssign measures a typical rebalance: 100 members own a
// balanced assignment of 1,000 partitions (10 topics) and one more joins.
func BenchmarkUniformAssign(b *testing.B) {
	in := largeAssignInput(100, 10, 100, true)
	in = asgWithOwned(in, uniformAsg.Assign(in))
	in.Members = append(in.Members, AssignMember{ID: "member-00050-new", Topics: in.Members[0].Topics})
	slices.SortFunc(in.Members, compareMemberID)
	b.ReportAllocs()
	for b.Loop() {
		uniformAsg.Assign(in)
	}
}

// BenchmarkUniformAssignLarge is the upper end: 1,000 members, 10,000
// partitions, a fifth of the members replaced.
func BenchmarkUniformAssignLarge(b *testing.B) {
	for _, homogeneous := range []bool{true, false} {
		b.Run(fmt.Sprintf("homogeneous=%v", homogeneous), func(b *testing.B) {
			in := largeAssignInput(1000, 20, 500, homogeneous)
			in = asgWithOwned(in, uniformAsg.Assign(in))
			for i := 0; i < len(in.Members); i += 5 {
				in.Members[i] = AssignMember{ID: in.Members[i].ID + "-new", Topics: in.Members[i].Topics}
			}
			slices.SortFunc(in.Members, compareMemberID)
			b.ReportAllocs()
			for b.Loop() {
				uniformAsg.Assign(in)
			}
		})
	}
}

func BenchmarkRangeAssign(b *testing.B) {
	in := largeAssignInput(1000, 20, 500, false)
	b.ReportAllocs()
	for b.Loop() {
		rangeAssignor{}.Assign(in)
	}
}
