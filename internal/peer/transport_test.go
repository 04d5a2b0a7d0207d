package peer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/goleak"
)

// transportPair is two nodes with a transport for group "g" each; b's
// requests are answered by answer until the test ends.
type transportPair struct {
	a, b   *Mux
	ta, tb *Transport
	logs   *logRecorder // b's transport's logs
}

func newTransportPair(t *testing.T, opts Options, cfg TransportConfig, answer func(raft.RPC)) *transportPair {
	t.Helper()
	p := &transportPair{a: listen(t, opts), b: listen(t, opts), logs: &logRecorder{}}
	var err error
	if p.ta, err = NewTransport(p.a, "g", cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Logger = slog.New(p.logs)
	if p.tb, err = NewTransport(p.b, "g", cfg); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case rpc := <-p.tb.Consumer():
				answer(rpc)
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		wg.Wait()
		p.ta.Close()
		p.tb.Close()
	})
	return p
}

func (p *transportPair) target() raft.ServerAddress { return raft.ServerAddress(p.b.Addr().String()) }

// logRecorder is a slog.Handler that keeps the records at warn and above.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (h *logRecorder) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	h.mu.Lock()
	h.msgs = append(h.msgs, b.String())
	h.mu.Unlock()
	return nil
}
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecorder) WithGroup(string) slog.Handler      { return h }

func (h *logRecorder) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.msgs)
}

// echoAnswer answers every request with a response whose term is the
// request's plus one; a RequestVote with term 13 gets an error, and an
// InstallSnapshot is answered after reading its data.
func echoAnswer(snapshots chan<- []byte) func(raft.RPC) {
	return func(rpc raft.RPC) {
		switch req := rpc.Command.(type) {
		case *raft.AppendEntriesRequest:
			last := req.PrevLogEntry
			if n := len(req.Entries); n > 0 {
				last = req.Entries[n-1].Index
			}
			rpc.Respond(&raft.AppendEntriesResponse{Term: req.Term + 1, LastLog: last, Success: true}, nil)
		case *raft.RequestVoteRequest:
			if req.Term == 13 {
				rpc.Respond(nil, errors.New("unlucky term"))
				return
			}
			rpc.Respond(&raft.RequestVoteResponse{Term: req.Term + 1, Granted: req.LeadershipTransfer}, nil)
		case *raft.RequestPreVoteRequest:
			rpc.Respond(&raft.RequestPreVoteResponse{Term: req.Term + 1, Granted: true}, nil)
		case *raft.TimeoutNowRequest:
			rpc.Respond(&raft.TimeoutNowResponse{RPCHeader: raft.RPCHeader{ID: []byte("b")}}, nil)
		case *raft.InstallSnapshotRequest:
			data, err := io.ReadAll(rpc.Reader)
			snapshots <- data
			rpc.Respond(&raft.InstallSnapshotResponse{Term: req.Term + 1, Success: true}, err)
		}
	}
}

func TestTransportRPCs(t *testing.T) {
	snapshots := make(chan []byte, 1)
	p := newTransportPair(t, Options{}, TransportConfig{}, echoAnswer(snapshots))
	ta, target := p.ta, p.target()

	var ae raft.AppendEntriesResponse
	req := testRequests()[0].(*raft.AppendEntriesRequest)
	if err := ta.AppendEntries("b", target, req, &ae); err != nil || ae.Term != 8 || ae.LastLog != 44 || !ae.Success {
		t.Errorf("AppendEntries: %+v, %v", ae, err)
	}
	var rv raft.RequestVoteResponse
	if err := ta.RequestVote("b", target, &raft.RequestVoteRequest{Term: 4, LeadershipTransfer: true}, &rv); err != nil || rv.Term != 5 || !rv.Granted {
		t.Errorf("RequestVote: %+v, %v", rv, err)
	}
	if err := ta.RequestVote("b", target, &raft.RequestVoteRequest{Term: 13}, &rv); err == nil || err.Error() != "unlucky term" {
		t.Errorf("RequestVote answered with an error: %v", err)
	}
	var pv raft.RequestPreVoteResponse
	if err := ta.RequestPreVote("b", target, &raft.RequestPreVoteRequest{Term: 6}, &pv); err != nil || pv.Term != 7 || !pv.Granted {
		t.Errorf("RequestPreVote: %+v, %v", pv, err)
	}
	var tn raft.TimeoutNowResponse
	if err := ta.TimeoutNow("b", target, &raft.TimeoutNowRequest{}, &tn); err != nil || string(tn.ID) != "b" {
		t.Errorf("TimeoutNow: %+v, %v", tn, err)
	}
	// The RPCs one at a time reused one pooled stream (the snapshot takes
	// it, and closes it after).
	ta.mu.Lock()
	pooled := len(ta.mu.pool[target])
	ta.mu.Unlock()
	if pooled != 1 {
		t.Errorf("%d pooled streams, want 1", pooled)
	}
	if n := p.a.Stats().Streams; n != 1 {
		t.Errorf("%d streams open, want 1", n)
	}
	snap := bytes.Repeat([]byte("snapshot"), 100000)
	var is raft.InstallSnapshotResponse
	err := ta.InstallSnapshot("b", target, &raft.InstallSnapshotRequest{Term: 2, Size: int64(len(snap))}, &is, bytes.NewReader(snap))
	if err != nil || is.Term != 3 || !is.Success {
		t.Errorf("InstallSnapshot: %+v, %v", is, err)
	}
	if got := <-snapshots; !bytes.Equal(got, snap) {
		t.Errorf("snapshot of %d bytes arrived as %d bytes", len(snap), len(got))
	}
	if n := p.logs.count(); n != 0 {
		t.Errorf("warnings: %q", p.logs.msgs)
	}
}

