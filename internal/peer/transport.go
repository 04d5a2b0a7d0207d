package peer

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"weir/internal/raftlog"
)

// Defaults for the zero values of TransportConfig.
const (
	// DefaultMaxPool is how many idle streams a group keeps per peer. Raft
	// uses one at a time per peer for heartbeats and one for appends.
	DefaultMaxPool = 2
	// DefaultTransportTimeout bounds a Dial and every RPC's I/O (scaled up
	// by Raft for InstallSnapshot).
	DefaultTransportTimeout = 5 * time.Second
)

// TransportConfig configures NewTransport. Zero values mean defaults.
type TransportConfig struct {
	// Logger receives Raft's transport errors (at warn). Default: discard.
	Logger *slog.Logger
	// MaxPool: see DefaultMaxPool.
	MaxPool int
	// Timeout: see DefaultTransportTimeout.
	Timeout time.Duration
}

// NewTransport registers group on m and returns a Raft transport over it (a
// NetworkTransport, see Transport). Closing the transport unregisters the
// group.
func NewTransport(m *Mux, group string, cfg TransportConfig) (*Transport, error) {
	if cfg.MaxPool < 0 || cfg.Timeout < 0 {
		return nil, fmt.Errorf("%w: negative MaxPool or Timeout", ErrInvalidOptions)
	}
	if cfg.MaxPool == 0 {
		cfg.MaxPool = DefaultMaxPool
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTransportTimeout
	}
	var logger hclog.Logger = hclog.NewNullLogger()
	if cfg.Logger != nil {
		logger = raftlog.New(cfg.Logger.With("group", group), "raft-net")
	}
	stream, err := m.StreamLayer(group)
	if err != nil {
		return nil, err
	}
	return &Transport{raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: cfg.MaxPool,
		Timeout: cfg.Timeout,
		Logger:  logger,
	})}, nil
}
