package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Codec is the compression codec of a batch's records section, stored in
// bits 0-2 of the attributes byte. The values are part of the wire format;
// never change them.
type Codec uint8

// Compression codecs. Part of the wire format; never change.
const (
	// CodecNone stores the records section as is.
	CodecNone Codec = 0
	// CodecZstd stores the records section as Zstandard frames
	// (github.com/klauspost/compress/zstd).
	CodecZstd Codec = 1
	// CodecLZ4 stores the records section as a 4-byte big-endian
	// uncompressed length followed by one LZ4 block (block format, not the
	// LZ4 frame format; github.com/pierrec/lz4/v4).
	CodecLZ4 Codec = 2
	// CodecSnappy stores the records section as one Snappy block (block
	// format, not the framing format), which starts with the uncompressed
	// length as a uvarint.
	CodecSnappy Codec = 3
)

// codecMask selects the codec bits of the attributes byte.
const codecMask = 0x07

var codecNames = [...]string{
	CodecNone:   "none",
	CodecZstd:   "zstd",
	CodecLZ4:    "lz4",
	CodecSnappy: "snappy",
}

// known reports whether c is a codec this package can read and write.
func (c Codec) known() bool { return int(c) < len(codecNames) }

// String returns the codec's name as ParseCodec accepts it: "none", "zstd",
// "lz4" or "snappy"; an unknown codec prints as "Codec(7)".
func (c Codec) String() string {
	if c.known() {
		return codecNames[c]
	}
	return fmt.Sprintf("Codec(%d)", uint8(c))
}

// ParseCodec returns the codec named s, ignoring case. The empty string is
// CodecNone. Any other name is an error wrapping ErrUnknownCodec.
func ParseCodec(s string) (Codec, error) {
	if s == "" {
		return CodecNone, nil
	}
	for c, name := range codecNames {
		if strings.EqualFold(s, name) {
			return Codec(c), nil
		}
	}
	return 0, fmt.Errorf("%w: %q (want none, zstd, lz4 or snappy)", ErrUnknownCodec, s)
}

// MarshalText implements encoding.TextMarshaler, so a Codec reads well in
// configuration files and JSON.
func (c Codec) MarshalText() ([]byte, error) {
	if !c.known() {
		return nil, fmt.Errorf("%w: %d", ErrUnknownCodec, uint8(c))
	}
	return []byte(codecNames[c]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseCodec.
func (c *Codec) UnmarshalText(text []byte) error {
	parsed, err := ParseCodec(string(text))
	if err != nil {
		return err
	}
	*c = parsed
	return nil
}

// Compressors are shared, never created per batch: one zstd encoder (its
// EncodeAll is safe for concurrent use and keeps its own pool of encoder
// states) and a pool of LZ4 hash tables. Snappy encoding keeps no state.
var (
	zstdEncoder = sync.OnceValue(func() *zstd.Encoder {
		enc, err := zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.SpeedDefault),
			// The batch CRC already covers the compressed bytes.
			zstd.WithEncoderCRC(false),
		)
		if err != nil {
			panic("weir/record: zstd encoder options: " + err.Error()) // constant options
		}
		return enc
	})

	lz4Compressors = sync.Pool{New: func() any { return new(lz4.Compressor) }}
)

// zstdDecoders holds one shared zstd decoder per memory limit
// (uint64 -> *zstd.Decoder, see zstdDecoderMemory). The limit is fixed when a
// decoder is created (WithDecoderMaxMemory), so readers with different
// limits need different decoders.
var zstdDecoders sync.Map

// zstdMinDecoderMemory is the least memory a zstd decoder is allowed, because
// the decoder also refuses frames whose window is larger than its limit, even
// when they hold little data, and encoders commonly use windows of up to
// 8 MiB (the zstd CLI up to level 19, this package's streaming encoder).
const zstdMinDecoderMemory = 8 << 20

// zstdDecoderMemory returns the memory limit of the decoder for readers
// limited to limit bytes: limit rounded up to a power of two, so that there
// are few distinct decoders, and at least zstdMinDecoderMemory. decompress
// checks the exact limit itself.
func zstdDecoderMemory(limit int) uint64 {
	return max(uint64(1)<<bits.Len64(uint64(limit-1)), zstdMinDecoderMemory)
}

// zstdDecoder returns the shared decoder for readers limited to limit bytes.
func zstdDecoder(limit int) (*zstd.Decoder, error) {
	maxMemory := zstdDecoderMemory(limit)
	if d, ok := zstdDecoders.Load(maxMemory); ok {
		return d.(*zstd.Decoder), nil
	}
	d, err := zstd.NewReader(nil,
		zstd.WithDecoderMaxMemory(maxMemory),
		zstd.WithDecoderConcurrency(0), // GOMAXPROCS concurrent DecodeAll calls
	)
	if err != nil {
		return nil, fmt.Errorf("weir/record: zstd decoder: %w", err)
	}
	actual, loaded := zstdDecoders.LoadOrStore(maxMemory, d)
	if loaded {
		d.Close() // lost a race; use the one stored first
	}
	return actual.(*zstd.Decoder), nil
}

// Largest output each codec can produce per input byte of valid data. A block
// that declares more is corrupt, so a few bytes cannot make a reader allocate
// up to its whole limit. LZ4: a 1-byte token, a 2-byte offset and k length
// bytes of 255 give at most 19+255k bytes from 3+k. Snappy: the best copy op
// gives 64 bytes from 3.
const (
	lz4MaxExpansion    = 255
	snappyMaxExpansion = 22
)