// A bad frame closes its stream, with a warning, and nothing else: the
// transport goes on answering on other streams.
func TestTransportBadFramesCloseTheStream(t *testing.T) {
	p := newTransportPair(t, Options{}, TransportConfig{MaxFrameBytes: 1 << 20}, echoAnswer(nil))
	good := encodeRequest(t, &raft.RequestVoteRequest{Term: 4})
	for _, tc := range []struct {
		name  string
		frame []byte
	}{
		{"garbage", []byte("GET / HTTP/1.1\r\n\r\n")},
		{"oversized length", []byte{rpcAppendEntries, 0, 0x20, 0, 0}},
		{"truncated frame", good[:len(good)-2]},
		{"unknown message type", append([]byte{0x42}, good[1:]...)},
		{"response as request", appendResponse(nil, rpcRequestVote, &raft.RequestVoteResponse{}, nil)},
		{"trailing byte", append(append([]byte{rpcTimeoutNow, 0, 0, 0, 4}, good[5:8]...), 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := p.logs.count()
			st, err := p.a.dial("g", p.b.Addr().String(), time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer abortStream(st)
			if _, err := st.Write(tc.frame); err != nil {
				t.Fatal(err)
			}
			st.Close() // the truncated frame ends here
			readClosed(t, st)
			waitFor(t, 5*time.Second, "a warning", func() bool { return p.logs.count() > before })
			t.Log(p.logs.msgs[len(p.logs.msgs)-1])
			var rv raft.RequestVoteResponse
			if err := p.ta.RequestVote("b", p.target(), &raft.RequestVoteRequest{Term: 4}, &rv); err != nil || rv.Term != 5 {
				t.Fatalf("RequestVote after the bad stream: %+v, %v", rv, err)
			}
		})
	}
}

// Pooled streams unused for IdleTimeout are closed, on both nodes.
func TestTransportClosesIdleStreams(t *testing.T) {
	p := newTransportPair(t, Options{idleSweepInterval: 10 * time.Millisecond},
		TransportConfig{IdleTimeout: 100 * time.Millisecond}, echoAnswer(nil))
	var rv raft.RequestVoteResponse
	if err := p.ta.RequestVote("b", p.target(), &raft.RequestVoteRequest{Term: 1}, &rv); err != nil {
		t.Fatal(err)
	}
	if a, b := p.a.Stats().Streams, p.b.Stats().Streams; a != 1 || b != 1 {
		t.Fatalf("%d and %d streams after an RPC, want 1 each", a, b)
	}
	waitFor(t, 5*time.Second, "the idle stream closed on both nodes", func() bool {
		return p.a.Stats().Streams == 0 && p.b.Stats().Streams == 0
	})
	// And the next RPC dials a new one.
	if err := p.ta.RequestVote("b", p.target(), &raft.RequestVoteRequest{Term: 1}, &rv); err != nil {
		t.Fatal(err)
	}
}

// Appends on a pipeline come back in order; closing the transport (not
// the pipeline, which Raft closes itself) stops every goroutine.
func TestPipelineInOrderAndCloseLeavesNoGoroutine(t *testing.T) {
	a, b := listen(t, Options{}), listen(t, Options{})
	ta, err := NewTransport(a, "g", TransportConfig{})
	if err != nil {
		t.Fatal(err)
	}
	tb, err := NewTransport(b, "g", TransportConfig{})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		answer := echoAnswer(nil)
		for {
			select {
			case rpc := <-tb.Consumer():
				answer(rpc)
			case <-stop:
				return
			}
		}
	}()
	p, err := ta.AppendEntriesPipeline("b", raft.ServerAddress(b.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	sent := make(chan raft.AppendFuture, n)
	go func() {
		for i := range n {
			req := &raft.AppendEntriesRequest{Term: 1, PrevLogEntry: uint64(i), Entries: []*raft.Log{{Index: uint64(i + 1), Data: []byte{byte(i)}}}}
			f, err := p.AppendEntries(req, &raft.AppendEntriesResponse{})
			if err != nil {
				t.Error(err)
				break
			}
			sent <- f
		}
		close(sent)
	}()
	for f := range sent {
		got := <-p.Consumer()
		if got != f {
			t.Fatalf("future for %d came back before the one for %d", got.Request().Entries[0].Index, f.Request().Entries[0].Index)
		}
		if err := got.Error(); err != nil || got.Response().LastLog != f.Request().Entries[0].Index {
			t.Fatalf("append %d: %+v, %v", f.Request().Entries[0].Index, got.Response(), err)
		}
	}
	close(stop)
	<-done
	closed := make(chan struct{})
	go func() {
		ta.Close()
		tb.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close blocked")
	}
	if _, err := p.AppendEntries(&raft.AppendEntriesRequest{Term: 1}, &raft.AppendEntriesResponse{}); err == nil {
		t.Error("append on a closed pipeline succeeded")
	}
	a.Close()
	b.Close()
	goleak.VerifyNone(t,
		goleak.IgnoreCurrent(),
		goleak.IgnoreTopFunction("github.com/armon/go-metrics.(*InmemSink).run"),
		goleak.IgnoreTopFunction("github.com/hashicorp/go-metrics.(*InmemSink).run"))
}

// A pipeline whose follower does not answer fails its appends within the
// timeout, and its sends do not wait longer than that.
func TestPipelineFailsWhenFollowerSilent(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	p := newTransportPair(t, Options{}, TransportConfig{Timeout: 200 * time.Millisecond}, func(rpc raft.RPC) {
		<-hold // never answers while the test runs
	})
	pl, err := p.ta.AppendEntriesPipeline("b", p.target())
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	start := time.Now()
	var futures []raft.AppendFuture
	for range 4 {
		f, err := pl.AppendEntries(&raft.AppendEntriesRequest{Term: 1, PrevLogEntry: 1}, &raft.AppendEntriesResponse{})
		if err != nil {
			break // the stream failed: later sends fail at once
		}
		futures = append(futures, f)
	}
	if len(futures) == 0 {
		t.Fatal("no append was sent")
	}
	for _, f := range futures {
		if err := f.Error(); err == nil {
			t.Error("an unanswered append succeeded")
		}
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("sends and failures took %v with a 200ms timeout", elapsed)
	}
}

// The decoded request reaches Raft intact, including the entries.
func TestTransportDeliversEntries(t *testing.T) {
	got := make(chan *raft.AppendEntriesRequest, 1)
	p := newTransportPair(t, Options{}, TransportConfig{}, func(rpc raft.RPC) {
		got <- rpc.Command.(*raft.AppendEntriesRequest)
		rpc.Respond(&raft.AppendEntriesResponse{Success: true}, nil)
	})
	req := testRequests()[0].(*raft.AppendEntriesRequest)
	if err := p.ta.AppendEntries("b", p.target(), req, &raft.AppendEntriesResponse{}); err != nil {
		t.Fatal(err)
	}
	if r := <-got; !reflect.DeepEqual(normalize(r), normalize(testRequests()[0])) {
		t.Errorf("delivered %+v, sent %+v", r, req)
	}
}

// A pooled stream that died while idle (the peer's group was reopened)
// costs no RPC: a vote, which Raft does not retry, goes out again on a
// fresh stream.
func TestVoteSurvivesADeadPooledStream(t *testing.T) {
	p := newTransportPair(t, Options{}, TransportConfig{}, echoAnswer(nil))
	vote := func() error {
		resp := &raft.RequestVoteResponse{}
		return p.ta.RequestVote("b", p.target(), &raft.RequestVoteRequest{Term: 3, LeadershipTransfer: true}, resp)
	}
	if err := vote(); err != nil {
		t.Fatal(err)
	}
	// Reopen the group on b: the stream a pooled is closed by b.
	p.tb.Close()
	tb, err := NewTransport(p.b, "g", TransportConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer tb.Close()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case rpc := <-tb.Consumer():
				echoAnswer(nil)(rpc)
			case <-tb.shutdownCh:
				return
			}
		}
	}()
	if err := vote(); err != nil {
		t.Fatalf("vote after the peer's group was reopened: %v", err)
	}
}

// A frame limit the u32 length field cannot carry is refused.
func TestTransportRefusesFrameLimitOver4GiB(t *testing.T) {
	if _, err := NewTransport(listen(t, Options{}), "g", TransportConfig{MaxFrameBytes: 1 << 32}); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("MaxFrameBytes 4 GiB: %v, want %v", err, ErrInvalidOptions)
	}
}
