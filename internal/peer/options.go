package peer

import (
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/hashicorp/yamux"
)

// Defaults for the zero values of Options.
const (
	// DefaultKeepAliveInterval is how often an idle session is pinged. A
	// dead peer (or a half-open TCP connection) is noticed after about
	// KeepAliveInterval + ConnectionWriteTimeout, and the next Dial to it
	// makes a new connection.
	DefaultKeepAliveInterval = 5 * time.Second
	// DefaultConnectionWriteTimeout bounds every frame written to a session's
	// TCP connection (and a keepalive's round trip); past it the session is
	// closed.
	DefaultConnectionWriteTimeout = 10 * time.Second
	// DefaultStreamWindowBytes is the largest receive window of a stream.
	// Raft's AppendEntries batches run to megabytes; yamux's own default
	// (256 KiB) would take several round trips per batch. The buffer only
	// grows when data is waiting, so idle streams do not pay for it.
	DefaultStreamWindowBytes = 1 << 20
	// DefaultMaxPendingStreams bounds a group's queue of accepted streams
	// that its Raft transport has not taken yet.
	DefaultMaxPendingStreams = 64
	// DefaultHeaderTimeout bounds reading a new stream's header.
	DefaultHeaderTimeout = 5 * time.Second
	// DefaultStreamOpenTimeout: a stream the peer has not acknowledged in
	// this time means the session is stuck; yamux closes it.
	DefaultStreamOpenTimeout = 30 * time.Second
	// DefaultStreamCloseTimeout: a stream closed here that the peer has not
	// closed in this time is reset, freeing its state.
	DefaultStreamCloseTimeout = 30 * time.Second
	// DefaultHeartbeatInterval is the least time between two coalesced
	// heartbeat requests to one node. Raft heartbeats every 50-100 ms per
	// group (at weir's timeouts), so at 10 ms a heartbeat waits at most a
	// tenth of its interval, and a node pair exchanges at most 100
	// requests a second however many groups they share.
	DefaultHeartbeatInterval = 10 * time.Millisecond
	// DefaultHeartbeatTimeout bounds a coalesced heartbeat round trip (and
	// dialing for it), as the transport's timeout bounds a Raft RPC.
	DefaultHeartbeatTimeout = 5 * time.Second

	// acceptBacklog is yamux's per-session queue of streams opened by the
	// peer and not yet accepted, and also its limit of streams this side
	// has opened and the peer not yet acknowledged. Our accept loop never
	// blocks, but a node starting a thousand groups opens a burst of
	// streams at once; yamux resets streams beyond the backlog.
	acceptBacklog = 1024
)

// Options configure a Mux. The zero value of every field means its default.
type Options struct {
	// Advertise is the address other nodes dial to reach this Mux, and what
	// every StreamLayer's Addr returns (so it is the Raft server address).
	// Default: the listener's address.
	Advertise string
	// Logger receives the Mux's own logs (bad headers, dead sessions) and
	// yamux's. Default: discard.
	Logger *slog.Logger

	// KeepAliveInterval: see DefaultKeepAliveInterval.
	KeepAliveInterval time.Duration
	// ConnectionWriteTimeout: see DefaultConnectionWriteTimeout.
	ConnectionWriteTimeout time.Duration
	// StreamWindowBytes: see DefaultStreamWindowBytes. At least 256 KiB.
	StreamWindowBytes uint32
	// MaxPendingStreams: see DefaultMaxPendingStreams. Streams arriving for
	// a group whose queue is full are closed.
	MaxPendingStreams int
	// HeaderTimeout: see DefaultHeaderTimeout.
	HeaderTimeout time.Duration
	// HeartbeatInterval: see DefaultHeartbeatInterval.
	HeartbeatInterval time.Duration
	// HeartbeatTimeout: see DefaultHeartbeatTimeout.
	HeartbeatTimeout time.Duration
	// OnPeerLost, if set, is called with a node's advertised address when
	// the session that carried its heartbeats to this node closes (the
	// node died, or the connection broke): Raft groups that it leads can
	// elect a new leader without waiting out their heartbeat timeout. It
	// must not block.
	OnPeerLost func(addr string)

	// idleSweepInterval is how often transports look for idle pooled
	// streams to close (defaultIdleSweepInterval; tests set it shorter).
	idleSweepInterval time.Duration
}

