package main

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// The definitions, as parsed from a .def file (syntax in protocol/messages.def).

// API is one api block: a request and a response.
type API struct {
	Name                   string // Go name, e.g. "Produce"
	Key                    int
	MinVersion, MaxVersion int
	Doc                    string
	Request, Response      *Struct
}

// Struct is a message body or an array element.
type Struct struct {
	Name   string // Go type name
	Doc    string
	Fields []*Field
	Top    bool // a request or response body, not an element
}

// Field is one field of a Struct.
type Field struct {
	WireName string // snake_case, as in the definitions and PROTOCOL.md
	GoName   string
	Doc      string
	Type     *Type
	Nullable bool
	External bool
	Since    int
	Line     int
}

// Type is a field's type.
type Type struct {
	Prim   string  // a primitive: "bool", "int16", "string", ...; "" for an array
	Named  string  // a named int type (ErrorCode, APIKey), with Prim its wire type
	Elem   *Type   // the element type of an array of a primitive
	Struct *Struct // the element type of an array of a struct
}

// IsArray reports whether t is an array.
func (t *Type) IsArray() bool { return t.Prim == "" }

// primitives maps each primitive to its smallest encoding, in bytes.
var primitives = map[string]int{
	"bool": 1, "int8": 1, "int16": 2, "int32": 4, "int64": 8, "uint32": 4,
	"string": 2, "bytes": 4,
}

// namedInts maps the named types of the definitions to their wire type.
var namedInts = map[string]string{"ErrorCode": "int16", "APIKey": "int16"}

var (
	apiLine    = regexp.MustCompile(`^api\s+([A-Z][A-Za-z0-9]*)\s+key\s+(\d+)\s+versions\s+(\d+)-(\d+)\s*\{$`)
	bodyLine   = regexp.MustCompile(`^(request|response)\s*\{$`)
	fieldLine  = regexp.MustCompile(`^([a-z][a-z0-9_]*)\s+(\[\])?([A-Za-z][A-Za-z0-9]*)((?:\s+[a-z]+(?::\d+)?)*)\s*(\{)?$`)
	closeBrace = "}"
)

// parser reads a .def file line by line.
type parser struct {
	name   string
	lines  []string
	pos    int      // index of the next line
	doc    []string // comment lines waiting for a declaration
	types  map[string]bool
	apis   []*API
	byKey  map[int]string
	byName map[string]bool
}

