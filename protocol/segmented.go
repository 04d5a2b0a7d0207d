package protocol

import (
	"fmt"
	"io"
)

// Sending bytes the encoder never holds.
//
// A fetch response carries log frames as they are stored, and the broker
// sends them from the segment file (sendfile) rather than copying them
// through the encoder. The message definitions mark such a field external
// (today only FetchResponsePartition.Records). A Writer given an
// ExternalFunc asks it, for each external field in wire order, whether the
// caller will supply the bytes; if so it writes only the field's length and
// records a Gap where the bytes belong. SegmentedFrame does this for a whole
// response frame, and sends it with the caller filling the gaps:
//
//	var f protocol.SegmentedFrame // reusable
//	err := f.EncodeResponse(correlationID, resp, func(i int) (int32, bool) {
//		// i counts the external fields in wire order: for a fetch
//		// response, the partitions of the first topic, then of the
//		// second, and so on.
//		return int32(ranges[i].Len), true
//	})
//	...
//	_, err = f.Send(conn, func(w io.Writer, g protocol.Gap) (int64, error) {
//		return sendRange(w, ranges[g.Index]) // sendfile, exactly g.Length bytes
//	})
//
// The bytes on the wire are exactly those of the response encoded with the
// records in memory (TestSegmentedFrameMatchesInMemory checks it).

// ExternalFunc is asked, for the i-th external field of a message in wire
// order (i = 0, 1, ...), whether the caller supplies its bytes. If ok, the
// Writer writes length as the field's length and leaves the bytes out (the
// field's value in the message is ignored); length must not be negative.
// If not ok, the field is encoded from the message as usual.
type ExternalFunc func(i int) (length int32, ok bool)

// Gap is a place in an encoded message where external bytes go.
type Gap struct {
	Offset int   // position in the encoded bytes before which they go
	Index  int   // the i that ExternalFunc was asked with
	Length int32 // how many bytes go there
}

// SetExternal makes w consult fn for every external field it writes from now
// on (nil: encode external fields in full), and clears w's gaps.
func (w *Writer) SetExternal(fn ExternalFunc) {
	w.external = fn
	w.nextExternal = 0
	w.gaps = w.gaps[:0]
}

// Gaps returns where w left out external bytes, in order. It aliases w's
// storage, which SetExternal and Reset reuse.
func (w *Writer) Gaps() []Gap { return w.gaps }

// putExternalBytes writes a bytes field marked external.
func (w *Writer) putExternalBytes(b []byte) {
	if w.external == nil {
		w.PutBytes(b)
		return
	}
	i := w.nextExternal
	w.nextExternal++
	n, ok := w.external(i)
	if !ok {
		w.PutBytes(b)
		return
	}
	if n < 0 {
		w.fail(fmt.Errorf("weir/protocol: negative length %d for external field %d", n, i))
		n = 0
	}
	w.PutInt32(n)
	w.gaps = append(w.gaps, Gap{Offset: len(w.buf), Index: i, Length: n})
}

// SegmentedFrame is an encoded response frame with gaps where external bytes
// go: the frame on the wire is Buf with each gap's bytes inserted at its
// Offset. The size field at the start of Buf counts the gaps' bytes. Its
// zero value is ready to use, and EncodeResponse reuses its storage.
type SegmentedFrame struct {
	Buf  []byte // the encoded frame, external bytes left out
	Gaps []Gap  // in increasing Offset order

	w Writer // kept here so that encoding through an interface does not allocate one
}

// EncodeResponse encodes a whole response frame (size, correlation id, body)
// into f, replacing its contents, leaving out the external fields for which
// external returns ok.
func (f *SegmentedFrame) EncodeResponse(correlationID int32, resp Response, external ExternalFunc) error {
	w := &f.w
	*w = Writer{buf: f.Buf[:0], gaps: f.Gaps[:0], external: external}
	start := w.beginFrame()
	h := ResponseHeader{CorrelationID: correlationID}
	h.Encode(w)
	resp.Encode(w)
	var total int64
	for _, g := range w.gaps {
		total += int64(g.Length)
	}
	f.Buf, f.Gaps = w.buf, w.gaps
	err := w.endFrame(start, total)
	*w = Writer{} // hold no references to the caller's buffers or ExternalFunc
	if err != nil {
		return fmt.Errorf("encode %v response: %w", resp.Key(), err)
	}
	return nil
}

// Size returns the number of bytes of the frame on the wire: len(Buf) plus
// the gaps' lengths.
func (f *SegmentedFrame) Size() int64 {
	n := int64(len(f.Buf))
	for _, g := range f.Gaps {
		n += int64(g.Length)
	}
	return n
}

// FillFunc writes exactly g.Length external bytes for gap g to w and returns
// how many it wrote. w is the writer given to Send, unwrapped, so a
// *net.TCPConn stays one (and io.Copy from an *io.LimitedReader of an
// *os.File uses sendfile).
type FillFunc func(w io.Writer, g Gap) (int64, error)

// Send writes the frame to w: the encoded bytes, calling fill for each gap
// in order. It returns the bytes written, and ErrExternalLength if fill
// wrote a different number of bytes than a gap's length (the stream is then
// out of step with the frame's size: close the connection).
func (f *SegmentedFrame) Send(w io.Writer, fill FillFunc) (int64, error) {
	var written int64
	off := 0
	for _, g := range f.Gaps {
		if g.Offset > off {
			n, err := w.Write(f.Buf[off:g.Offset])
			written += int64(n)
			if err != nil {
				return written, err
			}
		}
		off = g.Offset
		n, err := fill(w, g)
		written += n
		if err != nil {
			return written, err
		}
		if n != int64(g.Length) {
			return written, fmt.Errorf("%w: gap %d wrote %d bytes, want %d", ErrExternalLength, g.Index, n, g.Length)
		}
	}
	if off < len(f.Buf) {
		n, err := w.Write(f.Buf[off:])
		written += int64(n)
		if err != nil {
			return written, err
		}
	}
	return written, nil
}
