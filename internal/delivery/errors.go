package delivery

import (
	"errors"
	"time"
)

// kind is how the helper reacts to a failed request.
type kind int

const (
	kindPermanent kind = iota + 1
	kindRetryAfter
	kindTooLarge
)

// classified carries a SendFunc's verdict on a failure; it unwraps to the
// original error so callers can still match it with errors.Is/As.
type classified struct {
	err   error
	kind  kind
	after time.Duration
}

func (c *classified) Error() string { return c.err.Error() }
func (c *classified) Unwrap() error { return c.err }

// Permanent marks err as one that retrying cannot fix (400 schema error,
// 401/403 auth, unknown index…). Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &classified{err: err, kind: kindPermanent}
}

// RetryAfter marks err as transient with the server asking to wait d
// before the next attempt (429/503 Retry-After). The helper waits d even
// when it is minutes long. RetryAfter(nil, d) is nil.
func RetryAfter(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	if d < 0 {
		d = 0
	}
	return &classified{err: err, kind: kindRetryAfter, after: d}
}

// TooLarge marks err as "request body too large" (HTTP 413): the helper
// splits the request in two and sends each half. TooLarge(nil) is nil.
func TooLarge(err error) error {
	if err == nil {
		return nil
	}
	return &classified{err: err, kind: kindTooLarge}
}

// IsPermanent reports whether err (or an error it wraps) was marked with
// Permanent.
func IsPermanent(err error) bool { return kindOf(err) == kindPermanent }

// kindOf returns the outermost classification in err's chain, 0 when the
// error is unclassified (treated as transient).
func kindOf(err error) kind {
	var c *classified
	if errors.As(err, &c) {
		return c.kind
	}
	return 0
}

func retryAfterOf(err error) (time.Duration, bool) {
	var c *classified
	if errors.As(err, &c) && c.kind == kindRetryAfter {
		return c.after, true
	}
	return 0, false
}
