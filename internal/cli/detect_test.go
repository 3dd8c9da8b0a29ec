package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDetectEmitWritesStableFindings: detect --emit writes each finding
// to the configured outputs as DefenderHarvesterFindings; running it again
// over the same records gives the same RecordIds, so downstream dedup
// drops the repeat.
func TestDetectEmitWritesStableFindings(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	if err := os.MkdirAll(in, 0o700); err != nil {
		t.Fatal(err)
	}
	line := `{"TenantId":"4a1b5c2d-1111-4222-8333-123456789abc","SourceName":"libraryfiles","RecordId":"r1","TimeGenerated":"2026-11-30T10:00:00Z",` +
		`"ChangeType":"Added","SnapshotKey":"evil.ps1","ChangedBy":"eve@contoso.com","fileName":"evil.ps1","sha256":"ab"}` + "\n"
	if err := os.WriteFile(filepath.Join(in, "MdeLibraryFiles-20261130.jsonl"), []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(cfg, []byte("tenant_id: 4a1b5c2d-1111-4222-8333-123456789abc\noutputs:\n  files:\n    dir: "+out+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		env, stdout, errb := testEnv(nil)
		if code := Main(context.Background(), env, []string{"detect", "--in", in, "--emit", "--config", cfg}); code != exitOK {
			t.Fatalf("exit %d\n%s\n%s", code, stdout, errb)
		}
		if !strings.Contains(errb.String(), "wrote 1 findings") || !strings.Contains(stdout.String(), "DH-001") {
			t.Fatalf("stdout %s\nstderr %s", stdout, errb)
		}
	}
	files, _ := filepath.Glob(filepath.Join(out, "DefenderHarvesterFindings-*.jsonl"))
	if len(files) != 1 {
		t.Fatalf("findings files: %v", files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var f struct{ RecordId, RuleId, Actor string }
		if err := json.Unmarshal([]byte(l), &f); err != nil {
			t.Fatal(err)
		}
		if f.RuleId != "DH-001" || f.Actor != "eve@contoso.com" {
			t.Errorf("finding %+v", f)
		}
		ids = append(ids, f.RecordId)
	}
	if len(ids) != 2 || ids[0] == "" || ids[0] != ids[1] {
		t.Fatalf("two emits of one finding gave RecordIds %v, want the same id twice", ids)
	}
}
