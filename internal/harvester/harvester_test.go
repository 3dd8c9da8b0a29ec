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
