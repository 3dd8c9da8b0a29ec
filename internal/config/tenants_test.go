package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const tenantA = "11111111-1111-1111-1111-111111111111"
const tenantB = "22222222-2222-2222-2222-222222222222"

// writeTenantConfig writes a two-tenant config with secret files 0600.
func writeTenantConfig(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"a-cookie", "b-secret", "shared-cookie"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("sccauth=x; XSRF-TOKEN=y-"+f), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTenantsInheritSettingsButNeverSecretsOrState(t *testing.T) {
	p := writeTenantConfig(t, `
state_file: state/main.db
log_level: debug
initial_lookback: 48h
portal:
  rate_per_second: 2
  cookie_file: shared-cookie
outputs:
  files: {dir: out}
sources:
  timeline: {delay: 20m}
tenants:
  - name: contoso
    tenant_id: `+tenantA+`
    portal: {cookie_file: a-cookie}
    sources:
      timeline: {overlap: 2h}
  - name: fabrikam
    tenant_id: `+tenantB+`
    public_api: {client_id: 33333333-3333-3333-3333-333333333333, client_secret_file: b-secret}
    outputs:
      - {name: splunk-fabrikam, type: splunk, url: "https://hec.example:8088"}
`)
	cfg, err := Load(p, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	tcs, err := cfg.TenantConfigs()
	if err != nil {
		t.Fatal(err)
	}
	if len(tcs) != 2 {
		t.Fatalf("got %d tenants", len(tcs))
	}
	a, b := tcs[0], tcs[1]
	dir := filepath.Dir(p)
	if a.Name != "contoso" || a.TenantID != tenantA || b.TenantID != tenantB {
		t.Errorf("names/ids: %s %s %s", a.Name, a.TenantID, b.TenantID)
	}
	// Inherited: plain settings, and the process-wide ones.
	if a.LogLevel != cfg.LogLevel || a.Emulator != cfg.Emulator {
		t.Errorf("process-wide settings not passed on: %q %+v", a.LogLevel, a.Emulator)
	}
	if a.Portal.RatePerSecond != 2 || b.InitialLookback.String() != Duration(48*3600e9).String() {
		t.Errorf("plain settings not inherited: rate %v lookback %v", a.Portal.RatePerSecond, b.InitialLookback)
	}
	// Not inherited: the top-level cookie file (fabrikam has none of its own).
	if b.Portal.CookieFile != "" || b.Secrets.PortalCookie != "" {
		t.Errorf("fabrikam inherited the top-level portal cookie: %q", b.Portal.CookieFile)
	}
	if !strings.HasSuffix(a.Secrets.PortalCookie, "a-cookie") {
		t.Errorf("contoso cookie = %q", a.Secrets.PortalCookie)
	}
	// State per tenant, under the top-level state folder.
	wantA := filepath.Join(dir, "state", "tenants", "contoso", "defenderharvester.db")
	if a.StateFile != wantA {
		t.Errorf("state file %s, want %s", a.StateFile, wantA)
	}
	if a.StateFile == b.StateFile || a.Portal.SessionCache == b.Portal.SessionCache {
		t.Error("two tenants share a state file or session cache")
	}
	// Sources merge key by key; outputs are replaced as a whole.
	tl := a.Sources["timeline"]
	if scalarValue(tl, "delay") != "20m" || scalarValue(tl, "overlap") != "2h" {
		t.Errorf("timeline section not merged: delay %q overlap %q", scalarValue(tl, "delay"), scalarValue(tl, "overlap"))
	}
	if _, ok := a.Outputs["files"]; !ok {
		t.Error("contoso lost the top-level outputs")
	}
	if _, ok := b.Outputs["files"]; ok || OutputType("splunk-fabrikam", b.Outputs["splunk-fabrikam"]) != "splunk" {
		t.Errorf("fabrikam outputs = %v", b.Outputs)
	}
	// Relative paths resolve against the config's folder.
	if b.PublicAPI.ClientSecretFile != filepath.Join(dir, "b-secret") {
		t.Errorf("secret file %s", b.PublicAPI.ClientSecretFile)
	}
}

func TestTenantSecretsFromPrefixedEnvOnly(t *testing.T) {
	p := writeTenantConfig(t, "tenants:\n  - name: north-wind\n    tenant_id: "+tenantA+"\n    public_api: {client_id: 33333333-3333-3333-3333-333333333333}\n")
	cfg, err := Load(p, env(map[string]string{
		"DH_CLIENT_SECRET":            "global-secret",
		"DH_NORTH_WIND_CLIENT_SECRET": "tenant-secret",
	}))
	if err != nil {
		t.Fatal(err)
	}
	tcs, _ := cfg.TenantConfigs()
	if got := tcs[0].Secrets.ClientSecret; got != "tenant-secret" {
		t.Errorf("client secret from %q, want the tenant's prefixed variable", got)
	}
}

func TestTenantConfigErrors(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"no name", "tenants:\n  - tenant_id: " + tenantA + "\n", "name is missing"},
		{"bad name", "tenants:\n  - name: Contoso Ltd\n", "lower-case"},
		{"duplicate", "tenants:\n  - name: a\n  - name: a\n", `two tenants are named "a"`},
		{"process key", "tenants:\n  - name: a\n    serve: {listen: ':1'}\n", "applies to the whole process"},
		{"unknown key", "tenants:\n  - name: a\n    portal: {cookiefile: x}\n", `unknown key "cookiefile"`},
		{"bad value", "tenants:\n  - name: a\n    concurrency: 0\n", "concurrency"},
		{"top-level tenant id", "tenant_id: " + tenantA + "\ntenants:\n  - name: a\n", "per tenant"},
		{"not a list", "tenants: {a: 1}\n", "expected a list"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(writeTenantConfig(t, tc.yaml), env(nil))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestNamedOutputInstances(t *testing.T) {
	p := writeTenantConfig(t, `
outputs:
  - {name: splunk-east, type: splunk, url: "https://east:8088"}
  - {name: splunk-west, type: splunk, url: "https://west:8088"}
`)
	cfg, err := Load(p, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"splunk-east", "splunk-west"} {
		if OutputType(n, cfg.Outputs[n]) != "splunk" {
			t.Errorf("%s: type %q", n, OutputType(n, cfg.Outputs[n]))
		}
		if scalarValue(cfg.Outputs[n], "name") != "" {
			t.Errorf("%s: the name key was left in the settings", n)
		}
	}
	// The map form keeps working: the name is the type.
	if OutputType("files", nil) != "files" {
		t.Error("map form: name is not the type")
	}
	for _, bad := range []struct{ yaml, want string }{
		{"outputs:\n  - {type: splunk}\n", "name is missing"},
		{"outputs:\n  - {name: a}\n", "type is missing"},
		{"outputs:\n  - {name: a, type: files}\n  - {name: a, type: files}\n", "two outputs are named"},
	} {
		if _, err := Load(writeTenantConfig(t, bad.yaml), env(nil)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: error %v, want %q", bad.yaml, err, bad.want)
		}
	}
}

func TestEnvExpansionInValues(t *testing.T) {
	p := writeTenantConfig(t, "state_file: ${DATA:-/var/lib/dh}/state.db\nconcurrency: ${CONC}\nportal:\n  base_url: \"https://${HOST}\"\nlog_level: $${literal}\n")
	_, err := Load(p, env(map[string]string{"CONC": "3", "HOST": "security.microsoft.com"}))
	if err == nil || !strings.Contains(err.Error(), "log_level") {
		t.Fatalf("a literal $$ should reach log_level as ${literal} and fail validation there; got %v", err)
	}
	p = writeTenantConfig(t, "state_file: ${DATA:-/var/lib/dh}/state.db\nconcurrency: ${CONC}\nportal:\n  base_url: \"https://${HOST}\"\n")
	cfg, err := Load(p, env(map[string]string{"CONC": "3", "HOST": "security.microsoft.com"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.StateFile != "/var/lib/dh/state.db" || cfg.Concurrency != 3 || cfg.Portal.BaseURL != "https://security.microsoft.com" {
		t.Errorf("expanded: %s %d %s", cfg.StateFile, cfg.Concurrency, cfg.Portal.BaseURL)
	}
	for _, bad := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"HOST": "x"}, "${CONC} is not set"},
		{map[string]string{"CONC": "3\nstate_file: /etc", "HOST": "x"}, "several lines"},
		{map[string]string{"CONC": "many", "HOST": "x"}, "concurrency"},
	} {
		if _, err := Load(p, env(bad.env)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("env %v: error %v, want %q", bad.env, err, bad.want)
		}
	}
}

func TestServeSettings(t *testing.T) {
	cfg, err := Load(writeTenantConfig(t, "serve:\n  listen: 127.0.0.1:9000\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Serve.Listen != "127.0.0.1:9000" || cfg.Serve.MaxConcurrentRuns != DefaultMaxConcurrentRuns || cfg.Serve.Shard.Count != 1 {
		t.Errorf("serve = %+v", cfg.Serve)
	}
	for _, bad := range []struct{ yaml, want string }{
		{"serve:\n  max_concurrent_runs: 2\n  max_concurrent_runs_per_tenant: 3\n", "max_concurrent_runs_per_tenant"},
		{"serve:\n  shard: {count: 3}\n", "serve.lease_dir"},
		{"log_format: xml\n", "log_format"},
		{"sources:\n  timeline: {schedul: 5m}\n", ""},
	} {
		_, err := Load(writeTenantConfig(t, bad.yaml), env(nil))
		if bad.want == "" {
			continue // plugin sections are checked by the harvester
		}
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: error %v, want %q", bad.yaml, err, bad.want)
		}
	}
}

func TestTenantEnvName(t *testing.T) {
	if got := TenantEnvName("north-wind.eu", EnvClientSecret); got != "DH_NORTH_WIND_EU_CLIENT_SECRET" {
		t.Errorf("got %s", got)
	}
}
