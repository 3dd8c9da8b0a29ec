package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"
)

// Content types of the Management Activity API (protocols.md §C.2).
const (
	ContentTypeAzureActiveDirectory = "Audit.AzureActiveDirectory"
	ContentTypeExchange             = "Audit.Exchange"
	ContentTypeSharePoint           = "Audit.SharePoint"
	ContentTypeGeneral              = "Audit.General"
	ContentTypeDLP                  = "DLP.All"
)

// AllContentTypes lists every content type the service knows, in its
// own spelling.
func AllContentTypes() []string {
	return []string{ContentTypeAzureActiveDirectory, ContentTypeExchange, ContentTypeSharePoint, ContentTypeGeneral, ContentTypeDLP}
}

// hosts maps a cloud to its Management Activity API host (§C.1).
var hosts = map[string]string{
	"enterprise": "manage.office.com",
	"commercial": "manage.office.com",
	"gcc":        "manage-gcc.office.com",
	"gcchigh":    "manage.office365.us",
	"dod":        "manage.protection.apps.mil",
}

// HostForCloud returns the management host of a cloud: "" or
// "enterprise" (alias "commercial"), "gcc", "gcchigh", "dod"
// (case-insensitive; "-" and "_" are ignored, so "gcc-high" works).
func HostForCloud(cloud string) (string, error) {
	k := strings.ToLower(strings.NewReplacer("-", "", "_", "", " ", "").Replace(cloud))
	if k == "" {
		k = "enterprise"
	}
	h, ok := hosts[k]
	if !ok {
		return "", fmt.Errorf("webhook: unknown cloud %q (want enterprise, gcc, gcchigh or dod)", cloud)
	}
	return h, nil
}

// Notification is one accepted webhook item: content the harvester may
// fetch (with its own token) at ContentURI. Every field has been checked
// against the listener's tenant, host and content types.
type Notification struct {
	TenantID    string
	ClientID    string
	ContentType string
	ContentID   string
	// ContentURI is rebuilt from the checked parts:
	// https://<allowed host>/api/v1.0|v1/<tenant>/activity/feed/audit/<contentId>
	// (the version segment as received, the tenant as configured).
	ContentURI        string
	ContentCreated    time.Time
	ContentExpiration time.Time
}

// wireNotification is one array element as the service sends it.
type wireNotification struct {
	TenantID          string `json:"tenantId"`
	ClientID          string `json:"clientId"`
	ContentType       string `json:"contentType"`
	ContentID         string `json:"contentId"`
	ContentURI        string `json:"contentUri"`
	ContentCreated    string `json:"contentCreated"`
	ContentExpiration string `json:"contentExpiration"`
}

// Parse errors of a whole body (answered 400, or 413 for too many items).
var (
	ErrNotArray     = errors.New("webhook: body is not a JSON array")
	ErrTooManyItems = errors.New("webhook: too many notifications in one request")
	ErrTrailingData = errors.New("webhook: data after the JSON value")
)

// ParseNotifications splits a notification body into its elements. The
// body must be one JSON array (whitespace around it is fine) of at most
// maxItems elements (maxItems <= 0: no limit); elements are returned
// raw, each checked by checkItem. It never panics.
func ParseNotifications(body []byte, maxItems int) ([]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotArray, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, ErrNotArray
	}
	var items []json.RawMessage
	for dec.More() {
		if maxItems > 0 && len(items) >= maxItems {
			return nil, ErrTooManyItems
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotArray, err)
		}
		items = append(items, raw)
	}
	if _, err := dec.Token(); err != nil { // the closing ']'
		return nil, fmt.Errorf("%w: %v", ErrNotArray, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, ErrTrailingData
	}
	return items, nil
}

// Reason says why one notification was rejected.
type Reason int

