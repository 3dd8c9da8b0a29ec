package mde

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/defenderharvester/defenderharvester/internal/auth"
)

// renewingSession is a fake portal session whose cookie changes on every
// Refresh, so the server can tell a renewed session from the old one.
type renewingSession struct {
	mu          sync.Mutex
	gen         int
	refreshes   int
	maintains   int
	refreshErr  error
	maintainErr error
}

func (s *renewingSession) Apply(r *http.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.Header.Set("Cookie", "sccauth=gen"+strconv.Itoa(s.gen)+"; XSRF-TOKEN=x")
	r.Header.Set("X-XSRF-TOKEN", "x")
	return nil
}

func (s *renewingSession) Refresh(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refreshes++
	if s.refreshErr != nil {
		return s.refreshErr
	}
	s.gen++
	return nil
}

func (s *renewingSession) Maintain(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maintains++
	return s.maintainErr
}

var (
	_ auth.Refresher  = (*renewingSession)(nil)
	_ auth.Maintainer = (*renewingSession)(nil)
)

func TestPortalSessionRenewal(t *testing.T) {
	// rejectAs answers a stale session the way the portal does.
	rejectAs := map[string]func(w http.ResponseWriter){
		"401": func(w http.ResponseWriter) { w.WriteHeader(401) },
		"440": func(w http.ResponseWriter) { w.WriteHeader(440) },
		"302": func(w http.ResponseWriter) {
			w.Header().Set("Location", "https://login.microsoftonline.com/x")
			w.WriteHeader(302)
		},
		"html": func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte("<html>Sign in</html>"))
		},
	}
	tests := []struct {
		name         string
		reject       string
		validFrom    int   // first session generation the server accepts; -1 none
		refreshErr   error // Refresh fails with this
		wantErr      error
		wantRequests int32
		wantRefresh  int
	}{
		{"valid session: no refresh", "401", 0, nil, nil, 1, 0},
		{"401 then renewed", "401", 1, nil, nil, 2, 1},
		{"440 then renewed", "440", 1, nil, nil, 2, 1},
		{"redirect to sign-in then renewed", "302", 1, nil, nil, 2, 1},
		{"HTML sign-in page then renewed", "html", 1, nil, nil, 2, 1},
		{"still rejected after renewal: one refresh only", "401", -1, nil, ErrSessionExpired, 2, 1},
		{"renewal fails", "302", -1, errors.New("boom"), ErrSessionExpired, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hits atomic.Int32
			sess := &renewingSession{refreshErr: tt.refreshErr}
			c, _ := newTestPortal(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				ck, _ := r.Cookie("sccauth")
				gen, _ := strconv.Atoi(ck.Value[3:])
				if tt.validFrom < 0 || gen < tt.validFrom {
					rejectAs[tt.reject](w)
					return
				}
				w.Write([]byte(`{"ok":1}`))
			}), func(o *PortalOptions) { o.Session = sess })
			out, err := c.Get(context.Background(), "/apiproxy/mtp/x", nil)
			if tt.wantErr == nil && (err != nil || string(out) != `{"ok":1}`) {
				t.Fatalf("got %s, %v; want the data", out, err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if hits.Load() != tt.wantRequests || sess.refreshes != tt.wantRefresh {
				t.Errorf("requests = %d, refreshes = %d; want %d, %d", hits.Load(), sess.refreshes, tt.wantRequests, tt.wantRefresh)
			}
			if sess.maintains != int(hits.Load()) {
				t.Errorf("Maintain called %d times for %d requests; want once before each", sess.maintains, hits.Load())
			}
		})
	}
}

func TestPortalRenewalKeepsSignInError(t *testing.T) {
	sie := &auth.SignInError{Code: 50058, Hint: "sign in again in a private window and copy a new ESTSAUTHPERSISTENT cookie"}
	sess := &renewingSession{refreshErr: sie}
	c, _ := newTestPortal(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(440) }),
		func(o *PortalOptions) { o.Session = sess })
	_, err := c.Get(context.Background(), "/apiproxy/mtp/x", nil)
	var got *auth.SignInError
	if !errors.As(err, &got) || got.Code != 50058 || !errors.Is(err, ErrSessionExpired) {
		t.Fatalf("err = %v; want the sign-in error and ErrSessionExpired", err)
	}
	if _, fix := Explain(err); !strings.Contains(fix, "private window") {
		t.Errorf("Explain fix = %q; want the sign-in hint", fix)
	}
}

func TestPortalNoRenewalForOtherFailures(t *testing.T) {
	for _, st := range []int{400, 403, 404} {
		t.Run(strconv.Itoa(st), func(t *testing.T) {
			var hits atomic.Int32
			sess := &renewingSession{}
			c, _ := newTestPortal(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				w.WriteHeader(st)
			}), func(o *PortalOptions) { o.Session = sess })
			if _, err := c.Get(context.Background(), "/apiproxy/mtp/x", nil); err == nil {
				t.Fatal("no error")
			}
			if sess.refreshes != 0 || hits.Load() != 1 {
				t.Errorf("HTTP %d: refreshes = %d, requests = %d; a role or path problem must not renew the session", st, sess.refreshes, hits.Load())
			}
		})
	}
}

func TestPortalMaintainBeforeEveryAttempt(t *testing.T) {
	var hits atomic.Int32
	sess := &renewingSession{}
	c, _ := newTestPortal(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) < 3 {
			w.WriteHeader(503)
			return
		}
		w.Write([]byte(`[]`))
	}), func(o *PortalOptions) { o.Session = sess })
	if _, err := c.Get(context.Background(), "/apiproxy/mtp/x", nil); err != nil {
		t.Fatal(err)
	}
	if sess.maintains != 3 || hits.Load() != 3 {
		t.Errorf("maintains = %d, requests = %d; want 3 and 3 (upkeep before each retry too)", sess.maintains, hits.Load())
	}
}

func TestPortalMaintainFailureStopsRequest(t *testing.T) {
	var hits atomic.Int32
	sess := &renewingSession{maintainErr: errors.New("portal root unreachable")}
	c, _ := newTestPortal(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }),
		func(o *PortalOptions) { o.Session = sess })
	_, err := c.Get(context.Background(), "/apiproxy/mtp/x", nil)
	if !errors.Is(err, ErrSessionUpkeep) {
		t.Fatalf("err = %v, want ErrSessionUpkeep", err)
	}
	if hits.Load() != 0 {
		t.Errorf("a request with a session that failed upkeep reached the portal")
	}
}

func TestStaticCookiesAreNotRenewed(t *testing.T) {
	var hits atomic.Int32
	c, _ := newTestPortal(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(401)
	}), nil)
	_, err := c.Get(context.Background(), "/apiproxy/mtp/x", nil)
	if !errors.Is(err, ErrSessionExpired) || hits.Load() != 1 {
		t.Errorf("err = %v after %d requests; want ErrSessionExpired after 1", err, hits.Load())
	}
}
