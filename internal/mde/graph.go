package mde

// The Microsoft Graph client shares this package's request machinery (the
// doer: host allow-list before credentials go on a request, no redirects,
// retries with Retry-After, the Pacer, per-attempt timeouts, body limits,
// error envelopes) like the Management Activity API client does. It reads
// Graph's OData collections: a {"value":[…]} page at a time, following
// @odata.nextLink only after validating it.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/auth"
	"golang.org/x/time/rate"
)

// Microsoft Graph facts.
const (
	// GraphScope is the token scope of Microsoft Graph (audience
	// https://graph.microsoft.com).
	GraphScope = "https://graph.microsoft.com/.default"
	// GraphHost is the only host Graph credentials are sent to.
	GraphHost = "graph.microsoft.com"
	// DefaultGraphBaseURL is Graph's global service.
	DefaultGraphBaseURL = "https://" + GraphHost
	// GraphBeta and GraphV1 are the API versions a list may be read from.
	GraphBeta = "beta"
	GraphV1   = "v1.0"
	// DetectionRulesPath is the custom detection rules collection, under
	// a version (/beta/security/rules/detectionRules).
	DetectionRulesPath = "/security/rules/detectionRules"
	// DefaultGraphMaxPages stops a list that never ends.
	DefaultGraphMaxPages = 10000
)

// Errors of the Graph client; every one names keys, JSON types, hosts and
// paths, never a value or a query string.
var (
	// ErrBadGraphLink: an @odata.nextLink the client refused to follow
	// (not https, another host, another path, user info, dot segments …).
	ErrBadGraphLink = errors.New("refusing Microsoft Graph continuation link")
	// ErrGraphLinkLoop: the service handed out a continuation link it had
	// already handed out (a paging loop) or never ended the list.
	ErrGraphLinkLoop = errors.New("Microsoft Graph paging loop")
	// ErrGraphShape: a page of an unexpected shape, or a list shorter
	// than the @odata.count the service reported.
	ErrGraphShape = errors.New("unreadable Microsoft Graph answer")
)

// GraphAPI is what sources read from Microsoft Graph.
type GraphAPI interface {
	// DetectionRules lists every custom detection rule of the tenant
	// (GET /{version}/security/rules/detectionRules), following
	// @odata.nextLink to the end, and returns each rule object as the
	// service sent it. An incomplete list is an error, never a shorter
	// result.
	DetectionRules(ctx context.Context, o GraphListOptions) ([]json.RawMessage, error)
}

// GraphListOptions shape one list read.
type GraphListOptions struct {
	// Version is GraphBeta (default) or GraphV1.
	Version string
	// Top is the page size asked with $top (0: not sent; the service
	// picks). The service may serve fewer: the list is read to its end
	// through @odata.nextLink whatever the page size.
	Top int
	// Count asks $count=true; the @odata.count the service then reports
	// is checked against the items read over all pages.
	Count bool
}

// GraphOptions configure the Microsoft Graph client.
type GraphOptions struct {
	ClientOptions
	// Tokens must yield tokens for GraphScope.
	Tokens auth.TokenSource
	// BaseURL overrides DefaultGraphBaseURL (tests); it must still be
	// https://graph.microsoft.com.
	BaseURL string
	// MaxPages bounds one list (default DefaultGraphMaxPages).
	MaxPages int
}

// GraphClient reads Microsoft Graph. It implements GraphAPI.
type GraphClient struct {
	base     *url.URL
	d        *doer
	maxPages int
}

var _ GraphAPI = (*GraphClient)(nil)

