package main

import (
	"os"
	"strings"

	"github.com/spf13/cobra"

	"weir/client"
)

// clientFlags are the flags of every command that talks to a broker.
type clientFlags struct {
	brokers string
}

// defaultBrokers is where the tools look for a broker: WEIR_BROKERS, or the
// single-node default that `weir serve` listens on.
func defaultBrokers() string {
	if v := os.Getenv("WEIR_BROKERS"); v != "" {
		return v
	}
	return "127.0.0.1:7420"
}

func (f *clientFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.brokers, "brokers", defaultBrokers(), "comma-separated `host:port` list of brokers to bootstrap from (env WEIR_BROKERS)")
}

// opts are the client options the flags give.
func (f *clientFlags) opts() []client.Opt {
	return []client.Opt{client.SeedBrokers(strings.Split(f.brokers, ",")...), client.ClientID("weir-cli")}
}
