package mde

// The Office 365 Management Activity API client lives in this package,
// not in a package of its own, because everything that makes a client
// safe is here and unexported: the doer (retries with full-jitter backoff
// and Retry-After, the shared Pacer that slows the whole client when it
// is throttled, per-attempt timeouts, body size limits, no redirects for
// authenticated requests, host allow-listing before credentials are put
// on a request) and the error envelope reader. A separate package would
// have had to copy all of it, or export it.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/auth"
	"golang.org/x/time/rate"
)

// ManageScope is the token scope of the Management Activity API (audience
// https://manage.office.com, in every cloud).
const ManageScope = "https://manage.office.com/.default"

// Content types of the Management Activity API.
const (
	ContentAzureAD    = "Audit.AzureActiveDirectory"
	ContentExchange   = "Audit.Exchange"
	ContentSharePoint = "Audit.SharePoint"
	ContentGeneral    = "Audit.General"
	ContentDLP        = "DLP.All"
)

// ContentTypes are every content type, in the documented order.
var ContentTypes = []string{ContentAzureAD, ContentExchange, ContentSharePoint, ContentGeneral, ContentDLP}

// Clouds maps the cloud names of the config to the Management Activity
// API host of each.
var Clouds = map[string]string{
	"commercial": "manage.office.com",
	"gcc":        "manage-gcc.office.com",
	"gcchigh":    "manage.office365.us",
	"dod":        "manage.protection.apps.mil",
}

// AF error codes callers branch on.
const (
	AFMissingPermission   = "AF10001" // the token lacks ActivityFeed.Read
	AFTenantMismatch      = "AF20010" // the token's tenant is not the URL's
	AFInvalidContentType  = "AF20020"
	AFWebhookValidation   = "AF20021" // the webhook did not answer the validation with 200 (or is not https)
	AFNoSubscription      = "AF20022"
	AFSubscriptionOff     = "AF20023" // disabled by an admin
	AFAlreadyEnabled      = "AF20024" // start on an enabled subscription: success
	AFBadWindow           = "AF20030"
	AFBadNextPage         = "AF20031"
	AFContentNotFound     = "AF20050"
	AFContentExpired      = "AF20051"
	AFBadWindowStartAge   = "AF20055"
	AFThrottled           = "AF429"
	AFInternal            = "AF50000"
	StartThrottleInterval = 15 * time.Minute // the documented wait between subscription starts
)

// FeedCode is the AF error code of err ("" when err is not an answer of
// the Management Activity API with an error envelope).
func FeedCode(err error) string {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}

// ErrBadFeedLink: a NextPageUri or contentUri the client refused to follow
// (another host, another tenant, another path, not https …).
var ErrBadFeedLink = errors.New("refusing Management Activity API link")

// ActivityFeed is the Office 365 Management Activity API of one tenant.
// Every call carries PublisherIdentifier; links from the service
// (NextPageUri, contentUri) are followed only on the cloud's management
// host under /api/v1.0/{tenant}/activity/feed/ (or /api/v1/…) of the
// client's own tenant.
type ActivityFeed interface {
	// TenantID is the tenant the client reads.
	TenantID() string
	// Subscriptions lists the tenant's subscriptions.
	Subscriptions(ctx context.Context) ([]Subscription, error)
	// StartSubscription starts (enables) contentType; an already enabled
	// subscription with no property change (AF20024) is success. With
	// hook nil the request has no body (a start never asks for a
	// webhook); with hook set it carries {"webhook":{address, authId,
	// expiration}}, which the service validates by POSTing to the address
	// before it answers (AF20021 when the listener does not answer 200).
	// It does not enforce the 15-minute throttle on starts: callers do
	// (StartThrottleInterval). The AuthID never appears in its errors.
	StartSubscription(ctx context.Context, contentType string, hook *WebhookSpec) error
	// ListContent reads one page of the blobs of contentType whose
	// contentCreated lies in [start, end) (≤ 24 h, start ≤ 7 days back).
	// With next set (a NextPageUri of the previous page) it follows that
	// instead. The page's NextPageUri (or NextPageUrl) comes back in
	// ContentPage.Next, already validated.
	ListContent(ctx context.Context, contentType string, start, end time.Time, next string) (ContentPage, error)
	// FetchContent GETs a blob (a contentUri, validated first) and
	// returns its body: a JSON array of audit records.
	FetchContent(ctx context.Context, contentURI string) ([]byte, error)
}

