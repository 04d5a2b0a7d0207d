package peer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/raft"
)

// Wire format of a group's Raft RPCs (see "Raft RPCs" in the package
// documentation). Part of the peer protocol; never change it in place: a
// new layout gets a new stream header magic.
const (
	// Request types, the first byte of a request frame.
	rpcAppendEntries   byte = 1
	rpcRequestVote     byte = 2
	rpcInstallSnapshot byte = 3
	rpcTimeoutNow      byte = 4
	rpcRequestPreVote  byte = 5
	// rpcResponse is or-ed into a request type to make its response type.
	rpcResponse byte = 0x80

	// rpcFrameHeaderLen is a frame's type byte and u32 body length.
	rpcFrameHeaderLen = 5

	// Flag bits, one flags byte per message that has booleans.
	rpcFlagAppendedAt         = 1 // log entry: AppendedAt follows
	rpcFlagLeadershipTransfer = 1 // RequestVote request
	rpcFlagSuccess            = 1 // AppendEntries, InstallSnapshot responses
	rpcFlagNoRetryBackoff     = 2 // AppendEntries response
	rpcFlagGranted            = 1 // RequestVote, RequestPreVote responses

	// rpcMinEntryLen is the least a log entry takes in the entry table:
	// six one-byte fields.
	rpcMinEntryLen = 6
)

// DefaultMaxFrameBytes bounds an RPC frame's body. It must exceed the
// largest single Raft log entry, which for a partition is one produce
// request (the broker's MaxFrameBytes, 64 MiB by default): an append that
// would be larger carries fewer entries (see writeRequest), but one entry
// cannot be split.
const DefaultMaxFrameBytes = 128 << 20

// errBadRPCFrame: an RPC frame does not decode, or is too large. The
// stream is closed.
var errBadRPCFrame = errors.New("weir/peer: bad rpc frame")

// maxRPCEntries bounds the entries of a decoded append: Raft's own limit
// on MaxAppendEntries. Without it, a frame of tiny entries would decode
// into about twenty times its size in raft.Log structs.
const maxRPCEntries = 1024

// errEntryTooLarge: a single log entry does not fit in a frame.
var errEntryTooLarge = errors.New("weir/peer: log entry larger than the frame limit")

// rpcName names a request or response type, for logs.
func rpcName(typ byte) string {
	name := "unknown"
	switch typ &^ rpcResponse {
	case rpcAppendEntries:
		name = "AppendEntries"
	case rpcRequestVote:
		name = "RequestVote"
	case rpcInstallSnapshot:
		name = "InstallSnapshot"
	case rpcTimeoutNow:
		name = "TimeoutNow"
	case rpcRequestPreVote:
		name = "RequestPreVote"
	}
	if typ&rpcResponse != 0 {
		return name + " response"
	}
	return name
}

// requestType is the frame type of a request, or 0 for a type this format
// does not carry.
func requestType(req any) byte {
	switch req.(type) {
	case *raft.AppendEntriesRequest:
		return rpcAppendEntries
	case *raft.RequestVoteRequest:
		return rpcRequestVote
	case *raft.InstallSnapshotRequest:
		return rpcInstallSnapshot
	case *raft.TimeoutNowRequest:
		return rpcTimeoutNow
	case *raft.RequestPreVoteRequest:
		return rpcRequestPreVote
	}
	return 0
}

