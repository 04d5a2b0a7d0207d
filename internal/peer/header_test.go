package peer

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestHeader(t *testing.T) {
	for _, tc := range []struct {
		name  string
		input []byte
		group string
		err   error // nil, or the sentinel to match
	}{
		{name: "valid", input: appendHeader(nil, "orders-3"), group: "orders-3"},
		{name: "longest", input: appendHeader(nil, strings.Repeat("g", MaxGroupIDLen)), group: strings.Repeat("g", MaxGroupIDLen)},
		{name: "bad magic", input: []byte("HTTP\x00\x01g"), err: ErrBadMagic},
		{name: "old version", input: []byte("WPR0\x00\x01g"), err: ErrBadMagic},
		{name: "msgpack transport version", input: []byte("WPR1\x00\x01g"), err: ErrBadMagic},
		{name: "empty id", input: []byte("WPR2\x00\x00"), err: ErrBadHeader},
		{name: "oversized id", input: []byte("WPR2\x01\x00" + strings.Repeat("g", 256)), err: ErrBadHeader},
		{name: "huge length", input: []byte("WPR2\xff\xff"), err: ErrBadHeader},
		{name: "short magic", input: []byte("WP"), err: io.ErrUnexpectedEOF},
		{name: "short id", input: []byte("WPR2\x00\x05ab"), err: io.ErrUnexpectedEOF},
		{name: "empty", input: nil, err: io.EOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			input := tc.input
			if tc.err == nil {
				input = append(input, "rest"...) // the stream's data
			}
			r := bytes.NewReader(input)
			group, err := readHeader(r)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("readHeader: got %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || group != tc.group {
				t.Fatalf("readHeader: got %q, %v; want %q", group, err, tc.group)
			}
			// The header is consumed exactly: the stream's data follows.
			if rest, _ := io.ReadAll(r); string(rest) != "rest" {
				t.Fatalf("after header: %q, want %q", rest, "rest")
			}
		})
	}
}

func TestValidGroupID(t *testing.T) {
	for _, id := range []string{"", strings.Repeat("x", MaxGroupIDLen+1)} {
		if err := validGroupID(id); !errors.Is(err, ErrInvalidGroupID) {
			t.Errorf("validGroupID(%d bytes) = %v, want ErrInvalidGroupID", len(id), err)
		}
	}
	if err := validGroupID("__meta"); err != nil {
		t.Errorf("validGroupID(__meta) = %v", err)
	}
}

// FuzzReadHeader: readHeader never panics, and whatever it accepts
// re-encodes to the bytes it consumed.
func FuzzReadHeader(f *testing.F) {
	f.Add(appendHeader(nil, "orders-3"))
	f.Add([]byte("WPR2\xff\xff"))
	f.Add([]byte("WPR2\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		group, err := readHeader(r)
		if err != nil {
			return
		}
		consumed := b[:len(b)-r.Len()]
		if again := appendHeader(nil, group); !bytes.Equal(again, consumed) {
			t.Fatalf("re-encoded %q, consumed %q", again, consumed)
		}
	})
}