// The reasons, in Stats.Rejected order.
const (
	ReasonMalformed   Reason = iota // not an object, or a field of the wrong JSON type
	ReasonTenant                    // tenantId is not ours
	ReasonContentType               // contentType not allowed
	ReasonContentID                 // contentId missing, too long or with unexpected characters
	ReasonContentURI                // contentUri not the expected https://<host>/api/v1.0/<tenant>/activity/feed/audit/<contentId>
	ReasonTime                      // contentCreated/contentExpiration missing or unparsable, or expiration before creation
	ReasonExpired                   // contentExpiration already past: the blob cannot be fetched any more
	numReasons
)

var reasonNames = [numReasons]string{"malformed", "tenant", "content_type", "content_id", "content_uri", "time", "expired"}

// String is the reason's short name (a log attribute, a metric label).
func (r Reason) String() string {
	if r < 0 || r >= numReasons {
		return "unknown"
	}
	return reasonNames[r]
}

// Reasons lists every reason.
func Reasons() []Reason {
	out := make([]Reason, numReasons)
	for i := range out {
		out[i] = Reason(i)
	}
	return out
}

// maxContentIDLen bounds a contentId (real ones are about 100 characters).
const maxContentIDLen = 512

// validContentID reports whether id looks like a Management API content
// id: 1..512 characters of [A-Za-z0-9$_.-], not "." or "..". Real ids are
// hex/decimal runs joined by '$'.
func validContentID(id string) bool {
	if id == "" || len(id) > maxContentIDLen || id == "." || id == ".." {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '$', c == '_', c == '-', c == '.':
		default:
			return false
		}
	}
	return true
}

// ValidateContentURI checks that raw is exactly the content URI the
// Management Activity API would give for contentID in tenant on host:
// https://<host>[:443]/api/v1.0/<tenant>/activity/feed/audit/<contentID>
// (or /api/v1/), with no user info, no other port, no query or fragment,
// and a host name (never an IP literal or localhost). host and tenant
// compare case-insensitively. It returns the canonical URI (the allowed
// host as configured, the tenant as given, no port) to fetch.
func ValidateContentURI(raw, host, tenant, contentID string) (string, error) {
	if err := checkHost(host); err != nil {
		return "", err
	}
	if !validContentID(contentID) {
		return "", errors.New("contentId is not a content id")
	}
	if len(raw) > 2048 {
		return "", errors.New("contentUri too long")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", errors.New("contentUri does not parse")
	}
	if u.Scheme != "https" {
		return "", errors.New("contentUri is not https")
	}
	if u.Opaque != "" || u.User != nil || strings.Contains(u.Host, "@") {
		return "", errors.New("contentUri has user info or is opaque")
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.RawFragment != "" {
		return "", errors.New("contentUri has a query or fragment")
	}
	name, port := u.Hostname(), u.Port()
	if port != "" && port != "443" {
		return "", errors.New("contentUri has a port other than 443")
	}
	if strings.HasSuffix(u.Host, ":") {
		return "", errors.New("contentUri has an empty port")
	}
	if net.ParseIP(strings.Trim(name, "[]")) != nil || strings.Contains(u.Host, "[") {
		return "", errors.New("contentUri host is an IP address")
	}
	if isLoopbackName(name) {
		return "", errors.New("contentUri host is loopback")
	}
	if !strings.EqualFold(name, host) {
		return "", errors.New("contentUri host is not the management host")
	}
	// u.Path is decoded (a %24 is a '$'); it must equal the expected
	// path exactly, and the URI returned is rebuilt from the checked
	// parts, so no encoding trick reaches the fetch. An encoded '/' is
	// refused all the same: the service never sends one.
	if strings.Count(u.EscapedPath(), "/") != strings.Count(u.Path, "/") {
		return "", errors.New("contentUri path has an encoded slash")
	}
	for _, ver := range []string{"v1.0", "v1"} {
		prefix := "/api/" + ver + "/"
		if !strings.HasPrefix(u.Path, prefix) {
			continue
		}
		rest := u.Path[len(prefix):]
		t, after, ok := strings.Cut(rest, "/")
		if !ok || !strings.EqualFold(t, tenant) {
			return "", errors.New("contentUri names another tenant")
		}
		if after != "activity/feed/audit/"+contentID {
			return "", errors.New("contentUri is not this content's audit path")
		}
		return "https://" + host + prefix + tenant + "/activity/feed/audit/" + contentID, nil
	}
	return "", errors.New("contentUri path is not /api/v1.0/…")
}

func isLoopbackName(name string) bool {
	n := strings.TrimSuffix(strings.ToLower(name), ".")
	return n == "localhost" || strings.HasSuffix(n, ".localhost")
}

// checkHost refuses a configured host that is empty, has a port, a path
// or is an IP literal or localhost.
func checkHost(host string) error {
	switch {
	case host == "":
		return errors.New("webhook: no management host")
	case strings.ContainsAny(host, ":/@[]?# \t\r\n"):
		return fmt.Errorf("webhook: management host %q is not a bare host name", host)
	case net.ParseIP(host) != nil:
		return fmt.Errorf("webhook: management host %q is an IP address", host)
	case isLoopbackName(host):
		return fmt.Errorf("webhook: management host %q is loopback", host)
	}
	return nil
}

// isGUID reports whether s is 8-4-4-4-12 hex digits.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// parseTime reads the service's timestamps: RFC 3339 (normally with
// milliseconds and Z), or the same without a zone (taken as UTC).
func parseTime(s string) (time.Time, bool) {
	if s == "" || len(s) > 64 {
		return time.Time{}, false
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), true
	}
	if t, err := time.Parse("2006-01-02T15:04:05.999999999", s); err == nil {
		return t, true
	}
	return time.Time{}, false
}

