package test

import (
	"context"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"weir/protocol"
)

// TestResumedControllerServesNoStaleOffsets: a controller frozen (SIGSTOP)
// past the election timeout still believes it leads when it resumes, until
// Raft tells it otherwise. Reads of committed offsets that reached it while
// it was stopped must not be answered from its stale state: they get
// NotController (the client asks again elsewhere) or the offset its
// successor committed. The requests are written while it is stopped, so
// they are among the first things it handles when it resumes (the soak
// test found the stale answer this way).
func TestResumedControllerServesNoStaleOffsets(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := startFaultCluster(t, ctx, false)
	c.createTopic(ctx, "stale", 1, 3)
	c.createTopic(ctx, "busy", 6, 3)
	load := startLoad(t, c.brokers, "busy", 6)
	defer load.finish(ctx)
	if _, err := weirAt(ctx, c.brokers, strings.Repeat("r\n", 20), "produce", "stale"); err != nil {
		t.Fatal(err)
	}
	reset := func(to int) {
		t.Helper()
		if out, err := weirAt(ctx, c.brokers, "", "group", "reset", "g", "--topic", "stale", "--to", strconv.Itoa(to)); err != nil {
			t.Fatalf("group reset to %d: %v\n%s", to, err, out)
		}
	}
	reset(5)

	old := c.waitController(ctx, nil)
	old.signal(t, syscall.SIGSTOP)
	stopped := true
	defer func() {
		if stopped {
			old.signal(t, syscall.SIGCONT)
		}
	}()
	successor := c.waitController(ctx, old)
	reset(15)
	t.Logf("%v stopped; %v leads the metadata and committed 15", old, successor)

	// Queue reads at the stopped node: the kernel accepts the connections
	// and takes the bytes.
	const conns = 16
	reqs := []protocol.Request{
		&protocol.OffsetFetchRequest{GroupID: "g", Topics: []protocol.OffsetFetchRequestTopic{{Name: "stale", Partitions: []int32{0}}}},
		&protocol.DescribeGroupsRequest{GroupIDs: []string{"g"}},
	}
	var open []net.Conn
	for range conns {
		conn, err := net.DialTimeout("tcp", old.client, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var frames []byte
		for i, req := range reqs {
			if frames, err = protocol.AppendRequestFrame(frames, int32(i), "stale-read", req); err != nil {
				t.Fatal(err)
			}
		}
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := conn.Write(frames); err != nil {
			t.Fatal(err)
		}
		open = append(open, conn)
	}
	old.signal(t, syscall.SIGCONT)
	stopped = false

	answered := 0
	for _, conn := range open {
		for _, req := range reqs {
			resp, err := readResponse(conn, req)
			if err != nil {
				t.Fatalf("the resumed node's answer: %v", err)
			}
			code, committed := staleReadAnswer(t, resp)
			if code == protocol.CodeNotController {
				continue
			}
			answered++
			if code != protocol.CodeNone || committed != 15 {
				t.Errorf("the resumed former controller answered %v with %v, committed offset %d; want NotController or 15", req.Key(), code, committed)
			}
		}
	}
	t.Logf("%d of %d reads answered by the resumed node (the rest: NotController)", answered, conns*len(reqs))
}

// staleReadAnswer returns a group read's error code and the committed
// offset of partition 0 it shows (-1 if none).
func staleReadAnswer(t *testing.T, resp protocol.Response) (protocol.ErrorCode, int64) {
	switch r := resp.(type) {
	case *protocol.OffsetFetchResponse:
		if r.ErrorCode != protocol.CodeNone {
			return r.ErrorCode, -1
		}
		if len(r.Topics) != 1 || len(r.Topics[0].Partitions) != 1 {
			t.Fatalf("OffsetFetch answered %+v for one partition", r.Topics)
		}
		p := r.Topics[0].Partitions[0]
		if p.ErrorCode != protocol.CodeNone {
			return p.ErrorCode, -1
		}
		return protocol.CodeNone, p.CommittedOffset
	case *protocol.DescribeGroupsResponse:
		if len(r.Groups) != 1 {
			t.Fatalf("DescribeGroups answered %d groups", len(r.Groups))
		}
		g := &r.Groups[0]
		if g.ErrorCode != protocol.CodeNone {
			return g.ErrorCode, -1
		}
		committed := descFromProtocol(g).committed("stale")
		if off, ok := committed[0]; ok {
			return protocol.CodeNone, off
		}
	}
	return protocol.CodeNone, -1
}

// waitController waits until the cluster names a controller other than
// not (nil: any) and returns it.
func (c *faultCluster) waitController(ctx context.Context, not *faultNode) *faultNode {
	c.t.Helper()
	for {
		n, out := c.controller(ctx)
		if n != nil && n != not {
			return n
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("no controller other than %v: %s", not, out)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
