package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/httpx"
)

const (
	// DefaultPortalURL is the Defender XDR portal.
	DefaultPortalURL = "https://security.microsoft.com"
	// DefaultLoginURL is the Entra ID sign-in host of the public cloud.
	DefaultLoginURL = "https://login.microsoftonline.com"
	// XSRFMaxAge is how long an XSRF token is used before the portal root is
	// visited again for a fresh one (docs/REFERENCE.md §1.5: tools cache it 5 min).
	XSRFMaxAge = 5 * time.Minute
	// maxPageBytes caps any sign-in or portal page read into memory.
	maxPageBytes = 4 << 20
)

// ErrNoXSRF reports a portal-root visit that set no XSRF-TOKEN cookie: the
// session was not renewed (the portal rotates the token on every visit).
var ErrNoXSRF = errors.New("auth: the portal root answered without setting an XSRF-TOKEN cookie, so the session was not renewed")

// ErrSessionExpired reports that the portal no longer accepts the session.
// Callers can test for it with errors.Is.
var ErrSessionExpired = errors.New("auth: the portal session is invalid or expired")

// errCookieExpired is the message for a copied-cookie session that ran out.
var errCookieExpired = fmt.Errorf("%w: sign in to the portal again and copy fresh cookies (or use the ESTS cookie so the harvester can renew sessions itself)", ErrSessionExpired)

// portalCore is the state shared by cookie and ESTS sessions: the current
// sccauth/XSRF pair and the upkeep visit to the portal root.
type portalCore struct {
	portal *url.URL
	tenant string
	client *http.Client // never follows redirects
	policy httpx.Policy // timeouts and retries of every upkeep request
	now    func() time.Time
	log    *slog.Logger
	cache  *SessionCache
	seed   string // fingerprint of the configured secret, to validate cache entries

	upkeep sync.Mutex // serialises network upkeep so one visit serves all waiters

	mu        sync.Mutex
	scc, xsrf Secret
	xsrfAt    time.Time
	obtained  time.Time
	expires   time.Time
	// unsaved: the values changed since they were last written to the
	// cache; they are written once a data call proved them (proven).
	unsaved bool
}

func newPortalCore(portalURL, tenant string, client *http.Client, policy httpx.Policy, now func() time.Time, log *slog.Logger, cache *SessionCache) (*portalCore, error) {
	if portalURL == "" {
		portalURL = DefaultPortalURL
	}
	u, err := parseHTTPSBase("portal URL", portalURL)
	if err != nil {
		return nil, err
	}
	tenant = strings.TrimSpace(tenant)
	if strings.ContainsAny(tenant, "/?#&% \r\n") {
		return nil, errors.New("auth: the tenant id contains characters a tenant id or domain cannot have: use the directory (tenant) GUID or its primary domain")
	}
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	if policy.Logger == nil {
		policy.Logger = log
	}
	return &portalCore{portal: u, tenant: tenant, client: noRedirectClient(client), policy: policy.WithDefaults(), now: now, log: log, cache: cache}, nil
}

// parseHTTPSBase accepts an https origin (path "/" or empty, no userinfo,
// query or fragment), since credentials are bound to that exact origin.
func parseHTTPSBase(what, raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(strings.TrimSpace(raw), "/"))
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("auth: the %s %q must be an https origin such as %s (no path, query or user info)", what, raw, DefaultPortalURL)
	}
	u.Path = ""
	u.Host = canonicalHost(u)
	return u, nil
}

// canonicalHost lower-cases the host and drops the default https port.
func canonicalHost(u *url.URL) string {
	h := strings.ToLower(u.Host)
	return strings.TrimSuffix(h, ":443")
}

// noRedirectClient rebuilds c with httpx.NewClient, whatever c allowed:
// redirects are returned, not followed, and no shared cookie jar sees
// our cookies. c's transport and timeout are kept.
func noRedirectClient(c *http.Client) *http.Client {
	if c == nil {
		return httpx.NewClient(nil, 0)
	}
	return httpx.NewClient(c.Transport, c.Timeout)
}

func fingerprint(s string) string {
	if s == "" {
		return ""
	}
	h := sha256.Sum256([]byte("defenderharvester-seed\x00" + s))
	return hex.EncodeToString(h[:8])
}

// allowedPortalHost reports whether u may receive the portal cookies: the
// portal origin itself, or its mto. sibling (multi-tenant view).
func (p *portalCore) allowedPortalHost(u *url.URL) bool {
	if u == nil || u.Scheme != "https" || u.User != nil {
		return false
	}
	h := canonicalHost(u)
	return h == p.portal.Host || h == "mto."+p.portal.Host
}

