//go:build unix

package log

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A real kill -9: the test binary runs itself as a child that appends to a
// log with FsyncAlways and prints the last index of each batch once Append
// has returned; the parent kills it with SIGKILL at an arbitrary point,
// reopens the log and checks that everything acknowledged is there and that
// the log is a valid prefix of what the child wrote.

// killChildEnv carries the log directory to the child; it switches
// TestKillChildWriter into writer mode.
const killChildEnv = "WEIR_LOG_KILL_CHILD"

const (
	killAckDeadline  = 10 * time.Second // per round, for the acks to arrive
	killChildMaxTime = 30 * time.Second // the child stops on its own after this
	killChildMaxIdx  = 200_000          // ... or after this many entries
	killMaxBatch     = 8
)

// killOptions are small segments, so kills also land around rolls.
var killOptions = Options{SegmentBytes: 64 << 10, Fsync: FsyncAlways}

// killEntry is entry i as the child writes it, all of it a function of i
// (BaseOffset aside, which Append computes).
func killEntry(i uint64) Entry {
	e := Entry{Index: i, Term: i/100 + 1, Timestamp: 1_700_000_000_000 + int64(i%1000)*7}
	if i%9 == 0 {
		e.Type = TypeControl
	} else {
		e.Type = TypeData
		e.Count = uint32(i%4 + 1)
	}
	p := make([]byte, 8+(i*37)%300)
	binary.BigEndian.PutUint64(p, i)
	for j := 8; j < len(p); j++ {
		p[j] = byte(i*7 + uint64(j))
	}
	e.Payload = p
	return e
}

// TestKillChildWriter is the child's side; it does nothing unless run by
// TestKill9Recovery.
func TestKillChildWriter(t *testing.T) {
	dir := os.Getenv(killChildEnv)
	if dir == "" {
		// Not a test of its own: the writer process of TestKill9Recovery,
		// which runs this binary with the variable set.
		return
	}
	l, err := Open(dir, killOptions)
	if err != nil {
		t.Fatalf("child: Open: %v", err)
	}
	defer l.Close()
	next := l.LastIndex() + 1
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), next))
	deadline := time.Now().Add(killChildMaxTime)
	for next < killChildMaxIdx && time.Now().Before(deadline) {
		batch := make([]Entry, 1+rng.IntN(killMaxBatch))
		for i := range batch {
			batch[i] = killEntry(next + uint64(i))
		}
		if err := l.Append(batch); err != nil {
			t.Fatalf("child: Append at %d: %v", next, err)
		}
		next += uint64(len(batch))
		// os.Stdout is unbuffered: the line is in the pipe when this returns.
		if _, err := fmt.Fprintf(os.Stdout, "ack %d\n", next-1); err != nil {
			t.Fatalf("child: writing ack: %v", err)
		}
	}
}

// killRun runs the child on dir until it has acknowledged target batches
// (or the deadline passes), kills it with SIGKILL, and returns the last
// index it acknowledged (0 if none) and how many acks it printed.
func killRun(t *testing.T, dir string, target int) (lastAck uint64, acks int) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestKillChildWriter$", "-test.count=1", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), killChildEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	// Only whole "ack N" lines count: anything else is the test framework
	// talking (reported if the child fails).
	type ack struct {
		index uint64
		err   error
	}
	lines := make(chan ack, 64)
	go func() {
		defer close(lines)
		br := bufio.NewReader(stdout)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				if !errors.Is(err, io.EOF) {
					lines <- ack{err: err}
				}
				return
			}
			if s, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "ack "); ok {
				i, err := strconv.ParseUint(s, 10, 64)
				lines <- ack{index: i, err: err}
			}
		}
	}()

	take := func(a ack) {
		if a.err != nil {
			t.Errorf("reading the child's acks: %v", a.err)
			return
		}
		if a.index <= lastAck {
			t.Errorf("ack %d after ack %d", a.index, lastAck)
		}
		lastAck = a.index
		acks++
	}
	timer := time.NewTimer(killAckDeadline)
	defer timer.Stop()
	exited := false
