package main

import (
	"context"
	"io"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"weir/config"
)

// Main is the weir program without the process around it: tests and the
// end-to-end suite build one with their own output streams and call Run.
type Main struct {
	Stdout io.Writer
	Stderr io.Writer

	// ConfigPath is the --config flag, handed to config.Load. Empty means
	// config.DefaultFile if it exists in the working directory, else none.
	ConfigPath string
}

// NewMain returns a Main that writes to the process's stdout and stderr.
func NewMain() *Main {
	return &Main{Stdout: os.Stdout, Stderr: os.Stderr}
}

// Run runs the command line args (without the program name) and returns
// its error; it prints nothing about the error itself, so the caller
// decides how to report it (main prints "weir: <err>" and exits 1).
func (m *Main) Run(ctx context.Context, args []string) error {
	cmd := m.newRootCmd()
	cmd.SetArgs(args)
	return cmd.ExecuteContext(ctx)
}

// newRootCmd builds the command tree. Each subcommand lives in its own file
// (version.go, later serve.go, topic.go, ...) as a method newXCmd on Main,
// and is added here with one line.
func (m *Main) newRootCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "weir",
		Short: "weir: a partitioned, Raft-replicated commit-log broker",
		// Errors are reported once, by main. Usage is for --help: after
		// a runtime failure (a port in use, say) it buries the message.
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	cmd.SetOut(m.Stdout)
	cmd.SetErr(m.Stderr)

	cmd.PersistentFlags().StringVar(&m.ConfigPath, "config", "",
		"read the configuration from `PATH` (default "+config.DefaultFile+" in the working directory, if present)")

	cmd.AddCommand(m.newVersionCmd())
	cmd.AddCommand(m.newServeCmd())
	cmd.AddCommand(m.newTopicCmd(), m.newProduceCmd(), m.newConsumeCmd(), m.newGroupCmd(), m.newClusterCmd(), m.newBenchCmd())
	return cmd
}

// loadConfig loads the configuration for a command that needs one (serve):
// the --config file, then WEIR_* variables, then the command's flags that
// config.AddFlags registered and the user set.
func (m *Main) loadConfig(flags *pflag.FlagSet) (config.Config, error) {
	return config.Load(m.ConfigPath, flags)
}
