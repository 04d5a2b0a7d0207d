package partition

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"weir/protocol/record"
)

// The kill test runs a single-voter partition in a child process (this test
// binary, re-executed), which produces with AcksAll and reports each
// acknowledgement on stdout; the parent kills it with SIGKILL mid-stream,
// reopens the partition and checks that every acknowledged batch survived
// at its acknowledged offset.

const (
	killDirEnv   = "WEIR_PARTITION_KILL_DIR"
	killRoundEnv = "WEIR_PARTITION_KILL_ROUND"
)

// killOptions are the partition options of both the child and the parent:
// small segments, so that a kill can land in a roll. Fsync is always (the
// default).
func killOptions(cfg *Config) { cfg.Log.SegmentBytes = 16 << 10 }

// killBatch is batch i of a child's round: 1 to 4 records whose values are
// "<tag>/<j>/<padding>", where tag is "r<round>-b<i>".
func killBatch(round, i int) (tag string, values []string) {
	tag = fmt.Sprintf("r%d-b%d", round, i)
	pad := strings.Repeat("x", 20+(i*37)%200)
	for j := range 1 + i%4 {
		values = append(values, fmt.Sprintf("%s/%d/%s", tag, j, pad))
	}
	return tag, values
}

// TestKillChild is not a test of its own: it is the child process of
// TestKillRecovery, and returns at once unless that test started it (with
// WEIR_PARTITION_KILL_DIR set). In the child it opens the single-voter
// partition in that directory and produces batches with AcksAll, writing
// "<offset> <tag>" to stdout after each acknowledgement, until it is killed
// (or, bounded, after 30 s or 100000 batches).
func TestKillChild(t *testing.T) {
	dir := os.Getenv(killDirEnv)
	if dir == "" {
		return // not the child: nothing to do
	}
	round, err := strconv.Atoi(os.Getenv(killRoundEnv))
	if err != nil {
		t.Fatalf("%s: %v", killRoundEnv, err)
	}
	p := singleVoter(t, dir, killOptions)
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; i < 100_000 && time.Now().Before(deadline); i++ {
		tag, values := killBatch(round, i)
		b := record.NewBuilder(record.CodecNone)
		for j, v := range values {
			b.Append(record.Record{Key: []byte(tag), Value: []byte(v), Timestamp: int64(1_000_000*round + i*4 + j)})
		}
		batch, err := b.Build()
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		off, err := p.Produce(ctx, batch, AcksAll)
		cancel()
		if err != nil {
			t.Fatalf("Produce %s: %v", tag, err)
		}
		// Unbuffered: the line is in the pipe before the next Produce.
		if _, err := fmt.Fprintf(os.Stdout, "%d %s\n", off, tag); err != nil {
			t.Fatal(err)
		}
	}
}

// killAck is one acknowledgement the child reported.
type killAck struct {
	offset uint64
	tag    string
}

