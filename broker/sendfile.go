package broker

import (
	"io"
	"net"
	"os"
)

// copyRange copies n bytes of f from pos to w with positioned reads, safe
// beside other readers of f.
func copyRange(w net.Conn, f *os.File, pos, n int64) error {
	written, err := io.Copy(w, io.NewSectionReader(f, pos, n))
	if err == nil && written < n {
		err = io.ErrUnexpectedEOF
	}
	return err
}