wait:
	for acks < target {
		select {
		case a, ok := <-lines:
			if !ok {
				exited = true // the child closed its stdout: it is gone
				break wait
			}
			take(a)
		case <-timer.C:
			t.Logf("deadline: killing the child after %d of %d acks", acks, target)
			break wait
		}
	}
	if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("kill: %v", err)
	}
	// Acks already in the pipe were printed after their Append returned:
	// they count too. The channel closes when the pipe reaches EOF.
	for a := range lines {
		take(a)
	}
	werr := cmd.Wait()
	var ee *exec.ExitError
	if exited || !errors.As(werr, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the child did not die of SIGKILL (wait: %v); its stderr:\n%s", werr, stderr.String())
	}
	if acks == 0 {
		t.Fatalf("the child acknowledged nothing in %v; its stderr:\n%s", killAckDeadline, stderr.String())
	}
	return lastAck, acks
}

// TestKill9Recovery kills a writing child three times on the same log and
// checks the log after each kill.
func TestKill9Recovery(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	// offsets[i] is the base offset of entry i (offsets[0] unused).
	offsets := []uint64{0, 0}
	wantEntry := func(i uint64) Entry {
		for uint64(len(offsets)) <= i {
			n := uint64(len(offsets))
			offsets = append(offsets, offsets[n-1]+uint64(killEntry(n-1).Count))
		}
		e := killEntry(i)
		e.BaseOffset = offsets[i]
		return e
	}
	var prevLast uint64
	for round := 1; round <= killRounds; round++ {
		target := 200 + rng.IntN(400)
		lastAck, acks := killRun(t, dir, target)
		if lastAck <= prevLast {
			t.Fatalf("round %d: last ack %d does not go past the %d entries of the previous round", round, lastAck, prevLast)
		}

		l, err := Open(dir, killOptions)
		if err != nil {
			t.Fatalf("round %d: Open after kill -9: %v", round, err)
		}
		first, last := l.FirstIndex(), l.LastIndex()
		t.Logf("round %d: %d acks, last ack %d, log holds [%d, %d] in %d segments", round, acks, lastAck, first, last, l.Segments())
		if first != 1 {
			t.Fatalf("round %d: FirstIndex = %d, want 1", round, first)
		}
		if last < lastAck {
			t.Fatalf("round %d: LastIndex = %d, but entry %d was acknowledged", round, last, lastAck)
		}
		if last > lastAck+killMaxBatch {
			t.Fatalf("round %d: LastIndex = %d, more than one batch past the last ack %d", round, last, lastAck)
		}
		lastEntry := wantEntry(last)
		if got, want := l.NextOffset(), lastEntry.NextOffset(); got != want {
			t.Fatalf("round %d: NextOffset = %d, want %d", round, got, want)
		}
		for i := first; i <= last; i++ {
			got, err := l.Read(i)
			if err != nil {
				t.Fatalf("round %d: Read(%d): %v", round, i, err)
			}
			if d := crashDiff(got, wantEntry(i)); d != "" {
				t.Fatalf("round %d: Read: %s", round, d)
			}
		}
		r, err := l.NewReader(first)
		if err != nil {
			t.Fatal(err)
		}
		for i := first; i <= last; i++ {
			got, err := r.Next()
			if err != nil {
				t.Fatalf("round %d: Reader.Next at %d: %v", round, i, err)
			}
			if d := crashDiff(got, wantEntry(i)); d != "" {
				t.Fatalf("round %d: Reader: %s", round, d)
			}
		}
		if _, err := r.Next(); !errors.Is(err, io.EOF) {
			t.Fatalf("round %d: Reader.Next past %d: %v, want io.EOF", round, last, err)
		}
		r.Close()
		size, segments := l.Size(), l.Segments()
		if err := l.Close(); err != nil {
			t.Fatalf("round %d: Close: %v", round, err)
		}
		if size > 2*killOptions.SegmentBytes && segments < 2 {
			t.Fatalf("round %d: %d bytes in %d segment(s) of at most %d bytes", round, size, segments, killOptions.SegmentBytes)
		}
		prevLast = last
	}
}
