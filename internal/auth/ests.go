package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/httpx"
)

// ESTSSessionOptions configure a portal session bootstrapped from the
// user's ESTSAUTHPERSISTENT cookie (docs/REFERENCE.md §1.3).
type ESTSSessionOptions struct {
	ESTSAuthPersistent string
	// TenantID is sent as ?tid= so Entra signs in to that tenant.
	TenantID string
	// PortalURL defaults to DefaultPortalURL; LoginURL to DefaultLoginURL.
	PortalURL string
	LoginURL  string
	// Client carries the requests; the session walks redirects itself.
	Client *http.Client
	// Policy bounds every sign-in hop and portal-root visit: per-attempt
	// timeout, retries and backoff (zero fields get defaults).
	Policy httpx.Policy
	Cache  *SessionCache
	Now    func() time.Time
	Logger *slog.Logger
}

// ESTSSession signs in to the portal from the ESTS cookie and signs in
// again whenever the portal session expires, so it survives the portal's
// session cap. The ESTS cookie only ever goes to the login host.
type ESTSSession struct {
	core  *portalCore
	login *url.URL
	ests  Secret
}

var (
	_ PortalSession = (*ESTSSession)(nil)
	_ Refresher     = (*ESTSSession)(nil)
	_ Maintainer    = (*ESTSSession)(nil)
	_ Prover        = (*ESTSSession)(nil)
)

// sessionLifetime is when a bootstrapped session is replaced ahead of the
// portal's ~4 h cap (docs/REFERENCE.md §1.5: one tool renews at 3 h 30 m).
const sessionLifetime = 3*time.Hour + 30*time.Minute

// maxHops bounds the sign-in redirect chain.
const maxHops = 12

// NewESTSSession validates the options; the sign-in happens on the first
// Maintain (or is skipped when the cache holds a live session).
func NewESTSSession(o ESTSSessionOptions) (*ESTSSession, error) {
	v := strings.TrimSpace(o.ESTSAuthPersistent)
	if err := checkCookieValue("ESTSAUTHPERSISTENT", v); err != nil {
		return nil, err
	}
	if o.LoginURL == "" {
		o.LoginURL = DefaultLoginURL
	}
	login, err := parseHTTPSBase("login URL", o.LoginURL)
	if err != nil {
		return nil, err
	}
	core, err := newPortalCore(o.PortalURL, o.TenantID, o.Client, o.Policy, o.Now, o.Logger, o.Cache)
	if err != nil {
		return nil, err
	}
	core.seed = fingerprint(v)
	core.loadCached()
	return &ESTSSession{core: core, login: login, ests: Secret(v)}, nil
}

// Apply adds the portal session; only the portal host may receive it.
func (s *ESTSSession) Apply(req *http.Request) error { return s.core.apply(req) }

// Secrets returns the current values for Redact.
func (s *ESTSSession) Secrets() []string { return append(s.core.secrets(), s.ests.Reveal()) }

// Proven writes the session to the cache (when it changed): the portal
// client calls it after the portal served data with the session.
func (s *ESTSSession) Proven() { s.core.proven() }

// Maintain signs in when there is no session or it is near the portal's
// cap, and renews the XSRF token every five minutes.
func (s *ESTSSession) Maintain(ctx context.Context) error {
	if !s.core.due() {
		return nil
	}
	s.core.upkeep.Lock()
	defer s.core.upkeep.Unlock()
	if !s.core.due() {
		return nil
	}
	s.core.mu.Lock()
	fresh := s.core.scc != "" && (s.core.expires.IsZero() || s.core.now().Before(s.core.expires))
	s.core.mu.Unlock()
	if fresh {
		err := s.core.visitRoot(ctx)
		if !errors.Is(err, ErrSessionExpired) {
			return err
		}
		s.core.log.Info("portal session expired; signing in again with the ESTS cookie")
	}
	return s.bootstrap(ctx)
}

// Refresh signs in again from the ESTS cookie after the portal rejected
// the session.
func (s *ESTSSession) Refresh(ctx context.Context) error {
	s.core.upkeep.Lock()
	defer s.core.upkeep.Unlock()
	return s.bootstrap(ctx)
}

// hostJar keeps cookies per exact host (port included), so a cookie set by
// one host is only ever returned to that host.
type hostJar map[string]map[string]string

