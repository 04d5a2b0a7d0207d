package log

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"

	"github.com/tysonmote/gommap"
)

// Index slot layout; see the package doc. Part of the on-disk format.
const slotSize = 32

// slot is one decoded index slot.
type slot struct {
	pos          uint32 // frame position in the store
	size         uint32 // frame size
	baseOffset   uint64
	maxTimestamp int64 // running maximum over the log up to this entry
	count        uint32
}

func (s slot) end() int64         { return int64(s.pos) + int64(s.size) }
func (s slot) nextOffset() uint64 { return s.baseOffset + uint64(s.count) }

// index is a segment's mmap'd index file.
//
// The mapping covers the file as it was when mapped. Slots past the
// published entry count of the segment are never read, so the file may be
// truncated below the mapping (on seal or truncation) while readers use it.
type index struct {
	path string
	file *os.File
	mmap gommap.MMap // nil when the file was empty when mapped
}

// openIndex opens (creating if needed) the index file at path, sets its size
// to size bytes if size >= 0, and maps it.
func openIndex(path string, size int64) (*index, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open index: %w", err)
	}
	idx := &index{path: path, file: f}
	if size >= 0 {
		if err := f.Truncate(size); err != nil {
			f.Close()
			return nil, fmt.Errorf("size index %s: %w", path, err)
		}
	}
	if err := idx.mapFile(); err != nil {
		f.Close()
		return nil, err
	}
	return idx, nil
}

func (x *index) mapFile() error {
	fi, err := x.file.Stat()
	if err != nil {
		return fmt.Errorf("stat index: %w", err)
	}
	if fi.Size() == 0 {
		x.mmap = nil
		return nil
	}
	m, err := gommap.Map(x.file.Fd(), gommap.PROT_READ|gommap.PROT_WRITE, gommap.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap index %s: %w", x.path, err)
	}
	x.mmap = m
	return nil
}

// capacity is the number of slots the mapping holds.
func (x *index) capacity() int64 { return int64(len(x.mmap)) / slotSize }

// read decodes slot i and reports whether its checksum holds.
// REQUIRES: i < capacity.
func (x *index) read(i int64) (slot, bool) {
	b := x.mmap[i*slotSize : (i+1)*slotSize]
	s := slot{
		pos:          binary.BigEndian.Uint32(b[0:4]),
		size:         binary.BigEndian.Uint32(b[4:8]),
		baseOffset:   binary.BigEndian.Uint64(b[8:16]),
		maxTimestamp: int64(binary.BigEndian.Uint64(b[16:24])),
		count:        binary.BigEndian.Uint32(b[24:28]),
	}
	return s, crc32.Checksum(b[:28], crcTable) == binary.BigEndian.Uint32(b[28:32])
}

// write encodes s into slot i.
// REQUIRES: i < capacity.
func (x *index) write(i int64, s slot) {
	b := x.mmap[i*slotSize : (i+1)*slotSize]
	binary.BigEndian.PutUint32(b[0:4], s.pos)
	binary.BigEndian.PutUint32(b[4:8], s.size)
	binary.BigEndian.PutUint64(b[8:16], s.baseOffset)
	binary.BigEndian.PutUint64(b[16:24], uint64(s.maxTimestamp))
	binary.BigEndian.PutUint32(b[24:28], s.count)
	binary.BigEndian.PutUint32(b[28:32], crc32.Checksum(b[:28], crcTable))
}

// clear zeroes slots [from, to) so they can never be mistaken for written
// ones after a crash.
func (x *index) clear(from, to int64) {
	clear(x.mmap[from*slotSize : to*slotSize])
}

// sync flushes the mapping's dirty pages and the file.
func (x *index) sync() error {
	if x.mmap != nil {
		if err := x.mmap.Sync(gommap.MS_SYNC); err != nil {
			return fmt.Errorf("msync index %s: %w", x.path, err)
		}
	}
	return nil
}

// truncate sets the file size to n slots. The mapping is left as it is; see
// the type comment.
func (x *index) truncate(n int64) error {
	if err := x.file.Truncate(n * slotSize); err != nil {
		return fmt.Errorf("truncate index %s: %w", x.path, err)
	}
	return nil
}

// close unmaps and closes the file.
func (x *index) close() error {
	var err error
	if x.mmap != nil {
		err = x.mmap.UnsafeUnmap()
		x.mmap = nil
	}
	if cerr := x.file.Close(); err == nil {
		err = cerr
	}
	return err
}
