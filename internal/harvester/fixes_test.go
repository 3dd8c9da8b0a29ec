package harvester

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/auth"
	"github.com/defenderharvester/defenderharvester/internal/config"
	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/sink"
)

// generic are the fixes that tell a user nothing they did not know.
var generic = []string{"Do what the problem says", "fine for tests and trials", "remove the setting for production use", genericFix}

func checkFix(t *testing.T, what, fix string, wants ...string) {
	t.Helper()
	if strings.TrimSpace(fix) == "" {
		t.Errorf("%s: empty FIX", what)
		return
	}
	for _, g := range generic {
		if strings.Contains(fix, g) {
			t.Errorf("%s: generic FIX %q", what, fix)
		}
	}
	for _, w := range wants {
		if !strings.Contains(fix, w) {
			t.Errorf("%s: FIX %q does not name %q", what, fix, w)
		}
	}
}

// TestEveryConfigWarningHasItsFix turns on every risky setting
// config.Warnings knows and checks each warning has its own fix.
func TestEveryConfigWarningHasItsFix(t *testing.T) {
	cfg := config.Default()
	cfg.Emulator.Address, cfg.Emulator.Plaintext = "127.0.0.1:8443", true
	cfg.Portal.Auth.Method = config.PortalBearer
	cfg.Portal.Mode = config.ModeLegacy
	cfg.HTTP.MaxAttempts = 1
	cfg.RunTimeout = config.Duration(time.Minute)
	cfg.HTTP.Timeout, cfg.SpoolAfter = config.Duration(time.Hour), config.Duration(time.Hour)
	cfg.PublicAPI.Auth.PersistentCache = true
	ws := cfg.Warnings()
	if len(ws) < len(configWarningFixes) {
		t.Fatalf("only %d warnings for %d fixes: %q", len(ws), len(configWarningFixes), ws)
	}
	for _, w := range ws {
		fix, specific := configWarningFix(w)
		if !specific {
			t.Errorf("warning %q has no fix of its own: add it to configWarningFixes", w)
		}
		checkFix(t, w, fix)
	}
}

// TestSetupErrorsHaveTheirFix: each way the portal session or the public
// API credential cannot be built gets a fix naming what to set or run.
func TestSetupErrorsHaveTheirFix(t *testing.T) {
	dir := t.TempDir()
	base := func() *config.Config {
		cfg := config.Default()
		cfg.TenantID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
		cfg.Portal.SessionCache = filepath.Join(dir, "session.json")
		return cfg
	}
	portal := []struct {
		name  string
		cfg   func(*config.Config)
		wants []string
	}{
		{"no session", func(*config.Config) {}, []string{"defenderharvester login portal", "DH_PORTAL_COOKIE", "portal.cookie_file"}},
		{"ests without cookie", func(c *config.Config) { c.Portal.Auth.Method = config.PortalESTS }, []string{"DH_PORTAL_ESTS", "portal.auth.ests_file"}},
		{"bearer without token", func(c *config.Config) { c.Portal.Auth.Method = config.PortalBearer }, []string{"DH_PORTAL_REFRESH_TOKEN", "portal.auth.refresh_token_file"}},
		{"bad cookie header", func(c *config.Config) { c.Secrets.PortalCookie = "just-a-value" }, []string{"DH_PORTAL_COOKIE", "portal.cookie_file", "login portal"}},
		{"session cache is a directory", func(c *config.Config) { c.Portal.SessionCache = dir }, []string{"portal.session_cache"}},
		{"bad tenant", func(c *config.Config) {
			c.TenantID = "a b"
			c.Secrets.SccAuth, c.Secrets.XSRF = "s", "x"
		}, []string{"tenant_id"}},
	}
	for _, tc := range portal {
		cfg := base()
		tc.cfg(cfg)
		_, err := NetFor(cfg, http.DefaultTransport, nil, nil).PortalSession(cfg, cfg.TenantID)
		if err == nil {
			t.Fatalf("%s: no error", tc.name)
		}
		problem, fix, specific := explain(err, "portal")
		if !specific || problem == "" {
			t.Errorf("%s: %v has no specific fix", tc.name, err)
		}
		checkFix(t, tc.name, fix, tc.wants...)
	}

	cert := filepath.Join(dir, "missing.pem")
	public := []struct {
		name  string
		cfg   func(*config.Config)
		wants []string
	}{
		{"no credential", func(*config.Config) {}, []string{"public_api.auth.method", "DH_CLIENT_SECRET"}},
		{"client id without secret", func(c *config.Config) { c.PublicAPI.ClientID = "app" }, []string{"DH_CLIENT_SECRET", "public_api.client_secret_file"}},
		{"no tenant", func(c *config.Config) {
			c.TenantID = ""
			c.PublicAPI.Auth.Method, c.PublicAPI.Auth.ClientID, c.Secrets.ClientSecret = config.MethodClientSecret, "app", "s"
		}, []string{"tenant_id", "DH_TENANT_ID"}},
		{"certificate missing", func(c *config.Config) {
			c.PublicAPI.Auth.Method, c.PublicAPI.Auth.ClientID, c.PublicAPI.Auth.CertificateFile = config.MethodCertificate, "app", cert
		}, []string{"public_api.auth.certificate_file"}},
	}
	for _, tc := range public {
		cfg := base()
		tc.cfg(cfg)
		_, _, err := NetFor(cfg, http.DefaultTransport, nil, nil).Credential(cfg, cfg.TenantID, nil)
		if err == nil {
			t.Fatalf("%s: no error", tc.name)
		}
		_, fix, specific := explain(err, "public")
		if !specific {
			t.Errorf("%s: %v has no specific fix", tc.name, err)
		}
		checkFix(t, tc.name, fix, tc.wants...)
	}
	if _, err := os.Stat(cert); err == nil {
		t.Fatal("the test's certificate exists")
	}
}

