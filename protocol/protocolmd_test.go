package protocol

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// These tests keep PROTOCOL.md (at the repository root) true: its worked
// example, its error table and its copies of the log frame and record batch
// formats. Its message tables are generated (make verify).

func readProtocolMD(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "PROTOCOL.md"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// section returns the text between begin and end in doc.
func section(t *testing.T, doc, begin, end string) string {
	t.Helper()
	i := strings.Index(doc, begin)
	if i < 0 {
		t.Fatalf("PROTOCOL.md has no %q", begin)
	}
	rest := doc[i+len(begin):]
	j := strings.Index(rest, end)
	if j < 0 {
		t.Fatalf("PROTOCOL.md has no %q after %q", end, begin)
	}
	return rest[:j]
}

// hexLine is one line of an annotated dump: bytes in hex, then (after at
// least two spaces) what they are.
var hexLine = regexp.MustCompile(`^((?:[0-9a-f]{2} )*[0-9a-f]{2})(?: {2,}\S.*)?$`)

// dumpBytes returns the bytes of the annotated hex dump under marker.
func dumpBytes(t *testing.T, doc, marker string) []byte {
	t.Helper()
	block := section(t, doc, "<!-- hex: "+marker+" -->", "<!-- /hex -->")
	var out []byte
	for line := range strings.SplitSeq(block, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "```") {
			continue
		}
		m := hexLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("%s: not an annotated hex line: %q", marker, line)
		}
		b, err := hex.DecodeString(strings.ReplaceAll(m[1], " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
	}
	return out
}

// exampleMetadataResponse is the response of the worked example.
func exampleMetadataResponse() *MetadataResponse {
	return &MetadataResponse{
		Brokers:      []MetadataResponseBroker{{NodeID: 1, Host: "127.0.0.1", Port: 7420}},
		ControllerID: 1,
		Topics: []MetadataResponseTopic{{
			ErrorCode: CodeNone,
			Name:      "orders",
			Partitions: []MetadataResponsePartition{{
				ErrorCode: CodeNone, Partition: 0, LeaderID: 1, LeaderEpoch: 1,
				Replicas: []int32{1}, HighWatermark: 42, LogStartOffset: 0,
			}},
		}},
	}
}

func TestProtocolMDExample(t *testing.T) {
	doc := readProtocolMD(t)
	req := &MetadataRequest{Topics: []string{"orders"}}
	wantReq, err := AppendRequestFrame(nil, 7, "cli", req)
	if err != nil {
		t.Fatal(err)
	}
	wantResp, err := AppendResponseFrame(nil, 7, exampleMetadataResponse())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		marker string
		want   []byte
	}{
		{"metadata request", wantReq},
		{"metadata response", wantResp},
	} {
		if got := dumpBytes(t, doc, tc.marker); !bytes.Equal(got, tc.want) {
			t.Errorf("PROTOCOL.md's %s is\n% x\nthe encoder writes\n% x", tc.marker, got, tc.want)
		}
	}
	// And the quoted bytes decode back to the messages.
	h, got, err := DecodeRequest(dumpBytes(t, doc, "metadata request")[4:])
	if err != nil || h.CorrelationID != 7 || h.ClientID != "cli" {
		t.Fatalf("header %+v, %v", h, err)
	}
	mustEqual(t, got, req)
}

func TestProtocolMDErrorTable(t *testing.T) {
	doc := readProtocolMD(t)
	table := section(t, doc, "<!-- BEGIN error codes", "<!-- END error codes -->")
	row := regexp.MustCompile(`^\| (\d+) \| (\w+) \| (yes|no) \| (.+) \|$`)
	seen := map[ErrorCode]bool{}
	for line := range strings.SplitSeq(table, "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		code := ErrorCode(n)
		if !code.Known() || code.String() != m[2] || code.Retriable() != (m[3] == "yes") || code.Description() != m[4] {
			t.Errorf("PROTOCOL.md row %q; the code table has %v, retriable %v, %q",
				line, code, code.Retriable(), code.Description())
		}
		seen[code] = true
	}
	for code := range codeTable {
		if !seen[code] {
			t.Errorf("PROTOCOL.md's error table lacks %d %v", int16(code), code)
		}
	}
}

// TestProtocolMDFormats checks that the log frame and record batch diagrams
// PROTOCOL.md reproduces are, line for line, those of log/doc.go and
// protocol/record/doc.go, which are the authority.
func TestProtocolMDFormats(t *testing.T) {
	source := map[string]bool{}
	for _, path := range []string{filepath.Join("..", "log", "doc.go"), filepath.Join("record", "doc.go")} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			source[strings.TrimSpace(strings.TrimPrefix(line, "//"))] = true
		}
	}
	doc := readProtocolMD(t)
	blocks := 0
	for _, block := range strings.Split(doc, "```text\n")[1:] {
		block = block[:strings.Index(block, "```")]
		if !strings.Contains(strings.SplitN(block, "\n", 2)[0], "part of the wire format; never change") {
			continue
		}
		blocks++
		for line := range strings.SplitSeq(block, "\n") {
			if line = strings.TrimSpace(line); line != "" && !source[line] {
				t.Errorf("PROTOCOL.md's line %q is not in log/doc.go or protocol/record/doc.go", line)
			}
		}
	}
	if blocks != 3 { // the log frame, the batch header, the record
		t.Errorf("found %d format blocks in PROTOCOL.md, want 3", blocks)
	}
}
