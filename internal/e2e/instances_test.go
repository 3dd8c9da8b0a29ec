package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/defenderharvester/defenderharvester/internal/harvester"
	"github.com/defenderharvester/defenderharvester/internal/sim"
)

// TestNamedOutputInstances: outputs given as a list of named instances —
// two of the files type and one Splunk whose token is wrong. Both files
// instances get every record; the Splunk instance's share is spooled
// under its own name (state show says so), and once its token is fixed
// `state spool retry` delivers it and empties that spool only.
func TestNamedOutputInstances(t *testing.T) {
	f := newFixture(t, sim.Options{Seed: 31, Machines: 2})
	base := f.writeConfig("named", "")
	body := readFile(t, base)
	i, j := strings.Index(body, "outputs:\n"), strings.Index(body, "sources:\n")
	if i < 0 || j < i {
		t.Fatalf("unexpected config layout:\n%s", body)
	}
	info := f.tenant.Info(f.srv)
	badToken := filepath.Join(f.dir, "bad.hec")
	mustWrite(t, badToken, []byte("00000000-0000-0000-0000-000000000000"), 0o600)
	outputs := fmt.Sprintf(`outputs:
  - {name: files-a, type: files, dir: %q}
  - {name: files-b, type: files, dir: %q}
  - {name: hec-main, type: splunk, url: %q, token_file: %q, index: defender}
`, filepath.Join(f.dir, "a"), filepath.Join(f.dir, "b"),
		strings.TrimSuffix(info.Splunk.URL, "/services/collector/event"), badToken)
	cfg := filepath.Join(f.dir, "named-list.yaml")
	mustWrite(t, cfg, []byte(body[:i]+outputs+body[j:]), 0o600)

	code, out, errs := f.runCLI("run", "--config", cfg, "--sources", "actioncenter,featuresettings")
	if code != 1 {
		t.Fatalf("run exit %d, want 1 (one output refused)\n%s\n%s", code, out, errs)
	}
	a, b := readOutput(t, filepath.Join(f.dir, "a")), readOutput(t, filepath.Join(f.dir, "b"))
	if len(a) == 0 || len(a) != len(b) {
		t.Fatalf("files-a has %d records, files-b %d; want the same, non-zero", len(a), len(b))
	}
	spooled := func() map[string]int {
		code, shown, errs := f.runCLI("state", "show", "--config", cfg, "--json")
		if code != 0 {
			t.Fatalf("state show: %d %s", code, errs)
		}
		var doc harvester.StateDoc
		if err := json.Unmarshal([]byte(shown), &doc); err != nil {
			t.Fatal(err)
		}
		m := map[string]int{}
		for _, o := range doc.Tenants[0].Outputs {
			m[o.Output] = o.Spool.Records
		}
		return m
	}
	if got := spooled(); got["hec-main"] != len(a) || got["files-a"] != 0 || got["files-b"] != 0 {
		t.Fatalf("spools %v; want all %d records for hec-main only", got, len(a))
	}
	if n := f.tenant.Received(sim.ReceiverSplunk).Unique; n != 0 {
		t.Fatalf("the HEC with the wrong token received %d records", n)
	}

	// Fix the token, retry that instance's spool.
	mustWrite(t, badToken, []byte(f.tenant.Credentials().HECToken), 0o600)
	if code, out, errs := f.runCLI("state", "spool", "retry", "hec-main", "--config", cfg); code != 0 {
		t.Fatalf("state spool retry: %d\n%s\n%s", code, out, errs)
	}
	if got := spooled(); got["hec-main"] != 0 {
		t.Fatalf("spools after retry %v", got)
	}
	if n := f.tenant.Received(sim.ReceiverSplunk).Unique; n != len(a) {
		t.Fatalf("the HEC holds %d records after the retry, want %d", n, len(a))
	}
}
