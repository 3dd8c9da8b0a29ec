package mde

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/clock"
	"github.com/defenderharvester/defenderharvester/internal/httpx"
)

// Limiter is a client-side rate limiter; *rate.Limiter satisfies it.
type Limiter interface {
	Wait(ctx context.Context) error
}

// Limiters waits on every limiter in turn (e.g. per-minute and per-hour).
type Limiters []Limiter

// Wait blocks until every limiter allows one request.
func (ls Limiters) Wait(ctx context.Context) error {
	for _, l := range ls {
		if l == nil {
			continue
		}
		if err := l.Wait(ctx); err != nil {
			return err
		}
	}
	return nil
}

// ClientOptions are the knobs both API clients share. Zero values get
// defaults.
type ClientOptions struct {
	// Transport carries the requests (see NewTransport); nil means a
	// production transport.
	Transport http.RoundTripper
	// Limiter replaces the default client-side rate limiter.
	Limiter Limiter
	// MaxAttempts per request, including the first (default 5).
	MaxAttempts int
	// Timeout per attempt (default 60 s; timeline pages can be slow).
	Timeout time.Duration
	// BaseBackoff is the first backoff ceiling (default 1 s); it doubles
	// per attempt, with full jitter.
	BaseBackoff time.Duration
	// MaxWait caps a single wait between attempts (default 2 min). A
	// Retry-After longer than this is an error rather than an early retry.
	MaxWait time.Duration
	// MaxBodyBytes caps a response body (default 256 MiB).
	MaxBodyBytes int64
	// UserAgent overrides the default User-Agent.
	UserAgent string
	// Logger receives retry and request logs (never secrets or queries).
	Logger *slog.Logger
	// Observe, when set, is told about every retry decision (metrics of
	// retries and throttling), labelled "portal", "public" or "legacy".
	Observe func(httpx.Attempt)
	// Sleep waits d or until ctx ends; tests inject a fake.
	Sleep func(ctx context.Context, d time.Duration) error
	// Skew, when set, is fed the Date header of every answer; share one
	// meter between all clients of a run.
	Skew *clock.SkewMeter
	// MaxInFlight caps the requests this client has in flight at once
	// (default DefaultMaxInFlight). The client's Pacer lowers the cap
	// while the API throttles and raises it back (see Pacer).
	MaxInFlight int
	// RaiseAfter is how many successes in a row raise a lowered cap by
	// one (default DefaultRaiseAfter).
	RaiseAfter int
	// Now reads the clock of the shared pause (default time.Now); tests
	// inject a fake together with Sleep.
	Now func() time.Time
}

const (
	defaultMaxAttempts = 5
	defaultTimeout     = 60 * time.Second
	defaultBaseBackoff = time.Second
	defaultMaxWait     = 2 * time.Minute
	defaultMaxBody     = 256 << 20
	browserUA          = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36 Edg/142.0.0.0"
)