// TestKillRecovery kills a producing child with SIGKILL twice on the same
// directory; after each kill every acknowledged batch must be in the
// reopened partition at its acknowledged offset, the offsets dense, and the
// log nothing but the children's batches in order.
func TestKillRecovery(t *testing.T) {
	if os.Getenv(killDirEnv) != "" {
		t.Fatal("TestKillRecovery must not run inside a kill child")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	acks := map[int][]killAck{}
	const rounds = 2
	for round := 1; round <= rounds; round++ {
		acks[round] = runKillChild(t, exe, dir, round)
		t.Logf("round %d: killed the child after %d acknowledged batches", round, len(acks[round]))
		p := singleVoter(t, dir, killOptions)
		checkKillRecovery(t, p, acks, round)
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// runKillChild starts a child producing round's batches into dir, kills it
// once it has acknowledged a few hundred (or after 15 s), and returns the
// acknowledgements it reported.
func runKillChild(t *testing.T, exe, dir string, round int) []killAck {
	t.Helper()
	const wantAcks = 300
	cmd := exec.Command(exe, "-test.run=^TestKillChild$", "-test.timeout=60s")
	cmd.Env = append(os.Environ(), killDirEnv+"="+dir, killRoundEnv+"="+strconv.Itoa(round))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()

	var acks []killAck
	var other []string
	parse := func(line string) {
		off, tag, ok := strings.Cut(line, " ")
		n, err := strconv.ParseUint(off, 10, 64)
		if !ok || err != nil || !strings.HasPrefix(tag, fmt.Sprintf("r%d-b", round)) {
			other = append(other, line)
			return
		}
		acks = append(acks, killAck{offset: n, tag: tag})
	}
	timeout := time.NewTimer(15 * time.Second)
	defer timeout.Stop()
	exited := false
wait:
	for len(acks) < wantAcks {
		select {
		case line, ok := <-lines:
			if !ok {
				exited = true
				break wait
			}
			parse(line)
		case <-timeout.C:
			break wait
		}
	}
	if err := cmd.Process.Kill(); err != nil && !exited {
		t.Errorf("kill child: %v", err)
	}
	// Whatever the child wrote before it died is still in the pipe.
	for line := range lines {
		parse(line)
	}
	werr := cmd.Wait()
	if exited || len(acks) < 20 || strings.Contains(stderr.String(), "DATA RACE") {
		t.Fatalf("child (exit: %v) acknowledged %d batches; other output:\n%s\nstderr:\n%s",
			werr, len(acks), strings.Join(other, "\n"), stderr.String())
	}
	return acks
}

// checkKillRecovery checks the reopened partition after round's kill: the
// log holds, for each round so far in order, that round's batches 0..k,
// where k is the last acknowledged batch or the one after it (in flight when
// the child died); every acknowledged batch is at its acknowledged offset;
// offsets are dense from 0 to the high watermark.
func checkKillRecovery(t *testing.T, p *Partition, acks map[int][]killAck, round int) {
	t.Helper()
	var end uint64
	for r := 1; r <= round; r++ {
		for _, a := range acks[r] {
			_, values := killBatch(r, batchNumber(t, a.tag))
			end = max(end, a.offset+uint64(len(values)))
		}
	}
	waitFor(t, "the high watermark to cover every acknowledgement", 10*time.Second, func() bool {
		return p.HighWatermark() >= end
	})
	got := fetchAll(t, p, 0)
	for i, r := range got {
		if r.offset != uint64(i) {
			t.Fatalf("record %d has offset %d: offsets not dense", i, r.offset)
		}
	}
	if hw := p.HighWatermark(); hw != uint64(len(got)) {
		t.Fatalf("high watermark %d, %d records", hw, len(got))
	}
	pos := 0
	for r := 1; r <= round; r++ {
		n := 0
		for ; pos < len(got); n++ {
			tag, values := killBatch(r, n)
			if !strings.HasPrefix(got[pos].value, tag+"/") {
				break
			}
			if pos+len(values) > len(got) {
				t.Fatalf("batch %s cut short at offset %d", tag, got[pos].offset)
			}
			for j, v := range values {
				if got[pos+j].value != v {
					t.Fatalf("offset %d holds %.40q, want %.40q", got[pos+j].offset, got[pos+j].value, v)
				}
			}
			if n < len(acks[r]) {
				if a := acks[r][n]; a.tag != tag || a.offset != got[pos].offset {
					t.Fatalf("acknowledged %s at offset %d; the log holds %s there, at offset %d", a.tag, a.offset, tag, got[pos].offset)
				}
			}
			pos += len(values)
		}
		if n < len(acks[r]) || n > len(acks[r])+1 {
			t.Fatalf("round %d: the log holds batches 0..%d, %d were acknowledged", r, n-1, len(acks[r]))
		}
		t.Logf("round %d: %d batches in the log, %d acknowledged", r, n, len(acks[r]))
	}
	if pos != len(got) {
		t.Fatalf("offset %d holds %.40q, which no child produced there", got[pos].offset, got[pos].value)
	}
}

// batchNumber is i of a tag "r<round>-b<i>".
func batchNumber(t *testing.T, tag string) int {
	_, num, _ := strings.Cut(tag, "-b")
	i, err := strconv.Atoi(num)
	if err != nil {
		t.Fatalf("bad tag %q", tag)
	}
	return i
}
