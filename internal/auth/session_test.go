package auth

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// multiHost is a loopback TLS server that answers for any host name: the
// client dials every host at it, so tests use the real host names and
// per-host cookie scoping is exercised as in production.
type multiHost struct {
	srv    *httptest.Server
	client *http.Client
	mu     sync.Mutex
	seen   []seenReq
}

type seenReq struct {
	host, method, path, cookie, auth string
}

func newMultiHost(t *testing.T, h func(w http.ResponseWriter, r *http.Request)) *multiHost {
	t.Helper()
	m := &multiHost{}
	m.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		m.seen = append(m.seen, seenReq{host: r.Host, method: r.Method, path: r.URL.Path, cookie: r.Header.Get("Cookie"), auth: r.Header.Get("Authorization")})
		m.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(m.srv.Close)
	tr := m.srv.Client().Transport.(*http.Transport).Clone()
	addr := m.srv.Listener.Addr().String()
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	tr.DialTLSContext = nil
	tr.TLSClientConfig = tr.TLSClientConfig.Clone()
	tr.TLSClientConfig.ServerName = "example.com" // the httptest certificate's name
	tr.TLSClientConfig.MinVersion = tls.VersionTLS12
	m.client = &http.Client{Transport: tr}
	return m
}

func (m *multiHost) requests() []seenReq {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]seenReq(nil), m.seen...)
}

func hostOnly(r *http.Request) string { return strings.TrimSuffix(r.Host, ":443") }

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// fakePortal accepts sccauth "S1" and the latest XSRF it issued.
type fakePortal struct {
	mu      sync.Mutex
	n       int
	xsrf    string
	valid   bool
	rootHit int
}

