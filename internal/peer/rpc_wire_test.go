package peer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
)

var testHeader = raft.RPCHeader{ProtocolVersion: 3, ID: []byte("n1"), Addr: []byte("10.0.0.1:7421")}

// testRequests has one request of every type, every field set.
func testRequests() []any {
	return []any{
		&raft.AppendEntriesRequest{
			RPCHeader: testHeader, Term: 7, Leader: []byte("10.0.0.1:7421"),
			PrevLogEntry: 41, PrevLogTerm: 6, LeaderCommitIndex: 40,
			Entries: []*raft.Log{
				{Index: 42, Term: 7, Type: raft.LogCommand, Data: []byte("hello"), Extensions: []byte("ext"),
					AppendedAt: time.Unix(1700000000, 123456789)},
				{Index: 43, Term: 7, Type: raft.LogNoop},
				{Index: 44, Term: 7, Type: raft.LogConfiguration, Data: bytes.Repeat([]byte{0xab}, 10000)},
			},
		},
		&raft.AppendEntriesRequest{RPCHeader: testHeader, Term: 1 << 40, Leader: []byte("x")},
		&raft.RequestVoteRequest{RPCHeader: testHeader, Term: 9, Candidate: []byte("10.0.0.2:7421"),
			LastLogIndex: 100, LastLogTerm: 8, LeadershipTransfer: true},
		&raft.RequestPreVoteRequest{RPCHeader: testHeader, Term: 10, LastLogIndex: 101, LastLogTerm: 9},
		&raft.InstallSnapshotRequest{RPCHeader: testHeader, SnapshotVersion: 1, Term: 11, Leader: []byte("l"),
			LastLogIndex: 500, LastLogTerm: 10, Peers: []byte("peers"), Configuration: []byte("conf"),
			ConfigurationIndex: 450, Size: 1 << 33},
		&raft.TimeoutNowRequest{RPCHeader: testHeader},
		&raft.TimeoutNowRequest{},
	}
}

// testResponses pairs each request type with a response, every field set.
func testResponses() []struct {
	typ  byte
	resp any
} {
	return []struct {
		typ  byte
		resp any
	}{
		{rpcAppendEntries, &raft.AppendEntriesResponse{RPCHeader: testHeader, Term: 7, LastLog: 44, Success: true, NoRetryBackoff: true}},
		{rpcAppendEntries, &raft.AppendEntriesResponse{Term: 8, NoRetryBackoff: true}},
		{rpcRequestVote, &raft.RequestVoteResponse{RPCHeader: testHeader, Term: 9, Peers: []byte("p"), Granted: true}},
		{rpcRequestPreVote, &raft.RequestPreVoteResponse{RPCHeader: testHeader, Term: 10, Granted: true}},
		{rpcInstallSnapshot, &raft.InstallSnapshotResponse{RPCHeader: testHeader, Term: 11, Success: true}},
		{rpcTimeoutNow, &raft.TimeoutNowResponse{RPCHeader: testHeader}},
	}
}

// encodeRequest returns req's frame.
func encodeRequest(t testing.TB, req any) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := writeRequest(&buf, nil, req, DefaultMaxFrameBytes); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// normalize makes empty byte fields nil and times UTC, as the decoder's
// output compares with what was encoded.
func normalize(v any) any {
	rv := reflect.ValueOf(v)
	normalizeValue(rv)
	return v
}

func normalizeValue(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			normalizeValue(v.Elem())
		}
	case reflect.Struct:
		if tm, ok := v.Interface().(time.Time); ok {
			if !tm.IsZero() && v.CanSet() {
				v.Set(reflect.ValueOf(tm.UTC()))
			}
			return
		}
		for i := range v.NumField() {
			normalizeValue(v.Field(i))
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			if v.Len() == 0 && v.CanSet() {
				v.Set(reflect.Zero(v.Type()))
			}
			return
		}
		for i := range v.Len() {
			normalizeValue(v.Index(i))
		}
	}
}

