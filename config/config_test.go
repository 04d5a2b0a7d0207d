package config_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"weir/config"
)

func TestDefaultIsValid(t *testing.T) {
	if err := config.Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
}

// TestValidate checks each rule on its own, starting from Default().
func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(c *config.Config)
		wantKey string // "" = valid
	}{
		{"node-id 0", func(c *config.Config) { c.NodeID = 0 }, "node-id"},
		{"empty data-dir", func(c *config.Config) { c.DataDir = "" }, "data-dir"},
		{"listen without port", func(c *config.Config) { c.Listen = "127.0.0.1" }, "listen"},
		{"peer-listen port out of range", func(c *config.Config) { c.PeerListen = "127.0.0.1:70000" }, "peer-listen"},
		{"http-listen named port", func(c *config.Config) { c.HTTPListen = "127.0.0.1:http" }, "http-listen"},
		{"listen on all interfaces", func(c *config.Config) { c.Listen = ":7420" }, ""},
		{"peer-listen same as listen", func(c *config.Config) { c.PeerListen = c.Listen }, "peer-listen"},
		{"all listeners on port 0", func(c *config.Config) {
			c.Listen, c.PeerListen, c.HTTPListen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		}, ""},
		{"fsync unknown", func(c *config.Config) { c.Log.Fsync = "Always" }, "log.fsync"},
		{"fsync empty", func(c *config.Config) { c.Log.Fsync = "" }, "log.fsync"},
		{"fsync never", func(c *config.Config) { c.Log.Fsync = config.FsyncNever }, ""},
		{"fsync interval 0", func(c *config.Config) {
			c.Log.Fsync, c.Log.FsyncInterval = config.FsyncInterval, 0
		}, "log.fsync-interval"},
		{"fsync interval ignored under always", func(c *config.Config) { c.Log.FsyncInterval = 0 }, ""},
		{"segment-bytes at minimum", func(c *config.Config) { c.Log.SegmentBytes = config.MinSegmentBytes }, ""},
		{"segment-bytes below minimum", func(c *config.Config) { c.Log.SegmentBytes = config.MinSegmentBytes - 1 }, "log.segment-bytes"},
		{"segment-bytes at maximum", func(c *config.Config) { c.Log.SegmentBytes = config.MaxSegmentBytes }, ""},
		{"segment-bytes above maximum", func(c *config.Config) { c.Log.SegmentBytes = config.MaxSegmentBytes + 1 }, "log.segment-bytes"},
		{"segment-age 0 means size only", func(c *config.Config) { c.Log.SegmentAge = 0 }, ""},
		{"segment-age negative", func(c *config.Config) { c.Log.SegmentAge = -time.Second }, "log.segment-age"},
		{"retention-age 0 means forever", func(c *config.Config) { c.Log.RetentionAge = 0 }, ""},
		{"retention-age negative", func(c *config.Config) { c.Log.RetentionAge = -time.Hour }, "log.retention-age"},
		{"retention-bytes negative", func(c *config.Config) { c.Log.RetentionBytes = -1 }, "log.retention-bytes"},
		{"join with a bad address", func(c *config.Config) { c.Join = "127.0.0.1:4, nonsense" }, "join"},
		{"advertise without port", func(c *config.Config) { c.Advertise = "example.com" }, "advertise"},
		{"peer-advertise on port 0", func(c *config.Config) { c.PeerAdvertise = "10.0.0.1:0" }, "peer-advertise"},
		{"peer-advertise set", func(c *config.Config) { c.PeerAdvertise = "10.0.0.1:7421" }, ""},
		{"bootstrap-expect negative", func(c *config.Config) { c.BootstrapExpect = -1 }, "bootstrap-expect"},
		{"bootstrap-expect above five", func(c *config.Config) { c.BootstrapExpect = 6 }, "bootstrap-expect"},
		{"bootstrap-expect without seeds", func(c *config.Config) { c.BootstrapExpect = 3; c.Join = "127.0.0.1:4" }, "bootstrap-expect"},
		{"bootstrap-expect with seeds", func(c *config.Config) { c.BootstrapExpect = 3; c.Join = "127.0.0.1:4,127.0.0.1:5" }, ""},
		{"heartbeat interval 0", func(c *config.Config) { c.Group.HeartbeatInterval = 0 }, "group.heartbeat-interval"},
		{"session below minimum", func(c *config.Config) { c.Group.SessionTimeout = time.Millisecond }, "group.session-timeout"},
		{"min above max", func(c *config.Config) { c.Group.MinSessionTimeout = time.Hour }, "group.min-session-timeout"},
		{"raft heartbeat at minimum", func(c *config.Config) { c.Raft.HeartbeatTimeout = config.MinRaftHeartbeatTimeout }, ""},
		{"raft heartbeat below minimum", func(c *config.Config) { c.Raft.HeartbeatTimeout = config.MinRaftHeartbeatTimeout - 1 }, "raft.heartbeat-timeout"},
		{"raft heartbeat above maximum", func(c *config.Config) { c.Raft.HeartbeatTimeout = config.MaxRaftHeartbeatTimeout + 1 }, "raft.heartbeat-timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Default()
			tt.edit(&c)
			err := c.Validate()
			if tt.wantKey == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, config.ErrInvalidValue) {
				t.Fatalf("Validate() = %v, want ErrInvalidValue", err)
			}
			var ke *config.KeyError
			if !errors.As(err, &ke) || ke.Key != tt.wantKey {
				t.Fatalf("Validate() = %v, want a *KeyError for %q", err, tt.wantKey)
			}
			if !strings.HasPrefix(err.Error(), "config: "+tt.wantKey+": ") {
				t.Errorf("message %q does not start with the key", err)
			}
		})
	}
}

