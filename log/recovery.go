package log

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
)

// expectation is what the chain of entries says the next frame must be.
type expectation struct {
	pos          int64  // store position of the next frame
	index        uint64 // its entry index
	offset       uint64 // its base offset
	maxTimestamp int64  // running maximum timestamp before it
}

func (x *expectation) advance(e *Entry, size int64) slot {
	if e.Timestamp > x.maxTimestamp {
		x.maxTimestamp = e.Timestamp
	}
	sl := slot{
		pos:          uint32(x.pos),
		size:         uint32(size),
		baseOffset:   x.offset,
		maxTimestamp: x.maxTimestamp,
		count:        e.Count,
	}
	x.pos += size
	x.index++
	x.offset += uint64(e.Count)
	return sl
}

// openSegment opens the segment whose store is named by base and recovers
// it: see "Recovery" in the package doc. prevMaxTimestamp is the running
// maximum timestamp at the end of the previous segment. The last segment is
// opened active (its index pre-allocated and writable); the others sealed.
func openSegment(dir string, base uint64, prevMaxTimestamp int64, last bool, opts *Options) (*segment, error) {
	storePath, indexPath := segmentPaths(dir, base)
	store, err := os.OpenFile(storePath, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open segment: %w", err)
	}
	s := &segment{storePath: storePath, store: store}
	s.refs.Store(1)
	if err := s.recover(indexPath, base, prevMaxTimestamp, last, opts); err != nil {
		if s.index != nil {
			s.index.close()
		}
		store.Close()
		return nil, err
	}
	return s, nil
}

func (s *segment) recover(indexPath string, base uint64, prevMaxTimestamp int64, last bool, opts *Options) error {
	fi, err := s.store.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", s.storePath, err)
	}
	storeSize := fi.Size()
	hb := make([]byte, segmentHeaderSize)
	if _, err := s.store.ReadAt(hb, 0); err != nil {
		return corruptf(s.storePath, 0, "reading segment header: %v", err)
	}
	h, err := decodeSegmentHeader(hb)
	if err != nil {
		return corruptf(s.storePath, 0, "%v", err)
	}
	if h.baseIndex != base {
		return corruptf(s.storePath, 0, "header base index %d does not match the file name", h.baseIndex)
	}
	s.segmentHeader = h

	if s.index, err = openIndex(indexPath, -1); err != nil {
		return err
	}
	start := expectation{pos: segmentHeaderSize, index: h.baseIndex, offset: h.baseOffset, maxTimestamp: prevMaxTimestamp}

	if !last {
		// A sealed segment is trusted when its index is exactly its entries
		// and the last one ends where the store ends.
		n := s.index.capacity()
		if fi, err := s.index.file.Stat(); err == nil && fi.Size() == n*slotSize && n > 0 {
			if sl, ok := s.index.read(n - 1); ok && sl.end() == storeSize {
				s.count.Store(n)
				s.size.Store(storeSize)
				s.sealed.Store(true)
				return nil
			}
		}
		opts.Logger.Warn("weir/log: rebuilding index of sealed segment", "file", indexPath)
	}

	// Find how far the index agrees with itself and the store, then verify
	// the store from there on.
	capacity := indexCapacityFor(storeSize, opts)
	if err := s.ensureIndexCapacity(capacity); err != nil {
		return err
	}
	n := s.consistentSlots(start, storeSize)
	for n > 0 {
		sl, _ := s.index.read(n - 1)
		if s.verifyFrame(sl, h.baseIndex+uint64(n-1)) == nil {
			break
		}
		n--
	}
	x := start
	if n > 0 {
		// The slot itself holds what follows it: its end, next offset and
		// running maximum timestamp.
		sl, _ := s.index.read(n - 1)
		x = expectation{pos: sl.end(), index: h.baseIndex + uint64(n), offset: sl.nextOffset(), maxTimestamp: sl.maxTimestamp}
	}
	n, tornAt, err := s.scanStore(n, x, storeSize)
	if err != nil {
		return err
	}
	if tornAt < storeSize {
		if !last {
			return corruptf(s.storePath, tornAt, "invalid frame in a sealed segment")
		}
		opts.Logger.Warn("weir/log: truncating torn tail", "file", s.storePath, "position", tornAt, "bytes", storeSize-tornAt)
		if err := s.store.Truncate(tornAt); err != nil {
			return fmt.Errorf("truncate torn tail of %s: %w", s.storePath, err)
		}
		if opts.Fsync != FsyncNever {
			if err := fdatasync(s.store); err != nil {
				return fmt.Errorf("sync %s: %w", s.storePath, err)
			}
		}
	}
	s.count.Store(n)
	s.size.Store(tornAt)

	// Drop whatever the index holds past the recovered entries: cut the file
	// there, then (for the active segment) grow it again as a sparse hole.
	if err := s.index.close(); err != nil {
		return err
	}
	size := n * slotSize
	if last {
		size = capacity * slotSize
	}
	idx, err := openIndex(indexPath, n*slotSize)
	if err == nil {
		err = idx.close()
	}
	if err == nil {
		idx, err = openIndex(indexPath, size)
	}
	s.index = idx
	if err != nil {
		return err
	}
	s.sealed.Store(!last)
	return nil
}