func TestRPCRequestRoundTrip(t *testing.T) {
	for _, req := range testRequests() {
		t.Run(fmt.Sprintf("%T", req), func(t *testing.T) {
			frame := encodeRequest(t, req)
			typ, body, err := readFrame(bytes.NewReader(frame), DefaultMaxFrameBytes, nil)
			if err != nil {
				t.Fatal(err)
			}
			if typ != requestType(req) {
				t.Fatalf("type %#x, want %#x", typ, requestType(req))
			}
			got, err := decodeRequest(typ, body)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(normalize(got), normalize(req)) {
				t.Errorf("decoded %+v\nwant %+v", got, req)
			}
			// Every strict prefix of the body is refused.
			for n := range body {
				if _, err := decodeRequest(typ, body[:n]); !errors.Is(err, errBadRPCFrame) {
					t.Fatalf("body cut to %d of %d bytes: %v", n, len(body), err)
				}
			}
			if _, err := decodeRequest(typ, append(body, 0)); !errors.Is(err, errBadRPCFrame) {
				t.Errorf("trailing byte: %v", err)
			}
		})
	}
}

func TestRPCResponseRoundTrip(t *testing.T) {
	for _, tc := range testResponses() {
		for _, rpcErr := range []error{nil, errors.New("no leader")} {
			t.Run(fmt.Sprintf("%T/%v", tc.resp, rpcErr), func(t *testing.T) {
				frame := appendResponse(nil, tc.typ, tc.resp, rpcErr)
				typ, body, err := readFrame(bytes.NewReader(frame), DefaultMaxFrameBytes, nil)
				if err != nil {
					t.Fatal(err)
				}
				got := reflect.New(reflect.TypeOf(tc.resp).Elem()).Interface()
				remoteErr, err := decodeResponse(typ, body, got)
				if err != nil {
					t.Fatal(err)
				}
				if want := fmt.Sprint(rpcErr); rpcErr != nil && remoteErr != want || rpcErr == nil && remoteErr != "" {
					t.Errorf("remote error %q, want %v", remoteErr, rpcErr)
				}
				if !reflect.DeepEqual(normalize(got), normalize(tc.resp)) {
					t.Errorf("decoded %+v, want %+v", got, tc.resp)
				}
				// A response of another type is refused.
				if _, err := decodeResponse(typ, body, &struct{}{}); err == nil {
					t.Error("decoded into the wrong type")
				}
			})
		}
	}
	// Raft answering an error with no response still makes a frame.
	frame := appendResponse(nil, rpcRequestVote, nil, errors.New("shutting down"))
	_, body, _ := readFrame(bytes.NewReader(frame), DefaultMaxFrameBytes, nil)
	var resp raft.RequestVoteResponse
	if remoteErr, err := decodeResponse(rpcRequestVote|rpcResponse, body, &resp); err != nil || remoteErr != "shutting down" {
		t.Errorf("nil response: %q, %v", remoteErr, err)
	}
	if _, err := decodeResponse(rpcRequestVote|rpcResponse, body, &raft.AppendEntriesResponse{}); !errors.Is(err, errBadRPCFrame) {
		t.Errorf("a RequestVote response decoded as an AppendEntries one: %v", err)
	}
}