func (p *fakePortal) handle(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, err := r.Cookie("sccauth")
	ok := err == nil && c.Value == "S1" && p.valid
	if r.URL.Path == "/" {
		p.rootHit++
		if !ok {
			http.Redirect(w, r, "https://login.microsoftonline.com/common/oauth2/v2.0/authorize?client_id=x", http.StatusFound)
			return
		}
		p.n++
		p.xsrf = fmt.Sprintf("X%%2F%d", p.n)
		http.SetCookie(w, &http.Cookie{Name: "XSRF-TOKEN", Value: p.xsrf})
		io.WriteString(w, "<html>portal</html>")
		return
	}
	if !ok {
		http.Redirect(w, r, "https://login.microsoftonline.com/common/oauth2/v2.0/authorize", http.StatusFound)
		return
	}
	want, _ := url.QueryUnescape(p.xsrf)
	if r.Header.Get("X-XSRF-TOKEN") != want {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	io.WriteString(w, `{"ok":true}`)
}

func TestCookieSessionXSRFSchedule(t *testing.T) {
	fp := &fakePortal{valid: true}
	m := newMultiHost(t, fp.handle)
	clk := &clock{t: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)}
	s, err := NewCookieSession(CookieSessionOptions{SccAuth: "S1", TenantID: "contoso.onmicrosoft.com", Client: m.client, Now: clk.now, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	steps := []struct {
		advance  time.Duration
		wantHits int
	}{
		{0, 1},               // no XSRF configured: fetched at once
		{time.Minute, 1},     // fresh: no visit
		{3 * time.Minute, 1}, // 4 min old: still fresh
		{time.Minute, 2},     // 5 min old: renewed
		{4 * time.Minute, 2},
		{2 * time.Minute, 3},
	}
	for i, st := range steps {
		clk.add(st.advance)
		if err := s.Maintain(ctx); err != nil {
			t.Fatalf("step %d: Maintain: %v", i, err)
		}
		if fp.rootHit != st.wantHits {
			t.Fatalf("step %d: portal root visited %d times, want %d", i, fp.rootHit, st.wantHits)
		}
	}
	req := httptest.NewRequest("GET", "https://security.microsoft.com/apiproxy/mtp/x", nil)
	if err := s.Apply(req); err != nil {
		t.Fatal(err)
	}
	if got := req.Header.Get("X-XSRF-TOKEN"); got != "X/3" {
		t.Errorf("X-XSRF-TOKEN = %q, want the latest rotated token X/3", got)
	}
	for _, r := range m.requests() {
		if r.path == "/" && r.host != "security.microsoft.com" {
			t.Errorf("root visit went to %s", r.host)
		}
	}
	if q := "tid=contoso.onmicrosoft.com"; !strings.Contains(s.core.rootURL(), q) {
		t.Errorf("root URL %s lacks %s", s.core.rootURL(), q)
	}
}

func TestCookieSessionApplyHosts(t *testing.T) {
	s, err := NewCookieSession(CookieSessionOptions{SccAuth: "S1", XSRF: "X1", Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		url string
		ok  bool
	}{
		{"https://security.microsoft.com/apiproxy/a", true},
		{"https://security.microsoft.com:443/apiproxy/a", true},
		{"https://mto.security.microsoft.com/apiproxy/a", true},
		{"http://security.microsoft.com/apiproxy/a", false},
		{"https://security.microsoft.com.evil.example/a", false},
		{"https://user@security.microsoft.com/a", false},
		{"https://api.security.microsoft.com/api/machines", false},
	}
	for _, tt := range tests {
		req := httptest.NewRequest("GET", tt.url, nil)
		err := s.Apply(req)
		if (err == nil) != tt.ok {
			t.Errorf("Apply(%s) err = %v, want ok=%v", tt.url, err, tt.ok)
		}
		if err != nil && req.Header.Get("Cookie") != "" {
			t.Errorf("Apply(%s) refused but set cookies", tt.url)
		}
		if err != nil && strings.Contains(err.Error(), "S1") {
			t.Errorf("error leaks the cookie: %v", err)
		}
	}
}

// portalDo mimics the portal client's contract: Maintain before each
// request, one Refresh and one retry after a rejected session.
func portalDo(ctx context.Context, c *http.Client, sess PortalSession, u string) (int, error) {
	do := func() (int, error) {
		if m, ok := sess.(Maintainer); ok {
			if err := m.Maintain(ctx); err != nil {
				return 0, err
			}
		}
		req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
		if err := sess.Apply(req); err != nil {
			return 0, err
		}
		resp, err := noRedirectClient(c).Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	code, err := do()
	if err != nil || (code != http.StatusUnauthorized && code != 440 && (code < 300 || code >= 400)) {
		return code, err
	}
	r, ok := sess.(Refresher)
	if !ok {
		return code, nil
	}
	if err := r.Refresh(ctx); err != nil {
		return code, err
	}
	return do()
}

func TestCookieSessionRefreshRetry(t *testing.T) {
	fp := &fakePortal{valid: true}
	m := newMultiHost(t, fp.handle)
	clk := &clock{t: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)}
	s, err := NewCookieSession(CookieSessionOptions{SccAuth: "S1", XSRF: "stale", Client: m.client, Now: clk.now, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// The copied XSRF is stale: 401, Refresh visits the root, the retry passes.
	code, err := portalDo(ctx, m.client, s, "https://security.microsoft.com/apiproxy/mtp/x")
	if err != nil || code != 200 {
		t.Fatalf("first request = %d, %v; want 200 after one refresh", code, err)
	}
	if fp.rootHit != 1 {
		t.Errorf("root visits = %d, want 1", fp.rootHit)
	}
	// The session ends at the portal: the refresh reports it clearly.
	fp.mu.Lock()
	fp.valid = false
	fp.mu.Unlock()
	_, err = portalDo(ctx, m.client, s, "https://security.microsoft.com/apiproxy/mtp/x")
	if !errors.Is(err, ErrSessionExpired) || !strings.Contains(err.Error(), "copy fresh cookies") {
		t.Fatalf("err = %v, want ErrSessionExpired with the copy-fresh-cookies advice", err)
	}
	for _, r := range m.requests() {
		if r.host != "security.microsoft.com" {
			t.Errorf("request went to %s", r.host)
		}
	}
}

func TestCookieSessionSignInPageAtRoot(t *testing.T) {
	m := newMultiHost(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `<html><script>$Config={"urlPost":"/common/login","sErrorCode":""}</script>ConvergedSignIn</html>`)
	})
	s, _ := NewCookieSession(CookieSessionOptions{SccAuth: "S1", Client: m.client, Logger: quietLog()})
	err := s.Maintain(context.Background())
	if !errors.Is(err, ErrSessionExpired) {
		t.Fatalf("err = %v, want ErrSessionExpired for an HTML sign-in page", err)
	}
}

// estsTenant fakes login.microsoftonline.com, the portal and an App
// Control proxy. mode picks the outcome of the silent sign-in.
type estsTenant struct {
	mode string // "ok", "mcas", "evil", or an AADSTS code page "50058"...
}

const goodESTS = "ESTS-good-VALUE"

func (e *estsTenant) handle(w http.ResponseWriter, r *http.Request) {
	switch host := hostOnly(r); {
	case host == "login.microsoftonline.com":
		switch r.URL.Path {
		case "/error":
			http.SetCookie(w, &http.Cookie{Name: "buid", Value: "seed"})
			w.WriteHeader(http.StatusNotFound)
		case "/common/oauth2/v2.0/authorize":
			c, err := r.Cookie("ESTSAUTHPERSISTENT")
			if err != nil || c.Value != goodESTS {
				fmt.Fprint(w, `<html><script>$Config={"sErrorCode":"50058","urlPost":"/x"}</script></html>`)
				return
			}
			if b, err := r.Cookie("buid"); err != nil || b.Value != "seed" {
				http.Error(w, "no seed cookie", 400)
				return
			}
			switch e.mode {
			case "evil":
				http.Redirect(w, r, "https://evil.example/collect", http.StatusFound)
			case "mcas":
				fmt.Fprint(w, `<html><body onload="document.forms[0].submit()"><form method="POST" action="https://contoso.access.mcas.ms/aad_login"><input type="hidden" name="id_token" value="IDT"/><input type="hidden" name="state" value="ST"/></form></body></html>`)
			case "ok":
				fmt.Fprint(w, codeForm)
			default:
				fmt.Fprintf(w, `<html><script>$Config={"sErrorCode":"%s","urlPost":"/x"}</script></html>`, e.mode)
			}
		default:
			http.NotFound(w, r)
		}
	case host == "contoso.access.mcas.ms":
		r.ParseForm()
		if r.PostForm.Get("id_token") != "IDT" {
			http.Error(w, "bad id_token", 400)
			return
		}
		fmt.Fprint(w, codeForm)
	case host == "security.microsoft.com":
		if r.Method == "POST" {
			r.ParseForm()
			if r.PostForm.Get("code") != "CODE" || r.PostForm.Get("id_token") != "IDT" || r.PostForm.Get("state") != "ST" {
				http.Error(w, "bad form", 400)
				return
			}
			http.SetCookie(w, &http.Cookie{Name: "sccauth", Value: "S1", HttpOnly: true})
			http.Redirect(w, r, "/", http.StatusFound)
			return
		}
		if c, err := r.Cookie("sccauth"); err == nil && c.Value == "S1" {
			http.SetCookie(w, &http.Cookie{Name: "XSRF-TOKEN", Value: "XT%3D"})
			fmt.Fprint(w, "<html>portal</html>")
			return
		}
		http.Redirect(w, r, "https://login.microsoftonline.com/common/oauth2/v2.0/authorize?client_id=80ccca67", http.StatusFound)
	default:
		w.WriteHeader(http.StatusTeapot)
	}
}

const codeForm = `<html><body onload="document.forms[0].submit()"><form method="POST" name="hiddenform" action="https://security.microsoft.com/">
<input type="hidden" name="code" value="CODE" /><input type="hidden" name="id_token" value="IDT" /><input type="hidden" name="state" value="ST" />
<input type="hidden" name="session_state" value="SS" /><input type="hidden" name="correlation_id" value="CID" /></form></body></html>`

func TestESTSBootstrap(t *testing.T) {
	tests := []struct {
		mode, ests string
		wantCode   int
		wantErr    string
	}{
		{mode: "ok", ests: goodESTS},
		{mode: "mcas", ests: goodESTS},
		{mode: "ok", ests: "ESTS-stale", wantCode: 50058, wantErr: "fresh ESTSAUTHPERSISTENT"},
		{mode: "53003", ests: goodESTS, wantCode: 53003, wantErr: "Conditional Access"},
		{mode: "50076", ests: goodESTS, wantCode: 50076, wantErr: "multi-factor"},
		{mode: "evil", ests: goodESTS, wantErr: "evil.example"},
	}
	for _, tt := range tests {
		t.Run(tt.mode+"/"+tt.ests, func(t *testing.T) {
			m := newMultiHost(t, (&estsTenant{mode: tt.mode}).handle)
			s, err := NewESTSSession(ESTSSessionOptions{ESTSAuthPersistent: tt.ests, Client: m.client, Logger: quietLog()})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Maintain(context.Background())
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Maintain: %v", err)
				}
				req := httptest.NewRequest("GET", "https://security.microsoft.com/apiproxy/x", nil)
				if err := s.Apply(req); err != nil {
					t.Fatal(err)
				}
				if req.Header.Get("X-XSRF-TOKEN") != "XT=" || !strings.Contains(req.Header.Get("Cookie"), "sccauth=S1") {
					t.Errorf("session not applied: cookie %q xsrf %q", req.Header.Get("Cookie"), req.Header.Get("X-XSRF-TOKEN"))
				}
				// The metrics show its age; its "expiry" is when it signs
				// in again by itself, nothing to alert on.
				if info := s.Info(); info.ObtainedAt.IsZero() || !info.RenewsItself {
					t.Errorf("Info() = %+v, want the sign-in time and RenewsItself", info)
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				var se *SignInError
				if tt.wantCode != 0 && (!errors.As(err, &se) || se.Code != tt.wantCode) {
					t.Errorf("err = %#v, want *SignInError code %d", err, tt.wantCode)
				}
				if strings.Contains(err.Error(), tt.ests) {
					t.Errorf("error leaks the ESTS cookie: %v", err)
				}
			}
			// Secrets go only where they belong.
			sawMCAS := false
			for _, r := range m.requests() {
				sawMCAS = sawMCAS || r.host == "contoso.access.mcas.ms"
				if strings.Contains(r.cookie, "ESTSAUTH") && r.host != "login.microsoftonline.com" {
					t.Errorf("ESTS cookie sent to %s", r.host)
				}
				if strings.Contains(r.cookie, "sccauth") && r.host != "security.microsoft.com" {
					t.Errorf("sccauth sent to %s", r.host)
				}
				if r.host == "evil.example" {
					t.Errorf("a request reached the non-allow-listed host (cookie %q)", r.cookie)
				}
			}
			if sawMCAS != (tt.mode == "mcas") {
				t.Errorf("App Control hop taken = %v, want %v", sawMCAS, tt.mode == "mcas")
			}
		})
	}
}

func TestESTSRefreshAfterExpiry(t *testing.T) {
	m := newMultiHost(t, (&estsTenant{mode: "ok"}).handle)
	clk := &clock{t: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)}
	dir := t.TempDir()
	cache, err := OpenSessionCache(filepath.Join(dir, "sessions.json"))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := NewESTSSession(ESTSSessionOptions{ESTSAuthPersistent: goodESTS, Client: m.client, Cache: cache, Now: clk.now, Logger: quietLog()})
	ctx := context.Background()
	if err := s.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	posts := func() (n int) {
		for _, r := range m.requests() {
			if r.method == "POST" {
				n++
			}
		}
		return n
	}
	if posts() != 1 {
		t.Fatalf("sign-in posts = %d, want 1", posts())
	}
	s.Proven() // the portal served data with it: now it is cached
	// A second harvester run reuses the cached session without signing in.
	s2, _ := NewESTSSession(ESTSSessionOptions{ESTSAuthPersistent: goodESTS, Client: m.client, Cache: cache, Now: clk.now, Logger: quietLog()})
	if err := s2.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	if posts() != 1 {
		t.Errorf("cached session not reused: %d sign-ins", posts())
	}
	// Past the portal's session cap it signs in again by itself.
	clk.add(4 * time.Hour)
	if err := s2.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	if posts() != 2 {
		t.Errorf("sign-ins after the cap = %d, want 2", posts())
	}
	if err := s2.Refresh(ctx); err != nil || posts() != 3 {
		t.Errorf("Refresh = %v, sign-ins %d; want a new sign-in", err, posts())
	}
}

func TestSessionCacheModes(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("POSIX permissions")
	}
	dir := filepath.Join(t.TempDir(), "cache")
	path := filepath.Join(dir, "sessions.json")
	c, err := OpenSessionCache(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	if err := c.Save("Tenant-A", Session{SccAuth: "S1", XSRF: "X1", ObtainedAt: now}); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	di, _ := os.Stat(dir)
	if fi.Mode().Perm() != 0o600 || di.Mode().Perm() != 0o700 {
		t.Errorf("modes file %o dir %o, want 600/700", fi.Mode().Perm(), di.Mode().Perm())
	}
	s, ok, err := c.Load("tenant-a")
	if err != nil || !ok || s.SccAuth.Reveal() != "S1" || s.XSRF.Reveal() != "X1" || !s.ObtainedAt.Equal(now) {
		t.Errorf("Load = %+v %v %v", s, ok, err)
	}
	if fmt.Sprintf("%v %s %+v", s, s.SccAuth, s) != fmt.Sprintf("%v %s %+v", s, redacted, s) || strings.Contains(fmt.Sprintf("%v%#v%d", s, s, s.SccAuth), "S1") {
		t.Errorf("a printed session shows its secret: %v", s)
	}
	if _, ok, _ := c.Load("other"); ok {
		t.Error("another tenant got a session")
	}
	// Looser modes are repaired on open.
	os.Chmod(path, 0o644)
	if _, err := OpenSessionCache(path); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode after open = %o, want 600", fi.Mode().Perm())
	}
	if err := c.Delete("TENANT-A"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := c.Load("tenant-a"); ok {
		t.Error("Delete left the session")
	}
	// Corrupt content is refused without echoing it.
	os.WriteFile(path, []byte("{sccauth: SECRETJUNK"), 0o600)
	if _, err := OpenSessionCache(path); err == nil || strings.Contains(err.Error(), "SECRETJUNK") {
		t.Errorf("corrupt cache: err = %v", err)
	}
	// A symlink is refused.
	link := filepath.Join(dir, "link.json")
	os.Symlink(path, link)
	if _, err := OpenSessionCache(link); err == nil {
		t.Error("symlinked cache accepted")
	}
	if c, err := OpenSessionCache(""); c != nil || err != nil {
		t.Errorf("empty path = %v, %v; want no cache", c, err)
	}
}

func TestCookieSessionUsesCacheOnlyForSameSeed(t *testing.T) {
	c, _ := OpenSessionCache(filepath.Join(t.TempDir(), "s.json"))
	s1, _ := NewCookieSession(CookieSessionOptions{SccAuth: "S1", XSRF: "X1", Cache: c, Logger: quietLog()})
	s1.core.mu.Lock()
	s1.core.scc = "S1-rotated"
	s1.core.mu.Unlock()
	s1.core.save()
	again, _ := NewCookieSession(CookieSessionOptions{SccAuth: "S1", XSRF: "X1", Cache: c, Logger: quietLog()})
	if again.core.scc != "S1-rotated" {
		t.Errorf("restart with the same configured cookie did not reuse the rotated session")
	}
	fresh, _ := NewCookieSession(CookieSessionOptions{SccAuth: "S2", XSRF: "X2", Cache: c, Logger: quietLog()})
	if fresh.core.scc != "S2" {
		t.Errorf("a newly configured cookie lost against the cache: %q", fresh.core.scc.Reveal())
	}
}

func TestPortalBearerRotation(t *testing.T) {
	var mu sync.Mutex
	issued := 0
	m := newMultiHost(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if hostOnly(r) != "login.microsoftonline.com" || r.URL.Path != "/tenant1/oauth2/v2.0/token" {
			http.NotFound(w, r)
			return
		}
		r.ParseForm()
		want := fmt.Sprintf("RT%d", issued)
		if r.PostForm.Get("refresh_token") != want || r.PostForm.Get("client_id") != DefaultBearerClientID || r.PostForm.Get("scope") != PortalAppScope {
			w.WriteHeader(400)
			fmt.Fprint(w, `{"error":"invalid_grant","error_description":"AADSTS70000: The provided value for the input parameter 'refresh_token' is not valid.","error_codes":[70000]}`)
			return
		}
		issued++
		fmt.Fprintf(w, `{"token_type":"Bearer","expires_in":3600,"access_token":"AT%d","refresh_token":"RT%d"}`, issued, issued)
	})
	clk := &clock{t: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)}
	cache, _ := OpenSessionCache(filepath.Join(t.TempDir(), "s.json"))
	b, err := NewPortalBearer(PortalBearerOptions{RefreshToken: "RT0", TenantID: "tenant1", Client: m.client, Cache: cache, Now: clk.now, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	steps := []struct {
		advance time.Duration
		want    string
	}{
		{0, "AT1"}, {50 * time.Minute, "AT1"}, {6 * time.Minute, "AT2"}, {time.Minute, "AT2"},
	}
	for i, st := range steps {
		clk.add(st.advance)
		if err := b.Maintain(ctx); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		req := httptest.NewRequest("GET", "https://security.microsoft.com/apiproxy/x", nil)
		if err := b.Apply(req); err != nil || req.Header.Get("Authorization") != "Bearer "+st.want {
			t.Fatalf("step %d: Authorization %q, %v; want %s", i, req.Header.Get("Authorization"), err, st.want)
		}
	}
	if err := b.Apply(httptest.NewRequest("GET", "https://api.security.microsoft.com/api/x", nil)); err == nil {
		t.Error("bearer applied to a host other than the portal")
	}
	if _, ok, _ := cache.Load(cacheKeyBearer("tenant1")); ok {
		t.Error("a rotated refresh token was cached before the portal accepted a bearer token")
	}
	b.Proven()
	// A restarted harvester continues from the rotated token in the cache.
	b2, _ := NewPortalBearer(PortalBearerOptions{RefreshToken: "RT0", TenantID: "tenant1", Client: m.client, Cache: cache, Now: clk.now, Logger: quietLog()})
	if tok, err := b2.Token(ctx); err != nil || tok != "AT3" {
		t.Fatalf("after restart Token = %q, %v; want AT3 from the cached RT2", tok, err)
	}
	// A refused refresh token becomes a SignInError without the token.
	b3, _ := NewPortalBearer(PortalBearerOptions{RefreshToken: "RTbad", TenantID: "tenant1", Client: m.client, Now: clk.now, Logger: quietLog()})
	err = b3.Refresh(ctx)
	var se *SignInError
	if !errors.As(err, &se) || se.Code != 70000 || strings.Contains(err.Error(), "RTbad") {
		t.Errorf("err = %v, want SignInError 70000 without the token", err)
	}
}

func TestNewCredentialErrors(t *testing.T) {
	dir := t.TempDir()
	loose := filepath.Join(dir, "loose.pem")
	os.WriteFile(loose, []byte("x"), 0o644)
	os.Chmod(loose, 0o644)
	junk := filepath.Join(dir, "junk.pem")
	os.WriteFile(junk, []byte("not a pem"), 0o600)
	tests := []struct {
		name string
		o    CredentialOptions
		want string
	}{
		{"no method", CredentialOptions{}, "no sign-in method"},
		{"unknown", CredentialOptions{Method: "password"}, "unknown sign-in method"},
		{"secret missing", CredentialOptions{Method: "client_secret", TenantID: "t", ClientID: "c"}, "client secret"},
		{"cert missing", CredentialOptions{Method: "certificate", TenantID: "t"}, "client id, certificate file"},
		{"cert loose", CredentialOptions{Method: "certificate", TenantID: "t", ClientID: "c", CertificateFile: loose}, "chmod 600"},
		{"cert junk", CredentialOptions{Method: "certificate", TenantID: "t", ClientID: "c", CertificateFile: junk}, "export it again"},
		{"http authority", CredentialOptions{Method: "client_secret", TenantID: "t", ClientID: "c", Secret: "s", AuthorityHost: "http://x"}, "https"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewCredential(tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
	if runtime.GOOS != "windows" {
		os.WriteFile(filepath.Join(dir, "rec.json"), []byte(`{}`), 0o644)
		os.Chmod(filepath.Join(dir, "rec.json"), 0o644)
		_, err := NewCredential(CredentialOptions{Method: "device_code", TenantID: "t", AuthRecordFile: filepath.Join(dir, "rec.json")})
		if err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("loose auth record: err = %v", err)
		}
	}
}

func TestSignInErrorFromEntra(t *testing.T) {
	tests := []struct {
		text string
		code int
		hint string
	}{
		{"ClientSecretCredential authentication failed\nPOST https://login...\nAADSTS7000215: Invalid client secret provided. Trace ID: 1", 7000215, "client secret is wrong"},
		{`{"error":"invalid_client","error_codes":[700016]}`, 700016, "not found in this tenant"},
		{"AADSTS90002: Tenant 'x' not found.", 90002, "tenant was not found"},
		{"AADSTS53003: Access has been blocked by Conditional Access policies.", 53003, "Conditional Access"},
		{"AADSTS700082: The refresh token has expired due to inactivity.", 700082, "sign in again"},
	}
	for _, tt := range tests {
		err := wrapEntraError(errors.New(tt.text), "supersecret")
		var se *SignInError
		if !errors.As(err, &se) || se.Code != tt.code || !strings.Contains(err.Error(), tt.hint) {
			t.Errorf("wrapEntraError(%q) = %v, want code %d hint %q", tt.text, err, tt.code, tt.hint)
		}
		if strings.Contains(err.Error(), "Trace ID") {
			t.Errorf("one sentence expected, got %q", err)
		}
	}
	err := wrapEntraError(errors.New("dial tcp: secret=supersecret refused"), "supersecret")
	if strings.Contains(err.Error(), "supersecret") {
		t.Errorf("secret leaked: %v", err)
	}
}
