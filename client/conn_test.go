package client

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"weir/protocol"
)

// rawServer accepts one connection and runs serve on it; it is closed at
// cleanup.
func rawServer(t *testing.T, serve func(c net.Conn, br *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		conn net.Conn
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		mu.Lock()
		conn = c
		mu.Unlock()
		defer c.Close()
		serve(c, bufio.NewReader(c))
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		if conn != nil {
			conn.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// readRequest reads and decodes one request.
func readRequest(t *testing.T, br *bufio.Reader) (protocol.RequestHeader, protocol.Request, bool) {
	frame, err := protocol.ReadFrame(br, 0, nil)
	if err != nil {
		return protocol.RequestHeader{}, nil, false
	}
	hdr, req, err := protocol.DecodeRequest(frame)
	if err != nil {
		t.Errorf("server: %v", err)
		return hdr, nil, false
	}
	return hdr, req, true
}

// echoMetadata answers a metadata request naming its topics.
func echoMetadata(req protocol.Request) *protocol.MetadataResponse {
	resp := &protocol.MetadataResponse{ControllerID: 1}
	for _, name := range req.(*protocol.MetadataRequest).Topics {
		resp.Topics = append(resp.Topics, protocol.MetadataResponseTopic{Name: name})
	}
	return resp
}

func testConn(t *testing.T, addr string, opts ...Opt) *conn {
	t.Helper()
	cfg, err := newConfig(roleAdmin, append([]Opt{SeedBrokers(addr)}, opts...))
	if err != nil {
		t.Fatal(err)
	}
	c, err := dialConn(context.Background(), addr, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestConnPipelines sends many requests at once; the server reads them all
// before answering any, which only works if they are in flight together,
// and the answers must reach the right callers.
func TestConnPipelines(t *testing.T) {
	const n = 20
	addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		type pending struct {
			hdr protocol.RequestHeader
			req protocol.Request
		}
		var all []pending
		for len(all) < n {
			hdr, req, ok := readRequest(t, br)
			if !ok {
				return
			}
			all = append(all, pending{hdr, req})
		}
		var out []byte
		for _, p := range all {
			out, _ = protocol.AppendResponseFrame(out, p.hdr.CorrelationID, echoMetadata(p.req))
		}
		c.Write(out)
	})
	c := testConn(t, addr)
	ctx := testContext(t, 10*time.Second)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprint("topic-", i)
			resp, err := c.Request(ctx, &protocol.MetadataRequest{Topics: []string{name}})
			if err != nil {
				t.Error(err)
				return
			}
			if got := resp.(*protocol.MetadataResponse).Topics[0].Name; got != name {
				t.Errorf("asked about %s, got the answer about %s", name, got)
			}
		}()
	}
	wg.Wait()
}

func TestConnOutOfStep(t *testing.T) {
	addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		hdr, req, ok := readRequest(t, br)
		if !ok {
			return
		}
		out, _ := protocol.AppendResponseFrame(nil, hdr.CorrelationID+1, echoMetadata(req))
		c.Write(out)
		br.ReadByte() // until the client hangs up
	})
	c := testConn(t, addr)
	_, err := c.Request(testContext(t, 10*time.Second), &protocol.MetadataRequest{Topics: []string{}})
	if !errors.Is(err, ErrProtocol) {
		t.Fatalf("err = %v, want ErrProtocol", err)
	}
	if !c.Dead() {
		t.Fatal("connection alive after a response out of step")
	}
	if _, err := c.Request(context.Background(), &protocol.MetadataRequest{}); !errors.Is(err, ErrProtocol) {
		t.Fatalf("request on the dead connection: %v", err)
	}
}

func TestConnResponseTooLarge(t *testing.T) {
	addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		if _, _, ok := readRequest(t, br); !ok {
			return
		}
		var size [4]byte
		binary.BigEndian.PutUint32(size[:], 1<<30)
		c.Write(size[:])
		br.ReadByte()
	})
	c := testConn(t, addr, MaxResponseBytes(1<<20))
	_, err := c.Request(testContext(t, 10*time.Second), &protocol.MetadataRequest{})
	if !errors.Is(err, protocol.ErrFrameTooLarge) {
		t.Fatalf("err = %v, want ErrFrameTooLarge", err)
	}
}

