package client

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"

	"weir/protocol"
	"weir/protocol/record"
)

// fakeBroker is a TCP server in the test that speaks protocol frames, so
// tests can script a broker's answers: retriable errors, redirects,
// dropped connections, silence. By default it answers Metadata with itself
// leading every partition of its topics, InitProducerID with id 7 epoch 0,
// and Produce with success; a test overrides per request with handle.
type fakeBroker struct {
	tb     testing.TB
	ln     net.Listener
	addr   string
	nodeID int32

	// wg counts the accept loop and the connection handlers.
	wg sync.WaitGroup

	mu struct {
		sync.Mutex
		topics   map[string]int32 // topic -> partitions
		peers    []*fakeBroker    // other brokers named in Metadata
		leaders  map[topicPartition]int32
		handle   func(req protocol.Request) fakeReply
		requests map[protocol.APIKey]int
		conns    map[net.Conn]struct{}
		next     map[topicPartition]int64 // next base offset per partition
		// controller is the controller_id Metadata names; 0: this node.
		controller int32
	}
}

// fakeReply is what the fake does with one request.
type fakeReply struct {
	resp protocol.Response // sent if not nil
	drop bool              // close the connection without answering
	hang bool              // never answer (the connection stays open)
	// freeze: answer nothing more on this connection, as a stopped
	// process whose kernel keeps the socket open.
	freeze bool
	// pass falls through to the default answer.
	pass bool
}

// startFake starts a fake broker with node id nodeID, closed at cleanup.
func startFake(tb testing.TB, nodeID int32) *fakeBroker {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	fb := &fakeBroker{tb: tb, ln: ln, addr: ln.Addr().String(), nodeID: nodeID}
	fb.mu.topics = map[string]int32{}
	fb.mu.leaders = map[topicPartition]int32{}
	fb.mu.requests = map[protocol.APIKey]int{}
	fb.mu.conns = map[net.Conn]struct{}{}
	fb.mu.next = map[topicPartition]int64{}
	fb.wg.Add(1)
	go fb.accept()
	tb.Cleanup(fb.close)
	return fb
}

// addTopic makes the fake know a topic, led by itself.
func (fb *fakeBroker) addTopic(name string, partitions int32) {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	fb.mu.topics[name] = partitions
}

// addPeer makes Metadata list another fake broker.
func (fb *fakeBroker) addPeer(peer *fakeBroker) {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	fb.mu.peers = append(fb.mu.peers, peer)
}

// setLeader makes Metadata name another node as a partition's leader.
func (fb *fakeBroker) setLeader(topic string, partition, nodeID int32) {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	fb.mu.leaders[topicPartition{topic, partition}] = nodeID
}

// setController makes Metadata name another node as the controller.
func (fb *fakeBroker) setController(nodeID int32) {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	fb.mu.controller = nodeID
}

// setHandler scripts the answers; nil restores the defaults.
func (fb *fakeBroker) setHandler(h func(req protocol.Request) fakeReply) {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	fb.mu.handle = h
}

// count returns how many requests of an API the fake has read.
func (fb *fakeBroker) count(key protocol.APIKey) int {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	return fb.mu.requests[key]
}

func (fb *fakeBroker) close() {
	fb.ln.Close()
	fb.mu.Lock()
	for c := range fb.mu.conns {
		c.Close()
	}
	fb.mu.Unlock()
	fb.wg.Wait()
}

func (fb *fakeBroker) accept() {
	defer fb.wg.Done()
	for {
		c, err := fb.ln.Accept()
		if err != nil {
			return
		}
		fb.mu.Lock()
		fb.mu.conns[c] = struct{}{}
		fb.mu.Unlock()
		fb.wg.Add(1)
		go fb.serve(c)
	}
}