// apply puts the session on req after checking its destination.
func (p *portalCore) apply(req *http.Request) error {
	if req == nil || req.URL == nil {
		return errors.New("auth: no request to authenticate")
	}
	if !p.allowedPortalHost(req.URL) {
		return fmt.Errorf("auth: refusing to send the portal session to %s: only %s and mto.%s may receive it", req.URL.Host, p.portal.Host, p.portal.Host)
	}
	p.mu.Lock()
	scc, xsrf := p.scc, p.xsrf
	p.mu.Unlock()
	if scc == "" || xsrf == "" {
		return errors.New("auth: the portal session is not established yet: the portal client must call Maintain before Apply")
	}
	hdr, err := url.QueryUnescape(xsrf.Reveal())
	if err != nil || strings.ContainsAny(hdr, "\r\n\x00") {
		return errors.New("auth: the XSRF-TOKEN cookie the portal set is not valid URL encoding: run again to fetch a new one")
	}
	c := "sccauth=" + scc.Reveal() + "; XSRF-TOKEN=" + xsrf.Reveal()
	if prev := req.Header.Get("Cookie"); prev != "" {
		c = prev + "; " + c
	}
	req.Header.Set("Cookie", c)
	req.Header.Set("X-XSRF-TOKEN", hdr)
	return nil
}

// secrets lists the current values for Redact.
func (p *portalCore) secrets() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return []string{p.scc.Reveal(), p.xsrf.Reveal()}
}

// due reports whether the XSRF token must be renewed before a request.
func (p *portalCore) due() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.scc == "" || p.xsrf == "" {
		return true
	}
	if !p.expires.IsZero() && !p.now().Before(p.expires) {
		return true
	}
	return p.now().Sub(p.xsrfAt) >= XSRFMaxAge
}

func (p *portalCore) rootURL() string {
	u := *p.portal
	u.Path = "/"
	if p.tenant != "" {
		u.RawQuery = "tid=" + url.QueryEscape(p.tenant)
	}
	return u.String()
}

// visitRoot GETs the portal root with the session, the way the browser's
// SPA does, and takes the rotated XSRF-TOKEN (and sccauth) it sets. The
// visit is retried like a data call (429, 5xx, resets, timeouts). A
// redirect, an auth status or a sign-in page means the session is gone;
// an answer without a new XSRF-TOKEN is not a renewal (ErrNoXSRF).
func (p *portalCore) visitRoot(ctx context.Context) error {
	p.mu.Lock()
	scc, xsrf := p.scc, p.xsrf
	p.mu.Unlock()
	if scc == "" {
		return errCookieExpired
	}
	c := "sccauth=" + scc.Reveal()
	if xsrf != "" {
		c += "; XSRF-TOKEN=" + xsrf.Reveal()
	}
	resp, body, err := p.policy.Do(ctx, p.client, "auth: visiting the portal root "+p.portal.Host+" to renew the XSRF token", func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.rootURL(), nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Cookie", c)
		req.Header.Set("Accept", "text/html,application/xhtml+xml")
		return req, nil
	})
	if err != nil {
		return &redactedError{msg: Redact(err.Error(), scc.Reveal(), xsrf.Reveal()), err: err}
	}
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400,
		resp.StatusCode == http.StatusUnauthorized, resp.StatusCode == 419, resp.StatusCode == 440:
		p.log.Info("portal session rejected at the portal root", "status", resp.StatusCode)
		return p.rejected()
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("auth: the portal root answered HTTP %d while renewing the XSRF token: retry later; if it persists check the portal's service health", resp.StatusCode)
	}
	var newScc, newXSRF string
	for _, ck := range resp.Cookies() {
		switch {
		case strings.EqualFold(ck.Name, "sccauth") && checkCookieValue("sccauth", ck.Value) == nil:
			newScc = ck.Value
		case strings.EqualFold(ck.Name, "XSRF-TOKEN") && checkCookieValue("XSRF-TOKEN", ck.Value) == nil:
			newXSRF = ck.Value
		}
	}
	if newXSRF == "" {
		if looksLikeSignInPage(body) {
			p.log.Info("portal root returned a sign-in page: session expired")
			return p.rejected()
		}
		return fmt.Errorf("%w: a proxy may be answering for the portal, or the portal is in maintenance; retry later", ErrNoXSRF)
	}
	now := p.now()
	p.mu.Lock()
	if newScc != "" {
		p.scc = Secret(newScc)
	}
	p.xsrf = Secret(newXSRF)
	p.xsrfAt = now
	p.unsaved = true
	p.mu.Unlock()
	p.log.Debug("portal XSRF token renewed", "sccauth_rotated", newScc != "")
	return nil
}

