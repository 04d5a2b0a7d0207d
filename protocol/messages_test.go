package protocol

import (
	"bytes"
	"errors"
	"math"
	"runtime"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	seen := map[APIKey]int{}
	for _, tc := range sampleMessages() {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.msg.AppendTo(nil)
			got, err := decodeAs(tc.msg, b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			mustEqual(t, got, tc.msg)
			if again := got.AppendTo(nil); !bytes.Equal(again, b) {
				t.Fatalf("re-encoding differs:\n got %x\nwant %x", again, b)
			}
			// Encode through a Writer that already holds bytes.
			w := NewWriter([]byte("prefix"))
			tc.msg.Encode(w)
			if w.Err() != nil || !bytes.Equal(w.Bytes(), append([]byte("prefix"), b...)) {
				t.Fatalf("Encode into a non-empty Writer: err %v, bytes %x", w.Err(), w.Bytes())
			}
		})
		bit := 0
		if _, ok := tc.msg.(Response); ok {
			bit = 1
		}
		seen[tc.msg.Key()] |= 1 << bit
	}
	// Every request and every response has a case.
	for _, key := range APIKeys() {
		if seen[key] != 3 {
			t.Errorf("%v: samples cover request|response bits %02b, want 11", key, seen[key])
		}
	}
}

// TestNullAndEmpty pins down what null and empty decode to.
func TestNullAndEmpty(t *testing.T) {
	t.Run("nullable array", func(t *testing.T) {
		all := (&MetadataRequest{}).AppendTo(nil)
		none := (&MetadataRequest{Topics: []string{}}).AppendTo(nil)
		mustEqual(t, all, []byte{0xff, 0xff, 0xff, 0xff})
		mustEqual(t, none, []byte{0, 0, 0, 0})
		var m MetadataRequest
		if err := m.Decode(NewReader(all)); err != nil || m.Topics != nil {
			t.Fatalf("null decoded to %#v, %v; want nil", m.Topics, err)
		}
		if err := m.Decode(NewReader(none)); err != nil || m.Topics == nil || len(m.Topics) != 0 {
			t.Fatalf("empty decoded to %#v, %v; want a non-nil empty slice", m.Topics, err)
		}
	})
	t.Run("array", func(t *testing.T) {
		// A null non-nullable array decodes as empty.
		var m DescribeConfigsRequest
		if err := m.Decode(NewReader([]byte{0xff, 0xff, 0xff, 0xff})); err != nil || m.Topics != nil {
			t.Fatalf("got %#v, %v", m.Topics, err)
		}
	})
	t.Run("nullable string", func(t *testing.T) {
		null := (&InitProducerIDResponse{}).AppendTo(nil)
		empty := (&InitProducerIDResponse{ErrorMessage: str("")}).AppendTo(nil)
		mustEqual(t, null[2:4], []byte{0xff, 0xff})
		mustEqual(t, empty[2:4], []byte{0, 0})
	})
	t.Run("string", func(t *testing.T) {
		// A null non-nullable string decodes as "".
		var m DeleteTopicsRequest
		in := []byte{0, 0, 0, 1, 0xff, 0xff, 0, 0, 0, 9}
		if err := m.Decode(NewReader(in)); err != nil {
			t.Fatal(err)
		}
		mustEqual(t, m.Names, []string{""})
		mustEqual(t, m.TimeoutMs, int32(9))
	})
	t.Run("bytes", func(t *testing.T) {
		for _, records := range [][]byte{nil, {}} {
			m := &ProduceRequest{Topics: []ProduceRequestTopic{{Partitions: []ProduceRequestPartition{{Records: records}}}}}
			got, err := decodeAs(m, m.AppendTo(nil))
			if err != nil {
				t.Fatal(err)
			}
			r := got.(*ProduceRequest).Topics[0].Partitions[0].Records
			if (r == nil) != (records == nil) || len(r) != 0 {
				t.Fatalf("records %#v decoded as %#v", records, r)
			}
		}
	})
}

// TestTruncated checks that every strict prefix of every message fails to
// decode, with an error and without a panic, and that a byte too many fails
// too.
func TestTruncated(t *testing.T) {
	for _, tc := range sampleMessages() {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.msg.AppendTo(nil)
			for n := range len(b) {
				_, err := decodeAs(tc.msg, b[:n:n])
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("prefix of %d of %d bytes: err %v, want ErrMalformed", n, len(b), err)
				}
			}
			_, err := decodeAs(tc.msg, append(b[:len(b):len(b)], 0))
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "left over") {
				t.Fatalf("trailing byte: err %v, want bytes left over", err)
			}
		})
	}
}

// TestDecodeBoundsAllocation decodes small inputs that declare huge counts
// and lengths, and checks that they fail without allocating much.
func TestDecodeBoundsAllocation(t *testing.T) {
	huge := []byte{0x7f, 0xff, 0xff, 0xff}
	for _, tc := range []struct {
		name string
		msg  Message
		in   []byte
		want string
	}{
		{"array count", &MetadataResponse{}, huge, "array of 2147483647 elements"},
		{"nested array count", &MetadataResponse{}, append([]byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 't'}, huge...), "array of 2147483647 elements"},
		{"bytes length", &ProduceRequest{}, append([]byte{0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 't', 0, 0, 0, 1, 0, 0, 0, 0}, huge...), "bytes needs 2147483647 bytes"},
		{"string length", &DeleteTopicsRequest{}, []byte{0, 0, 0, 1, 0x7f, 0xff, 0, 0, 0}, "string needs 32767 bytes"},
		{"array fits count but not elements", &MetadataResponse{}, append([]byte{0, 0, 0, 5}, make([]byte, 16)...), "array of 5 elements of at least 10 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			allocated := bytesAllocated(func() { _, err = decodeAs(tc.msg, tc.in) })
			if !errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want ErrTruncated with %q", err, tc.want)
			}
			// NB: TotalAlloc also counts the runtime's own small allocations;
			// what matters is that it is nowhere near what the input declares.
			if allocated > 64<<10 {
				t.Fatalf("decoding %d bytes allocated %d bytes", len(tc.in), allocated)
			}
		})
	}
}

