package mde

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/auth"
	"github.com/defenderharvester/defenderharvester/internal/clock"
	"github.com/defenderharvester/defenderharvester/internal/httpx"
)

func TestPortalRequestShape(t *testing.T) {
	var got *http.Request
	var body []byte
	c, _ := newTestPortal(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Clone(context.Background())
		body, _ = io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok":true}`))
	}), func(o *PortalOptions) { o.TenantID = "11111111-2222-3333-4444-555555555555" })

	out, err := c.Post(context.Background(), "/apiproxy/hunting/huntingService/reports", url.Values{"a": {"b c"}}, map[string]string{"startTime": "x"})
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != `{"ok":true}` {
		t.Errorf("body = %s", out)
	}
	checks := map[string][2]string{
		"Host":         {got.Host, "security.microsoft.com"},
		"path":         {got.URL.Path, "/apiproxy/hunting/huntingService/reports"},
		"query":        {got.URL.Query().Get("a"), "b c"},
		"X-XSRF-TOKEN": {got.Header.Get("X-XSRF-TOKEN"), "XSRF/SECRET"},
		"x-tid":        {got.Header.Get("x-tid"), "11111111-2222-3333-4444-555555555555"},
		"tenant-id":    {got.Header.Get("tenant-id"), "11111111-2222-3333-4444-555555555555"},
		"Accept":       {got.Header.Get("Accept"), "application/json"},
		"Content-Type": {got.Header.Get("Content-Type"), "application/json"},
		"body":         {string(body), `{"startTime":"x"}`},
	}
	for name, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s = %q, want %q", name, c[0], c[1])
		}
	}
	if ck, err := got.Cookie("sccauth"); err != nil || ck.Value != testSccauth {
		t.Errorf("sccauth cookie = %v %v", ck, err)
	}
	if !strings.Contains(got.Header.Get("User-Agent"), "Mozilla/5.0") {
		t.Errorf("User-Agent %q is not browser-like", got.Header.Get("User-Agent"))
	}
}

func TestPortalPathRules(t *testing.T) {
	var hits atomic.Int32
	c, _ := newTestPortal(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }), nil)
	for _, p := range []string{"/api/x", "apiproxy/x", "/apiproxy/../x", "/apiproxy/x?y=1", "/apiproxy/a/./b"} {
		if _, err := c.Get(context.Background(), p, nil); err == nil {
			t.Errorf("Get(%q) accepted", p)
		}
	}
	if hits.Load() != 0 {
		t.Errorf("a rejected path reached the server")
	}
}

