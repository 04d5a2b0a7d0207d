package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"weir/internal/durable"
)

// Segment header layout; see the package doc. Part of the on-disk format.
const (
	segmentHeaderSize = 40
	segmentVersion    = 1
	storeSuffix       = ".log"
	indexSuffix       = ".index"
	tmpSuffix         = ".tmp"
)

var segmentMagic = [4]byte{'W', 'L', 'O', 'G'}

// segmentHeader is the first thing in every store file. It makes an empty
// segment self-describing: after a Reset or a truncation the next entry's
// index and offset survive a restart.
type segmentHeader struct {
	baseIndex  uint64
	baseOffset uint64
	createdAt  int64 // ms since the Unix epoch; segment age is measured from it
}

func (h *segmentHeader) encode() []byte {
	b := make([]byte, segmentHeaderSize)
	copy(b[0:4], segmentMagic[:])
	b[4] = segmentVersion
	binary.BigEndian.PutUint64(b[8:16], h.baseIndex)
	binary.BigEndian.PutUint64(b[16:24], h.baseOffset)
	binary.BigEndian.PutUint64(b[24:32], uint64(h.createdAt))
	binary.BigEndian.PutUint32(b[32:36], crc32.Checksum(b[:32], crcTable))
	return b
}

// decodeSegmentHeader checks magic, then version, then checksum.
func decodeSegmentHeader(b []byte) (segmentHeader, error) {
	if len(b) < segmentHeaderSize {
		return segmentHeader{}, errors.New("short segment header")
	}
	if [4]byte(b[0:4]) != segmentMagic {
		return segmentHeader{}, errors.New("bad magic")
	}
	if b[4] != segmentVersion {
		return segmentHeader{}, fmt.Errorf("unknown segment version %d", b[4])
	}
	if want, got := binary.BigEndian.Uint32(b[32:36]), crc32.Checksum(b[:32], crcTable); want != got {
		return segmentHeader{}, fmt.Errorf("header checksum mismatch (want %08x, got %08x)", want, got)
	}
	return segmentHeader{
		baseIndex:  binary.BigEndian.Uint64(b[8:16]),
		baseOffset: binary.BigEndian.Uint64(b[16:24]),
		createdAt:  int64(binary.BigEndian.Uint64(b[24:32])),
	}, nil
}

// segmentName is the file name stem of the segment whose first index is base.
func segmentName(base uint64) string { return fmt.Sprintf("%020d", base) }

// parseSegmentName returns the base index of a store or index file name.
func parseSegmentName(name, suffix string) (uint64, bool) {
	stem, ok := strings.CutSuffix(name, suffix)
	if !ok || len(stem) != 20 {
		return 0, false
	}
	base, err := strconv.ParseUint(stem, 10, 64)
	return base, err == nil
}

// segment is one store file and its index.
//
// The writer publishes appended entries by storing size, then count; readers
// load count, then size, and touch only the first count slots and the first
// size bytes of the store.
type segment struct {
	segmentHeader
	storePath string
	store     *os.File
	index     *index

	count  atomic.Int64 // published entries
	size   atomic.Int64 // store bytes of the published entries, header included
	sealed atomic.Bool  // no more appends: readers move on to the next segment
	// truncations counts truncateAfter calls: bytes a Reader read ahead
	// past the commit point may since have been cut and written again.
	truncations atomic.Uint64

	// refs counts the log's reference (while the segment is in the log) and
	// each reader's. The files are closed when it drops to zero, so a reader
	// finishes its read of a segment that retention has deleted.
	refs atomic.Int32
}

func segmentPaths(dir string, base uint64) (store, index string) {
	stem := filepath.Join(dir, segmentName(base))
	return stem + storeSuffix, stem + indexSuffix
}

