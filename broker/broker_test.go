package broker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"weir/protocol"
	"weir/protocol/record"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/armon/go-metrics.(*InmemSink).run"),
		goleak.IgnoreTopFunction("github.com/hashicorp/go-metrics.(*InmemSink).run"),
	)
}

// startBroker runs a broker on 127.0.0.1 and returns its address.
func startBroker(t testing.TB, mutate func(*Config)) (*Broker, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startBrokerOn(t, ln, mutate), ln.Addr().String()
}

// startBrokerOn runs a broker serving ln.
func startBrokerOn(t testing.TB, ln net.Listener, mutate func(*Config)) *Broker {
	t.Helper()
	cfg := Config{DataDir: t.TempDir(), RaftHeartbeatTimeout: 50 * time.Millisecond,
		RaftElectionTimeout: 50 * time.Millisecond, RaftLeaderLeaseTimeout: 50 * time.Millisecond}
	if mutate != nil {
		mutate(&cfg)
	}
	b, err := Open(cfg)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- b.Serve(ln) }()
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return b
}

// rawClient speaks the protocol one request at a time.
type rawClient struct {
	t    testing.TB
	conn net.Conn
	corr int32
}

func dial(t testing.TB, addr string) *rawClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, conn: c}
}

func (c *rawClient) send(req protocol.Request) {
	c.t.Helper()
	c.corr++
	frame, err := protocol.AppendRequestFrame(nil, c.corr, "test", req)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.conn.Write(frame); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawClient) receive(req protocol.Request) protocol.Response {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	frame, err := protocol.ReadFrame(c.conn, 0, nil)
	if err != nil {
		c.t.Fatalf("reading response: %v", err)
	}
	hdr, body, err := protocol.DecodeResponseHeader(frame)
	if err != nil || hdr.CorrelationID != c.corr {
		c.t.Fatalf("response header %+v, %v; want correlation %d", hdr, err, c.corr)
	}
	resp := req.ResponseKind()
	if err := resp.Decode(protocol.NewReader(body)); err != nil {
		c.t.Fatalf("decoding %T: %v", resp, err)
	}
	return resp
}

func (c *rawClient) call(req protocol.Request) protocol.Response {
	c.t.Helper()
	c.send(req)
	return c.receive(req)
}

func testBatch(t testing.TB, n int, tag string) []byte {
	t.Helper()
	return producerBatch(t, n, tag, record.NoProducerID, record.NoSequence)
}

