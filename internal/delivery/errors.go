package delivery

import (
	"errors"
	"time"
)

// kind is how the helper reacts to a failed request.
type kind int

const (
	kindPermanent kind = iota + 1
	kindRejected
	kindRetryAfter
	kindTooLarge
)

// classified carries a SendFunc's verdict on a failure; it unwraps to the
// original error so callers can still match it with errors.Is/As.
type classified struct {
	err   error
	kind  kind
	after time.Duration
	at    int // kindRejected: index of the refused record, -1 when unknown
}

func (c *classified) Error() string { return c.err.Error() }
func (c *classified) Unwrap() error { return c.err }

// Permanent marks err as a refusal of the request itself that retrying
// cannot fix and that says nothing about the records: credentials,
// permissions, endpoint, data collection rule or stream, index, channel,
// configuration. It is never a reason to dead-letter: the Write fails,
// whatever the number of records, so the pipeline spools or stops and the
// records are sent again once the setting is fixed. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &classified{err: err, kind: kindPermanent, at: -1}
}

// Rejected marks err as a refusal that belongs to the records themselves
// (their format or schema), without saying which record. A request of one
// record is then dead-lettered; a larger one is halved to find the record
// (see the package README). Rejected(nil) is nil.
func Rejected(err error) error {
	if err == nil {
		return nil
	}
	return &classified{err: err, kind: kindRejected, at: -1}
}

// RejectedAt marks err as the refusal of record n (0-based) of the request
// for its own format, the records before it having been accepted (Splunk
// HEC code 6 with invalid-event-number n). The helper counts records
// 0..n-1 as delivered, dead-letters record n and sends only the records
// after it. An n outside the request is treated as Rejected.
// RejectedAt(nil, n) is nil.
func RejectedAt(err error, n int) error {
	if err == nil {
		return nil
	}
	if n < 0 {
		n = -1
	}
	return &classified{err: err, kind: kindRejected, at: n}
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
	return &classified{err: err, kind: kindRetryAfter, after: d, at: -1}
}

// TooLarge marks err as "request body too large" (HTTP 413): the helper
// splits the request in two and sends each half. TooLarge(nil) is nil.
func TooLarge(err error) error {
	if err == nil {
		return nil
	}
	return &classified{err: err, kind: kindTooLarge, at: -1}
}

// IsPermanent reports whether err (or an error it wraps) was marked with
// Permanent: a request-level refusal.
func IsPermanent(err error) bool { return kindOf(err) == kindPermanent }

// IsRejected reports whether err (or an error it wraps) was marked with
// Rejected or RejectedAt: a refusal of records for their own content.
func IsRejected(err error) bool { return kindOf(err) == kindRejected }

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

// rejectedAt returns the index RejectedAt named, -1 when none.
func rejectedAt(err error) int {
	var c *classified
	if errors.As(err, &c) && c.kind == kindRejected {
		return c.at
	}
	return -1
}