func (o *ClientOptions) defaults() error {
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = defaultMaxAttempts
	}
	if o.Timeout <= 0 {
		o.Timeout = defaultTimeout
	}
	if o.BaseBackoff <= 0 {
		o.BaseBackoff = defaultBaseBackoff
	}
	if o.MaxWait <= 0 {
		o.MaxWait = defaultMaxWait
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = defaultMaxBody
	}
	if o.UserAgent == "" {
		o.UserAgent = browserUA
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Sleep == nil {
		o.Sleep = clock.Sleep
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.RaiseAfter <= 0 {
		o.RaiseAfter = DefaultRaiseAfter
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Transport == nil {
		t, err := NewTransport(TransportOptions{})
		if err != nil {
			return err
		}
		o.Transport = t
	}
	return nil
}

// family is what differs between the portal and the public API.
type family struct {
	name       string                    // "portal" or "public API"
	label      string                    // metrics label: portal, public, legacy
	allowHost  func(u *url.URL) bool     // may credentials go to u?
	authorize  func(*http.Request) error // puts credentials on the request
	authFailed func(status int) error    // 401/440/redirect → error
	forbidden  func(path string) string  // hint naming the likely missing role
	headers    func(h http.Header)       // family-specific headers
	htmlIsAuth bool                      // HTML body means "signed out"
	// maintain runs before every attempt (portal session upkeep); nil
	// when the credentials need none.
	maintain func(ctx context.Context) error
	// refresh renews credentials after an ErrSessionExpired answer; the
	// request is then sent once more. nil when they cannot be renewed.
	refresh func(ctx context.Context) error
	// unauthorized is the hint on a 401 the family does not treat as an
	// expired session.
	unauthorized string
	// rejected, when set, is told about the request whose bearer token
	// got a 401 (the token source drops that token); the request is then
	// sent once more with a new token. A second 401 is final.
	rejected func(r *http.Request)
	// proven, when set, is told after each request the API answered with
	// data (the portal session may then be cached).
	proven func()
	// throttled, when set, recognises the family's throttling answers
	// beyond 429 (retried with backoff, slowing the whole client).
	throttled func(status int, body []byte) bool
	// explain, when set, refines an error answer (hint by error code).
	explain func(e *APIError)
}

// doer sends requests for one API family with retries, limits and checks.
type doer struct {
	o      ClientOptions
	fam    family
	client *http.Client
	pace   *Pacer
}

func newDoer(o ClientOptions, fam family) (*doer, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	// Never follow a redirect: it would carry credentials elsewhere, and
	// for the portal it means the session is gone. The per-attempt
	// context bounds each request, body included.
	return &doer{o: o, fam: fam, client: httpx.NewClient(o.Transport, 0), pace: newPacer(o, fam.name, fam.label)}, nil
}

// do sends method u with an optional JSON body and returns the JSON
// response body. When the answer says the session is gone and the
// credentials can renew themselves, it renews them once and sends the
// request once more; a second rejection is final.
func (d *doer) do(ctx context.Context, method string, u *url.URL, body []byte) ([]byte, error) {
	return d.doHeader(ctx, method, u, body, nil)
}

// doHeader is do that also stores the successful answer's headers in hdr
// (when not nil), for APIs that page with a response header.
func (d *doer) doHeader(ctx context.Context, method string, u *url.URL, body []byte, hdr *http.Header) ([]byte, error) {
	out, err := d.send(ctx, method, u, body, hdr)
	if err == nil && d.fam.proven != nil {
		d.fam.proven()
	}
	return out, err
}

// send is do without telling the family that the credentials worked.
func (d *doer) send(ctx context.Context, method string, u *url.URL, body []byte, hdr *http.Header) ([]byte, error) {
	if !d.fam.allowHost(u) {
		return nil, fmt.Errorf("%s %s: %w: credentials are only sent to the Defender hosts", d.fam.name, u.Host, ErrHostNotAllowed)
	}
	out, err := d.retrying(ctx, method, u, body, hdr)
	var tr *tokenRejected
	if err != nil && errors.As(err, &tr) && ctx.Err() == nil {
		d.o.Logger.LogAttrs(ctx, slog.LevelInfo, "access token rejected (HTTP 401); retrying once with a new token",
			slog.String("api", d.fam.name), slog.String("request", method+" "+u.Path))
		return d.retrying(ctx, method, u, body, hdr)
	}
	if err == nil || d.fam.refresh == nil || !errors.Is(err, ErrSessionExpired) || ctx.Err() != nil {
		return out, err
	}
	where := method + " " + u.Path
	d.o.Logger.LogAttrs(ctx, slog.LevelInfo, "portal session rejected; renewing it and retrying once",
		slog.String("api", d.fam.name), slog.String("request", where))
	if rerr := d.fam.refresh(ctx); rerr != nil {
		return nil, fmt.Errorf("%s %s: renewing the rejected session failed: %w (%w)", d.fam.name, where, rerr, ErrSessionExpired)
	}
	out, err = d.retrying(ctx, method, u, body, hdr)
	if err != nil && errors.Is(err, ErrSessionExpired) {
		return nil, fmt.Errorf("%s %s: %w; it was renewed and the portal still refused it: sign in again (new cookies or ESTS cookie) with an account that can open security.microsoft.com for this tenant", d.fam.name, where, ErrSessionExpired)
	}
	return out, err
}

// retrying sends the request with pacing, rate limiting, upkeep and
// retries of transient failures. Every attempt holds a slot of the
// client's Pacer from before it is sent until its body is read; a
// throttled answer lowers the pacer's limit and pauses the whole client
// (see Pacer), not only this request.
func (d *doer) retrying(ctx context.Context, method string, u *url.URL, body []byte, hdr *http.Header) ([]byte, error) {
	where := method + " " + u.Path
	var lastErr error
	var waited time.Time // end of a shared pause this request already slept through
	notExposedSeen := false
	for attempt := 1; ; attempt++ {
		tk, err := d.pace.acquire(ctx, waited)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%s %s: waiting for the API's throttling to end: %w", d.fam.name, where, ctx.Err())
			}
			return nil, fmt.Errorf("%s %s: %w", d.fam.name, where, err)
		}
		if d.o.Limiter != nil {
			if err := d.o.Limiter.Wait(ctx); err != nil {
				d.pace.release(ctx, &tk, false)
				return nil, fmt.Errorf("%s %s: waiting for the client-side rate limit: %w", d.fam.name, where, err)
			}
		}
		if d.fam.maintain != nil {
			if err := d.fam.maintain(ctx); err != nil {
				d.pace.release(ctx, &tk, false)
				if ctx.Err() != nil {
					return nil, fmt.Errorf("%s %s: %w", d.fam.name, where, ctx.Err())
				}
				return nil, fmt.Errorf("%s %s: %w: %w", d.fam.name, where, ErrSessionUpkeep, err)
			}
		}
		out, retryAfter, err := d.once(ctx, method, u, body, hdr)
		if err == nil {
			d.pace.release(ctx, &tk, true)
			return out, nil
		}
		if ctx.Err() != nil {
			d.pace.release(ctx, &tk, false)
			return nil, fmt.Errorf("%s %s: %w", d.fam.name, where, ctx.Err())
		}
		lastErr = err
		var re *retryable
		if !errors.As(err, &re) {
			d.pace.release(ctx, &tk, false)
			return nil, fmt.Errorf("%s %s: %w", d.fam.name, where, err)
		}
		wait := httpx.Backoff(attempt, d.o.BaseBackoff, d.o.MaxWait)
		if retryAfter > 0 {
			wait = retryAfter
		}
		throttled := re.throttle || retryAfter > 0 || errors.Is(re.err, ErrThrottled)
		if re.notExposed {
			// The timeline's 403 "not exposed" may as well be a scope
			// miss of this one device: it lowers the limit once per
			// request and pauses nobody else.
			throttled = !notExposedSeen
			notExposedSeen = true
		}
		if throttled {
			// The whole client slows down: a 429 (or a Retry-After) pauses
			// every new request for the wait.
			pause := wait
			if re.notExposed {
				pause = 0
			}
			waited = d.pace.throttled(ctx, &tk, pause, re.err.Error())
		} else {
			d.pace.release(ctx, &tk, false)
		}
		maxAttempts := d.o.MaxAttempts
		if re.notExposed {
			maxAttempts = min(maxAttempts, notExposedAttempts)
		}
		if attempt >= maxAttempts {
			d.observe(attempt, re, retryAfter, false, 0)
			return nil, fmt.Errorf("%s %s: giving up after %d attempts: %w", d.fam.name, where, attempt, re.err)
		}
		if retryAfter > d.o.MaxWait {
			d.observe(attempt, re, retryAfter, false, 0)
			return nil, fmt.Errorf("%s %s: server asked to wait %s, more than the configured maximum %s; try again later: %w", d.fam.name, where, retryAfter, d.o.MaxWait, re.err)
		}
		d.observe(attempt, re, retryAfter, true, wait)
		d.o.Logger.LogAttrs(ctx, levelFor(attempt), "retrying request",
			slog.String("api", d.fam.name), slog.String("request", where),
			slog.Int("attempt", attempt), slog.Duration("wait", wait), slog.String("reason", re.err.Error()))
		if err := d.o.Sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("%s %s: %w (last error: %v)", d.fam.name, where, err, lastErr)
		}
	}
}