func TestEmulatorTLSKeepsHostAndSNI(t *testing.T) {
	caPEM, leaf := testCA(t, "security.microsoft.com", "api.security.microsoft.com")
	var host, sni atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host.Store(r.Host)
		sni.Store(r.TLS.ServerName)
		w.Write([]byte(`[]`))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the bad-CA case logs a handshake error
	srv.StartTLS()
	defer srv.Close()

	tests := []struct {
		name    string
		opts    TransportOptions
		wantErr bool
	}{
		{"emulator CA", TransportOptions{EmulatorAddress: srv.Listener.Addr().String(), EmulatorCAPEM: caPEM}, false},
		{"no CA: verification on", TransportOptions{EmulatorAddress: srv.Listener.Addr().String()}, true},
		{"insecure", TransportOptions{EmulatorAddress: srv.Listener.Addr().String(), InsecureSkipVerify: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt, err := NewTransport(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			sess, _ := auth.NewStaticCookies("a", "b")
			c, err := NewPortalClient(PortalOptions{Session: sess, ClientOptions: ClientOptions{Transport: rt, MaxAttempts: 1, Limiter: &countLimiter{}}})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Get(context.Background(), "/apiproxy/mtp/x", nil)
			if tt.wantErr {
				if err == nil {
					t.Fatal("TLS to an unknown CA succeeded")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if host.Load() != "security.microsoft.com" || sni.Load() != "security.microsoft.com" {
				t.Errorf("Host %v SNI %v, want security.microsoft.com", host.Load(), sni.Load())
			}
		})
	}
}

func TestNewTransportOptions(t *testing.T) {
	bad := []TransportOptions{
		{Plaintext: true},
		{InsecureSkipVerify: true},
		{EmulatorAddress: "nohostport"},
		{EmulatorAddress: "127.0.0.1:1", EmulatorCAPEM: []byte("not pem")},
	}
	for _, o := range bad {
		if _, err := NewTransport(o); err == nil {
			t.Errorf("NewTransport(%+v) accepted", o)
		}
	}
	rt, err := NewTransport(TransportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tr, ok := rt.(*http.Transport)
	if !ok || tr.TLSClientConfig.InsecureSkipVerify || tr.Proxy == nil {
		t.Errorf("production transport must verify TLS and honour the proxy environment")
	}
}

// seq answers each request with the next response in the list.
type step struct {
	status     int
	retryAfter string
	body       string
	ctype      string
	reset      bool
}

func seqHandler(steps []step, hits *atomic.Int32) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(hits.Add(1)) - 1
		if i >= len(steps) {
			i = len(steps) - 1
		}
		s := steps[i]
		if s.reset {
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.(*net.TCPConn).SetLinger(0)
			conn.Close()
			return
		}
		if s.retryAfter != "" {
			w.Header().Set("Retry-After", s.retryAfter)
		}
		ct := s.ctype
		if ct == "" {
			ct = "application/json"
		}
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(s.status)
		io.WriteString(w, s.body)
	})
}

func TestRetries(t *testing.T) {
	future := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name      string
		steps     []step
		wantHits  int32
		wantErr   error
		checkWait func(t *testing.T, w []time.Duration)
	}{
		{"429 honours Retry-After seconds", []step{{status: 429, retryAfter: "7"}, {status: 200, body: `[]`}}, 2, nil,
			func(t *testing.T, w []time.Duration) {
				if len(w) != 1 || w[0] != 7*time.Second {
					t.Errorf("waits %v, want [7s]", w)
				}
			}},
		{"503 retry-after http date", []step{{status: 503, retryAfter: future}, {status: 200, body: `{}`}}, 2, nil,
			func(t *testing.T, w []time.Duration) {
				if len(w) != 1 || w[0] < 80*time.Second || w[0] > 91*time.Second {
					t.Errorf("waits %v, want ≈90s", w)
				}
			}},
		{"5xx backoff with full jitter", []step{{status: 500}, {status: 502}, {status: 504}, {status: 200, body: `{}`}}, 4, nil,
			func(t *testing.T, w []time.Duration) {
				if len(w) != 3 {
					t.Fatalf("waits %v, want 3", w)
				}
				for i, d := range w {
					if ceil := time.Second << i; d < 0 || d > ceil {
						t.Errorf("wait %d = %s, outside [0, %s]", i, d, ceil)
					}
				}
			}},
		{"gives up after max attempts", []step{{status: 503, body: `{"error":{"code":"InternalServerError","message":"boom"}}`}}, 5, ErrServer, nil},
		{"Retry-After above max wait is an error, not an early retry", []step{{status: 429, retryAfter: "3600"}}, 1, ErrThrottled,
			func(t *testing.T, w []time.Duration) {
				if len(w) != 0 {
					t.Errorf("slept %v", w)
				}
			}},
		{"400 is not retried", []step{{status: 400, body: `{"error":{"code":"BadRequest","message":"bad"}}`}}, 1, ErrBadRequest, nil},
		{"connection reset is retried", []step{{reset: true}, {status: 200, body: `{}`}}, 2, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hits atomic.Int32
			lim := &countLimiter{}
			c, sl := newTestPublic(t, seqHandler(tt.steps, &hits), func(o *PublicOptions) { o.Limiter = lim })
			_, err := c.Get(context.Background(), "/api/machineactions", nil)
			if tt.wantErr == nil && err != nil {
				t.Fatalf("err = %v", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if hits.Load() != tt.wantHits {
				t.Errorf("server hit %d times, want %d", hits.Load(), tt.wantHits)
			}
			if lim.n != int(tt.wantHits) {
				t.Errorf("limiter consulted %d times, want once per attempt (%d)", lim.n, tt.wantHits)
			}
			if tt.checkWait != nil {
				tt.checkWait(t, sl.all())
			}
		})
	}
}

func TestPerAttemptTimeoutRetries(t *testing.T) {
	var hits atomic.Int32
	release := make(chan struct{})
	defer close(release)
	c, _ := newTestPublic(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		w.Write([]byte(`{}`))
	}), func(o *PublicOptions) { o.Timeout = 50 * time.Millisecond })
	if _, err := c.Get(context.Background(), "/api/libraryfiles", nil); err != nil {
		t.Fatalf("err = %v, want success on the second attempt", err)
	}
	if hits.Load() != 2 {
		t.Errorf("hits = %d, want 2", hits.Load())
	}
}

