package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAuthKeys covers every way in: what a user writes, what it resolves
// to, and the error (naming the key and the fix) for each mistake.
func TestAuthKeys(t *testing.T) {
	dir := t.TempDir()
	private := func(name, body string) string { return writeFileIn(t, dir, name, body, 0o600) }
	loose := writeFileIn(t, dir, "loose", "x\n", 0o644)
	ests := private("ests", "ests-value\n")
	rt := private("rt", "refresh-value\n")
	cert := private("cert.pem", "-----BEGIN CERTIFICATE-----\n")
	tok := private("tok", "token-value\n")
	const app = "11111111-2222-3333-4444-555555555555"
	cases := []struct {
		name    string
		yaml    string
		env     map[string]string
		wantErr []string
		check   func(t *testing.T, c *Config)
	}{
		{name: "defaults", check: func(t *testing.T, c *Config) {
			if c.Portal.Auth.Method != PortalCookies || c.Portal.Mode != ModeProxy || c.PublicAPI.Auth.Method != "" {
				t.Errorf("defaults: %+v %+v", c.Portal, c.PublicAPI.Auth)
			}
			if want := filepath.Join(c.Dir, "defenderharvester-session.json"); c.Portal.SessionCache != want {
				t.Errorf("session cache default %q, want %q: next to the state file, in the config file's folder", c.Portal.SessionCache, want)
			}
		}},
		{name: "session cache follows the state file", yaml: "state_file: /var/lib/dh/state.db\n", check: func(t *testing.T, c *Config) {
			if c.Portal.SessionCache != filepath.FromSlash("/var/lib/dh/defenderharvester-session.json") {
				t.Errorf("session cache %q", c.Portal.SessionCache)
			}
		}},
		{name: "ests from file", yaml: "portal:\n  auth:\n    method: ests\n    ests_file: " + ests + "\n", check: func(t *testing.T, c *Config) {
			if c.Secrets.ESTS != "ests-value" {
				t.Errorf("ESTS = %q", c.Secrets.ESTS)
			}
		}},
		{name: "ests from env wins", yaml: "portal:\n  auth:\n    method: ests\n    ests_file: " + ests + "\n", env: map[string]string{EnvPortalESTS: "from-env"}, check: func(t *testing.T, c *Config) {
			if c.Secrets.ESTS != "from-env" {
				t.Errorf("ESTS = %q", c.Secrets.ESTS)
			}
		}},
		{name: "ests without cookie", yaml: "portal:\n  auth:\n    method: ests\n", wantErr: []string{"portal.auth.method", EnvPortalESTS, "ests_file"}},
		{name: "ests file readable by others", yaml: "portal:\n  auth:\n    method: ests\n    ests_file: " + loose + "\n", wantErr: []string{"portal.auth.ests_file", "chmod 600"}},
		{name: "ests file without ests", yaml: "portal:\n  auth:\n    ests_file: " + ests + "\n", wantErr: []string{"portal.auth.ests_file", "method: ests"}},
		{name: "bearer from file", yaml: "portal:\n  auth:\n    method: bearer\n    refresh_token_file: " + rt + "\n    client_id: " + app + "\n", check: func(t *testing.T, c *Config) {
			if c.Secrets.RefreshToken != "refresh-value" || c.Portal.Auth.ClientID != app {
				t.Errorf("bearer: %q %q", c.Secrets.RefreshToken, c.Portal.Auth.ClientID)
			}
		}},
		{name: "refresh token env alone does not opt in", env: map[string]string{EnvPortalRefreshToken: "rt"}, check: func(t *testing.T, c *Config) {
			if c.Portal.Auth.Method != PortalCookies || c.Secrets.RefreshToken != "" {
				t.Errorf("bearer chosen without portal.auth.method: bearer: %q", c.Portal.Auth.Method)
			}
		}},
		{name: "bearer without token", yaml: "portal:\n  auth:\n    method: bearer\n", wantErr: []string{"portal.auth.method", EnvPortalRefreshToken}},
		{name: "bearer client id not a guid", yaml: "portal:\n  auth:\n    method: bearer\n    client_id: teams\n", env: map[string]string{EnvPortalRefreshToken: "x"}, wantErr: []string{"portal.auth.client_id", "GUID"}},
		{name: "client id without bearer", yaml: "portal:\n  auth:\n    client_id: " + app + "\n", wantErr: []string{"portal.auth.client_id", "bearer"}},
		{name: "unknown portal method", yaml: "portal:\n  auth:\n    method: password\n", wantErr: []string{"portal.auth.method", `"password"`, "cookies, ests, bearer"}},
		{name: "unknown portal auth key", yaml: "portal:\n  auth:\n    cookie: x\n", wantErr: []string{`unknown key "cookie"`, "ests_file"}},
		{name: "legacy", yaml: "portal:\n  mode: legacy\n  location: weu3\n", env: map[string]string{EnvAccessToken: "t"}, check: func(t *testing.T, c *Config) {
			if c.Portal.Mode != ModeLegacy || c.PublicAPI.Auth.Method != MethodToken {
				t.Errorf("legacy: %+v, method %q", c.Portal, c.PublicAPI.Auth.Method)
			}
		}},
		{name: "legacy without location", yaml: "portal:\n  mode: legacy\n", env: map[string]string{EnvAccessToken: "t"}, wantErr: []string{"portal.location", "weu"}},
		{name: "legacy location steering a host", yaml: "portal:\n  mode: legacy\n  location: evil.com/x\n", env: map[string]string{EnvAccessToken: "t"}, wantErr: []string{"portal.location"}},
		{name: "legacy without credential", yaml: "portal:\n  mode: legacy\n  location: weu\n", wantErr: []string{"portal.mode", "public_api.auth.method"}},
		{name: "location without legacy", yaml: "portal:\n  location: weu\n", wantErr: []string{"portal.location", "legacy"}},
		{name: "unknown mode", yaml: "portal:\n  mode: direct\n", wantErr: []string{"portal.mode", "proxy, legacy"}},
		{name: "old keys mean client_secret", yaml: "public_api:\n  client_id: " + app + "\n", env: map[string]string{EnvClientSecret: "s"}, check: func(t *testing.T, c *Config) {
			if c.PublicAPI.Auth.Method != MethodClientSecret || c.PublicAPI.Auth.ClientID != app {
				t.Errorf("method %q client %q", c.PublicAPI.Auth.Method, c.PublicAPI.Auth.ClientID)
			}
		}},
		{name: "DH_ACCESS_TOKEN means token", env: map[string]string{EnvAccessToken: "t", EnvClientID: app, EnvClientSecret: "s"}, check: func(t *testing.T, c *Config) {
			if c.PublicAPI.Auth.Method != MethodToken {
				t.Errorf("method %q", c.PublicAPI.Auth.Method)
			}
		}},
		{name: "token file", yaml: "public_api:\n  access_token_file: " + tok + "\n  auth:\n    method: token\n", check: func(t *testing.T, c *Config) {
			if c.Secrets.AccessToken != "token-value" {
				t.Errorf("token %q", c.Secrets.AccessToken)
			}
		}},
		{name: "token without token", yaml: "public_api:\n  auth:\n    method: token\n", wantErr: []string{"public_api.auth.method", EnvAccessToken}},
		{name: "client_secret without secret", yaml: "public_api:\n  auth:\n    method: client_secret\n    client_id: " + app + "\n", wantErr: []string{"public_api.auth.method", EnvClientSecret}},
		{name: "client_secret without client id", yaml: "public_api:\n  auth:\n    method: client_secret\n", env: map[string]string{EnvClientSecret: "s"}, wantErr: []string{"public_api.auth.client_id"}},
		{name: "certificate", yaml: "public_api:\n  auth:\n    method: certificate\n    client_id: " + app + "\n    certificate_file: " + cert + "\n    persistent_cache: true\n", check: func(t *testing.T, c *Config) {
			if c.PublicAPI.Auth.CertificateFile != cert {
				t.Errorf("cert %q", c.PublicAPI.Auth.CertificateFile)
			}
		}},
		{name: "certificate readable by others", yaml: "public_api:\n  auth:\n    method: certificate\n    client_id: " + app + "\n    certificate_file: " + loose + "\n", wantErr: []string{"public_api.auth.certificate_file", "chmod 600"}},
		{name: "certificate without file", yaml: "public_api:\n  auth:\n    method: certificate\n    client_id: " + app + "\n", wantErr: []string{"public_api.auth.certificate_file", "PEM"}},
		{name: "certificate file with another method", yaml: "public_api:\n  auth:\n    method: azure_cli\n    certificate_file: " + cert + "\n", wantErr: []string{"public_api.auth.certificate_file", "method: certificate"}},
		{name: "token cache off", yaml: "public_api:\n  auth:\n    method: certificate\n    client_id: " + app + "\n    certificate_file: " + cert + "\n    token_cache: false\n", check: func(t *testing.T, c *Config) {
			if c.PublicAPI.Auth.TokenCacheOn() {
				t.Error("token_cache: false left the token cache on")
			}
		}},
		{name: "token cache on by default", yaml: "public_api:\n  auth:\n    method: certificate\n    client_id: " + app + "\n    certificate_file: " + cert + "\n", check: func(t *testing.T, c *Config) {
			if !c.PublicAPI.Auth.TokenCacheOn() {
				t.Error("the token cache is off by default")
			}
		}},
		{name: "managed identity", yaml: "public_api:\n  auth:\n    method: managed_identity\n"},
		{name: "workload identity", yaml: "public_api:\n  auth:\n    method: workload_identity\n"},
		{name: "azure cli", yaml: "public_api:\n  auth:\n    method: azure_cli\n"},
		{name: "device code", yaml: "state_file: " + filepath.Join(dir, "s.db") + "\npublic_api:\n  auth:\n    method: device_code\n    persistent_cache: true\n", check: func(t *testing.T, c *Config) {
			if c.PublicAPI.Auth.AuthRecordFile != filepath.Join(dir, "defenderharvester-auth-record.json") {
				t.Errorf("auth record default %q", c.PublicAPI.Auth.AuthRecordFile)
			}
		}},
		{name: "auth record without device code", yaml: "public_api:\n  auth:\n    method: azure_cli\n    auth_record_file: x\n", wantErr: []string{"public_api.auth.auth_record_file", "device_code"}},
		{name: "persistent cache with managed identity", yaml: "public_api:\n  auth:\n    method: managed_identity\n    persistent_cache: true\n", wantErr: []string{"public_api.auth.persistent_cache"}},
		{name: "unknown public method", yaml: "public_api:\n  auth:\n    method: password\n", wantErr: []string{"public_api.auth.method", `"password"`, "device_code"}},
		{name: "client id not a guid", yaml: "public_api:\n  auth:\n    method: device_code\n    client_id: myapp\n", wantErr: []string{"public_api.auth.client_id", "GUID"}},
		{name: "auth tenant not a guid", yaml: "public_api:\n  auth:\n    method: azure_cli\n    tenant_id: contoso\n", wantErr: []string{"public_api.auth.tenant_id", "GUID"}},
		{name: "secret file with another method", yaml: "public_api:\n  client_secret_file: " + tok + "\n  auth:\n    method: azure_cli\n", wantErr: []string{"public_api.client_secret_file", "client_secret"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFileIn(t, t.TempDir(), "c.yaml", tc.yaml, 0o600)
			cfg, err := Load(p, env(tc.env))
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatal("want an error")
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				for _, secret := range []string{"ests-value", "refresh-value", "token-value", "from-env"} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("error leaks a secret: %q", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, cfg)
			}
		})
	}
}

func writeFileIn(t *testing.T, dir, name, body string, mode uint32) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := writeMode(p, body, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeMode(p, body string, mode uint32) error {
	if err := os.WriteFile(p, []byte(body), os.FileMode(mode)); err != nil {
		return err
	}
	return os.Chmod(p, os.FileMode(mode))
}
