package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

// decoderOptions makes viper's decoding strict. Viper's default is
// mapstructure's weakly typed input, which turns node-id: -1 into
// 18446744073709551615, segment-bytes: 8192.5 into 8192, fsync: true into
// "1" and segment-age: 10 into 10ns, all silently. Here values must have the
// field's type, except for the conversions in strictHook.
var decoderOptions = viper.DecoderConfigOption(func(dc *mapstructure.DecoderConfig) {
	dc.WeaklyTypedInput = false
	dc.DecodeHook = mapstructure.DecodeHookFuncType(strictHook)
	// Unknown keys in the file were already refused by readFile, with
	// the file named. These two catch what is left, which is a bug in
	// this package: a key in the table with no field (unused), or a field
	// with no key in the table (unset).
	dc.ErrorUnused = true
	dc.ErrorUnset = true
})

var durationType = reflect.TypeFor[time.Duration]()

// strictHook converts the values that need converting, and refuses the
// conversions that would lose or invent information:
//
//   - strings (all environment variables, some flags) to numbers and
//     durations, parsed in full;
//   - YAML floats (1e6) to integers, only when they are whole;
//   - numbers to durations only when 0: "10" has no unit, and guessing
//     seconds (or nanoseconds, as Go would) is how outages start;
//   - nothing to strings: YAML reads fsync: true as a bool, and
//     data-dir: 2024 as a number; the user is told to quote them.
func strictHook(from, to reflect.Type, data any) (any, error) {
	v := reflect.ValueOf(data)
	switch {
	case from == to:
		return data, nil // defaults, and values already of the right type
	case to.Kind() == reflect.String:
		if from.Kind() != reflect.String {
			return nil, fmt.Errorf("%v is a %s, not a string; quote it", data, from.Kind())
		}
	case to == durationType:
		switch {
		case from.Kind() == reflect.String:
			return time.ParseDuration(v.String()) // its error quotes the value
		case isNumber(from.Kind()):
			if v.IsZero() {
				return time.Duration(0), nil
			}
			return nil, fmt.Errorf("%v has no unit; write a duration such as \"%vs\" or \"%vms\"", data, data, data)
		}
	case to.Kind() == reflect.Int64:
		switch k := from.Kind(); {
		case k == reflect.String:
			n, err := strconv.ParseInt(v.String(), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%q is not a whole number", v.String())
			}
			return n, nil
		case k == reflect.Float32 || k == reflect.Float64:
			f := v.Float()
			if f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
				return nil, fmt.Errorf("%v is not a whole number", data)
			}
			return int64(f), nil
		}
	case to.Kind() == reflect.Uint64:
		switch k := from.Kind(); {
		case k == reflect.String:
			n, err := strconv.ParseUint(v.String(), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%q is not a whole number >= 0", v.String())
			}
			return n, nil
		case k == reflect.Float32 || k == reflect.Float64:
			f := v.Float()
			if f != math.Trunc(f) || f < 0 || f >= math.MaxUint64 {
				return nil, fmt.Errorf("%v is not a whole number >= 0", data)
			}
			return uint64(f), nil
		case k >= reflect.Int && k <= reflect.Int64:
			if v.Int() < 0 {
				return nil, fmt.Errorf("%v is not a whole number >= 0", data)
			}
			return uint64(v.Int()), nil
		}
	}
	return data, nil
}

func isNumber(k reflect.Kind) bool {
	return (k >= reflect.Int && k <= reflect.Uint64) || k == reflect.Float32 || k == reflect.Float64
}

// keyErrors turns mapstructure's decode errors, which name the key as the
// field path ("log.fsync-interval"), into *KeyError values.
func (l *loader) keyErrors(err error) error {
	var errs []error
	for _, e := range leaves(err) {
		de := innermostDecodeError(e)
		if de == nil {
			errs = append(errs, fmt.Errorf("config: %w", e))
			continue
		}
		key := de.Name()
		errs = append(errs, &KeyError{Key: key, Source: l.source(key),
			Err: fmt.Errorf("%w: %w", ErrInvalidValue, de.Unwrap())})
	}
	return errors.Join(errs...)
}

// leaves flattens joined errors (errors.Join, and mapstructure, which joins
// one error per field and wraps the lot in a "decoding failed" message) into
// a list of the errors joined. An error with nothing joined below it is its
// own only leaf.
func leaves(err error) []error {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			var out []error
			for _, x := range j.Unwrap() {
				out = append(out, leaves(x)...)
			}
			return out
		}
	}
	return []error{err}
}

// innermostDecodeError returns the deepest *mapstructure.DecodeError in
// err's chain, whose name is the full key; nil if there is none.
func innermostDecodeError(err error) *mapstructure.DecodeError {
	var found *mapstructure.DecodeError
	for {
		var de *mapstructure.DecodeError
		if !errors.As(err, &de) {
			return found
		}
		found, err = de, de.Unwrap()
	}
}