func TestCancelledContextStops(t *testing.T) {
	var hits atomic.Int32
	c, _ := newTestPublic(t, seqHandler([]step{{status: 503}}, &hits), func(o *PublicOptions) { o.Sleep = clock.Sleep; o.BaseBackoff = time.Hour })
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for hits.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	_, err := c.Get(ctx, "/api/machineactions", nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestPortalAuthFailures(t *testing.T) {
	tests := []struct {
		name    string
		step    step
		wantErr error
		hint    string
	}{
		{"302 to login", step{status: 302, body: "<html>sign in</html>", ctype: "text/html"}, ErrSessionExpired, "sign in again"},
		{"401 bad xsrf", step{status: 401}, ErrSessionExpired, "refresh the cookies"},
		{"440 session timeout", step{status: 440}, ErrSessionExpired, ""},
		{"200 html sign-in page", step{status: 200, body: "<!DOCTYPE html><html><head><title>Sign in</title>", ctype: "text/html; charset=utf-8"}, ErrSessionExpired, ""},
		{"200 html labelled json", step{status: 200, body: "\n  <html><body>login</body></html>"}, ErrSessionExpired, ""},
		{"403 names a role", step{status: 403, body: `{"Message":"Forbidden"}`}, ErrForbidden, "Security Reader"},
		{"truncated json", step{status: 200, body: `{"Count":3,"Results":[{"a":`}, ErrNotJSON, "truncated"},
		{"empty 200", step{status: 200}, ErrNotJSON, "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hits atomic.Int32
			h := seqHandler([]step{tt.step}, &hits)
			if tt.step.status == 302 {
				h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					hits.Add(1)
					if !strings.HasPrefix(r.URL.Path, "/apiproxy/") {
						t.Error("redirect was followed")
					}
					http.Redirect(w, r, "https://login.microsoftonline.com/common/oauth2/authorize?client_id=x", http.StatusFound)
				})
			}
			c, _ := newTestPortal(t, h, nil)
			_, err := c.Get(context.Background(), "/apiproxy/mtp/actionCenter/x", url.Values{"q": {"SECRETQ"}})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.hint) {
				t.Errorf("err %q lacks %q", err, tt.hint)
			}
			for _, secret := range []string{testSccauth, "XSRF/SECRET", "SECRETQ"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error leaks %q: %v", secret, err)
				}
			}
			if hits.Load() != 1 {
				t.Errorf("hits = %d, want 1 (auth failures are not retried)", hits.Load())
			}
		})
	}
}

