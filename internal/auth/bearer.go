package auth

import (
	"context"
	"encoding/json"
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
	// DefaultBearerClientID is the public client whose refresh token is
	// exchanged (Microsoft Teams, a FOCI client; docs/REFERENCE.md §1.4).
	DefaultBearerClientID = "1fec8e78-bce4-4aaf-ab1b-5451cc387264"
	// PortalAppScope asks for a token for the portal app itself.
	PortalAppScope = "80ccca67-54bd-44ab-8625-4b79c4dc7775/.default offline_access"
)

// PortalBearerOptions configure the experimental bearer mode.
type PortalBearerOptions struct {
	RefreshToken string
	TenantID     string // required: the token endpoint is per tenant
	ClientID     string // default DefaultBearerClientID
	Scope        string // default PortalAppScope
	LoginURL     string // default DefaultLoginURL
	PortalURL    string // default DefaultPortalURL; the only host that gets the token
	Client       *http.Client
	// Policy bounds every token request: per-attempt timeout, retries
	// and backoff (zero fields get defaults).
	Policy httpx.Policy
	Cache  *SessionCache
	Now    func() time.Time
	Logger *slog.Logger
}

// PortalBearer is EXPERIMENTAL: it trades a refresh token for an access
// token of the portal app and sends it as Authorization: Bearer, without
// cookies. The refresh token rotates on every exchange and is cached.
type PortalBearer struct {
	tokenURL  string
	tokenHost string      // for error texts
	portal    *portalCore // host checks and clock only
	clientID  string
	scope     string
	seed      string

	upkeep  sync.Mutex
	mu      sync.Mutex
	refresh Secret
	access  Secret
	expires time.Time
	unsaved bool // a rotated refresh token waits for a data call to prove it
}

var (
	_ PortalSession = (*PortalBearer)(nil)
	_ Refresher     = (*PortalBearer)(nil)
	_ Maintainer    = (*PortalBearer)(nil)
	_ TokenSource   = (*PortalBearer)(nil)
	_ Prover        = (*PortalBearer)(nil)
)

// NewPortalBearer validates the options; the first exchange happens on
// Maintain or Token.
func NewPortalBearer(o PortalBearerOptions) (*PortalBearer, error) {
	rt := strings.TrimSpace(o.RefreshToken)
	if rt == "" || strings.ContainsAny(rt, " \r\n\t") {
		return nil, errors.New("auth: the portal refresh token is empty or spans several words: paste the refresh token alone")
	}
	if strings.TrimSpace(o.TenantID) == "" {
		return nil, errors.New("auth: bearer mode needs the tenant id (the token endpoint is per tenant): set tenant_id")
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
	if o.ClientID == "" {
		o.ClientID = DefaultBearerClientID
	}
	if o.Scope == "" {
		o.Scope = PortalAppScope
	}
	b := &PortalBearer{
		tokenURL: login.String() + "/" + url.PathEscape(core.tenant) + "/oauth2/v2.0/token", tokenHost: login.Host,
		portal: core, clientID: o.ClientID, scope: o.Scope, seed: fingerprint(rt), refresh: Secret(rt),
	}
	// A rotated refresh token from an earlier run is newer than the
	// configured one, as long as it grew from the same configured token.
	if s, ok, err := core.cache.Load(cacheKeyBearer(core.tenant)); err == nil && ok && s.Seed == b.seed && s.RefreshToken != "" {
		b.refresh = s.RefreshToken
	}
	return b, nil
}

func cacheKeyBearer(tenant string) string { return "bearer:" + cacheKey(tenant) }

// Apply sets Authorization: Bearer for the portal host only.
func (b *PortalBearer) Apply(req *http.Request) error {
	if req == nil || req.URL == nil {
		return errors.New("auth: no request to authenticate")
	}
	if !b.portal.allowedPortalHost(req.URL) {
		return fmt.Errorf("auth: refusing to send the portal bearer token to %s", req.URL.Host)
	}
	b.mu.Lock()
	tok := b.access
	b.mu.Unlock()
	if tok == "" {
		return errors.New("auth: no portal access token yet: the portal client must call Maintain before Apply")
	}
	req.Header.Set("Authorization", "Bearer "+tok.Reveal())
	return nil
}

func (b *PortalBearer) due() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.access == "" || !b.portal.now().Before(b.expires.Add(-refreshMargin))
}

// Maintain exchanges the refresh token when the access token is missing
// or expires within five minutes.
func (b *PortalBearer) Maintain(ctx context.Context) error {
	if !b.due() {
		return nil
	}
	b.upkeep.Lock()
	defer b.upkeep.Unlock()
	if !b.due() {
		return nil
	}
	return b.exchange(ctx)
}

