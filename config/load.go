package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// DefaultFile is the file Load reads when it is given no path, if it exists
// in the working directory.
const DefaultFile = "weir.yaml"

// Load builds the configuration from, lowest precedence first: Default(),
// the YAML file at path, WEIR_* environment variables, and the flags in
// flags that the user set (flags registered by AddFlags; others, such as
// --config, are ignored; flags may be nil). The result is validated.
//
// An empty path means DefaultFile if it exists, and no file otherwise; a
// path that is given must exist. The file may not contain keys weir does not
// know. Errors about one key are *KeyError values, joined when several.
func Load(path string, flags *pflag.FlagSet) (Config, error) {
	l := loader{flags: flags}
	v := viper.New()

	// Register every key with its default and its environment variable.
	// NB: viper's AutomaticEnv alone is not enough: Unmarshal only asks
	// about keys viper already knows, so an environment variable for a
	// key that the file does not set would be ignored. Defaults and
	// BindEnv for every key make viper know them all.
	v.SetEnvPrefix(envPrefix)
	v.SetEnvKeyReplacer(envReplacer)
	for _, k := range keys {
		v.SetDefault(k.name, k.defaultValue())
		if err := v.BindEnv(k.name); err != nil {
			return Config{}, fmt.Errorf("config: bind %s: %w", EnvVar(k.name), err)
		}
	}

	settings, err := l.readFile(path)
	if err != nil {
		return Config{}, err
	}
	if err := v.MergeConfigMap(settings); err != nil {
		return Config{}, fmt.Errorf("config: %s: %w", l.file, err)
	}

	// Only flags the user set: pflag.Visit skips the ones left at their
	// defaults, which would otherwise override the file and environment.
	if flags != nil {
		var bindErr error
		flags.Visit(func(f *pflag.Flag) {
			if lookupKey(f.Name) && bindErr == nil {
				bindErr = v.BindPFlag(f.Name, f)
			}
		})
		if bindErr != nil {
			return Config{}, fmt.Errorf("config: bind flags: %w", bindErr)
		}
	}

	var c Config
	if err := v.Unmarshal(&c, decoderOptions); err != nil {
		return Config{}, l.keyErrors(err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, l.withSources(err)
	}
	return c, nil
}

// loader remembers where values came from, to name the source of a bad one.
type loader struct {
	flags    *pflag.FlagSet
	file     string          // the file read; "" if none
	fileKeys map[string]bool // the keys the file sets
}

// readFile reads the YAML file at path (DefaultFile if path is empty and it
// exists) and returns its settings as a nested map, after refusing any key
// that is not in the table. It returns no settings when there is no file.
func (l *loader) readFile(path string) (map[string]any, error) {
	explicit := path != ""
	if !explicit {
		path = DefaultFile
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return nil, nil
	}
	if err != nil {
		// os errors already name the file: "open x.yaml: no such file".
		return nil, fmt.Errorf("config: %w", err)
	}
	l.file = path

	// A viper of its own, so that its keys are the file's keys alone,
	// not mixed with the defaults.
	fv := viper.New()
	fv.SetConfigType("yaml") // whatever the file's name ends with
	if err := fv.ReadConfig(bytes.NewReader(data)); err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}

	// Rebuild the settings from the known keys alone, as the nested map
	// viper merges. This drops empty sections ("log:" with every key
	// commented out), which YAML reads as null and viper would otherwise
	// keep as a null "log" that hides the defaults of log.*.
	l.fileKeys = make(map[string]bool)
	settings := make(map[string]any)
	var errs []error
	fileKeys := fv.AllKeys()
	sort.Strings(fileKeys) // report in a stable order
	for _, name := range fileKeys {
		switch {
		case lookupKey(name):
			l.fileKeys[name] = true
			setPath(settings, name, fv.Get(name))
		case isSection(name) && fv.Get(name) == nil:
			// An empty section; nothing to set.
		case isSection(name):
			// e.g. "log: 5": a value where a section of keys belongs.
			errs = append(errs, &KeyError{Key: name, Source: path,
				Err: fmt.Errorf("%w: %q is a section of keys, not a value", ErrInvalidValue, name)})
		default:
			errs = append(errs, &KeyError{Key: name, Source: path, Err: ErrUnknownKey})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return settings, nil
}

// setPath sets m["a"]["b"] = value for the dotted key "a.b".
func setPath(m map[string]any, key string, value any) {
	section, rest, nested := strings.Cut(key, ".")
	if !nested {
		m[key] = value
		return
	}
	sub, ok := m[section].(map[string]any)
	if !ok {
		sub = make(map[string]any)
		m[section] = sub
	}
	setPath(sub, rest, value)
}

// source names where the value of key came from, in precedence order, or
// "" if it is the default.
func (l *loader) source(key string) string {
	if l.flags != nil {
		if f := l.flags.Lookup(key); f != nil && f.Changed {
			return "--" + key
		}
	}
	// Viper ignores empty variables, so they are not a source either.
	if os.Getenv(EnvVar(key)) != "" {
		return EnvVar(key)
	}
	if l.fileKeys[key] {
		return l.file
	}
	return ""
}

// withSources fills in Source on the *KeyError values Validate returned.
func (l *loader) withSources(err error) error {
	for _, e := range leaves(err) {
		var ke *KeyError
		if errors.As(e, &ke) && ke.Source == "" {
			ke.Source = l.source(ke.Key)
		}
	}
	return err
}