// WebhookSpec is the webhook a subscription start asks for.
type WebhookSpec struct {
	// Address is the public https URL the service POSTs notifications to.
	Address string
	// AuthID is sent back by the service in the Webhook-AuthID header of
	// every POST. A secret: never logged nor put in errors.
	AuthID string
	// Expiration is when the webhook stops (ISO 8601), "" for never.
	Expiration string
}

// String describes w without its AuthID (so %v and %+v never print it).
func (w WebhookSpec) String() string {
	return fmt.Sprintf("{Address:%s AuthID:[%d characters] Expiration:%s}", w.Address, len(w.AuthID), w.Expiration)
}

// LogValue keeps the AuthID out of logs (slog.LogValuer).
func (w WebhookSpec) LogValue() slog.Value {
	return slog.GroupValue(slog.String("address", w.Address), slog.String("expiration", w.Expiration))
}

// Subscription is one entry of subscriptions/list.
type Subscription struct {
	ContentType string `json:"contentType"`
	Status      string `json:"status"`
	// Webhook is the subscription's webhook, nil when it has none (the
	// key absent or null).
	Webhook *SubscriptionWebhook `json:"webhook"`
}

// SubscriptionWebhook is a listed subscription's webhook. Fields the
// listing leaves out (or sets to null) are empty; the service may hide
// AuthID.
type SubscriptionWebhook struct {
	Status     string `json:"status"` // "enabled", or "disabled" after repeated failed notifications
	Address    string `json:"address"`
	AuthID     string `json:"-"` // a secret: never logged nor encoded
	Expiration string `json:"expiration"`
}

// String describes w without its AuthID (so %v and %+v never print it).
func (w SubscriptionWebhook) String() string {
	return fmt.Sprintf("{Status:%s Address:%s AuthID:[%d characters] Expiration:%s}", w.Status, w.Address, len(w.AuthID), w.Expiration)
}

// LogValue keeps the AuthID out of logs (slog.LogValuer).
func (w SubscriptionWebhook) LogValue() slog.Value {
	return slog.GroupValue(slog.String("status", w.Status), slog.String("address", w.Address), slog.String("expiration", w.Expiration))
}

// Enabled reports whether the subscription is on.
func (s Subscription) Enabled() bool { return strings.EqualFold(s.Status, "enabled") }

// Content is one available blob.
type Content struct {
	ContentType       string
	ContentID         string
	ContentURI        string
	ContentCreated    time.Time
	ContentExpiration time.Time // zero when absent
}

// ContentPage is one page of a content listing.
type ContentPage struct {
	Body []byte // the raw JSON array (see DecodeContentList)
	Next string // the validated NextPageUri, "" on the last page
}

// ActivityFeedOptions configure the client.
type ActivityFeedOptions struct {
	ClientOptions
	// TenantID is the tenant read (a GUID); links naming another tenant
	// are refused.
	TenantID string
	// Cloud is commercial (default), gcc, gcchigh or dod.
	Cloud string
	// PublisherIdentifier is sent on every call (default TenantID).
	PublisherIdentifier string
	// Tokens must yield tokens for ManageScope.
	Tokens auth.TokenSource
	// BaseURL overrides the cloud's host (tests); it must still be one of
	// the Clouds hosts.
	BaseURL string
}

// ActivityFeedClient implements ActivityFeed.
type ActivityFeedClient struct {
	base      *url.URL
	tenant    string
	publisher string
	d         *doer
}

var _ ActivityFeed = (*ActivityFeedClient)(nil)

