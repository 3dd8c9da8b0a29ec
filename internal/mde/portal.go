package mde

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/defenderharvester/defenderharvester/internal/auth"
	"golang.org/x/time/rate"
)

// DefaultPortalBaseURL is the portal host every apiproxy call goes to.
const DefaultPortalBaseURL = "https://security.microsoft.com"

// PortalOptions configure the portal service API client.
type PortalOptions struct {
	ClientOptions
	// BaseURL is https://security.microsoft.com (default) or
	// https://mto.security.microsoft.com.
	BaseURL string
	// Session authenticates every request.
	Session auth.PortalSession
	// TenantID, when set, is sent as x-tid and tenant-id to select the
	// tenant.
	TenantID string
	// RequestsPerSecond and Burst set the default client-side limiter
	// (default 5/s, burst 10) when ClientOptions.Limiter is nil.
	RequestsPerSecond float64
	Burst             int
}

// PortalClient talks to security.microsoft.com/apiproxy with a portal
// session. It implements Portal.
type PortalClient struct {
	base   *url.URL
	tenant string // configured tenant ("" = whatever the session has)
	d      *doer
	// wrongTenant is set once TenantContext found the session in another
	// tenant than the configured one; the session is then never cached.
	wrongTenant atomic.Bool
}

var _ Portal = (*PortalClient)(nil)

// NewPortalClient validates o and builds the client.
func NewPortalClient(o PortalOptions) (*PortalClient, error) {
	if o.Session == nil {
		return nil, errors.New("mde: the portal client needs a session: configure the portal cookies (sccauth and XSRF-TOKEN)")
	}
	if o.BaseURL == "" {
		o.BaseURL = DefaultPortalBaseURL
	}
	base, err := url.Parse(strings.TrimRight(o.BaseURL, "/"))
	if err != nil || !portalHost(base) || (base.Path != "" && base.Path != "/") || base.RawQuery != "" {
		return nil, fmt.Errorf("mde: portal base URL %q must be https://security.microsoft.com or https://mto.security.microsoft.com (to reach the emulator, set the emulator address instead)", o.BaseURL)
	}
	base.Path = ""
	if o.TenantID != "" && !safeHeaderValue(o.TenantID) {
		return nil, errors.New("mde: tenant id contains characters not allowed in a header: use the tenant GUID")
	}
	if o.Limiter == nil {
		rps, burst := o.RequestsPerSecond, o.Burst
		if rps <= 0 {
			rps = 5
		}
		if burst <= 0 {
			burst = 10
		}
		o.Limiter = rate.NewLimiter(rate.Limit(rps), burst)
	}
	tenant := o.TenantID
	c := &PortalClient{base: base, tenant: tenant}
	fam := family{label: "portal",
		name:       "portal",
		allowHost:  portalHost,
		authorize:  o.Session.Apply,
		htmlIsAuth: true,
		authFailed: func(int) error { return ErrSessionExpired },
		forbidden:  portalRoleHint,
		headers: func(h http.Header) {
			h.Set("Origin", DefaultPortalBaseURL)
			if tenant != "" {
				h.Set("x-tid", tenant)
				h.Set("tenant-id", tenant)
			}
		},
	}
	// Sessions that can keep themselves fresh (ESTS bootstrap, cookies
	// with an XSRF that ages) are asked to before each request and to
	// renew once when the portal refuses them.
	if m, ok := o.Session.(auth.Maintainer); ok {
		fam.maintain = m.Maintain
	}
	if r, ok := o.Session.(auth.Refresher); ok {
		fam.refresh = r.Refresh
	}
	// A session is cached only once the portal served data with it, and
	// never one that belongs to another tenant than the configured one.
	if p, ok := o.Session.(auth.Prover); ok {
		fam.proven = func() {
			if !c.wrongTenant.Load() {
				p.Proven()
			}
		}
	}
	d, err := newDoer(o.ClientOptions, fam)
	if err != nil {
		return nil, err
	}
	c.d = d
	return c, nil
}

// portalHost allows exactly the portal hosts on the default https port.
func portalHost(u *url.URL) bool {
	if u == nil || u.Scheme != "https" || u.User != nil {
		return false
	}
	if p := u.Port(); p != "" && p != "443" {
		return false
	}
	h := strings.ToLower(u.Hostname())
	return h == "security.microsoft.com" || h == "mto.security.microsoft.com"
}