// serve answers one connection's requests in order, one at a time.
func (fb *fakeBroker) serve(c net.Conn) {
	defer fb.wg.Done()
	defer func() {
		c.Close()
		fb.mu.Lock()
		delete(fb.mu.conns, c)
		fb.mu.Unlock()
	}()
	br := bufio.NewReader(c)
	for {
		frame, err := protocol.ReadFrame(br, 0, nil)
		if err != nil {
			return
		}
		hdr, req, err := protocol.DecodeRequest(frame)
		if err != nil {
			fb.tb.Errorf("fake broker: bad request: %v", err)
			return
		}
		fb.mu.Lock()
		fb.mu.requests[hdr.APIKey]++
		h := fb.mu.handle
		fb.mu.Unlock()
		reply := fakeReply{pass: true}
		if h != nil {
			reply = h(req)
		}
		switch {
		case reply.drop:
			return
		case reply.hang:
			continue
		case reply.freeze:
			io.Copy(io.Discard, c)
			return
		case reply.pass:
			reply.resp = fb.defaultAnswer(req)
		}
		if reply.resp == nil {
			continue // acks 0
		}
		out, err := protocol.AppendResponseFrame(nil, hdr.CorrelationID, reply.resp)
		if err != nil {
			fb.tb.Errorf("fake broker: encode: %v", err)
			return
		}
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

// defaultAnswer is the fake's answer when the handler passes.
func (fb *fakeBroker) defaultAnswer(req protocol.Request) protocol.Response {
	switch r := req.(type) {
	case *protocol.MetadataRequest:
		return fb.metadata(r)
	case *protocol.InitProducerIDRequest:
		return &protocol.InitProducerIDResponse{ProducerID: 7, ProducerEpoch: 0}
	case *protocol.ProduceRequest:
		if r.Acks == protocol.AcksNone {
			return nil
		}
		return fb.produceOK(r)
	}
	fb.tb.Errorf("fake broker: no default answer for %v", req.Key())
	return nil
}

// produceOK acknowledges every batch of a produce, with dense offsets.
func (fb *fakeBroker) produceOK(r *protocol.ProduceRequest) *protocol.ProduceResponse {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	resp := &protocol.ProduceResponse{}
	for _, t := range r.Topics {
		rt := protocol.ProduceResponseTopic{Name: t.Name}
		for _, p := range t.Partitions {
			tp := topicPartition{t.Name, p.Partition}
			base := fb.mu.next[tp]
			fb.mu.next[tp] = base + int64(batchCount(p.Records))
			rt.Partitions = append(rt.Partitions, protocol.ProduceResponsePartition{Partition: p.Partition, BaseOffset: base, LeaderID: -1})
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (fb *fakeBroker) metadata(r *protocol.MetadataRequest) *protocol.MetadataResponse {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	resp := &protocol.MetadataResponse{ControllerID: fb.nodeID}
	if fb.mu.controller != 0 {
		resp.ControllerID = fb.mu.controller
	}
	for _, b := range append([]*fakeBroker{fb}, fb.mu.peers...) {
		host, port, _ := net.SplitHostPort(b.addr)
		n, _ := strconv.Atoi(port)
		resp.Brokers = append(resp.Brokers, protocol.MetadataResponseBroker{NodeID: b.nodeID, Host: host, Port: int32(n)})
	}
	for _, name := range r.Topics {
		n, ok := fb.mu.topics[name]
		if !ok {
			resp.Topics = append(resp.Topics, protocol.MetadataResponseTopic{Name: name, ErrorCode: protocol.CodeUnknownTopicOrPartition})
			continue
		}
		t := protocol.MetadataResponseTopic{Name: name}
		for p := range n {
			leader := fb.nodeID
			if id, ok := fb.mu.leaders[topicPartition{name, p}]; ok {
				leader = id
			}
			t.Partitions = append(t.Partitions, protocol.MetadataResponsePartition{Partition: p, LeaderID: leader, Replicas: []int32{leader}})
		}
		resp.Topics = append(resp.Topics, t)
	}
	return resp
}

// produceBatch returns the one batch of a single-partition produce.
func produceBatch(r *protocol.ProduceRequest) ([]byte, error) {
	if len(r.Topics) != 1 || len(r.Topics[0].Partitions) != 1 {
		return nil, errors.New("not a single-partition produce")
	}
	return r.Topics[0].Partitions[0].Records, nil
}

// produceError answers a single-partition produce with an error.
func produceError(r *protocol.ProduceRequest, code protocol.ErrorCode, edit func(*protocol.ProduceResponsePartition)) *protocol.ProduceResponse {
	t := r.Topics[0]
	p := protocol.ProduceResponsePartition{Partition: t.Partitions[0].Partition, ErrorCode: code, BaseOffset: -1, LeaderID: -1}
	if edit != nil {
		edit(&p)
	}
	return &protocol.ProduceResponse{Topics: []protocol.ProduceResponseTopic{{Name: t.Name, Partitions: []protocol.ProduceResponsePartition{p}}}}
}

// batchCount returns the record count of a batch (0 if it does not parse).
func batchCount(b []byte) uint32 {
	h, err := record.ParseHeader(b)
	if err != nil {
		return 0
	}
	return h.Count
}

// frozenLeader starts two fakes: a, which leads partition 0 of topic "t"
// until it gets a request of key, then freezes (answers nothing more on
// that connection, as a stopped process) while both name b the leader
// from then on.
func frozenLeader(t *testing.T, key protocol.APIKey) (a, b *fakeBroker) {
	t.Helper()
	a, b = startFake(t, 1), startFake(t, 2)
	for _, fb := range []*fakeBroker{a, b} {
		fb.addTopic("t", 1)
		fb.setLeader("t", 0, 1)
	}
	a.addPeer(b)
	b.addPeer(a)
	a.setHandler(func(req protocol.Request) fakeReply {
		if req.Key() == key {
			a.setLeader("t", 0, 2) // for the metadata of later connections
			b.setLeader("t", 0, 2)
			return fakeReply{freeze: true}
		}
		return fakeReply{pass: true}
	})
	return a, b
}
