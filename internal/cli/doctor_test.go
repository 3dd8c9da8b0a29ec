package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/defenderharvester/defenderharvester/internal/sim"
	"github.com/defenderharvester/defenderharvester/internal/sim/simtest"
)

// TestDoctorExplainsInjectedFailures runs doctor against the emulator
// with one failure injected per case and checks the row a user reads:
// which data set failed and what PROBLEM/FIX it names.
func TestDoctorExplainsInjectedFailures(t *testing.T) {
	type row struct{ dataSet, problem, fix string }
	cases := []struct {
		name    string
		opts    sim.Options
		sources string
		yaml    func(c sim.Credentials, dir string) string
		env     func(c sim.Credentials) map[string]string
		inject  func(ten *sim.Tenant, c sim.Credentials)
		code    int
		fails   []row
		ok      []string
	}{
		{name: "everything works", sources: "actioncenter,machineactions,customdetections",
			code: exitOK, ok: []string{"portal session", "public API token", "actioncenter", "machineactions", "customdetections"}},
		{name: "expired cookie", sources: "actioncenter",
			inject: func(ten *sim.Tenant, _ sim.Credentials) { ten.RevokePortalSession() },
			code:   exitFailed, fails: []row{{"portal session", "expired", "Sign in"}, {"actioncenter", "portal session", "Sign in"}}},
		{name: "ests bootstrap", sources: "actioncenter,customdetections",
			yaml: func(sim.Credentials, string) string { return "portal:\n  auth:\n    method: ests\n" },
			env: func(c sim.Credentials) map[string]string {
				return map[string]string{"DH_PORTAL_ESTS": c.ESTSAuthPersistent}
			},
			code: exitOK, ok: []string{"portal session", "actioncenter", "customdetections"}},
		{name: "ests cookie of a user without a Defender role", sources: "actioncenter",
			yaml: func(sim.Credentials, string) string { return "portal:\n  auth:\n    method: ests\n" },
			env:  func(c sim.Credentials) map[string]string { return map[string]string{"DH_PORTAL_ESTS": "NOROLE"} },
			code: exitFailed, fails: []row{{"actioncenter", "403", "Security Reader"}}},
		{name: "conditional access blocks the app", sources: "machineactions",
			inject: func(ten *sim.Tenant, c sim.Credentials) { ten.SetConditionalAccessBlock(c.ClientID, true) },
			code:   exitFailed, fails: []row{{"public API token", "Conditional Access", "exclude"}}},
		{name: "app without permission", sources: "machineactions",
			env: func(c sim.Credentials) map[string]string {
				return map[string]string{"DH_CLIENT_ID": c.RestrictedClientID, "DH_CLIENT_SECRET": c.RestrictedClientSecret}
			},
			code: exitFailed, fails: []row{{"machineactions", "403", "Machine.Read.All"}}},
		{name: "wrong tenant", sources: "machineactions",
			yaml: func(sim.Credentials, string) string {
				return "public_api:\n  auth:\n    method: client_secret\n    tenant_id: 11111111-1111-4111-8111-111111111111\n"
			},
			code: exitFailed, fails: []row{{"public API token", "Wrong tenant", "tenant_id"}}},
		{name: "no portal session", sources: "actioncenter",
			env:  func(sim.Credentials) map[string]string { return map[string]string{"DH_PORTAL_COOKIE": ""} },
			code: exitFailed, fails: []row{{"portal session", "not configured", "defenderharvester login portal --cookie-file"}, {"actioncenter", "not configured", "DH_PORTAL_COOKIE"}}},
		{name: "no public API credential", sources: "machineactions",
			env: func(sim.Credentials) map[string]string {
				return map[string]string{"DH_CLIENT_ID": "", "DH_CLIENT_SECRET": ""}
			},
			code: exitFailed, fails: []row{{"public API token", "needs credentials", "public_api.auth.method"}}},
		{name: "audit log webhook without a certificate", sources: "auditlog",
			yaml: func(sim.Credentials, string) string {
				return "sources:\n  auditlog:\n    webhook:\n      address: https://dh.example.com/o365\n"
			},
			env: func(sim.Credentials) map[string]string {
				return map[string]string{"DH_WEBHOOK_AUTH_ID": "s3cret-authid"}
			},
			code: exitFailed, ok: []string{"auditlog"}, fails: []row{{"auditlog webhook", "no certificate", "tls_cert_file"}}},
		{name: "audit log webhook without an AuthID", sources: "auditlog",
			yaml: func(sim.Credentials, string) string {
				return "sources:\n  auditlog:\n    webhook:\n      address: https://dh.example.com/o365\nserve:\n  webhook:\n    plain_http: true\n"
			},
			code: exitFailed, fails: []row{{"auditlog", "DH_WEBHOOK_AUTH_ID", "DH_WEBHOOK_AUTH_ID"}}},
		{name: "wrong legacy region", sources: "suppressionrules", opts: sim.Options{LegacyLocation: "eus"},
			yaml: func(sim.Credentials, string) string { return "portal:\n  mode: legacy\n  location: weu\n" },
			code: exitFailed, fails: []row{{"suppressionrules", "region", "portal.location"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.opts.Seed, tc.opts.Machines = 3, 2
			ten, srv, ca := simtest.Start(t, tc.opts, dir)
			c := ten.Credentials()
			yaml := fmt.Sprintf("tenant_id: %s\nstate_file: %s\nemulator:\n  address: %s\n  ca_file: %s\n", c.TenantID, filepath.Join(dir, "state.db"), srv.Addr(), ca)
			if tc.yaml != nil {
				yaml += tc.yaml(c, dir)
			}
			cfgPath := filepath.Join(dir, "c.yaml")
			if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			vars := map[string]string{"DH_CLIENT_ID": c.ClientID, "DH_CLIENT_SECRET": c.ClientSecret,
				"DH_PORTAL_COOKIE": PortalCookieHeader(c.SccAuth, c.XSRFToken)}
			if tc.env != nil {
				for k, v := range tc.env(c) {
					if v == "NOROLE" {
						v = ten.MintESTSCookie(c.NoRoleUPN)
					}
					vars[k] = v
				}
			}
			if tc.inject != nil {
				tc.inject(ten, c)
			}
			env, out, errb := testEnv(vars)
			code := Main(context.Background(), env, []string{"doctor", "--config", cfgPath, "--sources", tc.sources})
			all := out.String() + errb.String()
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s", code, tc.code, all)
			}
			lines := strings.Split(out.String(), "\n")
			find := func(name string) string {
				for _, l := range lines {
					if strings.HasPrefix(l, name+"  ") {
						return l
					}
				}
				t.Fatalf("no row for %q:\n%s", name, all)
				return ""
			}
			for _, name := range tc.ok {
				if l := find(name); !strings.Contains(l, " ok ") {
					t.Errorf("%s: want ok, got %q", name, l)
				}
			}
			for _, r := range tc.fails {
				l := find(r.dataSet)
				for _, w := range []string{"FAIL", r.problem, r.fix} {
					if !strings.Contains(l, w) {
						t.Errorf("%s row does not mention %q:\n%s", r.dataSet, w, l)
					}
				}
			}
			// Every failing or warning row says what to do, concretely.
			for _, l := range lines {
				if !strings.Contains(l, " FAIL ") && !strings.Contains(l, " warning ") {
					continue
				}
				if strings.HasSuffix(strings.TrimSpace(l), " -") {
					t.Errorf("row without a FIX: %q", l)
				}
				for _, g := range []string{"Do what the problem says", "see the full error", "fine for tests and trials", "remove the setting for production use"} {
					if strings.Contains(l, g) {
						t.Errorf("generic FIX %q in %q", g, l)
					}
				}
			}
			for _, secret := range []string{c.ClientSecret, c.SccAuth, c.RestrictedClientSecret, c.ESTSAuthPersistent} {
				if secret != "" && strings.Contains(all, secret) {
					t.Fatal("doctor printed a secret")
				}
			}
		})
	}
}
