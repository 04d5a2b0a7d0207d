//go:build soak

package log

// killRounds under make soak: many kills, landing at every point of the
// append path, rolls included.
const killRounds = 50
