// Package raftlog routes hashicorp/raft's logs (hclog) into log/slog.
package raftlog

import (
	"bytes"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// New returns an hclog logger named name that writes Raft's errors to
// logger. Raft's warnings (every election, every slow follower) are routine
// in a cluster and would drown the broker's own log; the broker logs
// leadership changes itself.
func New(logger *slog.Logger, name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Error, Output: writer{logger}})
}

// writer turns each line hclog writes into a slog record.
type writer struct{ logger *slog.Logger }

func (w writer) Write(b []byte) (int, error) {
	w.logger.Warn(string(bytes.TrimSpace(b)))
	return len(b), nil
}
