package mde

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/defenderharvester/defenderharvester/internal/auth"
	"golang.org/x/time/rate"
)

// LegacyScope is the token scope the original DefenderHarvester used for
// the regional service hosts.
const LegacyScope = "https://securitycenter.microsoft.com/mtp/.default"

// legacyDomain is the parent domain of every legacy service host.
const legacyDomain = ".securitycenter.windows.com"

// LegacyOptions configure the client for the original tool's road: a
// bearer token sent straight to the regional *.securitycenter.windows.com
// service hosts (closed by Microsoft in 2025; kept for tenants where it
// still answers and for the emulator).
type LegacyOptions struct {
	ClientOptions
	// Location is the region the original's -location flag named, e.g.
	// "weu", "eus3" (the old full form "wdatpprd-weu" is accepted).
	Location string
	// Tokens yields tokens for LegacyScope.
	Tokens auth.TokenSource
}

// LegacyClient implements Portal by sending each apiproxy path the
// sources use to its legacy host and path (docs/REFERENCE.md §2.2/§2.3).
type LegacyClient struct {
	loc   string
	hosts legacyHosts
	d     *doer
}

var _ Portal = (*LegacyClient)(nil)

// legacyHosts are the hosts one location maps to; empty dataExport means
// the location has no known data-export host.
type legacyHosts struct {
	wdatp, features, autoir, hunting, alerts, dataExport string
}

func (h legacyHosts) all() []string {
	out := []string{h.wdatp, h.features, h.autoir, h.hunting, h.alerts}
	if h.dataExport != "" {
		out = append(out, h.dataExport)
	}
	return out
}

// NewLegacyClient validates o and builds the client. Without a Limiter it
// keeps the portal's 5 requests/s.
func NewLegacyClient(o LegacyOptions) (*LegacyClient, error) {
	if o.Tokens == nil {
		return nil, fmt.Errorf("mde: the legacy client needs a token for %s: configure a credential or an access token", LegacyScope)
	}
	loc, err := ParseLocation(o.Location)
	if err != nil {
		return nil, err
	}
	hosts := hostsFor(loc)
	allowed := map[string]bool{}
	for _, h := range hosts.all() {
		allowed[h] = true
	}
	if o.Limiter == nil {
		o.Limiter = rate.NewLimiter(5, 10)
	}
	tokens := o.Tokens
	fam := family{label: "legacy",
		name: "legacy API",
		// Only the exact hosts this location maps to; never another
		// *.securitycenter.windows.com name a response might suggest.
		allowHost: func(u *url.URL) bool {
			if u == nil || u.Scheme != "https" || u.User != nil {
				return false
			}
			if p := u.Port(); p != "" && p != "443" {
				return false
			}
			return allowed[strings.ToLower(u.Hostname())]
		},
		authorize:    bearer(tokens),
		authFailed:   func(int) error { return nil },
		unauthorized: "the legacy host refused the token; Microsoft closed these hosts to user tokens in 2025 — use the portal proxy (portal session) instead, or check that the token is for " + LegacyScope,
		forbidden: func(string) string {
			return "the signed-in account lacks a Defender role for this data (Security Reader is the minimum), or the legacy host no longer serves it: use the portal proxy"
		},
	}
	fam.rejected = rejectHook(tokens)
	d, err := newDoer(o.ClientOptions, fam)
	if err != nil {
		return nil, err
	}
	return &LegacyClient{loc: loc, hosts: hosts, d: d}, nil
}

// ParseLocation normalises the original's -location value: lower case,
// an optional "wdatpprd-" prefix dropped, then 2–8 letters and up to two
// digits ("weu", "weu3", "eus", "cus3"). Anything else is refused so a
// host name cannot be steered elsewhere.
func ParseLocation(s string) (string, error) {
	loc := strings.ToLower(strings.TrimSpace(s))
	for _, p := range []string{"wdatpprd-", "m365d-autoir-ac-prd-", "m365d-hunting-api-prd-", "m365duseprd-"} {
		loc = strings.TrimPrefix(loc, p)
	}
	bad := func() (string, error) {
		return "", fmt.Errorf("mde: legacy location %q is not a region code like weu, weu3, eus or eus3: copy the part after \"wdatpprd-\" from a *.securitycenter.windows.com request in the browser's developer tools", s)
	}
	letters := strings.TrimRight(loc, "0123456789")
	digits := loc[len(letters):]
	if len(letters) < 2 || len(letters) > 8 || len(digits) > 2 {
		return bad()
	}
	for _, c := range letters {
		if c < 'a' || c > 'z' {
			return bad()
		}
	}
	return loc, nil
}

