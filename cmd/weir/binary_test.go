package main

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// TestBinary builds the real weir binary, stamped as make build stamps it,
// and runs it as a process: what a user gets, exit codes included.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary; skipped with -short")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command in PATH to build with")
	}
	bin := filepath.Join(t.TempDir(), "weir")
	build := exec.Command(goTool, "build", "-trimpath",
		"-ldflags", "-X main.version=v0.0.0-test", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	t.Run("version", func(t *testing.T) {
		stdout, stderr, code := runBinary(t, bin, "version")
		if code != 0 {
			t.Fatalf("exit code %d, stderr %q", code, stderr)
		}
		want := regexp.MustCompile(`^weir v0\.0\.0-test \(go\S+ ` + runtime.GOOS + "/" + runtime.GOARCH + `\)\n$`)
		if !want.MatchString(stdout) {
			t.Errorf("stdout = %q, want it to match %s", stdout, want)
		}
		if stderr != "" {
			t.Errorf("stderr = %q, want nothing", stderr)
		}
	})

	t.Run("unknown command exits 1", func(t *testing.T) {
		stdout, stderr, code := runBinary(t, bin, "nosuch")
		if code != 1 {
			t.Errorf("exit code %d, want 1", code)
		}
		if !strings.HasPrefix(stderr, `weir: unknown command "nosuch"`) {
			t.Errorf("stderr = %q, want the error once, prefixed with weir:", stderr)
		}
		if stdout != "" {
			t.Errorf("stdout = %q, want nothing", stdout)
		}
	})
}

// runBinary runs bin with args, no stdin, in a scratch directory (so no
// weir.yaml is picked up), and returns its output and exit code.
func runBinary(t *testing.T, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Dir = t.TempDir()
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run %s: %v", bin, err)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}
