package cli

import (
	"context"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionText(t *testing.T) {
	stamped := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/defenderharvester/defenderharvester", Version: "v1.4.0"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef"}, {Key: "vcs.time", Value: "2026-03-01T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	tests := []struct {
		name string
		info *debug.BuildInfo
		ok   bool
		want []string
	}{
		{"go build in a checkout", stamped, true, []string{"defenderharvester v1.4.0\n", "github.com/defenderharvester/defenderharvester", "0123456789abcdef", "2026-03-01T10:00:00Z", "uncommitted changes", "go1.26.8"}},
		{"go run", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/defenderharvester/defenderharvester", Version: "(devel)"}}, true,
			[]string{"defenderharvester (devel)\n", "github.com/defenderharvester/defenderharvester", "revision  unknown", "go run", "go1.26.8"}},
		{"no build info", nil, false, []string{"defenderharvester dev\n", "revision  unknown", "  go "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := versionText(func() (*debug.BuildInfo, bool) { return tt.info, tt.ok })
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("version output lacks %q:\n%s", w, got)
				}
			}
		})
	}
}

func TestVersionCommand(t *testing.T) {
	for _, arg := range []string{"version", "--version", "-version"} {
		env, out, _ := testEnv(nil)
		if code := Main(context.Background(), env, []string{arg}); code != exitOK {
			t.Fatalf("%s: exit %d", arg, code)
		}
		// The test binary carries real build info: module path and Go.
		if s := out.String(); !strings.HasPrefix(s, "defenderharvester ") || !strings.Contains(s, "github.com/defenderharvester/defenderharvester") || !strings.Contains(s, "go1.") {
			t.Errorf("%s printed %q; want the version, module and Go toolchain", arg, s)
		}
	}
}
