package cli

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

// printVersion prints what this binary is: its version, the module, the
// VCS revision, commit time and uncommitted-changes flag that `go build`
// stamps, and the Go toolchain. Under `go run` (or -buildvcs=false)
// there is no stamp; it says so rather than printing nothing.
func printVersion(w io.Writer) {
	fmt.Fprint(w, versionText(debug.ReadBuildInfo))
}

// versionText renders the build information read returns.
func versionText(read func() (*debug.BuildInfo, bool)) string {
	version, module, goVersion := Version, "", runtime.Version()
	settings := map[string]string{}
	if info, ok := read(); ok && info != nil {
		module = info.Main.Path
		if info.GoVersion != "" {
			goVersion = info.GoVersion
		}
		// -ldflags -X wins; otherwise the module version go stamped
		// (a tag, a pseudo-version, or "(devel)").
		if version == "dev" && info.Main.Version != "" {
			version = info.Main.Version
		}
		for _, s := range info.Settings {
			settings[s.Key] = s.Value
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "defenderharvester %s\n", version)
	if module != "" {
		fmt.Fprintf(&b, "  module    %s\n", module)
	}
	if rev := settings["vcs.revision"]; rev != "" {
		var notes []string
		if t := settings["vcs.time"]; t != "" {
			notes = append(notes, "committed "+t)
		}
		if settings["vcs.modified"] == "true" {
			notes = append(notes, "with uncommitted changes")
		}
		line := rev
		if len(notes) > 0 {
			line += " (" + strings.Join(notes, ", ") + ")"
		}
		fmt.Fprintf(&b, "  revision  %s\n", line)
	} else {
		fmt.Fprintf(&b, "  revision  unknown: not stamped (go run, -buildvcs=false in the flags or GOFLAGS, or a git worktree); build with `go build -buildvcs=true` in a git clone to record it\n")
	}
	fmt.Fprintf(&b, "  go        %s %s/%s\n", goVersion, runtime.GOOS, runtime.GOARCH)
	return b.String()
}
