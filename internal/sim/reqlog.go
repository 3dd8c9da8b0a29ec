package sim

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// requestLog writes one line per request (Options.RequestLog, `simulate
// --log-requests`). It prints only what cannot carry a secret: tokens,
// cookies, device codes and client secrets travel in headers, bodies and
// query values, so those are never printed; query parameters appear by
// name only.
type requestLog struct {
	mu sync.Mutex
	w  io.Writer
}

func newRequestLog(w io.Writer) *requestLog {
	if w == nil {
		return nil
	}
	return &requestLog{w: w}
}

// write prints: time (wall clock, UTC), method, host, escaped path, query
// parameter names, status (0 = connection dropped), response body bytes
// and duration.
func (l *requestLog) write(began time.Time, r *http.Request, host string, sw *statusWriter) {
	line := fmt.Sprintf("%s %s %s %s query=%s status=%d bytes=%d duration=%s\n",
		began.UTC().Format("2006-01-02T15:04:05.000Z"), safeToken(r.Method), safeToken(host), r.URL.EscapedPath(),
		queryNames(r.URL.RawQuery), sw.status, sw.bytes, time.Since(began).Round(time.Microsecond))
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = io.WriteString(l.w, line)
}

// queryNames lists the distinct parameter names of a raw query, sorted and
// escaped ("-" for none); values are dropped before anything is printed.
func queryNames(raw string) string {
	seen := map[string]bool{}
	var names []string
	for _, part := range strings.Split(raw, "&") {
		k, _, _ := strings.Cut(part, "=")
		if k == "" {
			continue
		}
		if u, err := url.QueryUnescape(k); err == nil {
			k = u
		}
		k = url.QueryEscape(k)
		if !seen[k] {
			seen[k] = true
			names = append(names, k)
		}
	}
	if len(names) == 0 {
		return "-"
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

// safeToken keeps a request-supplied word on one line.
func safeToken(s string) string {
	if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Sprintf("%q", s)
	}
	return s
}
