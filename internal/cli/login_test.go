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

// TestLoginPortalStoresTheSession signs in with each way in, checks what
// the user is told and that the cached session (0600) lets a later
// command work with no secret in its environment.
func TestLoginPortalStoresTheSession(t *testing.T) {
	cases := []struct {
		name string
		flag string
		body func(c sim.Credentials) string
	}{
		{"browser cookies", "--cookie-file", func(c sim.Credentials) string { return PortalCookieHeader(c.SccAuth, c.XSRFToken) }},
		{"ESTS cookie", "--ests-file", func(c sim.Credentials) string { return c.ESTSAuthPersistent }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ten, srv, ca := simtest.Start(t, sim.Options{Seed: 4, Machines: 2}, dir)
			c := ten.Credentials()
			cfgPath := filepath.Join(dir, "c.yaml")
			yaml := fmt.Sprintf("state_file: %s\nemulator:\n  address: %s\n  ca_file: %s\n", filepath.Join(dir, "state.db"), srv.Addr(), ca)
			if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			secretFile := filepath.Join(dir, "secret")
			if err := os.WriteFile(secretFile, []byte(tc.body(c)+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			env, out, errb := testEnv(nil)
			if code := Main(context.Background(), env, []string{"login", "portal", "--config", cfgPath, tc.flag, secretFile}); code != exitUsage || !strings.Contains(errb.String(), "chmod 600") {
				t.Fatalf("a secret file readable by others was accepted: exit %d\n%s", code, errb)
			}
			os.Chmod(secretFile, 0o600)
			env, out, errb = testEnv(nil)
			code := Main(context.Background(), env, []string{"login", "portal", "--config", cfgPath, tc.flag, secretFile})
			all := out.String() + errb.String()
			if code != exitOK {
				t.Fatalf("exit %d\n%s", code, all)
			}
			if !strings.Contains(out.String(), "tenant "+c.TenantID) || !strings.Contains(out.String(), "expires") {
				t.Errorf("login does not print the tenant and expiry:\n%s", all)
			}
			for _, s := range []string{c.SccAuth, c.ESTSAuthPersistent} {
				if strings.Contains(all, s) {
					t.Fatal("login printed a secret")
				}
			}
			cache := filepath.Join(dir, "defenderharvester-session.json")
			st, err := os.Stat(cache)
			if err != nil || st.Mode().Perm() != 0o600 {
				t.Fatalf("session cache %s: %v, mode %v; want 0600", cache, err, st)
			}
			// A later command needs no cookie: the cached session serves it.
			env, out, errb = testEnv(nil)
			if code := Main(context.Background(), env, []string{"doctor", "--config", cfgPath, "--sources", "customdetections"}); code != exitOK {
				t.Fatalf("doctor after login: exit %d\n%s%s", code, out, errb)
			}
		})
	}
}

func TestLoginUsage(t *testing.T) {
	for _, args := range [][]string{{"login"}, {"login", "browser"}, {"login", "portal", "--cookie-file", "a", "--ests-file", "b"}, {"login", "device-code", "--scope", "everything"}} {
		env, _, errb := testEnv(nil)
		if code := Main(context.Background(), env, args); code != exitUsage {
			t.Errorf("%v: exit %d, want %d\n%s", args, code, exitUsage, errb)
		}
	}
}