// createSegment makes a new, empty, active segment. The store file appears
// atomically (written under a temporary name, then renamed), so a store file
// always has a whole header.
func createSegment(dir string, h segmentHeader, opts *Options) (*segment, error) {
	storePath, indexPath := segmentPaths(dir, h.baseIndex)
	tmp := storePath + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create segment: %w", err)
	}
	fail := func(err error) (*segment, error) {
		f.Close()
		os.Remove(tmp)
		return nil, err
	}
	if _, err := f.Write(h.encode()); err != nil {
		return fail(fmt.Errorf("write segment header %s: %w", tmp, err))
	}
	// Synced whatever the policy (once per segment): after a power cut the
	// store either is missing or has its whole header.
	if err := fdatasync(f); err != nil {
		return fail(fmt.Errorf("sync segment header %s: %w", tmp, err))
	}
	if err := os.Rename(tmp, storePath); err != nil {
		return fail(fmt.Errorf("create segment: %w", err))
	}
	// A stale index of a segment that was removed under the same name must
	// not be taken for this one's: start it empty.
	idx, err := openIndex(indexPath, 0)
	if err == nil {
		err = idx.close()
	}
	if err == nil {
		idx, err = openIndex(indexPath, opts.indexCapacity()*slotSize)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	if opts.Fsync != FsyncNever {
		if err := durable.SyncDir(dir); err != nil {
			f.Close()
			idx.close()
			return nil, err
		}
	}
	s := &segment{segmentHeader: h, storePath: storePath, store: f, index: idx}
	s.size.Store(segmentHeaderSize)
	s.refs.Store(1)
	return s, nil
}

// lastIndex is the index of the last published entry (baseIndex-1 if none).
func (s *segment) lastIndex() uint64 { return s.baseIndex + uint64(s.count.Load()) - 1 }

// slot returns the slot of entry i of the log. REQUIRES: the log's mu held
// (either way) and i within the published entries of s.
func (s *segment) slot(i uint64) slot {
	sl, _ := s.index.read(int64(i - s.baseIndex))
	return sl
}

// nextOffset is the offset after the segment's last published record.
// REQUIRES: the log's mu held (either way).
func (s *segment) nextOffset() uint64 {
	n := s.count.Load()
	if n == 0 {
		return s.baseOffset
	}
	sl, _ := s.index.read(n - 1)
	return sl.nextOffset()
}

// maxTimestamp is the running maximum timestamp at the segment's end, or
// prev if it has no entries. REQUIRES: the log's mu held (either way).
func (s *segment) maxTimestamp(prev int64) int64 {
	n := s.count.Load()
	if n == 0 {
		return prev
	}
	sl, _ := s.index.read(n - 1)
	return sl.maxTimestamp
}

// acquire takes a reader's reference. REQUIRES: the log's mu held (either
// way) and s in the log, so the log's own reference keeps refs above zero.
func (s *segment) acquire() { s.refs.Add(1) }

// release drops a reference, closing the files with the last one.
func (s *segment) release() error {
	if s.refs.Add(-1) > 0 {
		return nil
	}
	err := s.index.close()
	if cerr := s.store.Close(); err == nil {
		err = cerr
	}
	return err
}

// seal stops appends to s and shrinks its index file to the entries it has.
// With durable policies the store and index are synced first, so a sealed
// segment is trusted on the next open.
func (s *segment) seal(opts *Options) error {
	if opts.Fsync != FsyncNever {
		if err := fdatasync(s.store); err != nil {
			return fmt.Errorf("sync %s: %w", s.storePath, err)
		}
		if err := s.index.sync(); err != nil {
			return err
		}
	}
	if err := s.index.truncate(s.count.Load()); err != nil {
		return err
	}
	if opts.Fsync != FsyncNever {
		if err := fdatasync(s.index.file); err != nil {
			return fmt.Errorf("sync %s: %w", s.index.path, err)
		}
	}
	s.sealed.Store(true)
	return nil
}

// remove unlinks the segment's files and drops the log's reference. Readers
// that hold the segment keep reading it. REQUIRES: the log's mu held for
// writing, and s already taken out of the log's list.
func (s *segment) remove() error {
	s.sealed.Store(true)
	err := os.Remove(s.index.path)
	if rerr := os.Remove(s.storePath); err == nil {
		err = rerr
	}
	if rerr := s.release(); err == nil {
		err = rerr
	}
	return err
}

// truncateAfter keeps the segment's first keep entries and drops the rest.
// REQUIRES: the log's mu held for writing; keep < count.
func (s *segment) truncateAfter(keep int64, opts *Options) error {
	size := int64(segmentHeaderSize)
	if keep > 0 {
		sl, _ := s.index.read(keep - 1)
		size = sl.end()
	}
	old := s.count.Load()
	s.truncations.Add(1)
	s.count.Store(keep)
	s.size.Store(size)
	if err := s.store.Truncate(size); err != nil {
		return fmt.Errorf("truncate %s: %w", s.storePath, err)
	}
	if s.sealed.Load() {
		if err := s.index.truncate(keep); err != nil {
			return err
		}
	} else {
		s.index.clear(keep, old)
	}
	if opts.Fsync == FsyncAlways {
		if err := fdatasync(s.store); err != nil {
			return fmt.Errorf("sync %s: %w", s.storePath, err)
		}
	}
	return nil
}
