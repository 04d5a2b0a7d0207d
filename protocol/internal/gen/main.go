// Command gen generates weir's message codec from its definitions:
// protocol/messages.def becomes protocol/messages_gen.go and the message
// reference in PROTOCOL.md, and protocol/testdata/versioned.def (test-only
// messages with fields added in later versions) becomes
// protocol/versioned_gen_test.go. The primitives it calls (Writer, Reader)
// are hand-written in protocol/primitives.go.
//
// Run it from the repository root or from protocol/:
//
//	go run ./protocol/internal/gen            # rewrite the outputs in place
//	go run ./protocol/internal/gen -out DIR   # write them into DIR instead
//
// `make verify` uses -out and compares.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

// Paths relative to the protocol package directory.
const (
	defFile       = "messages.def"
	genFile       = "messages_gen.go"
	testDefFile   = "testdata/versioned.def"
	testGenFile   = "versioned_gen_test.go"
	docFile       = "../PROTOCOL.md"
	docOutputName = "PROTOCOL.md"
)

func main() {
	dir := flag.String("dir", "", "the protocol package directory (default: . or ./protocol, whichever holds "+defFile+")")
	out := flag.String("out", "", "write the outputs into this directory instead of in place")
	flag.Parse()
	if err := run(*dir, *out); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(dir, out string) error {
	if dir == "" {
		dir = "."
		if _, err := os.Stat(defFile); err != nil {
			dir = "protocol"
		}
	}
	files, err := generate(dir)
	if err != nil {
		return err
	}
	for _, f := range files {
		path := filepath.Join(dir, f.path)
		if out != "" {
			path = filepath.Join(out, filepath.Base(f.path))
		}
		if err := os.WriteFile(path, f.data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// output is one generated file.
type output struct {
	path string // relative to the protocol directory
	data []byte
}

// generate renders every output from the definitions in dir.
func generate(dir string) ([]output, error) {
	apis, err := parseFile(filepath.Join(dir, defFile))
	if err != nil {
		return nil, err
	}
	code, err := goFile(defFile, apis, true)
	if err != nil {
		return nil, err
	}
	testAPIs, err := parseFile(filepath.Join(dir, testDefFile))
	if err != nil {
		return nil, err
	}
	testCode, err := goFile(testDefFile, testAPIs, false)
	if err != nil {
		return nil, err
	}
	doc, err := os.ReadFile(filepath.Join(dir, docFile))
	if err != nil {
		return nil, err
	}
	doc, err = replaceRegion(doc, markdown(apis))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", docFile, err)
	}
	return []output{{genFile, code}, {testGenFile, testCode}, {docFile, doc}}, nil
}

func parseFile(path string) ([]*API, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, bytes.NewReader(data))
}
