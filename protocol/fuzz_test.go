package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// fuzzAPI is an API the fuzz targets decode: every real one, and the
// test-only Versioned API, whose fields depend on the version.
type fuzzAPI struct {
	newRequest             func() Request
	newResponse            func() Response
	minVersion, maxVersion int16
}

func fuzzAPIs() []fuzzAPI {
	var apis []fuzzAPI
	for _, key := range APIKeys() {
		lo, hi, _ := Versions(key)
		apis = append(apis, fuzzAPI{func() Request { return NewRequest(key) }, func() Response { return NewResponse(key) }, lo, hi})
	}
	return append(apis, fuzzAPI{
		func() Request { return new(VersionedRequest) }, func() Response { return new(VersionedResponse) }, 0, 2})
}

// pick chooses an API and a version from the first two bytes of data.
func pick(data []byte) (api fuzzAPI, version int16, body []byte, ok bool) {
	if len(data) < 2 {
		return api, 0, nil, false
	}
	apis := fuzzAPIs()
	api = apis[int(data[0])%len(apis)]
	version = api.minVersion + int16(int(data[1])%int(api.maxVersion-api.minVersion+1))
	return api, version, data[2:], true
}

// seedFor returns the fuzz input that picks m's API and version, then m's body.
func seedFor(m Message) []byte {
	for i, api := range fuzzAPIs() {
		if api.newRequest().Key() == m.Key() {
			return append([]byte{byte(i), byte(m.GetVersion() - api.minVersion)}, m.AppendTo(nil)...)
		}
	}
	panic("no fuzz api for " + m.Key().String())
}

func fuzzSeeds(f *testing.F, response bool) {
	for _, tc := range sampleMessages() {
		if _, isResp := tc.msg.(Response); isResp == response {
			f.Add(seedFor(tc.msg))
		}
	}
	for v := int16(0); v <= 2; v++ {
		if response {
			f.Add(seedFor(&VersionedResponse{Version: v, Payload: []byte("p"), Count: 3}))
		} else {
			f.Add(seedFor(versionedFull(v)))
		}
	}
}

// checkDecoded is the property of both decode targets: a message that decodes
// re-encodes to bytes that decode to an equal message and re-encode to the
// same bytes.
func checkDecoded(t *testing.T, m Message, err error) {
	if err != nil {
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("decode error %v does not match ErrMalformed", err)
		}
		return
	}
	b := m.AppendTo(nil)
	again, err := decodeAs(m, b)
	if err != nil {
		t.Fatalf("re-encoded %T does not decode: %v", m, err)
	}
	mustEqual(t, again, m)
	if b2 := again.AppendTo(nil); !bytes.Equal(b2, b) {
		t.Fatalf("encoding is not stable:\n%x\n%x", b, b2)
	}
}

func FuzzDecodeRequest(f *testing.F) {
	fuzzSeeds(f, false)
	f.Fuzz(func(t *testing.T, data []byte) {
		api, version, body, ok := pick(data)
		if !ok {
			return
		}
		m := api.newRequest()
		m.SetVersion(version)
		checkDecoded(t, m, m.Decode(NewReader(body)))
	})
}

func FuzzDecodeResponse(f *testing.F) {
	fuzzSeeds(f, true)
	f.Fuzz(func(t *testing.T, data []byte) {
		api, version, body, ok := pick(data)
		if !ok {
			return
		}
		m := api.newResponse()
		m.SetVersion(version)
		checkDecoded(t, m, m.Decode(NewReader(body)))
	})
}

// FuzzReadFrame reads frames from arbitrary bytes with a small limit, and
// decodes each as a request frame. Frames must come back exactly as the
// stream holds them; nothing may panic.
func FuzzReadFrame(f *testing.F) {
	const limit = 256
	for _, tc := range sampleMessages() {
		if req, ok := tc.msg.(Request); ok {
			frame, err := AppendRequestFrame(nil, 3, "fuzz", req)
			if err == nil && len(frame) <= limit+4 {
				f.Add(append(frame, 0, 0, 0, 0))
			}
		}
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3})
	f.Add([]byte{0, 0, 1, 1, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		buf := make([]byte, 0, 16)
		pos := 0
		for {
			frame, err := ReadFrame(r, limit, buf)
			if err != nil {
				rest := len(data) - pos
				switch {
				case err == io.EOF && rest == 0:
				case err == io.ErrUnexpectedEOF && rest > 0:
				case errors.Is(err, ErrFrameTooLarge) && rest >= 4 && binary.BigEndian.Uint32(data[pos:]) > limit:
				default:
					t.Fatalf("at %d of %d: unexpected error %v", pos, len(data), err)
				}
				return
			}
			size := int(binary.BigEndian.Uint32(data[pos:]))
			if size > limit || size != len(frame) || !bytes.Equal(frame, data[pos+4:pos+4+size]) {
				t.Fatalf("at %d: frame of %d bytes does not match the stream", pos, len(frame))
			}
			pos += 4 + size
			if h, req, err := DecodeRequest(frame); err == nil {
				if req.Key() != h.APIKey {
					t.Fatalf("header key %v, request %v", h.APIKey, req.Key())
				}
				checkDecoded(t, req, nil)
			}
		}
	})
}
