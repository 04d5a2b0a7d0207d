package client

import (
	"bufio"
	"fmt"
	"net"
	"testing"
	"time"

	"weir/protocol"
	"weir/protocol/record"
)

// TestPipelinedProduceKeepsOrder: PROTOCOL.md lets a client pipeline
// requests on a connection, and an idempotent producer keeps up to 5
// batches of a partition in flight. The broker must append them in the
// order they were sent: handled concurrently, a batch that overtook its
// predecessor was refused with OutOfOrderSequence (and a non-idempotent one
// appended out of order). This test writes 5 idempotent batches of one
// partition in one write, with sequences 0, 100, 200, ..., and expects all
// five to succeed, in order.
func TestPipelinedProduceKeepsOrder(t *testing.T) {
	addr := startBroker(t)
	createTopic(t, addr, "pipe", 1, nil)
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	br := bufio.NewReader(nc)
	corr := int32(0)
	roundTrip := func(reqs ...protocol.Request) []protocol.Response {
		var out []byte
		for _, req := range reqs {
			corr++
			out, err = protocol.AppendRequestFrame(out, corr, "bug", req)
			if err != nil {
				t.Fatal(err)
			}
		}
		nc.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := nc.Write(out); err != nil {
			t.Fatal(err)
		}
		var resps []protocol.Response
		for _, req := range reqs {
			frame, err := protocol.ReadFrame(br, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, body, err := protocol.DecodeResponseHeader(frame)
			if err != nil {
				t.Fatal(err)
			}
			resp := req.ResponseKind()
			if err := resp.Decode(protocol.NewReader(body)); err != nil {
				t.Fatal(err)
			}
			resps = append(resps, resp)
		}
		return resps
	}
	pid := roundTrip(&protocol.InitProducerIDRequest{})[0].(*protocol.InitProducerIDResponse).ProducerID

	const perBatch = 100
	value := make([]byte, 1000) // big enough that validating a batch takes a while
	seq := int32(0)
	for round := range 20 {
		var reqs []protocol.Request
		for range maxInFlightIdempotent {
			b := record.NewBuilder(record.CodecNone)
			b.SetProducer(pid, 0, seq)
			for range perBatch {
				b.Append(record.Record{Value: value, Timestamp: 1})
			}
			data, err := b.AppendTo(nil)
			if err != nil {
				t.Fatal(err)
			}
			seq += perBatch
			reqs = append(reqs, &protocol.ProduceRequest{Acks: protocol.AcksAll, TimeoutMs: 10_000,
				Topics: []protocol.ProduceRequestTopic{{Name: "pipe", Partitions: []protocol.ProduceRequestPartition{{Partition: 0, Records: data}}}}})
		}
		for i, resp := range roundTrip(reqs...) {
			p := resp.(*protocol.ProduceResponse).Topics[0].Partitions[0]
			if p.ErrorCode != protocol.CodeNone {
				msg := ""
				if p.ErrorMessage != nil {
					msg = *p.ErrorMessage
				}
				t.Fatalf("round %d, batch %d of %d pipelined: %v (%s)", round, i+1, len(reqs), p.ErrorCode, msg)
			}
			want := int64(round*maxInFlightIdempotent+i) * perBatch
			if p.BaseOffset != want {
				t.Fatalf("round %d, batch %d: base offset %d, want %d: appended out of order", round, i+1, p.BaseOffset, want)
			}
		}
	}
	fmt.Println("no reordering seen")
}
