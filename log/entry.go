package log

// EntryType says whether an entry carries records.
// Part of the on-disk and wire format; never change the values.
type EntryType uint8

const (
	// TypeData entries carry a record batch and a record count.
	TypeData EntryType = 0
	// TypeControl entries (Raft no-ops, configuration changes, ...) carry no
	// records; readers of records skip them.
	TypeControl EntryType = 1
)

func (t EntryType) String() string {
	switch t {
	case TypeData:
		return "data"
	case TypeControl:
		return "control"
	default:
		return "unknown"
	}
}

// Entry is one entry of the log.
type Entry struct {
	// Index is the entry's position in the log: dense, each the previous
	// plus one. Set by the caller (Raft assigns it); Append checks it.
	Index uint64
	// Term is the Raft term the entry was written in.
	Term uint64
	// Type is data or control.
	Type EntryType
	// BaseOffset is the offset of the entry's first record. Append sets it:
	// it is the previous entry's BaseOffset plus its Count.
	BaseOffset uint64
	// Count is the number of records in the payload; 0 for control entries.
	Count uint32
	// Timestamp is the largest timestamp of the entry's records, in
	// milliseconds since the Unix epoch.
	Timestamp int64
	// Payload is opaque to the log (a record batch for data entries).
	Payload []byte
}

// NextOffset is the offset of the first record after this entry.
func (e *Entry) NextOffset() uint64 { return e.BaseOffset + uint64(e.Count) }
