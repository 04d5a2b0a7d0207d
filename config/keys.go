package config

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// key is one setting. Its name is the key in the file (dots separate
// sections), the flag name, and, through EnvVar, the environment variable.
type key struct {
	name  string
	usage string
	// field returns a pointer to the setting's field in c. Its type picks
	// the flag type; Default() read through it gives the default.
	field func(c *Config) any
}

// keys lists every setting. It is the one place that maps keys to fields:
// defaults, environment bindings and flags are all derived from it.
// NB: keep it in step with the struct tags in config.go. Load decodes with
// ErrorUnused and ErrorUnset, so a key missing here or a field missing there
// fails every Load (and so the tests), rather than being silently ignored.
var keys = []key{
	{"node-id", "unique id of this node in the cluster; must never change", func(c *Config) any { return &c.NodeID }},
	{"data-dir", "directory for all of the node's state", func(c *Config) any { return &c.DataDir }},
	{"listen", "host:port for clients", func(c *Config) any { return &c.Listen }},
	{"peer-listen", "host:port for Raft traffic from other nodes", func(c *Config) any { return &c.PeerListen }},
	{"http-listen", "host:port for /metrics and /healthz", func(c *Config) any { return &c.HTTPListen }},
	{"advertise", "host:port clients are told to reach this node at (default: listen)", func(c *Config) any { return &c.Advertise }},
	{"peer-advertise", "host:port other nodes reach the peer listener at (default: peer-listen); must not change", func(c *Config) any { return &c.PeerAdvertise }},
	{"bootstrap-expect", "a new cluster's node count: wait for that many nodes (this one and the join seeds) before starting it", func(c *Config) any { return &c.BootstrapExpect }},
	{"join", "comma-separated host:port client addresses of nodes of a cluster to join on first start", func(c *Config) any { return &c.Join }},
	{"log.fsync", "fsync policy: always, interval or never", func(c *Config) any { return &c.Log.Fsync }},
	{"log.fsync-interval", "time between fsyncs when log.fsync is interval", func(c *Config) any { return &c.Log.FsyncInterval }},
	{"log.segment-bytes", "size at which a log segment is sealed (4 KiB .. 1 GiB)", func(c *Config) any { return &c.Log.SegmentBytes }},
	{"log.segment-age", "age at which a log segment is sealed; 0 = by size only", func(c *Config) any { return &c.Log.SegmentAge }},
	{"log.retention-age", "delete sealed segments older than this; 0 = keep forever", func(c *Config) any { return &c.Log.RetentionAge }},
	{"log.retention-bytes", "cap on a partition log's size; 0 = unlimited", func(c *Config) any { return &c.Log.RetentionBytes }},
	{"group.heartbeat-interval", "how often consumer group members heartbeat", func(c *Config) any { return &c.Group.HeartbeatInterval }},
	{"group.session-timeout", "a group member's session when it asks for none", func(c *Config) any { return &c.Group.SessionTimeout }},
	{"group.min-session-timeout", "the shortest session a group member may ask for", func(c *Config) any { return &c.Group.MinSessionTimeout }},
	{"group.max-session-timeout", "the longest session a group member may ask for", func(c *Config) any { return &c.Group.MaxSessionTimeout }},
	{"raft.heartbeat-timeout", "how long a Raft follower waits for its leader before standing for election: failover time against idle cost", func(c *Config) any { return &c.Raft.HeartbeatTimeout }},
}

// envPrefix and envReplacer turn a key into its environment variable.
const envPrefix = "WEIR"

var envReplacer = strings.NewReplacer(".", "_", "-", "_")

// EnvVar returns the environment variable that sets key:
// "log.fsync-interval" -> "WEIR_LOG_FSYNC_INTERVAL".
func EnvVar(key string) string {
	return envPrefix + "_" + strings.ToUpper(envReplacer.Replace(key))
}

// lookupKey reports whether name is a known key (a leaf, not a section).
func lookupKey(name string) bool {
	for _, k := range keys {
		if k.name == name {
			return true
		}
	}
	return false
}

// isSection reports whether name is a section, like "log", that holds keys.
func isSection(name string) bool {
	for _, k := range keys {
		if strings.HasPrefix(k.name, name+".") {
			return true
		}
	}
	return false
}

// defaultValue returns the default of k, read from Default().
func (k key) defaultValue() any {
	d := Default()
	return reflect.ValueOf(k.field(&d)).Elem().Interface()
}

// AddFlags registers one flag per key on fs, named exactly as the key
// (--data-dir, --log.fsync, ...), with the default shown in --help. Load
// uses only the flags the user actually set, so a flag's default never
// hides a value from the file or the environment.
func AddFlags(fs *pflag.FlagSet) {
	for _, k := range keys {
		switch def := k.defaultValue().(type) {
		case uint64:
			fs.Uint64(k.name, def, k.usage)
		case int64:
			fs.Int64(k.name, def, k.usage)
		case string:
			fs.String(k.name, def, k.usage)
		case time.Duration:
			fs.Duration(k.name, def, k.usage)
		default:
			// A new field type needs a flag type here.
			panic(fmt.Sprintf("config: key %q has type %T, which has no flag type", k.name, def))
		}
	}
}
