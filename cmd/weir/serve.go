package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"weir/broker"
	"weir/cluster"
	"weir/config"
)

func (m *Main) newServeCmd() *cobra.Command {
	var pprofOn bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a broker (alone: a single-node cluster on 127.0.0.1:7420, data in ./weir-data)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := m.loadConfig(cmd.Flags())
			if err != nil {
				return err
			}
			return m.serve(cmd, cfg, pprofOn)
		},
	}
	config.AddFlags(cmd.Flags())
	cmd.Flags().BoolVar(&pprofOn, "pprof", false, "serve Go's profiler at /debug/pprof/ on the HTTP listener")
	return cmd
}

// serve runs the broker until the command's context is done (Ctrl-C or
// SIGTERM), then closes it: connections, partitions (flushed and synced),
// metadata.
func (m *Main) serve(cmd *cobra.Command, cfg config.Config, pprofOn bool) error {
	logger := slog.New(slog.NewTextHandler(m.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	b, err := broker.Open(broker.Config{
		NodeID:             cluster.NodeID(cfg.NodeID),
		DataDir:            cfg.DataDir,
		PeerListen:         cfg.PeerListen,
		AdvertisedAddr:     cfg.Advertise,
		AdvertisedPeerAddr: cfg.PeerAdvertise,
		Join:               cfg.JoinAddrs(),
		BootstrapExpect:    int(cfg.BootstrapExpect),
		TopicDefaults:      topicDefaults(cfg.Log),
		// The election timeout and the lease follow (broker.Config).
		RaftHeartbeatTimeout: cfg.Raft.HeartbeatTimeout,
		Groups: cluster.CoordinatorConfig{
			HeartbeatInterval:     cfg.Group.HeartbeatInterval,
			DefaultSessionTimeout: cfg.Group.SessionTimeout,
			MinSessionTimeout:     cfg.Group.MinSessionTimeout,
			MaxSessionTimeout:     cfg.Group.MaxSessionTimeout,
		},
		Logger: logger,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		b.Close()
		return err
	}
	httpLn, err := net.Listen("tcp", cfg.HTTPListen)
	if err != nil {
		ln.Close()
		b.Close()
		return err
	}
	handler := b.HTTPHandler()
	if pprofOn {
		mux := http.NewServeMux()
		mux.Handle("/", handler)
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		handler = mux
	}
	httpServer := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 2)
	go func() { served <- b.Serve(ln) }()
	go func() {
		if err := httpServer.Serve(httpLn); !errors.Is(err, http.ErrServerClosed) {
			served <- fmt.Errorf("http: %w", err)
		}
	}()
	fmt.Fprintf(m.Stdout, "weir %s serving on %s (metrics and health at http://%s, node %d, data in %s)\n",
		buildVersion(), ln.Addr(), httpLn.Addr(), cfg.NodeID, cfg.DataDir)
	select {
	case <-cmd.Context().Done():
		logger.Info("shutting down")
	case err = <-served:
	}
	httpServer.Close()
	if cerr := b.Close(); err == nil {
		err = cerr
	}
	return err
}

// topicDefaults turns the node's log settings into the settings new topics
// get when they do not name them.
func topicDefaults(c config.LogConfig) map[string]string {
	forever := func(n int64) string {
		if n <= 0 {
			return "-1"
		}
		return strconv.FormatInt(n, 10)
	}
	d := map[string]string{
		cluster.KeyFsync:          c.Fsync,
		cluster.KeySegmentBytes:   strconv.FormatInt(c.SegmentBytes, 10),
		cluster.KeyRetentionMs:    forever(c.RetentionAge.Milliseconds()),
		cluster.KeyRetentionBytes: forever(c.RetentionBytes),
	}
	if c.SegmentAge > 0 {
		d[cluster.KeySegmentMs] = strconv.FormatInt(c.SegmentAge.Milliseconds(), 10)
	}
	return d
}
