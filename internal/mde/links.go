package mde

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ValidateRelativeLink checks a continuation link the portal returned (e.g.
// the timeline's Prev) before it is used: relative, no scheme, host or
// userinfo, no fragment, no dot segments, and a path under wantPrefix. Only
// its path and query are ever used, on the client's fixed host.
func ValidateRelativeLink(link, wantPrefix string) (*url.URL, error) {
	bad := func(why string) (*url.URL, error) {
		return nil, fmt.Errorf("refusing continuation link: %s", why)
	}
	if link == "" {
		return bad("it is empty")
	}
	if len(link) > 8192 {
		return bad("it is longer than 8 KiB")
	}
	if strings.ContainsAny(link, "\\\r\n\t\x00") {
		return bad("it contains a backslash or control character")
	}
	if !strings.HasPrefix(link, "/") || strings.HasPrefix(link, "//") {
		return bad("it is not a path relative to the API root")
	}
	u, err := url.Parse(link)
	if err != nil {
		return bad("it does not parse as a URL")
	}
	if u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return bad("it names a scheme, host or user")
	}
	if u.Fragment != "" || strings.Contains(link, "#") {
		return bad("it has a fragment")
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if seg == "." || seg == ".." {
			return bad("it has dot segments")
		}
	}
	if lower := strings.ToLower(u.RawPath); strings.Contains(lower, "%2e") || strings.Contains(lower, "%2f") {
		return bad("it has encoded dots or slashes in its path")
	}
	if !strings.HasPrefix(u.Path, wantPrefix) {
		return bad(fmt.Sprintf("its path %q is not under %q", u.Path, wantPrefix))
	}
	if _, err := url.ParseQuery(u.RawQuery); err != nil {
		return bad("its query string is malformed")
	}
	return u, nil
}

// validateNextLink checks an @odata.nextLink: absolute https on the same
// host as base, path under /api/, no userinfo or fragment. Errors never
// print the query (it may carry tokens).
func validateNextLink(link string, base *url.URL) (*url.URL, error) {
	if strings.ContainsAny(link, "\\\r\n\t\x00") {
		return nil, errors.New("refusing continuation link: it contains a backslash or control character")
	}
	u, err := url.Parse(link)
	if err != nil {
		return nil, errors.New("refusing continuation link: it does not parse as a URL")
	}
	where := fmt.Sprintf(" (host %q, path %q)", u.Host, u.Path)
	switch {
	case u.Scheme != "https":
		return nil, errors.New("refusing continuation link: not an absolute https URL" + where)
	case u.User != nil:
		return nil, errors.New("refusing continuation link: it carries user info" + where)
	case u.Fragment != "" || strings.Contains(link, "#"):
		return nil, errors.New("refusing continuation link: it has a fragment" + where)
	case !strings.EqualFold(u.Host, base.Host):
		return nil, fmt.Errorf("refusing continuation link: host %q is not the API host %q", u.Host, base.Host)
	case !strings.HasPrefix(u.Path, "/api/"):
		return nil, errors.New("refusing continuation link: path is not under /api/" + where)
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if seg == "." || seg == ".." {
			return nil, errors.New("refusing continuation link: it has dot segments" + where)
		}
	}
	if strings.Contains(strings.ToLower(u.RawPath), "%2e") {
		return nil, errors.New("refusing continuation link: it has encoded dots" + where)
	}
	return u, nil
}
