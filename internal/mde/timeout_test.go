package mde

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/auth"
	"github.com/defenderharvester/defenderharvester/internal/clock"
	"github.com/defenderharvester/defenderharvester/internal/httpx/httpxtest"
)

// getter is what the three API clients share for these tests.
type getter func(ctx context.Context) error

// stalledClients builds a portal, a public-API and a legacy client whose
// every host is dialled at addr.
func stalledClients(t *testing.T, rt http.RoundTripper, o ClientOptions) map[string]struct {
	host, path string
	get        getter
} {
	t.Helper()
	o.Transport, o.Limiter, o.Sleep = rt, &countLimiter{}, (&sleeps{}).sleep
	sess, _ := auth.NewStaticCookies(testSccauth, testXSRF)
	pc, err := NewPortalClient(PortalOptions{ClientOptions: o, Session: sess})
	if err != nil {
		t.Fatal(err)
	}
	ac, err := NewPublicAPIClient(PublicOptions{ClientOptions: o, Tokens: auth.NewStaticToken("TOKENSECRET")})
	if err != nil {
		t.Fatal(err)
	}
	lc, err := NewLegacyClient(LegacyOptions{ClientOptions: o, Location: "weu", Tokens: auth.NewStaticToken("LEGACYTOKEN")})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]struct {
		host, path string
		get        getter
	}{
		"portal": {"security.microsoft.com", "/apiproxy/mtp/huntingService/rules/unified", func(ctx context.Context) error {
			_, err := pc.Get(ctx, "/apiproxy/mtp/huntingService/rules/unified", nil)
			return err
		}},
		"public API": {"api.security.microsoft.com", "/api/machineactions", func(ctx context.Context) error {
			_, err := ac.Get(ctx, "/api/machineactions", nil)
			return err
		}},
		"legacy": {"m365d-autoir-ac-prd-weu.securitycenter.windows.com", "/api/autoir/actioncenterui/history-actions", func(ctx context.Context) error {
			_, err := lc.Get(ctx, "/apiproxy/mtp/actionCenter/actioncenterui/history-actions", nil)
			return err
		}},
	}
}

// TestStalledEndpointEndsEachAttempt: a host that accepts the connection
// and never answers, or sends headers and stalls the body, costs each
// attempt its timeout; the error names the host, the path and the
// timeout. No client hangs.
func TestStalledEndpointEndsEachAttempt(t *testing.T) {
	for _, mode := range []struct {
		name string
		mode httpxtest.Stall
		want string
	}{
		{"no answer", httpxtest.NoAnswer, "no answer from"},
		{"body stalls", httpxtest.StallBody, "stopped arriving"},
	} {
		addr, requests := httpxtest.StallServer(t, mode.mode)
		rt, err := NewTransport(TransportOptions{EmulatorAddress: addr, Plaintext: true})
		if err != nil {
			t.Fatal(err)
		}
		for name, c := range stalledClients(t, rt, ClientOptions{Timeout: 200 * time.Millisecond, MaxAttempts: 2}) {
			t.Run(mode.name+"/"+name, func(t *testing.T) {
				before := requests()
				guard, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				err := c.get(guard)
				if guard.Err() != nil {
					t.Fatal("the request hung until the test's guard deadline")
				}
				if !errors.Is(err, ErrTimeout) {
					t.Fatalf("err = %v, want ErrTimeout", err)
				}
				for _, w := range []string{mode.want, c.host, c.path, "200ms", "giving up after 2 attempts"} {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
				if n := requests() - before; n != 2 {
					t.Errorf("%d attempts reached the server, want 2", n)
				}
			})
		}
	}
}

// TestTransportResponseHeaderTimeout: the transport itself gives up on an
// answer whose headers never come, even for a caller without a deadline.
func TestTransportResponseHeaderTimeout(t *testing.T) {
	addr, _ := httpxtest.StallServer(t, httpxtest.NoAnswer)
	rt, err := NewTransport(TransportOptions{EmulatorAddress: addr, Plaintext: true, ResponseHeaderTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// A per-attempt timeout far beyond the test: only the transport ends it.
	c := stalledClients(t, rt, ClientOptions{Timeout: time.Hour, MaxAttempts: 1})["portal"]
	guard, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = c.get(guard)
	if guard.Err() != nil {
		t.Fatal("the request hung until the test's guard deadline")
	}
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "security.microsoft.com") || !strings.Contains(err.Error(), "awaiting response headers") {
		t.Fatalf("err = %v, want a response-header timeout naming the host", err)
	}
}

func TestNewTransportHasNetworkTimeouts(t *testing.T) {
	for _, o := range []TransportOptions{{}, {EmulatorAddress: "127.0.0.1:1"}} {
		rt, err := NewTransport(o)
		if err != nil {
			t.Fatal(err)
		}
		tr := rt.(*http.Transport)
		if tr.ResponseHeaderTimeout <= 0 || tr.TLSHandshakeTimeout <= 0 || tr.DialContext == nil {
			t.Errorf("transport %+v: response-header %s, TLS handshake %s; want both bounded", o, tr.ResponseHeaderTimeout, tr.TLSHandshakeTimeout)
		}
	}
	rt, _ := NewTransport(TransportOptions{ResponseHeaderTimeout: 42 * time.Second})
	if got := rt.(*http.Transport).ResponseHeaderTimeout; got != 42*time.Second {
		t.Errorf("ResponseHeaderTimeout = %s, want the configured 42s", got)
	}
}

// TestClientsMeasureSkew: every answer's Date header feeds the run's
// skew meter; missing or garbage Date headers are ignored.
func TestClientsMeasureSkew(t *testing.T) {
	tests := []struct {
		name   string
		date   func() []string // nil value: no Date header at all
		want   time.Duration
		wantOK bool
	}{
		{"server 5 minutes ahead", func() []string { return []string{time.Now().Add(5 * time.Minute).UTC().Format(http.TimeFormat)} }, 5 * time.Minute, true},
		{"server 2 hours behind", func() []string { return []string{time.Now().Add(-2 * time.Hour).UTC().Format(http.TimeFormat)} }, -2 * time.Hour, true},
		{"no Date header", func() []string { return nil }, 0, false},
		{"garbage Date header", func() []string { return []string{"not a date"} }, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header()["Date"] = tt.date() // nil suppresses the server's own Date
				w.Write([]byte(`[]`))
			})
			m := clock.NewSkewMeter()
			pc, _ := newTestPortal(t, h, func(o *PortalOptions) { o.Skew = m })
			ac, _ := newTestPublic(t, h, func(o *PublicOptions) { o.Skew = m })
			for i := 0; i < 2; i++ {
				if _, err := pc.Get(context.Background(), "/apiproxy/mtp/x", nil); err != nil {
					t.Fatal(err)
				}
				if _, err := ac.Get(context.Background(), "/api/machineactions", nil); err != nil {
					t.Fatal(err)
				}
			}
			got, ok := m.Skew()
			if ok != tt.wantOK {
				t.Fatalf("Skew() ok = %v, want %v", ok, tt.wantOK)
			}
			// Date has one-second resolution; allow for it and the wire.
			if d := got - tt.want; d < -3*time.Second || d > 3*time.Second {
				t.Errorf("Skew() = %s, want about %s", got, tt.want)
			}
		})
	}
}

