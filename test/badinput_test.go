package test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"
)

// TestBadInputKeepsServing sends a running weir serve garbage on several
// connections: each such connection is answered with an error or closed,
// and the broker keeps serving everyone else.
func TestBadInputKeepsServing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := startServer(t, t.TempDir())
	s.weir(ctx, "", "topic", "create", "ok", "--partitions", "1")
	// frame is the size field of a frame whose body is body.
	frame := func(body []byte) []byte { return binary.BigEndian.AppendUint32(nil, uint32(len(body))) }
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 4096)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	unknownAPI := []byte{0x7f, 0x00, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0} // key 32512, v0, correlation 1, client id ""
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"random bytes", random},
		{"frame declaring 2 GiB", binary.BigEndian.AppendUint32(nil, 2<<30)},
		{"truncated frame", append(frame(make([]byte, 100)), 1, 2, 3)},
		{"unknown api key", append(frame(unknownAPI), unknownAPI...)},
		{"header cut short", append(frame([]byte{0, 1}), 0, 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write(tc.data)
			if tc.name == "truncated frame" {
				// The broker waits for the rest of the frame; give up on it
				// from our side, as a client that died would.
				c.(*net.TCPConn).CloseWrite()
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.ReadAll(c); err != nil && !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") {
				t.Fatalf("the broker neither answered nor closed the connection: %v", err)
			}
			// Everyone else is still served.
			s.weir(ctx, "x\n", "produce", "ok")
		})
	}
	if out := s.weir(ctx, "", "consume", "ok", "-n", "5"); strings.Count(out, "x") != 5 {
		t.Fatalf("after the bad input, read %q", out)
	}
	if out, err := s.tryWeir(ctx, "y\n", "produce", "no-such-topic"); err == nil {
		t.Fatalf("producing to an unknown topic succeeded:\n%s", out)
	}
	if out, err := s.tryWeir(ctx, "", "topic", "create", "../escape"); err == nil || !strings.Contains(out, "invalid") {
		t.Fatalf("a topic name with a path in it: %v\n%s", err, out)
	}
	s.stop()
}
