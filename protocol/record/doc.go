// Package record is weir's record batch format: the bytes a client builds, the
// broker checks and stores unchanged, and consumers parse. One produce batch
// is one log entry: the batch is the entry's payload, and the log frame around
// it carries the entry's base record offset and record count, so the batch
// holds no absolute offsets. A record's offset is the base offset plus its
// offset delta (its position in the batch).
//
// Producers build batches with a Builder:
//
//	b := record.NewBuilder(record.CodecZstd)
//	b.SetProducer(id, epoch, sequence) // idempotent producers only
//	for _, r := range pending {
//		b.Append(r)
//	}
//	batch, err := b.Build() // valid until the next Append, Build or Reset
//	...
//	b.Reset()
//
// The broker reads the header of every produce with ParseHeader (no
// decompression: it needs the count, the timestamps and the producer fields)
// and checks the records with Validate. Consumers read records with a Reader
// (or Decode):
//
//	r, err := record.NewReader(batch)
//	for {
//		rec, err := r.Next()
//		if err == io.EOF {
//			break
//		}
//		offset := baseOffset + uint64(rec.OffsetDelta)
//		...
//	}
//
// # Batch
//
// All integers in the header are big-endian.
//
//	batch header (48 bytes) + records section, part of the wire format; never change:
//	+--------+--------+---------+------------+----------+--------+-----------+-----------+
//	| length | crc    | version | attributes | reserved | count  | first ts  | max ts    |
//	| u32    | u32    | u8 = 0  | u8         | u16 = 0  | u32    | i64 (ms)  | i64 (ms)  |
//	+--------+--------+---------+------------+----------+--------+-----------+-----------+
//	 0        4        8         9            10         12       16          24
//	+-------------+----------------+----------+---------------+-----------------+
//	| producer id | producer epoch | reserved | base sequence | records ...     |
//	| i64         | i16            | u16 = 0  | i32           | (maybe compressed)
//	+-------------+----------------+----------+---------------+-----------------+
//	 32            40               42         44              48
//
//	length      counts the bytes after the length field: 44 + len(records).
//	crc         the CRC32-C (Castagnoli) of bytes [8, 4+length).
//	attributes  bits 0-2: the codec of the records section (0 none, 1 zstd,
//	            2 lz4, 3 snappy); bits 3-7 are 0.
//	count       the number of records, at least 1 and at most length.
//	first ts    the first record's timestamp, in ms since the Unix epoch.
//	max ts      the largest record timestamp.
//	producer    id, epoch and base sequence (the sequence number of the first
//	            record) of an idempotent producer; all three -1 if none.
//
// The records section holds the records back to back, compressed as one unit:
//
//	codec 0, none    the records as they are.
//	codec 1, zstd    one or more Zstandard frames (the builder writes one,
//	                 with its content size and without a checksum).
//	codec 2, lz4     the uncompressed size (u32, big-endian), then one LZ4
//	                 block (the block format, not the LZ4 frame format).
//	codec 3, snappy  one Snappy block (the block format, not the framing
//	                 format), which starts with the uncompressed size as a
//	                 uvarint. S2 extensions are refused.
//
// # Record
//
// Records follow Kafka's v2 record layout. varint is a zig-zag signed
// variable-length integer and uvarint an unsigned one, as in encoding/binary.
//
//	record, part of the wire format; never change:
//	+--------+------------+----------+--------------+---------+-----+-----------+-------+---------+-----------+
//	| length | attributes | ts delta | offset delta | key len | key | value len | value | headers | header... |
//	| varint | i8 = 0     | varint   | uvarint      | varint  |     | varint    |       | uvarint |           |
//	+--------+------------+----------+--------------+---------+-----+-----------+-------+---------+-----------+
//
//	header, part of the wire format; never change:
//	+---------+-----+-----------+-------+
//	| key len | key | value len | value |
//	| uvarint |     | varint    |       |
//	+---------+-----+-----------+-------+
//
//	length        the bytes of the record after the length field.
//	ts delta      the record's timestamp minus the batch's first timestamp;
//	              0 for the first record, negative for older records.
//	offset delta  the record's position in the batch: 0, 1, ..., count-1.
//	key, value    length -1 is nil (a nil value is a tombstone); 0 is empty.
//	headers       the number of headers; header keys are strings, never nil.
//
// # Limits and checks
//
// A batch comes from the network, so nothing in it is trusted. ParseHeader
// checks the header and the checksum. A Reader (and Decode and Validate)
// also refuses a records section that decompresses past its
// MaxUncompressedSize (64 MiB by default), checking the size the section
// declares before allocating, and requires exactly count records, with dense
// offset deltas, timestamps that agree with the header, and no bytes left
// over. Every failure wraps one of the errors in errors.go, and says what is
// wrong and where.
package record