// NewGraphClient validates o and builds the client. Without a Limiter it
// keeps to 100 requests a minute (bursts of 10): a snapshot of the rules
// is a handful of pages.
func NewGraphClient(o GraphOptions) (*GraphClient, error) {
	if o.Tokens == nil {
		return nil, errors.New("mde: the Microsoft Graph client needs credentials: the public_api app registration, granted the Microsoft Graph application permission CustomDetection.Read.All")
	}
	if o.BaseURL == "" {
		o.BaseURL = DefaultGraphBaseURL
	}
	base, err := url.Parse(strings.TrimRight(o.BaseURL, "/"))
	if err != nil || !graphHost(base) || (base.Path != "" && base.Path != "/") || base.RawQuery != "" || base.Fragment != "" {
		return nil, fmt.Errorf("mde: Microsoft Graph base URL %q must be %s", o.BaseURL, DefaultGraphBaseURL)
	}
	base = &url.URL{Scheme: "https", Host: GraphHost}
	if o.Limiter == nil {
		o.Limiter = rate.NewLimiter(rate.Every(time.Minute/100), 10)
	}
	if o.MaxPages <= 0 {
		o.MaxPages = DefaultGraphMaxPages
	}
	tokens := o.Tokens
	fam := family{label: "graph", name: "Microsoft Graph",
		allowHost:    graphHost,
		authorize:    bearer(tokens),
		authFailed:   func(int) error { return nil },
		unauthorized: "the access token was rejected: it must be issued by the configured tenant for Microsoft Graph (scope " + GraphScope + ", audience https://graph.microsoft.com); a fixed token (public_api.auth.method token) is meant for the Defender API and cannot serve Graph",
		forbidden: func(path string) string {
			if strings.Contains(strings.ToLower(path), strings.ToLower(DetectionRulesPath)) {
				return "grant the app registration the Microsoft Graph application permission CustomDetection.Read.All (API permissions → Add a permission → Microsoft Graph → Application permissions) with admin consent; a token issued before the grant lacks it (wait up to an hour, or delete the token cache)"
			}
			return "the app lacks the Microsoft Graph permission for this data, or admin consent for it"
		},
		explain: explainGraph,
	}
	fam.rejected = rejectHook(tokens)
	d, err := newDoer(o.ClientOptions, fam)
	if err != nil {
		return nil, err
	}
	return &GraphClient{base: base, d: d, maxPages: o.MaxPages}, nil
}

// explainGraph refines hints by Graph's error codes.
func explainGraph(e *APIError) {
	msg := strings.ToLower(e.Message)
	switch {
	case e.Status == http.StatusBadRequest && (strings.Contains(msg, "segment") || strings.Contains(msg, "version")):
		e.Hint = "Microsoft Graph does not serve this path in this API version: check the source's api_version (beta or v1.0)"
	case e.Status == http.StatusBadRequest:
		e.Hint = "Microsoft Graph refused the request's query options: check the source's page_size, or turn count off"
	case e.Status == http.StatusUnauthorized && strings.Contains(msg, "audience"):
		e.Hint = "the access token's audience is not Microsoft Graph: the token must be asked for " + GraphScope
	}
}

// Pacer is the client's concurrency pacer (metrics).
func (c *GraphClient) Pacer() *Pacer { return c.d.pace }

// graphHost allows https://graph.microsoft.com on the default port.
func graphHost(u *url.URL) bool {
	if u == nil || u.Scheme != "https" || u.User != nil {
		return false
	}
	if p := u.Port(); p != "" && p != "443" {
		return false
	}
	return strings.EqualFold(u.Hostname(), GraphHost)
}

// DetectionRules lists every custom detection rule.
func (c *GraphClient) DetectionRules(ctx context.Context, o GraphListOptions) ([]json.RawMessage, error) {
	q := url.Values{}
	if o.Top < 0 {
		return nil, fmt.Errorf("Microsoft Graph: page size %d must not be negative", o.Top)
	}
	if o.Top > 0 {
		q.Set("$top", strconv.Itoa(o.Top))
	}
	if o.Count {
		q.Set("$count", "true")
	}
	return c.List(ctx, o.Version, DetectionRulesPath, q)
}

