package broker

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	wlog "weir/log"
	"weir/protocol"
)

// Serve accepts connections on ln until Close. The first Serve also brings
// the node into its cluster, with the listener's address (or
// AdvertisedAddr) as the one clients are told; client requests wait until
// that is done (see enterCluster).
func (b *Broker) Serve(ln net.Listener) error {
	addr := b.cfg.AdvertisedAddr
	if addr == "" {
		addr = ln.Addr().String()
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		ln.Close()
		return net.ErrClosed
	}
	b.listeners = append(b.listeners, ln)
	b.enterOnce.Do(func() {
		// Under mu, so that Close (which sets closed under mu, then waits)
		// never waits before this Add.
		b.clientAddr.Store(addr)
		b.wg.Add(1)
		go b.enterCluster(addr)
	})
	b.mu.Unlock()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			b.mu.Lock()
			closed := b.closed
			b.mu.Unlock()
			if closed {
				return nil
			}
			// Out of file descriptors, say: wait a little and go on, as
			// net/http does, rather than stop serving.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			b.logger.Warn("accept failed", "err", err, "retry-in", backoff)
			select {
			case <-b.stop:
				return nil
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		b.mu.Lock()
		if open := len(b.conns); b.closed || open >= b.cfg.MaxConnections {
			b.mu.Unlock()
			b.logger.Warn("refusing connection", "remote", nc.RemoteAddr(), "connections", open)
			nc.Close()
			continue
		}
		c := newConn(b, nc)
		b.conns[c] = struct{}{}
		b.metrics.connections.Inc()
		b.wg.Add(2)
		b.mu.Unlock()
		go c.readLoop()
		go c.writeLoop()
	}
}

// conn is one client connection. readLoop reads and decodes requests and
// starts a handler for each; writeLoop writes the responses in request
// order. The pending channel bounds the requests in flight.
type conn struct {
	b       *Broker
	nc      net.Conn
	br      *bufio.Reader
	pending chan *call
	ctx     context.Context // done when the connection closes
	cancel  context.CancelFunc
}

// call is one request in flight.
type call struct {
	api           protocol.APIKey
	started       time.Time
	correlationID int32
	frameBytes    int64 // taken from the broker's request budget
	noResponse    bool  // a produce with acks 0: the client waits for nothing
	done          chan struct{}
	resp          protocol.Response
	// frames are the records of a fetch response, in the order of its
	// partitions with records; they are sent from their files.
	frames []wlog.FileRange
}

func newConn(b *Broker, nc net.Conn) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	return &conn{b: b, nc: nc, br: bufio.NewReaderSize(nc, 64<<10),
		pending: make(chan *call, b.cfg.MaxInFlightPerConn), ctx: ctx, cancel: cancel}
}

func (c *conn) close() {
	c.cancel()
	c.nc.Close()
	c.b.mu.Lock()
	delete(c.b.conns, c)
	c.b.mu.Unlock()
	c.b.metrics.connections.Dec()
}

func (c *conn) readLoop() {
	defer c.b.wg.Done()
	defer close(c.pending)
	for {
		cl, err := c.readRequest()
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				c.b.logger.Debug("connection closed", "remote", c.nc.RemoteAddr(), "err", err)
			}
			c.cancel()
			return
		}
		// writeLoop drains pending until readLoop closes it, so this never
		// blocks for good; and every call, even after the connection
		// failed, goes through writeLoop, which waits for its handler and
		// releases what it holds.
		c.pending <- cl
	}
}

