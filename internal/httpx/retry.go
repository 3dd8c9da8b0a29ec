package httpx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/clock"
)

// Defaults of Policy, the same as the config's http.* keys.
const (
	DefaultTimeout     = 60 * time.Second
	DefaultMaxAttempts = 5
	DefaultBackoff     = time.Second
	DefaultMaxWait     = 2 * time.Minute
	DefaultMaxBody     = 4 << 20
)

// Policy bounds one logical request: how long each attempt may take, how
// often it is tried and how long to wait in between. Zero fields get the
// defaults above.
type Policy struct {
	// Timeout bounds each attempt, body included (config http.timeout).
	Timeout time.Duration
	// MaxAttempts includes the first (config http.max_attempts).
	MaxAttempts int
	// Backoff is the first backoff ceiling; it doubles per attempt, with
	// full jitter (config http.backoff).
	Backoff time.Duration
	// MaxWait caps one wait; a longer Retry-After fails the request
	// instead of retrying early (config http.max_wait).
	MaxWait time.Duration
	// MaxBody caps an answer's body (default 4 MiB).
	MaxBody int64
	// Sleep waits between attempts; tests inject a fake.
	Sleep func(ctx context.Context, d time.Duration) error
	// Skew, when set, is fed the Date header of every answer.
	Skew *clock.SkewMeter
	// Logger receives one line per retry (never a URL query or a secret).
	Logger *slog.Logger
	// Label names the API family the policy serves in Observe's reports
	// ("portal", "public", "sentinel", "splunk", "entra"); whoever builds
	// the policy sets it.
	Label string
	// Observe, when set, is told about every retry decision (metrics).
	// It runs on the request's goroutine and must return quickly.
	Observe func(Attempt)
}

// Attempt is one retry decision of Policy.Do: a failed attempt that was
// worth another (a retryable status or transport failure), and whether
// another follows. It holds no URL, host or secret.
type Attempt struct {
	Label string // Policy.Label
	N     int    // which attempt failed, 1 for the first
	// Status is the answer's HTTP status, 0 when there was none.
	Status int
	// Class is the status class ("4xx", "5xx"), or "timeout" / "network"
	// when no answer came.
	Class string
	// Throttled says the server asked us to slow down (see Throttling).
	Throttled bool
	// Retry says another attempt follows (after Wait); false when Do
	// gives up: attempts used up, or a Retry-After beyond MaxWait.
	Retry bool
	Wait  time.Duration
	// Limit is the client's concurrency limit after this decision (the
	// mde clients' pacer lowers it while the API throttles); 0 when the
	// client has none (Policy.Do).
	Limit int
}

// StatusClass is "1xx" … "5xx" for a status, "" for anything else.
func StatusClass(code int) string {
	if code < 100 || code > 599 {
		return ""
	}
	return string(rune('0'+code/100)) + "xx"
}

// Throttling reports an answer that asks the client to slow down: 429, or
// a retryable status (503 mostly) with a Retry-After header.
func Throttling(code int, h http.Header) bool {
	return code == http.StatusTooManyRequests || (RetryableStatus(code) && h.Get("Retry-After") != "")
}

// failureClass names a transport failure for Attempt.Class.
func failureClass(err error) string {
	if errors.Is(err, ErrTimeout) {
		return "timeout"
	}
	return "network"
}

// observe reports a decision; a nil hook costs one comparison.
func (p Policy) observe(a Attempt) {
	if p.Observe != nil {
		a.Label = p.Label
		p.Observe(a)
	}
}

// WithDefaults fills the zero fields.
func (p Policy) WithDefaults() Policy {
	if p.Timeout <= 0 {
		p.Timeout = DefaultTimeout
	}
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.Backoff <= 0 {
		p.Backoff = DefaultBackoff
	}
	if p.MaxWait <= 0 {
		p.MaxWait = DefaultMaxWait
	}
	if p.MaxBody <= 0 {
		p.MaxBody = DefaultMaxBody
	}
	if p.Sleep == nil {
		p.Sleep = clock.Sleep
	}
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	return p
}