// Parse reads definitions from r; name is used in errors.
func Parse(name string, r io.Reader) ([]*API, error) {
	p := &parser{name: name, types: map[string]bool{}, byKey: map[int]string{}, byName: map[string]bool{}}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		p.lines = append(p.lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if err := p.parse(); err != nil {
		return nil, err
	}
	return p.apis, nil
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("%s:%d: %s", p.name, p.pos, fmt.Sprintf(format, args...))
}

// next returns the next line that holds a declaration, with its trailing
// comment; comment lines before it are collected in p.doc. ok is false at
// the end of the input.
func (p *parser) next() (text, trailing string, ok bool) {
	for p.pos < len(p.lines) {
		line := strings.TrimSpace(p.lines[p.pos])
		p.pos++
		switch {
		case line == "":
			p.doc = nil
		case strings.HasPrefix(line, "#"):
			p.doc = append(p.doc, strings.TrimSpace(strings.TrimPrefix(line, "#")))
		default:
			if i := strings.Index(line, "#"); i >= 0 {
				return strings.TrimSpace(line[:i]), strings.TrimSpace(line[i+1:]), true
			}
			return line, "", true
		}
	}
	return "", "", false
}

// takeDoc returns the pending comment lines and the trailing comment as one
// paragraph.
func (p *parser) takeDoc(trailing string) string {
	parts := append(p.doc, trailing)
	p.doc = nil
	return strings.TrimSpace(strings.Join(parts, " "))
}

func (p *parser) parse() error {
	for {
		text, trailing, ok := p.next()
		if !ok {
			return nil
		}
		m := apiLine.FindStringSubmatch(text)
		if m == nil {
			return p.errorf("want `api <Name> key <n> versions <min>-<max> {`, have %q", text)
		}
		api := &API{Name: m[1], Doc: p.takeDoc(trailing)}
		api.Key, _ = strconv.Atoi(m[2])
		api.MinVersion, _ = strconv.Atoi(m[3])
		api.MaxVersion, _ = strconv.Atoi(m[4])
		switch {
		case api.Key > 32767:
			return p.errorf("api key %d does not fit an int16", api.Key)
		case api.MinVersion > api.MaxVersion || api.MaxVersion > 32767:
			return p.errorf("bad version range %d-%d", api.MinVersion, api.MaxVersion)
		case p.byKey[api.Key] != "":
			return p.errorf("api key %d is already %s", api.Key, p.byKey[api.Key])
		case p.byName[api.Name]:
			return p.errorf("api %s is defined twice", api.Name)
		}
		p.byKey[api.Key], p.byName[api.Name] = api.Name, true
		if err := p.parseBodies(api); err != nil {
			return err
		}
		p.apis = append(p.apis, api)
	}
}

// parseBodies reads an api's request and response blocks and its closing
// brace.
func (p *parser) parseBodies(api *API) error {
	for {
		text, trailing, ok := p.next()
		switch {
		case !ok:
			return p.errorf("api %s: missing }", api.Name)
		case text == closeBrace:
			if api.Request == nil || api.Response == nil {
				return p.errorf("api %s needs a request and a response", api.Name)
			}
			return nil
		}
		m := bodyLine.FindStringSubmatch(text)
		if m == nil {
			return p.errorf("api %s: want `request {` or `response {`, have %q", api.Name, text)
		}
		name := api.Name + "Request"
		target := &api.Request
		if m[1] == "response" {
			name, target = api.Name+"Response", &api.Response
		}
		if *target != nil {
			return p.errorf("api %s: second %s block", api.Name, m[1])
		}
		s, err := p.parseStruct(name, p.takeDoc(trailing), api)
		if err != nil {
			return err
		}
		s.Top = true
		*target = s
	}
}

// parseStruct reads fields up to the closing brace of a struct named name.
func (p *parser) parseStruct(name, doc string, api *API) (*Struct, error) {
	if p.types[name] {
		return nil, p.errorf("type %s is defined twice", name)
	}
	p.types[name] = true
	s := &Struct{Name: name, Doc: doc}
	seen := map[string]bool{}
	for {
		text, trailing, ok := p.next()
		switch {
		case !ok:
			return nil, p.errorf("%s: missing }", name)
		case text == closeBrace:
			return s, nil
		}
		m := fieldLine.FindStringSubmatch(text)
		if m == nil {
			return nil, p.errorf("%s: want a field, have %q", name, text)
		}
		f := &Field{WireName: m[1], GoName: goName(m[1]), Doc: sentence(p.takeDoc(trailing)), Line: p.pos}
		if seen[f.WireName] {
			return nil, p.errorf("%s: field %s is defined twice", name, f.WireName)
		}
		seen[f.WireName] = true
		for _, attr := range strings.Fields(m[4]) {
			switch {
			case attr == "nullable":
				f.Nullable = true
			case attr == "external":
				f.External = true
			case strings.HasPrefix(attr, "since:"):
				n, err := strconv.Atoi(strings.TrimPrefix(attr, "since:"))
				if err != nil || n < api.MinVersion || n > api.MaxVersion {
					return nil, p.errorf("%s.%s: since:%s is outside the api's versions %d-%d",
						name, f.WireName, strings.TrimPrefix(attr, "since:"), api.MinVersion, api.MaxVersion)
				}
				f.Since = n
			default:
				return nil, p.errorf("%s.%s: unknown attribute %q", name, f.WireName, attr)
			}
		}
		f.Since = max(f.Since, api.MinVersion)
		isArray, typeName, opens := m[2] != "", m[3], m[5] != ""
		switch {
		case isArray && opens:
			elem, err := p.parseStruct(typeName, "", api)
			if err != nil {
				return nil, err
			}
			f.Type = &Type{Struct: elem}
		case opens:
			return nil, p.errorf("%s.%s: only an array of a struct opens a block", name, f.WireName)
		default:
			t, err := primType(typeName)
			if err != nil {
				return nil, p.errorf("%s.%s: %v", name, f.WireName, err)
			}
			f.Type = t
			if isArray {
				f.Type = &Type{Elem: t}
			}
		}
		if err := checkField(f); err != nil {
			return nil, p.errorf("%s.%s: %v", name, f.WireName, err)
		}
		s.Fields = append(s.Fields, f)
	}
}

// primType returns the Type of a primitive or named int.
func primType(name string) (*Type, error) {
	if wire, ok := namedInts[name]; ok {
		return &Type{Prim: wire, Named: name}, nil
	}
	if _, ok := primitives[name]; ok {
		return &Type{Prim: name}, nil
	}
	return nil, fmt.Errorf("unknown type %q (an array of a struct needs `[]%s {`)", name, name)
}

// checkField checks the attributes against the type.
func checkField(f *Field) error {
	t := f.Type
	switch {
	case f.Nullable && !t.IsArray() && t.Prim != "string":
		return fmt.Errorf("only strings and arrays can be nullable")
	case f.External && (t.IsArray() || t.Prim != "bytes"):
		return fmt.Errorf("only bytes can be external")
	case t.IsArray() && t.Struct != nil && minSize(t.Struct, f.Since) == 0:
		// Elements that take no bytes would let a count go unchecked
		// against the bytes remaining.
		return fmt.Errorf("array elements of %s have no fields at version %d", t.Struct.Name, f.Since)
	}
	return nil
}

// minSize returns the smallest encoding of s at version v.
func minSize(s *Struct, v int) int {
	n := 0
	for _, f := range s.Fields {
		if f.Since <= v {
			n += typeMinSize(f.Type)
		}
	}
	return n
}

// typeMinSize returns the smallest encoding of a value of t.
func typeMinSize(t *Type) int {
	if t.IsArray() {
		return 4
	}
	return primitives[t.Prim]
}

// initialisms are written in capitals in Go names.
var initialisms = map[string]string{"id": "ID", "ids": "IDs", "api": "API", "apis": "APIs", "ms": "Ms"}

// goName turns a snake_case wire name into a Go field name: node_id ->
// NodeID, api_key -> APIKey, timeout_ms -> TimeoutMs.
func goName(wire string) string {
	var b strings.Builder
	for part := range strings.SplitSeq(wire, "_") {
		if up, ok := initialisms[part]; ok {
			b.WriteString(up)
			continue
		}
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}

// sentence capitalises text and ends it with a period, so that comments
// written as fragments ("# the host clients connect to") read as sentences.
func sentence(text string) string {
	if text == "" {
		return ""
	}
	if c := text[0]; c >= 'a' && c <= 'z' {
		text = string(c-'a'+'A') + text[1:]
	}
	if !strings.HasSuffix(text, ".") {
		text += "."
	}
	return text
}
