package sim

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ---- query helpers ----

// param reads a query parameter case-insensitively (ASP.NET binding).
func param(q *req, name string) (string, bool) {
	for k, v := range q.r.URL.Query() {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0], true
		}
	}
	return "", false
}

// intParam parses an integer parameter; bad input is a 400 written here.
func intParam(q *req, name string, def, min int) (int, bool) {
	s, ok := param(q, name)
	if !ok || s == "" {
		return def, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < min {
		q.svc.fail(q, http.StatusBadRequest, "BadRequest", fmt.Sprintf("The value '%s' is not valid for %s: use an integer of at least %d.", s, name, min))
		return 0, false
	}
	return n, true
}

func timeParam(q *req, name string) (time.Time, bool, bool) {
	s, ok := param(q, name)
	if !ok || s == "" {
		return time.Time{}, false, true
	}
	tm, err := parseTimeParam(s)
	if err != nil {
		q.svc.fail(q, http.StatusBadRequest, "BadRequest", fmt.Sprintf("The value '%s' is not valid for %s: use an ISO-8601 UTC date-time such as 2025-11-18T10:00:00.000Z.", s, name))
		return time.Time{}, false, false
	}
	return tm, true, true
}

func sortOrderParam(q *req, def string) (desc bool, ok bool) {
	s, present := param(q, "sortOrder")
	if !present || s == "" {
		s = def
	}
	switch strings.ToLower(s) {
	case "ascending":
		return false, true
	case "descending":
		return true, true
	}
	q.svc.fail(q, http.StatusBadRequest, "BadRequest", fmt.Sprintf("The value '%s' is not valid for sortOrder: use Ascending or Descending.", s))
	return false, false
}

func page[T any](xs []T, index, size int) []T {
	lo := (index - 1) * size
	if lo >= len(xs) || lo < 0 {
		return []T{}
	}
	hi := lo + size
	if hi > len(xs) {
		hi = len(xs)
	}
	return xs[lo:hi]
}

// pageParams reads pageIndex (1-based) and pageSize (default def) of a
// portal list, caps pageSize at max as the service does, then applies the
// route's emulated clamp. ok is false when the answer (400) was written.
func (t *Tenant) pageParams(q *req, route string, def, max int) (idx, size int, ok bool) {
	if idx, ok = intParam(q, "pageIndex", 1, 1); !ok {
		return 0, 0, false
	}
	if size, ok = intParam(q, "pageSize", def, 1); !ok {
		return 0, 0, false
	}
	return idx, t.clamp(route, min(size, max)), true
}
