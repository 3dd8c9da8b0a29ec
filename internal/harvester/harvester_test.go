package harvester

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/defenderharvester/defenderharvester/internal/config"
)

// TestCheckNamesBadSectionsPerTenant: Check finds a bad schedule or a
// bad output setting when the config is loaded (so `run` and `doctor`
// stop at once, not only `serve`), naming the tenant and the key.
func TestCheckNamesBadSectionsPerTenant(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"bad schedule", "sources:\n  machineactions: {schedule: \"sometimes\"}\n", "sources.machineactions.schedule"},
		{"good cron", "sources:\n  machineactions: {schedule: \"*/10 * * * *\"}\n", ""},
		{"audit log settings", "sources:\n  auditlog: {content_types: [Audit.General, DLP.All], cloud: gcchigh, publisher_identifier: 11111111-2222-3333-4444-555555555555, overlap: 2h}\n", ""},
		{"audit log content type", "sources:\n  auditlog: {content_types: [Audit.Teams]}\n", "sources.auditlog"},
		{"audit log cloud", "sources:\n  auditlog: {cloud: china}\n", "cloud \"china\""},
		{"audit log window", "sources:\n  auditlog: {max_window: 48h}\n", "max_window"},
		{"tenant's bad schedule", "tenants:\n  - name: contoso\n    sources:\n      schema: {schedule: 0s}\n", "tenants.contoso: sources.schema.schedule"},
		{"named output of an unknown type", "outputs:\n  - {name: east, type: splonk}\n", "outputs.east: unknown output"},
		{"named output's bad setting", "outputs:\n  - {name: east, type: files, rotate_byts: 1}\n", `outputs.east: unknown key "rotate_byts"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(p, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(p, func(string) string { return "" })
			if err != nil {
				t.Fatal(err)
			}
			err = Check(cfg)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// The Management Activity API client is built from the public API
// credential asked for the manage.office.com scope, for the configured
// cloud's host and the run's tenant.
func TestActivityFeedClientOfTheRun(t *testing.T) {
	cfg := config.Default()
	cfg.TenantID = "11111111-2222-3333-4444-555555555555"
	cfg.PublicAPI.Auth.Method = config.MethodToken
	cfg.Secrets.AccessToken = "tok"
	n, err := NewNet(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &clients{net: n}
	if err := c.buildPublic(cfg, cfg.TenantID, nil); err != nil {
		t.Fatal(err)
	}
	if c.manage == nil {
		t.Fatal("no manage.office.com credential")
	}
	for _, cloud := range []string{"commercial", "gcc", "gcchigh", "dod"} {
		feed, err := c.activityFeed(cfg.TenantID)(cloud, "")
		if err != nil || feed.TenantID() != cfg.TenantID {
			t.Fatalf("%s: %v", cloud, err)
		}
	}
	if _, err := c.activityFeed(cfg.TenantID)("china", ""); err == nil {
		t.Error("an unknown cloud was accepted")
	}
}
