package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRelativePathsResolveAgainstTheConfigFolder: a config written with
// relative paths works whatever the working directory (systemd, cron):
// every path key, and the defaults derived from the state file, resolve
// against the config file's folder.
func TestRelativePathsResolveAgainstTheConfigFolder(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"secrets/cookie": "sccauth=a; XSRF-TOKEN=b", "secrets/ests": "ests-value", "secrets/rt": "refresh-value",
		"secrets/client": "client-secret", "secrets/token": "token-value", "secrets/cert.pem": "-----BEGIN CERTIFICATE-----",
	} {
		if err := writeMode(filepath.Join(dir, name), body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), []byte("pem"), 0o644); err != nil {
		t.Fatal(err)
	}
	in := func(rel string) string { return filepath.Join(dir, filepath.FromSlash(rel)) }
	const app = "11111111-2222-3333-4444-555555555555"
	tests := []struct {
		name  string
		yaml  string
		check func(c *Config) map[string][2]string // key → got, want
	}{
		{"defaults land next to the config file", "", func(c *Config) map[string][2]string {
			return map[string][2]string{
				"state_file":           {c.StateFile, in("defenderharvester.db")},
				"portal.session_cache": {c.Portal.SessionCache, in("defenderharvester-session.json")},
			}
		}},
		{"state file and what follows it", "state_file: data/state.db\npublic_api:\n  auth:\n    method: device_code\n", func(c *Config) map[string][2]string {
			return map[string][2]string{
				"state_file":                       {c.StateFile, in("data/state.db")},
				"portal.session_cache":             {c.Portal.SessionCache, in("data/defenderharvester-session.json")},
				"public_api.auth.auth_record_file": {c.PublicAPI.Auth.AuthRecordFile, in("data/defenderharvester-auth-record.json")},
			}
		}},
		{"cookie file, session cache, client secret, emulator CA", "portal:\n  cookie_file: secrets/cookie\n  session_cache: cache/s.json\npublic_api:\n  client_id: " + app + "\n  client_secret_file: secrets/client\nemulator:\n  address: 127.0.0.1:9\n  ca_file: ca.pem\n", func(c *Config) map[string][2]string {
			return map[string][2]string{
				"portal.cookie_file":            {c.Portal.CookieFile, in("secrets/cookie")},
				"portal.cookie_file read":       {c.Secrets.PortalCookie, "sccauth=a; XSRF-TOKEN=b"},
				"portal.session_cache":          {c.Portal.SessionCache, in("cache/s.json")},
				"public_api.client_secret_file": {c.PublicAPI.ClientSecretFile, in("secrets/client")},
				"client secret read":            {c.Secrets.ClientSecret, "client-secret"},
				"emulator.ca_file":              {c.Emulator.CAFile, in("ca.pem")},
			}
		}},
		{"ESTS file", "portal:\n  auth:\n    method: ests\n    ests_file: secrets/ests\n", func(c *Config) map[string][2]string {
			return map[string][2]string{"portal.auth.ests_file": {c.Portal.Auth.ESTSFile, in("secrets/ests")}, "ESTS read": {c.Secrets.ESTS, "ests-value"}}
		}},
		{"refresh token file", "tenant_id: 72f988bf-86f1-41af-91ab-2d7cd011db47\nportal:\n  auth:\n    method: bearer\n    refresh_token_file: secrets/rt\n", func(c *Config) map[string][2]string {
			return map[string][2]string{"portal.auth.refresh_token_file": {c.Portal.Auth.RefreshTokenFile, in("secrets/rt")}, "refresh token read": {c.Secrets.RefreshToken, "refresh-value"}}
		}},
		{"access token file", "public_api:\n  access_token_file: secrets/token\n", func(c *Config) map[string][2]string {
			return map[string][2]string{"public_api.access_token_file": {c.PublicAPI.AccessTokenFile, in("secrets/token")}, "token read": {c.Secrets.AccessToken, "token-value"}}
		}},
		{"certificate and auth record files", "public_api:\n  auth:\n    method: certificate\n    client_id: " + app + "\n    certificate_file: secrets/cert.pem\n", func(c *Config) map[string][2]string {
			return map[string][2]string{"public_api.auth.certificate_file": {c.PublicAPI.Auth.CertificateFile, in("secrets/cert.pem")}}
		}},
		{"explicit auth record file", "public_api:\n  auth:\n    method: device_code\n    auth_record_file: rec/auth.json\n", func(c *Config) map[string][2]string {
			return map[string][2]string{"public_api.auth.auth_record_file": {c.PublicAPI.Auth.AuthRecordFile, in("rec/auth.json")}}
		}},
		{"absolute paths stay", "state_file: " + filepath.Join(string(filepath.Separator), "var", "lib", "dh", "state.db") + "\n", func(c *Config) map[string][2]string {
			return map[string][2]string{"state_file": {c.StateFile, filepath.Join(string(filepath.Separator), "var", "lib", "dh", "state.db")}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, "c.yaml")
			if err := os.WriteFile(p, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := Load(p, env(nil))
			if err != nil {
				t.Fatal(err)
			}
			for key, gw := range tt.check(cfg) {
				if gw[0] != gw[1] {
					t.Errorf("%s = %q, want %q", key, gw[0], gw[1])
				}
			}
		})
	}
}