func (j hostJar) set(host, name, value string) {
	if j[host] == nil {
		j[host] = map[string]string{}
	}
	j[host][name] = value
}

func (j hostJar) header(host string) string {
	var parts []string
	for k, v := range j[host] {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, "; ")
}

func (j hostJar) take(host string, resp *http.Response) {
	for _, c := range resp.Cookies() {
		if c.Name == "" || checkCookieValue(c.Name, c.Value) != nil {
			continue
		}
		if c.MaxAge < 0 {
			delete(j[host], c.Name)
			continue
		}
		j.set(host, c.Name, c.Value)
	}
}

// hopAllowed is the allow-list for the sign-in chain: the login host, the
// portal host, and Defender for Cloud Apps App Control (*.access.mcas.ms).
func (s *ESTSSession) hopAllowed(u *url.URL) bool {
	if u == nil || u.Scheme != "https" || u.User != nil {
		return false
	}
	h := canonicalHost(u)
	if h == s.login.Host || h == s.core.portal.Host {
		return true
	}
	name := u.Hostname()
	return u.Port() == "" && strings.HasSuffix(strings.ToLower(name), ".access.mcas.ms") && len(name) > len(".access.mcas.ms")
}

// bootstrap performs docs/REFERENCE.md §1.3: fresh jar, seed the login host, put
// the ESTS cookie on it, open the portal and walk the chain by hand.
func (s *ESTSSession) bootstrap(ctx context.Context) error {
	s.core.forget()
	jar := hostJar{}
	secrets := []string{s.ests.Reveal()}

	// 1. Seed login cookies (Entra expects its own cookies next to ESTS).
	seed, _ := url.Parse(s.login.String() + "/error")
	if _, _, err := s.send(ctx, jar, http.MethodGet, seed, nil, secrets); err != nil {
		return err
	}
	// 2. The ESTS cookie, on the login host only.
	jar.set(s.login.Host, "ESTSAUTHPERSISTENT", s.ests.Reveal())
	jar.set(s.login.Host, "ESTSAUTH", s.ests.Reveal())

	// 3. Open the portal and follow the chain.
	next, _ := url.Parse(s.core.rootURL())
	method, form := http.MethodGet, url.Values(nil)
	for hop := 0; hop < maxHops; hop++ {
		if !s.hopAllowed(next) {
			return fmt.Errorf("auth: the sign-in sent the harvester to %s, which is not the login host, the portal or Defender for Cloud Apps (*.access.mcas.ms); refusing to go there with session cookies", hostOf(next))
		}
		resp, body, err := s.send(ctx, jar, method, next, form, secrets)
		if err != nil {
			return err
		}
		host := canonicalHost(next)

		if host == s.core.portal.Host && jar[host]["sccauth"] != "" {
			// 4. The portal has set the session.
			return s.adopt(ctx, jar)
		}
		switch {
		case resp.StatusCode >= 300 && resp.StatusCode < 400:
			loc, err := next.Parse(resp.Header.Get("Location"))
			if err != nil || resp.Header.Get("Location") == "" {
				return fmt.Errorf("auth: %s answered a redirect without a usable Location during sign-in", host)
			}
			next, method, form = loc, http.MethodGet, nil
			continue
		case resp.StatusCode != http.StatusOK:
			if se := pageSignInError(body); se != nil {
				return se
			}
			return fmt.Errorf("auth: %s answered HTTP %d during the ESTS sign-in: retry later; if it persists sign in with cookies instead", host, resp.StatusCode)
		}
		target, fields, err := s.nextForm(next, body)
		if err != nil {
			return err
		}
		next, method, form = target, http.MethodPost, fields
	}
	return fmt.Errorf("auth: the ESTS sign-in did not finish after %d steps: sign in with cookies instead, and report the chain (host names only) to the maintainers", maxHops)
}

