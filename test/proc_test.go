package test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"weir/internal/syncbuf"
)

// weirBin is the weir binary built once for the suite.
var weirBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "weir-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	weirBin = filepath.Join(dir, "weir")
	build := exec.Command("go", "build", "-o", weirBin, "weir/cmd/weir")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building weir:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is a running `weir serve` process.
type server struct {
	t       *testing.T
	dataDir string
	addr    string // client listener
	http    string // metrics and health listener
	cmd     *exec.Cmd
	stderr  *lockedBuffer
	exited  chan struct{}
}

// lockedBuffer collects a process's output for failure messages.
type lockedBuffer = syncbuf.Buffer

// startServer runs `weir serve` on a free port of 127.0.0.1 with its data in
// dataDir, and waits until it says it is serving. The process is killed at
// the end of the test if it is still running.
func startServer(t *testing.T, dataDir string, extra ...string) *server {
	t.Helper()
	return startServerOn(t, dataDir, "127.0.0.1:0", extra...)
}

func startServerOn(t *testing.T, dataDir, listen string, extra ...string) *server {
	t.Helper()
	args := append([]string{"serve", "--data-dir", dataDir, "--listen", listen,
		"--peer-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"}, extra...)
	cmd := exec.Command(weirBin, args...)
	// An os.Pipe of our own, not StdoutPipe: Wait (in its own goroutine
	// below) would close StdoutPipe's reader under the scanner.
	stdout, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = w
	s := &server{t: t, dataDir: dataDir, cmd: cmd, stderr: &lockedBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = s.stderr
	err = cmd.Start()
	w.Close() // the child has its own copy
	if err != nil {
		stdout.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.kill() })
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		io.Copy(io.Discard, stdout)
		stdout.Close()
	}()
	go func() {
		cmd.Wait()
		close(s.exited)
	}()
	select {
	case line := <-lines:
		// "weir VERSION serving on ADDR (metrics and health at http://HTTP, node N, ...)"
		f := strings.Fields(line)
		for i := range f {
			if f[i] == "on" && i+1 < len(f) {
				s.addr = f[i+1]
			}
			if h, ok := strings.CutPrefix(f[i], "http://"); ok {
				s.http = strings.TrimSuffix(h, ",")
			}
		}
		if s.addr == "" {
			t.Fatalf("unexpected first line from weir serve: %q", line)
		}
	case <-s.exited:
		t.Fatalf("weir serve exited early: %s", s.stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("weir serve did not start: %s", s.stderr)
	}
	return s
}

// kill ends the process with SIGKILL (no clean shutdown) and waits for it.
func (s *server) kill() {
	select {
	case <-s.exited:
		return
	default:
	}
	s.cmd.Process.Kill()
	<-s.exited
}

// stop ends the process with SIGTERM (clean shutdown) and waits for it.
func (s *server) stop() {
	s.t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		s.t.Fatalf("weir serve did not stop on SIGTERM: %s", s.stderr)
	}
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		s.t.Fatalf("weir serve exited with %d after SIGTERM: %s", code, s.stderr)
	}
}

// weir runs a weir CLI command against s with stdin and returns its stdout;
// a non-zero exit fails the test.
func (s *server) weir(ctx context.Context, stdin string, args ...string) string {
	s.t.Helper()
	out, err := s.tryWeir(ctx, stdin, args...)
	if err != nil {
		s.t.Fatalf("weir %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (s *server) tryWeir(ctx context.Context, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, weirBin, append(args, "--brokers", s.addr)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String() + stderr.String(), err
	}
	return stdout.String(), nil
}