// readRequest reads the next request and starts handling it. The frame's
// bytes are taken from the broker's request budget before they are read:
// when memory is short the connection simply stops reading, which holds
// the client back through TCP.
func (c *conn) readRequest() (*call, error) {
	c.nc.SetReadDeadline(time.Now().Add(c.b.cfg.IdleTimeout))
	head, err := c.br.Peek(4)
	if err != nil {
		return nil, err
	}
	size := int64(binary.BigEndian.Uint32(head))
	if size > int64(c.b.cfg.MaxFrameBytes) {
		// The protocol has no answer that does not need the whole frame:
		// close, and the client learns the limit from the error code table.
		return nil, fmt.Errorf("request of %d bytes over the %d limit", size, c.b.cfg.MaxFrameBytes)
	}
	if err := c.b.requestBytes.Acquire(c.ctx, size); err != nil {
		return nil, err
	}
	// The frame holds budget from here on: it must arrive soon, or a few
	// clients that declare large frames and send nothing would starve
	// everyone else.
	c.nc.SetReadDeadline(time.Now().Add(c.b.cfg.ReadTimeout))
	frame, err := protocol.ReadFrame(c.br, c.b.cfg.MaxFrameBytes, nil)
	if err != nil {
		c.b.requestBytes.Release(size)
		return nil, err
	}
	hdr, req, err := protocol.DecodeRequest(frame)
	cl := &call{api: hdr.APIKey, started: time.Now(), correlationID: hdr.CorrelationID, frameBytes: size, done: make(chan struct{})}
	if err != nil && hdr.APIKey == protocol.KeyAPIVersions && errors.Is(err, protocol.ErrUnsupportedVersion) {
		// A newer client asking which versions we speak: answer at v0
		// (PROTOCOL.md), so it can pick one, and keep the connection.
		cl.resp = &protocol.APIVersionsResponse{ErrorCode: protocol.CodeUnsupportedVersion, APIs: protocol.SupportedAPIs()}
		close(cl.done)
		return cl, nil
	}
	if err == nil {
		err = checkRequestSize(req)
	}
	if err != nil {
		// A request we cannot decode leaves the stream in step (the frame
		// was whole), but its response type may be unknown: close.
		c.b.requestBytes.Release(size)
		return nil, fmt.Errorf("bad request (api %d v%d, correlation %d): %w", hdr.APIKey, hdr.APIVersion, hdr.CorrelationID, err)
	}
	if !isPeerAPI(hdr.APIKey) {
		// Clients wait (this connection stops reading) until the node is
		// in the cluster with current metadata: answering before would
		// tell them existing topics are unknown.
		select {
		case <-c.b.ready:
		case <-c.ctx.Done():
			c.b.requestBytes.Release(size)
			return nil, c.ctx.Err()
		}
	}
	if p, ok := req.(*protocol.ProduceRequest); ok {
		// Proposed here, in the order requests arrive; see startProduce.
		cl.noResponse = p.Acks == protocol.AcksNone
		wait := c.b.startProduce(c.ctx, p)
		go func() {
			defer close(cl.done)
			cl.resp = wait()
		}()
		return cl, nil
	}
	go func() {
		defer close(cl.done)
		cl.resp, cl.frames = c.b.handle(c.ctx, source{clientID: hdr.ClientID, addr: c.nc.RemoteAddr().String()}, req)
	}()
	return cl, nil
}

func (c *conn) writeLoop() {
	defer c.b.wg.Done()
	defer c.close()
	var seg protocol.SegmentedFrame
	var buf []byte
	failed := false
	for cl := range c.pending {
		<-cl.done
		if !failed && !cl.noResponse {
			var err error
			buf, err = c.write(cl, &seg, buf)
			if err != nil {
				c.b.logger.Debug("write failed", "remote", c.nc.RemoteAddr(), "err", err)
				failed = true
				c.cancel()
				c.nc.Close() // unblocks readLoop
			}
		}
		c.b.metrics.requestDuration.WithLabelValues(cl.api.String()).Observe(time.Since(cl.started).Seconds())
		for i := range cl.frames {
			cl.frames[i].Release()
		}
		c.b.requestBytes.Release(cl.frameBytes)
	}
}

// write sends one response.
func (c *conn) write(cl *call, seg *protocol.SegmentedFrame, buf []byte) ([]byte, error) {
	c.nc.SetWriteDeadline(time.Now().Add(c.b.cfg.WriteTimeout))
	if len(cl.frames) == 0 {
		var err error
		buf, err = protocol.AppendResponseFrame(buf[:0], cl.correlationID, cl.resp)
		if err != nil {
			return buf, err
		}
		_, err = c.nc.Write(buf)
		return buf, err
	}
	// A fetch: the records come from the segment files, by sendfile.
	frames := cl.frames
	external := func(i int) (int32, bool) {
		if i < len(frames) && frames[i].File != nil {
			return int32(frames[i].Len), true
		}
		return 0, false
	}
	if err := seg.EncodeResponse(cl.correlationID, cl.resp, external); err != nil {
		return buf, err
	}
	_, err := seg.Send(c.nc, func(w io.Writer, g protocol.Gap) (int64, error) {
		r := &frames[g.Index]
		if err := sendFile(c.nc, r.File, r.Pos, r.Len); err != nil {
			return 0, err
		}
		return r.Len, nil
	})
	return buf, err
}

// isPeerAPI reports whether key is an API brokers send each other (or
// that only describes the protocol), served while the node is still
// entering its cluster.
func isPeerAPI(key protocol.APIKey) bool {
	switch key {
	case protocol.KeyAPIVersions, protocol.KeyNodeInfo, protocol.KeyJoinCluster, protocol.KeyReportLeaders,
		protocol.KeyReplicaStatus, protocol.KeyCompleteReassignment, protocol.KeyDemoteReplica:
		return true
	}
	return false
}

// maxFetchPartitions bounds the partitions of one fetch: each costs a
// response entry and, while the fetch waits, a watcher.
const maxFetchPartitions = 10_000

// checkRequestSize refuses requests whose shape would make the broker do
// work out of proportion to their bytes.
func checkRequestSize(req protocol.Request) error {
	if f, ok := req.(*protocol.FetchRequest); ok {
		n := 0
		for _, t := range f.Topics {
			n += len(t.Partitions)
		}
		if n > maxFetchPartitions {
			return fmt.Errorf("fetch of %d partitions, over the %d limit", n, maxFetchPartitions)
		}
	}
	return nil
}
