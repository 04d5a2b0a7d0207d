// Package test holds weir's end-to-end suites: they build the real weir
// binary, run it as separate processes on 127.0.0.1, and drive it with the
// CLI and the Go client, as a user would. Long randomized fault runs are
// behind the soak build tag (make soak).
package test
