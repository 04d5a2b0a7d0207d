// Command weir is the single weir binary: the broker (weir serve, coming
// with the broker package) and the tools that talk to it.
//
// main only ties the program to the process: arguments, signals, exit code.
// Everything else is in Main, which tests run in-process.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// Commands watch ctx, so Ctrl-C or a SIGTERM from a supervisor lets
	// them shut down cleanly (serve: stop intake, flush, fsync, close).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := NewMain().Run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "weir:", err)
		os.Exit(1)
	}
}
