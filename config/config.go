// Package config is weir's configuration: one plain struct, its defaults,
// its validation, and the loader that fills it from four layers, each
// overriding the one before:
//
//	defaults  <  file (weir.yaml)  <  environment (WEIR_*)  <  flags
//
// Every setting has one key, and the key names it everywhere:
//
//	key                 file (YAML)                environment                 flag
//	data-dir            data-dir: /var/weir        WEIR_DATA_DIR=/var/weir     --data-dir=/var/weir
//	log.fsync           log: {fsync: interval}     WEIR_LOG_FSYNC=interval     --log.fsync=interval
//	log.fsync-interval  log: {fsync-interval: 1s}  WEIR_LOG_FSYNC_INTERVAL=1s  --log.fsync-interval=1s
//
// The environment name is the key upper-cased, prefixed with WEIR_, with '.'
// and '-' replaced by '_'. The flag name is the key itself, dots included, so
// a flag can be found from the file's key by sight and vice versa.
//
// Only this package and cmd import viper. Library packages (log, partition,
// broker, ...) take their own plain option structs, which cmd fills from a
// Config, so they can be used and tested without any of this machinery.
package config

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Fsync policies of the log (key log.fsync).
const (
	// FsyncAlways fsyncs before an append is acknowledged. Group commit
	// (many producers' batches in one write) keeps this cheap.
	FsyncAlways = "always"
	// FsyncInterval fsyncs in the background every log.fsync-interval; a
	// crash can lose acknowledged appends from the last interval.
	FsyncInterval = "interval"
	// FsyncNever leaves flushing to the operating system.
	FsyncNever = "never"
)

// Limits on log.segment-bytes. A segment below 4 KiB rolls on nearly every
// append; above 1 GiB, retention (which deletes whole segments) gets too
// coarse and recovery (which scans the active segment) too slow.
const (
	MinSegmentBytes int64 = 4 << 10
	MaxSegmentBytes int64 = 1 << 30
)

// Config is the whole configuration of one weir node. The zero value is not
// useful; start from Default or Load.
//
// NB: the mapstructure tags are the keys. Adding a field means adding its key
// to the table in keys.go too; Load refuses to decode if the two disagree.
type Config struct {
	// NodeID identifies this node in the cluster and in every Raft group it
	// joins. It must be unique in the cluster and must not change across
	// restarts. 0 is reserved as "no node".
	NodeID uint64 `mapstructure:"node-id"`
	// DataDir holds all of the node's state: partition logs, Raft stable
	// state, cluster metadata.
	DataDir string `mapstructure:"data-dir"`
	// Listen is the host:port clients (producers, consumers, admin) connect to.
	Listen string `mapstructure:"listen"`
	// PeerListen is the host:port other nodes connect to for Raft traffic.
	PeerListen string `mapstructure:"peer-listen"`
	// HTTPListen is the host:port of /metrics and /healthz.
	HTTPListen string `mapstructure:"http-listen"`
	// Advertise is the host:port clients are told to reach this node at
	// (in Metadata answers). Empty: the listen address. Set it when
	// clients reach the node through another address (NAT, a proxy).
	Advertise string `mapstructure:"advertise"`
	// PeerAdvertise is the host:port other nodes reach the peer listener
	// at. Empty: the peer-listen address. It is written into every Raft
	// configuration, so it must stay the same across restarts.
	PeerAdvertise string `mapstructure:"peer-advertise"`
	// Join is a comma-separated list of client addresses (host:port) of
	// nodes of an existing cluster for this node to join on its first
	// start. Empty: the node starts a cluster of its own.
	Join string `mapstructure:"join"`
	// BootstrapExpect is how many nodes a new cluster starts with. A node
	// with no state and BootstrapExpect > 1 waits until it has found that
	// many nodes (itself and the join seeds, none of them in a cluster
	// yet), then they all bootstrap the metadata group together. A node
	// that finds an existing cluster through a seed joins it instead. 0 or
	// 1 with no join seeds: a single-node cluster.
	BootstrapExpect int64 `mapstructure:"bootstrap-expect"`
	// Log holds the defaults for every partition's on-disk log.
	Log LogConfig `mapstructure:"log"`
	// Group tunes the consumer group coordinator.
	Group GroupConfig `mapstructure:"group"`
	// Raft tunes the Raft groups: every partition's and the metadata's.
	Raft RaftConfig `mapstructure:"raft"`
}