// Do sends the request build makes (once per attempt, with that
// attempt's context, so a body is fresh each time) and returns the answer
// with its whole body read; resp.Body is already closed. Connection
// failures, per-attempt timeouts and 429/500/502/503/504 answers are
// retried with full-jitter backoff or the server's Retry-After, up to
// MaxAttempts. Any other answer, redirects included, is returned as it is
// for the caller to judge. what names the request in errors and logs
// (e.g. "portal root security.microsoft.com"): no query, no secret.
//
// When the last attempt still got a retryable status, Do returns that
// answer and an error wrapping *StatusError.
func (p Policy) Do(ctx context.Context, c *http.Client, what string, build func(ctx context.Context) (*http.Request, error)) (*http.Response, []byte, error) {
	p = p.WithDefaults()
	// The attempt's context is the one timeout, so its error can say
	// which limit ran out; the client's own Timeout would race it.
	cc := *c
	cc.Timeout = 0
	c = &cc
	for attempt := 1; ; attempt++ {
		resp, body, retry, err := p.once(ctx, c, build)
		if ctx.Err() != nil {
			return nil, nil, fmt.Errorf("%s: %w", what, ctx.Err())
		}
		if err == nil && !RetryableStatus(resp.StatusCode) {
			return resp, body, nil
		}
		if err != nil && !retry {
			return nil, nil, fmt.Errorf("%s: %w", what, err)
		}
		var wait time.Duration
		a := Attempt{N: attempt}
		if err == nil {
			err = &StatusError{Code: resp.StatusCode}
			a.Status, a.Class, a.Throttled = resp.StatusCode, StatusClass(resp.StatusCode), Throttling(resp.StatusCode, resp.Header)
			if ra, ok := RetryAfter(resp.Header, time.Now()); ok {
				if ra > p.MaxWait {
					p.observe(a)
					return resp, body, fmt.Errorf("%s: the server asked to wait %s, more than the configured maximum %s (http.max_wait); try again later: %w", what, ra, p.MaxWait, err)
				}
				wait = ra
			}
		} else {
			a.Class = failureClass(err)
		}
		if attempt >= p.MaxAttempts {
			p.observe(a)
			return resp, body, fmt.Errorf("%s: giving up after %d attempts: %w", what, attempt, err)
		}
		if wait == 0 {
			wait = Backoff(attempt, p.Backoff, p.MaxWait)
		}
		a.Retry, a.Wait = true, wait
		p.observe(a)
		level := slog.LevelDebug
		if attempt >= 2 {
			level = slog.LevelWarn
		}
		p.Logger.LogAttrs(ctx, level, "retrying request", slog.String("request", what),
			slog.Int("attempt", attempt), slog.Duration("wait", wait), slog.String("reason", err.Error()))
		if serr := p.Sleep(ctx, wait); serr != nil {
			return nil, nil, fmt.Errorf("%s: %w (last error: %v)", what, serr, err)
		}
	}
}

// once makes one attempt under its own timeout.
func (p Policy) once(ctx context.Context, c *http.Client, build func(ctx context.Context) (*http.Request, error)) (_ *http.Response, _ []byte, retry bool, _ error) {
	actx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	req, err := build(actx)
	if err != nil {
		return nil, nil, false, err
	}
	host := req.URL.Host
	resp, err := c.Do(req)
	if err != nil {
		err = AttemptError(actx, err, host, p.Timeout, false)
		return nil, nil, !Final(err), err
	}
	p.Skew.ObserveHeader(resp.Header, time.Now())
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, p.MaxBody+1))
	if err != nil {
		err = AttemptError(actx, err, host, p.Timeout, true)
		return nil, nil, !Final(err), err
	}
	if int64(len(body)) > p.MaxBody {
		return nil, nil, false, fmt.Errorf("the answer from %s is larger than %d bytes", host, p.MaxBody)
	}
	resp.Body = http.NoBody
	return resp, body, false, nil
}
