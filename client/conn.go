package client

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"weir/protocol"
)

// conn is one TCP connection to a broker. Requests are pipelined: many may
// be in flight, and since a broker answers a connection's requests in the
// order it received them, responses are matched to requests by position,
// with the correlation id as a check.
//
// Two goroutines own the socket: the writer encodes and writes requests
// (several at once when callers queue up), the reader reads responses and
// completes the oldest pending call. The first I/O or protocol error kills
// the connection: every call pending on it fails with that error, and the
// owner dials a new one (see cluster.conn).
type conn struct {
	addr             string
	nc               net.Conn
	clientID         string
	maxResponseBytes int
	// preallocBytes is the largest response the reader allocates in full
	// as soon as its size arrives (see readLoop).
	preallocBytes int
	writeTimeout  time.Duration

	// calls hands calls to the writer. It is unbuffered, so a call is
	// either taken by the writer (which then completes it, one way or
	// another) or not taken at all (and its sender completes it).
	calls chan *call
	// dead is closed when the connection is closed or fails; err says why.
	dead chan struct{}
	wg   sync.WaitGroup

	// mu guards the fields below. The reader and writer take it briefly;
	// nothing blocks while holding it.
	mu struct {
		sync.Mutex
		// pending are the calls written and waiting for a response, oldest
		// first.
		pending []*call
		err     error // why the connection died; nil while alive
	}
}

// call is one request on a conn.
type call struct {
	ctx         context.Context
	req         protocol.Request
	noResponse  bool // a Produce with acks 0: the broker sends nothing back
	correlation int32

	// into, if its capacity holds the response, is the buffer the
	// response is read into (see doInto).
	into []byte

	finished atomic.Bool
	// stopWatch stops the ctx watch started when the call was written
	// (context.AfterFunc), so that a long-lived ctx does not collect them.
	stopWatch atomic.Pointer[func() bool]
	// fn gets the result exactly once (see finish), with the buffer the
	// response was read into (nil with an error).
	fn func(resp protocol.Response, frame []byte, err error)
}

// finish completes the call with resp (read into frame) or err, exactly
// once: a call can be finished by its response, by its ctx, or by the
// connection's death, whichever comes first.
func (cl *call) finish(resp protocol.Response, frame []byte, err error) bool {
	if !cl.finished.CompareAndSwap(false, true) {
		return false
	}
	if stop := cl.stopWatch.Load(); stop != nil {
		(*stop)()
	}
	cl.fn(resp, frame, err)
	return true
}

// dialConn opens a connection to addr and starts its goroutines.
func dialConn(ctx context.Context, addr string, cfg *config) (*conn, error) {
	d := net.Dialer{Timeout: cfg.dialTimeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("weir/client: dial %s: %w", addr, err)
	}
	c := &conn{
		addr:             addr,
		nc:               nc,
		clientID:         cfg.clientID,
		maxResponseBytes: cfg.maxResponseBytes,
		preallocBytes:    min(cfg.maxResponseBytes, int(cfg.fetchMaxBytes)+preallocSlack),
		writeTimeout:     cfg.requestTimeout,
		calls:            make(chan *call),
		dead:             make(chan struct{}),
	}
	c.wg.Add(2)
	go c.writeLoop()
	go c.readLoop()
	return c, nil
}

// do sends req and calls fn with the response or an error, exactly once,
// from some goroutine: the caller's, if the request could not be handed to
// the writer, else the connection's. fn must not block. ctx bounds the
// whole call; when its deadline passes while the request waits for its
// response, the connection is closed (the responses queued behind it would
// wait as long). A call cancelled otherwise just stops waiting: its
// response is read and dropped when it comes.
//
// With noResponse (a Produce with acks 0), fn is called with a nil
// response once the request is written.
func (c *conn) do(ctx context.Context, req protocol.Request, noResponse bool, fn func(protocol.Response, error)) {
	c.send(&call{ctx: ctx, req: req, noResponse: noResponse, fn: func(resp protocol.Response, _ []byte, err error) { fn(resp, err) }})
}