// writeRequest writes the frame of req to w (without flushing). An append
// whose frame would exceed maxBody carries only the entries that fit:
// NB: req.Entries is cut in place, and Raft, which reads it after the call
// to advance the follower's next index (replicateTo, pipelineSend), sends
// the rest next. An append whose first entry alone is too large fails
// with errEntryTooLarge.
func writeRequest(w io.Writer, scratch []byte, req any, maxBody int) ([]byte, error) {
	typ := requestType(req)
	b := append(scratch[:0], typ, 0, 0, 0, 0)
	var entries []*raft.Log
	switch r := req.(type) {
	case *raft.AppendEntriesRequest:
		var err error
		if b, err = appendAppendEntriesHead(b, r, maxBody); err != nil {
			return b, err
		}
		entries = r.Entries
	case *raft.RequestVoteRequest:
		b = appendRPCHeader(b, r.RPCHeader)
		b = binary.AppendUvarint(b, r.Term)
		b = appendBytes(b, r.Candidate)
		b = binary.AppendUvarint(b, r.LastLogIndex)
		b = binary.AppendUvarint(b, r.LastLogTerm)
		b = append(b, flag(r.LeadershipTransfer, rpcFlagLeadershipTransfer))
	case *raft.InstallSnapshotRequest:
		b = appendRPCHeader(b, r.RPCHeader)
		b = binary.AppendVarint(b, int64(r.SnapshotVersion))
		b = binary.AppendUvarint(b, r.Term)
		b = appendBytes(b, r.Leader)
		b = binary.AppendUvarint(b, r.LastLogIndex)
		b = binary.AppendUvarint(b, r.LastLogTerm)
		b = appendBytes(b, r.Peers)
		b = appendBytes(b, r.Configuration)
		b = binary.AppendUvarint(b, r.ConfigurationIndex)
		b = binary.AppendVarint(b, r.Size)
	case *raft.TimeoutNowRequest:
		b = appendRPCHeader(b, r.RPCHeader)
	case *raft.RequestPreVoteRequest:
		b = appendRPCHeader(b, r.RPCHeader)
		b = binary.AppendUvarint(b, r.Term)
		b = binary.AppendUvarint(b, r.LastLogIndex)
		b = binary.AppendUvarint(b, r.LastLogTerm)
	default:
		return b, fmt.Errorf("weir/peer: no wire format for %T", req)
	}
	body := len(b) - rpcFrameHeaderLen
	for _, e := range entries {
		body += len(e.Data) + len(e.Extensions)
	}
	if body > maxBody {
		return b, fmt.Errorf("%w: %s of %d bytes, limit %d", errBadRPCFrame, rpcName(typ), body, maxBody)
	}
	binary.BigEndian.PutUint32(b[1:], uint32(body))
	if _, err := w.Write(b); err != nil {
		return b, err
	}
	// NB: the data goes from Raft's entries to the writer; a bufio.Writer
	// copies what is small and writes what is large straight through.
	for _, e := range entries {
		if _, err := w.Write(e.Data); err != nil {
			return b, err
		}
		if _, err := w.Write(e.Extensions); err != nil {
			return b, err
		}
	}
	return b, nil
}

// appendAppendEntriesHead appends an append's body up to its data area,
// first cutting r.Entries to what fits in maxBody (see writeRequest).
func appendAppendEntriesHead(b []byte, r *raft.AppendEntriesRequest, maxBody int) ([]byte, error) {
	start := len(b)
	b = appendRPCHeader(b, r.RPCHeader)
	b = binary.AppendUvarint(b, r.Term)
	b = appendBytes(b, r.Leader)
	b = binary.AppendUvarint(b, r.PrevLogEntry)
	b = binary.AppendUvarint(b, r.PrevLogTerm)
	b = binary.AppendUvarint(b, r.LeaderCommitIndex)
	size := len(b) - start + binary.MaxVarintLen64 // the count's upper bound
	n := 0
	for _, e := range r.Entries {
		// An upper bound of the entry's table row and its data.
		size += 3*binary.MaxVarintLen64 + 2 + 2*binary.MaxVarintLen32 + len(e.Data) + len(e.Extensions)
		if size > maxBody {
			break
		}
		n++
	}
	if n == 0 && len(r.Entries) > 0 {
		e := r.Entries[0]
		return b, fmt.Errorf("%w: entry %d of %d bytes, limit %d", errEntryTooLarge, e.Index, len(e.Data)+len(e.Extensions), maxBody)
	}
	r.Entries = r.Entries[:n]
	b = binary.AppendUvarint(b, uint64(n))
	for _, e := range r.Entries {
		b = binary.AppendUvarint(b, e.Index)
		b = binary.AppendUvarint(b, e.Term)
		if e.AppendedAt.IsZero() {
			b = append(b, byte(e.Type), 0)
		} else {
			b = append(b, byte(e.Type), rpcFlagAppendedAt)
			b = binary.AppendVarint(b, e.AppendedAt.UnixNano())
		}
		b = binary.AppendUvarint(b, uint64(len(e.Data)))
		b = binary.AppendUvarint(b, uint64(len(e.Extensions)))
	}
	return b, nil
}

