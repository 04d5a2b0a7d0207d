package test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"weir/protocol"
)

// Helpers for the consumer group tests: `weir consume --group` processes
// whose output is collected line by line, and the JSON of `weir group`.

const (
	// groupSession is the --session-timeout of every member the tests start.
	groupSession = 2 * time.Second
	// takeoverSlack is how long after a session expires the tests allow the
	// coordinator to notice it and hand the partitions to the others.
	takeoverSlack = 6 * time.Second
	// consumeFormat prints partition, offset and value.
	consumeFormat = "%p %o %v"
)

// rec is one record as a consumer printed it.
type rec struct {
	p int32
	o int64
	v string
}

func (r rec) String() string { return fmt.Sprintf("p%d@%d=%s", r.p, r.o, r.v) }

// groupConsumer is a running `weir consume TOPIC --group G` process.
type groupConsumer struct {
	t      *testing.T
	name   string
	args   []string
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{} // closed once the process exited and its output is read

	mu    sync.Mutex
	lines []string
}

// startGroupConsumer starts `weir consume topic --group group` printing
// consumeFormat from the earliest offset (for partitions without a
// committed offset) with a groupSession session timeout; extra flags follow.
// The process is killed (by its pid) at the end of the test.
func (s *server) startGroupConsumer(t *testing.T, name, topic, group string, extra ...string) *groupConsumer {
	t.Helper()
	args := append([]string{"consume", topic, "--group", group, "--from", "earliest",
		"--format", consumeFormat, "--session-timeout", groupSession.String()}, extra...)
	args = append(args, "--brokers", s.addr)
	cmd := exec.Command(weirBin, args...)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &groupConsumer{t: t, name: name, args: args, cmd: cmd, stderr: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = w, c.stderr
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		t.Fatal(err)
	}
	t.Cleanup(c.kill)
	read := make(chan struct{})
	go func() {
		defer close(read)
		defer r.Close()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			c.mu.Lock()
			c.lines = append(c.lines, sc.Text())
			c.mu.Unlock()
		}
	}()
	go func() {
		<-read
		cmd.Wait()
		close(c.done)
	}()
	return c
}

func (c *groupConsumer) pid() int { return c.cmd.Process.Pid }

func (c *groupConsumer) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// count is how many lines the process printed so far.
func (c *groupConsumer) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.lines)
}

// records parses what the process printed so far; a line that is not
// "PARTITION OFFSET VALUE" fails the test.
func (c *groupConsumer) records() []rec {
	c.t.Helper()
	c.mu.Lock()
	lines := append([]string(nil), c.lines...)
	c.mu.Unlock()
	out := make([]rec, 0, len(lines))
	for _, line := range lines {
		r, err := parseRec(line)
		if err != nil {
			c.t.Fatalf("%s printed %q: %v", c.name, line, err)
		}
		out = append(out, r)
	}
	return out
}

func parseRec(line string) (rec, error) {
	f := strings.SplitN(line, " ", 3)
	if len(f) != 3 {
		return rec{}, fmt.Errorf("want \"PARTITION OFFSET VALUE\"")
	}
	p, err := strconv.ParseInt(f[0], 10, 32)
	if err != nil {
		return rec{}, err
	}
	o, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return rec{}, err
	}
	return rec{p: int32(p), o: o, v: f[2]}, nil
}

// describe names the process and its state for failure messages.
func (c *groupConsumer) describe() string {
	state := "running"
	if c.exited() {
		state = c.cmd.ProcessState.String()
	}
	return fmt.Sprintf("%s (pid %d, %s, %d lines), stderr:\n%s", c.name, c.pid(), state, c.count(), c.stderr)
}

// signal sends sig to the process.
func (c *groupConsumer) signal(sig syscall.Signal) {
	c.t.Helper()
	if err := syscall.Kill(c.pid(), sig); err != nil && !c.exited() {
		c.t.Fatalf("signal %v to %s: %v", sig, c.name, err)
	}
}

// kill ends the process with SIGKILL (no commit, no leave) and waits for it.
func (c *groupConsumer) kill() {
	if c.exited() {
		return
	}
	c.cmd.Process.Kill()
	<-c.done
}

// waitExit waits for the process to end by itself and fails the test unless
// it exits 0 without a crash.
func (c *groupConsumer) waitExit(timeout time.Duration) {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(timeout):
		c.t.Fatalf("%s did not exit within %v: %s", c.name, timeout, c.describe())
	}
	c.checkCleanExit()
}

// stop ends the process with SIGTERM (it commits and leaves) and fails the
// test unless it exits 0 within 15 s.
func (c *groupConsumer) stop() {
	c.t.Helper()
	if !c.exited() {
		c.signal(syscall.SIGTERM)
	}
	c.waitExit(15 * time.Second)
}

