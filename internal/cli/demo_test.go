package cli

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemoEndsCleanly runs the demo end to end: two passes against the
// emulated tenant, the unified audit log included, into files, Sentinel
// and Splunk. It must exit 0, report no duplicate RecordIds in any table
// and show the audit log tables.
func TestDemoEndsCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("the whole demo: two passes of every data set")
	}
	env, out, errb := testEnv(nil)
	dir := filepath.Join(t.TempDir(), "demo")
	if code := Main(context.Background(), env, []string{"demo", "--out", dir, "--sentinel", "--splunk"}); code != 0 {
		t.Fatalf("demo exit %d\n%s\n%s", code, out, errb)
	}
	text := out.String()
	for _, want := range []string{" 0 duplicates", "O365AuditGeneral", "MdeAuditResponseActions", "MdeTimeline"} {
		if !strings.Contains(text, want) {
			t.Errorf("the demo's report lacks %q:\n%s", want, text)
		}
	}
}
