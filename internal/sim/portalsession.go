package sim

import (
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"time"
)

// ---- portal session (docs/REFERENCE.md §1.2, §1.5; docs/ARCHITECTURE.md decision 15) ----

// xsrfKeep is how many recently issued XSRF tokens stay valid per
// session, so a client that refreshes while requests are in flight is not
// broken.
const xsrfKeep = 16

// maxSessions bounds the session table: a client looping on sign-in cannot
// make the emulator grow without end.
const maxSessions = 4096

// portalSession is one signed-in portal session (one sccauth cookie) with
// its own XSRF tokens.
type portalSession struct {
	upn     string
	expires time.Time
	xsrf    []string // newest last
}

// sessions holds every live portal session. The default session is the
// one Credentials returns (minted at New, renewed by RevokePortalSession).
type sessions struct {
	mu    sync.Mutex
	clock func() time.Time
	life  time.Duration
	upn   string // the default session's user
	def   string // the default session's sccauth
	m     map[string]*portalSession
}

func newToken(n int, enc *base64.Encoding) (string, error) {
	b, err := randomBytes(n)
	if err != nil {
		return "", err
	}
	return enc.EncodeToString(b), nil
}

func newSessions(clock func() time.Time, life time.Duration, upn string) (*sessions, error) {
	s := &sessions{clock: clock, life: life, upn: upn, m: map[string]*portalSession{}}
	if err := s.reset(); err != nil {
		return nil, err
	}
	return s, nil
}

// mint starts a new session for upn and returns its cookies.
func (s *sessions) mint(upn string) (scc, xsrf string, err error) {
	if scc, err = newToken(384, base64.RawURLEncoding); err != nil {
		return "", "", err
	}
	if xsrf, err = newXSRF(); err != nil {
		return "", "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked()
	s.m[scc] = &portalSession{upn: upn, expires: s.clock().Add(s.life), xsrf: []string{xsrf}}
	return scc, xsrf, nil
}

// pruneLocked drops expired sessions and, over the bound, the oldest ones.
func (s *sessions) pruneLocked() {
	now := s.clock()
	for k, v := range s.m {
		if !now.Before(v.expires) {
			delete(s.m, k)
		}
	}
	for len(s.m) >= maxSessions {
		var oldest string
		for k, v := range s.m {
			if k != s.def && (oldest == "" || v.expires.Before(s.m[oldest].expires)) {
				oldest = k
			}
		}
		if oldest == "" {
			return
		}
		delete(s.m, oldest)
	}
}

// reset ends the default session and mints a new one.
func (s *sessions) reset() error {
	scc, _, err := s.mint(s.upn)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, s.def)
	s.def = scc
	return nil
}

// current returns the default session's cookies (empty once it expired).
func (s *sessions) current() (scc, xsrf string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps, ok := s.m[s.def]
	if !ok {
		return s.def, ""
	}
	return s.def, ps.xsrf[len(ps.xsrf)-1]
}

// lookup finds the live session of an sccauth value.
func (s *sessions) lookup(scc string) (*portalSession, bool) {
	if scc == "" {
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ps, ok := s.m[scc]
	if !ok {
		return nil, false
	}
	if !s.clock().Before(ps.expires) {
		delete(s.m, scc)
		return nil, false
	}
	return ps, true
}

// has reports whether scc is a session of this table, live or expired
// (it names the tenant whose portal answers the request).
func (s *sessions) has(scc string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.m[scc]
	return ok
}

// rotate issues a new XSRF token for the session scc.
func (s *sessions) rotate(scc string) (string, error) {
	x, err := newXSRF()
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ps, ok := s.m[scc]
	if !ok {
		return "", fmt.Errorf("sim: the portal session ended")
	}
	ps.xsrf = append(ps.xsrf, x)
	if len(ps.xsrf) > xsrfKeep {
		ps.xsrf = ps.xsrf[len(ps.xsrf)-xsrfKeep:]
	}
	return x, nil
}

// validXSRF reports whether v is one of the session's recent XSRF tokens.
func (s *sessions) validXSRF(ps *portalSession, v string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ok := false
	for _, x := range ps.xsrf {
		if v != "" && subtle.ConstantTimeCompare([]byte(v), []byte(x)) == 1 {
			ok = true
		}
	}
	return ok
}

// newXSRF is standard base64 ending in "=", so its cookie form is
// URL-encoded and differs from the header form, as on the real portal.
func newXSRF() (string, error) {
	for {
		x, err := newToken(64, base64.StdEncoding)
		if err != nil {
			return "", err
		}
		if strings.ContainsAny(x, "+/") {
			return x + "==", nil
		}
	}
}

// RevokePortalSession ends the default portal session: its sccauth and
// XSRF tokens stop working (302 / 401) and Credentials returns new ones,
// as after a fresh sign-in. Sessions signed in through Entra are not
// touched (see RevokeUserSessions).
func (t *Tenant) RevokePortalSession() error { return t.sess.reset() }
