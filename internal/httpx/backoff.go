package httpx

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// BackoffCeil is the exponential ceiling of the wait before retry number
// attempt (1 = after the first failure): base·2^(attempt-1), at most max.
func BackoffCeil(attempt int, base, max time.Duration) time.Duration {
	if base <= 0 {
		return 0
	}
	ceil := base
	for i := 1; i < attempt && ceil < max; i++ {
		ceil *= 2
	}
	if max > 0 && ceil > max {
		ceil = max
	}
	return ceil
}

// Backoff is full jitter: a uniformly random wait in
// [0, BackoffCeil(attempt, base, max)], so clients that failed together
// do not retry together.
func Backoff(attempt int, base, max time.Duration) time.Duration {
	ceil := BackoffCeil(attempt, base, max)
	if ceil <= 0 {
		return 0
	}
	return rand.N(ceil + 1)
}

// MaxRetryAfter bounds what RetryAfter returns: a server asking for more
// than a day is treated as asking for a day.
const MaxRetryAfter = 24 * time.Hour

// RetryAfter reads how long the server asked to wait: retry-after-ms or
// x-ms-retry-after-ms (Azure), else Retry-After in seconds or as an HTTP
// date (relative to now; a past date means 0). ok is false when no header
// holds a usable value. The result is at most MaxRetryAfter.
func RetryAfter(h http.Header, now time.Time) (d time.Duration, ok bool) {
	if h == nil {
		return 0, false
	}
	for _, k := range []string{"retry-after-ms", "x-ms-retry-after-ms"} {
		if ms, err := strconv.ParseInt(strings.TrimSpace(h.Get(k)), 10, 64); err == nil && ms >= 0 {
			return min(time.Duration(min(ms, int64(MaxRetryAfter/time.Millisecond)))*time.Millisecond, MaxRetryAfter), true
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s < 0 {
			return 0, false
		}
		return time.Duration(min(s, int64(MaxRetryAfter/time.Second))) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), MaxRetryAfter), true
	}
	return 0, false
}