// List reads the collection at /{version}{path} with the OData query
// options q, following validated @odata.nextLinks to the end. A repeated
// link, a list that does not end within MaxPages, a page of another shape
// or fewer items than a reported @odata.count are errors.
func (c *GraphClient) List(ctx context.Context, version, path string, q url.Values) ([]json.RawMessage, error) {
	if version == "" {
		version = GraphBeta
	}
	if version != GraphBeta && version != GraphV1 {
		return nil, fmt.Errorf("Microsoft Graph: API version %q must be %s or %s", version, GraphBeta, GraphV1)
	}
	if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, "?#\\%") || hasDotSegment(path) {
		return nil, fmt.Errorf("Microsoft Graph: path %q must start with / and carry no query, escapes or dot segments", path)
	}
	u := *c.base
	u.Path = "/" + version + path
	u.RawQuery = odataEncode(q)
	listPath := u.Path
	seen := map[string]bool{u.String(): true}
	var out []json.RawMessage
	count := int64(-1)
	for page := 1; ; page++ {
		body, err := c.d.do(ctx, http.MethodGet, &u, nil)
		if err != nil {
			if page > 1 {
				err = fmt.Errorf("page %d: %w", page, err)
			}
			return nil, err
		}
		p, err := DecodeGraphPage(body)
		if err != nil {
			return nil, fmt.Errorf("Microsoft Graph %s page %d: %w", listPath, page, err)
		}
		out = append(out, p.Items...)
		if p.Count >= 0 {
			count = p.Count
		}
		if p.NextLink == "" {
			break
		}
		next, err := c.ValidateLink(p.NextLink, listPath)
		if err != nil {
			return nil, fmt.Errorf("Microsoft Graph %s page %d: @odata.nextLink: %w", listPath, page, err)
		}
		key := next.String()
		if seen[key] {
			return nil, fmt.Errorf("Microsoft Graph %s page %d: %w: the service returned a continuation link it had already returned", listPath, page, ErrGraphLinkLoop)
		}
		seen[key] = true
		if page >= c.maxPages {
			return nil, fmt.Errorf("Microsoft Graph %s: %w: more than %d pages; the list does not seem to end", listPath, ErrGraphLinkLoop, c.maxPages)
		}
		u = *next
	}
	if count >= 0 && int64(len(out)) < count {
		return nil, fmt.Errorf("Microsoft Graph %s: %w: the service reported %d items (@odata.count), returned %d: the list is incomplete, so it was not accepted", listPath, ErrGraphShape, count, len(out))
	}
	return out, nil
}

// odataEncode encodes q with the keys' "$" kept literal ($top=3, as Graph
// writes them), keys sorted.
func odataEncode(q url.Values) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		ek := url.QueryEscape(strings.TrimPrefix(k, "$"))
		if strings.HasPrefix(k, "$") {
			ek = "$" + ek
		}
		for _, v := range q[k] {
			parts = append(parts, ek+"="+url.QueryEscape(v))
		}
	}
	return strings.Join(parts, "&")
}

// serviceLink runs the checks every link a service hands out gets before
// its path is compared: not empty, at most 8 KiB, no backslash, space or
// control character, an absolute hierarchical https URL without user info
// or fragment, port 443 at most, the host host (hostName describes it in
// the problem), no encoded slash, dot or backslash and no dot segment in
// the path. It returns the parsed URL, or the problem, which names host
// and path but never the query (it may carry a token).
func serviceLink(link, host, hostName string) (*url.URL, string) {
	bad := func(format string, a ...any) (*url.URL, string) { return nil, fmt.Sprintf(format, a...) }
	if link == "" {
		return bad("it is empty")
	}
	if len(link) > 8192 {
		return bad("it is longer than 8 KiB")
	}
	if strings.ContainsAny(link, "\\\r\n\t\x00 ") {
		return bad("it contains a backslash, space or control character")
	}
	u, err := url.Parse(link)
	if err != nil {
		return bad("it does not parse as a URL")
	}
	switch {
	case u.Scheme != "https":
		return bad("it is not an absolute https URL (scheme %q)", clean(u.Scheme, 20))
	case u.User != nil:
		return bad("it carries user info")
	case u.Opaque != "":
		return bad("it is not a hierarchical URL")
	case u.Fragment != "" || strings.Contains(link, "#"):
		return bad("it has a fragment")
	}
	if p := u.Port(); p != "" && p != "443" {
		return bad("host %q uses a port other than 443", clean(u.Host, 100))
	}
	if !strings.EqualFold(u.Hostname(), host) {
		return bad("host %q is not %s", clean(u.Hostname(), 100), hostName)
	}
	if lower := strings.ToLower(u.RawPath); strings.Contains(lower, "%2f") || strings.Contains(lower, "%2e") || strings.Contains(lower, "%5c") {
		return bad("its path has encoded slashes or dots")
	}
	if hasDotSegment(u.Path) {
		return bad("its path %q has dot segments", clean(u.Path, 200))
	}
	return u, ""
}

// hasDotSegment reports a "." or ".." path segment.
func hasDotSegment(p string) bool {
	for _, s := range strings.Split(p, "/") {
		if s == "." || s == ".." {
			return true
		}
	}
	return false
}