// defaultIdleSweepInterval: see Options.idleSweepInterval. A pooled stream
// idle for a transport's IdleTimeout is closed within this much more.
const defaultIdleSweepInterval = 10 * time.Second

// EnsureDefaults returns a copy of o with every zero field set to its
// default, or an error if a field is out of range.
func (o Options) EnsureDefaults() (Options, error) {
	if o.Advertise != "" {
		if _, _, err := net.SplitHostPort(o.Advertise); err != nil {
			return o, fmt.Errorf("%w: advertise %q: %v", ErrInvalidOptions, o.Advertise, err)
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.KeepAliveInterval < 0 || o.ConnectionWriteTimeout < 0 || o.HeaderTimeout < 0 || o.MaxPendingStreams < 0 ||
		o.HeartbeatInterval < 0 || o.HeartbeatTimeout < 0 {
		return o, fmt.Errorf("%w: negative duration or count", ErrInvalidOptions)
	}
	if o.KeepAliveInterval == 0 {
		o.KeepAliveInterval = DefaultKeepAliveInterval
	}
	if o.ConnectionWriteTimeout == 0 {
		o.ConnectionWriteTimeout = DefaultConnectionWriteTimeout
	}
	if o.StreamWindowBytes == 0 {
		o.StreamWindowBytes = DefaultStreamWindowBytes
	}
	if o.StreamWindowBytes < 256<<10 {
		return o, fmt.Errorf("%w: stream window %d bytes is below 256 KiB", ErrInvalidOptions, o.StreamWindowBytes)
	}
	if o.MaxPendingStreams == 0 {
		o.MaxPendingStreams = DefaultMaxPendingStreams
	}
	if o.HeaderTimeout == 0 {
		o.HeaderTimeout = DefaultHeaderTimeout
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if o.HeartbeatTimeout == 0 {
		o.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if o.idleSweepInterval <= 0 {
		o.idleSweepInterval = defaultIdleSweepInterval
	}
	return o, nil
}

// yamuxConfig is the session configuration for o (defaults applied).
func (o Options) yamuxConfig() *yamux.Config {
	return &yamux.Config{
		AcceptBacklog:          acceptBacklog,
		EnableKeepAlive:        true,
		KeepAliveInterval:      o.KeepAliveInterval,
		ConnectionWriteTimeout: o.ConnectionWriteTimeout,
		MaxStreamWindowSize:    o.StreamWindowBytes,
		StreamOpenTimeout:      DefaultStreamOpenTimeout,
		StreamCloseTimeout:     DefaultStreamCloseTimeout,
		Logger:                 yamuxLogger{o.Logger},
	}
}

// yamuxLogger routes yamux's log lines ("[ERR] yamux: ...", "[WARN] ...")
// into slog: errors and warnings at warn, anything else at debug.
type yamuxLogger struct{ logger *slog.Logger }

func (l yamuxLogger) Print(v ...any)                 { l.log(fmt.Sprint(v...)) }
func (l yamuxLogger) Printf(format string, v ...any) { l.log(fmt.Sprintf(format, v...)) }
func (l yamuxLogger) Println(v ...any)               { l.log(fmt.Sprintln(v...)) }

func (l yamuxLogger) log(msg string) {
	msg = strings.TrimSpace(msg)
	if strings.HasPrefix(msg, "[ERR]") || strings.HasPrefix(msg, "[WARN]") {
		l.logger.Warn(msg, "component", "yamux")
		return
	}
	l.logger.Debug(msg, "component", "yamux")
}

var _ yamux.Logger = yamuxLogger{}
