// Package buildinfo says which build of pgfleet a binary is: its version and source revision,
// stamped at link time by the Makefile and the Dockerfile
// (-X github.com/pgfleet/pgfleet/pkg/buildinfo.version=... and .revision=...), else read from
// the Go build information, else "devel" and "unknown". `--version` prints it and the
// pgfleet_build_info metric carries it.
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"sync"
)

// Set by the linker; empty in `go test` and plain `go build` binaries.
var (
	version  string
	revision string
)

// Info is a binary's build.
type Info struct {
	Version   string // e.g. v0.14.0, v0.14.0-3-g1a2b3c4, or devel
	Revision  string // the commit, or unknown
	GoVersion string // e.g. go1.26.8
}

// String is how `--version` prints it: "v0.14.0 (1a2b3c4…) go1.26.8".
func (i Info) String() string { return i.Version + " (" + i.Revision + ") " + i.GoVersion }

// Get returns the binary's build.
var Get = sync.OnceValue(func() Info {
	info := Info{Version: version, Revision: revision, GoVersion: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && info.Revision == "" {
				info.Revision = s.Value
			}
		}
	}
	if info.Version == "" {
		info.Version = "devel"
	}
	if info.Revision == "" {
		info.Revision = "unknown"
	}
	return info
})

// LDFlags are the linker flags that stamp version and revision, as the Makefile passes them.
func LDFlags(version, revision string) string {
	const pkg = "github.com/pgfleet/pgfleet/pkg/buildinfo"
	return "-X " + pkg + ".version=" + version + " -X " + pkg + ".revision=" + revision
}
