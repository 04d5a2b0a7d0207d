package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGeneratedUpToDate fails when messages_gen.go, versioned_gen_test.go or
// PROTOCOL.md is not what the definitions generate (as `make verify` does).
func TestGeneratedUpToDate(t *testing.T) {
	dir := filepath.Join("..", "..")
	files, err := generate(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		have, err := os.ReadFile(filepath.Join(dir, f.path))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(have, f.data) {
			t.Errorf("%s is stale: run `go generate ./protocol`", f.path)
		}
	}
}

func TestParseErrors(t *testing.T) {
	api := func(body string) string {
		return "api A key 1 versions 0-1 {\n" + body + "\n}\n"
	}
	for _, tc := range []struct {
		name, def, want string
	}{
		{"not an api", "message A {", "want `api"},
		{"missing response", api("request {\n}"), "needs a request and a response"},
		{"unknown type", api("request {\nx float\n}\nresponse {\n}"), `unknown type "float"`},
		{"nullable int", api("request {\nx int32 nullable\n}\nresponse {\n}"), "only strings and arrays can be nullable"},
		{"external string", api("request {\nx string external\n}\nresponse {\n}"), "only bytes can be external"},
		{"since out of range", api("request {\nx int32 since:2\n}\nresponse {\n}"), "outside the api's versions"},
		{"unknown attribute", api("request {\nx int32 optional\n}\nresponse {\n}"), `unknown attribute "optional"`},
		{"duplicate field", api("request {\nx int32\nx int16\n}\nresponse {\n}"), "field x is defined twice"},
		{"empty elements", api("request {\nxs []E {\n}\n}\nresponse {\n}"), "have no fields at version 0"},
		{"elements only later", api("request {\nxs []E {\ny int8 since:1\n}\n}\nresponse {\n}"), "have no fields at version 0"},
		{"duplicate type", api("request {\nxs []E {\ny int8\n}\nzs []E {\ny int8\n}\n}\nresponse {\n}"), "type E is defined twice"},
		{"duplicate key", api("request {\n}\nresponse {\n}") + "api B key 1 versions 0-0 {\n}", "api key 1 is already A"},
		{"bad range", "api A key 1 versions 2-1 {\n", "bad version range"},
		{"unclosed", "api A key 1 versions 0-0 {\nrequest {\n", "missing }"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("test.def", strings.NewReader(tc.def))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	def := `
# ignored: a blank line follows

# Doc of A.
api A key 3 versions 1-2 {
	request {
		# Doc of x,
		x int16 since:2 # continued.
		ys []AY nullable {
			z string nullable
		}
		e ErrorCode
	}
	response {
		b bytes external
	}
}
`
	apis, err := Parse("test.def", strings.NewReader(def))
	if err != nil {
		t.Fatal(err)
	}
	a := apis[0]
	if a.Name != "A" || a.Key != 3 || a.MinVersion != 1 || a.MaxVersion != 2 || a.Doc != "Doc of A." {
		t.Fatalf("api %+v", a)
	}
	x, ys, e := a.Request.Fields[0], a.Request.Fields[1], a.Request.Fields[2]
	if x.GoName != "X" || x.Since != 2 || x.Doc != "Doc of x, continued." || x.Type.Prim != "int16" {
		t.Fatalf("x %+v", x)
	}
	if !ys.Nullable || ys.Since != 1 || ys.Type.Struct == nil || ys.Type.Struct.Name != "AY" || !ys.Type.Struct.Fields[0].Nullable {
		t.Fatalf("ys %+v", ys)
	}
	if e.Type.Named != "ErrorCode" || e.Type.Prim != "int16" {
		t.Fatalf("e %+v", e.Type)
	}
	if b := a.Response.Fields[0]; !b.External || b.Type.Prim != "bytes" {
		t.Fatalf("b %+v", b)
	}
	if _, err := goFile("test.def", apis, false); err != nil {
		t.Fatal(err)
	}
}

func TestGoName(t *testing.T) {
	for wire, want := range map[string]string{
		"node_id": "NodeID", "group_ids": "GroupIDs", "api_key": "APIKey", "apis": "APIs", "timeout_ms": "TimeoutMs",
		"high_watermark": "HighWatermark", "records": "Records",
	} {
		if got := goName(wire); got != want {
			t.Errorf("goName(%q) = %q, want %q", wire, got, want)
		}
	}
}