// NewActivityFeedClient validates o and builds the client. Without a
// Limiter it keeps to 2,000 requests a minute, the documented per-tenant
// baseline (the quota with PublisherIdentifier is higher).
func NewActivityFeedClient(o ActivityFeedOptions) (*ActivityFeedClient, error) {
	if o.Tokens == nil {
		return nil, errors.New("mde: the Management Activity API client needs credentials: the public_api app registration, granted ActivityFeed.Read on the Office 365 Management APIs")
	}
	tenant := strings.ToLower(strings.TrimSpace(o.TenantID))
	if !IsGUID(tenant) {
		return nil, fmt.Errorf("mde: the Management Activity API needs the tenant id as a GUID (tenant_id), got %d characters", len(o.TenantID))
	}
	cloud := o.Cloud
	if cloud == "" {
		cloud = "commercial"
	}
	host, ok := Clouds[cloud]
	if !ok {
		return nil, fmt.Errorf("mde: cloud %q is not one of commercial, gcc, gcchigh, dod", o.Cloud)
	}
	if o.BaseURL != "" {
		b, err := url.Parse(o.BaseURL)
		if err != nil || b.Scheme != "https" || !feedHost(b) {
			return nil, fmt.Errorf("mde: Management Activity API base URL %q must be https on a management host", o.BaseURL)
		}
		host = strings.ToLower(b.Host)
	}
	pub := strings.TrimSpace(o.PublisherIdentifier)
	if pub == "" {
		pub = tenant
	}
	if !IsGUID(pub) {
		return nil, errors.New("mde: publisher_identifier must be a GUID (your tenant id, as Microsoft suggests)")
	}
	if o.Limiter == nil {
		o.Limiter = rate.NewLimiter(rate.Every(time.Minute/2000), 100)
	}
	base := &url.URL{Scheme: "https", Host: host}
	tokens := o.Tokens
	allow := func(u *url.URL) bool {
		if u == nil || u.Scheme != "https" || u.User != nil || !strings.EqualFold(u.Host, host) {
			return false
		}
		return true
	}
	fam := family{label: "activityfeed", name: "Management Activity API",
		allowHost:    allow,
		authorize:    bearer(tokens),
		authFailed:   func(int) error { return nil },
		unauthorized: "the access token was rejected: the token's audience must be https://manage.office.com (scope https://manage.office.com/.default) and its tenant the configured tenant_id",
		forbidden: func(string) string {
			return "grant the app the Office 365 Management APIs application permission ActivityFeed.Read, with admin consent"
		},
		throttled: func(st int, body []byte) bool {
			if st != http.StatusForbidden && st != http.StatusTooManyRequests {
				return false
			}
			code, _, _, ok := ParseErrorEnvelope(body)
			return ok && code == AFThrottled
		},
		explain: explainFeed(tenant),
	}
	fam.rejected = rejectHook(tokens)
	d, err := newDoer(o.ClientOptions, fam)
	if err != nil {
		return nil, err
	}
	return &ActivityFeedClient{base: base, tenant: tenant, publisher: pub, d: d}, nil
}