// RaftConfig is the "raft" section: how fast Raft groups notice a lost
// leader, against what an idle group costs.
type RaftConfig struct {
	// HeartbeatTimeout is how long a follower goes without hearing from
	// its leader before it stands for election. Leaders heartbeat three
	// to six times within it; the election timeout is 5/3 of it and the
	// leader lease equal to it. It sets the failover time from a frozen
	// or cut-off leader (replaced after about one to three of it; a
	// crashed one is replaced at once) and the idle cost of every replica
	// (docs/cluster.md, "1,000 replicas per node"). Default 450ms.
	HeartbeatTimeout time.Duration `mapstructure:"heartbeat-timeout"`
}

// Bounds of raft.heartbeat-timeout: below 50ms a scheduling hiccup
// deposes leaders; above a minute a dead leader stalls its partitions for
// minutes.
const (
	MinRaftHeartbeatTimeout = 50 * time.Millisecond
	MaxRaftHeartbeatTimeout = time.Minute
)

// GroupConfig is the "group" section: consumer group sessions.
type GroupConfig struct {
	// HeartbeatInterval is how often members heartbeat (at most a third of
	// their session timeout). A rebalance advances one heartbeat at a time.
	HeartbeatInterval time.Duration `mapstructure:"heartbeat-interval"`
	// SessionTimeout is a member's session when it asks for none: missing
	// heartbeats for this long, a member is removed and its partitions go
	// to the others.
	SessionTimeout time.Duration `mapstructure:"session-timeout"`
	// MinSessionTimeout and MaxSessionTimeout bound what members ask for.
	MinSessionTimeout time.Duration `mapstructure:"min-session-timeout"`
	MaxSessionTimeout time.Duration `mapstructure:"max-session-timeout"`
}

// LogConfig is the "log" section: how partition logs are written, rolled
// and trimmed.
type LogConfig struct {
	// Fsync is the fsync policy: FsyncAlways, FsyncInterval or FsyncNever.
	Fsync string `mapstructure:"fsync"`
	// FsyncInterval is how often the log is fsynced under FsyncInterval.
	// It must be > 0 then, and is ignored under the other policies.
	FsyncInterval time.Duration `mapstructure:"fsync-interval"`
	// SegmentBytes is the size at which the active segment is sealed and a
	// new one started, between MinSegmentBytes and MaxSegmentBytes.
	SegmentBytes int64 `mapstructure:"segment-bytes"`
	// SegmentAge is the age at which the active segment is sealed even if it
	// is not full, so that time-based retention can delete it. 0 means
	// segments roll by size only.
	SegmentAge time.Duration `mapstructure:"segment-age"`
	// RetentionAge is how long a sealed segment is kept after its newest
	// record. 0 means keep forever (no age limit).
	RetentionAge time.Duration `mapstructure:"retention-age"`
	// RetentionBytes caps the total size of a partition's log; the oldest
	// sealed segments are deleted to stay under it. 0 means unlimited.
	RetentionBytes int64 `mapstructure:"retention-bytes"`
}

// Default returns the configuration of a single-node broker on 127.0.0.1
// with its data in ./weir-data: what `weir serve` runs with no file, no
// environment and no flags.
func Default() Config {
	return Config{
		NodeID:     1,
		DataDir:    "./weir-data",
		Listen:     "127.0.0.1:7420",
		PeerListen: "127.0.0.1:7421",
		HTTPListen: "127.0.0.1:7422",
		Log: LogConfig{
			Fsync:          FsyncAlways,
			FsyncInterval:  100 * time.Millisecond,
			SegmentBytes:   128 << 20,
			SegmentAge:     7 * 24 * time.Hour,
			RetentionAge:   7 * 24 * time.Hour,
			RetentionBytes: 0, // unlimited
		},
		Group: GroupConfig{
			HeartbeatInterval: 500 * time.Millisecond,
			SessionTimeout:    10 * time.Second,
			MinSessionTimeout: time.Second,
			MaxSessionTimeout: 5 * time.Minute,
		},
		Raft: RaftConfig{HeartbeatTimeout: 450 * time.Millisecond},
	}
}