func TestWithoutConfigFilePathsStayRelativeToTheWorkingDirectory(t *testing.T) {
	cfg, err := Load("", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.StateFile != "defenderharvester.db" || cfg.Portal.SessionCache != "defenderharvester-session.json" {
		t.Errorf("state %q, session cache %q; want both in the working directory", cfg.StateFile, cfg.Portal.SessionCache)
	}
}

// TestWrongTypesNameTheKey: a value of the wrong type is reported with
// the dotted key and the line, and a fraction is never truncated into a
// whole number.
func TestWrongTypesNameTheKey(t *testing.T) {
	tests := []struct{ yaml, want string }{
		{"concurrency: lots\n", `concurrency: "lots" is not a whole number (line 1)`},
		{"spool_max_bytes: 1.5\n", `spool_max_bytes: "1.5" is not a whole number`},
		{"portal:\n  rate_per_second: fast\n", `portal.rate_per_second: "fast" is not a number (line 2)`},
		{"emulator:\n  plaintext: maybe\n", `emulator.plaintext: "maybe" is not true or false`},
		{"public_api:\n  auth:\n    persistent_cache: 3\n", "public_api.auth.persistent_cache"},
		{"portal: [1, 2]\n", "portal: a list where a map of settings belongs"},
		{"tenant_id: [a]\n", "tenant_id: a list where a single value belongs"},
		{"portal: {rate_per_second: x, base_url: y}\n", "portal.rate_per_second"},
		{"http:\n  timeout: soon\n", "http.timeout"},
		{"http:\n  timeout: [1]\n", "http.timeout"},
		{"run_timeout: soon\n", "run_timeout"},
		{"spool_after: {a: 1}\n", "spool_after"},
	}
	for _, tt := range tests {
		p := writeFile(t, "c.yaml", tt.yaml, 0o600)
		_, err := Load(p, env(nil))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: err = %v, want %q", tt.yaml, err, tt.want)
		}
	}
	// A plugin section names its own keys the same way, and accepts what
	// the decoder reads itself (time.Duration strings, text types).
	type settings struct {
		PageSize int           `yaml:"page_size"`
		Machines []string      `yaml:"machines"`
		Backoff  time.Duration `yaml:"backoff"`
		Since    time.Time     `yaml:"since"`
	}
	ok := writeFile(t, "ok.yaml", "sources:\n  x:\n    backoff: 5ms\n    since: 2026-03-01T00:00:00Z\n  y:\n    backoff: soon\n", 0o600)
	okCfg, err := Load(ok, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	var good settings
	if err := DecodePlugin(okCfg.Sources["x"], "sources.x", &good); err != nil || good.Backoff != 5*time.Millisecond || good.Since.IsZero() {
		t.Errorf("durations and times in a plugin section: %+v, %v", good, err)
	}
	if err := DecodePlugin(okCfg.Sources["y"], "sources.y", &good); err == nil || !strings.Contains(err.Error(), "sources.y.backoff") {
		t.Errorf("bad time.Duration: err = %v", err)
	}
	p := writeFile(t, "c.yaml", "sources:\n  timeline:\n    page_size: many\n  other:\n    machines: all\n", 0o600)
	cfg, err := Load(p, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	var s settings
	if err := DecodePlugin(cfg.Sources["timeline"], "sources.timeline", &s); err == nil || !strings.Contains(err.Error(), `sources.timeline.page_size: "many" is not a whole number`) {
		t.Errorf("plugin int: err = %v", err)
	}
	if err := DecodePlugin(cfg.Sources["other"], "sources.other", &s); err == nil || !strings.Contains(err.Error(), "sources.other.machines") || !strings.Contains(err.Error(), "list") {
		t.Errorf("plugin list: err = %v", err)
	}
}

func TestRunTimeoutAndSpoolAfter(t *testing.T) {
	cfg := Default()
	if cfg.RunTimeout.D() != time.Hour || cfg.SpoolAfter.D() != 15*time.Second {
		t.Fatalf("defaults run_timeout %s, spool_after %s; want 1h, 15s", cfg.RunTimeout, cfg.SpoolAfter)
	}
	tests := []struct {
		yaml       string
		run, spool time.Duration
		wantErr    []string
	}{
		{"run_timeout: 30m\nspool_after: 1m\n", 30 * time.Minute, time.Minute, nil},
		{"run_timeout: 2d\n", 48 * time.Hour, 15 * time.Second, nil},
		{"run_timeout: 0s\n", 0, 0, []string{"run_timeout", "must be positive"}},
		{"spool_after: 0s\n", 0, 0, []string{"spool_after", "must be positive", "spooled"}},
		{"run_timeout: -1h\n", 0, 0, []string{"run_timeout", "negative"}},
		{"spool_after: soon\n", 0, 0, []string{"spool_after", "15m, 24h or 7d"}},
	}
	for _, tt := range tests {
		p := writeFile(t, "c.yaml", tt.yaml, 0o600)
		cfg, err := Load(p, env(nil))
		if len(tt.wantErr) > 0 {
			for _, w := range tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("%q: err = %v, want %q", tt.yaml, err, w)
				}
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", tt.yaml, err)
		}
		if cfg.RunTimeout.D() != tt.run || cfg.SpoolAfter.D() != tt.spool {
			t.Errorf("%q: run_timeout %s, spool_after %s", tt.yaml, cfg.RunTimeout, cfg.SpoolAfter)
		}
	}
}

func TestWarnings(t *testing.T) {
	if w := Default().Warnings(); len(w) != 0 {
		t.Errorf("the defaults warn: %v", w)
	}
	tests := []struct {
		name string
		mod  func(c *Config)
		want string
	}{
		{"emulator", func(c *Config) { c.Emulator.Address = "127.0.0.1:8443" }, "emulator.address"},
		{"plaintext", func(c *Config) { c.Emulator.Address, c.Emulator.Plaintext = "127.0.0.1:8443", true }, "emulator.plaintext"},
		{"bearer", func(c *Config) { c.Portal.Auth.Method = PortalBearer }, "experimental"},
		{"legacy", func(c *Config) { c.Portal.Mode = ModeLegacy }, "portal.mode"},
		{"no retries", func(c *Config) { c.HTTP.MaxAttempts = 1 }, "http.max_attempts"},
		{"request longer than the run", func(c *Config) { c.HTTP.Timeout = Duration(2 * time.Hour) }, "run_timeout"},
		{"spool_after longer than the run", func(c *Config) { c.SpoolAfter = Duration(2 * time.Hour) }, "spool_after"},
		{"keyring cache", func(c *Config) { c.PublicAPI.Auth.PersistentCache = true }, "reboot"},
	}
	for _, tt := range tests {
		c := Default()
		tt.mod(c)
		w := c.Warnings()
		if len(w) == 0 || !strings.Contains(strings.Join(w, "\n"), tt.want) {
			t.Errorf("%s: warnings %q, want one naming %q", tt.name, w, tt.want)
		}
	}
}