func portalRoleHint(path string) string {
	const base = "the signed-in account lacks a Defender role for this data"
	switch {
	case strings.Contains(path, "/mdeTimelineExperience/"):
		return base + " or is not scoped to this device's device group (\"User is not exposed to machine\" can also be throttling; try again later)"
	case strings.Contains(path, "/actionCenter/"), strings.Contains(path, "/liveResponseApi/"):
		return base + ": Action Center and Live Response data need Security Reader or higher and device-group scope"
	case strings.Contains(path, "/settings/"), strings.Contains(path, "/rbacManagementApi/"),
		strings.Contains(path, "/wdatpApi/"), strings.Contains(path, "/alertsApiService/"):
		return base + ": settings pages need Security Administrator (or \"Manage security settings\") or Security Reader to view"
	}
	return base + " (Security Reader is the minimum for read-only harvesting)"
}

func safeHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func (c *PortalClient) url(path string, query url.Values) (*url.URL, error) {
	if !strings.HasPrefix(path, "/apiproxy/") || strings.ContainsAny(path, "?#\\") {
		return nil, fmt.Errorf("mde: portal path %q must start with /apiproxy/ and carry no query", path)
	}
	for _, seg := range strings.Split(path, "/") {
		if seg == "." || seg == ".." {
			return nil, fmt.Errorf("mde: portal path %q has dot segments", path)
		}
	}
	u := *c.base
	u.Path = path
	u.RawQuery = query.Encode()
	return &u, nil
}

// Get fetches a portal path and returns its JSON body.
func (c *PortalClient) Get(ctx context.Context, path string, query url.Values) ([]byte, error) {
	u, err := c.url(path, query)
	if err != nil {
		return nil, err
	}
	return c.d.do(ctx, http.MethodGet, u, nil)
}

// Post sends body as JSON and returns the JSON answer.
func (c *PortalClient) Post(ctx context.Context, path string, query url.Values, body any) ([]byte, error) {
	u, err := c.url(path, query)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("mde: encoding request body for %s: %w", path, err)
	}
	return c.d.do(ctx, http.MethodPost, u, b)
}

// TenantContext is the part of the portal's tenant context the harvester
// uses.
type TenantContext struct {
	TenantID        string
	EnvironmentName string
	GeoRegion       string
	DataCenter      string
	IsMdatpActive   bool
}

// TenantContext reads the tenant the portal session belongs to; it
// doubles as a session probe (one request, retried like any data call).
// When the client was built with a TenantID and the portal names another
// tenant, it returns the context it read and an error wrapping
// ErrWrongTenant, and from then on this client never lets the session
// be cached: records must not be labelled with the wrong tenant.
func (c *PortalClient) TenantContext(ctx context.Context) (TenantContext, error) {
	u, err := c.url(tenantContextPath, url.Values{"realTime": {"true"}})
	if err != nil {
		return TenantContext{}, err
	}
	body, err := c.d.send(ctx, http.MethodGet, u, nil, nil)
	if err != nil {
		return TenantContext{}, err
	}
	tc, err := parseTenantContext(body)
	if err != nil {
		return TenantContext{}, err
	}
	if c.tenant != "" && !strings.EqualFold(strings.TrimSpace(c.tenant), strings.TrimSpace(tc.TenantID)) {
		c.wrongTenant.Store(true)
		return tc, fmt.Errorf("%w: the portal session belongs to tenant %s but tenant_id is %s: sign in with an account of tenant %s (for a guest account, to that tenant), or correct tenant_id", ErrWrongTenant, tc.TenantID, c.tenant, c.tenant)
	}
	if c.d.fam.proven != nil {
		c.d.fam.proven()
	}
	return tc, nil
}

const tenantContextPath = "/apiproxy/mtp/sccManagement/mgmt/TenantContext"

func parseTenantContext(body []byte) (TenantContext, error) {
	var raw struct {
		AuthInfo *struct {
			TenantID string `json:"TenantId"`
		} `json:"AuthInfo"`
		EnvironmentName string `json:"EnvironmentName"`
		GeoRegion       string `json:"GeoRegion"`
		DataCenter      string `json:"DataCenter"`
		IsMdatpActive   bool   `json:"IsMdatpActive"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return TenantContext{}, fmt.Errorf("mde: tenant context is not the expected object: %w", err)
	}
	if raw.AuthInfo == nil || strings.TrimSpace(raw.AuthInfo.TenantID) == "" {
		return TenantContext{}, errors.New("mde: tenant context has no AuthInfo.TenantId: set tenant_id in the config")
	}
	return TenantContext{
		TenantID: raw.AuthInfo.TenantID, EnvironmentName: raw.EnvironmentName,
		GeoRegion: raw.GeoRegion, DataCenter: raw.DataCenter, IsMdatpActive: raw.IsMdatpActive,
	}, nil
}