// notExposedAttempts bounds the attempts of a timeline request answered
// 403 "User is not exposed to machine": the portal says so when it
// throttles, and also when the device is outside the account's device
// groups, which no retry fixes.
const notExposedAttempts = 3

// observe reports one retry decision to ClientOptions.Observe.
func (d *doer) observe(n int, re *retryable, retryAfter time.Duration, retry bool, wait time.Duration) {
	if d.o.Observe == nil {
		return
	}
	err := re.err
	a := httpx.Attempt{Label: d.fam.label, N: n, Retry: retry, Wait: wait, Class: "network", Limit: d.pace.Limit()}
	var ae *APIError
	switch {
	case errors.As(err, &ae):
		a.Status, a.Class = ae.Status, httpx.StatusClass(ae.Status)
		a.Throttled = ae.Status == http.StatusTooManyRequests || retryAfter > 0 || re.throttle
	case errors.Is(err, httpx.ErrTimeout):
		a.Class = "timeout"
	}
	d.o.Observe(a)
}

func levelFor(attempt int) slog.Level {
	if attempt >= 2 {
		return slog.LevelWarn
	}
	return slog.LevelDebug
}

// retryable marks an attempt error worth another try.
type retryable struct {
	err error
	// throttle: the answer asks the client to slow down (besides 429 and
	// Retry-After, which the doer sees itself).
	throttle bool
	// notExposed: the timeline's 403 "User is not exposed to machine",
	// retried as throttling at most notExposedAttempts times.
	notExposed bool
}

