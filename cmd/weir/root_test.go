package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// run runs weir in-process with args and returns what it wrote.
func run(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errOut}
	err = m.Run(context.Background(), args)
	return out.String(), errOut.String(), err
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			stdout, stderr, err := run(t, args...)
			if err != nil {
				t.Fatalf("weir %v: %v", args, err)
			}
			for _, want := range []string{
				"weir: a partitioned, Raft-replicated commit-log broker",
				"Usage:",
				"version",
				"--config PATH",
			} {
				if !strings.Contains(stdout, want) {
					t.Errorf("help does not contain %q:\n%s", want, stdout)
				}
			}
			if stderr != "" {
				t.Errorf("stderr = %q, want nothing", stderr)
			}
		})
	}
}

func TestUnknownCommand(t *testing.T) {
	stdout, stderr, err := run(t, "nosuch")
	if err == nil || !strings.Contains(err.Error(), `unknown command "nosuch"`) {
		t.Fatalf("err = %v, want unknown command", err)
	}
	// main reports the error; Run must not print it (or usage) as well.
	if stdout != "" || stderr != "" {
		t.Errorf("Run printed stdout %q, stderr %q; want nothing", stdout, stderr)
	}
}

// TestConfigFlag checks that --config reaches the config loader.
func TestConfigFlag(t *testing.T) {
	t.Chdir(t.TempDir()) // no weir.yaml here but the test's own
	t.Setenv("WEIR_NODE_ID", "")
	path := filepath.Join(t.TempDir(), "node.yaml")
	if err := os.WriteFile(path, []byte("node-id: 7\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	m := &Main{Stdout: new(bytes.Buffer), Stderr: new(bytes.Buffer)}
	if err := m.Run(context.Background(), []string{"--config", path, "version"}); err != nil {
		t.Fatal(err)
	}
	if m.ConfigPath != path {
		t.Fatalf("ConfigPath = %q, want %q", m.ConfigPath, path)
	}
	cfg, err := m.loadConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NodeID != 7 {
		t.Errorf("NodeID = %d, want 7 from %s", cfg.NodeID, path)
	}

	// A --config file that does not exist is an error, not the defaults.
	m.ConfigPath = filepath.Join(t.TempDir(), "missing.yaml")
	if _, err := m.loadConfig(nil); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("loadConfig with a missing file: err = %v, want fs.ErrNotExist", err)
	}
}
