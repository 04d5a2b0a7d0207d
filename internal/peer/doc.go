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
// of the stream to that group's [raft.StreamLayer]:
//
//	+------+------+------+------+--------+--------+------------------+
//	| 'W'  | 'P'  | 'R'  | '1'  | length (u16 BE) | group id         |
//	+------+------+------+------+--------+--------+------------------+
//	  0      1      2      3      4        5        6 .. 6+length-1
//
// The magic doubles as the version: a new layout gets a new magic. The
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
// on a stream of the reserved group "\x00heartbeats/1" (group ids starting
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
//	            addr (bytes), leader (bytes)
//	response = count (the request's), count × answer
//	answer   = 0x00, term, last log index, flags (u8: 1 success,
//	           2 no retry backoff)
//	         | 0x01, error message (bytes, not empty)
//
// A frame that does not decode closes the stream. A node of an earlier
// version closes the stream at once (an unknown group); heartbeats to it
// then go one by one as Raft sends them, for 30 s before it is asked again.
//
// # Concurrency
//
// A Mux runs one goroutine accepting TCP connections, one per yamux session
// accepting its streams, one short-lived goroutine per new stream while
// its header is read, one per heartbeat stream it serves and per remote it
// sends heartbeats to, and one per heartbeat handed to a group; yamux runs
// three per session. Groups themselves add no
// goroutine here. Close stops them all and returns after they have exited.
package peer