// TestExplainNamesKeysAndCommands: the answers of the services get fixes
// that name the key, variable or command to use.
func TestExplainNamesKeysAndCommands(t *testing.T) {
	cases := []struct {
		err   error
		api   string
		wants []string
	}{
		{mde.ErrSessionExpired, "portal", []string{"Sign in", "defenderharvester login portal", "portal.cookie_file", "DH_PORTAL_ESTS"}},
		{auth.ErrSessionExpired, "portal", []string{"defenderharvester login portal"}},
		{mde.ErrSessionUpkeep, "portal", []string{"defenderharvester login portal"}},
		{mde.ErrUnauthorized, "public", []string{"DH_CLIENT_SECRET", "Machine.Read.All", "admin consent"}},
		{mde.ErrForbidden, "public", []string{"Machine.Read.All"}},
		{mde.ErrThrottled, "portal", []string{"portal.rate_per_second"}},
		{mde.ErrCertificate, "public", []string{"emulator.ca_file"}},
		{&mde.APIError{Status: 403, Code: mde.AFMissingPermission, Hint: "grant the app registration the Office 365 Management APIs application permission ActivityFeed.Read and give admin consent"}, "public", []string{"Grant", "ActivityFeed.Read"}},
	}
	for _, tc := range cases {
		_, fix, specific := explain(tc.err, tc.api)
		if !specific {
			t.Errorf("%v: not specific", tc.err)
		}
		checkFix(t, tc.err.Error(), fix, tc.wants...)
	}
	if _, fix, specific := explain(errors.New("something odd"), "portal"); specific || fix != genericFix {
		t.Errorf("an unknown error got %q (specific %v)", fix, specific)
	}
	if _, fix := Explain(errors.New("something odd"), "portal"); fix == "" {
		t.Error("Explain gives no fix for an unknown error")
	}
}

// TestEveryOutputHasItsFix: each registered output has a fix naming its
// section, and its TLS warning says what to remove.
func TestEveryOutputHasItsFix(t *testing.T) {
	for _, f := range sink.All() {
		checkFix(t, f.Name, outputFix(f.Name), "outputs."+f.Name)
		checkFix(t, f.Name+" warning", outputWarningFix(f.Name, "TLS certificate verification is off (insecure_skip_verify: true)"), "outputs."+f.Name+".insecure_skip_verify")
	}
	for _, m := range append([]string{""}, config.PublicMethods...) {
		checkFix(t, "method "+m, publicMethodFix(m), "public_api.")
	}
	checkFix(t, "source", sourceFix("timeline"), "sources.timeline", "--sources timeline")
}

// TestProductionTransportHonoursProxyEnv: the transport every API client,
// session and credential of a run shares takes HTTPS_PROXY/NO_PROXY from
// the environment; the emulator's dials the emulator directly.
func TestProductionTransportHonoursProxyEnv(t *testing.T) {
	same := func(a, b any) bool { return reflect.ValueOf(a).Pointer() == reflect.ValueOf(b).Pointer() }
	n, err := NewNet(config.Default(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr, ok := n.Transport.(*http.Transport)
	if !ok || tr.Proxy == nil || !same(tr.Proxy, http.ProxyFromEnvironment) {
		t.Fatalf("production transport %T does not use http.ProxyFromEnvironment", n.Transport)
	}
	emu := config.Default()
	emu.Emulator.Address = "127.0.0.1:1"
	n, err = NewNet(emu, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tr, ok := n.Transport.(*http.Transport); !ok || tr.Proxy != nil {
		t.Fatalf("the emulator transport goes through a proxy (%T)", n.Transport)
	}
}