// appendCompressed appends src compressed with c to dst and returns the
// extended slice; it allocates only when dst lacks capacity.
func appendCompressed(dst []byte, c Codec, src []byte) ([]byte, error) {
	switch c {
	case CodecNone:
		return append(dst, src...), nil
	case CodecZstd:
		return zstdEncoder().EncodeAll(src, dst), nil
	case CodecLZ4:
		start := len(dst)
		bound := lz4.CompressBlockBound(len(src))
		dst = slices.Grow(dst, 4+bound)[:start+4+bound]
		comp := lz4Compressors.Get().(*lz4.Compressor)
		n, err := comp.CompressBlock(src, dst[start+4:])
		lz4Compressors.Put(comp)
		if err != nil || n == 0 && len(src) > 0 {
			// NB: cannot happen with a destination of CompressBlockBound.
			return dst[:start], fmt.Errorf("weir/record: lz4 compress %d bytes: n=%d: %v", len(src), n, err)
		}
		binary.BigEndian.PutUint32(dst[start:], uint32(len(src)))
		return dst[:start+4+n], nil
	case CodecSnappy:
		start := len(dst)
		bound := s2.MaxEncodedLen(len(src))
		if bound < 0 {
			return dst, fmt.Errorf("%w: %d bytes cannot be a snappy block", ErrTooLarge, len(src))
		}
		dst = slices.Grow(dst, bound)[:start+bound]
		// EncodeSnappy writes into dst[start:] because it is long enough.
		enc := s2.EncodeSnappy(dst[start:], src)
		return dst[:start+len(enc)], nil
	}
	return dst, fmt.Errorf("%w: %d", ErrUnknownCodec, uint8(c))
}

// decompress decompresses src, compressed with c (not CodecNone), into buf,
// reusing buf's capacity when it suffices, and returns the output. It refuses
// to produce more than limit bytes (ErrTooLarge), checking the size the
// compressed data declares before it allocates; bad compressed data is
// ErrCorrupt.
func decompress(buf []byte, c Codec, src []byte, limit int) ([]byte, error) {
	switch c {
	case CodecZstd:
		var h zstd.Header
		if err := h.Decode(src); err != nil {
			return nil, fmt.Errorf("%w: zstd frame header: %w", ErrCorrupt, err)
		}
		if h.HasFCS && h.FrameContentSize > uint64(limit) {
			return nil, fmt.Errorf("%w: zstd records declare %d bytes, limit %d", ErrTooLarge, h.FrameContentSize, limit)
		}
		if memory := zstdDecoderMemory(limit); h.WindowSize > memory {
			return nil, fmt.Errorf("%w: zstd window of %d bytes, limit %d", ErrTooLarge, h.WindowSize, memory)
		}
		dec, err := zstdDecoder(limit)
		if err != nil {
			return nil, err
		}
		// DecodeAll grows buf itself, to no more than the declared size
		// allows and checks the decoder's limit after every block, so a frame
		// without a declared size cannot run away either.
		out, err := dec.DecodeAll(src, buf[:0])
		switch {
		case errors.Is(err, zstd.ErrDecoderSizeExceeded):
			return nil, fmt.Errorf("%w: zstd records exceed limit %d", ErrTooLarge, limit)
		case err != nil:
			return nil, fmt.Errorf("%w: zstd records: %w", ErrCorrupt, err)
		case len(out) > limit:
			return nil, fmt.Errorf("%w: zstd records decompress to %d bytes, limit %d", ErrTooLarge, len(out), limit)
		}
		return out, nil

	case CodecLZ4:
		if len(src) < 4 {
			return nil, corruptf("lz4 records: %d bytes, shorter than the 4-byte length", len(src))
		}
		size := uint64(binary.BigEndian.Uint32(src))
		block := src[4:]
		if size > uint64(limit) {
			return nil, fmt.Errorf("%w: lz4 records declare %d bytes, limit %d", ErrTooLarge, size, limit)
		}
		if size > lz4MaxExpansion*uint64(len(block)) {
			return nil, corruptf("lz4 records declare %d bytes from a %d-byte block", size, len(block))
		}
		if size == 0 {
			// NB: lz4's assembly decoder dereferences a nil destination
			// (v4.1.33, found by FuzzDecode), so do not call it for nothing.
			// The only block of no bytes is one token of zero literals.
			if len(block) != 1 || block[0] != 0 {
				return nil, corruptf("lz4 records declare 0 bytes from a %d-byte block", len(block))
			}
			return buf[:0], nil
		}
		out := grow(buf, int(size))
		n, err := lz4.UncompressBlock(block, out)
		if err != nil {
			return nil, fmt.Errorf("%w: lz4 records: %w", ErrCorrupt, err)
		}
		if n != len(out) {
			return nil, corruptf("lz4 records decompress to %d bytes, declared %d", n, size)
		}
		return out, nil

	case CodecSnappy:
		size, err := s2.DecodedLen(src)
		if err != nil {
			return nil, fmt.Errorf("%w: snappy records length: %w", ErrCorrupt, err)
		}
		if size > limit {
			return nil, fmt.Errorf("%w: snappy records declare %d bytes, limit %d", ErrTooLarge, size, limit)
		}
		if uint64(size) > snappyMaxExpansion*uint64(len(src)) {
			return nil, corruptf("snappy records declare %d bytes from a %d-byte block", size, len(src))
		}
		// NB: the strict decoder rejects S2 extensions (copies with offset
		// 0), so what passes here decodes with every Snappy implementation.
		out, err := snappy.DecodeStrict(grow(buf, size), src)
		if err != nil {
			return nil, fmt.Errorf("%w: snappy records: %w", ErrCorrupt, err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: %d", ErrUnknownCodec, uint8(c))
}

// grow returns buf resliced to n bytes if it has the capacity, or a new
// slice of n bytes.
func grow(buf []byte, n int) []byte {
	if cap(buf) >= n {
		return buf[:n]
	}
	return make([]byte, n)
}
