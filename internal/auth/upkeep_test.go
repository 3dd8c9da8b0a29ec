package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/defenderharvester/defenderharvester/internal/httpx"
	"github.com/defenderharvester/defenderharvester/internal/httpx/httpxtest"
)

// noWait records backoff waits without waiting.
type noWait struct {
	mu sync.Mutex
	d  []time.Duration
}

func (n *noWait) sleep(ctx context.Context, d time.Duration) error {
	n.mu.Lock()
	n.d = append(n.d, d)
	n.mu.Unlock()
	return ctx.Err()
}

// TestRootVisitWithoutXSRFIsNotARenewal: the portal rotates XSRF-TOKEN on
// every root visit, so an answer without one (a proxy's page, maintenance)
// renewed nothing: upkeep must fail, stay due, and cache nothing.
func TestRootVisitWithoutXSRFIsNotARenewal(t *testing.T) {
	var roots atomic.Int32
	m := newMultiHost(t, func(w http.ResponseWriter, r *http.Request) {
		roots.Add(1)
		io.WriteString(w, "<html>maintenance</html>")
	})
	clk := &clock{t: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)}
	cache, _ := OpenSessionCache(filepath.Join(t.TempDir(), "s.json"))
	s, err := NewCookieSession(CookieSessionOptions{SccAuth: "S1", XSRF: "X1", Client: m.client, Cache: cache, Now: clk.now, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	clk.add(XSRFMaxAge)
	if err := s.Maintain(ctx); !errors.Is(err, ErrNoXSRF) {
		t.Fatalf("Maintain = %v, want ErrNoXSRF", err)
	}
	if err := s.Maintain(ctx); !errors.Is(err, ErrNoXSRF) || roots.Load() != 2 {
		t.Fatalf("second Maintain = %v after %d root visits; the renewal is still due, want ErrNoXSRF after 2 visits", err, roots.Load())
	}
	if err := s.Refresh(ctx); !errors.Is(err, ErrNoXSRF) {
		t.Fatalf("Refresh = %v, want ErrNoXSRF", err)
	}
	if _, ok, _ := cache.Load(""); ok {
		t.Error("a session whose renewal failed was cached")
	}
}

// TestSessionCachedOnlyOnceProven: a renewal or sign-in alone proves
// nothing; the cache gets the session only after the portal served data
// with it (Proven, called by the portal client).
func TestSessionCachedOnlyOnceProven(t *testing.T) {
	tests := []struct {
		name    string
		handler func(w http.ResponseWriter, r *http.Request)
		build   func(c *http.Client, cache *SessionCache, now func() time.Time) (interface {
			Maintainer
			Prover
		}, error)
		key string
	}{
		{"copied cookies after a root visit", (&fakePortal{valid: true}).handle,
			func(c *http.Client, cache *SessionCache, now func() time.Time) (interface {
				Maintainer
				Prover
			}, error) {
				return NewCookieSession(CookieSessionOptions{SccAuth: "S1", Client: c, Cache: cache, Now: now, Logger: quietLog()})
			}, ""},
		{"ESTS sign-in", (&estsTenant{mode: "ok"}).handle,
			func(c *http.Client, cache *SessionCache, now func() time.Time) (interface {
				Maintainer
				Prover
			}, error) {
				return NewESTSSession(ESTSSessionOptions{ESTSAuthPersistent: goodESTS, Client: c, Cache: cache, Now: now, Logger: quietLog()})
			}, ""},
		{"bearer refresh-token rotation", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"token_type":"Bearer","expires_in":3600,"access_token":"AT1","refresh_token":"RT1"}`)
		}, func(c *http.Client, cache *SessionCache, now func() time.Time) (interface {
			Maintainer
			Prover
		}, error) {
			return NewPortalBearer(PortalBearerOptions{RefreshToken: "RT0", TenantID: "tenant1", Client: c, Cache: cache, Now: now, Logger: quietLog()})
		}, cacheKeyBearer("tenant1")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMultiHost(t, tt.handler)
			clk := &clock{t: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)}
			cache, _ := OpenSessionCache(filepath.Join(t.TempDir(), "s.json"))
			s, err := tt.build(m.client, cache, clk.now)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Maintain(context.Background()); err != nil {
				t.Fatal(err)
			}
			if _, ok, _ := cache.Load(tt.key); ok {
				t.Fatal("the session was cached before any data call proved it")
			}
			s.Proven()
			if _, ok, _ := cache.Load(tt.key); !ok {
				t.Fatal("the proven session was not cached")
			}
		})
	}
}

// flaky answers the first failures requests to path with status (0: a
// connection reset), then hands over to next.
func flaky(path string, failures int32, status int, retryAfter string, next func(w http.ResponseWriter, r *http.Request)) (func(w http.ResponseWriter, r *http.Request), *atomic.Int32) {
	var n atomic.Int32
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == path && n.Add(1) <= failures {
			if status == 0 {
				c, _, _ := w.(http.Hijacker).Hijack()
				c.Close()
				return
			}
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			w.WriteHeader(status)
			return
		}
		next(w, r)
	}, &n
}

// TestUpkeepRetriedLikeDataCalls: the root visit, the ESTS sign-in hops and
// the bearer token exchange survive 429/5xx/resets like data calls, and
// give up after the policy's attempts with the host in the error.
func TestUpkeepRetriedLikeDataCalls(t *testing.T) {
	bearerOK := func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"token_type":"Bearer","expires_in":3600,"access_token":"AT1","refresh_token":"RT1"}`)
	}
	type session interface{ Refresh(context.Context) error }
	cookies := func(c *http.Client, p httpx.Policy) (session, error) {
		return NewCookieSession(CookieSessionOptions{SccAuth: "S1", XSRF: "X1", Client: c, Policy: p, Logger: quietLog()})
	}
	ests := func(c *http.Client, p httpx.Policy) (session, error) {
		return NewESTSSession(ESTSSessionOptions{ESTSAuthPersistent: goodESTS, Client: c, Policy: p, Logger: quietLog()})
	}
	bearer := func(c *http.Client, p httpx.Policy) (session, error) {
		return NewPortalBearer(PortalBearerOptions{RefreshToken: "RT0", TenantID: "tenant1", Client: c, Policy: p, Logger: quietLog()})
	}
	tests := []struct {
		name       string
		path       string
		failures   int32
		status     int
		retryAfter string
		next       func(w http.ResponseWriter, r *http.Request)
		build      func(*http.Client, httpx.Policy) (session, error)
		wantErr    string // "" = success after the retries
		wantWait   time.Duration
	}{
		{"root visit after a 503", "/", 1, 503, "", (&fakePortal{valid: true}).handle, cookies, "", 0},
		{"root visit after a 429 with Retry-After", "/", 1, 429, "3", (&fakePortal{valid: true}).handle, cookies, "", 3 * time.Second},
		{"root visit after a reset", "/", 1, 0, "", (&fakePortal{valid: true}).handle, cookies, "", 0},
		{"root visit gives up", "/", 99, 502, "", (&fakePortal{valid: true}).handle, cookies, "security.microsoft.com to renew the XSRF token: giving up after 3 attempts: HTTP 502", 0},
		{"ESTS hop after a 503", "/common/oauth2/v2.0/authorize", 2, 503, "", (&estsTenant{mode: "ok"}).handle, ests, "", 0},
		{"ESTS seed after a reset", "/error", 1, 0, "", (&estsTenant{mode: "ok"}).handle, ests, "", 0},
		{"ESTS hop gives up", "/common/oauth2/v2.0/authorize", 99, 500, "", (&estsTenant{mode: "ok"}).handle, ests, "login.microsoftonline.com/common/oauth2/v2.0/authorize: giving up after 3 attempts: HTTP 500", 0},
		{"bearer token after a 503", "/tenant1/oauth2/v2.0/token", 1, 503, "", bearerOK, bearer, "", 0},
		{"bearer token gives up", "/tenant1/oauth2/v2.0/token", 99, 503, "", bearerOK, bearer, "login.microsoftonline.com: giving up after 3 attempts: HTTP 503", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, hits := flaky(tt.path, tt.failures, tt.status, tt.retryAfter, tt.next)
			m := newMultiHost(t, h)
			w := &noWait{}
			s, err := tt.build(m.client, httpx.Policy{MaxAttempts: 3, Timeout: 10 * time.Second, Sleep: w.sleep})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Refresh(context.Background())
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Refresh = %v, want success after %d failures", err, tt.failures)
				}
				if got := hits.Load(); got != tt.failures+1 {
					t.Errorf("%s asked %d times, want %d", tt.path, got, tt.failures+1)
				}
			} else if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Refresh = %v, want %q", err, tt.wantErr)
			}
			if tt.wantWait > 0 && (len(w.d) != 1 || w.d[0] != tt.wantWait) {
				t.Errorf("waits %v, want [%s] (the server's Retry-After)", w.d, tt.wantWait)
			}
		})
	}
}