// doInto is do for a request with a response, read into into if it fits
// there and fills at least half of it (a small response must not
// keep a large buffer alive). fn gets the buffer the response was read
// into: into or a new one. The decoded response may alias it (a fetch's
// records do).
//
// Ownership: into belongs to the connection from the call on. With a
// response, fn is called once the connection is done with into and
// frame: the caller owns them again (into, if the response was not read
// into it, is untouched). With an error, the reader may still be reading
// into into (a cancelled call's response is still read), so the caller
// must not write to it or hand it out again: it is the garbage
// collector's.
func (c *conn) doInto(ctx context.Context, req protocol.Request, into []byte, fn func(resp protocol.Response, frame []byte, err error)) {
	c.send(&call{ctx: ctx, req: req, into: into, fn: fn})
}

// send hands cl to the writer, or finishes it if the connection or its
// ctx ends first.
func (c *conn) send(cl *call) {
	select {
	case c.calls <- cl:
	case <-c.dead:
		cl.finish(nil, nil, c.deathErr())
	case <-cl.ctx.Done():
		cl.finish(nil, nil, cl.ctx.Err())
	}
}

// Request sends req and waits for its response, ctx's end, or the
// connection's death. Many Requests may run at once on one conn.
func (c *conn) Request(ctx context.Context, req protocol.Request) (protocol.Response, error) {
	type result struct {
		resp protocol.Response
		err  error
	}
	done := make(chan result, 1)
	c.do(ctx, req, false, func(resp protocol.Response, err error) { done <- result{resp, err} })
	r := <-done
	return r.resp, r.err
}

// Close closes the connection, fails the calls pending on it with ErrClosed,
// and returns once both goroutines have ended.
func (c *conn) Close() error {
	c.fail(ErrClosed)
	c.wg.Wait()
	return nil
}

// Dead reports whether the connection has closed or failed.
func (c *conn) Dead() bool {
	select {
	case <-c.dead:
		return true
	default:
		return false
	}
}

// deathErr is the error calls on a dead connection get.
func (c *conn) deathErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.err
}

// fail kills the connection with err (the first error wins) and fails every
// pending call.
func (c *conn) fail(err error) {
	c.mu.Lock()
	if c.mu.err != nil {
		c.mu.Unlock()
		return
	}
	if !errors.Is(err, ErrClosed) {
		err = fmt.Errorf("weir/client: connection to %s: %w", c.addr, err)
	}
	c.mu.err = err
	pending := c.mu.pending
	c.mu.pending = nil
	close(c.dead)
	c.mu.Unlock()
	c.nc.Close() // unblocks the reader and the writer
	for _, cl := range pending {
		cl.finish(nil, nil, err)
	}
}

// maxCoalesce bounds how many queued requests the writer encodes into one
// write.
const maxCoalesce = 64

// maxKeptWriteBuffer is the largest write buffer the writer keeps between
// writes; a larger one (a big produce) is dropped after use.
const maxKeptWriteBuffer = 4 << 20

func (c *conn) writeLoop() {
	defer c.wg.Done()
	var (
		buf         []byte
		batch       []*call
		noResponse  []*call
		correlation int32
	)
	for {
		batch = batch[:0]
		select {
		case cl := <-c.calls:
			batch = append(batch, cl)
		case <-c.dead:
			return
		}
		// Take what else is queued right now: one write for many requests.
	more:
		for len(batch) < maxCoalesce {
			select {
			case cl := <-c.calls:
				batch = append(batch, cl)
			default:
				break more
			}
		}
		buf, noResponse = buf[:0], noResponse[:0]
		for i, cl := range batch {
			if err := cl.ctx.Err(); err != nil {
				cl.finish(nil, nil, err)
				continue
			}
			correlation++
			cl.correlation = correlation
			out, err := protocol.AppendRequestFrame(buf, correlation, c.clientID, cl.req)
			if err != nil {
				cl.finish(nil, nil, fmt.Errorf("weir/client: %w", err))
				continue
			}
			buf = out
			if cl.noResponse {
				noResponse = append(noResponse, cl)
				continue
			}
			// Registered before the bytes go out, so the reader always
			// finds the call its response answers.
			if !c.register(cl) {
				// Dead: fail what this write would have carried.
				err := c.deathErr()
				for _, rest := range append(noResponse, batch[i+1:]...) {
					rest.finish(nil, nil, err)
				}
				return
			}
		}
		if len(buf) == 0 {
			continue
		}
		c.nc.SetWriteDeadline(time.Now().Add(c.writeTimeout))
		if _, err := c.nc.Write(buf); err != nil {
			for _, cl := range noResponse {
				cl.finish(nil, nil, err)
			}
			c.fail(err)
			return
		}
		for _, cl := range noResponse {
			cl.finish(nil, nil, nil)
		}
		if cap(buf) > maxKeptWriteBuffer {
			buf = nil
		}
	}
}

