// Package protocol is weir's wire format: frames, request and response
// headers, the request and response bodies of every API, and error codes.
// It does no I/O beyond reading and writing frames on a given io.Reader or
// io.Writer, and holds no broker or client policy. PROTOCOL.md at the
// repository root describes every byte; this package is its implementation.
//
// # Frames
//
// A connection carries length-prefixed frames, big-endian. A client sends
// request frames and the broker answers each with a response frame, in the
// order of the requests (except a Produce with acks 0, which gets none). A
// client may have many requests in flight and matches responses by their
// correlation id.
//
//	request frame:  size u32 | api_key i16 | api_version i16 | correlation_id i32 | client_id string | body
//	response frame: size u32 | correlation_id i32 | body
//
// # Broker side
//
//	buf := make([]byte, 0, 64<<10)
//	for {
//		frame, err := protocol.ReadFrame(conn, maxFrameSize, buf)
//		if err != nil {
//			return err // io.EOF, or ErrFrameTooLarge: close the connection
//		}
//		hdr, req, err := protocol.DecodeRequest(frame)
//		if err != nil {
//			return err // unknown API, unsupported version, malformed: close
//		}
//		resp := req.ResponseKind() // at the request's version
//		... // fill resp
//		out, err = protocol.AppendResponseFrame(out[:0], hdr.CorrelationID, resp)
//		...
//	}
//
// Byte fields of a decoded request (a produce's records) alias the frame, so
// a broker that hands them on must not reuse buf until they are done with.
//
// A fetch response's records are sent from the log's segment files with
// sendfile, never copied through the encoder: SegmentedFrame encodes
// everything else and leaves gaps for them (see segmented.go).
//
// # Client side
//
//	req := &protocol.MetadataRequest{Topics: []string{"orders"}}
//	out, err := protocol.AppendRequestFrame(nil, correlationID, "my-client", req)
//	... // write out; later, read the response frame
//	hdr, body, err := protocol.DecodeResponseHeader(frame)
//	resp := req.ResponseKind() // the request matching hdr.CorrelationID
//	err = resp.Decode(protocol.NewReader(body))
//
// Each error_code in a response converts to an error with ErrorForCode,
// which matches the sentinels (ErrNotLeader, ErrBackpressure, ...) with
// errors.Is and says whether the request may be retried.
//
// # Code generation
//
// The message types (messages_gen.go) are generated from messages.def by
// internal/gen, which also writes the message reference of PROTOCOL.md. The
// primitives they are built on (Writer, Reader) are hand-written in
// primitives.go. To add a field to an API, add it to messages.def with
// since:<n>, raise the API's max version, and run go generate; `make verify`
// fails if the generated files are stale.
package protocol

//go:generate go run ./internal/gen
