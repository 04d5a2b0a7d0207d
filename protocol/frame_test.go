package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"testing"
	"testing/iotest"
)

func TestRequestFrameRoundTrip(t *testing.T) {
	for _, tc := range sampleMessages() {
		req, ok := tc.msg.(Request)
		if !ok {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			frame, err := AppendRequestFrame([]byte("junk"), 77, "client-1", req)
			if err != nil {
				t.Fatal(err)
			}
			frame = frame[len("junk"):]
			if size := binary.BigEndian.Uint32(frame); int(size) != len(frame)-4 {
				t.Fatalf("size field %d, frame of %d bytes", size, len(frame))
			}
			contents, err := ReadFrame(bytes.NewReader(frame), 1<<20, nil)
			if err != nil {
				t.Fatal(err)
			}
			h, got, err := DecodeRequest(contents)
			if err != nil {
				t.Fatal(err)
			}
			mustEqual(t, h, RequestHeader{APIKey: req.Key(), APIVersion: req.GetVersion(), CorrelationID: 77, ClientID: "client-1"})
			mustEqual(t, got, req)
		})
	}
}

func TestResponseFrameRoundTrip(t *testing.T) {
	resp := &ListOffsetsResponse{Topics: []ListOffsetsResponseTopic{{Name: "t"}}}
	frame, err := AppendResponseFrame(nil, -5, resp)
	if err != nil {
		t.Fatal(err)
	}
	contents, err := ReadFrame(bytes.NewReader(frame), 0, make([]byte, 0, 1024))
	if err != nil {
		t.Fatal(err)
	}
	h, body, err := DecodeResponseHeader(contents)
	if err != nil || h.CorrelationID != -5 {
		t.Fatalf("header %+v, %v", h, err)
	}
	got := (&ListOffsetsRequest{}).ResponseKind()
	if err := got.Decode(NewReader(body)); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, resp)

	if _, _, err := DecodeResponseHeader([]byte{0, 0, 1}); !errors.Is(err, ErrTruncated) {
		t.Fatalf("short response header: %v", err)
	}
}

func TestDecodeRequestErrors(t *testing.T) {
	frame := func(key, version int16, body ...byte) []byte {
		var w Writer
		h := RequestHeader{APIKey: APIKey(key), APIVersion: version, CorrelationID: 9, ClientID: "c"}
		h.Encode(&w)
		w.PutRaw(body)
		return w.Bytes()
	}
	for _, tc := range []struct {
		name       string
		frame      []byte
		want       error
		wantHeader bool
	}{
		{"short header", []byte{0, 1, 0, 0, 0}, ErrTruncated, false},
		{"unknown key", frame(99, 0), ErrInvalidRequest, true},
		{"unsupported version", frame(int16(KeyMetadata), 1, 0xff, 0xff, 0xff, 0xff), ErrUnsupportedVersion, true},
		{"negative version", frame(int16(KeyMetadata), -1), ErrUnsupportedVersion, true},
		{"truncated body", frame(int16(KeyMetadata), 0, 0, 0, 0), ErrTruncated, true},
		{"trailing bytes", frame(int16(KeyAPIVersions), 0, 1), ErrMalformed, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, req, err := DecodeRequest(tc.frame)
			if !errors.Is(err, tc.want) || req != nil {
				t.Fatalf("err %v, request %v; want %v", err, req, tc.want)
			}
			if tc.wantHeader && h.CorrelationID != 9 {
				t.Fatalf("header %+v: the correlation id is lost", h)
			}
		})
	}
	// The codes a broker would answer with.
	_, _, err := DecodeRequest(frame(int16(KeyMetadata), 1))
	if CodeOf(err) != CodeUnsupportedVersion {
		t.Fatalf("CodeOf(%v) = %v", err, CodeOf(err))
	}
	_, _, err = DecodeRequest(frame(int16(KeyMetadata), 0, 1))
	if CodeOf(err) != CodeInvalidRequest {
		t.Fatalf("CodeOf(%v) = %v", err, CodeOf(err))
	}
}