// register adds cl to the pending calls and starts watching its deadline.
// It returns false (having failed cl) if the connection is dead.
func (c *conn) register(cl *call) bool {
	stop := context.AfterFunc(cl.ctx, func() {
		err := cl.ctx.Err()
		if !cl.finish(nil, nil, err) {
			return // answered first
		}
		if errors.Is(err, context.DeadlineExceeded) {
			// The broker is stuck on this request (or the network is):
			// everything behind it would wait as long.
			c.fail(fmt.Errorf("%v request timed out: %w", cl.req.Key(), err))
		}
	})
	cl.stopWatch.Store(&stop)
	if cl.finished.Load() {
		stop() // finished before the watch was stored
	}
	c.mu.Lock()
	if err := c.mu.err; err != nil {
		c.mu.Unlock()
		cl.finish(nil, nil, err)
		return false
	}
	c.mu.pending = append(c.mu.pending, cl)
	c.mu.Unlock()
	return true
}

// preallocSlack is how much more than FetchMaxBytes a response may take and
// still be allocated in full up front: the fetch response's own fields.
const preallocSlack = 1 << 20

// frameBuffer returns a buffer for the frame about to be read from br,
// sized from its size field: the buffer the call it answers brought, if
// the frame fits and fills half of it (see doInto), else, for a
// response of at most preallocBytes, one allocation, rather than one
// ReadFrame grows (copying) as its bytes arrive. Larger ones, and errors,
// get nil: ReadFrame handles them. preallocBytes bounds what a broker
// that declares a large frame and sends little can make the client
// allocate, as a fetch of FetchMaxBytes may.
func (c *conn) frameBuffer(br *bufio.Reader) []byte {
	size, err := br.Peek(4)
	if err != nil {
		return nil
	}
	n := int64(binary.BigEndian.Uint32(size))
	// The frame answers the oldest pending call (checked once it is read):
	// only this goroutine removes calls, and a call is registered before
	// its request is written.
	c.mu.Lock()
	var into []byte
	if len(c.mu.pending) > 0 {
		into = c.mu.pending[0].into
	}
	c.mu.Unlock()
	if fits := int64(cap(into)); fits >= max(n, 4) && n >= fits/2 {
		return into[:0]
	}
	if n > int64(c.preallocBytes) {
		return nil
	}
	return make([]byte, 0, max(n, 4))
}

func (c *conn) readLoop() {
	defer c.wg.Done()
	br := bufio.NewReaderSize(c.nc, 64<<10)
	for {
		// A fresh buffer per frame, or the one its call brought: decoded
		// responses alias it (a fetch's), and outlive the next read. NB:
		// the reader never reuses a buffer itself; a caller of doInto may,
		// once it has the response.
		frame, err := protocol.ReadFrame(br, c.maxResponseBytes, c.frameBuffer(br))
		if err != nil {
			c.fail(err)
			return
		}
		hdr, body, err := protocol.DecodeResponseHeader(frame)
		if err != nil {
			c.fail(fmt.Errorf("%w: %w", ErrProtocol, err))
			return
		}
		c.mu.Lock()
		var cl *call
		if len(c.mu.pending) > 0 {
			cl = c.mu.pending[0]
			c.mu.pending[0] = nil
			c.mu.pending = c.mu.pending[1:]
		}
		c.mu.Unlock()
		if cl == nil || cl.correlation != hdr.CorrelationID {
			want := "none"
			if cl != nil {
				want = fmt.Sprint(cl.correlation)
				c.mu.Lock()
				c.mu.pending = append([]*call{cl}, c.mu.pending...) // fail it with the rest
				c.mu.Unlock()
			}
			c.fail(fmt.Errorf("%w: response with correlation id %d, expected %s", ErrProtocol, hdr.CorrelationID, want))
			return
		}
		resp := cl.req.ResponseKind()
		if err := resp.Decode(protocol.NewReader(body)); err != nil {
			// The stream is still in step (the frame was whole), but a
			// broker that sends garbage is not to be trusted further.
			err = fmt.Errorf("%w: %v response: %w", ErrProtocol, cl.req.Key(), err)
			cl.finish(nil, nil, err)
			c.fail(err)
			return
		}
		cl.finish(resp, frame, nil)
	}
}