// explainFeed sets actionable hints by AF code.
func explainFeed(tenant string) func(e *APIError) {
	return func(e *APIError) {
		msg := strings.ToLower(e.Message)
		switch {
		case e.Code == AFMissingPermission:
			e.Hint = "grant the app registration the Office 365 Management APIs application permission ActivityFeed.Read and give admin consent (API permissions → Add a permission → Office 365 Management APIs)"
		case strings.Contains(msg, "does not exist") && strings.Contains(msg, "tenant"):
			e.Hint = "unified audit logging is not turned on for tenant " + tenant + ": turn it on (Microsoft Purview portal → Audit → Start recording user and admin activity); the first data can take hours"
		case e.Code == AFTenantMismatch:
			e.Hint = "tenant mismatch: the token was issued for another tenant than tenant_id " + tenant + "; use credentials of this tenant (or a multi-tenant app consented in it)"
		case e.Code == "AF20011" || e.Code == "AF20012" || e.Code == "AF20013":
			e.Hint = "the tenant " + tenant + " is unknown to the Management Activity API or misconfigured; check tenant_id and that audit logging is on"
		case e.Code == AFWebhookValidation && strings.Contains(msg, "must begin with https"):
			e.Hint = "the webhook address must be an https URL (webhook.address)"
		case e.Code == AFWebhookValidation:
			e.Hint = "the webhook listener at the address did not answer the service's validation POST with HTTP 200: check that the public address (webhook.address) reaches the listener (webhook.listen), that its TLS certificate is trusted publicly (a public CA, the full chain served) and that any proxy in front preserves the path"
		case e.Code == AFInvalidContentType:
			e.Hint = "content_types may only hold Audit.AzureActiveDirectory, Audit.Exchange, Audit.SharePoint, Audit.General and DLP.All"
		case e.Code == AFNoSubscription || e.Code == AFSubscriptionOff:
			e.Hint = "there is no enabled subscription for this content type; the harvester starts one (it may take up to 12 hours before the first content appears)"
		case e.Code == AFBadWindow || e.Code == AFBadWindowStartAge:
			e.Hint = "the listing window must be at most 24 hours long and start at most 7 days in the past (check the host's clock)"
		case e.Code == AFContentExpired:
			e.Hint = "content older than 7 days cannot be retrieved"
		case e.Code == AFThrottled:
			e.Hint = "the Management Activity API throttled the requests; set publisher_identifier to your tenant id and run less often"
		case e.Code == AFInternal:
			e.Hint = "the service failed; it is usually transient"
		}
	}
}

// TenantID is the tenant the client reads.
func (c *ActivityFeedClient) TenantID() string { return c.tenant }

// root builds {base}/api/v1.0/{tenant}/activity/feed/{op} with query and
// PublisherIdentifier.
func (c *ActivityFeedClient) root(op string, q url.Values) *url.URL {
	if q == nil {
		q = url.Values{}
	}
	q.Set("PublisherIdentifier", c.publisher)
	u := *c.base
	u.Path = "/api/v1.0/" + c.tenant + "/activity/feed/" + op
	u.RawQuery = q.Encode()
	return &u
}

// Subscriptions lists the tenant's subscriptions.
func (c *ActivityFeedClient) Subscriptions(ctx context.Context) ([]Subscription, error) {
	body, err := c.d.do(ctx, http.MethodGet, c.root("subscriptions/list", nil), nil)
	if err != nil {
		return nil, err
	}
	return DecodeSubscriptions(body)
}

// DecodeSubscriptions reads the subscriptions/list answer. Shape errors
// name keys and JSON types, never values.
func DecodeSubscriptions(body []byte) ([]Subscription, error) {
	var arr []json.RawMessage
	if err := json.Unmarshal(body, &arr); err != nil {
		return nil, fmt.Errorf("subscriptions/list: expected a JSON array, got %s", jsonKind(body))
	}
	out := make([]Subscription, 0, len(arr))
	for i, raw := range arr {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
			return nil, fmt.Errorf("subscriptions/list: entry %d is %s, not an object", i, jsonKind(raw))
		}
		ct, err := stringField(obj, "contentType")
		if err != nil {
			return nil, fmt.Errorf("subscriptions/list: entry %d: %w", i, err)
		}
		st, err := stringField(obj, "status")
		if err != nil {
			return nil, fmt.Errorf("subscriptions/list: entry %d: %w", i, err)
		}
		hook, err := decodeSubscriptionWebhook(obj["webhook"])
		if err != nil {
			return nil, fmt.Errorf("subscriptions/list: entry %d: %w", i, err)
		}
		out = append(out, Subscription{ContentType: ct, Status: st, Webhook: hook})
	}
	return out, nil
}