// hostsFor applies the original's host mapping without its bugs: the
// alert service lives on m365duseprd-<loc> for every location, and the
// advanced-features special cases are kept.
func hostsFor(loc string) legacyHosts {
	h := legacyHosts{
		wdatp:    "wdatpprd-" + loc + legacyDomain,
		features: "wdatpprd-" + loc + legacyDomain,
		autoir:   "m365d-autoir-ac-prd-" + loc + legacyDomain,
		hunting:  "m365d-hunting-api-prd-" + loc + legacyDomain,
		alerts:   "m365duseprd-" + loc + legacyDomain,
	}
	switch loc {
	case "weu":
		h.features = "wdatpprd-eu" + legacyDomain
	case "weu3":
		h.features = "wdatpprd-eu3" + legacyDomain
	case "eus":
		h.features = "wdatpprd-us" + legacyDomain
	case "eus3":
		h.features = "wdatpprd-us3" + legacyDomain
	}
	if geo := dataExportGeo(loc); geo != "" {
		h.dataExport = "api-" + geo + legacyDomain
	}
	return h
}

// dataExportGeo picks the public-API service host the original used for
// data export settings. The original knew only weu/weu3 (api-eu) and
// eus/eus3 (api-us); the rule here extends that by geography: a European
// region code (ending in "eu": weu, neu, …) → eu, a United States one
// (eus, wus, cus, scus, ncus, wcus) → us, whatever digit follows. Any
// other geography has no known legacy host, so the data set is refused
// rather than sent to a guessed one.
func dataExportGeo(loc string) string {
	letters := strings.TrimRight(loc, "0123456789")
	switch letters {
	case "eus", "wus", "cus", "scus", "ncus", "wcus", "us":
		return "us"
	}
	if strings.HasSuffix(letters, "eu") {
		return "eu"
	}
	return ""
}

// legacyRoute maps one apiproxy path (or path prefix) to a legacy host
// and path.
type legacyRoute struct {
	proxy  string // apiproxy path; a trailing "/*" matches a prefix
	host   func(legacyHosts) string
	legacy string // replacement path (or prefix)
}

var legacyRoutes = []legacyRoute{
	{"/apiproxy/mtp/actionCenter/actioncenterui/history-actions/", func(h legacyHosts) string { return h.autoir }, "/api/autoir/actioncenterui/history-actions/"},
	{"/apiproxy/mtp/actionCenter/actioncenterui/history-actions", func(h legacyHosts) string { return h.autoir }, "/api/autoir/actioncenterui/history-actions"},
	{"/apiproxy/mtp/huntingService/rules/unified", func(h legacyHosts) string { return h.hunting }, "/api/ine/huntingservice/rules"},
	{"/apiproxy/hunting/huntingService/rules/unified", func(h legacyHosts) string { return h.hunting }, "/api/ine/huntingservice/rules"},
	{"/apiproxy/mtp/huntingService/schema", func(h legacyHosts) string { return h.hunting }, "/api/ine/huntingservice/schema"},
	{"/apiproxy/hunting/huntingService/reports", func(h legacyHosts) string { return h.hunting }, "/api/ine/huntingservice/reports"},
	{"/apiproxy/mtp/huntingService/reports", func(h legacyHosts) string { return h.hunting }, "/api/ine/huntingservice/reports"},
	{"/apiproxy/mtp/settings/GetAdvancedFeaturesSetting", func(h legacyHosts) string { return h.features }, "/api/settings/GetAdvancedFeaturesSetting"},
	{"/apiproxy/mtp/suppressionRulesService/suppressionRules", func(h legacyHosts) string { return h.wdatp }, "/api/ine/suppressionrulesservice/suppressionRules"},
	{"/apiproxy/mtp/rbacManagementApi/rbac/machine_groups", func(h legacyHosts) string { return h.wdatp }, "/rbac/machine_groups"},
	{"/apiproxy/mtp/responseApiPortal/apps/all", func(h legacyHosts) string { return h.wdatp }, "/api/cloud/portal/apps/all"},
	{"/apiproxy/mtp/alertsApiService/workloads/disabled", func(h legacyHosts) string { return h.alerts }, "/api/ine/alertsapiservice/workloads/disabled"},
	{"/apiproxy/mtp/wdatpApi/dataexportsettings", func(h legacyHosts) string { return h.dataExport }, "/api/dataexportsettings"},
	// The timeline source builds its continuation links under the portal
	// route; the legacy service has the same relative links under its own
	// root, so swapping the prefix translates both first pages and Prev.
	{"/apiproxy/mtp/mdeTimelineExperience/machines/*", func(h legacyHosts) string { return h.wdatp }, "/api/detection/experience/timeline/machines/"},
}

