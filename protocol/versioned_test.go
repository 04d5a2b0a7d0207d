package protocol

import (
	"bytes"
	"errors"
	"testing"
)

// The Versioned API (testdata/versioned.def, generated into
// versioned_gen_test.go) has fields added in versions 1 and 2, so these tests
// check what the generator does with since:<n>, which no real API uses yet.

func versionedFull(version int16) *VersionedRequest {
	return &VersionedRequest{
		Version: version,
		Name:    "n",
		Tags:    []string{"a"},
		Weight:  5,
		Items:   []VersionedRequestItem{{ID: 1, Label: "l", Flags: []int16{3}}},
		Note:    str("note"),
		Done:    true,
	}
}

func TestVersionedFields(t *testing.T) {
	id1 := []byte{0, 0, 0, 0, 0, 0, 0, 1}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for _, tc := range []struct {
		version int16
		wire    []byte
		decoded *VersionedRequest
	}{
		{0,
			cat([]byte{0, 1, 'n'}, []byte{0, 0, 0, 1}, id1, []byte{1}),
			&VersionedRequest{Name: "n", Items: []VersionedRequestItem{{ID: 1}}, Done: true}},
		{1,
			cat([]byte{0, 1, 'n'}, []byte{0, 0, 0, 1, 0, 1, 'a'}, []byte{0, 0, 0, 5}, []byte{0, 0, 0, 1}, id1,
				[]byte{0, 0, 0, 1, 0, 3}, []byte{1}),
			&VersionedRequest{Version: 1, Name: "n", Tags: []string{"a"}, Weight: 5,
				Items: []VersionedRequestItem{{ID: 1, Flags: []int16{3}}}, Done: true}},
		{2,
			cat([]byte{0, 1, 'n'}, []byte{0, 0, 0, 1, 0, 1, 'a'}, []byte{0, 0, 0, 5}, []byte{0, 0, 0, 1}, id1,
				[]byte{0, 1, 'l'}, []byte{0, 0, 0, 1, 0, 3}, []byte{0, 4, 'n', 'o', 't', 'e'}, []byte{1}),
			versionedFull(2)},
	} {
		m := versionedFull(tc.version)
		b := m.AppendTo(nil)
		if !bytes.Equal(b, tc.wire) {
			t.Fatalf("version %d encodes\n %x\nwant %x", tc.version, b, tc.wire)
		}
		got := &VersionedRequest{Version: tc.version}
		if err := got.Decode(NewReader(b)); err != nil {
			t.Fatalf("version %d: %v", tc.version, err)
		}
		tc.decoded.Version = tc.version
		mustEqual(t, got, tc.decoded)
		// Every strict prefix fails at every version.
		for n := range len(b) {
			if err := got.Decode(NewReader(b[:n])); !errors.Is(err, ErrMalformed) {
				t.Fatalf("version %d, prefix %d: %v", tc.version, n, err)
			}
		}
	}
	// Reading bytes at the wrong version fails: the fields do not line up.
	v1 := versionedFull(1).AppendTo(nil)
	if err := (&VersionedRequest{Version: 0}).Decode(NewReader(v1)); err == nil {
		t.Fatal("version 1 bytes decoded at version 0")
	}
}

func TestVersionedExternal(t *testing.T) {
	// An external field that a version does not have is not offered to the
	// ExternalFunc.
	for _, tc := range []struct {
		version int16
		asked   int
		gaps    []Gap
	}{
		{0, 0, nil},
		{1, 1, []Gap{{Offset: 4 + 4 + 2 + 4, Index: 0, Length: 3}}},
	} {
		asked := 0
		var f SegmentedFrame
		m := &VersionedResponse{Version: tc.version, ErrorCode: CodeNotLeader, Count: 9}
		err := f.EncodeResponse(1, m, func(i int) (int32, bool) { asked++; return 3, true })
		if err != nil || asked != tc.asked {
			t.Fatalf("version %d: asked %d times, %v", tc.version, asked, err)
		}
		if len(f.Gaps) != len(tc.gaps) || (len(tc.gaps) > 0 && f.Gaps[0] != tc.gaps[0]) {
			t.Fatalf("version %d: gaps %+v, want %+v", tc.version, f.Gaps, tc.gaps)
		}
	}
}