func (r *retryable) Error() string { return r.err.Error() }
func (r *retryable) Unwrap() error { return r.err }

func (d *doer) once(ctx context.Context, method string, u *url.URL, body []byte, hdr *http.Header) (_ []byte, retryAfter time.Duration, _ error) {
	actx, cancel := context.WithTimeout(ctx, d.o.Timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(actx, method, u.String(), rd)
	if err != nil {
		return nil, 0, fmt.Errorf("building request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", d.o.UserAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if d.fam.headers != nil {
		d.fam.headers(req.Header)
	}
	if err := d.fam.authorize(req); err != nil {
		return nil, 0, err
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, 0, d.transportErr(ctx, actx, err, u.Host, false)
	}
	d.o.Skew.ObserveHeader(resp.Header, time.Now())
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, d.o.MaxBodyBytes+1))
	if err != nil {
		return nil, 0, d.transportErr(ctx, actx, err, u.Host, true)
	}
	if int64(len(data)) > d.o.MaxBodyBytes {
		return nil, 0, fmt.Errorf("%w (%d bytes): narrow the window or page size", ErrTooLarge, d.o.MaxBodyBytes)
	}
	out, ra, err := d.check(u, resp, data)
	if err == nil && hdr != nil {
		*hdr = resp.Header.Clone()
	}
	var ae *APIError
	if err != nil && d.fam.rejected != nil && errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
		d.fam.rejected(req)
		err = &tokenRejected{err}
	}
	return out, ra, err
}

// tokenRejected marks a 401 whose token the source dropped: send tries
// the request once more with a new token. It reads as the 401 itself.
type tokenRejected struct{ err error }

func (t *tokenRejected) Error() string { return t.err.Error() }
func (t *tokenRejected) Unwrap() error { return t.err }

// transportErr classifies a network failure (httpx.AttemptError).
// Timeouts, resets, truncated bodies and HTTP/2 stream resets are
// transient and retried; failures that a retry cannot fix — the
// certificate is not trusted, the host name does not resolve — are final,
// so the user hears about them at once.
func (d *doer) transportErr(parent, attempt context.Context, err error, host string, reading bool) error {
	if parent.Err() != nil {
		return parent.Err()
	}
	err = httpx.AttemptError(attempt, err, host, d.o.Timeout, reading)
	if httpx.Final(err) {
		return err
	}
	return &retryable{err: err}
}