// decodeSubscriptionWebhook reads a listed subscription's webhook member:
// absent (raw nil) or null is no webhook; an object gives its string
// fields (absent or null ones empty); anything else is an error naming
// the key and the JSON type seen.
func decodeSubscriptionWebhook(raw json.RawMessage) (*SubscriptionWebhook, error) {
	b := bytes.TrimSpace(raw)
	if len(b) == 0 || string(b) == "null" {
		return nil, nil
	}
	var obj map[string]json.RawMessage
	if b[0] != '{' || json.Unmarshal(b, &obj) != nil || obj == nil {
		return nil, fmt.Errorf("field webhook is %s, not an object or null", jsonKind(b))
	}
	var w SubscriptionWebhook
	for _, f := range []struct {
		key string
		dst *string
	}{{"status", &w.Status}, {"address", &w.Address}, {"authId", &w.AuthID}, {"expiration", &w.Expiration}} {
		v, ok := obj[f.key]
		if !ok || string(bytes.TrimSpace(v)) == "null" {
			continue
		}
		if err := json.Unmarshal(v, f.dst); err != nil {
			return nil, fmt.Errorf("field webhook.%s is %s, not a string", f.key, jsonKind(v))
		}
	}
	return &w, nil
}

// StartSubscription starts contentType, with hook when not nil;
// AF20024 (already enabled, no property change) is success.
func (c *ActivityFeedClient) StartSubscription(ctx context.Context, contentType string, hook *WebhookSpec) error {
	if !knownContentType(contentType) {
		return fmt.Errorf("content type %q is not one of %s", contentType, strings.Join(ContentTypes, ", "))
	}
	var body []byte
	if hook != nil {
		if strings.TrimSpace(hook.Address) == "" {
			return errors.New("starting a subscription with a webhook needs its address")
		}
		var err error
		body, err = json.Marshal(map[string]map[string]string{"webhook": {
			"address": hook.Address, "authId": hook.AuthID, "expiration": hook.Expiration}})
		if err != nil {
			return fmt.Errorf("encoding the webhook: %w", err)
		}
	}
	_, err := c.d.do(ctx, http.MethodPost, c.root("subscriptions/start", url.Values{"contentType": {contentType}}), body)
	if FeedCode(err) == AFAlreadyEnabled {
		return nil
	}
	if err != nil && hook != nil {
		return redactSecret(err, hook.AuthID)
	}
	return err
}