// Decoded entries point into the frame body: no copy of their data.
func TestDecodeAppendEntriesSharesBody(t *testing.T) {
	req := testRequests()[0].(*raft.AppendEntriesRequest)
	_, body, err := readFrame(bytes.NewReader(encodeRequest(t, req)), DefaultMaxFrameBytes, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeRequest(rpcAppendEntries, body)
	if err != nil {
		t.Fatal(err)
	}
	data := got.(*raft.AppendEntriesRequest).Entries[2].Data
	if &data[0] != &body[len(body)-len(data)] {
		t.Error("entry data is a copy, not a slice of the body")
	}
	if cap(data) != len(data) {
		t.Errorf("entry data has capacity %d past its length %d", cap(data), len(data))
	}
}

func TestReadFrameLimits(t *testing.T) {
	frame := encodeRequest(t, testRequests()[0])
	for _, tc := range []struct {
		name string
		in   []byte
		max  int
		want error
	}{
		{"over the limit", frame, len(frame) - 6, errBadRPCFrame},
		{"declares 4 GiB", []byte{rpcAppendEntries, 0xff, 0xff, 0xff, 0xff}, DefaultMaxFrameBytes, errBadRPCFrame},
		{"truncated header", frame[:3], DefaultMaxFrameBytes, io.ErrUnexpectedEOF},
		{"truncated body", frame[:len(frame)-1], DefaultMaxFrameBytes, io.ErrUnexpectedEOF},
		{"empty", nil, DefaultMaxFrameBytes, io.EOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := readFrame(bytes.NewReader(tc.in), tc.max, nil); !errors.Is(err, tc.want) {
				t.Errorf("err %v, want %v", err, tc.want)
			}
		})
	}
	// A large declared body that never arrives costs one chunk, not its
	// declared size.
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 10 {
		readFrame(bytes.NewReader([]byte{rpcAppendEntries, 0x07, 0xff, 0xff, 0xff, 1, 2, 3}), DefaultMaxFrameBytes, nil)
	}
	runtime.ReadMemStats(&after)
	if perFrame := (after.TotalAlloc - before.TotalAlloc) / 10; perFrame > 2*frameChunk {
		t.Errorf("%d bytes allocated for a truncated frame declaring 128 MiB", perFrame)
	}
}

// An append larger than the frame limit carries the entries that fit,
// and Raft, which reads req.Entries after the call, sends the rest next.
func TestWriteRequestCutsLargeAppend(t *testing.T) {
	entries := make([]*raft.Log, 10)
	for i := range entries {
		entries[i] = &raft.Log{Index: uint64(i + 1), Term: 1, Data: make([]byte, 1000)}
	}
	req := &raft.AppendEntriesRequest{Term: 1, Entries: entries}
	var buf bytes.Buffer
	if _, err := writeRequest(&buf, nil, req, 4500); err != nil {
		t.Fatal(err)
	}
	if n := len(req.Entries); n == 0 || n >= 10 {
		t.Fatalf("%d entries sent, want fewer than 10", n)
	}
	typ, body, err := readFrame(&buf, 4500, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeRequest(typ, body)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(got.(*raft.AppendEntriesRequest).Entries); n != len(req.Entries) {
		t.Errorf("%d entries decoded, %d sent", n, len(req.Entries))
	}
	req = &raft.AppendEntriesRequest{Term: 1, Entries: []*raft.Log{{Index: 1, Data: make([]byte, 5000)}}}
	if _, err := writeRequest(io.Discard, nil, req, 4500); !errors.Is(err, errEntryTooLarge) {
		t.Errorf("one entry over the limit: %v", err)
	}
}

// FuzzRPCFrames reads frames from the input as a server and a client
// would. Nothing panics, no frame allocates past the input's size plus
// a chunk, and what decodes re-encodes to a frame that decodes the same.
func FuzzRPCFrames(f *testing.F) {
	for _, req := range testRequests() {
		f.Add(encodeRequest(f, req))
	}
	for _, tc := range testResponses() {
		f.Add(appendResponse(nil, tc.typ, tc.resp, errors.New("e")))
	}
	f.Add([]byte{rpcAppendEntries, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0x42, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		for {
			typ, body, err := readFrame(r, 1<<20, nil)
			if err != nil {
				return
			}
			if typ&rpcResponse != 0 {
				for _, tc := range testResponses() {
					resp := reflect.New(reflect.TypeOf(tc.resp).Elem()).Interface()
					decodeResponse(typ, body, resp)
				}
				continue
			}
			req, err := decodeRequest(typ, body)
			if err != nil {
				continue
			}
			again, err := decodeRequest(typ, encodeRequest(t, req)[rpcFrameHeaderLen:])
			if err != nil || !reflect.DeepEqual(normalize(again), normalize(req)) {
				t.Fatalf("re-encoded %+v decodes to %+v, %v", req, again, err)
			}
		}
	})
}

// benchAppend is an append of 64 entries of 1 KiB: a partition catching
// up a follower with small produce batches.
func benchAppend() *raft.AppendEntriesRequest {
	req := &raft.AppendEntriesRequest{RPCHeader: testHeader, Term: 7, Leader: testHeader.Addr,
		PrevLogEntry: 1000, PrevLogTerm: 7, LeaderCommitIndex: 999}
	for i := range 64 {
		req.Entries = append(req.Entries, &raft.Log{Index: uint64(1001 + i), Term: 7, Type: raft.LogCommand,
			Data: bytes.Repeat([]byte{byte(i)}, 1024), AppendedAt: time.Now()})
	}
	return req
}

// msgpackHandle is NetworkTransport's (net_transport.go).
func msgpackHandle() *codec.MsgpackHandle {
	return &codec.MsgpackHandle{BasicHandle: codec.BasicHandle{TimeNotBuiltin: true}}
}

func BenchmarkEncodeAppendEntries(b *testing.B) {
	req := benchAppend()
	size := int64(len(encodeRequest(b, req)))
	b.Run("weir", func(b *testing.B) {
		w := bufio.NewWriterSize(io.Discard, streamBufferSize)
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := writeRequest(w, w.AvailableBuffer(), req, DefaultMaxFrameBytes); err != nil {
				b.Fatal(err)
			}
			w.Flush()
		}
	})
	b.Run("msgpack", func(b *testing.B) {
		// As NetworkTransport's sendRPC: a type byte, then the request.
		w := bufio.NewWriterSize(io.Discard, 256<<10)
		enc := codec.NewEncoder(w, msgpackHandle())
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			w.WriteByte(rpcAppendEntries)
			if err := enc.Encode(req); err != nil {
				b.Fatal(err)
			}
			w.Flush()
		}
	})
}