// notExposed reports the timeline's 403 "User is not exposed to machine"
// (portal proxy and legacy timeline routes).
func notExposed(path string, body []byte) bool {
	if !strings.Contains(path, "/mdeTimelineExperience/") && !strings.Contains(strings.ToLower(path), "/detection/experience/timeline") {
		return false
	}
	return bytes.Contains(bytes.ToLower(body), []byte("not exposed to machine"))
}

// check turns a response into JSON bytes or an error.
func (d *doer) check(u *url.URL, resp *http.Response, data []byte) ([]byte, time.Duration, error) {
	st := resp.StatusCode
	switch {
	case st >= 300 && st < 400:
		if err := d.fam.authFailed(st); err != nil {
			return nil, 0, err
		}
		loc, _ := url.Parse(resp.Header.Get("Location"))
		host := ""
		if loc != nil {
			host = loc.Host
		}
		return nil, 0, fmt.Errorf("%w (HTTP %d to host %q)", ErrRedirect, st, host)
	case st == 401 || st == 419 || st == 440:
		if err := d.fam.authFailed(st); err != nil {
			return nil, 0, err
		}
		return nil, 0, d.apiError(u, st, data)
	case d.fam.throttled != nil && d.fam.throttled(st, data):
		// The family's own throttling answer (the Management Activity
		// API's AF429, sent with HTTP 403 as well as 429).
		ra, _ := httpx.RetryAfter(resp.Header, time.Now())
		return nil, ra, &retryable{err: d.apiError(u, st, data), throttle: true}
	case st == http.StatusForbidden && notExposed(u.Path, data):
		// The portal answers so when it throttles the timeline, and when
		// the device is out of the account's scope: retried a few times,
		// as throttling.
		return nil, 0, &retryable{err: d.apiError(u, st, data), throttle: true, notExposed: true}
	case httpx.RetryableStatus(st):
		ra, _ := httpx.RetryAfter(resp.Header, time.Now())
		return nil, ra, &retryable{err: d.apiError(u, st, data), throttle: httpx.Throttling(st, resp.Header)}
	case st < 200 || st >= 300:
		return nil, 0, d.apiError(u, st, data)
	}
	ct := strings.ToLower(resp.Header.Get("Content-Type"))
	trimmed := bytes.TrimSpace(data)
	if strings.Contains(ct, "text/html") || looksHTML(trimmed) {
		if d.fam.htmlIsAuth {
			return nil, 0, ErrSessionExpired
		}
		return nil, 0, fmt.Errorf("%w: got an HTML page (HTTP %d)", ErrNotJSON, st)
	}
	if len(trimmed) == 0 {
		return nil, 0, fmt.Errorf("%w: empty body (HTTP %d)", ErrNotJSON, st)
	}
	if !jsonValid(trimmed) {
		return nil, 0, fmt.Errorf("%w: body is not valid JSON (HTTP %d, %d bytes; truncated?)", ErrNotJSON, st, len(data))
	}
	return data, 0, nil
}

func looksHTML(b []byte) bool {
	if len(b) == 0 || b[0] != '<' {
		return false
	}
	// JSON never starts with '<'; any markup (HTML sign-in page, XML
	// error) is not data.
	return true
}

func (d *doer) apiError(u *url.URL, st int, data []byte) *APIError {
	e := &APIError{Status: st, kind: kindFor(st)}
	if code, msg, target, ok := ParseErrorEnvelope(data); ok {
		e.Code, e.Message, e.Target = code, msg, target
	} else if len(data) > 0 && !looksHTML(bytes.TrimSpace(data)) {
		e.Message = clean(string(data), 200)
	}
	switch {
	case st == 401:
		e.Hint = d.fam.unauthorized
	case st == 403:
		e.Hint = d.fam.forbidden(u.Path)
	case st == 404:
		e.Hint = "the endpoint or object does not exist for this tenant (feature not enabled or API moved)"
	case st == 429:
		e.Hint = "the API's rate limit was hit; lower the request rate or run less often"
	case st >= 500:
		e.Hint = "the service failed; it is usually transient, try again later"
	case st == 400:
		e.Hint = "the request was rejected; check the window size and page size for this source"
	}
	if d.fam.explain != nil {
		d.fam.explain(e)
	}
	return e
}
