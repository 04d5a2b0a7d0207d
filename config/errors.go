package config

import (
	"errors"
	"fmt"
)

// Sentinels, matched with errors.Is through a *KeyError.
var (
	// ErrUnknownKey: the file sets a key weir does not know, usually a typo.
	// Unknown keys are refused rather than ignored, so that a misspelled
	// setting cannot silently leave its default in force.
	ErrUnknownKey = errors.New("unknown key")
	// ErrInvalidValue: a key has a value of the wrong type or out of range.
	ErrInvalidValue = errors.New("invalid value")
)

// KeyError reports a problem with one configuration key. Load and Validate
// return these (joined, when there are several); use errors.As to get at
// the key.
type KeyError struct {
	// Key is the full key, e.g. "log.fsync".
	Key string
	// Source says where the offending value came from: the file's path, an
	// environment variable (WEIR_LOG_FSYNC) or a flag (--log.fsync). Empty
	// when it is not known, as in Validate, which sees only the struct.
	Source string
	// Err is what is wrong; it wraps ErrUnknownKey or ErrInvalidValue.
	Err error
}

func (e *KeyError) Error() string {
	if errors.Is(e.Err, ErrUnknownKey) {
		// The key is in the file, so lead with the file: that is where
		// the user will go to fix it.
		return fmt.Sprintf("config: %s: unknown key %q", e.Source, e.Key)
	}
	msg := fmt.Sprintf("config: %s: %v", e.Key, e.Err)
	if e.Source != "" {
		msg += " (from " + e.Source + ")"
	}
	return msg
}

func (e *KeyError) Unwrap() error { return e.Err }
