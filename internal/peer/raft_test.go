package peer

import (
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// countFSM counts the commands applied to it.
type countFSM struct{ applied atomic.Uint64 }

func (f *countFSM) Apply(*raft.Log) any { f.applied.Add(1); return nil }

func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) {
	return countSnapshot(f.applied.Load()), nil
}

func (f *countFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var b [8]byte
	if _, err := io.ReadFull(rc, b[:]); err != nil {
		return err
	}
	f.applied.Store(binary.BigEndian.Uint64(b[:]))
	return nil
}

type countSnapshot uint64

func (s countSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(binary.BigEndian.AppendUint64(nil, uint64(s))); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (countSnapshot) Release() {}

// raftCluster is nodes in-process nodes, each a Mux, hosting groups Raft
// groups with every node a voter of every group.
type raftCluster struct {
	muxes  []*Mux
	groups []*raftGroup
}

type raftGroup struct {
	name  string
	rafts []*raft.Raft // by node
	fsms  []*countFSM
	trans []*Transport
}

// startRaftCluster starts the cluster; tune adjusts each Raft config. Its
// cleanup shuts every Raft down, then closes transports and muxes.
func startRaftCluster(t testing.TB, nodes, groups int, opts Options, tune func(*raft.Config)) *raftCluster {
	t.Helper()
	c := &raftCluster{}
	var transports []*Transport
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, g := range c.groups {
			for _, r := range g.rafts {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r.Shutdown().Error()
				}()
			}
		}
		wg.Wait()
		for _, tr := range transports {
			tr.Close()
		}
		for _, m := range c.muxes {
			m.Close()
		}
	})
	var servers []raft.Server
	for i := 0; i < nodes; i++ {
		m, err := Listen("127.0.0.1:0", opts)
		if err != nil {
			t.Fatal(err)
		}
		c.muxes = append(c.muxes, m)
		servers = append(servers, raft.Server{
			ID:      raft.ServerID(fmt.Sprintf("n%d", i)),
			Address: raft.ServerAddress(m.Addr().String()),
		})
	}
	for gi := 0; gi < groups; gi++ {
		g := &raftGroup{name: fmt.Sprintf("topic-%d", gi)}
		c.groups = append(c.groups, g)
		for ni, m := range c.muxes {
			trans, err := NewTransport(m, g.name, TransportConfig{})
			if err != nil {
				t.Fatal(err)
			}
			transports = append(transports, trans)
			g.trans = append(g.trans, trans)
			conf := raft.DefaultConfig()
			conf.LocalID = servers[ni].ID
			conf.Logger = hclog.NewNullLogger()
			conf.SnapshotThreshold = 1 << 30 // no snapshots while we measure
			conf.SnapshotInterval = time.Hour
			tune(conf)
			fsm := &countFSM{}
			store := raft.NewInmemStore()
			r, err := raft.NewRaft(conf, fsm, store, store, raft.NewInmemSnapshotStore(), trans)
			if err != nil {
				t.Fatal(err)
			}
			// Every voter bootstraps the same configuration.
			trans.Bind(r)
			if err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
				t.Fatal(err)
			}
			g.rafts = append(g.rafts, r)
			g.fsms = append(g.fsms, fsm)
		}
	}
	return c
}

// leader returns the group's leader, if every replica agrees on one.
func (g *raftGroup) leader() *raft.Raft {
	var want raft.ServerID
	var leader *raft.Raft
	for i, r := range g.rafts {
		_, id := r.LeaderWithID()
		if id == "" || (i > 0 && id != want) {
			return nil
		}
		want = id
		if r.State() == raft.Leader {
			leader = r
		}
	}
	return leader
}

// waitLeaders waits until every group has a leader its replicas agree on.
func (c *raftCluster) waitLeaders(t testing.TB, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, "a leader in every group", func() bool {
		for _, g := range c.groups {
			if g.leader() == nil {
				return false
			}
		}
		return true
	})
}

func TestRaftGroupsShareOneConnection(t *testing.T) {
	const nodes, groups, commands = 3, 20, 10
	c := startRaftCluster(t, nodes, groups, Options{}, func(conf *raft.Config) {
		// Short enough for a quick test, long enough that a busy machine
		// (the race detector, other tests) does not keep deposing leaders.
		conf.HeartbeatTimeout = 500 * time.Millisecond
		conf.ElectionTimeout = 500 * time.Millisecond
		conf.LeaderLeaseTimeout = 250 * time.Millisecond
	})
	c.waitLeaders(t, 60*time.Second)

	// Apply the commands of all groups at once; retry a command only if
	// leadership moved (then it may be applied twice, see below).
	var retries atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, groups)
	for _, g := range c.groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(30 * time.Second)
			for i := 0; i < commands; {
				if time.Now().After(deadline) {
					errc <- fmt.Errorf("group %s: command %d not applied in time", g.name, i)
					return
				}
				leader := g.leader()
				if leader == nil {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				if err := leader.Apply([]byte{byte(i)}, 5*time.Second).Error(); err != nil {
					retries.Add(1)
					continue
				}
				i++
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	// Every replica applies every command: exactly `commands` of them,
	// unless a retried command had already been committed.
	want := uint64(commands)
	waitFor(t, 30*time.Second, "every replica applied the commands", func() bool {
		for _, g := range c.groups {
			for _, f := range g.fsms {
				if n := f.applied.Load(); n < want || n > want+uint64(retries.Load()) {
					return false
				}
			}
		}
		return true
	})
	if n := retries.Load(); n > 0 {
		t.Logf("%d applies retried after leadership moved", n)
	}

	// Whatever the number of groups: one TCP connection per remote node
	// and direction.
	for i, m := range c.muxes {
		st := m.Stats()
		if st.AcceptedConns != nodes-1 || st.DialedConns != nodes-1 ||
			st.InboundSessions != nodes-1 || st.OutboundSessions != nodes-1 {
			t.Errorf("node %d: stats %+v; want %d accepted and dialed connections and sessions", i, st, nodes-1)
		}
		if st.Groups != groups {
			t.Errorf("node %d: %d groups registered, want %d", i, st.Groups, groups)
		}
	}
}
