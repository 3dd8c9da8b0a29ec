package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a test clock the tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var testStart = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

// env is a tenant served over loopback plain HTTP with driven clocks.
type env struct {
	t    *testing.T
	ten  *Tenant
	srv  *httptest.Server
	data *clock // data clock
	wall *clock // wall clock
}

func newEnv(t *testing.T, mod func(*Options)) *env {
	t.Helper()
	e := &env{t: t, data: newClock(testStart.Add(12 * time.Hour)), wall: newClock(time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC))}
	o := Options{Seed: 42, Start: testStart, Now: e.data.Now, Clock: e.wall.Now}
	if mod != nil {
		mod(&o)
	}
	ten, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.ten = ten
	e.srv = httptest.NewServer(ten.Handler())
	t.Cleanup(e.srv.Close)
	return e
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decoding %q: %v", truncate(r.body), err)
	}
}

func truncate(b []byte) string {
	if len(b) > 400 {
		return string(b[:400]) + "…"
	}
	return string(b)
}

// do sends a request to host (Host header) over the loopback server.
func (e *env) do(method, host, pathQuery string, body []byte, hdr map[string]string) resp {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+pathQuery, rd)
	if err != nil {
		e.t.Fatalf("request: %v", err)
	}
	req.Host = host
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := cl.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s%s: %v", method, host, pathQuery, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatalf("reading body: %v", err)
	}
	return resp{res.StatusCode, res.Header, b}
}

// portal sends an authenticated portal request.
func (e *env) portal(method, pathQuery string, body []byte) resp {
	e.t.Helper()
	c := e.ten.Credentials()
	return e.do(method, "security.microsoft.com", pathQuery, body, map[string]string{
		"Cookie":       "sccauth=" + c.SccAuth + "; XSRF-TOKEN=" + url.QueryEscape(c.XSRFToken),
		"X-XSRF-TOKEN": c.XSRFToken,
		"Content-Type": "application/json",
	})
}

// token gets an access token for scope with the given app credentials.
func (e *env) token(clientID, secret, scope string) string {
	e.t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret}, "scope": {scope}}
	r := e.do(http.MethodPost, "login.microsoftonline.com", "/"+e.ten.TenantID()+"/oauth2/v2.0/token", []byte(form.Encode()),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if r.status != http.StatusOK {
		e.t.Fatalf("token for %s: %d %s", scope, r.status, r.body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	r.json(e.t, &tok)
	return tok.AccessToken
}

func (e *env) publicToken() string {
	c := e.ten.Credentials()
	return e.token(c.ClientID, c.ClientSecret, "https://api.securitycenter.microsoft.com/.default")
}

func (e *env) public(pathQuery, tok string) resp {
	e.t.Helper()
	return e.do(http.MethodGet, "api.security.microsoft.com", pathQuery, nil, map[string]string{"Authorization": "Bearer " + tok})
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func strconvItoa(n int) string { return fmt.Sprint(n) }

func newTestServer(t *testing.T, ten *Tenant) *httptest.Server {
	s := httptest.NewServer(ten.Handler())
	t.Cleanup(s.Close)
	return s
}