// producerBatch is testBatch from an idempotent producer (id; epoch 0)
// whose first record has sequence seq: a retry of it is not stored twice.
func producerBatch(t testing.TB, n int, tag string, id int64, seq int32) []byte {
	t.Helper()
	b := record.NewBuilder(record.CodecNone)
	if id != record.NoProducerID {
		b.SetProducer(id, 0, seq)
	}
	for i := range n {
		b.Append(record.Record{Key: []byte(tag), Value: []byte(fmt.Sprintf("%s-%d", tag, i)), Timestamp: time.Now().UnixMilli()})
	}
	out, err := b.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func createTopic(t testing.TB, c *rawClient, name string, partitions int32, configs ...protocol.CreateTopicsRequestConfig) {
	t.Helper()
	resp := c.call(&protocol.CreateTopicsRequest{TimeoutMs: 10_000, Topics: []protocol.CreateTopicsRequestTopic{
		{Name: name, Partitions: partitions, ReplicationFactor: 1, Configs: configs}}}).(*protocol.CreateTopicsResponse)
	if code := resp.Topics[0].ErrorCode; code != protocol.CodeNone {
		t.Fatalf("CreateTopics: %v %v", code, resp.Topics[0].ErrorMessage)
	}
}

func produceReq(topic string, partition int32, batch []byte) *protocol.ProduceRequest {
	return &protocol.ProduceRequest{Acks: protocol.AcksAll, TimeoutMs: 10_000, Topics: []protocol.ProduceRequestTopic{
		{Name: topic, Partitions: []protocol.ProduceRequestPartition{{Partition: partition, Records: batch}}}}}
}

// countRecords decodes fetched frames (log frames holding record batches)
// and returns the values from offset from on.
func fetchedValues(t *testing.T, frames []byte, from int64) []string {
	t.Helper()
	var out []string
	for len(frames) > 0 {
		if len(frames) < 48 {
			t.Fatalf("short frame: %d bytes", len(frames))
		}
		size := int(binary.BigEndian.Uint32(frames[0:4])) + 4
		typ, base := frames[9], int64(binary.BigEndian.Uint64(frames[32:40]))
		payload := frames[48:size]
		frames = frames[size:]
		if typ != 0 {
			continue
		}
		r, err := record.NewReader(payload)
		if err != nil {
			t.Fatal(err)
		}
		for {
			rec, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if base+int64(rec.OffsetDelta) >= from {
				out = append(out, string(rec.Value))
			}
		}
	}
	return out
}

func TestProduceFetchOverTCP(t *testing.T) {
	_, addr := startBroker(t, nil)
	c := dial(t, addr)
	if resp := c.call(&protocol.APIVersionsRequest{}).(*protocol.APIVersionsResponse); len(resp.APIs) == 0 {
		t.Fatal("no APIs")
	}
	createTopic(t, c, "orders", 3)
	meta := c.call(&protocol.MetadataRequest{Topics: []string{"orders", "nope"}}).(*protocol.MetadataResponse)
	if len(meta.Brokers) != 1 || meta.Brokers[0].Host != "127.0.0.1" || len(meta.Topics) != 2 ||
		len(meta.Topics[0].Partitions) != 3 || meta.Topics[0].Partitions[0].LeaderID != 1 ||
		meta.Topics[1].ErrorCode != protocol.CodeUnknownTopicOrPartition {
		t.Fatalf("metadata %+v", meta)
	}
	var want []string
	for i := range 5 {
		batch := testBatch(t, 4, fmt.Sprintf("b%d", i))
		resp := c.call(produceReq("orders", 1, batch)).(*protocol.ProduceResponse)
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != protocol.CodeNone || p.BaseOffset != int64(4*i) {
			t.Fatalf("produce %d: %+v", i, p)
		}
		for j := range 4 {
			want = append(want, fmt.Sprintf("b%d-%d", i, j))
		}
	}
	fetch := func(offset int64, maxWait int32) *protocol.FetchResponsePartition {
		resp := c.call(&protocol.FetchRequest{MaxWaitMs: maxWait, MinBytes: 1, MaxBytes: 1 << 20,
			Topics: []protocol.FetchRequestTopic{{Name: "orders", Partitions: []protocol.FetchRequestPartition{
				{Partition: 1, FetchOffset: offset, PartitionMaxBytes: 1 << 20}}}}}).(*protocol.FetchResponse)
		return &resp.Topics[0].Partitions[0]
	}
	p := fetch(0, 0)
	if p.ErrorCode != protocol.CodeNone || p.HighWatermark != 20 {
		t.Fatalf("fetch: %+v", p)
	}
	if got := fetchedValues(t, p.Records, 0); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("fetched %v, want %v", got, want)
	}
	if got := fetchedValues(t, fetch(6, 0).Records, 6); fmt.Sprint(got) != fmt.Sprint(want[6:]) {
		t.Fatalf("fetched from 6: %v", got)
	}
	if p := fetch(21, 0); p.ErrorCode != protocol.CodeOffsetOutOfRange {
		t.Fatalf("fetch past the end: %+v", p)
	}
	// A long poll at the end waits for the next produce.
	c2 := dial(t, addr)
	c.send(&protocol.FetchRequest{MaxWaitMs: 10_000, MinBytes: 1, MaxBytes: 1 << 20,
		Topics: []protocol.FetchRequestTopic{{Name: "orders", Partitions: []protocol.FetchRequestPartition{
			{Partition: 1, FetchOffset: 20, PartitionMaxBytes: 1 << 20}}}}})
	if r := c2.call(produceReq("orders", 1, testBatch(t, 1, "late"))).(*protocol.ProduceResponse); r.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("produce: %+v", r)
	}
	polled := c.receive(&protocol.FetchRequest{}).(*protocol.FetchResponse)
	if got := fetchedValues(t, polled.Topics[0].Partitions[0].Records, 20); fmt.Sprint(got) != "[late-0]" {
		t.Fatalf("long poll got %v", got)
	}
	lo := c.call(&protocol.ListOffsetsRequest{Topics: []protocol.ListOffsetsRequestTopic{{Name: "orders",
		Partitions: []protocol.ListOffsetsRequestPartition{{Partition: 1, Timestamp: protocol.TimestampEarliest}, {Partition: 1, Timestamp: protocol.TimestampLatest}}}}}).(*protocol.ListOffsetsResponse)
	if ps := lo.Topics[0].Partitions; ps[0].Offset != 0 || ps[1].Offset != 21 {
		t.Fatalf("list offsets %+v", ps)
	}
	if r := c.call(produceReq("nope", 0, testBatch(t, 1, "x"))).(*protocol.ProduceResponse); r.Topics[0].Partitions[0].ErrorCode != protocol.CodeUnknownTopicOrPartition {
		t.Fatalf("produce to an unknown topic: %+v", r.Topics[0].Partitions[0])
	}
	if r := c.call(produceReq("orders", 0, []byte("not a batch"))).(*protocol.ProduceResponse); r.Topics[0].Partitions[0].ErrorCode != protocol.CodeCorruptMessage {
		t.Fatalf("produce garbage: %+v", r.Topics[0].Partitions[0])
	}
}