// Refresh exchanges the refresh token now (after a 401).
func (b *PortalBearer) Refresh(ctx context.Context) error {
	b.upkeep.Lock()
	defer b.upkeep.Unlock()
	return b.exchange(ctx)
}

// Token returns a current access token, so the bearer also serves as a
// TokenSource.
func (b *PortalBearer) Token(ctx context.Context) (string, error) {
	if err := b.Maintain(ctx); err != nil {
		return "", err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.access.Reveal(), nil
}

// Secrets returns the current values for Redact.
func (b *PortalBearer) Secrets() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return []string{b.refresh.Reveal(), b.access.Reveal()}
}

type tokenResponse struct {
	AccessToken      string      `json:"access_token"`
	RefreshToken     string      `json:"refresh_token"`
	ExpiresIn        json.Number `json:"expires_in"`
	Error            string      `json:"error"`
	ErrorDescription string      `json:"error_description"`
	ErrorCodes       []int       `json:"error_codes"`
}

// parseTokenResponse decodes a token endpoint answer; it returns a
// *SignInError for Entra's error form.
func parseTokenResponse(status int, body []byte) (access, refresh string, lifetime time.Duration, err error) {
	var tr tokenResponse
	if jerr := json.Unmarshal(body, &tr); jerr != nil {
		return "", "", 0, fmt.Errorf("auth: the token endpoint answered HTTP %d with a body that is not JSON: check login_url", status)
	}
	if tr.Error != "" || status != http.StatusOK {
		se := signInErrorFromText(tr.ErrorDescription)
		if se == nil && len(tr.ErrorCodes) > 0 {
			se = &SignInError{Code: tr.ErrorCodes[0], Hint: HintFor(tr.ErrorCodes[0])}
		}
		if se == nil {
			se = &SignInError{Message: tr.Error, Hint: "the refresh token was refused (" + safeWord(tr.Error) + "); get a new one and update the refresh token file"}
		}
		return "", "", 0, se
	}
	if tr.AccessToken == "" || strings.ContainsAny(tr.AccessToken, " \r\n") {
		return "", "", 0, errors.New("auth: the token endpoint returned no usable access token: check login_url and the client id")
	}
	secs, _ := tr.ExpiresIn.Int64()
	if secs <= 0 || secs > 86400*2 {
		secs = 3600
	}
	return tr.AccessToken, tr.RefreshToken, time.Duration(secs) * time.Second, nil
}

// safeWord keeps an OAuth error code printable and short.
func safeWord(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= 40 {
			break
		}
		if r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "no error code"
	}
	return b.String()
}

func (b *PortalBearer) exchange(ctx context.Context) error {
	b.mu.Lock()
	rt := b.refresh
	b.mu.Unlock()
	form := url.Values{
		"client_id":     {b.clientID},
		"grant_type":    {"refresh_token"},
		"refresh_token": {rt.Reveal()},
		"scope":         {b.scope},
	}
	resp, body, err := b.portal.policy.Do(ctx, b.portal.client, "auth: refreshing the portal token at "+b.tokenHost, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.tokenURL, strings.NewReader(form.Encode()))
		if err != nil {
			return nil, fmt.Errorf("auth: building the token request: %w", err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		return req, nil
	})
	if err != nil {
		return &redactedError{msg: Redact(err.Error(), rt.Reveal()), err: err}
	}
	access, refresh, life, err := parseTokenResponse(resp.StatusCode, body)
	if err != nil {
		return err
	}
	now := b.portal.now()
	b.mu.Lock()
	b.access, b.expires = Secret(access), now.Add(life)
	rotated := refresh != "" && refresh != rt.Reveal()
	if refresh != "" {
		b.refresh = Secret(refresh)
	}
	b.unsaved = b.unsaved || rotated
	b.mu.Unlock()
	b.portal.log.Debug("portal bearer token refreshed", "refresh_token_rotated", rotated, "expires_in", life)
	return nil
}

// Proven writes a rotated refresh token to the cache: the portal client
// calls it after the portal served data with the bearer token.
func (b *PortalBearer) Proven() {
	b.mu.Lock()
	due := b.unsaved
	b.unsaved = false
	s := Session{RefreshToken: b.refresh, ObtainedAt: b.portal.now(), Seed: b.seed}
	b.mu.Unlock()
	if !due || b.portal.cache == nil {
		return
	}
	if err := b.portal.cache.Save(cacheKeyBearer(b.portal.tenant), s); err != nil {
		b.portal.log.Warn("could not save the rotated refresh token", "path", b.portal.cache.Path(), "err", err)
	}
}