// ValidateLink checks an @odata.nextLink before it is followed: an
// absolute https URL on graph.microsoft.com (default port, no user info,
// no fragment), whose path is wantPath (the list's own path, compared
// case-insensitively) without dot segments or encoded slashes and dots,
// and whose query parses. The error wraps ErrBadGraphLink and names the
// host and path, never the query (it may carry a skip token).
func (c *GraphClient) ValidateLink(link, wantPath string) (*url.URL, error) {
	bad := func(format string, a ...any) (*url.URL, error) {
		return nil, fmt.Errorf("%w: %s", ErrBadGraphLink, fmt.Sprintf(format, a...))
	}
	u, problem := serviceLink(link, c.base.Hostname(), c.base.Hostname())
	if problem != "" {
		return bad("%s", problem)
	}
	if !strings.EqualFold(u.Path, wantPath) {
		return bad("its path %q is not the list's path %q", clean(u.Path, 200), wantPath)
	}
	if _, err := url.ParseQuery(u.RawQuery); err != nil {
		return bad("its query string is malformed")
	}
	return u, nil
}

// GraphPage is one decoded page of a Graph collection.
type GraphPage struct {
	// Items are the objects under "value", each as the service sent it.
	Items []json.RawMessage
	// NextLink is @odata.nextLink ("" on the last page), not validated.
	NextLink string
	// Count is @odata.count, -1 when the page reported none.
	Count int64
}

// DecodeGraphPage reads a Graph collection page tolerantly: a JSON object
// with the items under "value" (every item an object) and any other
// members (@odata.context …) ignored; @odata.nextLink a string, null or
// absent; @odata.count a non-negative integer, null or absent. Errors
// wrap ErrGraphShape and name keys and JSON types, never values.
func DecodeGraphPage(body []byte) (GraphPage, error) {
	b := bytes.TrimSpace(body)
	shape := func(format string, a ...any) (GraphPage, error) {
		return GraphPage{}, fmt.Errorf("%w: %s", ErrGraphShape, fmt.Sprintf(format, a...))
	}
	var obj map[string]json.RawMessage
	if len(b) == 0 || b[0] != '{' || json.Unmarshal(b, &obj) != nil || obj == nil {
		return shape("expected a JSON object with the items under value, got %s", jsonKind(b))
	}
	v, ok := obj["value"]
	if !ok {
		return shape("expected the items under value, got a JSON object with %s", membersOf(obj))
	}
	var arr []json.RawMessage
	if jsonKind(v) != "a JSON array" || json.Unmarshal(v, &arr) != nil {
		return shape("field value is %s, not an array", jsonKind(v))
	}
	for i, it := range arr {
		if t := bytes.TrimSpace(it); len(t) == 0 || t[0] != '{' {
			return shape("value entry %d is %s, not an object", i, jsonKind(it))
		}
	}
	p := GraphPage{Items: arr, Count: -1}
	if nl, ok := obj["@odata.nextLink"]; ok && jsonKind(nl) != "JSON null" {
		if err := json.Unmarshal(nl, &p.NextLink); err != nil {
			return shape("field @odata.nextLink is %s, not a string", jsonKind(nl))
		}
		if p.NextLink == "" {
			return shape("field @odata.nextLink is an empty string")
		}
	}
	if cv, ok := obj["@odata.count"]; ok && jsonKind(cv) != "JSON null" {
		var n json.Number
		if err := json.Unmarshal(cv, &n); err != nil {
			return shape("field @odata.count is %s, not a number", jsonKind(cv))
		}
		c, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil || c < 0 {
			return shape("field @odata.count is not a non-negative integer")
		}
		p.Count = c
	}
	return p, nil
}

// membersOf lists an object's keys with their JSON types (at most 10,
// cleaned), e.g. "keys [error (object), items (array)]".
func membersOf(obj map[string]json.RawMessage) string {
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	more := len(keys) > 10
	if more {
		keys = keys[:10]
	}
	parts := make([]string, 0, len(keys)+1)
	for _, k := range keys {
		parts = append(parts, clean(k, 40)+" ("+strings.TrimPrefix(strings.TrimPrefix(jsonKind(obj[k]), "a JSON "), "JSON ")+")")
	}
	if more {
		parts = append(parts, "…")
	}
	if len(parts) == 0 {
		return "no keys"
	}
	return "keys [" + strings.Join(parts, ", ") + "]"
}
