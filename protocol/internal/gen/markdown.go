package main

import (
	"bytes"
	"fmt"
	"strings"
)

// Markers around the generated part of PROTOCOL.md.
const (
	docBegin = "<!-- BEGIN GENERATED: messages (go run ./protocol/internal/gen) -->"
	docEnd   = "<!-- END GENERATED: messages -->"
)

// markdown renders the message reference of PROTOCOL.md.
func markdown(apis []*API) []byte {
	var b bytes.Buffer
	p := func(format string, args ...any) {
		fmt.Fprintf(&b, format, args...)
		b.WriteByte('\n')
	}
	for i, api := range sortedByKey(apis) {
		if i > 0 {
			p("")
		}
		p("### %d %s", api.Key, api.Name)
		p("")
		p("%s Versions %d to %d.", api.Doc, api.MinVersion, api.MaxVersion)
		for _, s := range []*Struct{api.Request, api.Response} {
			p("")
			kind := strings.TrimPrefix(s.Name, api.Name)
			if len(s.Fields) == 0 {
				p("%s (`%s`): the body is empty (0 bytes).", kind, s.Name)
				continue
			}
			p("%s (`%s`):", kind, s.Name)
			p("")
			p("| field | type | since | meaning |")
			p("|---|---|---|---|")
			rows(&b, api, s, "")
		}
	}
	return b.Bytes()
}

// rows writes one table row per field of s, its arrays' element fields after
// it with their path.
func rows(b *bytes.Buffer, api *API, s *Struct, prefix string) {
	for _, f := range s.Fields {
		fmt.Fprintf(b, "| `%s%s` | %s | %d | %s |\n", prefix, f.WireName, docType(f), f.Since, cell(f.Doc))
		if f.Type.Struct != nil {
			rows(b, api, f.Type.Struct, prefix+f.WireName+"[].")
		}
	}
}

// docType is a field's type as PROTOCOL.md writes it.
func docType(f *Field) string {
	t := f.Type
	var s string
	switch {
	case t.Struct != nil:
		s = "array"
	case t.Elem != nil:
		s = "array of " + t.Elem.Prim
	case t.Named == "ErrorCode":
		s = "int16 (error code)"
	case t.Named == "APIKey":
		s = "int16 (api key)"
	default:
		s = t.Prim
	}
	if f.Nullable {
		s = "nullable " + s
	}
	if f.External {
		s += " (external)"
	}
	return s
}

// cell escapes text for a table cell.
func cell(text string) string {
	return strings.ReplaceAll(text, "|", `\|`)
}

// replaceRegion replaces the text between the markers in doc with region.
func replaceRegion(doc, region []byte) ([]byte, error) {
	begin := bytes.Index(doc, []byte(docBegin))
	end := bytes.Index(doc, []byte(docEnd))
	if begin < 0 || end < begin {
		return nil, fmt.Errorf("markers %q and %q not found in order", docBegin, docEnd)
	}
	var out bytes.Buffer
	out.Write(doc[:begin+len(docBegin)])
	out.WriteString("\n\n")
	out.Write(region)
	out.WriteString("\n")
	out.Write(doc[end:])
	return out.Bytes(), nil
}