func appendRPCHeader(b []byte, h raft.RPCHeader) []byte {
	b = binary.AppendVarint(b, int64(h.ProtocolVersion))
	b = appendBytes(b, h.ID)
	return appendBytes(b, h.Addr)
}

func flag(set bool, bit byte) byte {
	if set {
		return bit
	}
	return 0
}

// decodeRequest decodes the body of a request frame of type typ. Byte
// fields, and the entries' Data and Extensions, point into body.
func decodeRequest(typ byte, body []byte) (any, error) {
	d := decoder{b: body, bad: errBadRPCFrame}
	var req any
	switch typ {
	case rpcAppendEntries:
		r := &raft.AppendEntriesRequest{}
		r.RPCHeader = d.rpcHeader()
		r.Term = d.uvarint()
		r.Leader = d.bytes()
		r.PrevLogEntry = d.uvarint()
		r.PrevLogTerm = d.uvarint()
		r.LeaderCommitIndex = d.uvarint()
		r.Entries = d.entries()
		req = r
	case rpcRequestVote:
		r := &raft.RequestVoteRequest{}
		r.RPCHeader = d.rpcHeader()
		r.Term = d.uvarint()
		r.Candidate = d.bytes()
		r.LastLogIndex = d.uvarint()
		r.LastLogTerm = d.uvarint()
		r.LeadershipTransfer = d.flags(rpcFlagLeadershipTransfer) != 0
		req = r
	case rpcInstallSnapshot:
		r := &raft.InstallSnapshotRequest{}
		r.RPCHeader = d.rpcHeader()
		r.SnapshotVersion = raft.SnapshotVersion(d.int())
		r.Term = d.uvarint()
		r.Leader = d.bytes()
		r.LastLogIndex = d.uvarint()
		r.LastLogTerm = d.uvarint()
		r.Peers = d.bytes()
		r.Configuration = d.bytes()
		r.ConfigurationIndex = d.uvarint()
		if r.Size = d.varint(); r.Size < 0 {
			d.fail("snapshot size %d", r.Size)
		}
		req = r
	case rpcTimeoutNow:
		req = &raft.TimeoutNowRequest{RPCHeader: d.rpcHeader()}
	case rpcRequestPreVote:
		r := &raft.RequestPreVoteRequest{}
		r.RPCHeader = d.rpcHeader()
		r.Term = d.uvarint()
		r.LastLogIndex = d.uvarint()
		r.LastLogTerm = d.uvarint()
		req = r
	default:
		return nil, fmt.Errorf("%w: unknown request type %#x", errBadRPCFrame, typ)
	}
	if err := d.done(); err != nil {
		return nil, fmt.Errorf("%s: %w", rpcName(typ), err)
	}
	return req, nil
}

