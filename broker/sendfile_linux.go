package broker

import (
	"errors"
	"io"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// sendFile writes n bytes of f from pos to conn with sendfile(2), so fetched
// records go from the page cache to the socket without a copy through the
// process. It passes the position explicitly: Go's own sendfile path uses
// the file's shared offset, which concurrent fetches of the same segment
// would race on.
func sendFile(conn net.Conn, f *os.File, pos, n int64) error {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return copyRange(conn, f, pos, n)
	}
	dst, err := tc.SyscallConn()
	if err != nil {
		return err
	}
	src, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var opErr error
	err = src.Read(func(srcFD uintptr) bool {
		err := dst.Write(func(dstFD uintptr) bool {
			for n > 0 {
				written, err := unix.Sendfile(int(dstFD), int(srcFD), &pos, int(min(n, 1<<30)))
				if written > 0 {
					n -= int64(written)
				}
				switch {
				case errors.Is(err, unix.EAGAIN):
					return false // wait until the socket is writable
				case errors.Is(err, unix.EINTR):
					continue
				case err != nil:
					opErr = err
					return true
				case written == 0:
					opErr = io.ErrUnexpectedEOF // the file is shorter than the range
					return true
				}
			}
			return true
		})
		if opErr == nil {
			opErr = err
		}
		return true
	})
	if opErr != nil {
		return &net.OpError{Op: "sendfile", Net: "tcp", Err: opErr}
	}
	return err
}
