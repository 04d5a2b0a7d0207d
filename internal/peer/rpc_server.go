package peer

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/hashicorp/raft"
)

// streamWriter is a pooled write buffer (see rpcConn.send).
type streamWriter struct{ *bufio.Writer }

func newStreamWriter() *streamWriter {
	return &streamWriter{bufio.NewWriterSize(nil, streamBufferSize)}
}

// release drops the writer's stream and what it buffered, and pools it.
func (w *streamWriter) release() {
	w.Reset(nil)
	writerPool.Put(w)
}

// maxKeptResponseBuffer: serve keeps its response buffer between requests
// unless it grew past this (a long error message).
const maxKeptResponseBuffer = 1 << 10

// serve answers the requests of one stream accepted for the group, in
// order, until the stream ends, fails or carries a bad frame, or the
// transport closes. It runs in the Mux goroutine that routed the stream.
func (t *Transport) serve(c *conn) {
	t.mu.Lock()
	if t.mu.closed {
		t.mu.Unlock()
		c.abort()
		return
	}
	t.wg.Add(1)
	t.mu.Unlock()
	defer t.wg.Done()
	defer c.abort()

	var out []byte
	for {
		// NB: no deadline while waiting for a request: a pooled stream
		// idles between RPCs, and the client closes it when it is done.
		// A request that has begun must arrive within the timeout.
		c.SetReadDeadline(time.Time{})
		typ, body, err := readFrame(c, t.cfg.MaxFrameBytes, func() {
			c.SetReadDeadline(time.Now().Add(t.cfg.Timeout))
		})
		var req any
		if err == nil {
			req, err = decodeRequest(typ, body)
		}
		if err != nil {
			t.logStreamError(c, err)
			return
		}
		resp, ok := t.dispatch(c, typ, req)
		if !ok {
			return
		}
		c.SetWriteDeadline(time.Now().Add(t.cfg.Timeout))
		out = appendResponse(out[:0], typ, resp.Response, resp.Error)
		if _, err := c.Write(out); err != nil {
			t.logStreamError(c, err)
			return
		}
		if cap(out) > maxKeptResponseBuffer {
			out = nil
		}
		if typ == rpcInstallSnapshot {
			// The client closes the stream after a snapshot; whatever
			// of it Raft did not read would be read as frames.
			return
		}
	}
}

// dispatch hands req to Raft (a heartbeat to its fast path) and waits for
// the answer; ok is false if the transport closed first.
func (t *Transport) dispatch(c *conn, typ byte, req any) (raft.RPCResponse, bool) {
	respCh := make(chan raft.RPCResponse, 1)
	rpc := raft.RPC{Command: req, RespChan: respCh}
	if s, isSnapshot := req.(*raft.InstallSnapshotRequest); isSnapshot {
		c.SetReadDeadline(time.Now().Add(t.snapshotTimeout(s.Size)))
		rpc.Reader = io.LimitReader(c, s.Size)
	}
	handled := false
	if a, isAppend := req.(*raft.AppendEntriesRequest); isAppend && isHeartbeat(a) && (len(a.Addr) > 0 || len(a.Leader) > 0) {
		if fn := t.heartbeatFn.Load(); fn != nil {
			(*fn)(rpc)
			handled = true
		}
	}
	if !handled {
		select {
		case t.consumeCh <- rpc:
		case <-t.shutdownCh:
			return raft.RPCResponse{}, false
		}
	}
	select {
	case resp := <-respCh:
		return resp, true
	case <-t.shutdownCh:
		return raft.RPCResponse{}, false
	}
}

// logStreamError logs why a served stream ends: at warn for a frame that
// does not decode or stops halfway (a bug, or not a weir peer), at debug
// for a peer that closed or reset the stream, a timeout, or shutdown.
func (t *Transport) logStreamError(c *conn, err error) {
	if errors.Is(err, io.EOF) {
		return // the client closed the stream: the normal end
	}
	level := slog.LevelDebug
	if errors.Is(err, errBadRPCFrame) || errors.Is(err, io.ErrUnexpectedEOF) {
		level = slog.LevelWarn
	}
	if t.IsShutdown() {
		level = slog.LevelDebug
	}
	t.logger.Log(context.Background(), level, "closing raft rpc stream", "remote", c.RemoteAddr(), "err", err)
}