func TestPublicErrors(t *testing.T) {
	tests := []struct {
		name    string
		step    step
		wantErr error
		want    APIError
	}{
		{"401 envelope", step{status: 401, body: `{"error":{"code":"Unauthorized","message":"Invalid audience","target":"abc-1"}}`}, ErrUnauthorized,
			APIError{Status: 401, Code: "Unauthorized", Message: "Invalid audience", Target: "abc-1"}},
		{"404 envelope", step{status: 404, body: `{"error":{"code":"ResourceNotFound","message":"Machine 1 was not found","target":"43f4"}}`}, ErrNotFound,
			APIError{Status: 404, Code: "ResourceNotFound", Message: "Machine 1 was not found", Target: "43f4"}},
		{"403 names permission", step{status: 403, body: `{"error":{"code":"Forbidden","message":"no"}}`}, ErrForbidden,
			APIError{Status: 403, Code: "Forbidden", Message: "no", Hint: "the app lacks Machine.Read.All (or Machine.ReadWrite.All), or admin consent for it"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hits atomic.Int32
			c, _ := newTestPublic(t, seqHandler([]step{tt.step}, &hits), nil)
			_, err := c.Get(context.Background(), "/api/machineactions", nil)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("err %v is not an *APIError", err)
			}
			if ae.Status != tt.want.Status || ae.Code != tt.want.Code || ae.Message != tt.want.Message || ae.Target != tt.want.Target {
				t.Errorf("APIError = %+v, want %+v", *ae, tt.want)
			}
			if tt.want.Hint != "" && ae.Hint != tt.want.Hint {
				t.Errorf("hint = %q", ae.Hint)
			}
		})
	}
	// Public API: a redirect is refused, HTML is not JSON.
	var hits atomic.Int32
	c, _ := newTestPublic(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Redirect(w, r, "https://evil.example/steal", http.StatusTemporaryRedirect)
	}), nil)
	if _, err := c.Get(context.Background(), "/api/libraryfiles", nil); !errors.Is(err, ErrRedirect) || hits.Load() != 1 {
		t.Errorf("redirect: err = %v, hits %d", err, hits.Load())
	}
	c, _ = newTestPublic(t, seqHandler([]step{{status: 200, body: "<html/>", ctype: "text/html"}}, new(atomic.Int32)), nil)
	if _, err := c.Get(context.Background(), "/api/libraryfiles", nil); !errors.Is(err, ErrNotJSON) {
		t.Errorf("html: err = %v", err)
	}
}

func TestBodyLimit(t *testing.T) {
	c, _ := newTestPublic(t, seqHandler([]step{{status: 200, body: `{"value":[1,2,3,4,5,6,7]}`}}, new(atomic.Int32)),
		func(o *PublicOptions) { o.MaxBodyBytes = 10 })
	if _, err := c.Get(context.Background(), "/api/libraryfiles", nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
}

func TestCredentialsOnlyToAllowedHosts(t *testing.T) {
	var hits atomic.Int32
	var sawAuth atomic.Bool
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.Header.Get("Authorization") != "" || r.Header.Get("Cookie") != "" {
			sawAuth.Store(true)
		}
		w.Write([]byte(`{}`))
	})
	sess, _ := auth.NewStaticCookies("a", "b")
	for _, base := range []string{"http://security.microsoft.com", "https://security.microsoft.com.evil.example", "https://evil.example", "https://security.microsoft.com:8443", "https://user@security.microsoft.com"} {
		if _, err := NewPortalClient(PortalOptions{BaseURL: base, Session: sess}); err == nil {
			t.Errorf("portal base %q accepted", base)
		}
	}
	for _, base := range []string{"https://api.security.microsoft.com.evil.example", "https://x.y.api.security.microsoft.com", "http://api.security.microsoft.com"} {
		if _, err := NewPublicAPIClient(PublicOptions{BaseURL: base, Tokens: auth.NewStaticToken("t")}); err == nil {
			t.Errorf("public base %q accepted", base)
		}
	}
	for _, base := range []string{"https://eu.api.security.microsoft.com", "https://api.securitycenter.microsoft.com", "https://mto.security.microsoft.com"} {
		if strings.Contains(base, "mto.") {
			if _, err := NewPortalClient(PortalOptions{BaseURL: base, Session: sess}); err != nil {
				t.Errorf("portal base %q refused: %v", base, err)
			}
			continue
		}
		if _, err := NewPublicAPIClient(PublicOptions{BaseURL: base, Tokens: auth.NewStaticToken("t")}); err != nil {
			t.Errorf("public base %q refused: %v", base, err)
		}
	}
	// The doer itself refuses a foreign URL even if a caller builds one.
	c, _ := newTestPortal(t, h, nil)
	u, _ := url.Parse("https://evil.example/apiproxy/x")
	if _, err := c.d.do(context.Background(), "GET", u, nil); !errors.Is(err, ErrHostNotAllowed) {
		t.Errorf("err = %v, want ErrHostNotAllowed", err)
	}
	// A nextLink to another host is refused before any request.
	p, _ := newTestPublic(t, h, nil)
	if _, err := p.GetLink(context.Background(), "https://evil.example/api/machineactions?$skip=1"); err == nil {
		t.Error("foreign nextLink followed")
	}
	if hits.Load() != 0 || sawAuth.Load() {
		t.Errorf("a refused request reached a server (hits %d, auth %v)", hits.Load(), sawAuth.Load())
	}
	// A valid nextLink is followed with the token.
	var gotAuth atomic.Value
	p, _ = newTestPublic(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth.Store(r.Header.Get("Authorization") + " " + r.URL.RawQuery)
		w.Write([]byte(`{"value":[]}`))
	}), nil)
	if _, err := p.GetLink(context.Background(), "https://api.security.microsoft.com/api/machineactions?$skip=10000"); err != nil {
		t.Fatal(err)
	}
	if gotAuth.Load() != "Bearer TOKENSECRET $skip=10000" {
		t.Errorf("followed link request = %q", gotAuth.Load())
	}
}

