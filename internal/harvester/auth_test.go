package harvester

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/auth"
	"github.com/defenderharvester/defenderharvester/internal/clock"
	"github.com/defenderharvester/defenderharvester/internal/config"
	"github.com/defenderharvester/defenderharvester/internal/httpx"
	"github.com/defenderharvester/defenderharvester/internal/httpx/httpxtest"
	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/sim"
	"github.com/defenderharvester/defenderharvester/internal/sim/simtest"
)

// stalledConfig sends every call of cfg to a loopback endpoint that
// misbehaves as mode says, with a short http.timeout.
func stalledConfig(t *testing.T, mode httpxtest.Stall) (*config.Config, http.RoundTripper, func() int) {
	t.Helper()
	addr, requests := httpxtest.StallServer(t, mode)
	cfg := config.Default()
	cfg.TenantID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	cfg.Emulator.Address, cfg.Emulator.Plaintext = addr, true
	cfg.HTTP.Timeout, cfg.HTTP.MaxAttempts, cfg.HTTP.Backoff = config.Duration(200*time.Millisecond), 2, config.Duration(10*time.Millisecond)
	cfg.Portal.SessionCache = ""
	rt, err := mde.NewTransport(mde.TransportOptions{EmulatorAddress: addr, Plaintext: true})
	if err != nil {
		t.Fatal(err)
	}
	return cfg, rt, requests
}

// TestSessionUpkeepFollowsHTTPConfig: the portal session built for a run
// bounds its upkeep (here the root visit for a missing XSRF token) with
// http.timeout and http.max_attempts, so a stalled portal cannot hang it.
func TestSessionUpkeepFollowsHTTPConfig(t *testing.T) {
	for _, mode := range []httpxtest.Stall{httpxtest.NoAnswer, httpxtest.StallBody} {
		cfg, rt, requests := stalledConfig(t, mode)
		cfg.Secrets.SccAuth = "S1" // no XSRF: the first Maintain visits the root
		s, err := NetFor(cfg, rt, nil, nil).PortalSession(cfg, cfg.TenantID)
		if err != nil {
			t.Fatal(err)
		}
		guard, cancel := context.WithTimeout(context.Background(), time.Minute)
		err = s.(auth.Maintainer).Maintain(guard)
		hung := guard.Err() != nil
		cancel()
		if hung {
			t.Fatal("session upkeep hung until the test's guard deadline")
		}
		if !errors.Is(err, httpx.ErrTimeout) || !strings.Contains(err.Error(), "security.microsoft.com") || !strings.Contains(err.Error(), "200ms") {
			t.Fatalf("err = %v, want a timeout naming the portal host and http.timeout", err)
		}
		if n := requests(); n != 2 {
			t.Errorf("%d attempts, want http.max_attempts = 2", n)
		}
	}
}

// TestCredentialFollowsHTTPConfig: Entra token requests made through
// azidentity for the public API get http.timeout per try and
// http.max_attempts, so a stalled authority fails the sign-in in bounded
// time.
func TestCredentialFollowsHTTPConfig(t *testing.T) {
	cfg, rt, requests := stalledConfig(t, httpxtest.NoAnswer)
	cfg.PublicAPI.Auth.Method, cfg.PublicAPI.Auth.ClientID = config.MethodClientSecret, "11111111-2222-3333-4444-555555555555"
	cfg.Secrets.ClientSecret = "s3cret"
	tokens, _, err := NetFor(cfg, rt, nil, nil).Credential(cfg, cfg.TenantID, nil)
	if err != nil {
		t.Fatal(err)
	}
	guard, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = tokens.Token(guard)
	if guard.Err() != nil {
		t.Fatal("the token request hung until the test's guard deadline")
	}
	if err == nil {
		t.Fatal("a stalled authority gave a token")
	}
	if n := requests(); n != 2 {
		t.Errorf("%d attempts reached the authority, want http.max_attempts = 2", n)
	}
}

// TestNetSharesPolicyAndSkew: the Net of a run hands the http.* policy and
// the one skew meter to the API clients, and its client never follows
// redirects.
func TestNetSharesPolicyAndSkew(t *testing.T) {
	cfg := config.Default()
	cfg.HTTP.Timeout, cfg.HTTP.MaxAttempts = config.Duration(42*time.Second), 3
	cfg.HTTP.Backoff, cfg.HTTP.MaxWait = config.Duration(2*time.Second), config.Duration(time.Minute)
	m := clock.NewSkewMeter()
	n, err := NewNet(cfg, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := n.ClientOptions()
	if o.Timeout != 42*time.Second || o.MaxAttempts != 3 || o.BaseBackoff != 2*time.Second || o.MaxWait != time.Minute || o.Skew != m || o.Transport != n.Transport {
		t.Errorf("client options %+v do not carry the config's http.* policy and the run's skew meter", o)
	}
	if tr, ok := n.Transport.(*http.Transport); !ok || tr.ResponseHeaderTimeout != 42*time.Second {
		t.Errorf("transport response-header timeout is not http.timeout")
	}
	c := n.Client()
	if c.Timeout != 42*time.Second {
		t.Errorf("client timeout %s, want http.timeout", c.Timeout)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://evil.example/", http.StatusFound)
	}))
	defer srv.Close()
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Errorf("the run's client followed a redirect (status %d)", resp.StatusCode)
	}
}

// TestLoginPortalRefusesAnotherTenant: `login portal` with a session of
// another tenant than tenant_id fails naming both tenants, and the
// session is not cached (a later run must not pick it up).
func TestLoginPortalRefusesAnotherTenant(t *testing.T) {
	dir := t.TempDir()
	ten, srv, ca := simtest.Start(t, sim.Options{Seed: 4, Machines: 1}, dir)
	c := ten.Credentials()
	const other = "00000000-1111-2222-3333-444444444444"
	cfg := config.Default()
	cfg.TenantID = other
	cfg.Emulator.Address, cfg.Emulator.CAFile = srv.Addr(), ca
	cfg.Portal.SessionCache = filepath.Join(dir, "session.json")
	cfg.Secrets.SccAuth, cfg.Secrets.XSRF = c.SccAuth, url.QueryEscape(c.XSRFToken)
	_, _, err := LoginPortal(context.Background(), cfg, nil)
	// Either the portal says whose session it is (ErrWrongTenant naming
	// both), or — as the emulator does for a root visit with ?tid= of
	// another tenant — it asks to sign in, and the error names tenant_id.
	switch {
	case errors.Is(err, mde.ErrWrongTenant):
		if !strings.Contains(err.Error(), c.TenantID) || !strings.Contains(err.Error(), other) {
			t.Fatalf("err = %v, want it to name %s and %s", err, c.TenantID, other)
		}
	case errors.Is(err, auth.ErrSessionExpired):
		if !strings.Contains(err.Error(), "another tenant") || !strings.Contains(err.Error(), other) {
			t.Fatalf("err = %v, want it to say the session may be another tenant's than %s", err, other)
		}
	default:
		t.Fatalf("err = %v, want ErrWrongTenant or a session refusal naming tenant_id %s", err, other)
	}
	cache, err := auth.OpenSessionCache(cfg.Portal.SessionCache)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{other, c.TenantID, ""} {
		if _, ok, _ := cache.Load(key); ok {
			t.Errorf("the session of another tenant was cached under %q", key)
		}
	}
}