// stallTransport sends every request, whatever its host, as plain HTTP to
// addr, like the emulator transport does.
type stallTransport struct{ addr string }

func (s stallTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c := r.Clone(r.Context())
	u := *r.URL
	u.Scheme, u.Host = "http", s.addr
	c.URL, c.Host = &u, r.URL.Host
	return (&http.Transport{DialContext: (&net.Dialer{}).DialContext}).RoundTrip(c)
}

// TestUpkeepStalledEndpoint: a portal root, login host or token endpoint
// that accepts the connection and never answers (or stalls the body)
// ends each attempt at the policy's timeout, with the host and the
// timeout in the error, instead of hanging the run.
func TestUpkeepStalledEndpoint(t *testing.T) {
	type session interface{ Refresh(context.Context) error }
	builds := []struct {
		name, host string
		build      func(*http.Client, httpx.Policy) (session, error)
	}{
		{"root visit", "security.microsoft.com", func(c *http.Client, p httpx.Policy) (session, error) {
			return NewCookieSession(CookieSessionOptions{SccAuth: "S1", XSRF: "X1", Client: c, Policy: p, Logger: quietLog()})
		}},
		{"ESTS sign-in", "login.microsoftonline.com", func(c *http.Client, p httpx.Policy) (session, error) {
			return NewESTSSession(ESTSSessionOptions{ESTSAuthPersistent: goodESTS, Client: c, Policy: p, Logger: quietLog()})
		}},
		{"bearer token", "login.microsoftonline.com", func(c *http.Client, p httpx.Policy) (session, error) {
			return NewPortalBearer(PortalBearerOptions{RefreshToken: "RT0", TenantID: "tenant1", Client: c, Policy: p, Logger: quietLog()})
		}},
	}
	for _, b := range builds {
		for mode, mname := range map[httpxtest.Stall]string{httpxtest.NoAnswer: "no answer", httpxtest.StallBody: "body stalls"} {
			t.Run(b.name+"/"+mname, func(t *testing.T) {
				addr, requests := httpxtest.StallServer(t, mode)
				s, err := b.build(&http.Client{Transport: stallTransport{addr}}, httpx.Policy{Timeout: 200 * time.Millisecond, MaxAttempts: 2, Sleep: (&noWait{}).sleep})
				if err != nil {
					t.Fatal(err)
				}
				// The guard only turns a hang into a failure; it must not be
				// what ends the call.
				guard, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				err = s.Refresh(guard)
				if guard.Err() != nil {
					t.Fatal("upkeep hung until the test's guard deadline")
				}
				if !errors.Is(err, httpx.ErrTimeout) {
					t.Fatalf("err = %v, want a timeout", err)
				}
				for _, w := range []string{b.host, "200ms", "giving up after 2 attempts"} {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
				if requests() != 2 {
					t.Errorf("%d attempts, want 2", requests())
				}
			})
		}
	}
}

// TestEntraTokenRequestsTimeOut: azidentity's token requests (client
// credentials, and device-code polling) through our client get the
// policy's per-try timeout, so a stalled token endpoint fails the sign-in
// instead of hanging it.
func TestEntraTokenRequestsTimeOut(t *testing.T) {
	for _, method := range []string{MethodClientSecret, MethodDeviceCode} {
		t.Run(method, func(t *testing.T) {
			var tokenCalls atomic.Int32
			release := make(chan struct{})
			m := newMultiHost(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				base := "https://login.microsoftonline.com/tenant1"
				switch r.URL.Path {
				case "/tenant1/v2.0/.well-known/openid-configuration":
					fmt.Fprintf(w, `{"issuer":%q,"authorization_endpoint":%q,"token_endpoint":%q,"device_authorization_endpoint":%q}`,
						base+"/v2.0", base+"/oauth2/v2.0/authorize", base+"/oauth2/v2.0/token", base+"/oauth2/v2.0/devicecode")
				case "/tenant1/oauth2/v2.0/devicecode":
					fmt.Fprint(w, `{"device_code":"DC","user_code":"UC","verification_uri":"https://microsoft.com/devicelogin","expires_in":900,"interval":5,"message":"enter UC"}`)
				case "/tenant1/oauth2/v2.0/token":
					tokenCalls.Add(1)
					select { // accepted, never answered
					case <-r.Context().Done():
					case <-release:
					}
				default:
					http.NotFound(w, r)
				}
			})
			t.Cleanup(func() { close(release) }) // runs before the server closes
			cred, err := NewCredential(CredentialOptions{
				Method: method, TenantID: "tenant1", ClientID: "11111111-2222-3333-4444-555555555555", Secret: "s3cret",
				Client: m.client, DisableInstanceDiscovery: true, DeviceCodePrompt: func(string) {},
				Policy: httpx.Policy{Timeout: 300 * time.Millisecond, MaxAttempts: 2, Backoff: 10 * time.Millisecond},
			})
			if err != nil {
				t.Fatal(err)
			}
			guard, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, err = cred.GetToken(guard, policy.TokenRequestOptions{Scopes: []string{DefaultPublicAPIScope}})
			if guard.Err() != nil {
				t.Fatal("the token request hung until the test's guard deadline")
			}
			if err == nil {
				t.Fatal("a stalled token endpoint gave a token")
			}
			if n := tokenCalls.Load(); n != 2 {
				t.Errorf("token endpoint asked %d times, want 2 (the policy's attempts)", n)
			}
		})
	}
}
