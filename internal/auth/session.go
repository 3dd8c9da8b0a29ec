// Package auth holds the credentials the harvester presents: the portal
// session (cookies copied from a signed-in browser, an ESTS cookie that
// signs in again by itself, or the experimental bearer mode), Entra
// credentials and bearer token sources for the public Defender API, the
// session cache, and the one secret-file reader. Nothing here ever logs or
// prints a secret.
//
// Session upkeep (portal-root visits, ESTS sign-in hops, refresh-token
// exchanges) goes through an httpx.Policy: a per-attempt timeout and the
// same retries as data calls (429, 5xx, resets, timeouts; Retry-After
// honoured). A root visit that sets no XSRF-TOKEN is not a renewal
// (ErrNoXSRF). Sessions are written to the cache only once proven: the
// portal client calls Prover.Proven after the portal served data.
package auth

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// PortalSession puts the portal session on a request. Implementations may
// refresh the session behind the scenes; callers only ask for it per request.
type PortalSession interface {
	Apply(req *http.Request) error
}

// StaticCookies is a portal session copied once from the browser: the
// sccauth cookie and the XSRF-TOKEN cookie, echoed URL-decoded in the
// X-XSRF-TOKEN header as the portal's anti-forgery check expects.
type StaticCookies struct {
	sccauth string
	xsrf    string // raw cookie value, as the browser holds it
	header  string // URL-decoded xsrf for X-XSRF-TOKEN
}

// NewStaticCookies validates both values. They must be non-empty cookie
// values (no whitespace, CR/LF, ';', ',', '"' or '\').
func NewStaticCookies(sccauth, xsrf string) (*StaticCookies, error) {
	if err := checkCookieValue("sccauth", sccauth); err != nil {
		return nil, err
	}
	if err := checkCookieValue("XSRF-TOKEN", xsrf); err != nil {
		return nil, err
	}
	h, err := url.QueryUnescape(xsrf)
	if err != nil {
		return nil, errors.New("auth: the XSRF-TOKEN cookie value is not valid URL encoding: copy it again from the browser's cookie storage")
	}
	if strings.ContainsAny(h, "\r\n\x00") {
		return nil, errors.New("auth: the decoded XSRF-TOKEN value contains control characters: copy it again from the browser")
	}
	return &StaticCookies{sccauth: sccauth, xsrf: xsrf, header: h}, nil
}

// Apply adds the session cookies and the anti-forgery header to req,
// keeping any cookies already on it.
func (s *StaticCookies) Apply(req *http.Request) error {
	if s == nil || req == nil {
		return errors.New("auth: no portal session configured")
	}
	c := "sccauth=" + s.sccauth + "; XSRF-TOKEN=" + s.xsrf
	if prev := req.Header.Get("Cookie"); prev != "" {
		c = prev + "; " + c
	}
	req.Header.Set("Cookie", c)
	req.Header.Set("X-XSRF-TOKEN", s.header)
	return nil
}

// Secrets returns the values that must never appear in logs, for Redact.
func (s *StaticCookies) Secrets() []string {
	if s == nil {
		return nil
	}
	return []string{s.sccauth, s.xsrf, s.header}
}

// ParseCookieHeader extracts sccauth and XSRF-TOKEN from a Cookie header as
// copied from the browser's developer tools ("sccauth=…; XSRF-TOKEN=…; …").
// A leading "Cookie:" is accepted. Errors never contain cookie values.
func ParseCookieHeader(s string) (sccauth, xsrf string, err error) {
	s = strings.TrimSpace(s)
	if len(s) >= 7 && strings.EqualFold(s[:7], "cookie:") {
		s = strings.TrimSpace(s[7:])
	}
	if strings.ContainsAny(s, "\r\n") {
		return "", "", errors.New("auth: the cookie header spans several lines: paste it as one line")
	}
	for _, part := range strings.Split(s, ";") {
		name, value, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch {
		case strings.EqualFold(name, "sccauth"):
			sccauth = strings.TrimSpace(value)
		case strings.EqualFold(name, "XSRF-TOKEN"):
			xsrf = strings.TrimSpace(value)
		}
	}
	var missing []string
	if sccauth == "" {
		missing = append(missing, "sccauth")
	}
	if xsrf == "" {
		missing = append(missing, "XSRF-TOKEN")
	}
	if len(missing) > 0 {
		return "", "", fmt.Errorf("auth: cookie header has no %s cookie: copy the whole Cookie request header of a security.microsoft.com/apiproxy request from the browser's developer tools", strings.Join(missing, " or "))
	}
	return sccauth, xsrf, nil
}

// checkCookieValue accepts RFC 6265 cookie-octets only, so a value can
// never smuggle another header or cookie into a request.
func checkCookieValue(name, v string) error {
	if v == "" {
		return fmt.Errorf("auth: the %s cookie value is empty: copy it from the browser after signing in to security.microsoft.com", name)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c <= 0x20 || c >= 0x7f || c == '"' || c == ',' || c == ';' || c == '\\' {
			return fmt.Errorf("auth: the %s cookie value contains a character not allowed in cookies (position %d): copy the value alone, without quotes, spaces or line breaks", name, i+1)
		}
	}
	return nil
}

// Redact replaces every occurrence of each secret (and its URL-encoded
// form) in s with "[redacted]". Empty secrets are ignored.
func Redact(s string, secrets ...string) string {
	for _, sec := range secrets {
		if sec == "" {
			continue
		}
		s = strings.ReplaceAll(s, sec, "[redacted]")
		if esc := url.QueryEscape(sec); esc != sec {
			s = strings.ReplaceAll(s, esc, "[redacted]")
		}
	}
	return s
}
