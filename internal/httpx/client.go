// Package httpx holds what every HTTP client of the harvester shares, so
// each rule exists once: the client that never follows a redirect, the
// Retry-After reader, full-jitter exponential backoff, the classification
// of transport failures (retry or give up), and Policy.Do, the bounded
// retry loop for the requests outside the API clients (portal session
// upkeep, sign-in hops, token exchanges).
package httpx

import (
	"net/http"
	"time"
)

// NewClient returns a client over rt that never follows a redirect (the
// 3xx answer is returned as it is: a redirect would carry credentials to
// a host the caller did not choose) and keeps no cookie jar. timeout > 0
// bounds each request, body included; 0 leaves that to the request's
// context.
func NewClient(rt http.RoundTripper, timeout time.Duration) *http.Client {
	return &http.Client{
		Transport:     rt,
		Timeout:       max(timeout, 0),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
