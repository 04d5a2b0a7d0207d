package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is weir's release version, stamped at build time with
// -ldflags "-X main.version=v1.2.3" (make build stamps `git describe`).
// Left empty, buildVersion works it out from the binary's build info.
var version string

func (m *Main) newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print weir's version, Go version and platform",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "weir %s (%s %s/%s)\n",
				buildVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return err
		},
	}
}

// buildVersion is the -ldflags version if stamped, else what the build info
// says (see versionFromBuildInfo).
func buildVersion() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	return versionFromBuildInfo(info)
}

// versionFromBuildInfo prefers, in order:
//   - the VCS revision that `go build` in a git checkout records, short as
//     `git describe --always --dirty` prints it (7 hex digits, "-dirty"
//     when the tree had uncommitted changes), so `go build` and `make build`
//     binaries name a commit the same way;
//   - the module version, set by `go install weir/cmd/weir@v1.2.3`;
//   - "dev" otherwise (a `go run`, or a build outside git).
func versionFromBuildInfo(info *debug.BuildInfo) string {
	var revision string
	var modified bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if revision != "" {
		const short = 7 // git's default abbreviation
		if len(revision) > short {
			revision = revision[:short]
		}
		if modified {
			revision += "-dirty"
		}
		return revision
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	return "dev"
}
