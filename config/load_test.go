package config_test

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"weir/config"
)

// TestLoad runs Load over the four layers (defaults < file < environment <
// flags) and over the ways a configuration can be wrong.
func TestLoad(t *testing.T) {
	tests := []struct {
		name string
		file string            // contents of weir.yaml in the working directory; "" = no file
		path string            // the path given to Load; "" = the default
		env  map[string]string // WEIR_* variables
		args []string          // command-line flags, registered by AddFlags

		// want edits Default() into the expected result (nil: Default()).
		want func(c *config.Config)

		// For failures: the error must wrap wantErr, contain a *KeyError
		// for wantKey (if set), and contain every string of wantMsg.
		wantErr error
		wantKey string
		wantMsg []string
	}{
		{
			name: "defaults",
		},
		{
			name: "default file in working directory is read",
			file: "node-id: 2\n",
			want: func(c *config.Config) { c.NodeID = 2 },
		},
		{
			name: "file overrides defaults",
			file: `
node-id: 3
data-dir: /var/lib/weir
listen: 0.0.0.0:9000
log:
  fsync: interval
  fsync-interval: 250ms
  segment-bytes: 8192
  segment-age: 1h
  retention-age: 0
  retention-bytes: 1e9
`,
			path: "weir.yaml",
			want: func(c *config.Config) {
				c.NodeID = 3
				c.DataDir = "/var/lib/weir"
				c.Listen = "0.0.0.0:9000"
				c.Log.Fsync = config.FsyncInterval
				c.Log.FsyncInterval = 250 * time.Millisecond
				c.Log.SegmentBytes = 8192
				c.Log.SegmentAge = time.Hour
				c.Log.RetentionAge = 0
				c.Log.RetentionBytes = 1e9
			},
		},
		{
			name: "key names are case-insensitive in the file",
			file: "Node-ID: 4\n",
			want: func(c *config.Config) { c.NodeID = 4 },
		},
		{
			name: "empty section keeps defaults",
			file: "log:\n  # fsync: never\nnode-id: 2\n",
			want: func(c *config.Config) { c.NodeID = 2 },
		},
		{
			name: "empty section as braces keeps defaults",
			file: "log: {}\n",
		},
		{
			name: "env overrides file",
			file: "data-dir: /from/file\nlog:\n  fsync: never\n",
			env:  map[string]string{"WEIR_DATA_DIR": "/from/env"},
			want: func(c *config.Config) {
				c.DataDir = "/from/env"
				c.Log.Fsync = config.FsyncNever
			},
		},
		{
			name: "env sets keys the file does not mention",
			file: "node-id: 2\n",
			env: map[string]string{
				"WEIR_LOG_FSYNC":          "interval",
				"WEIR_LOG_FSYNC_INTERVAL": "1s",
				"WEIR_LOG_SEGMENT_BYTES":  "8192",
				"WEIR_PEER_LISTEN":        "127.0.0.1:9001",
			},
			want: func(c *config.Config) {
				c.NodeID = 2
				c.PeerListen = "127.0.0.1:9001"
				c.Log.Fsync = config.FsyncInterval
				c.Log.FsyncInterval = time.Second
				c.Log.SegmentBytes = 8192
			},
		},
		{
			name: "env without any file",
			env:  map[string]string{"WEIR_NODE_ID": "9", "WEIR_LOG_RETENTION_AGE": "0"},
			want: func(c *config.Config) {
				c.NodeID = 9
				c.Log.RetentionAge = 0
			},
		},
		{
			name: "flag overrides env and file",
			file: "data-dir: /from/file\nnode-id: 2\n",
			env:  map[string]string{"WEIR_DATA_DIR": "/from/env", "WEIR_NODE_ID": "3"},
			args: []string{"--data-dir=/from/flag", "--log.segment-bytes", "65536", "--log.retention-age=48h"},
			want: func(c *config.Config) {
				c.DataDir = "/from/flag"
				c.NodeID = 3
				c.Log.SegmentBytes = 65536
				c.Log.RetentionAge = 48 * time.Hour
			},
		},
		{
			name: "flags left at their defaults do not override env",
			env:  map[string]string{"WEIR_LOG_FSYNC": "never"},
			args: []string{"--node-id=5"},
			want: func(c *config.Config) {
				c.NodeID = 5
				c.Log.Fsync = config.FsyncNever
			},
		},
		{
			name: "other flags in the set are ignored",
			args: []string{"--config=", "--verbose"},
		},
		{
			name:    "unknown top-level key rejected",
			file:    "nodeid: 2\n",
			wantErr: config.ErrUnknownKey,
			wantKey: "nodeid",
			wantMsg: []string{`config: weir.yaml: unknown key "nodeid"`},
		},
		{
			name:    "unknown nested key rejected",
			file:    "log:\n  fsnyc: always\n",
			path:    "weir.yaml",
			wantErr: config.ErrUnknownKey,
			wantKey: "log.fsnyc",
			wantMsg: []string{`config: weir.yaml: unknown key "log.fsnyc"`},
		},
		{
			name:    "every unknown key is named",
			file:    "log:\n  fsnyc: always\n  segment-size: 1\ndatadir: x\n",
			wantErr: config.ErrUnknownKey,
			wantMsg: []string{`"log.fsnyc"`, `"log.segment-size"`, `"datadir"`},
		},
		{
			name:    "keys below a value rejected",
			file:    "data-dir:\n  path: /x\n",
			wantErr: config.ErrUnknownKey,
			wantKey: "data-dir.path",
		},
		{
			name:    "value where a section belongs",
			file:    "log: always\n",
			wantErr: config.ErrInvalidValue,
			wantKey: "log",
			wantMsg: []string{"section"},
		},
		{
			name:    "invalid fsync policy names key and file",
			file:    "log:\n  fsync: sometimes\n",
			wantErr: config.ErrInvalidValue,
			wantKey: "log.fsync",
			wantMsg: []string{"config: log.fsync:", `"sometimes"`, "(from weir.yaml)"},
		},
		{
			name:    "fsync value of the wrong type",
			file:    "log:\n  fsync: true\n",
			wantErr: config.ErrInvalidValue,
			wantKey: "log.fsync",
		},
		{
			name:    "invalid duration from env names key and variable",
			env:     map[string]string{"WEIR_LOG_FSYNC_INTERVAL": "soon"},
			wantErr: config.ErrInvalidValue,
			wantKey: "log.fsync-interval",
			wantMsg: []string{"config: log.fsync-interval:", `"soon"`, "(from WEIR_LOG_FSYNC_INTERVAL)"},
		},
		{
			name:    "duration without a unit",
			file:    "log:\n  segment-age: 10\n",
			wantErr: config.ErrInvalidValue,
			wantKey: "log.segment-age",
			wantMsg: []string{"no unit"},
		},
		{
			name:    "fsync interval must be positive under interval",
			file:    "log:\n  fsync: interval\n  fsync-interval: 0s\n",
			wantErr: config.ErrInvalidValue,
			wantKey: "log.fsync-interval",
		},
		{
			name:    "segment-bytes below minimum from flag",
			args:    []string{"--log.segment-bytes=100"},
			wantErr: config.ErrInvalidValue,
			wantKey: "log.segment-bytes",
			wantMsg: []string{"config: log.segment-bytes:", "(from --log.segment-bytes)"},
		},
		{
			name:    "segment-bytes above maximum",
			file:    "log:\n  segment-bytes: 2147483648\n",
			wantErr: config.ErrInvalidValue,
			wantKey: "log.segment-bytes",
		},
		{
			name:    "segment-bytes not a whole number",
			file:    "log:\n  segment-bytes: 8192.5\n",
			wantErr: config.ErrInvalidValue,
			wantKey: "log.segment-bytes",
		},
		{
			name:    "segment-bytes not a number in env",
			env:     map[string]string{"WEIR_LOG_SEGMENT_BYTES": "128MiB"},
			wantErr: config.ErrInvalidValue,
			wantKey: "log.segment-bytes",
			wantMsg: []string{`"128MiB"`},
		},
		{
			name:    "negative node-id is not wrapped around",
			file:    "node-id: -1\n",
			wantErr: config.ErrInvalidValue,
			wantKey: "node-id",
		},
		{
			name:    "node-id 0 is reserved",
			env:     map[string]string{"WEIR_NODE_ID": "0"},
			wantErr: config.ErrInvalidValue,
			wantKey: "node-id",
		},
		{
			name:    "negative retention rejected",
			file:    "log:\n  retention-bytes: -1\n",
			wantErr: config.ErrInvalidValue,
			wantKey: "log.retention-bytes",
		},
		{
			name:    "bad listen address",
			file:    "listen: localhost\n",
			wantErr: config.ErrInvalidValue,
			wantKey: "listen",
		},
		{
			name:    "two listeners on one address",
			env:     map[string]string{"WEIR_HTTP_LISTEN": "127.0.0.1:7420"},
			wantErr: config.ErrInvalidValue,
			wantKey: "http-listen",
		},
		{
			name:    "missing explicit file is an error",
			path:    "missing.yaml",
			wantErr: fs.ErrNotExist,
			wantMsg: []string{"missing.yaml"},
		},
		{
			name:    "YAML syntax error names the file",
			file:    "log: [\n",
			wantMsg: []string{"config: weir.yaml:"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			if tt.file != "" {
				if err := os.WriteFile("weir.yaml", []byte(tt.file), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			flags := pflag.NewFlagSet("weir", pflag.ContinueOnError)
			config.AddFlags(flags)
			flags.String("config", "", "not a config key")
			flags.Bool("verbose", false, "not a config key")
			if err := flags.Parse(tt.args); err != nil {
				t.Fatal(err)
			}

			got, err := config.Load(tt.path, flags)

			wantFail := tt.wantErr != nil || tt.wantKey != "" || tt.wantMsg != nil
			if !wantFail {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				want := config.Default()
				if tt.want != nil {
					tt.want(&want)
				}
				if got != want {
					t.Errorf("Load:\n got %+v\nwant %+v", got, want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Load succeeded with %+v, want an error", got)
			}
			t.Logf("error: %v", err) // what a user would see
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %q does not wrap %q", err, tt.wantErr)
			}
			if tt.wantKey != "" && !hasKeyError(err, tt.wantKey) {
				t.Errorf("error %q has no *KeyError for %q", err, tt.wantKey)
			}
			for _, m := range tt.wantMsg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not contain %q", err, m)
				}
			}
		})
	}
}

// isolate gives the test an empty working directory (so no weir.yaml but the
// test's own is found) and clears every WEIR_* variable the runner's
// environment might set. t.Setenv restores them afterwards; viper treats an
// empty variable as unset.
func isolate(t *testing.T) {
	t.Helper()
	t.Chdir(t.TempDir())
	flags := pflag.NewFlagSet("keys", pflag.ContinueOnError)
	config.AddFlags(flags)
	flags.VisitAll(func(f *pflag.Flag) { t.Setenv(config.EnvVar(f.Name), "") })
}

// hasKeyError reports whether err holds a *KeyError for key anywhere in its
// tree of joined errors (errors.As stops at the first).
func hasKeyError(err error, key string) bool {
	var ke *config.KeyError
	if errors.As(err, &ke) && ke.Key == key {
		return true
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if hasKeyError(e, key) {
				return true
			}
		}
	}
	return false
}