func (c *groupConsumer) checkCleanExit() {
	c.t.Helper()
	if crashed(c.stderr.String()) {
		c.t.Fatalf("%s crashed: %s", c.name, c.describe())
	}
	if code := c.cmd.ProcessState.ExitCode(); code != 0 {
		c.t.Fatalf("%s exited with %d: %s", c.name, code, c.describe())
	}
}

func crashed(stderr string) bool {
	return strings.Contains(stderr, "panic:") || strings.Contains(stderr, "fatal error:") ||
		strings.Contains(stderr, "DATA RACE")
}

// stopAll sends SIGTERM to every process at once, then waits for each.
func stopAll(cs ...*groupConsumer) {
	for _, c := range cs {
		if !c.exited() {
			c.signal(syscall.SIGTERM)
		}
	}
	for _, c := range cs {
		c.waitExit(15 * time.Second)
	}
}

// waitUntil polls cond until it holds and returns how long that took; after
// timeout it fails the test with what it waited for and cond's last state.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ok, state := cond()
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("waited %v for %s; last state: %s", timeout, what, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// keyedLines returns n input lines "kI:PREFIX-I" for `weir produce
// --key-separator :` (the keys spread the records over the partitions) and
// their values.
func keyedLines(prefix string, from, n int) (string, []string) {
	var in strings.Builder
	vals := make([]string, 0, n)
	for i := from; i < from+n; i++ {
		v := fmt.Sprintf("%s-%d", prefix, i)
		fmt.Fprintf(&in, "k%d:%s\n", i, v)
		vals = append(vals, v)
	}
	return in.String(), vals
}

// produceKeyed produces n records PREFIX-from.. to topic and returns their
// values.
func produceKeyed(ctx context.Context, s *server, topic, prefix string, from, n int) []string {
	s.t.Helper()
	in, vals := keyedLines(prefix, from, n)
	s.weir(ctx, in, "produce", topic, "--key-separator", ":")
	return vals
}

// checkCoverage checks the union of outputs against the produced values:
// every value was printed, nothing else was, a (partition, offset) always
// carries the same value, and each partition's printed offsets are dense
// from 0 (no gap). It returns how many times each value was printed.
func checkCoverage(t *testing.T, want []string, outputs map[string][]rec) map[string]int {
	t.Helper()
	counts := map[string]int{}
	at := map[[2]int64]string{}
	offsets := map[int32]map[int64]bool{}
	for name, recs := range outputs {
		for _, r := range recs {
			counts[r.v]++
			k := [2]int64{int64(r.p), r.o}
			if v, ok := at[k]; ok && v != r.v {
				t.Fatalf("partition %d offset %d printed as %q and (by %s) as %q", r.p, r.o, v, name, r.v)
			}
			at[k] = r.v
			if offsets[r.p] == nil {
				offsets[r.p] = map[int64]bool{}
			}
			offsets[r.p][r.o] = true
		}
	}
	wanted := map[string]bool{}
	var missing []string
	for _, v := range want {
		wanted[v] = true
		if counts[v] == 0 {
			missing = append(missing, v)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d produced records were never printed (a gap), e.g. %v", len(missing), len(want), missing[:min(len(missing), 10)])
	}
	for v := range counts {
		if !wanted[v] {
			t.Fatalf("printed %q, which was not produced", v)
		}
	}
	for p, offs := range offsets {
		for o := range int64(len(offs)) {
			if !offs[o] {
				t.Fatalf("partition %d: offset %d never printed, though %d offsets were", p, o, len(offs))
			}
		}
	}
	return counts
}

// checkOrder checks that within one process's output each partition's
// offsets strictly increase.
func checkOrder(t *testing.T, name string, recs []rec) {
	t.Helper()
	last := map[int32]int64{}
	for _, r := range recs {
		if l, ok := last[r.p]; ok && r.o <= l {
			t.Fatalf("%s printed partition %d offset %d after offset %d", name, r.p, r.o, l)
		}
		last[r.p] = r.o
	}
}

// partitionsOf returns the sorted partitions a process printed records of.
func partitionsOf(recs []rec) []int32 {
	seen := map[int32]bool{}
	for _, r := range recs {
		seen[r.p] = true
	}
	var ps []int32
	for p := range seen {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	return ps
}

// The JSON of `weir group list --json` and `weir group describe --json`
// (cmd/weir/group.go encodes client.GroupListing and client.GroupDescription,
// whose keys are the Go field names). Fields the tests do not use are
// ignored.

type groupListing struct {
	Group   string `json:"ID"`
	State   string `json:"State"`
	Members int    `json:"Members"`
}

type groupDesc struct {
	Group      string           `json:"ID"`
	State      string           `json:"State"`
	Members    []groupMember    `json:"Members"`
	Partitions []groupPartition `json:"Offsets"`
}

type groupMember struct {
	MemberID   string           `json:"ID"`
	InstanceID string           `json:"InstanceID"`
	Epoch      int32            `json:"Epoch"`
	Assignment []topicPartition `json:"Assignment"`
}

type topicPartition struct {
	Topic     string `json:"Topic"`
	Partition int32  `json:"Partition"`
}

type groupPartition struct {
	Topic         string `json:"Topic"`
	Partition     int32  `json:"Partition"`
	Committed     int64  `json:"Committed"`
	HighWatermark int64  `json:"HighWatermark"`
	Lag           int64  `json:"Lag"`
	Owner         string `json:"MemberID"`
}

// owned returns the member's sorted partitions of topic.
func (m groupMember) owned(topic string) []int32 {
	var ps []int32
	for _, a := range m.Assignment {
		if a.Topic == topic {
			ps = append(ps, a.Partition)
		}
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	return ps
}

// assignment summarises who owns what of topic, for failure messages and
// checks: member id -> sorted partitions.
func (d groupDesc) assignment(topic string) map[string][]int32 {
	a := map[string][]int32{}
	for _, m := range d.Members {
		a[m.MemberID] = m.owned(topic)
	}
	return a
}

// balanced reports whether the group has exactly members members, each
// owning per partitions of topic, all distinct, covering 0..members*per-1.
func (d groupDesc) balanced(topic string, members, per int) bool {
	if len(d.Members) != members {
		return false
	}
	seen := map[int32]bool{}
	for _, m := range d.Members {
		ps := m.owned(topic)
		if len(ps) != per {
			return false
		}
		for _, p := range ps {
			if seen[p] || p < 0 || int(p) >= members*per {
				return false
			}
			seen[p] = true
		}
	}
	return true
}

// committed returns partition -> committed offset for topic.
func (d groupDesc) committed(topic string) map[int32]int64 {
	c := map[int32]int64{}
	for _, p := range d.Partitions {
		if p.Topic == topic {
			c[p.Partition] = p.Committed
		}
	}
	return c
}

// caughtUp reports whether every one of n partitions of topic has a
// committed offset equal to its high watermark (lag 0).
func (d groupDesc) caughtUp(topic string, n int) bool {
	got := 0
	for _, p := range d.Partitions {
		if p.Topic != topic {
			continue
		}
		if p.Committed != p.HighWatermark || p.Lag != 0 {
			return false
		}
		got++
	}
	return got == n
}

func (d groupDesc) String() string {
	b, _ := json.Marshal(d)
	return string(b)
}

func (s *server) tryDescribeGroup(ctx context.Context, group string) (groupDesc, error) {
	out, err := s.tryWeir(ctx, "", "group", "describe", group, "--json")
	if err != nil {
		return groupDesc{}, fmt.Errorf("weir group describe %s: %v: %s", group, err, out)
	}
	var d groupDesc
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		return groupDesc{}, fmt.Errorf("weir group describe %s --json: %v:\n%s", group, err, out)
	}
	return d, nil
}

func (s *server) describeGroup(ctx context.Context, group string) groupDesc {
	s.t.Helper()
	d, err := s.tryDescribeGroup(ctx, group)
	if err != nil {
		s.t.Fatal(err)
	}
	return d
}

func (s *server) listGroups(ctx context.Context) []groupListing {
	s.t.Helper()
	out := s.weir(ctx, "", "group", "list", "--json")
	var l []groupListing
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		s.t.Fatalf("weir group list --json: %v:\n%s", err, out)
	}
	return l
}

// waitGroup polls `weir group describe` until cond holds and returns the
// description that satisfied it.
func (s *server) waitGroup(ctx context.Context, timeout time.Duration, group, what string, cond func(groupDesc) bool) (groupDesc, time.Duration) {
	s.t.Helper()
	var last groupDesc
	took := waitUntil(s.t, timeout, fmt.Sprintf("group %s: %s", group, what), func() (bool, string) {
		d, err := s.tryDescribeGroup(ctx, group)
		if err != nil {
			return false, err.Error()
		}
		last = d
		return cond(d), d.String()
	})
	return last, took
}

// rawRequest sends one request to the broker at addr on a connection of its
// own and returns the response: for what the CLI cannot do, such as
// speaking as a member whose session expired.
func rawRequest(t *testing.T, addr string, req protocol.Request) protocol.Response {
	t.Helper()
	resp, err := rawCall(addr, req, 10*time.Second)
	if err != nil {
		t.Fatalf("%v to %s: %v", req.Key(), addr, err)
	}
	return resp
}

// fenced reports whether code is how the group turns away a member it has
// moved on from.
func fenced(code protocol.ErrorCode) bool {
	return code == protocol.CodeUnknownMemberID || code == protocol.CodeFencedMemberEpoch
}
