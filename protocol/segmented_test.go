package protocol

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// externalFixture is a fetch response whose records also sit in a file, as
// log frames do in a segment.
type externalFixture struct {
	resp     *FetchResponse // records in memory
	file     *os.File       // every partition's records, back to back
	pos, len []int64        // where partition i (in wire order) has its records
}

func newExternalFixture(t *testing.T) *externalFixture {
	t.Helper()
	fx := &externalFixture{resp: &FetchResponse{Topics: []FetchResponseTopic{
		{Name: "orders", Partitions: []FetchResponsePartition{
			{Partition: 0, HighWatermark: 100, LeaderID: 1, Records: fill(70000, 1)},
			{Partition: 1, HighWatermark: 5, LeaderID: 1, Records: fill(10, 2)},
			{Partition: 2, ErrorCode: CodeNotLeader, LeaderID: 2, LeaderAddress: "10.0.0.2:7420", Records: nil},
		}},
		{Name: "audit", Partitions: []FetchResponsePartition{
			{Partition: 3, ErrorMessage: str("m"), HighWatermark: 9, Records: fill(333, 3)},
			{Partition: 4, HighWatermark: 9, Records: []byte{}},
		}},
	}}}
	f, err := os.Create(filepath.Join(t.TempDir(), "segment"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if _, err := f.Write([]byte("segment header")); err != nil {
		t.Fatal(err)
	}
	pos := int64(len("segment header"))
	for _, topic := range fx.resp.Topics {
		for _, p := range topic.Partitions {
			if _, err := f.Write(p.Records); err != nil {
				t.Fatal(err)
			}
			fx.pos = append(fx.pos, pos)
			fx.len = append(fx.len, int64(len(p.Records)))
			pos += int64(len(p.Records))
		}
	}
	fx.file = f
	return fx
}

// withoutRecords returns a copy of the response with the records of the
// external partitions (those for which external(i) is true) dropped, as a
// broker builds it.
func (fx *externalFixture) withoutRecords(external func(i int) bool) *FetchResponse {
	resp := &FetchResponse{}
	i := 0
	for _, topic := range fx.resp.Topics {
		tc := topic
		tc.Partitions = append([]FetchResponsePartition{}, topic.Partitions...)
		for j := range tc.Partitions {
			if external(i) {
				tc.Partitions[j].Records = nil
			}
			i++
		}
		resp.Topics = append(resp.Topics, tc)
	}
	return resp
}

func TestSegmentedFrameMatchesInMemory(t *testing.T) {
	fx := newExternalFixture(t)
	want, err := AppendResponseFrame(nil, 42, fx.resp)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		external func(i int) bool
	}{
		// Null records (partition 2) must stay null: the broker leaves them
		// in memory.
		{"all but null", func(i int) bool { return i != 2 }},
		{"some", func(i int) bool { return i == 0 || i == 3 }},
		{"none", func(i int) bool { return false }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := fx.withoutRecords(tc.external)
			var f SegmentedFrame
			err := f.EncodeResponse(42, resp, func(i int) (int32, bool) {
				return int32(fx.len[i]), tc.external(i)
			})
			if err != nil {
				t.Fatal(err)
			}
			if f.Size() != int64(len(want)) {
				t.Fatalf("Size %d, want %d", f.Size(), len(want))
			}
			var out bytes.Buffer
			n, err := f.Send(&out, func(w io.Writer, g Gap) (int64, error) {
				return io.Copy(w, io.NewSectionReader(fx.file, fx.pos[g.Index], int64(g.Length)))
			})
			if err != nil || n != int64(len(want)) {
				t.Fatalf("Send: %d bytes, %v", n, err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Fatalf("segmented frame differs from the in-memory one")
			}
			// And a client reads it back as the original response.
			contents, err := ReadFrame(&out, 1<<20, nil)
			if err != nil {
				t.Fatal(err)
			}
			h, body, err := DecodeResponseHeader(contents)
			if err != nil || h.CorrelationID != 42 {
				t.Fatalf("header %v, %v", h, err)
			}
			var got FetchResponse
			if err := got.Decode(NewReader(body)); err != nil {
				t.Fatal(err)
			}
			mustEqual(t, &got, fx.resp)
		})
	}
}

// TestSegmentedFrameSendfile sends a segmented frame over TCP, filling the
// gaps the way a broker does: io.Copy from an *io.LimitedReader of the file,
// which *net.TCPConn turns into sendfile.
func TestSegmentedFrameSendfile(t *testing.T) {
	fx := newExternalFixture(t)
	want, err := AppendResponseFrame(nil, 7, fx.resp)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	received := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			received <- nil
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		received <- b
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	external := func(i int) bool { return i != 2 }
	var f SegmentedFrame
	if err := f.EncodeResponse(7, fx.withoutRecords(external), func(i int) (int32, bool) {
		return int32(fx.len[i]), external(i)
	}); err != nil {
		t.Fatal(err)
	}
	_, err = f.Send(conn, func(w io.Writer, g Gap) (int64, error) {
		// NB: sendfile reads from the file's current offset, so a broker
		// sharing a segment file between connections needs its own
		// offset-taking sendfile; a test can seek.
		if _, err := fx.file.Seek(fx.pos[g.Index], io.SeekStart); err != nil {
			return 0, err
		}
		return io.Copy(w, &io.LimitedReader{R: fx.file, N: int64(g.Length)})
	})
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got := <-received; !bytes.Equal(got, want) {
		t.Fatalf("received %d bytes, want the %d of the in-memory frame", len(got), len(want))
	}
}

func TestSegmentedFrameErrors(t *testing.T) {
	fx := newExternalFixture(t)
	var f SegmentedFrame
	if err := f.EncodeResponse(1, fx.withoutRecords(func(int) bool { return true }),
		func(i int) (int32, bool) { return int32(fx.len[i]), true }); err != nil {
		t.Fatal(err)
	}
	t.Run("short fill", func(t *testing.T) {
		_, err := f.Send(io.Discard, func(w io.Writer, g Gap) (int64, error) {
			return io.CopyN(w, bytes.NewReader(make([]byte, g.Length)), int64(g.Length)/2)
		})
		if !errors.Is(err, ErrExternalLength) {
			t.Fatalf("err %v, want ErrExternalLength", err)
		}
	})
	t.Run("fill error", func(t *testing.T) {
		boom := errors.New("boom")
		if _, err := f.Send(io.Discard, func(io.Writer, Gap) (int64, error) { return 0, boom }); err != boom {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("write error", func(t *testing.T) {
		w := &failingWriter{after: 10}
		if _, err := f.Send(w, func(w io.Writer, g Gap) (int64, error) { return 0, nil }); !errors.Is(err, errWrite) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("negative length", func(t *testing.T) {
		var g SegmentedFrame
		err := g.EncodeResponse(1, fx.resp, func(int) (int32, bool) { return -1, true })
		if err == nil {
			t.Fatal("a negative external length must fail")
		}
	})
	t.Run("reuse", func(t *testing.T) {
		buf, gaps := &f.Buf[0], &f.Gaps[0]
		if err := f.EncodeResponse(2, fx.withoutRecords(func(int) bool { return true }),
			func(i int) (int32, bool) { return int32(fx.len[i]), i != 0 }); err != nil {
			t.Fatal(err)
		}
		if &f.Buf[0] != buf || len(f.Gaps) != 4 || &f.Gaps[0] != gaps {
			t.Fatal("EncodeResponse must reuse the frame's storage")
		}
		if err := f.EncodeResponse(2, fx.resp, nil); err != nil {
			t.Fatal(err)
		}
		want, _ := AppendResponseFrame(nil, 2, fx.resp)
		if !bytes.Equal(f.Buf, want) || len(f.Gaps) != 0 || f.Size() != int64(len(want)) {
			t.Fatal("without an ExternalFunc the frame is the in-memory one")
		}
	})
}

var errWrite = errors.New("write failed")

type failingWriter struct{ after int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.after {
		n := w.after
		w.after = 0
		return n, errWrite
	}
	w.after -= len(p)
	return len(p), nil
}