// rejected is the error of a root visit the portal answered with a
// sign-in: with a tenant named (?tid=), the portal does the same for a
// session of another tenant, so the error says both possibilities.
func (p *portalCore) rejected() error {
	if p.tenant == "" {
		return ErrSessionExpired
	}
	return fmt.Errorf("%w; or it is a session of another tenant than tenant_id %s (the portal answers a visit for tid=%s with a sign-in then): check tenant_id", ErrSessionExpired, p.tenant, p.tenant)
}

// proven writes the session to the cache when it changed since it was
// last written: the portal has just served data with it.
func (p *portalCore) proven() {
	p.mu.Lock()
	due := p.unsaved
	p.unsaved = false
	p.mu.Unlock()
	if due {
		p.save()
	}
}

// save writes the current session to the cache; a failing cache is logged,
// not fatal, since the session itself still works.
func (p *portalCore) save() {
	if p.cache == nil {
		return
	}
	p.mu.Lock()
	s := Session{SccAuth: p.scc, XSRF: p.xsrf, ObtainedAt: p.obtained, ExpiresAt: p.expires, Seed: p.seed}
	p.mu.Unlock()
	if err := p.cache.Save(p.tenant, s); err != nil {
		p.log.Warn("could not save the portal session cache", "path", p.cache.Path(), "err", err)
	}
}

// loadCached adopts the cached session when it grew from the same
// configured secret and has not expired.
func (p *portalCore) loadCached() bool {
	if p.cache == nil {
		return false
	}
	s, ok, err := p.cache.Load(p.tenant)
	if err != nil {
		p.log.Warn("ignoring the portal session cache", "path", p.cache.Path(), "err", err)
		return false
	}
	if !ok || s.SccAuth == "" || s.Seed != p.seed || (!s.ExpiresAt.IsZero() && !p.now().Before(s.ExpiresAt)) {
		return false
	}
	if checkCookieValue("sccauth", s.SccAuth.Reveal()) != nil || (s.XSRF != "" && checkCookieValue("XSRF-TOKEN", s.XSRF.Reveal()) != nil) {
		return false
	}
	p.mu.Lock()
	p.scc, p.xsrf, p.obtained, p.expires = s.SccAuth, s.XSRF, s.ObtainedAt, s.ExpiresAt
	p.xsrfAt = time.Time{} // unknown age: renew before first use
	p.unsaved = false
	p.mu.Unlock()
	p.log.Debug("reusing the cached portal session")
	return true
}

func (p *portalCore) forget() {
	p.mu.Lock()
	p.scc, p.xsrf = "", ""
	p.unsaved = false
	p.mu.Unlock()
	if p.cache != nil {
		if err := p.cache.Delete(p.tenant); err != nil {
			p.log.Warn("could not remove the rejected session from the cache", "path", p.cache.Path(), "err", err)
		}
	}
}

// looksLikeSignInPage spots the Entra sign-in page (or a page bouncing to
// it) where the portal should have answered with its own content.
func looksLikeSignInPage(body []byte) bool {
	for _, m := range [][]byte{[]byte("ConvergedSignIn"), []byte(`"sErrorCode"`), []byte(`"urlPost"`), []byte("login.microsoftonline.com/common/oauth2"), []byte("/oauth2/v2.0/authorize"), []byte("/oauth2/authorize")} {
		if bytes.Contains(body, m) {
			return true
		}
	}
	return false
}

// CookieSessionOptions configure a session built from cookies copied from
// a signed-in browser.
type CookieSessionOptions struct {
	SccAuth string
	// XSRF may be empty: it is then fetched from the portal root.
	XSRF string
	// PortalURL defaults to DefaultPortalURL.
	PortalURL string
	// TenantID is sent as ?tid= on root visits (selects the tenant for
	// guests and multi-tenant accounts).
	TenantID string
	// Client carries the requests (mde.NewTransport); redirects are never
	// followed by the session.
	Client *http.Client
	// Policy bounds every portal-root visit: per-attempt timeout, retries
	// and backoff (the config's http.* keys; zero fields get defaults).
	Policy httpx.Policy
	Cache  *SessionCache
	Now    func() time.Time
	Logger *slog.Logger
}

