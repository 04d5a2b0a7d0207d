package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"weir/broker"
	"weir/client"
	"weir/cluster"
	"weir/internal/syncbuf"
)

// startTestBroker runs a one-node broker in the process, with a fast group
// coordinator, and returns its address.
func startTestBroker(t *testing.T) string {
	t.Helper()
	b, err := broker.Open(broker.Config{
		DataDir:                t.TempDir(),
		RaftHeartbeatTimeout:   50 * time.Millisecond,
		RaftElectionTimeout:    50 * time.Millisecond,
		RaftLeaderLeaseTimeout: 50 * time.Millisecond,
		Groups:                 cluster.CoordinatorConfig{HeartbeatInterval: 20 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- b.Serve(ln) }()
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("broker Close: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("broker Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// mustRun runs weir and fails the test on an error.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	stdout, stderr, err := run(t, args...)
	if err != nil {
		t.Fatalf("weir %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return stdout
}

// produce produces values to partition 0 of topic.
func produce(t *testing.T, addr, topic string, values ...string) {
	t.Helper()
	p, err := client.NewProducer(client.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var recs []*client.Record
	for _, v := range values {
		recs = append(recs, &client.Record{Topic: topic, Value: []byte(v)})
	}
	if err := p.ProduceSync(context.Background(), recs...); err != nil {
		t.Fatal(err)
	}
}

// describeGroup returns weir group describe --json's answer.
func describeGroup(t *testing.T, addr, group string) client.GroupDescription {
	t.Helper()
	var d client.GroupDescription
	if err := json.Unmarshal([]byte(mustRun(t, "group", "describe", group, "--json", "--brokers", addr)), &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func lines(s string) []string { return strings.Fields(s) }

// TestConsumeGroup: consume --group prints from the committed offsets and
// commits what it printed, no more; group list, describe, reset and
// delete.
func TestConsumeGroup(t *testing.T) {
	addr := startTestBroker(t)
	mustRun(t, "topic", "create", "orders", "--brokers", addr)
	var values []string
	for i := range 10 {
		values = append(values, fmt.Sprintf("v%d", i))
	}
	produce(t, addr, "orders", values...)

	consume := func(args ...string) []string {
		t.Helper()
		return lines(mustRun(t, append([]string{"consume", "orders", "--group", "g", "--brokers", addr}, args...)...))
	}
	if got := consume("-n", "4"); strings.Join(got, " ") != "v0 v1 v2 v3" {
		t.Fatalf("first consume printed %v", got)
	}
	d := describeGroup(t, addr, "g")
	if d.State != "Empty" || len(d.Members) != 0 || len(d.Offsets) != 1 || d.Offsets[0].Committed != 4 ||
		d.Offsets[0].HighWatermark != 10 || d.Offsets[0].Lag != 6 {
		t.Fatalf("after printing 4 records: %+v", d)
	}
	// The next run goes on after what was printed, --from or not.
	if got := consume("-n", "6", "--from", "latest", "--format", "%p:%o:%v"); strings.Join(got, " ") != "0:4:v4 0:5:v5 0:6:v6 0:7:v7 0:8:v8 0:9:v9" {
		t.Fatalf("second consume printed %v", got)
	}
	if got := consume("--idle-exit", "300ms"); len(got) != 0 {
		t.Errorf("nothing left, but printed %v", got)
	}

	out := mustRun(t, "group", "list", "--brokers", addr)
	if !strings.Contains(out, "GROUP") || !strings.Contains(out, "g ") || !strings.Contains(out, "Empty") {
		t.Errorf("group list:\n%s", out)
	}
	var listed []client.GroupListing
	if err := json.Unmarshal([]byte(mustRun(t, "group", "list", "--json", "--brokers", addr)), &listed); err != nil || len(listed) != 1 || listed[0].ID != "g" {
		t.Errorf("group list --json: %v, %v", listed, err)
	}
	out = mustRun(t, "group", "describe", "g", "--brokers", addr)
	for _, want := range []string{"COMMITTED", "HIGH WATERMARK", "LAG", "orders", "10"} {
		if !strings.Contains(out, want) {
			t.Errorf("describe lacks %q:\n%s", want, out)
		}
	}

	mustRun(t, "group", "reset", "g", "--topic", "orders", "--to", "earliest", "--brokers", addr)
	if got := consume("-n", "2"); strings.Join(got, " ") != "v0 v1" {
		t.Errorf("after reset to earliest: %v", got)
	}
	mustRun(t, "group", "reset", "g", "--topic", "orders", "--to", "7", "--brokers", addr)
	if got := consume("-n", "1"); strings.Join(got, " ") != "v7" {
		t.Errorf("after reset to 7: %v", got)
	}
	mustRun(t, "group", "reset", "g", "--topic", "orders", "--to", "99", "--brokers", addr) // the end
	if d := describeGroup(t, addr, "g"); d.Offsets[0].Committed != 10 {
		t.Errorf("reset to 99: committed %d, want 10 (the high watermark)", d.Offsets[0].Committed)
	}

	// A group with members: no reset, no delete.
	g, err := client.NewGroupConsumer("g", client.SeedBrokers(addr), client.Subscribe("orders"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for len(g.Assignment()) == 0 && ctx.Err() == nil {
		pctx, pcancel := context.WithTimeout(ctx, 10*time.Millisecond)
		g.Poll(pctx)
		pcancel()
	}
	for _, args := range [][]string{{"group", "reset", "g", "--topic", "orders", "--to", "earliest"}, {"group", "delete", "g"}} {
		_, _, err := run(t, append(args, "--brokers", addr)...)
		if err == nil || !strings.Contains(err.Error(), "active members") {
			t.Errorf("weir %v with a member: %v, want an active members error", args, err)
		}
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "group", "delete", "g", "--brokers", addr)
	if _, _, err := run(t, "group", "describe", "g", "--brokers", addr); err == nil || !strings.Contains(err.Error(), "no group g") {
		t.Errorf("describe after delete: %v", err)
	}
}

// TestConsumeGroupFlags: flags that do not go with --group.
func TestConsumeGroupFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--partition", "0"}, "--partition cannot be used with --group"},
		{[]string{"--from", "5"}, "weir group reset"},
		{[]string{"--from", "yesterday"}, "RFC 3339"},
	} {
		_, _, err := run(t, append([]string{"consume", "t", "--group", "g", "--brokers", "127.0.0.1:1"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err %v, want it to mention %q", tc.args, err, tc.want)
		}
	}
}

// TestConsumeGroupInterrupt: interrupted (Ctrl-C, SIGTERM), consume
// --group commits what it printed and leaves the group.
func TestConsumeGroupInterrupt(t *testing.T) {
	addr := startTestBroker(t)
	mustRun(t, "topic", "create", "t", "--brokers", addr)
	produce(t, addr, "t", "a", "b", "c")
	var out syncbuf.Buffer
	m := &Main{Stdout: &out, Stderr: new(bytes.Buffer)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, []string{"consume", "t", "--group", "g", "--brokers", addr}) }()
	deadline := time.Now().Add(20 * time.Second)
	for len(lines(out.String())) < 3 {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("printed %q", out.String())
		}
		<-time.After(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("consume: %v", err)
	}
	d := describeGroup(t, addr, "g")
	if len(d.Members) != 0 || len(d.Offsets) != 1 || d.Offsets[0].Committed != 3 {
		t.Errorf("after the interrupt: %+v; want no members, committed 3", d)
	}
}
