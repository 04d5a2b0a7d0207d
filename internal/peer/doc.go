// Package peer carries every Raft group of a node over one peer listener.
//
// A weir node hosts one hashicorp/raft group per partition replica, plus the
// metadata group: hundreds or thousands of groups. Giving each group its own
// TCP connections would cost, for 1,000 partitions on three nodes, thousands
// of sockets, thousands of handshakes after every restart, and a kernel
// buffer pair per socket. Instead a node has one [Mux]: one TCP listener,
// and one yamux session per remote node and direction, so a node pair is
// joined by exactly two TCP connections (one dialed by each side) whatever
// the number of groups. Every Raft connection is a yamux stream; an idle
// stream costs a few hundred bytes and no system call.
//
// Usage:
//
//	m, err := peer.Listen("0.0.0.0:7421", peer.Options{Advertise: "node1:7421"})
//	...
//	trans, err := peer.NewTransport(m, "orders-3", peer.TransportConfig{Logger: log})
//	r, err := raft.NewRaft(conf, fsm, logs, stable, snaps, trans)
//	...
//	r.Shutdown().Error()
//	trans.Close() // unregisters the group
//	m.Close()     // after every group
//
// # Stream header
//
// Every stream a Mux opens starts with a header naming the group it is for.
// The accepting Mux reads it (under Options.HeaderTimeout) and hands the rest
// of the stream to that group's [Transport] (or [raft.StreamLayer]):
//
//	+------+------+------+------+--------+--------+------------------+
//	| 'W'  | 'P'  | 'R'  | '2'  | length (u16 BE) | group id         |
//	+------+------+------+------+--------+--------+------------------+
//	  0      1      2      3      4        5        6 .. 6+length-1
//
// The magic doubles as the version of everything on the stream: a new
// layout, of the header or of what follows it, gets a new magic ("WPR1"
// carried hashicorp/raft's msgpack RPCs; a node of that build rejects
// "WPR2" streams at the header, and this one "WPR1"). The
// length is 1..255 ([MaxGroupIDLen]); the id is opaque bytes. A stream with
// a bad magic, an empty or oversized id, or a header that does not arrive in
// time is closed and logged; the Mux keeps serving its other streams.
//
// # Groups that are not (yet) registered
//
// A stream for a group that has no registered layer on the accepting node is
// closed at once, and what the peer still writes on it is read and dropped
// (a write larger than the stream window would otherwise wait for its
// deadline). That is the normal case for a moment when a replica is being
// created, or a restarted node has not opened it yet: the leader's RPC fails
// and is retried ([Transport] retries a leader's appends within
// HeartbeatTimeout/2), and the first retry after [Mux.StreamLayer] succeeds
// gets through. Nothing is buffered for groups that do not exist.
//
// # Coalesced heartbeats
//
// A [Transport] does not send Raft's heartbeats on the group's own streams.
// It queues each for its target node; one goroutine per remote node sends
// what is queued as one request, at most every Options.HeartbeatInterval,
// on a stream of the reserved group "\x00heartbeats/2" (group ids starting
// with a zero byte are refused to Raft groups). The receiving Mux hands each
// heartbeat to its group's Raft heartbeat handler and answers all of them in
// one response, in request order. A heartbeat's caller gets the answer to a
// request sent after it called, so a leader's lease still measures its
// followers. A handler not done within 20 ms (a follower persisting a new
// term) is answered "follower busy" and finishes in the background.
//
// Frames, each way: a u32 big-endian body length (1..4 MiB), then the body.
// Integers are unsigned varints; bytes are a varint length and the bytes.
//
//	request  = count (1..8192), count × heartbeat
//	heartbeat = group (bytes), term, protocol version, id (bytes),
//	            addr (bytes), leader (bytes), hint
//	hint     = 0 (none)
//	         | commit index, entry index (>= commit index),
//	           entry term (1..term)
//	response = count (the request's), count × answer
//	answer   = 0x00, term, last log index, flags (u8: 1 success,
//	           2 no retry backoff), the follower's commit index
//	         | 0x01, error message (bytes, not empty)
//
// A hint tells a follower that everything up to its commit index is
// committed, and that it holds the entry (index, term) it names; the
// follower hands Raft the empty append that says so (see commithint.go).
// Version 1 ("\x00heartbeats/1") had neither hints nor commit indexes; a
// node of this build and one of an earlier build do not heartbeat each
// other.
//
// A frame that does not decode closes the stream.
//
// # Raft RPCs
//
// A [Transport] carries the group's other RPCs on the group's own streams:
// a client writes a request frame and reads its response frame, then
// pools the stream (at most TransportConfig.MaxPool per peer, closed after
// IdleTimeout unused) for its next RPC. A pooled stream may have died
// while idle (the peer's group reopened): an RPC that fails on one, other
// than by a timeout, is sent once more on a new stream, since Raft does
// not retry votes. An AppendEntries pipeline has a
// stream of its own with at most two requests unanswered; an
// InstallSnapshot too, closed after it. The server side answers a stream's
// requests one at a time, in order. Each way, a frame is
//
//	+------+------+------+------+------+--------------------------+
//	| type | body length (u32 BE)      | body                     |
//	+------+------+------+------+------+--------------------------+
//	  0      1 .. 4                      5 .. 5+length-1
//
// The length is at most TransportConfig.MaxFrameBytes (128 MiB by
// default), checked before reading the body. Request types: 1
// AppendEntries, 2 RequestVote, 3 InstallSnapshot, 4 TimeoutNow, 5
// RequestPreVote; a response's type is its request's with the high bit
// set (0x81 .. 0x85). As for heartbeats, integers are unsigned varints, ints (the
// version fields, the snapshot size) zigzag varints, bytes a varint length
// and the bytes; flags is one byte whose unnamed bits must be zero.
//
//	header    = protocol version (int), id (bytes), addr (bytes)
//	AppendEntries request = header, term, leader (bytes), prev log entry,
//	            prev log term, leader commit index, count,
//	            count × entry, then the data area: each entry's data,
//	            then its extensions, in entry order, to the end of the body
//	entry     = index, term, type (u8), flags (1: appended at follows),
//	            [appended at (int, Unix nanoseconds)],
//	            data length, extensions length
//	RequestVote request = header, term, candidate (bytes), last log index,
//	            last log term, flags (1: leadership transfer)
//	RequestPreVote request = header, term, last log index, last log term
//	InstallSnapshot request = header, snapshot version (int), term,
//	            leader (bytes), last log index, last log term,
//	            peers (bytes), configuration (bytes), configuration index,
//	            size (int, >= 0); then, outside the frame, size bytes of
//	            snapshot before the response comes back
//	TimeoutNow request = header
//
//	response  = error (bytes; empty: none), then the response's fields,
//	            zero if there is an error:
//	AppendEntries = header, term, last log, flags (1 success,
//	            2 no retry backoff)
//	RequestVote = header, term, peers (bytes), flags (1 granted)
//	RequestPreVote = header, term, flags (1 granted)
//	InstallSnapshot = header, term, flags (1 success)
//	TimeoutNow = header
//
// The entries' data sits apart from their table so that a sender writes
// it straight from Raft's entries and a receiver's entries point into the
// one buffer it read the body into. An append that would exceed the
// limit carries fewer entries; Raft sends the rest next. A frame that does
// not decode (unknown type, bad length, bytes left over or missing) closes
// its stream, logged at warn; the group's other streams go on. Every
// request's I/O is bounded by TransportConfig.Timeout (InstallSnapshot's
// scaled by its size, one timeout per 256 KiB).
//
// # Concurrency
//
// A Mux runs one goroutine accepting TCP connections, one per yamux session
// accepting its streams, one short-lived goroutine per new stream while
// its header is read, one per heartbeat stream it serves and per remote it
// sends heartbeats to, one per heartbeat handed to a group, and one that
// closes the transports' idle pooled streams; yamux runs three per
// session. A Transport serves each stream it accepts in the goroutine
// that read the stream's header, and runs two per AppendEntries pipeline
// (one reads the answers, one hands them to Raft); nothing while idle.
// Close stops them all and returns after they have exited.
package peer
