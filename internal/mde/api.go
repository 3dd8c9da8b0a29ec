// Package mde holds the HTTP clients for the Defender API families: the
// portal service API behind security.microsoft.com/apiproxy (and the
// legacy regional hosts), the public Defender API and the Office 365
// Management Activity API (activityfeed.go: the unified audit log, which
// shares this package's request machinery rather than copying it). Clients own host
// allow-listing, auth headers, retries with Retry-After, client-side rate
// limits, redirect refusal, continuation-link validation and error
// envelopes; sources only see JSON bodies.
//
// Nothing waits forever: every attempt runs under ClientOptions.Timeout
// (body included), and NewTransport bounds dialling, the TLS handshake and
// the wait for response headers. An attempt that times out is retried like
// a 5xx; when every attempt timed out the error wraps ErrTimeout and names
// the host, the path and the timeout. Every answer's Date header feeds
// ClientOptions.Skew (a clock.SkewMeter shared by a run). The portal
// client tells a session that implements auth.Prover when the portal
// served data with it, so only proven sessions are cached, and
// TenantContext refuses a session of another tenant (ErrWrongTenant).
//
// Throttling slows the whole client: every request passes the client's
// Pacer, an AIMD concurrency limit (ClientOptions.MaxInFlight, halved by
// a throttled answer, raised back after RaiseAfter successes) and a
// shared pause that a Retry-After puts on every new request of the
// client, not only the retried one.
package mde

import (
	"context"
	"net/url"
)

// Portal is the portal service API, reached through the proxy at
// https://security.microsoft.com/apiproxy/... with the portal session.
type Portal interface {
	// Get fetches path (which must start with "/apiproxy/") with query and
	// returns the JSON body. An HTML page, a redirect or a non-JSON body is
	// an error, never data.
	Get(ctx context.Context, path string, query url.Values) ([]byte, error)
	// Post sends body as JSON to path and returns the JSON body.
	Post(ctx context.Context, path string, query url.Values, body any) ([]byte, error)
}

// PublicAPI is the public Defender API at https://api.security.microsoft.com.
type PublicAPI interface {
	// Get fetches path (which must start with "/api/") with query.
	Get(ctx context.Context, path string, query url.Values) ([]byte, error)
	// GetLink follows an @odata.nextLink after validating it (same host,
	// same path prefix, no userinfo); an invalid link is an error.
	GetLink(ctx context.Context, link string) ([]byte, error)
}
