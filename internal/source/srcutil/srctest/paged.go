package srctest

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// PagedList is a fake list endpoint paged by pageIndex/pageSize the ways a
// portal service may page: it can clamp the page size below what is asked,
// count page offsets in the size served or the size asked, report a total
// that is right, stale (low) or too high, or none, and wrap the rows in any
// envelope.
type PagedList struct {
	Rows  []string // JSON objects, in list order
	Clamp int      // largest page served; 0: as asked
	// OffsetByAsked counts page offsets in the size asked rather than the
	// size served (both are plausible for a clamping service).
	OffsetByAsked bool
	// Envelope is the member holding the rows; "" serves a bare array.
	Envelope string
	// TotalKey names the total member ("Count"); "" reports no total.
	// The total is len(Rows)+TotalDelta.
	TotalKey   string
	TotalDelta int
	// Check, if set, sees every request (e.g. to check the query).
	Check func(r *http.Request)

	mu   sync.Mutex
	reqs []string
}

// ServeHTTP serves one page.
func (p *PagedList) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.Check != nil {
		p.Check(r)
	}
	q := r.URL.Query()
	idx, err1 := strconv.Atoi(q.Get("pageIndex"))
	size, err2 := strconv.Atoi(q.Get("pageSize"))
	if err1 != nil || err2 != nil || idx < 1 || size < 1 {
		http.Error(w, `{"error":"bad paging"}`, http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	p.reqs = append(p.reqs, fmt.Sprintf("%d/%d", idx, size))
	p.mu.Unlock()
	served := size
	if p.Clamp > 0 && served > p.Clamp {
		served = p.Clamp
	}
	off := (idx - 1) * served
	if p.OffsetByAsked {
		off = (idx - 1) * size
	}
	var page []string
	for i := off; i < off+served && i < len(p.Rows); i++ {
		page = append(page, p.Rows[i])
	}
	body := "[" + strings.Join(page, ",") + "]"
	if p.Envelope != "" || p.TotalKey != "" {
		var members []string
		if p.TotalKey != "" {
			members = append(members, fmt.Sprintf("%q:%d", p.TotalKey, len(p.Rows)+p.TotalDelta))
		}
		env := p.Envelope
		if env == "" {
			env = "Results"
		}
		members = append(members, fmt.Sprintf("%q:%s", env, body))
		body = "{" + strings.Join(members, ",") + "}"
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(body))
}

// Requests returns the pages asked so far as "pageIndex/pageSize".
func (p *PagedList) Requests() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.reqs, ",")
}
