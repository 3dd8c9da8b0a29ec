package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func writeFile(t *testing.T, name, body string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadErrorsNameTheKey(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown top-level key", "tenant: x\n", []string{`unknown key "tenant"`, "tenant_id"}},
		{"unknown nested key", "portal:\n  baseurl: https://x\n", []string{`unknown key "baseurl"`, "base_url", "line 2"}},
		{"bad tenant", "tenant_id: contoso\n", []string{"tenant_id", "GUID"}},
		{"bad duration", "initial_lookback: soon\n", []string{"initial_lookback", "15m, 24h or 7d"}},
		{"http base url", "portal:\n  base_url: http://security.microsoft.com\n", []string{"portal.base_url", "https"}},
		{"concurrency", "concurrency: 0\n", []string{"concurrency", "1 to 64"}},
		{"emulator without CA", "emulator:\n  address: 127.0.0.1:9\n", []string{"emulator.ca_file"}},
		{"log level", "log_level: loud\n", []string{"log_level"}},
		{"not yaml", "portal: [\n", []string{"invalid YAML"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, "c.yaml", tc.yaml, 0o600)
			_, err := Load(p, env(nil))
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestLoadDefaultsAndEnv(t *testing.T) {
	cfg, err := Load("", env(map[string]string{
		EnvTenantID:     "72f988bf-86f1-41af-91ab-2d7cd011db47",
		EnvPortalCookie: "sccauth=abc; XSRF-TOKEN=def",
		EnvClientSecret: "s3cret",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TenantID != "72f988bf-86f1-41af-91ab-2d7cd011db47" || cfg.Secrets.PortalCookie == "" || cfg.Secrets.ClientSecret != "s3cret" {
		t.Fatalf("environment not applied: %+v", cfg)
	}
	if time.Duration(cfg.InitialLookback) != 24*time.Hour || cfg.Portal.BaseURL != "https://security.microsoft.com" {
		t.Fatalf("defaults not applied: %+v", cfg)
	}
}

func TestSecretFileMustBePrivate(t *testing.T) {
	p := writeFile(t, "secret", "s3cret\n", 0o644)
	cfgPath := writeFile(t, "c.yaml", "public_api:\n  client_secret_file: "+p+"\n", 0o600)
	_, err := Load(cfgPath, env(nil))
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("want a chmod hint, got %v", err)
	}
	if err != nil && strings.Contains(err.Error(), "s3cret") {
		t.Fatal("the error leaks the secret")
	}
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(cfgPath, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Secrets.ClientSecret != "s3cret" {
		t.Fatalf("secret = %q", cfg.Secrets.ClientSecret)
	}
}

func TestDecodePluginStrict(t *testing.T) {
	type pluginCfg struct {
		PageSize int      `yaml:"page_size"`
		Overlap  Duration `yaml:"overlap"`
	}
	p := writeFile(t, "c.yaml", "sources:\n  actioncenter:\n    enabled: false\n    page_size: 50\n    overlap: 1h\n  timeline:\n    pagesize: 3\n", 0o600)
	cfg, err := Load(p, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	var ac pluginCfg
	if err := DecodePlugin(cfg.Sources["actioncenter"], "sources.actioncenter", &ac); err != nil {
		t.Fatal(err)
	}
	if ac.PageSize != 50 || time.Duration(ac.Overlap) != time.Hour {
		t.Fatalf("decoded %+v", ac)
	}
	on, err := Enabled(cfg.Sources["actioncenter"])
	if err != nil || on {
		t.Fatalf("enabled = %v, %v; want false", on, err)
	}
	var tl pluginCfg
	err = DecodePlugin(cfg.Sources["timeline"], "sources.timeline", &tl)
	if err == nil || !strings.Contains(err.Error(), "sources.timeline") || !strings.Contains(err.Error(), `"pagesize"`) || !strings.Contains(err.Error(), "page_size") {
		t.Fatalf("want a strict error naming the section, key and known keys, got %v", err)
	}
}

// TestDuration: the one duration syntax of the config, the sources and the
// outputs: Go units plus whole days, never negative.
func TestDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{"15m", 15 * time.Minute, ""},
		{"36h", 36 * time.Hour, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"7d", 7 * 24 * time.Hour, ""},
		{" 2d ", 48 * time.Hour, ""},
		{"0s", 0, ""},
		{"0d", 0, ""},
		{"", 0, "15m, 24h or 7d"},
		{"x", 0, "15m, 24h or 7d"},
		{"7days", 0, "15m, 24h or 7d"},
		{"-5m", 0, "negative"},
		{"-2d", 0, "negative"},
		{"1.5d", 0, "whole number of days"},
		{"3651d", 0, "at most 3650d"},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseDuration(%q) = %v, %v; want an error saying %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
		var d Duration
		if err := d.UnmarshalText([]byte(tt.in)); err != nil || d.D() != tt.want {
			t.Errorf("UnmarshalText(%q) = %v, %v", tt.in, d, err)
		}
	}
	var v struct {
		D Duration `yaml:"d"`
	}
	if err := yaml.Unmarshal([]byte("d: [1]"), &v); err == nil || !strings.Contains(err.Error(), "line 1") || !strings.Contains(err.Error(), "expected a duration") {
		t.Errorf("a list as a duration: err = %v", err)
	}
	v.D = Duration(15 * time.Minute)
	out, err := yaml.Marshal(v)
	if err != nil || strings.TrimSpace(string(out)) != "d: 15m0s" {
		t.Errorf("Marshal = %q, %v", out, err)
	}
	if err := yaml.Unmarshal(out, &v); err != nil || v.D.D() != 15*time.Minute {
		t.Errorf("the marshalled form does not read back: %v, %v", v.D, err)
	}
	if s := fmt.Sprint(Duration(time.Hour)); s != "1h0m0s" {
		t.Errorf("printed as %q, want 1h0m0s", s)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte("tenant_id: 72f988bf-86f1-41af-91ab-2d7cd011db47\nsources:\n  timeline:\n    machines: [all]\n"))
	f.Add([]byte("portal: {base_url: 1}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := Default()
		if err := Decode(data, cfg); err != nil {
			return
		}
		_ = cfg.Validate()
		for name, n := range cfg.Sources {
			var m map[string]any
			_ = DecodePlugin(n, "sources."+name, &m)
			_, _ = Enabled(n)
		}
	})
}
