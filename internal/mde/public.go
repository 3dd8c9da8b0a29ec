package mde

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/auth"
	"golang.org/x/time/rate"
)

// DefaultPublicBaseURL is the public Defender API host.
const DefaultPublicBaseURL = "https://api.security.microsoft.com"

// PublicOptions configure the public Defender API client.
type PublicOptions struct {
	ClientOptions
	// BaseURL defaults to https://api.security.microsoft.com; regional
	// hosts (eu.api.security.microsoft.com …) and
	// api.securitycenter.microsoft.com are allowed.
	BaseURL string
	Tokens  auth.TokenSource
}

// PublicAPIClient talks to the public Defender API. It implements
// PublicAPI.
type PublicAPIClient struct {
	base *url.URL
	d    *doer
}

var _ PublicAPI = (*PublicAPIClient)(nil)

// NewPublicAPIClient validates o and builds the client. Without a
// Limiter it enforces the documented 100 calls/minute and 1,500/hour.
func NewPublicAPIClient(o PublicOptions) (*PublicAPIClient, error) {
	if o.Tokens == nil {
		return nil, errors.New("mde: the public API client needs credentials: configure an app registration (tenant, client id, secret) or a token")
	}
	if o.BaseURL == "" {
		o.BaseURL = DefaultPublicBaseURL
	}
	base, err := url.Parse(strings.TrimRight(o.BaseURL, "/"))
	if err != nil || !publicHost(base) || (base.Path != "" && base.Path != "/") || base.RawQuery != "" {
		return nil, fmt.Errorf("mde: public API base URL %q must be https://api.security.microsoft.com, a regional <geo>.api.security.microsoft.com, https://api.securitycenter.microsoft.com or the legacy https://api-eu|api-us.securitycenter.windows.com", o.BaseURL)
	}
	base.Path = ""
	if o.Limiter == nil {
		o.Limiter = Limiters{
			rate.NewLimiter(rate.Every(time.Minute/100), 100),
			rate.NewLimiter(rate.Every(time.Hour/1500), 1500),
		}
	}
	tokens := o.Tokens
	fam := family{label: "public",
		name:         "public API",
		allowHost:    publicHost,
		authorize:    bearer(tokens),
		authFailed:   func(int) error { return nil },
		unauthorized: "the access token was rejected: check tenant id, client id and secret, and that the token's audience is the Defender API",
		forbidden: func(path string) string {
			switch {
			case strings.HasPrefix(path, "/api/libraryfiles"):
				return "the app lacks the Library.Manage permission (or admin consent for it)"
			case strings.HasPrefix(path, "/api/machineactions"):
				return "the app lacks Machine.Read.All (or Machine.ReadWrite.All), or admin consent for it"
			}
			return "the app lacks the Defender API permission for this data, or admin consent for it"
		},
	}
	fam.rejected = rejectHook(tokens)
	d, err := newDoer(o.ClientOptions, fam)
	if err != nil {
		return nil, err
	}
	return &PublicAPIClient{base: base, d: d}, nil
}

// rejectHook tells tokens about a token answered with 401 when it can
// drop it (also from the cache file): the request is then sent once more
// with a new one. nil for tokens that cannot be renewed.
func rejectHook(tokens auth.TokenSource) func(*http.Request) {
	inv, ok := tokens.(auth.Invalidator)
	if !ok {
		return nil
	}
	return func(r *http.Request) {
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			inv.Invalidate(tok)
		}
	}
}

// publicHost allows the public API hosts on the default https port.
func publicHost(u *url.URL) bool {
	if u == nil || u.Scheme != "https" || u.User != nil {
		return false
	}
	if p := u.Port(); p != "" && p != "443" {
		return false
	}
	h := strings.ToLower(u.Hostname())
	switch h {
	case "api.security.microsoft.com", "api.securitycenter.microsoft.com",
		// The original tool's regional hosts of the same service.
		"api-eu.securitycenter.windows.com", "api-us.securitycenter.windows.com":
		return true
	}
	geo, ok := strings.CutSuffix(h, ".api.security.microsoft.com")
	if !ok || geo == "" || len(geo) > 10 {
		return false
	}
	for _, c := range geo {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// Get fetches an /api/ path.
func (c *PublicAPIClient) Get(ctx context.Context, path string, query url.Values) ([]byte, error) {
	if !strings.HasPrefix(path, "/api/") || strings.ContainsAny(path, "?#\\") || strings.Contains(path, "/..") || strings.Contains(path, "/./") {
		return nil, fmt.Errorf("mde: public API path %q must start with /api/ and carry no query", path)
	}
	u := *c.base
	u.Path = path
	u.RawQuery = query.Encode()
	return c.d.do(ctx, http.MethodGet, &u, nil)
}

// GetLink follows an @odata.nextLink after validating it.
func (c *PublicAPIClient) GetLink(ctx context.Context, link string) ([]byte, error) {
	u, err := validateNextLink(link, c.base)
	if err != nil {
		return nil, fmt.Errorf("mde: %w", err)
	}
	return c.d.do(ctx, http.MethodGet, u, nil)
}

// bearer authorizes a request with a token of tokens (the public API, the
// legacy hosts and the Management Activity API share it); a token that
// could not travel in a header is refused rather than sent.
func bearer(tokens auth.TokenSource) func(*http.Request) error {
	return func(r *http.Request) error {
		tok, err := tokens.Token(r.Context())
		if err != nil {
			return err
		}
		if !safeHeaderValue(tok) {
			return errors.New("the access token contains characters not allowed in a header")
		}
		r.Header.Set("Authorization", "Bearer "+tok)
		return nil
	}
}