// nextForm picks what to submit from a sign-in page: the portal's
// authorization-code form (code, id_token, state, session_state,
// correlation_id) or the App Control form posting id_token to
// *.access.mcas.ms. Anything else is an error, explained when Entra said why.
func (s *ESTSSession) nextForm(page *url.URL, body []byte) (*url.URL, url.Values, error) {
	for _, f := range parseForms(body) {
		if f.Has("error") {
			if se := signInErrorFromText(f.Fields.Get("error_description")); se != nil {
				return nil, nil, se
			}
			return nil, nil, &SignInError{Message: f.Fields.Get("error"), Hint: "the sign-in returned an error; open the portal in a browser with the same account to see it"}
		}
		action, err := page.Parse(f.Action)
		if err != nil || f.Action == "" {
			action = page
		}
		if !s.hopAllowed(action) {
			continue
		}
		switch {
		case f.Has("code") && canonicalHost(action) == s.core.portal.Host:
			return action, pick(f.Fields, "code", "id_token", "state", "session_state", "correlation_id"), nil
		case f.Has("id_token") && canonicalHost(action) != s.core.portal.Host && canonicalHost(action) != s.login.Host:
			s.core.log.Info("sign-in passes through Defender for Cloud Apps App Control", "host", action.Hostname())
			return action, f.Fields, nil
		}
	}
	if se := pageSignInError(body); se != nil {
		return nil, nil, se
	}
	return nil, nil, &SignInError{Hint: "Entra did not sign in silently with the ESTS cookie (it showed an interactive page); sign in to the portal in a private browser window and copy a fresh ESTSAUTHPERSISTENT cookie"}
}

func pageSignInError(body []byte) *SignInError {
	code, ok := ParseSErrorCode(body)
	if !ok {
		return nil
	}
	return &SignInError{Code: code, Hint: HintFor(code)}
}

func pick(v url.Values, names ...string) url.Values {
	out := url.Values{}
	for _, n := range names {
		if x := v.Get(n); x != "" {
			out.Set(n, x)
		}
	}
	return out
}

func hostOf(u *url.URL) string {
	if u == nil {
		return "an unusable address"
	}
	return u.Host
}

// send makes one hop with only the cookies of that exact host, retried
// like a data call (429, 5xx, resets, timeouts). The answer's cookies go
// into the jar under that host.
func (s *ESTSSession) send(ctx context.Context, jar hostJar, method string, u *url.URL, form url.Values, secrets []string) (*http.Response, []byte, error) {
	for _, v := range form {
		secrets = append(secrets, v...)
	}
	host := canonicalHost(u)
	resp, body, err := s.core.policy.Do(ctx, s.core.client, "auth: ESTS sign-in request to "+host+u.Path, func(ctx context.Context) (*http.Request, error) {
		var rd io.Reader
		if form != nil {
			rd = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
		if err != nil {
			return nil, fmt.Errorf("auth: building a sign-in request to %s: %w", u.Host, err)
		}
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		req.Header.Set("Accept", "text/html,application/xhtml+xml")
		if c := jar.header(host); c != "" {
			req.Header.Set("Cookie", c)
		}
		return req, nil
	})
	if err != nil {
		// The error names host and path only (never the query, which can
		// hold the sign-in's authorization code); redact the rest anyway.
		return nil, nil, &redactedError{msg: Redact(err.Error(), secrets...), err: err}
	}
	jar.take(host, resp)
	return resp, body, nil
}

// adopt takes sccauth and XSRF-TOKEN from the portal's cookies, fetching
// the XSRF token from the root when the sign-in response did not set it.
func (s *ESTSSession) adopt(ctx context.Context, jar hostJar) error {
	pc := jar[s.core.portal.Host]
	now := s.core.now()
	s.core.mu.Lock()
	s.core.scc, s.core.xsrf = Secret(pc["sccauth"]), Secret(pc["XSRF-TOKEN"])
	s.core.obtained, s.core.expires, s.core.xsrfAt = now, now.Add(sessionLifetime), now
	s.core.unsaved = true // cached once a data call proves it
	s.core.mu.Unlock()
	if pc["XSRF-TOKEN"] == "" {
		if err := s.core.visitRoot(ctx); err != nil {
			if errors.Is(err, ErrSessionExpired) {
				return fmt.Errorf("%w: the portal refused the session it had just issued; sign in with cookies instead", ErrSessionExpired)
			}
			return err
		}
	}
	s.core.log.Info("signed in to the portal with the ESTS cookie", "portal", s.core.portal.Host)
	return nil
}

// Info implements SessionReporter.
func (s *ESTSSession) Info() SessionInfo {
	i := s.core.info()
	i.RenewsItself = true
	return i
}