// TestConnDeadline: a request whose deadline passes closes the
// connection (the answers behind it would be as late); a cancelled one
// does not.
func TestConnDeadline(t *testing.T) {
	gotFirst := make(chan struct{})
	addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		var held []protocol.RequestHeader
		for {
			hdr, _, ok := readRequest(t, br)
			if !ok {
				return
			}
			held = append(held, hdr)
			switch len(held) {
			case 1:
				close(gotFirst)
			case 2:
				// Answer both, the first after its caller gave up.
				for _, h := range held {
					out, _ := protocol.AppendResponseFrame(nil, h.CorrelationID, &protocol.MetadataResponse{})
					c.Write(out)
				}
			}
		}
	})
	c := testConn(t, addr)
	ctx := testContext(t, 10*time.Second)

	cancelled, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Request(cancelled, &protocol.MetadataRequest{})
		errc <- err
	}()
	<-gotFirst
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled request: %v", err)
	}
	if _, err := c.Request(ctx, &protocol.MetadataRequest{}); err != nil {
		t.Fatalf("request behind a cancelled one: %v", err)
	}
	if c.Dead() {
		t.Fatal("a cancelled request closed the connection")
	}

	short, cancelShort := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancelShort()
	if _, err := c.Request(short, &protocol.MetadataRequest{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("request past its deadline: %v", err)
	}
	waitFor(t, ctx, c.Dead)
}

func TestConnClose(t *testing.T) {
	addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		for {
			if _, _, ok := readRequest(t, br); !ok {
				return
			}
		}
	})
	c := testConn(t, addr)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Request(context.Background(), &protocol.MetadataRequest{})
		errc <- err
	}()
	c.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("request pending at Close: %v", err)
	}
	if _, err := c.Request(context.Background(), &protocol.MetadataRequest{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("request after Close: %v", err)
	}
	c.Close() // again: no-op
}

func TestDialTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nobody listens: the dial fails
	a := newAdmin(t, addr, DialTimeout(time.Second), MaxRetries(1), RetryBackoff(time.Millisecond, time.Millisecond))
	_, err = a.ListTopics(testContext(t, 10*time.Second))
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Fatalf("err = %v, want a dial error", err)
	}
}

// TestConnDoInto: a response is read into the buffer its call brought if
// it fits there and fills at least half of it; otherwise into a
// buffer of its own, leaving the brought one untouched.
func TestConnDoInto(t *testing.T) {
	addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		for {
			hdr, req, ok := readRequest(t, br)
			if !ok {
				return
			}
			out, _ := protocol.AppendResponseFrame(nil, hdr.CorrelationID, echoMetadata(req))
			c.Write(out)
		}
	})
	c := testConn(t, addr)
	ctx := testContext(t, 10*time.Second)
	name := string(make([]byte, 200))
	for _, tc := range []struct {
		name string
		into []byte
		used bool
	}{
		{"fits", make([]byte, 0, 400), true},
		{"too small", make([]byte, 0, 16), false},
		{"too large", make([]byte, 0, 4096), false},
		{"none", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.into != nil {
				tc.into = append(tc.into, 0xee)
			}
			type answer struct {
				resp  protocol.Response
				frame []byte
				err   error
			}
			done := make(chan answer, 1)
			c.doInto(ctx, &protocol.MetadataRequest{Topics: []string{name}}, tc.into[:0], func(resp protocol.Response, frame []byte, err error) {
				done <- answer{resp, frame, err}
			})
			a := <-done
			if a.err != nil {
				t.Fatal(a.err)
			}
			if got := a.resp.(*protocol.MetadataResponse).Topics[0].Name; got != name {
				t.Fatalf("topic %q", got)
			}
			if len(a.frame) < len(name) {
				t.Fatalf("frame of %d bytes", len(a.frame))
			}
			used := cap(tc.into) > 0 && &tc.into[:1][0] == &a.frame[:1][0]
			if used != tc.used {
				t.Fatalf("read into the buffer brought: %v, want %v", used, tc.used)
			}
			if !used && tc.into != nil && tc.into[0] != 0xee {
				t.Fatal("the buffer brought was written to")
			}
		})
	}
}
