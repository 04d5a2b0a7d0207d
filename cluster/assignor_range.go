package cluster

// rangeAssignor is Kafka's range assignor: topic by topic, the subscribers
// (sorted by ID) each get a contiguous range of partitions, the first
// count%n of them one more than the rest.
//
// It ignores what members own: the layout depends only on who subscribes to
// what, which makes it predictable. Its use is co-partitioning: members
// subscribing to the same topics get the same partition numbers of each
// (partition i of "orders" and of "payments" land on the same member), so
// a consumer can join topics keyed alike. The price is balance across topics:
// the extra partitions of every topic go to the same first members.
type rangeAssignor struct{}

func (rangeAssignor) Name() string { return "range" }

func (rangeAssignor) Assign(in AssignInput) Assignment {
	v := newAssignView(in)
	owner := make([]int32, v.total())
	for t := range v.topics {
		subs := v.subscribers(int32(t))
		count := v.offset[t+1] - v.offset[t]
		// Every listed topic has a subscriber, but an empty list must not
		// divide by zero.
		if len(subs) == 0 {
			for g := v.offset[t]; g < v.offset[t+1]; g++ {
				owner[g] = -1
			}
			continue
		}
		per, extra := count/len(subs), count%len(subs)
		g := v.offset[t]
		for i, m := range subs {
			n := per
			if i < extra {
				n++
			}
			for range n {
				owner[g] = m
				g++
			}
		}
	}
	return v.result(owner)
}