// checker holds what an item is checked against.
type checker struct {
	tenant       string
	host         string
	contentTypes map[string]string // lower-case → canonical
	now          func() time.Time
}

// checkItem decodes and checks one element: the notification, or the
// reason it is rejected and a short detail (never the item's values
// beyond what is safe to log).
func (c *checker) checkItem(raw json.RawMessage) (Notification, Reason, string) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return Notification{}, ReasonMalformed, "not a JSON object"
	}
	var w wireNotification
	if err := json.Unmarshal(trimmed, &w); err != nil {
		return Notification{}, ReasonMalformed, "a field has the wrong type"
	}
	if !strings.EqualFold(w.TenantID, c.tenant) {
		return Notification{}, ReasonTenant, "tenantId is not ours"
	}
	ct, ok := c.contentTypes[strings.ToLower(w.ContentType)]
	if !ok {
		return Notification{}, ReasonContentType, "contentType not allowed"
	}
	if !validContentID(w.ContentID) {
		return Notification{}, ReasonContentID, "contentId missing or not a content id"
	}
	uri, err := ValidateContentURI(w.ContentURI, c.host, c.tenant, w.ContentID)
	if err != nil {
		return Notification{ContentID: w.ContentID}, ReasonContentURI, err.Error()
	}
	created, ok1 := parseTime(w.ContentCreated)
	expires, ok2 := parseTime(w.ContentExpiration)
	if !ok1 || !ok2 {
		return Notification{ContentID: w.ContentID}, ReasonTime, "contentCreated/contentExpiration not a time"
	}
	if expires.Before(created) {
		return Notification{ContentID: w.ContentID}, ReasonTime, "contentExpiration before contentCreated"
	}
	if c.now != nil && !c.now().Before(expires) {
		return Notification{ContentID: w.ContentID}, ReasonExpired, "content already expired"
	}
	clientID := w.ClientID
	if len(clientID) > 128 { // an app id is 36 characters; keep no junk
		clientID = ""
	}
	return Notification{
		TenantID: c.tenant, ClientID: clientID, ContentType: ct, ContentID: w.ContentID,
		ContentURI: uri, ContentCreated: created, ContentExpiration: expires,
	}, 0, ""
}