// entries decodes an append's entry table and data area, which is the
// rest of the body. The entries are in one allocation; their Data and
// Extensions point into the body.
func (d *decoder) entries() []*raft.Log {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	// NB: checked before allocating: a count the body cannot hold costs
	// nothing.
	if n > maxRPCEntries || n > uint64(len(d.b))/rpcMinEntryLen {
		d.fail("%d entries in %d bytes", n, len(d.b))
		return nil
	}
	if n == 0 {
		return nil
	}
	logs := make([]raft.Log, n)
	dataLen := make([]uint64, 2*n) // Data and Extensions lengths
	for i := range logs {
		l := &logs[i]
		l.Index = d.uvarint()
		l.Term = d.uvarint()
		l.Type = raft.LogType(d.byte())
		if d.flags(rpcFlagAppendedAt) != 0 {
			l.AppendedAt = time.Unix(0, d.varint())
		}
		dataLen[2*i] = d.uvarint()
		dataLen[2*i+1] = d.uvarint()
	}
	if d.err != nil {
		return nil
	}
	var total uint64
	for _, l := range dataLen {
		if total += l; l > uint64(len(d.b)) || total > uint64(len(d.b)) {
			d.fail("entry data of %d bytes in %d", total, len(d.b))
			return nil
		}
	}
	if total != uint64(len(d.b)) {
		d.fail("entry data of %d bytes in %d", total, len(d.b))
		return nil
	}
	out := make([]*raft.Log, n)
	for i := range logs {
		l := &logs[i]
		if n := dataLen[2*i]; n > 0 {
			l.Data, d.b = d.b[:n:n], d.b[n:]
		}
		if n := dataLen[2*i+1]; n > 0 {
			l.Extensions, d.b = d.b[:n:n], d.b[n:]
		}
		out[i] = l
	}
	return out
}

func (d *decoder) rpcHeader() raft.RPCHeader {
	return raft.RPCHeader{ProtocolVersion: raft.ProtocolVersion(d.int()), ID: d.bytes(), Addr: d.bytes()}
}

// int reads a zigzag varint that must fit in a 32-bit int (the version
// fields).
func (d *decoder) int() int {
	v := d.varint()
	if v < -1<<31 || v >= 1<<31 {
		d.fail("int %d out of range", v)
		return 0
	}
	return int(v)
}

// appendResponse appends the response frame to a request of type typ: the
// error rpcErr, if any, then resp's fields (zero if resp is not the
// type's response, as when Raft answers an error with nil).
func appendResponse(b []byte, typ byte, resp any, rpcErr error) []byte {
	start := len(b)
	b = append(b, typ|rpcResponse, 0, 0, 0, 0)
	var msg []byte
	if rpcErr != nil {
		if msg = []byte(rpcErr.Error()); len(msg) == 0 {
			msg = []byte("error") // an empty message would read as none
		}
	}
	b = appendBytes(b, msg)
	switch typ {
	case rpcAppendEntries:
		r := responseOr[raft.AppendEntriesResponse](resp)
		b = appendRPCHeader(b, r.RPCHeader)
		b = binary.AppendUvarint(b, r.Term)
		b = binary.AppendUvarint(b, r.LastLog)
		b = append(b, flag(r.Success, rpcFlagSuccess)|flag(r.NoRetryBackoff, rpcFlagNoRetryBackoff))
	case rpcRequestVote:
		r := responseOr[raft.RequestVoteResponse](resp)
		b = appendRPCHeader(b, r.RPCHeader)
		b = binary.AppendUvarint(b, r.Term)
		b = appendBytes(b, r.Peers)
		b = append(b, flag(r.Granted, rpcFlagGranted))
	case rpcInstallSnapshot:
		r := responseOr[raft.InstallSnapshotResponse](resp)
		b = appendRPCHeader(b, r.RPCHeader)
		b = binary.AppendUvarint(b, r.Term)
		b = append(b, flag(r.Success, rpcFlagSuccess))
	case rpcTimeoutNow:
		r := responseOr[raft.TimeoutNowResponse](resp)
		b = appendRPCHeader(b, r.RPCHeader)
	case rpcRequestPreVote:
		r := responseOr[raft.RequestPreVoteResponse](resp)
		b = appendRPCHeader(b, r.RPCHeader)
		b = binary.AppendUvarint(b, r.Term)
		b = append(b, flag(r.Granted, rpcFlagGranted))
	}
	binary.BigEndian.PutUint32(b[start+1:], uint32(len(b)-start-rpcFrameHeaderLen))
	return b
}

// responseOr returns resp if it is a non-nil *T, else a zero T.
func responseOr[T any](resp any) *T {
	if r, ok := resp.(*T); ok && r != nil {
		return r
	}
	return new(T)
}

