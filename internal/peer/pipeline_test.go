package peer

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestPipelineSendsWithoutConsumer reproduces hashicorp/raft#612: Raft
// stops consuming a pipeline's results (a follower answered with a newer
// term) while it sends more. With NetworkTransport's own pipeline the third
// unconsumed send blocks forever; through Transport every send completes
// and Close returns.
func TestPipelineSendsWithoutConsumer(t *testing.T) {
	a, err := Listen("127.0.0.1:0", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Listen("127.0.0.1:0", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ta, err := NewTransport(a, "g", TransportConfig{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer ta.Close()
	tb, err := NewTransport(b, "g", TransportConfig{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	stop := make(chan struct{})
	defer close(stop)
	go func() { // the follower: answers every append with a newer term
		for {
			select {
			case rpc := <-tb.Consumer():
				rpc.Respond(&raft.AppendEntriesResponse{Term: 9}, nil)
			case <-stop:
				return
			}
		}
	}()

	p, err := ta.AppendEntriesPipeline("b", raft.ServerAddress(b.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	sent := make(chan error, 1)
	go func() {
		for range 8 { // several times the in-flight limit, nobody consuming
			if _, err := p.AppendEntries(&raft.AppendEntriesRequest{Term: 1}, &raft.AppendEntriesResponse{}); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	select {
	case err := <-sent:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a pipeline send blocked with nobody consuming its results")
	}
	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("pipeline Close blocked")
	}
}
