package mde

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/defenderharvester/defenderharvester/internal/auth"
)

// clientErr gets a real error from a portal or public client for status.
func clientErr(t *testing.T, public bool, status int, body string) error {
	t.Helper()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		w.Write([]byte(body))
	})
	var err error
	if public {
		c, _ := newTestPublic(t, h, func(o *PublicOptions) { o.MaxAttempts = 1 })
		_, err = c.Get(context.Background(), "/api/machineactions", nil)
	} else {
		c, _ := newTestPortal(t, h, func(o *PortalOptions) { o.MaxAttempts = 1 })
		_, err = c.Get(context.Background(), "/apiproxy/mtp/actionCenter/actioncenterui/history-actions/", nil)
	}
	if err == nil {
		t.Fatalf("HTTP %d gave no error", status)
	}
	return err
}

func TestExplain(t *testing.T) {
	dnsErr := (&doer{o: ClientOptions{}}).transportErr(context.Background(), context.Background(),
		&net.DNSError{Err: "no such host", Name: "wdatpprd-xx.securitycenter.windows.com", IsNotFound: true}, "wdatpprd-xx.securitycenter.windows.com", false)
	tests := []struct {
		name                 string
		err                  func(t *testing.T) error
		wantProblem, wantFix string // substrings
	}{
		{"expired cookie", func(t *testing.T) error { return clientErr(t, false, 401, "") }, "expired", "Sign in"},
		{"portal 403 names the role", func(t *testing.T) error { return clientErr(t, false, 403, `{"Message":"Forbidden"}`) }, "403", "Security Reader"},
		{"public 403 names the permission", func(t *testing.T) error { return clientErr(t, true, 403, "") }, "403", "Machine.Read.All"},
		{"throttled", func(t *testing.T) error { return clientErr(t, true, 429, "") }, "throttling", "Wait"},
		{"not found", func(t *testing.T) error { return clientErr(t, false, 404, "") }, "404", "feature"},
		{"token rejected", func(t *testing.T) error { return clientErr(t, true, 401, "") }, "401", "client id"},
		{"host does not resolve", func(*testing.T) error { return fmt.Errorf("legacy API GET /x: %w", dnsErr) }, "does not resolve", "location"},
		{"certificate", func(*testing.T) error { return fmt.Errorf("portal: %w: x", ErrCertificate) }, "certificate", "CA"},
		{"sign-in error", func(*testing.T) error {
			return fmt.Errorf("renewing: %w (%w)", &auth.SignInError{Code: 53003, Hint: "a Conditional Access policy blocked the sign-in; ask for an exclusion"}, ErrSessionExpired)
		}, "AADSTS53003", "Conditional Access"},
		{"upkeep", func(*testing.T) error { return fmt.Errorf("x: %w: %w", ErrSessionUpkeep, errors.New("dial")) }, "fresh", "Sign in"},
		{"no legacy route", func(*testing.T) error { return fmt.Errorf("x: %w", ErrNoLegacyHost) }, "legacy", "portal proxy"},
		{"every attempt timed out", func(*testing.T) error {
			return fmt.Errorf("portal GET /apiproxy/x: giving up after 5 attempts: %w: no answer from security.microsoft.com within 1m0s", ErrTimeout)
		}, "did not answer", "http.timeout"},
		{"wrong tenant", func(*testing.T) error { return fmt.Errorf("x: %w: belongs to tenant b", ErrWrongTenant) }, "another tenant", "tenant_id"},
		{"cancelled", func(*testing.T) error { return fmt.Errorf("x: %w", context.Canceled) }, "cancelled", "again"},
		{"unknown", func(*testing.T) error { return errors.New("something") }, "does not recognise", "debug"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.err(t)
			problem, fix := Explain(err)
			if !strings.Contains(problem, tt.wantProblem) || !strings.Contains(fix, tt.wantFix) {
				t.Errorf("Explain(%v) = %q / %q; want %q / %q", err, problem, fix, tt.wantProblem, tt.wantFix)
			}
			for _, s := range []string{problem, fix} {
				if s == "" || s[len(s)-1] != '.' || strings.Contains(s, "\n") {
					t.Errorf("%q is not one sentence", s)
				}
			}
		})
	}
	if p, f := Explain(nil); p != "" || f != "" {
		t.Errorf("Explain(nil) = %q, %q", p, f)
	}
}