func TestReadFrame(t *testing.T) {
	stream := func(frames ...[]byte) []byte {
		var b []byte
		for _, f := range frames {
			b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
			b = append(b, f...)
		}
		return b
	}
	big := fill(300<<10, 5) // over the first chunk, so the buffer grows
	in := stream([]byte("one"), nil, big, []byte("four"))
	for _, tc := range []struct {
		name string
		r    func() io.Reader
		buf  []byte
	}{
		{"whole", func() io.Reader { return bytes.NewReader(in) }, nil},
		{"one byte at a time", func() io.Reader { return iotest.OneByteReader(bytes.NewReader(in)) }, nil},
		{"half reads", func() io.Reader { return iotest.HalfReader(bytes.NewReader(in)) }, make([]byte, 0, 8)},
		{"large buffer", func() io.Reader { return bytes.NewReader(in) }, make([]byte, 0, 1<<20)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.r()
			for i, want := range [][]byte{[]byte("one"), {}, big, []byte("four")} {
				got, err := ReadFrame(r, 1<<20, tc.buf)
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("frame %d: %d bytes, want %d", i, len(got), len(want))
				}
			}
			if _, err := ReadFrame(r, 1<<20, tc.buf); err != io.EOF {
				t.Fatalf("after the last frame: %v, want io.EOF", err)
			}
		})
	}
	t.Run("reuses buf", func(t *testing.T) {
		buf := make([]byte, 0, 16)
		got, err := ReadFrame(bytes.NewReader(stream([]byte("hello"))), 100, buf)
		if err != nil || &got[0] != &buf[:1][0] {
			t.Fatalf("got %q, %v; want it in buf", got, err)
		}
	})
	for _, n := range []int{1, 3, 4, 5, 7} {
		t.Run(fmt.Sprintf("torn after %d bytes", n), func(t *testing.T) {
			_, err := ReadFrame(bytes.NewReader(stream([]byte("abcd"))[:n]), 100, nil)
			if err != io.ErrUnexpectedEOF {
				t.Fatalf("err %v, want io.ErrUnexpectedEOF", err)
			}
		})
	}
	t.Run("read error", func(t *testing.T) {
		boom := errors.New("boom")
		r := io.MultiReader(bytes.NewReader([]byte{0, 0, 0, 9, 1}), iotest.ErrReader(boom))
		if _, err := ReadFrame(r, 100, nil); err != boom {
			t.Fatalf("err %v, want boom", err)
		}
	})
}

// limitedSource serves a frame that declares size and then would supply
// endless bytes, failing the test if more than allowed bytes are read.
type limitedSource struct {
	t       testing.TB
	header  []byte
	read    int
	allowed int
}

func (s *limitedSource) Read(p []byte) (int, error) {
	if s.read+len(p) > s.allowed {
		s.t.Errorf("ReadFrame read past byte %d (asked for %d more)", s.read, len(p))
		return 0, errors.New("read too far")
	}
	n := copy(p, s.header[min(s.read, len(s.header)):])
	for i := n; i < len(p); i++ {
		p[i] = 0xab // an endless supply
	}
	s.read += len(p)
	return len(p), nil
}

func TestReadFrameTooLarge(t *testing.T) {
	for _, size := range []uint32{1<<20 + 1, 1 << 30, 0xffffffff} {
		src := &limitedSource{t: t, header: binary.BigEndian.AppendUint32(nil, size), allowed: 4}
		var err error
		allocs := testing.AllocsPerRun(10, func() {
			src.read = 0
			_, err = ReadFrame(src, 1<<20, nil)
		})
		var tooLarge *FrameTooLargeError
		if !errors.Is(err, ErrFrameTooLarge) || !errors.As(err, &tooLarge) || tooLarge.Size != size || tooLarge.Max != 1<<20 {
			t.Fatalf("size %d: err %v", size, err)
		}
		if allocs > 2 { // the error, and the size buffer if it escapes
			t.Fatalf("size %d: %v allocations", size, allocs)
		}
		src.read = 0
		if n := bytesAllocated(func() { _, err = ReadFrame(src, 1<<20, nil) }); n > 64<<10 {
			t.Fatalf("size %d: allocated %d bytes", size, n)
		}
		if CodeOf(&FrameTooLargeError{Size: size}) != CodeRequestTooLarge {
			t.Fatal("a frame too large must map to RequestTooLarge")
		}
	}
	t.Run("default limit", func(t *testing.T) {
		src := &limitedSource{t: t, header: binary.BigEndian.AppendUint32(nil, DefaultMaxFrameSize+1), allowed: 4}
		if _, err := ReadFrame(src, 0, nil); !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("err %v", err)
		}
	})
}

// TestReadFrameGrowsWithData checks that a frame that declares a large size
// (within the limit) but whose bytes never come costs little memory.
func TestReadFrameGrowsWithData(t *testing.T) {
	in := append(binary.BigEndian.AppendUint32(nil, 90<<20), "only a few bytes"...)
	var err error
	allocated := bytesAllocated(func() { _, err = ReadFrame(bytes.NewReader(in), 100<<20, nil) })
	if err != io.ErrUnexpectedEOF {
		t.Fatalf("err %v", err)
	}
	if allocated > 2*initialFrameChunk {
		t.Fatalf("a 90 MiB frame of 16 bytes allocated %d bytes", allocated)
	}
}

func TestRequestHeaderBytes(t *testing.T) {
	var w Writer
	h := RequestHeader{APIKey: KeyFetch, APIVersion: 0x0102, CorrelationID: 0x0a0b0c0d, ClientID: "ab"}
	h.Encode(&w)
	mustEqual(t, w.Bytes(), []byte{0, 7, 1, 2, 0x0a, 0x0b, 0x0c, 0x0d, 0, 2, 'a', 'b'})
}
