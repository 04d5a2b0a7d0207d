package peer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/raft"
)

// Wire format of the heartbeat stream (see "Coalesced heartbeats" in the
// package documentation). Part of the peer protocol; never change it in
// place: a new layout gets a new heartbeatGroup.
const (
	// heartbeatGroup is the reserved group id of the heartbeat stream.
	// Group ids starting with a zero byte are the Mux's own (validGroupID
	// refuses them), so no Raft group can take it.
	// "/2" added commit hints and the follower's commit index.
	heartbeatGroup = "\x00heartbeats/2"
	// maxHeartbeatFrame bounds a frame's body, checked before allocating.
	maxHeartbeatFrame = 4 << 20
	// maxHeartbeatBatch bounds the heartbeats of one request.
	maxHeartbeatBatch = 8192

	// Result status bytes.
	hbStatusOK    = 0
	hbStatusError = 1

	// Result flag bits.
	hbFlagSuccess        = 1
	hbFlagNoRetryBackoff = 2
)

// errBadHeartbeatFrame: a heartbeat frame does not decode. The stream is
// closed.
var errBadHeartbeatFrame = errors.New("weir/peer: bad heartbeat frame")

// heartbeatResult is a follower's answer to one heartbeat: the fields of
// raft.AppendEntriesResponse that a heartbeat's sender reads, and the
// follower's commit index, or why there is none.
type heartbeatResult struct {
	resp   raft.AppendEntriesResponse
	commit uint64
	err    string // non-empty: the follower could not deliver the heartbeat
}

// appendHeartbeatRequest appends the request frame carrying calls to b.
func appendHeartbeatRequest(b []byte, calls []*heartbeatCall) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0) // body length, set below
	b = binary.AppendUvarint(b, uint64(len(calls)))
	for _, c := range calls {
		a := c.req
		b = appendBytes(b, []byte(c.group))
		b = binary.AppendUvarint(b, a.Term)
		b = binary.AppendUvarint(b, uint64(a.ProtocolVersion))
		b = appendBytes(b, a.ID)
		b = appendBytes(b, a.Addr)
		b = appendBytes(b, a.Leader)
		b = binary.AppendUvarint(b, c.hint.commit)
		if c.hint.commit > 0 {
			b = binary.AppendUvarint(b, c.hint.prevIndex)
			b = binary.AppendUvarint(b, c.hint.prevTerm)
		}
	}
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	return b
}

// heartbeatEntry is one decoded heartbeat: its group, Raft request and
// commit hint. The request's byte slices point into the frame's body.
type heartbeatEntry struct {
	group string
	req   raft.AppendEntriesRequest
	hint  commitHint
}

// decodeHeartbeatRequest decodes a request body.
func decodeHeartbeatRequest(body []byte) ([]heartbeatEntry, error) {
	d := decoder{b: body, bad: errBadHeartbeatFrame}
	n := d.uvarint()
	// NB: every entry takes at least 7 bytes, so a count the body cannot
	// hold is refused before allocating for it.
	if d.err != nil || n == 0 || n > maxHeartbeatBatch || n > uint64(len(d.b))/7 {
		return nil, fmt.Errorf("%w: %d heartbeats in %d bytes", errBadHeartbeatFrame, n, len(body))
	}
	entries := make([]heartbeatEntry, n)
	for i := range entries {
		e := &entries[i]
		group := d.bytes()
		e.req.Term = d.uvarint()
		version := d.uvarint()
		e.req.ID = d.bytes()
		e.req.Addr = d.bytes()
		e.req.Leader = d.bytes()
		if e.hint.commit = d.uvarint(); e.hint.commit > 0 {
			e.hint.prevIndex = d.uvarint()
			e.hint.prevTerm = d.uvarint()
		}
		if d.err != nil {
			return nil, d.err
		}
		if err := validGroupID(string(group)); err != nil || e.req.Term == 0 || version > 1<<16 {
			return nil, fmt.Errorf("%w: heartbeat %d: group %q, term %d, protocol version %d",
				errBadHeartbeatFrame, i, group, e.req.Term, version)
		}
		if h := e.hint; h.commit > 0 && (h.prevIndex < h.commit || h.prevTerm == 0 || h.prevTerm > e.req.Term) {
			return nil, fmt.Errorf("%w: heartbeat %d: commit hint %d at entry %d of term %d in term %d",
				errBadHeartbeatFrame, i, h.commit, h.prevIndex, h.prevTerm, e.req.Term)
		}
		e.group = string(group)
		e.req.ProtocolVersion = raft.ProtocolVersion(version)
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errBadHeartbeatFrame, len(d.b))
	}
	return entries, nil
}

// appendHeartbeatResponse appends the response frame carrying results to b.
func appendHeartbeatResponse(b []byte, results []heartbeatResult) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0)
	b = binary.AppendUvarint(b, uint64(len(results)))
	for _, r := range results {
		if r.err != "" {
			b = append(b, hbStatusError)
			b = appendBytes(b, []byte(r.err))
			continue
		}
		var flags byte
		if r.resp.Success {
			flags |= hbFlagSuccess
		}
		if r.resp.NoRetryBackoff {
			flags |= hbFlagNoRetryBackoff
		}
		b = append(b, hbStatusOK)
		b = binary.AppendUvarint(b, r.resp.Term)
		b = binary.AppendUvarint(b, r.resp.LastLog)
		b = append(b, flags)
		b = binary.AppendUvarint(b, r.commit)
	}
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	return b
}

// decodeHeartbeatResponse decodes a response body that answers want
// heartbeats.
func decodeHeartbeatResponse(body []byte, want int) ([]heartbeatResult, error) {
	d := decoder{b: body, bad: errBadHeartbeatFrame}
	if n := d.uvarint(); d.err != nil || n != uint64(want) {
		return nil, fmt.Errorf("%w: %d results for %d heartbeats", errBadHeartbeatFrame, n, want)
	}
	results := make([]heartbeatResult, want)
	for i := range results {
		r := &results[i]
		switch status := d.byte(); status {
		case hbStatusOK:
			r.resp.Term = d.uvarint()
			r.resp.LastLog = d.uvarint()
			flags := d.byte()
			r.resp.Success = flags&hbFlagSuccess != 0
			r.resp.NoRetryBackoff = flags&hbFlagNoRetryBackoff != 0
			r.commit = d.uvarint()
		case hbStatusError:
			r.err = string(d.bytes())
			if r.err == "" && d.err == nil {
				d.err = fmt.Errorf("%w: result %d: empty error", errBadHeartbeatFrame, i)
			}
		default:
			if d.err == nil {
				d.err = fmt.Errorf("%w: result %d: status %d", errBadHeartbeatFrame, i, status)
			}
		}
		if d.err != nil {
			return nil, d.err
		}
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errBadHeartbeatFrame, len(d.b))
	}
	return results, nil
}

// readHeartbeatFrame reads one frame and returns its body, in a new buffer
// (decoded requests point into it).
func readHeartbeatFrame(r io.Reader) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(size[:])
	if n == 0 || n > maxHeartbeatFrame {
		return nil, fmt.Errorf("%w: body of %d bytes (want 1..%d)", errBadHeartbeatFrame, n, maxHeartbeatFrame)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, fmt.Errorf("read heartbeat frame: %w", err)
	}
	return body, nil
}