// ensureIndexCapacity grows the index file and its mapping to at least n
// slots, for recovery to write into.
func (s *segment) ensureIndexCapacity(n int64) error {
	if s.index.capacity() >= n {
		return nil
	}
	path := s.index.path
	if err := s.index.close(); err != nil {
		return err
	}
	idx, err := openIndex(path, n*slotSize)
	s.index = idx
	return err
}

// indexCapacityFor is the number of slots an active segment whose store has
// storeSize bytes needs: the configured capacity, or more if the store was
// written with a larger segment size.
func indexCapacityFor(storeSize int64, opts *Options) int64 {
	return max(opts.indexCapacity(), (storeSize-segmentHeaderSize)/frameHeaderSize+1)
}

// consistentSlots counts the slots from the first that have a valid
// checksum and continue the chain: each frame right after the previous one,
// inside the store, with the expected base offset and a running maximum
// timestamp that does not go down.
func (s *segment) consistentSlots(x expectation, storeSize int64) int64 {
	var n int64
	for ; n < s.index.capacity(); n++ {
		sl, ok := s.index.read(n)
		if !ok || int64(sl.pos) != x.pos || sl.size < frameHeaderSize || sl.end() > storeSize ||
			sl.baseOffset != x.offset || sl.maxTimestamp < x.maxTimestamp {
			break
		}
		x.pos = sl.end()
		x.offset = sl.nextOffset()
		x.maxTimestamp = sl.maxTimestamp
	}
	return n
}

// verifyFrame reads the frame a slot points to and checks it against the
// slot and the expected entry index.
func (s *segment) verifyFrame(sl slot, index uint64) error {
	buf := make([]byte, sl.size)
	if _, err := s.store.ReadAt(buf, int64(sl.pos)); err != nil {
		return err
	}
	e, n, err := DecodeFrame(buf)
	if err != nil {
		return err
	}
	// A stale slot can point at the start of a newer, shorter frame of the
	// same entry (after a truncation and rewrite): the size must match too.
	if n != int(sl.size) || e.Index != index || e.BaseOffset != sl.baseOffset || e.Count != sl.count {
		return errors.New("frame does not match its index slot")
	}
	return nil
}

// scanStore reads frames from x.pos to the end of the store, writing a slot
// for each valid one from slot n on. It stops at the first frame that is
// short or invalid and returns the number of slots and where it stopped.
func (s *segment) scanStore(n int64, x expectation, storeSize int64) (int64, int64, error) {
	// A read buffer no larger than what is left to scan: most tails are short.
	bufSize := int(min(1<<20, max(storeSize-x.pos, 16)))
	r := bufio.NewReaderSize(io.NewSectionReader(s.store, x.pos, storeSize-x.pos), bufSize)
	header := make([]byte, frameHeaderSize)
	var frame []byte
	for x.pos < storeSize && n < s.index.capacity() {
		if _, err := io.ReadFull(r, header); err != nil {
			if isShortRead(err) {
				break // the store ends inside a header: torn
			}
			return 0, 0, fmt.Errorf("read %s: %w", s.storePath, err)
		}
		size := frameLength(header)
		// The length is checked against what the file holds before any
		// allocation, so a garbage length cannot ask for gigabytes.
		if size < frameHeaderSize || size > storeSize-x.pos {
			break
		}
		if int64(cap(frame)) < size {
			frame = make([]byte, size)
		}
		frame = frame[:size]
		copy(frame, header)
		if _, err := io.ReadFull(r, frame[frameHeaderSize:]); err != nil {
			if isShortRead(err) {
				break
			}
			return 0, 0, fmt.Errorf("read %s: %w", s.storePath, err)
		}
		e, _, err := DecodeFrame(frame)
		if err != nil || e.Index != x.index || e.BaseOffset != x.offset {
			break
		}
		s.index.write(n, x.advance(&e, size))
		n++
	}
	return n, x.pos, nil
}

// isShortRead tells a file that ends early (a torn write) from a failing one.
func isShortRead(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