// CookieSession is a portal session from copied cookies. It keeps the
// XSRF token fresh by re-visiting the portal root at most every five
// minutes; it cannot sign in again by itself once sccauth expires.
type CookieSession struct{ core *portalCore }

var (
	_ PortalSession = (*CookieSession)(nil)
	_ Refresher     = (*CookieSession)(nil)
	_ Maintainer    = (*CookieSession)(nil)
	_ Prover        = (*CookieSession)(nil)
)

// NewCookieSession validates the cookies; no request is made until Maintain.
func NewCookieSession(o CookieSessionOptions) (*CookieSession, error) {
	o.SccAuth, o.XSRF = strings.TrimSpace(o.SccAuth), strings.TrimSpace(o.XSRF)
	if err := checkCookieValue("sccauth", o.SccAuth); err != nil {
		return nil, err
	}
	if o.XSRF != "" {
		if err := checkCookieValue("XSRF-TOKEN", o.XSRF); err != nil {
			return nil, err
		}
		if _, err := url.QueryUnescape(o.XSRF); err != nil {
			return nil, errors.New("auth: the XSRF-TOKEN cookie value is not valid URL encoding: copy it again from the browser's cookie storage")
		}
	}
	core, err := newPortalCore(o.PortalURL, o.TenantID, o.Client, o.Policy, o.Now, o.Logger, o.Cache)
	if err != nil {
		return nil, err
	}
	core.seed = fingerprint(o.SccAuth)
	if !core.loadCached() {
		core.scc, core.xsrf = Secret(o.SccAuth), Secret(o.XSRF)
		core.obtained = core.now()
		core.unsaved = true
		if o.XSRF != "" {
			// A copied token's age is unknown; treat it as fresh for one
			// upkeep period rather than visiting the root before the
			// first request.
			core.xsrfAt = core.now()
		}
	}
	return &CookieSession{core: core}, nil
}

// Apply adds sccauth, XSRF-TOKEN and X-XSRF-TOKEN; only the portal host
// (and its mto. sibling) may receive them.
func (s *CookieSession) Apply(req *http.Request) error { return s.core.apply(req) }

// Maintain renews the XSRF token when it is missing or older than five
// minutes; otherwise it returns at once.
func (s *CookieSession) Maintain(ctx context.Context) error {
	if !s.core.due() {
		return nil
	}
	s.core.upkeep.Lock()
	defer s.core.upkeep.Unlock()
	if !s.core.due() { // another caller renewed it meanwhile
		return nil
	}
	return s.renew(ctx)
}

// Refresh re-visits the portal root after the portal rejected a request.
func (s *CookieSession) Refresh(ctx context.Context) error {
	s.core.upkeep.Lock()
	defer s.core.upkeep.Unlock()
	return s.renew(ctx)
}

func (s *CookieSession) renew(ctx context.Context) error {
	err := s.core.visitRoot(ctx)
	if errors.Is(err, ErrSessionExpired) {
		s.core.forget()
		if s.core.tenant != "" {
			return fmt.Errorf("%w; or it is a session of another tenant than tenant_id %s (the portal answers a visit for tid=%s with a sign-in then): check tenant_id", errCookieExpired, s.core.tenant, s.core.tenant)
		}
		return errCookieExpired
	}
	return err
}

// Proven writes the session to the cache (when it changed): the portal
// client calls it after the portal served data with the session.
func (s *CookieSession) Proven() { s.core.proven() }

// Secrets returns the current values for Redact.
func (s *CookieSession) Secrets() []string { return s.core.secrets() }

// SessionInfo says how old a portal session is and when it expires (zero
// when the portal did not say); the metrics of `serve` show both.
type SessionInfo struct {
	ObtainedAt, ExpiresAt time.Time
	// RenewsItself says the session signs in again by itself before
	// ExpiresAt (ESTS): ExpiresAt is a renewal time, not an expiry the
	// operator must act on.
	RenewsItself bool
}

// SessionReporter is implemented by portal sessions that know their age.
type SessionReporter interface {
	Info() SessionInfo
}

func (p *portalCore) info() SessionInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	return SessionInfo{ObtainedAt: p.obtained, ExpiresAt: p.expires}
}

// Info implements SessionReporter.
func (s *CookieSession) Info() SessionInfo { return s.core.info() }