func TestLimiterErrorStopsBeforeRequest(t *testing.T) {
	var hits atomic.Int32
	c, _ := newTestPortal(t, seqHandler([]step{{status: 200, body: `{}`}}, &hits), func(o *PortalOptions) {
		o.Limiter = limiterFunc(func(context.Context) error { return errors.New("rate: Wait(n=1) would exceed context deadline") })
	})
	if _, err := c.Get(context.Background(), "/apiproxy/x", nil); err == nil || !strings.Contains(err.Error(), "rate limit") {
		t.Fatalf("err = %v", err)
	}
	if hits.Load() != 0 {
		t.Error("request sent although the limiter refused")
	}
}

type limiterFunc func(context.Context) error

func (f limiterFunc) Wait(ctx context.Context) error { return f(ctx) }

func TestLimitersWaitOnAll(t *testing.T) {
	a, b := &countLimiter{}, &countLimiter{}
	if err := (Limiters{a, nil, b}).Wait(context.Background()); err != nil || a.n != 1 || b.n != 1 {
		t.Errorf("Limiters.Wait: err %v, counts %d %d", err, a.n, b.n)
	}
}

func TestDefaultPublicLimiterIsPerMinuteAndPerHour(t *testing.T) {
	c, err := NewPublicAPIClient(PublicOptions{Tokens: auth.NewStaticToken("t")})
	if err != nil {
		t.Fatal(err)
	}
	ls, ok := c.d.o.Limiter.(Limiters)
	if !ok || len(ls) != 2 {
		t.Fatalf("limiter = %T, want two limiters", c.d.o.Limiter)
	}
	// 100 calls pass at once (burst of the minute limiter); the 101st must wait.
	ctx, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	for i := 0; i < 100; i++ {
		if err := ls.Wait(context.Background()); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if err := ls.Wait(ctx); err == nil {
		t.Error("101st call within the minute was allowed")
	}
}

func TestRetryLogsHaveNoSecrets(t *testing.T) {
	var buf bytes.Buffer
	var hits atomic.Int32
	c, _ := newTestPortal(t, seqHandler([]step{{status: 503}, {status: 200, body: `{}`}}, &hits), func(o *PortalOptions) {
		o.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	if _, err := c.Get(context.Background(), "/apiproxy/mtp/x", url.Values{"token": {"QUERYSECRET"}}); err != nil {
		t.Fatal(err)
	}
	log := buf.String()
	if !strings.Contains(log, "retrying request") || !strings.Contains(log, "/apiproxy/mtp/x") {
		t.Errorf("retry not logged: %s", log)
	}
	for _, s := range []string{"QUERYSECRET", testSccauth, "XSRF"} {
		if strings.Contains(log, s) {
			t.Errorf("log leaks %q: %s", s, log)
		}
	}
}

func TestTenantContext(t *testing.T) {
	tests := []struct {
		body, want string
		wantErr    bool
	}{
		{`{"AuthInfo":{"TenantId":"t-1","UserName":"x"},"GeoRegion":"EU","IsMdatpActive":true}`, "t-1", false},
		{`{"AuthInfo":{}}`, "", true},
		{`[]`, "", true},
	}
	for _, tt := range tests {
		var gotQuery string
		c, _ := newTestPortal(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			gotQuery = r.URL.Path + "?" + r.URL.RawQuery
			w.Write([]byte(tt.body))
		}), nil)
		tc, err := c.TenantContext(context.Background())
		if (err != nil) != tt.wantErr || tc.TenantID != tt.want {
			t.Errorf("TenantContext(%s) = %+v, %v", tt.body, tc, err)
		}
		if gotQuery != "/apiproxy/mtp/sccManagement/mgmt/TenantContext?realTime=true" {
			t.Errorf("request = %s", gotQuery)
		}
	}
}

// TestUntrustedCertificateIsNotRetried: a TLS verification failure will not
// heal by retrying, so it is reported at once with a hint.
func TestUntrustedCertificateIsNotRetried(t *testing.T) {
	_, leaf := testCA(t, "security.microsoft.com")
	var handshakes atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`[]`)) }))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf}, GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		handshakes.Add(1)
		return nil, nil
	}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	rt, err := NewTransport(TransportOptions{EmulatorAddress: srv.Listener.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	sess, _ := auth.NewStaticCookies("a", "b")
	sl := &sleeps{}
	c, err := NewPortalClient(PortalOptions{Session: sess, ClientOptions: ClientOptions{Transport: rt, MaxAttempts: 5, Limiter: &countLimiter{}, Sleep: sl.sleep}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Get(context.Background(), "/apiproxy/mtp/x", nil)
	if err == nil || !strings.Contains(err.Error(), "certificate not trusted") || !errors.Is(err, ErrCertificate) {
		t.Fatalf("want a certificate error with a hint, got %v", err)
	}
	if n := handshakes.Load(); n != 1 {
		t.Fatalf("%d handshakes; a certificate failure must not be retried", n)
	}
}

// TestObserveRetries: every retry decision reaches ClientOptions.Observe
// with the client's label, the status class and throttling — what the
// retry and throttling metrics of serve count — and the give-up too, with
// the client's concurrency limit after the decision (a 429 halves it).
func TestObserveRetries(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
		want  []httpx.Attempt
	}{
		{"success: nothing", []step{{status: 200, body: `[]`}}, nil},
		{"429 then success", []step{{status: 429, retryAfter: "2"}, {status: 200, body: `[]`}},
			[]httpx.Attempt{{Label: "public", N: 1, Status: 429, Class: "4xx", Throttled: true, Retry: true, Wait: 2 * time.Second, Limit: DefaultMaxInFlight / 2}}},
		{"503 twice then gives up", []step{{status: 503}},
			[]httpx.Attempt{
				{Label: "public", N: 1, Status: 503, Class: "5xx", Retry: true, Limit: DefaultMaxInFlight},
				{Label: "public", N: 2, Status: 503, Class: "5xx", Limit: DefaultMaxInFlight},
			}},
		{"reset then success", []step{{reset: true}, {status: 200, body: `[]`}},
			[]httpx.Attempt{{Label: "public", N: 1, Class: "network", Retry: true, Limit: DefaultMaxInFlight}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hits atomic.Int32
			var got []httpx.Attempt
			c, _ := newTestPublic(t, seqHandler(tt.steps, &hits), func(o *PublicOptions) {
				o.MaxAttempts = 2
				o.Observe = func(a httpx.Attempt) {
					a.Wait = a.Wait.Round(time.Second) * time.Duration(b2i(a.Throttled)) // jittered backoff: only Retry-After waits are exact
					got = append(got, a)
				}
			})
			_, _ = c.Get(context.Background(), "/api/machineactions", nil)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("observed %+v\nwant     %+v", got, tt.want)
			}
		})
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Large bodies get the cheap check: a truncated one (no closing bracket)
// is still refused, a complete one passes to the decoder.
func TestLargeBodyCheck(t *testing.T) {
	big := []byte(`[` + strings.Repeat(`{"a":"`+strings.Repeat("x", 100)+`"},`, 1000) + `{}]`)
	for _, tc := range []struct {
		name string
		body []byte
		want bool
	}{
		{"complete array", big, true},
		{"truncated array", big[:len(big)/2], false},
		{"truncated inside a string", big[:len(big)-5], false},
		{"small invalid", []byte(`{"a":}`), false},
		{"small valid", []byte(`{"a":1}`), true},
	} {
		if got := jsonValid(tc.body); got != tc.want {
			t.Errorf("%s: jsonValid = %v, want %v", tc.name, got, tc.want)
		}
	}
}
