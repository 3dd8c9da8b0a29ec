package mde

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/defenderharvester/defenderharvester/internal/httpx"
)

// Sentinel errors; every error the clients return wraps at most one of
// them, so callers can use errors.Is.
var (
	ErrSessionExpired = errors.New("portal session invalid or expired (got the sign-in page): sign in again and refresh the cookies")
	ErrUnauthorized   = errors.New("access token rejected (HTTP 401): check tenant id, client id and secret, and that the token's audience is the Defender API")
	ErrForbidden      = errors.New("access denied (HTTP 403)")
	ErrNotFound       = errors.New("not found (HTTP 404)")
	ErrThrottled      = errors.New("throttled by the API (HTTP 429)")
	ErrServer         = errors.New("the API had a server error (HTTP 5xx)")
	ErrBadRequest     = errors.New("the API rejected the request (HTTP 400)")
	ErrRedirect       = errors.New("refusing to follow a redirect")
	ErrNotJSON        = errors.New("the API answered with something other than JSON")
	ErrTooLarge       = errors.New("response larger than the configured limit")
	ErrHostNotAllowed = errors.New("host is not on the allow-list")
	ErrSessionUpkeep  = errors.New("portal session upkeep failed")
	ErrCertificate    = httpx.ErrCertificate
	ErrHostNotFound   = httpx.ErrHostNotFound
	// ErrTimeout: an attempt got no answer (or no complete body) in time;
	// it is retried, and reported when every attempt timed out.
	ErrTimeout      = httpx.ErrTimeout
	ErrNoLegacyHost = errors.New("not available on the legacy hosts; use the portal proxy")
	// ErrWrongTenant: the portal session belongs to another tenant than
	// the configured tenant_id (PortalClient.TenantContext).
	ErrWrongTenant = errors.New("wrong tenant")
)

// APIError is a non-success answer, with the public API's error envelope
// {"error":{"code","message","target"}} decoded when present.
type APIError struct {
	Status  int
	Code    string
	Message string
	Target  string // per-request correlation id (public API)
	Hint    string // what the user can do
	kind    error
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP %d", e.Status)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.Target != "" {
		b.WriteString(" (request id " + e.Target + ")")
	}
	if e.Hint != "" {
		b.WriteString("; " + e.Hint)
	}
	return b.String()
}

// Unwrap lets errors.Is match the sentinel for the status.
func (e *APIError) Unwrap() error { return e.kind }

// ParseErrorEnvelope decodes {"error":{"code","message","target"}}. It
// reports false when body is not such an envelope.
func ParseErrorEnvelope(body []byte) (code, message, target string, ok bool) {
	var env struct {
		Error *struct {
			Code    json.RawMessage `json:"code"`
			Message json.RawMessage `json:"message"`
			Target  json.RawMessage `json:"target"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &env) != nil || env.Error == nil {
		return "", "", "", false
	}
	code, message, target = clean(scalar(env.Error.Code), 100), clean(scalar(env.Error.Message), 500), clean(scalar(env.Error.Target), 100)
	if code == "" && message == "" {
		return "", "", "", false
	}
	return code, message, target, true
}

// scalar renders a JSON string or number as text and anything else empty.
func scalar(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

// clean makes server text safe to print: no control characters, bounded.
func clean(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8Start(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// kindFor maps a status to its sentinel.
func kindFor(status int) error {
	switch {
	case status == 400:
		return ErrBadRequest
	case status == 401:
		return ErrUnauthorized
	case status == 403:
		return ErrForbidden
	case status == 404:
		return ErrNotFound
	case status == 429:
		return ErrThrottled
	case status >= 500:
		return ErrServer
	}
	return nil
}