// TestValidateReportsAll: a user with several mistakes sees them all at once.
func TestValidateReportsAll(t *testing.T) {
	c := config.Default()
	c.NodeID = 0
	c.Log.Fsync = "sometimes"
	c.Log.SegmentBytes = 1
	err := c.Validate()
	for _, key := range []string{"node-id", "log.fsync", "log.segment-bytes"} {
		if !hasKeyError(err, key) {
			t.Errorf("Validate() = %v, missing %q", err, key)
		}
	}
}

func TestEnvVar(t *testing.T) {
	for key, want := range map[string]string{
		"node-id":             "WEIR_NODE_ID",
		"data-dir":            "WEIR_DATA_DIR",
		"log.fsync":           "WEIR_LOG_FSYNC",
		"log.fsync-interval":  "WEIR_LOG_FSYNC_INTERVAL",
		"log.retention-bytes": "WEIR_LOG_RETENTION_BYTES",
	} {
		if got := config.EnvVar(key); got != want {
			t.Errorf("EnvVar(%q) = %q, want %q", key, got, want)
		}
	}
}

// TestAddFlags checks that every key has a flag, whose default is the key's
// default, and that setting each flag reaches its field. A field added to
// Config without a key (or the reverse) also fails here, through Load.
func TestAddFlags(t *testing.T) {
	isolate(t)
	flags := pflag.NewFlagSet("weir", pflag.ContinueOnError)
	config.AddFlags(flags)

	// Parsed but none set: exactly the defaults.
	if err := flags.Parse(nil); err != nil {
		t.Fatal(err)
	}
	got, err := config.Load("", flags)
	if err != nil {
		t.Fatal(err)
	}
	if got != config.Default() {
		t.Errorf("Load with unset flags = %+v, want Default()", got)
	}

	// Every flag set to a non-default value.
	args := []string{
		"--node-id=7",
		"--data-dir=/d",
		"--listen=127.0.0.1:1",
		"--peer-listen=127.0.0.1:2",
		"--http-listen=127.0.0.1:3",
		"--join=127.0.0.1:4,127.0.0.1:5",
		"--advertise=10.0.0.1:1",
		"--peer-advertise=10.0.0.1:2",
		"--bootstrap-expect=3",
		"--log.fsync=interval",
		"--log.fsync-interval=2s",
		"--log.segment-bytes=4096",
		"--log.segment-age=1m",
		"--log.retention-age=0",
		"--log.retention-bytes=1048576",
		"--group.heartbeat-interval=1s",
		"--group.session-timeout=30s",
		"--group.min-session-timeout=2s",
		"--group.max-session-timeout=1m",
		"--raft.heartbeat-timeout=600ms",
	}
	var n int
	flags.VisitAll(func(*pflag.Flag) { n++ })
	if n != len(args) {
		t.Fatalf("AddFlags registered %d flags, the test sets %d: update the test", n, len(args))
	}
	if err := flags.Parse(args); err != nil {
		t.Fatal(err)
	}
	got, err = config.Load("", flags)
	if err != nil {
		t.Fatal(err)
	}
	want := config.Config{
		NodeID:          7,
		DataDir:         "/d",
		Listen:          "127.0.0.1:1",
		PeerListen:      "127.0.0.1:2",
		HTTPListen:      "127.0.0.1:3",
		Join:            "127.0.0.1:4,127.0.0.1:5",
		Advertise:       "10.0.0.1:1",
		PeerAdvertise:   "10.0.0.1:2",
		BootstrapExpect: 3,
		Log: config.LogConfig{
			Fsync:          config.FsyncInterval,
			FsyncInterval:  2 * time.Second,
			SegmentBytes:   4096,
			SegmentAge:     time.Minute,
			RetentionAge:   0,
			RetentionBytes: 1 << 20,
		},
		Group: config.GroupConfig{HeartbeatInterval: time.Second, SessionTimeout: 30 * time.Second,
			MinSessionTimeout: 2 * time.Second, MaxSessionTimeout: time.Minute},
		Raft: config.RaftConfig{HeartbeatTimeout: 600 * time.Millisecond},
	}
	if got != want {
		t.Errorf("Load with every flag set:\n got %+v\nwant %+v", got, want)
	}
}