// Validate reports every invalid setting at once, so a user fixes a file in
// one pass rather than one error per start. Each error is a *KeyError naming
// the key; the result is nil or an errors.Join of them.
func (c Config) Validate() error {
	var errs []error
	bad := func(key string, format string, args ...any) {
		errs = append(errs, &KeyError{Key: key, Err: fmt.Errorf("%w: "+format, append([]any{ErrInvalidValue}, args...)...)})
	}

	if c.NodeID == 0 {
		bad("node-id", "must not be 0 (reserved for \"no node\")")
	}
	if c.DataDir == "" {
		bad("data-dir", "must not be empty")
	}
	addrs := []struct{ key, addr string }{
		{"listen", c.Listen},
		{"peer-listen", c.PeerListen},
		{"http-listen", c.HTTPListen},
	}
	for i, a := range addrs {
		if err := checkAddr(a.addr); err != nil {
			bad(a.key, "%q: %v", a.addr, err)
			continue
		}
		// Two listeners on one address would fail at bind time with a
		// less helpful message. Port 0 (pick any free port, as tests do)
		// never collides.
		for _, b := range addrs[:i] {
			if a.addr == b.addr && !isAnyPort(a.addr) {
				bad(a.key, "%q is also %s", a.addr, b.key)
			}
		}
	}

	for _, a := range []struct{ key, addr string }{{"advertise", c.Advertise}, {"peer-advertise", c.PeerAdvertise}} {
		if a.addr == "" {
			continue
		}
		if err := checkAddr(a.addr); err != nil {
			bad(a.key, "%q: %v", a.addr, err)
		} else if isAnyPort(a.addr) {
			bad(a.key, "%q: port 0 cannot be reached", a.addr)
		}
	}
	for _, seed := range c.JoinAddrs() {
		if err := checkAddr(seed); err != nil {
			bad("join", "%q: %v", seed, err)
		}
	}
	switch {
	case c.BootstrapExpect < 0 || c.BootstrapExpect > maxBootstrapExpect:
		bad("bootstrap-expect", "%d is outside 0 .. %d", c.BootstrapExpect, maxBootstrapExpect)
	case c.BootstrapExpect > 1 && int64(len(c.JoinAddrs())) < c.BootstrapExpect-1:
		bad("bootstrap-expect", "%d needs the other %d nodes' addresses in join, got %d", c.BootstrapExpect, c.BootstrapExpect-1, len(c.JoinAddrs()))
	}

	l := c.Log
	switch l.Fsync {
	case FsyncAlways, FsyncNever:
	case FsyncInterval:
		if l.FsyncInterval <= 0 {
			bad("log.fsync-interval", "must be > 0 when log.fsync is %q, got %v", FsyncInterval, l.FsyncInterval)
		}
	default:
		bad("log.fsync", "%q is not one of %s, %s, %s", l.Fsync, FsyncAlways, FsyncInterval, FsyncNever)
	}
	if l.SegmentBytes < MinSegmentBytes || l.SegmentBytes > MaxSegmentBytes {
		bad("log.segment-bytes", "%d is outside %d (4 KiB) .. %d (1 GiB)", l.SegmentBytes, MinSegmentBytes, MaxSegmentBytes)
	}
	if l.SegmentAge < 0 {
		bad("log.segment-age", "must not be negative (0 means roll by size only), got %v", l.SegmentAge)
	}
	if l.RetentionAge < 0 {
		bad("log.retention-age", "must not be negative (0 means keep forever), got %v", l.RetentionAge)
	}
	if l.RetentionBytes < 0 {
		bad("log.retention-bytes", "must not be negative (0 means unlimited), got %d", l.RetentionBytes)
	}
	g := c.Group
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"group.heartbeat-interval", g.HeartbeatInterval}, {"group.session-timeout", g.SessionTimeout},
		{"group.min-session-timeout", g.MinSessionTimeout}, {"group.max-session-timeout", g.MaxSessionTimeout},
	} {
		if d.v <= 0 {
			bad(d.key, "must be > 0, got %v", d.v)
		}
	}
	if g.MinSessionTimeout > g.MaxSessionTimeout {
		bad("group.min-session-timeout", "%v is above group.max-session-timeout %v", g.MinSessionTimeout, g.MaxSessionTimeout)
	} else if g.SessionTimeout < g.MinSessionTimeout || g.SessionTimeout > g.MaxSessionTimeout {
		bad("group.session-timeout", "%v is outside group.min-session-timeout .. group.max-session-timeout (%v .. %v)",
			g.SessionTimeout, g.MinSessionTimeout, g.MaxSessionTimeout)
	}
	if hb := c.Raft.HeartbeatTimeout; hb < MinRaftHeartbeatTimeout || hb > MaxRaftHeartbeatTimeout {
		bad("raft.heartbeat-timeout", "%v is outside %v .. %v", hb, MinRaftHeartbeatTimeout, MaxRaftHeartbeatTimeout)
	}
	return errors.Join(errs...)
}

// maxBootstrapExpect: the metadata group has at most five voters.
const maxBootstrapExpect = 5

// checkAddr accepts host:port with a numeric port, as net.Listen wants it.
// The host may be empty (all interfaces); names are resolved only at bind.
func checkAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("port %q is not a number in 0..65535", port)
	}
	return nil
}

func isAnyPort(addr string) bool {
	_, port, _ := net.SplitHostPort(addr)
	return port == "0"
}

// JoinAddrs returns the addresses of Join, without empty entries.
func (c Config) JoinAddrs() []string {
	var out []string
	for _, a := range strings.Split(c.Join, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}
