package client

import (
	"sync"
	"sync/atomic"
)

// Partitioner chooses the partition of each produced record. A Producer
// calls it from Produce, so implementations must be safe for concurrent
// use. A partition out of range fails the record with ErrInvalidPartition.
type Partitioner interface {
	// Partition returns the partition of r among partitions (>= 1), in
	// [0, partitions).
	Partition(r *Record, partitions int32) int32
	// BatchSealed tells the partitioner that the open batch of the topic's
	// partition takes no more records (it is full, or has lingered), so
	// that a sticky choice can move on.
	BatchSealed(topic string, partition int32)
}

// KeyHashPartitioner returns the default partitioner. A record with a key
// goes to murmur2(key) mod partitions, Kafka's formula (the hash's sign bit
// cleared), so equal keys land in the same partition and a topic keyed the
// same way in Kafka maps the same. A record without a key (nil Key) goes to
// a sticky partition: all of them fill one partition's batch, and when it
// is sealed the next one in round-robin order takes over. Records then
// batch well without skewing the partitions for long.
func KeyHashPartitioner() Partitioner { return &keyHashPartitioner{} }

type keyHashPartitioner struct {
	sticky stickyPartitioner
}

func (p *keyHashPartitioner) Partition(r *Record, partitions int32) int32 {
	if r.Key == nil {
		return p.sticky.partition(r.Topic, partitions)
	}
	return int32(murmur2(r.Key)&0x7fffffff) % partitions
}

func (p *keyHashPartitioner) BatchSealed(topic string, partition int32) {
	p.sticky.sealed(topic, partition)
}

// stickyPartitioner keeps one partition per topic until its batch is
// sealed, then moves to the next.
type stickyPartitioner struct {
	mu     sync.Mutex
	topics map[string]int32 // the current partition; absent: choose
	next   map[string]int32 // where to go after it
}

func (s *stickyPartitioner) partition(topic string, partitions int32) int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.topics[topic]; ok && p < partitions {
		return p
	}
	if s.topics == nil {
		s.topics, s.next = map[string]int32{}, map[string]int32{}
	}
	p := s.next[topic] % partitions
	s.topics[topic] = p
	s.next[topic] = (p + 1) % partitions
	return p
}

func (s *stickyPartitioner) sealed(topic string, partition int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.topics[topic]; ok && p == partition {
		delete(s.topics, topic)
	}
}

// RoundRobinPartitioner returns a partitioner that sends each record to the
// next partition of its topic in turn, ignoring keys.
func RoundRobinPartitioner() Partitioner { return &roundRobinPartitioner{} }

type roundRobinPartitioner struct {
	counters sync.Map // topic -> *atomic.Uint32
}

func (p *roundRobinPartitioner) Partition(r *Record, partitions int32) int32 {
	c, ok := p.counters.Load(r.Topic)
	if !ok {
		c, _ = p.counters.LoadOrStore(r.Topic, new(atomic.Uint32))
	}
	n := c.(*atomic.Uint32).Add(1) - 1
	return int32(n % uint32(partitions))
}

func (*roundRobinPartitioner) BatchSealed(string, int32) {}

// ExplicitPartitioner returns a partitioner that uses each record's
// Partition field as it is.
func ExplicitPartitioner() Partitioner { return explicitPartitioner{} }

type explicitPartitioner struct{}

func (explicitPartitioner) Partition(r *Record, _ int32) int32 { return r.Partition }
func (explicitPartitioner) BatchSealed(string, int32)          {}

// murmur2 is the 32-bit MurmurHash2 with Kafka's seed, as Kafka's default
// partitioner computes it (org.apache.kafka.common.utils.Utils.murmur2).
func murmur2(data []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	length := len(data)
	h := seed ^ uint32(length)
	for i := 0; i+4 <= length; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := data[length&^3:]
	switch len(tail) {
	case 3:
		h ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(tail[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}