func TestTopicFullBackpressure(t *testing.T) {
	_, addr := startBroker(t, nil)
	c := dial(t, addr)
	createTopic(t, c, "small", 1,
		protocol.CreateTopicsRequestConfig{Key: "max.bytes", Value: "2000"},
		protocol.CreateTopicsRequestConfig{Key: "discard", Value: "reject"})
	var accepted int
	for i := range 100 {
		r := c.call(produceReq("small", 0, testBatch(t, 5, fmt.Sprint(i)))).(*protocol.ProduceResponse)
		p := r.Topics[0].Partitions[0]
		if p.ErrorCode == protocol.CodeBackpressure {
			if p.RetryAfterMs <= 0 || !p.ErrorCode.Retriable() {
				t.Fatalf("backpressure without a retry hint: %+v", p)
			}
			break
		}
		if p.ErrorCode != protocol.CodeNone {
			t.Fatalf("produce: %+v", p)
		}
		accepted++
	}
	if accepted == 0 || accepted == 100 {
		t.Fatalf("accepted %d batches before backpressure", accepted)
	}
	// Everything accepted is still there.
	resp := c.call(&protocol.FetchRequest{MaxBytes: 1 << 20, Topics: []protocol.FetchRequestTopic{{Name: "small",
		Partitions: []protocol.FetchRequestPartition{{Partition: 0, PartitionMaxBytes: 1 << 20}}}}}).(*protocol.FetchResponse)
	if got := len(fetchedValues(t, resp.Topics[0].Partitions[0].Records, 0)); got != 5*accepted {
		t.Fatalf("fetched %d records, accepted %d", got, 5*accepted)
	}
}

func TestConnectionLimits(t *testing.T) {
	_, addr := startBroker(t, func(c *Config) { c.MaxFrameBytes = 1 << 10 })
	t.Run("oversized frame closes the connection", func(t *testing.T) {
		c := dial(t, addr)
		var size [4]byte
		binary.BigEndian.PutUint32(size[:], 1<<30)
		c.conn.Write(size[:])
		c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Fatalf("read after an oversized frame: %v, want EOF", err)
		}
	})
	t.Run("malformed request closes the connection", func(t *testing.T) {
		c := dial(t, addr)
		c.conn.Write([]byte{0, 0, 0, 3, 0xff, 0xff, 0xff})
		c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Fatalf("read after a malformed request: %v, want EOF", err)
		}
	})
}

func TestMaxConnections(t *testing.T) {
	_, addr := startBroker(t, func(c *Config) { c.MaxConnections = 2 })
	{
		a, b := dial(t, addr), dial(t, addr)
		a.call(&protocol.APIVersionsRequest{})
		b.call(&protocol.APIVersionsRequest{})
		c := dial(t, addr)
		c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Fatalf("third connection: %v, want EOF", err)
		}
		a.call(&protocol.APIVersionsRequest{}) // the others still work
	}
}

func TestAPIVersionsAtUnsupportedVersion(t *testing.T) {
	_, addr := startBroker(t, nil)
	c := dial(t, addr)
	req := &protocol.APIVersionsRequest{Version: 99}
	resp := c.call(req).(*protocol.APIVersionsResponse)
	if resp.ErrorCode != protocol.CodeUnsupportedVersion || len(resp.APIs) == 0 {
		t.Fatalf("APIVersions v99: %+v, want UnsupportedVersion and the supported APIs", resp)
	}
	// The connection stays open for the client to go on at a version we speak.
	if resp := c.call(&protocol.APIVersionsRequest{}).(*protocol.APIVersionsResponse); resp.ErrorCode != protocol.CodeNone {
		t.Fatalf("APIVersions v0 after: %+v", resp)
	}
}
