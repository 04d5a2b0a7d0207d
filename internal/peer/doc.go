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
// # Concurrency
//
// A Mux runs one goroutine accepting TCP connections, one per yamux session
// accepting its streams, and one short-lived goroutine per new stream while
// its header is read; yamux runs three per session. Groups themselves add no
// goroutine here. Close stops them all and returns after they have exited.
package peer
