package client

import (
	"fmt"
	"testing"
)

// TestMurmur2 checks the hash against Kafka's own test vectors
// (org.apache.kafka.common.utils.UtilsTest.testMurmur2).
func TestMurmur2(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int32
	}{
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
	} {
		if got := int32(murmur2([]byte(tc.in))); got != tc.want {
			t.Errorf("murmur2(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestKeyHashPartitioner(t *testing.T) {
	p := KeyHashPartitioner()
	counts := make([]int, 6)
	for i := range 6000 {
		key := []byte(fmt.Sprintf("key-%d", i))
		a := p.Partition(&Record{Topic: "t", Key: key}, 6)
		if b := p.Partition(&Record{Topic: "t", Key: key}, 6); a != b {
			t.Fatalf("key %q went to %d then %d", key, a, b)
		}
		counts[a]++
	}
	for i, n := range counts {
		if n < 800 || n > 1200 {
			t.Errorf("partition %d got %d of 6000 keys", i, n)
		}
	}
	// An empty key is a key; only nil is none.
	if a, b := p.Partition(&Record{Topic: "t", Key: []byte{}}, 6), p.Partition(&Record{Topic: "t", Key: []byte{}}, 6); a != b {
		t.Fatalf("empty key went to %d and %d", a, b)
	}
}

func TestStickyPartitioning(t *testing.T) {
	p := KeyHashPartitioner()
	first := p.Partition(&Record{Topic: "t"}, 3)
	for range 10 {
		if got := p.Partition(&Record{Topic: "t"}, 3); got != first {
			t.Fatalf("keyless records moved from %d to %d before the batch was sealed", first, got)
		}
	}
	// Sealing another partition's batch changes nothing.
	p.BatchSealed("t", (first+1)%3)
	if got := p.Partition(&Record{Topic: "t"}, 3); got != first {
		t.Fatalf("moved to %d when another partition's batch was sealed", got)
	}
	seen := map[int32]bool{first: true}
	cur := first
	for range 2 {
		p.BatchSealed("t", cur)
		next := p.Partition(&Record{Topic: "t"}, 3)
		if next == cur {
			t.Fatalf("stayed on %d after its batch was sealed", cur)
		}
		seen[next], cur = true, next
	}
	if len(seen) != 3 {
		t.Fatalf("three batches went to partitions %v", seen)
	}
	// Topics are independent.
	if got := p.Partition(&Record{Topic: "other"}, 3); got < 0 || got >= 3 {
		t.Fatalf("partition %d of 3", got)
	}
}

func TestRoundRobinPartitioner(t *testing.T) {
	p := RoundRobinPartitioner()
	for i := range 10 {
		if got := p.Partition(&Record{Topic: "t", Key: []byte("same")}, 4); got != int32(i%4) {
			t.Fatalf("record %d went to %d", i, got)
		}
	}
}