func BenchmarkDecodeAppendEntries(b *testing.B) {
	req := benchAppend()
	frame := encodeRequest(b, req)
	b.Run("weir", func(b *testing.B) {
		r := bytes.NewReader(frame)
		b.SetBytes(int64(len(frame)))
		b.ReportAllocs()
		for b.Loop() {
			r.Reset(frame)
			typ, body, err := readFrame(r, DefaultMaxFrameBytes, nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := decodeRequest(typ, body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("msgpack", func(b *testing.B) {
		var buf bytes.Buffer
		if err := codec.NewEncoder(&buf, msgpackHandle()).Encode(req); err != nil {
			b.Fatal(err)
		}
		encoded := buf.Bytes()
		r := bytes.NewReader(encoded)
		// As NetworkTransport's handleCommand: a decoder over a bufio
		// reader, a new request per RPC.
		br := bufio.NewReaderSize(r, 256<<10)
		dec := codec.NewDecoder(br, &codec.MsgpackHandle{})
		b.SetBytes(int64(len(frame)))
		b.ReportAllocs()
		for b.Loop() {
			r.Reset(encoded)
			br.Reset(r)
			dec.Reset(br)
			var got raft.AppendEntriesRequest
			if err := dec.Decode(&got); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// An append of more entries than Raft ever sends is refused before its
// entries are allocated.
func TestDecodeRefusesTooManyEntries(t *testing.T) {
	entries := make([]*raft.Log, maxRPCEntries+1)
	for i := range entries {
		entries[i] = &raft.Log{Index: uint64(i + 1), Term: 1}
	}
	frame := encodeRequest(t, &raft.AppendEntriesRequest{Term: 1, Entries: entries})
	typ, body, err := readFrame(bytes.NewReader(frame), DefaultMaxFrameBytes, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeRequest(typ, body); !errors.Is(err, errBadRPCFrame) {
		t.Fatalf("append of %d entries: %v, want %v", len(entries), err, errBadRPCFrame)
	}
	frame = encodeRequest(t, &raft.AppendEntriesRequest{Term: 1, Entries: entries[:maxRPCEntries]})
	typ, body, _ = readFrame(bytes.NewReader(frame), DefaultMaxFrameBytes, nil)
	if _, err := decodeRequest(typ, body); err != nil {
		t.Fatalf("append of %d entries: %v", maxRPCEntries, err)
	}
}