// decodeResponse decodes the body of a response frame of type typ into
// resp, which must be the response type of the request type typ&^
// rpcResponse. It returns the error the remote answered with ("" for none);
// err is for a frame that does not decode.
func decodeResponse(typ byte, body []byte, resp any) (remoteErr string, err error) {
	d := decoder{b: body, bad: errBadRPCFrame}
	remoteErr = string(d.bytes())
	ok := true
	switch r := resp.(type) {
	case *raft.AppendEntriesResponse:
		if ok = typ == rpcAppendEntries|rpcResponse; ok {
			r.RPCHeader = d.rpcHeader()
			r.Term = d.uvarint()
			r.LastLog = d.uvarint()
			f := d.flags(rpcFlagSuccess | rpcFlagNoRetryBackoff)
			r.Success, r.NoRetryBackoff = f&rpcFlagSuccess != 0, f&rpcFlagNoRetryBackoff != 0
		}
	case *raft.RequestVoteResponse:
		if ok = typ == rpcRequestVote|rpcResponse; ok {
			r.RPCHeader = d.rpcHeader()
			r.Term = d.uvarint()
			r.Peers = d.bytes()
			r.Granted = d.flags(rpcFlagGranted) != 0
		}
	case *raft.InstallSnapshotResponse:
		if ok = typ == rpcInstallSnapshot|rpcResponse; ok {
			r.RPCHeader = d.rpcHeader()
			r.Term = d.uvarint()
			r.Success = d.flags(rpcFlagSuccess) != 0
		}
	case *raft.TimeoutNowResponse:
		if ok = typ == rpcTimeoutNow|rpcResponse; ok {
			r.RPCHeader = d.rpcHeader()
		}
	case *raft.RequestPreVoteResponse:
		if ok = typ == rpcRequestPreVote|rpcResponse; ok {
			r.RPCHeader = d.rpcHeader()
			r.Term = d.uvarint()
			r.Granted = d.flags(rpcFlagGranted) != 0
		}
	default:
		return "", fmt.Errorf("weir/peer: no wire format for %T", resp)
	}
	if !ok {
		return "", fmt.Errorf("%w: %s where a %T was due", errBadRPCFrame, rpcName(typ), resp)
	}
	if err := d.done(); err != nil {
		return "", fmt.Errorf("%s: %w", rpcName(typ), err)
	}
	return remoteErr, nil
}

// frameChunk is how much of a frame's body readFrame allocates before
// the bytes have arrived: a length that is garbage, or a peer that stops
// sending, costs at most this much.
const frameChunk = 1 << 20

// readFrame reads one frame from r: its type and its body, in a new
// buffer (decoded messages point into it). A body over maxBody fails with
// errBadRPCFrame before anything is allocated for it. A stream that ends
// between frames returns io.EOF; one that ends inside a frame
// io.ErrUnexpectedEOF. started, if not nil, is called once the frame's
// first byte has arrived (a server waits for a request without a
// deadline, then reads it under one).
func readFrame(r io.Reader, maxBody int, started func()) (byte, []byte, error) {
	var hdr [rpcFrameHeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:1]); err != nil {
		return 0, nil, err
	}
	if started != nil {
		started()
	}
	if _, err := io.ReadFull(r, hdr[1:]); err != nil {
		return 0, nil, noEOF(err)
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if uint64(n) > uint64(maxBody) {
		return 0, nil, fmt.Errorf("%w: %s of %d bytes, limit %d", errBadRPCFrame, rpcName(hdr[0]), n, maxBody)
	}
	// NB: one allocation for all but the largest frames; those get a
	// first chunk, and their full size once the chunk has arrived.
	body := make([]byte, min(int(n), frameChunk))
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, noEOF(err)
	}
	if int(n) > len(body) {
		full := make([]byte, n)
		copy(full, body)
		if _, err := io.ReadFull(r, full[len(body):]); err != nil {
			return 0, nil, noEOF(err)
		}
		body = full
	}
	return hdr[0], body, nil
}

// noEOF turns an EOF inside a frame into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
