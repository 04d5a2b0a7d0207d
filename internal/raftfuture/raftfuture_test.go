package raftfuture

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// blockingFSM applies nothing until release is closed.
type blockingFSM struct{ release chan struct{} }

func (f *blockingFSM) Apply(*raft.Log) any {
	<-f.release
	return nil
}
func (f *blockingFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, errors.New("no snapshots") }
func (f *blockingFSM) Restore(io.ReadCloser) error         { return errors.New("no snapshots") }

// singleNode starts a one-voter Raft node with fsm and waits until it
// leads.
func singleNode(t *testing.T, fsm raft.FSM) *raft.Raft {
	t.Helper()
	conf := raft.DefaultConfig()
	conf.LocalID = "n1"
	conf.Logger = hclog.NewNullLogger()
	conf.HeartbeatTimeout = 50 * time.Millisecond
	conf.ElectionTimeout = 50 * time.Millisecond
	conf.LeaderLeaseTimeout = 50 * time.Millisecond
	store := raft.NewInmemStore()
	_, trans := raft.NewInmemTransport("n1")
	r, err := raft.NewRaft(conf, fsm, store, store, raft.NewInmemSnapshotStore(), trans)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{ID: "n1", Address: trans.LocalAddr()}}}).Error(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.LeaderCh():
	case <-time.After(10 * time.Second):
		t.Fatal("no leader after 10 s")
	}
	return r
}

// A barrier that Raft has not answered ends with ErrRaftShutdown when stop
// is closed; raft.Future's own Error would wait for the FSM.
func TestErrorEndsWhenStopped(t *testing.T) {
	fsm := &blockingFSM{release: make(chan struct{})}
	r := singleNode(t, fsm)
	defer func() {
		close(fsm.release)
		r.Shutdown().Error()
	}()
	r.Apply([]byte("blocks the FSM"), time.Second) // answered only once release closes
	barrier := r.Barrier(time.Second)              // applied after it
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- Error(barrier, stop) }()
	close(stop)
	select {
	case err := <-done:
		if !errors.Is(err, raft.ErrRaftShutdown) {
			t.Fatalf("Error after stop: %v, want %v", err, raft.ErrRaftShutdown)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Error still waiting 10 s after stop was closed")
	}
}

// An answered future returns its answer, stop or not.
func TestErrorReturnsTheAnswer(t *testing.T) {
	r := singleNode(t, &blockingFSM{release: closed()})
	defer func() { r.Shutdown().Error() }()
	if err := Error(r.Barrier(time.Second), make(chan struct{})); err != nil {
		t.Fatalf("barrier: %v", err)
	}
	// Raft's errorFuture (here: enqueueing after shutdown) has no channel
	// to set, and answers at once.
	r.Shutdown().Error()
	if err := Error(r.Barrier(time.Second), make(chan struct{})); !errors.Is(err, raft.ErrRaftShutdown) {
		t.Fatalf("barrier after shutdown: %v, want %v", err, raft.ErrRaftShutdown)
	}
}

func closed() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}
