package record

// Header is a record header: an application-defined key and value. A record
// may carry several headers with the same key; their order is kept.
type Header struct {
	// Key names the header. It may be empty.
	Key string
	// Value is the header's value. Nil and empty are distinct: nil is
	// encoded as length -1.
	Value []byte
}

// Record is one record of a batch.
//
// Records that a Reader returns alias its buffers (or the batch itself when
// it is uncompressed): copy what must outlive the Reader's next Reset.
type Record struct {
	// Key is the record's key. Nil and empty are distinct: nil is encoded
	// as length -1.
	Key []byte
	// Value is the record's value; nil is a tombstone.
	Value []byte
	// Headers are the record's headers, in order; nil when there are none.
	Headers []Header
	// Timestamp is in ms since the Unix epoch.
	Timestamp int64
	// OffsetDelta is the record's position in its batch, filled in by the
	// Reader: the record's offset is the log entry's base offset plus
	// OffsetDelta. Builder.Append ignores it.
	OffsetDelta uint32
}