// bytesAllocated returns how many bytes fn allocates on the heap.
func bytesAllocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestMalformedValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  Message
		in   []byte
		want string
	}{
		{"bool 2", &DescribeConfigsResponse{}, []byte{
			0, 0, 0, 1, 0, 1, 't', 0, 0, 0xff, 0xff, 0, 0, 0, 1, 0, 1, 'k', 0, 1, 'v', 2}, "bool byte 2"},
		{"negative string length", &DeleteTopicsRequest{}, []byte{0, 0, 0, 1, 0xff, 0xfe, 0, 0, 0, 0}, "string length -2"},
		{"negative array count", &DeleteTopicsRequest{}, []byte{0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 0}, "array count -2"},
		{"negative bytes length", &ProduceRequest{}, []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 't', 0, 0, 0, 1, 0, 0, 0, 0,
			0xff, 0xff, 0xff, 0xfe}, "bytes length -2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeAs(tc.msg, tc.in)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want ErrMalformed with %q", err, tc.want)
			}
		})
	}
}

func TestEncodeTooLong(t *testing.T) {
	long := strings.Repeat("x", math.MaxInt16+1)
	m := &DeleteTopicsRequest{Names: []string{"ok", long}}
	var w Writer
	m.Encode(&w)
	if !errors.Is(w.Err(), ErrTooLong) {
		t.Fatalf("Writer.Err = %v, want ErrTooLong", w.Err())
	}
	if _, err := AppendRequestFrame(nil, 1, "c", m); !errors.Is(err, ErrTooLong) {
		t.Fatalf("AppendRequestFrame: %v, want ErrTooLong", err)
	}
	if _, err := AppendRequestFrame(nil, 1, long, &APIVersionsRequest{}); !errors.Is(err, ErrTooLong) {
		t.Fatalf("AppendRequestFrame with a long client id: %v, want ErrTooLong", err)
	}
	defer func() {
		if r := recover(); r == nil || !errors.Is(r.(error), ErrTooLong) {
			t.Fatalf("AppendTo recovered %v, want a panic with ErrTooLong", r)
		}
	}()
	m.AppendTo(nil)
}

func TestDecodeZeroesMessage(t *testing.T) {
	m := &MetadataResponse{ControllerID: 9, Brokers: []MetadataResponseBroker{{NodeID: 1}}}
	if err := m.Decode(NewReader(make([]byte, 12))); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, m, &MetadataResponse{})
}

func TestKinds(t *testing.T) {
	for _, key := range APIKeys() {
		req := NewRequest(key)
		resp := NewResponse(key)
		if req == nil || resp == nil || req.Key() != key || resp.Key() != key {
			t.Fatalf("%v: NewRequest %T, NewResponse %T", key, req, resp)
		}
		req.SetVersion(3)
		if k := req.ResponseKind(); k.Key() != key || k.GetVersion() != 3 {
			t.Fatalf("%v: ResponseKind = %T at version %d", key, k, k.GetVersion())
		}
		resp.SetVersion(2)
		if k := resp.RequestKind(); k.Key() != key || k.GetVersion() != 2 {
			t.Fatalf("%v: RequestKind = %T at version %d", key, k, k.GetVersion())
		}
	}
	if NewRequest(-1) != nil || NewResponse(10000) != nil {
		t.Fatal("unknown keys must give nil")
	}
}

func TestAPIKeys(t *testing.T) {
	want := []string{"APIVersions", "Metadata", "CreateTopics", "DeleteTopics", "DescribeConfigs",
		"AlterConfigs", "Produce", "Fetch", "ListOffsets", "InitProducerID", "ConsumerGroupHeartbeat",
		"OffsetCommit", "OffsetFetch", "ListGroups", "DescribeGroups", "DeleteGroups", "JoinCluster", "ReportLeaders",
		"NodeInfo", "ReassignPartitions", "ReplicaStatus", "CompleteReassignment", "RemoveNode", "DemoteReplica"}
	keys := APIKeys()
	if len(keys) != len(want) {
		t.Fatalf("APIKeys = %v", keys)
	}
	for i, key := range keys {
		// The keys are part of the wire format: pin them.
		if int(key) != i || key.String() != want[i] {
			t.Errorf("key %d is %d %q, want %d %q", i, int16(key), key, i, want[i])
		}
		wantMax := int16(0)
		switch key {
		case KeyFetch:
			wantMax = 1 // group_id, member_id, member_epoch
		case KeyJoinCluster:
			wantMax = 1 // metadata_index
		}
		if lo, hi, ok := Versions(key); !ok || lo != 0 || hi != wantMax {
			t.Errorf("%v: versions %d-%d %v, want 0-%d", key, lo, hi, ok, wantMax)
		}
	}
	if _, _, ok := Versions(99); ok {
		t.Error("Versions(99) ok")
	}
	if s := APIKey(99).String(); s != "APIKey(99)" {
		t.Errorf("APIKey(99).String() = %q", s)
	}
	apis := SupportedAPIs()
	if len(apis) != len(keys) || apis[7] != (APIVersionsResponseAPI{APIKey: KeyFetch, MaxVersion: 1}) {
		t.Errorf("SupportedAPIs = %+v", apis)
	}
}