// redactSecret keeps secret out of err's text (a service that echoed it
// in a message): the APIError's message is rewritten and the returned
// error reads redacted while still wrapping err (FeedCode, errors.Is).
func redactSecret(err error, secret string) error {
	if secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	var ae *APIError
	if errors.As(err, &ae) {
		ae.Message = strings.ReplaceAll(ae.Message, secret, "[redacted]")
		ae.Target = strings.ReplaceAll(ae.Target, secret, "[redacted]")
	}
	return &redactedError{msg: strings.ReplaceAll(err.Error(), secret, "[redacted]"), err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// feedTime is the listing's time format (UTC, seconds).
const feedTime = "2006-01-02T15:04:05"

// ListContent reads one page of the content listing.
func (c *ActivityFeedClient) ListContent(ctx context.Context, contentType string, start, end time.Time, next string) (ContentPage, error) {
	var u *url.URL
	if next != "" {
		var err error
		if u, err = c.ValidateLink(next, "subscriptions/content"); err != nil {
			return ContentPage{}, err
		}
		c.withPublisher(u)
	} else {
		if !knownContentType(contentType) {
			return ContentPage{}, fmt.Errorf("content type %q is not one of %s", contentType, strings.Join(ContentTypes, ", "))
		}
		if !start.Before(end) || end.Sub(start) > 24*time.Hour {
			return ContentPage{}, fmt.Errorf("content listing window %s → %s must be non-empty and at most 24 hours long", start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339))
		}
		u = c.root("subscriptions/content", url.Values{"contentType": {contentType},
			"startTime": {start.UTC().Format(feedTime)}, "endTime": {end.UTC().Format(feedTime)}})
	}
	var hdr http.Header
	body, err := c.d.doHeader(ctx, http.MethodGet, u, nil, &hdr)
	if err != nil {
		return ContentPage{}, err
	}
	page := ContentPage{Body: body}
	link := hdr.Get("NextPageUri")
	if link == "" {
		link = hdr.Get("NextPageUrl")
	}
	if link = strings.TrimSpace(link); link != "" {
		if _, err := c.ValidateLink(link, "subscriptions/content"); err != nil {
			return ContentPage{}, fmt.Errorf("NextPageUri: %w", err)
		}
		page.Next = link
	}
	return page, nil
}

// FetchContent GETs a blob after validating its contentUri.
func (c *ActivityFeedClient) FetchContent(ctx context.Context, contentURI string) ([]byte, error) {
	u, err := c.ValidateLink(contentURI, "audit/")
	if err != nil {
		return nil, fmt.Errorf("contentUri: %w", err)
	}
	c.withPublisher(u)
	return c.d.do(ctx, http.MethodGet, u, nil)
}

// withPublisher adds PublisherIdentifier to a link that lacks it; the
// rest of the query is kept as the service wrote it.
func (c *ActivityFeedClient) withPublisher(u *url.URL) {
	q, _ := url.ParseQuery(u.RawQuery)
	for k := range q {
		if strings.EqualFold(k, "PublisherIdentifier") {
			return
		}
	}
	if u.RawQuery != "" {
		u.RawQuery += "&"
	}
	u.RawQuery += "PublisherIdentifier=" + url.QueryEscape(c.publisher)
}

// ValidateLink checks a link the service handed out (NextPageUri,
// contentUri, or a webhook notification's contentUri): https on the
// cloud's management host (default port, no user info, no fragment),
// path /api/v1.0/{tenant}/activity/feed/{op…} or /api/v1/{tenant}/… with
// this client's tenant, op starting with wantOp, no dot segments or
// encoded slashes. The error names the problem (host and path, never the
// query); a refused link is never requested.
func (c *ActivityFeedClient) ValidateLink(link, wantOp string) (*url.URL, error) {
	bad := func(format string, a ...any) (*url.URL, error) {
		return nil, fmt.Errorf("%w: %s", ErrBadFeedLink, fmt.Sprintf(format, a...))
	}
	u, problem := serviceLink(link, c.base.Hostname(), fmt.Sprintf("the management host %q of the configured cloud", c.base.Hostname()))
	if problem != "" {
		return bad("%s", problem)
	}
	segs := strings.Split(u.Path, "/")
	// "", "api", version, tenant, "activity", "feed", op...
	if len(segs) < 7 || segs[0] != "" || segs[1] != "api" || (segs[2] != "v1.0" && segs[2] != "v1") ||
		segs[4] != "activity" || segs[5] != "feed" {
		return bad("its path %q is not under /api/v1.0/{tenant}/activity/feed/", u.Path)
	}
	if !strings.EqualFold(segs[3], c.tenant) {
		return bad("its path names tenant %q, not the configured tenant %s", clean(segs[3], 40), c.tenant)
	}
	if op := strings.Join(segs[6:], "/"); !strings.HasPrefix(op, wantOp) || (strings.HasSuffix(wantOp, "/") && len(op) == len(wantOp)) {
		return bad("its path %q is not a %s link", u.Path, strings.TrimSuffix(wantOp, "/"))
	}
	if _, err := url.ParseQuery(u.RawQuery); err != nil {
		return bad("its query string is malformed")
	}
	return u, nil
}

// DecodeContentList reads a content listing page: a JSON array of
// {contentType, contentId, contentUri, contentCreated, contentExpiration}.
// Errors name keys and JSON types, never values.
func DecodeContentList(body []byte) ([]Content, error) {
	b := bytes.TrimSpace(body)
	var arr []json.RawMessage
	if len(b) == 0 || b[0] != '[' || json.Unmarshal(b, &arr) != nil {
		if obj := objectKeys(b); obj != "" {
			return nil, fmt.Errorf("content listing: expected a JSON array of blobs, got a JSON object with keys %s", obj)
		}
		return nil, fmt.Errorf("content listing: expected a JSON array of blobs, got %s", jsonKind(b))
	}
	out := make([]Content, 0, len(arr))
	for i, raw := range arr {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
			return nil, fmt.Errorf("content listing: entry %d is %s, not an object", i, jsonKind(raw))
		}
		var c Content
		var err error
		for _, f := range []struct {
			key string
			dst *string
		}{{"contentType", &c.ContentType}, {"contentId", &c.ContentID}, {"contentUri", &c.ContentURI}} {
			if *f.dst, err = stringField(obj, f.key); err != nil {
				return nil, fmt.Errorf("content listing: entry %d: %w", i, err)
			}
		}
		created, err := stringField(obj, "contentCreated")
		if err != nil {
			return nil, fmt.Errorf("content listing: entry %d: %w", i, err)
		}
		if c.ContentCreated, err = ParseTime(created); err != nil {
			return nil, fmt.Errorf("content listing: entry %d: field contentCreated is not an ISO 8601 time", i)
		}
		if v, ok := obj["contentExpiration"]; ok && string(bytes.TrimSpace(v)) != "null" {
			exp, err := stringField(obj, "contentExpiration")
			if err != nil {
				return nil, fmt.Errorf("content listing: entry %d: %w", i, err)
			}
			if c.ContentExpiration, err = ParseTime(exp); err != nil {
				return nil, fmt.Errorf("content listing: entry %d: field contentExpiration is not an ISO 8601 time", i)
			}
		}
		out = append(out, c)
	}
	return out, nil
}

