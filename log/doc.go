// Package log is weir's segmented, append-only, crash-safe log: the storage
// every partition (and so every Raft group) is built on.
//
// A log is a directory of segments. A segment is two files named by the index
// of the first entry they hold, zero-padded to 20 digits so they sort:
//
//	00000000000000000001.log     the store: a segment header, then frames
//	00000000000000000001.index   the index: one fixed-width slot per entry
//
// # Entries
//
// An entry has a dense 64-bit index (each one is the previous plus one), a
// Raft term, a type (data or control), a base record offset, a record count,
// a timestamp (the largest record timestamp, in ms since the Unix epoch) and
// an opaque payload (a record batch, encoded by the layer above). The log
// computes base offsets on append, as the previous entry's base offset plus
// its record count, so offsets are a pure function of the entry sequence and
// every replica that holds the same entries computes the same offsets.
// Control entries carry no records.
//
// # Store file
//
// The store starts with a 40-byte segment header, then holds frames back to
// back. All integers are big-endian (network order), because a frame is also
// what a fetch response carries: the broker sends ranges of the store file
// with sendfile, unchanged.
//
//	segment header (40 bytes), part of the on-disk format; never change:
//	+--------+---------+----------+------------+------------+-----------+--------+----------+
//	| magic  | version | reserved | base index | base offset| created at| crc    | reserved |
//	| "WLOG" | u8 = 1  | 3 bytes  | u64        | u64        | i64 (ms)  | u32    | u32      |
//	+--------+---------+----------+------------+------------+-----------+--------+----------+
//	 0        4         5          8            16           24          32       36
//	crc is the CRC32-C of bytes [0, 32).
//
//	frame (48-byte header + payload), part of the wire format; never change:
//	+--------+--------+---------+------+----------+-------+-------+-------+-------------+-----------+---------+
//	| length | crc    | version | type | reserved | count | index | term  | base offset | timestamp | payload |
//	| u32    | u32    | u8 = 0  | u8   | u16      | u32   | u64   | u64   | u64         | i64 (ms)  | ...     |
//	+--------+--------+---------+------+----------+-------+-------+-------+-------------+-----------+---------+
//	 0        4        8         9      10         12      16      24      32            40          48
//	length counts the bytes after the length field: 44 + len(payload).
//	crc is the CRC32-C (Castagnoli) of bytes [8, 4+length): header and payload.
//	type is 0 for data, 1 for control; count is 0 for control entries.
//
// # Index file
//
// The index has one 32-byte slot per entry, so the slot of entry i is at
// (i - base index) * 32: lookup by index is O(1). Base offsets and running
// maximum timestamps never decrease along the log, so lookups by record
// offset and by timestamp are binary searches over the same slots.
//
//	index slot (32 bytes), part of the on-disk format; never change:
//	+----------+--------+-------------+---------------+-------+--------+
//	| position | size   | base offset | max timestamp | count | crc    |
//	| u32      | u32    | u64         | i64 (ms)      | u32   | u32    |
//	+----------+--------+-------------+---------------+-------+--------+
//	 0          4        8             16              24      28
//	position and size locate the frame in the store; max timestamp is the
//	largest entry timestamp in the log up to and including this entry;
//	crc is the CRC32-C of bytes [0, 28), so a zeroed or torn slot never
//	passes for a written one.
//
// The index of the active (last) segment is a sparse file pre-allocated to its
// maximum size and mmap'd; appends write slots through the mapping without a
// system call. When a segment is sealed (rolled) or the log is closed, the
// index is truncated to its real size. Nothing relies on that having
// happened: the index is derived data, checked against the store on open.
//
// # Recovery
//
// Open trusts a sealed segment whose index size matches its entries and whose
// last slot ends exactly at the end of the store, so opening a large log reads
// the last slot of each sealed segment, not the data. The last segment is
// checked slot by slot (the checksums, the chain of positions and offsets) and
// its last indexed frame is verified against the store; then the store is
// scanned past that point and every whole, valid frame is indexed. The first
// short or invalid frame there is a torn tail (a write cut by a crash): the
// store is truncated at it and the loss is logged. An index that is stale,
// garbled or zeroed is rebuilt from the store the same way.
//
// A frame whose checksum fails anywhere else is corruption: reads return an
// error matching ErrCorrupt that names the file and the position, and the
// frame is never served as data.
//
// # Durability
//
// Append writes a batch of entries with one write call. With FsyncAlways it
// returns only after fdatasync of the store; the index needs no fsync because
// it is rebuilt from the store when it disagrees. FsyncInterval syncs in the
// background; FsyncNever leaves it to the kernel (and to Close).
//
// # Concurrency
//
// One writer (Append, TruncateAfter, DeleteBefore, ApplyRetention, Reset,
// Close) and many readers (Read, Reader, FileRange and the lookups) may run at
// once. Readers hold a reference on each segment they use, so a segment that
// retention deletes stays readable (its files unlinked, still open) until the
// last reader lets go of it.
package log
