package record

import (
	"errors"
	"fmt"
)

// Errors returned by this package. Check them with errors.Is; the error that
// carries one says what failed and where.
var (
	// Parsing and decoding a batch.

	// ErrCorrupt marks a batch that is not well formed: short, with a length
	// that disagrees with the buffer, a checksum mismatch, a field out of
	// range, records that disagree with the header, or compressed data that
	// does not decompress.
	ErrCorrupt = errors.New("weir/record: corrupt batch")

	// ErrUnsupportedVersion is returned for a batch whose version byte this
	// package does not know. It is not ErrCorrupt: a newer client may have
	// written it.
	ErrUnsupportedVersion = errors.New("weir/record: unsupported batch version")

	// ErrUnknownCodec is returned for a compression codec this package does
	// not know, in a batch's attributes or by ParseCodec.
	ErrUnknownCodec = errors.New("weir/record: unknown compression codec")

	// ErrTooLarge is returned when a batch's records would decompress past
	// the reader's MaxUncompressedSize, and by Build for a batch whose
	// records exceed DefaultMaxUncompressedSize.
	ErrTooLarge = errors.New("weir/record: batch too large")

	// Building a batch.

	// ErrEmpty is returned by Build on a builder holding no records: a batch
	// has at least one record.
	ErrEmpty = errors.New("weir/record: batch has no records")

	// ErrInvalidProducer is returned by Build when the producer id, epoch and
	// base sequence are not either all -1 (no producer) or all non-negative.
	ErrInvalidProducer = errors.New("weir/record: invalid producer id, epoch or sequence")
)

// corruptf returns an error wrapping ErrCorrupt with the formatted detail.
func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}
