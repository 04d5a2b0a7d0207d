//go:build !linux

package broker

import (
	"net"
	"os"
)

// sendFile copies n bytes of f from pos to conn (no sendfile here).
func sendFile(conn net.Conn, f *os.File, pos, n int64) error { return copyRange(conn, f, pos, n) }
