package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/defenderharvester/defenderharvester/detections"
)

// TestDemoEndsCleanly runs the demo end to end: two passes against the
// emulated tenant, the unified audit log included, into files, Sentinel
// and Splunk. It must exit 0, report no duplicate RecordIds in any table
// and show the audit log tables, and end with the findings of the
// emulated abuse scenario: every rule of the pack fires.
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
	rules, err := detections.Rules()
	if err != nil {
		t.Fatal(err)
	}
	every := fmt.Sprintf("%d of %d rules fired", len(rules), len(rules))
	for _, want := range []string{" 0 duplicates", "O365AuditGeneral", "MdeAuditResponseActions", "MdeTimeline", "MdeDetectionRules",
		"MdeConfigurationChanges", "What the detection pack finds", every, "attacker.admin@"} {
		if !strings.Contains(text, want) {
			t.Errorf("the demo's report lacks %q:\n%s", want, text)
		}
	}
}