// provingSession counts the Proven calls the portal client makes.
type provingSession struct {
	*auth.StaticCookies
	proven atomic.Int32
}

func (p *provingSession) Proven() { p.proven.Add(1) }

// TestSessionProvenOnlyByData: the portal client tells the session it
// worked only after an answer with data, and never once the session
// turned out to belong to another tenant than the configured one.
func TestSessionProvenOnlyByData(t *testing.T) {
	const configured, other = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"
	tenantBody := func(id string) string { return `{"AuthInfo":{"TenantId":"` + id + `"}}` }
	tests := []struct {
		name       string
		answer     string
		status     int
		tenant     string // configured tenant of the client
		call       string // "get" or "tenant"
		wantProven int32
		wantErr    error
	}{
		{"data call", `[]`, 200, configured, "get", 1, nil},
		{"failed call", `{}`, 403, configured, "get", 0, ErrForbidden},
		{"sign-in page", `<html>sign in</html>`, 200, configured, "get", 0, ErrSessionExpired},
		{"tenant context of the configured tenant", tenantBody(configured), 200, configured, "tenant", 1, nil},
		{"tenant context without a configured tenant", tenantBody(other), 200, "", "tenant", 1, nil},
		{"tenant context of another tenant", tenantBody(other), 200, configured, "tenant", 0, ErrWrongTenant},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc, _ := auth.NewStaticCookies(testSccauth, testXSRF)
			sess := &provingSession{StaticCookies: sc}
			c, _ := newTestPortal(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.answer))
			}), func(o *PortalOptions) { o.Session, o.TenantID, o.MaxAttempts = sess, tt.tenant, 1 })
			var err error
			if tt.call == "tenant" {
				var tc TenantContext
				tc, err = c.TenantContext(context.Background())
				if tc.TenantID == "" {
					t.Errorf("TenantContext returned no tenant")
				}
			} else {
				_, err = c.Get(context.Background(), "/apiproxy/mtp/x", nil)
			}
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got := sess.proven.Load(); got != tt.wantProven {
				t.Errorf("Proven called %d times, want %d", got, tt.wantProven)
			}
		})
	}
}

// TestWrongTenantIsNeverProven: once TenantContext named another tenant,
// later data calls do not make the session cacheable either.
func TestWrongTenantIsNeverProven(t *testing.T) {
	sc, _ := auth.NewStaticCookies(testSccauth, testXSRF)
	sess := &provingSession{StaticCookies: sc}
	srv := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/TenantContext") {
			w.Write([]byte(`{"AuthInfo":{"TenantId":"22222222-2222-2222-2222-222222222222"}}`))
			return
		}
		w.Write([]byte(`[]`))
	})
	c, _ := newTestPortal(t, srv, func(o *PortalOptions) {
		o.Session, o.TenantID = sess, "11111111-1111-1111-1111-111111111111"
	})
	tc, err := c.TenantContext(context.Background())
	if !errors.Is(err, ErrWrongTenant) || tc.TenantID != "22222222-2222-2222-2222-222222222222" {
		t.Fatalf("TenantContext = %+v, %v; want the session's tenant and ErrWrongTenant", tc, err)
	}
	for _, w := range []string{"22222222-2222-2222-2222-222222222222", "11111111-1111-1111-1111-111111111111", "tenant_id"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %q", err, w)
		}
	}
	if _, err := c.Get(context.Background(), "/apiproxy/mtp/x", nil); err != nil {
		t.Fatal(err)
	}
	if n := sess.proven.Load(); n != 0 {
		t.Errorf("a session of the wrong tenant was proven %d times", n)
	}
}
