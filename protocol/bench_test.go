package protocol

import (
	"fmt"
	"io"
	"testing"
)

func benchProduceRequest() *ProduceRequest {
	m := &ProduceRequest{Acks: -1, TimeoutMs: 30000, Topics: []ProduceRequestTopic{{Name: "orders"}}}
	for p := range 8 {
		m.Topics[0].Partitions = append(m.Topics[0].Partitions,
			ProduceRequestPartition{Partition: int32(p), Records: fill(64<<10, byte(p))})
	}
	return m
}

// BenchmarkProduceRequest encodes and decodes a produce of 8 partitions of
// 64 KiB batches. Decoding does not copy the batches.
func BenchmarkProduceRequest(b *testing.B) {
	m := benchProduceRequest()
	encoded := m.AppendTo(nil)
	b.Run("encode", func(b *testing.B) {
		b.SetBytes(int64(len(encoded)))
		b.ReportAllocs()
		buf := make([]byte, 0, len(encoded))
		for b.Loop() {
			buf = m.AppendTo(buf[:0])
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(int64(len(encoded)))
		b.ReportAllocs()
		var got ProduceRequest
		for b.Loop() {
			if err := got.Decode(NewReader(encoded)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkFetchResponseHeader encodes a fetch response whose records (8
// partitions of 1 MiB) are external: what the broker encodes per fetch
// before it sends the records with sendfile. The bytes are those encoded.
func BenchmarkFetchResponseHeader(b *testing.B) {
	m := &FetchResponse{Topics: []FetchResponseTopic{{Name: "orders"}}}
	for p := range 8 {
		m.Topics[0].Partitions = append(m.Topics[0].Partitions, FetchResponsePartition{
			Partition: int32(p), HighWatermark: 1 << 30, LogStartOffset: 1 << 20, LeaderID: 1})
	}
	external := func(int) (int32, bool) { return 1 << 20, true }
	var f SegmentedFrame
	if err := f.EncodeResponse(1, m, external); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(f.Buf)))
	b.ReportAllocs()
	for b.Loop() {
		if err := f.EncodeResponse(1, m, external); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(f.Size()), "frame-bytes")
}

func benchMetadataResponse(topics, partitions int) *MetadataResponse {
	m := &MetadataResponse{ControllerID: 1}
	for n := range 3 {
		m.Brokers = append(m.Brokers, MetadataResponseBroker{NodeID: int32(n + 1), Host: fmt.Sprintf("broker-%d.example.com", n+1), Port: 7420})
	}
	for t := range topics {
		topic := MetadataResponseTopic{Name: fmt.Sprintf("topic-%03d", t)}
		for p := range partitions {
			topic.Partitions = append(topic.Partitions, MetadataResponsePartition{
				Partition: int32(p), LeaderID: int32(p%3 + 1), LeaderEpoch: 4, Replicas: []int32{1, 2, 3},
				HighWatermark: 123456789, LogStartOffset: 1000})
		}
		m.Topics = append(m.Topics, topic)
	}
	return m
}

// BenchmarkMetadataResponse encodes and decodes metadata for 100 topics of 6
// partitions, 3 replicas each.
func BenchmarkMetadataResponse(b *testing.B) {
	m := benchMetadataResponse(100, 6)
	encoded := m.AppendTo(nil)
	b.Run("encode", func(b *testing.B) {
		b.SetBytes(int64(len(encoded)))
		b.ReportAllocs()
		buf := make([]byte, 0, len(encoded))
		for b.Loop() {
			buf = m.AppendTo(buf[:0])
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(int64(len(encoded)))
		b.ReportAllocs()
		var got MetadataResponse
		for b.Loop() {
			if err := got.Decode(NewReader(encoded)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkReadFrame reads 512 KiB produce frames into a reused buffer.
func BenchmarkReadFrame(b *testing.B) {
	frame, err := AppendRequestFrame(nil, 1, "bench", benchProduceRequest())
	if err != nil {
		b.Fatal(err)
	}
	r := &repeatReader{data: frame}
	buf := make([]byte, 0, len(frame))
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReadFrame(r, 0, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// repeatReader returns data over and over.
type repeatReader struct {
	data []byte
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := copy(p, r.data[r.off:])
	r.off = (r.off + n) % len(r.data)
	return n, nil
}

var _ io.Reader = (*repeatReader)(nil)
