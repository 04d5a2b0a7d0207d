package main

import (
	"fmt"
	"regexp"
	"runtime"
	"runtime/debug"
	"testing"
)

func TestVersionCommand(t *testing.T) {
	stdout, _, err := run(t, "version")
	if err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(fmt.Sprintf(`^weir \S+ \(%s %s/%s\)\n$`,
		regexp.QuoteMeta(runtime.Version()), runtime.GOOS, runtime.GOARCH))
	if !want.MatchString(stdout) {
		t.Errorf("weir version = %q, want it to match %s", stdout, want)
	}
}

func TestVersionTakesNoArgs(t *testing.T) {
	if _, _, err := run(t, "version", "extra"); err == nil {
		t.Error("weir version extra: want an error")
	}
}

func TestVersionFromBuildInfo(t *testing.T) {
	vcs := func(revision, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: revision},
			{Key: "vcs.modified", Value: modified},
		}
	}
	tests := []struct {
		name string
		info debug.BuildInfo
		want string
	}{
		{"nothing known", debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "dev"},
		{"empty", debug.BuildInfo{}, "dev"},
		{"clean checkout", debug.BuildInfo{Settings: vcs("0123456789abcdef0123456789abcdef01234567", "false")}, "0123456"},
		{"dirty checkout", debug.BuildInfo{Settings: vcs("0123456789abcdef0123456789abcdef01234567", "true")}, "0123456-dirty"},
		{"revision wins over pseudo-version", debug.BuildInfo{
			Main:     debug.Module{Version: "v0.0.0-20260101000000-0123456789ab+dirty"},
			Settings: vcs("0123456789abcdef0123456789abcdef01234567", "true"),
		}, "0123456-dirty"},
		{"go install at a version", debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}}, "v1.2.3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := versionFromBuildInfo(&tt.info); got != tt.want {
				t.Errorf("versionFromBuildInfo = %q, want %q", got, tt.want)
			}
		})
	}
}