// Route returns the legacy URL (without query) an apiproxy path maps to
// for this client's location, or an error wrapping ErrNoLegacyHost.
func (c *LegacyClient) Route(path string) (*url.URL, error) {
	if !strings.HasPrefix(path, "/apiproxy/") || strings.ContainsAny(path, "?#\\%") {
		return nil, fmt.Errorf("mde: portal path %q must start with /apiproxy/ and carry no query", path)
	}
	for _, seg := range strings.Split(path, "/") {
		if seg == "." || seg == ".." {
			return nil, fmt.Errorf("mde: portal path %q has dot segments", path)
		}
	}
	for _, r := range legacyRoutes {
		var p string
		if pre, ok := strings.CutSuffix(r.proxy, "*"); ok {
			rest, ok := strings.CutPrefix(path, pre)
			if !ok || rest == "" {
				continue
			}
			p = r.legacy + rest
		} else if path == r.proxy {
			p = r.legacy
		} else {
			continue
		}
		host := r.host(c.hosts)
		if host == "" {
			return nil, fmt.Errorf("mde: %s: %w (no legacy data-export host is known for location %q; the original knew only Europe → api-eu and the US → api-us)", path, ErrNoLegacyHost, c.loc)
		}
		return &url.URL{Scheme: "https", Host: host, Path: p}, nil
	}
	return nil, fmt.Errorf("mde: %s: %w", path, ErrNoLegacyHost)
}

// Get fetches the legacy equivalent of an apiproxy path.
func (c *LegacyClient) Get(ctx context.Context, path string, query url.Values) ([]byte, error) {
	u, err := c.Route(path)
	if err != nil {
		return nil, err
	}
	u.RawQuery = query.Encode()
	return c.d.do(ctx, http.MethodGet, u, nil)
}

// Post sends body as JSON to the legacy equivalent of an apiproxy path.
func (c *LegacyClient) Post(ctx context.Context, path string, query url.Values, body any) ([]byte, error) {
	u, err := c.Route(path)
	if err != nil {
		return nil, err
	}
	u.RawQuery = query.Encode()
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("mde: encoding request body for %s: %w", path, err)
	}
	return c.d.do(ctx, http.MethodPost, u, b)
}

// Hosts lists the legacy hosts this client may send its token to, for
// `doctor` and documentation.
func (c *LegacyClient) Hosts() []string { return c.hosts.all() }

// LegacyPublicBaseURL is the public-API service host the original tool
// used for a legacy location (machine actions, data export): api-eu for
// European regions, api-us for United States ones.
func LegacyPublicBaseURL(location string) (string, error) {
	loc, err := ParseLocation(location)
	if err != nil {
		return "", err
	}
	geo := dataExportGeo(loc)
	if geo == "" {
		return "", fmt.Errorf("mde: no legacy public-API host is known for location %q (the original knew only Europe → api-eu and the US → api-us): %w", loc, ErrNoLegacyHost)
	}
	return "https://api-" + geo + ".securitycenter.windows.com", nil
}
