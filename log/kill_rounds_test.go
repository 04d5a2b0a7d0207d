//go:build !soak

package log

// killRounds is how many times TestKill9Recovery kills its writer: a few in
// make test, many in make soak (kill_rounds_soak_test.go).
const killRounds = 3