// stringField reads a non-empty string member; the error names the key
// and the JSON type found.
func stringField(obj map[string]json.RawMessage, key string) (string, error) {
	v, ok := obj[key]
	if !ok {
		return "", fmt.Errorf("field %s is missing", key)
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", fmt.Errorf("field %s is %s, not a string", key, jsonKind(v))
	}
	if strings.TrimSpace(s) == "" {
		return "", fmt.Errorf("field %s is an empty string", key)
	}
	return s, nil
}

// jsonKind names the JSON type of b (never its value).
func jsonKind(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return "an empty body"
	}
	switch b[0] {
	case '{':
		return "a JSON object"
	case '[':
		return "a JSON array"
	case '"':
		return "a JSON string"
	case 't', 'f':
		return "a JSON boolean"
	case 'n':
		return "JSON null"
	case '<':
		return "markup (HTML or XML), not JSON"
	}
	if b[0] == '-' || b[0] >= '0' && b[0] <= '9' {
		return "a JSON number"
	}
	return "something that is not JSON"
}

// objectKeys lists an object's keys (at most 10, cleaned), "" when b is
// not an object.
func objectKeys(b []byte) string {
	var obj map[string]json.RawMessage
	if len(b) == 0 || b[0] != '{' || json.Unmarshal(b, &obj) != nil {
		return ""
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) > 10 {
		keys = append(keys[:10], "…")
	}
	for i := range keys {
		keys[i] = clean(keys[i], 40)
	}
	return "[" + strings.Join(keys, ", ") + "]"
}

func knownContentType(ct string) bool {
	for _, k := range ContentTypes {
		if ct == k {
			return true
		}
	}
	return false
}

// feedHost reports whether u's host is one of the clouds' management
// hosts.
func feedHost(u *url.URL) bool {
	for _, h := range Clouds {
		if strings.EqualFold(u.Hostname(), h) {
			return u.Port() == "" || u.Port() == "443"
		}
	}
	return false
}

// IsGUID reports whether s is an 8-4-4-4-12 hex GUID (any case).
func IsGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return false
			}
		default:
			if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F') {
				return false
			}
		}
	}
	return true
}

// DescribeJSON names the JSON type of b and, for an object, its keys —
// never a value — for errors about answers of an unexpected shape.
func DescribeJSON(b []byte) string {
	b = bytes.TrimSpace(b)
	if keys := objectKeys(b); keys != "" {
		return "a JSON object with keys " + keys
	}
	return jsonKind(b)
}
