package sim

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	tlDefaultPage = 200
	tlMaxPage     = 1000
	tlMaxWindow   = 30 * 24 * time.Hour
)

// tlControl are the parameters the continuation links set themselves.
var tlControl = []string{"fromDate", "toDate", "ReportIdForScrolling", "IsScrollingForward"}

// hTimeline serves one page of a device timeline (decision 4): events in
// [fromDate, toDate], newest first; Prev continues keyset-wise with the
// older rest of the same window.
func (t *Tenant) hTimeline(q *req) {
	m, ok := t.w.machine(q.vars["id"])
	if !ok {
		q.svc.fail(q, http.StatusNotFound, "NotFound", fmt.Sprintf("Machine %s was not found.", q.vars["id"]))
		return
	}
	if mid, ok := param(q, "machineId"); ok && mid != "" && !strings.EqualFold(mid, m.ID) {
		q.svc.fail(q, http.StatusBadRequest, "BadRequest", "The machineId parameter does not match the machine in the path.")
		return
	}
	size, ok := intParam(q, "pageSize", tlDefaultPage, 1)
	if !ok {
		return
	}
	if size > tlMaxPage {
		q.svc.fail(q, http.StatusBadRequest, "BadRequest", fmt.Sprintf("pageSize %d is too large: the maximum is %d.", size, tlMaxPage))
		return
	}
	size = t.clamp(RouteTimeline, size)
	// The service's time per page; a client that gives up ends the wait.
	if !sleepCtx(q.r.Context(), t.opts.PageLatency) {
		return
	}
	to, hasTo, ok := timeParam(q, "toDate")
	if !ok {
		return
	}
	from, hasFrom, ok := timeParam(q, "fromDate")
	if !ok {
		return
	}
	if !hasTo {
		to = q.now
	}
	if !hasFrom {
		from = to.Add(-24 * time.Hour)
	}
	switch {
	case to.Before(from):
		q.svc.fail(q, http.StatusBadRequest, "BadRequest", "fromDate must not be later than toDate.")
		return
	case to.Sub(from) > tlMaxWindow:
		q.svc.fail(q, http.StatusBadRequest, "BadRequest", "The time range between fromDate and toDate must not exceed 30 days.")
		return
	}
	var rid int64
	hasRID := false
	if s, ok := param(q, "ReportIdForScrolling"); ok && s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			q.svc.fail(q, http.StatusBadRequest, "BadRequest", fmt.Sprintf("The value '%s' is not valid for ReportIdForScrolling.", s))
			return
		}
		rid, hasRID = n, true
	}
	forward := false
	if s, ok := param(q, "IsScrollingForward"); ok && s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			q.svc.fail(q, http.StatusBadRequest, "BadRequest", fmt.Sprintf("The value '%s' is not valid for IsScrollingForward.", s))
			return
		}
		forward = b
	}

	in := func(e tlEvent) bool {
		if e.at.Before(from) || e.at.After(to) || e.visible.After(q.now) {
			return false
		}
		if !hasRID {
			return true
		}
		if forward {
			return e.at.After(from) || e.rid > rid
		}
		return e.at.Before(to) || e.rid < rid
	}
	upper := to
	if upper.After(q.now) {
		upper = q.now
	}
	var items []tlEvent
	for h := hourOf(upper); h >= hourOf(from) && len(items) <= size; h-- {
		for _, e := range t.timeline(m.ID, h) {
			if in(e) {
				items = append(items, e)
				if len(items) > size {
					break
				}
			}
		}
	}
	more := len(items) > size
	if more {
		items = items[:size]
	}
	base := url.Values{}
	for k, v := range q.r.URL.Query() {
		control := false
		for _, c := range tlControl {
			control = control || strings.EqualFold(k, c)
		}
		if !control {
			base[k] = v
		}
	}
	link := func(f, to time.Time, extra string) string {
		s := "/machines/" + m.ID + "/events/?"
		if enc := base.Encode(); enc != "" {
			s += enc + "&"
		}
		return s + "fromDate=" + url.QueryEscape(fmt7Z(f)) + "&toDate=" + url.QueryEscape(fmt7Z(to)) + extra
	}
	prev := ""
	if more {
		last := items[len(items)-1]
		prev = link(from, last.at, "&ReportIdForScrolling="+strconv.FormatInt(last.rid, 10)+"&IsScrollingForward=false")
	}
	// Assembled by hand: the events are compact JSON already, and
	// json.Marshal would scan and copy every one of them again (most of a
	// page's cost). The bytes are what json.Marshal gives.
	n := 128 + len(prev)*2
	for _, e := range items {
		n += len(e.raw) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, `{"Items":[`...)
	for i, e := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, e.raw...)
	}
	b = append(b, `],"Prev":`...)
	b = append(b, mustJSON(prev)...)
	b = append(b, `,"Next":`...)
	b = append(b, mustJSON(link(to, to.Add(to.Sub(from)), ""))...)
	b = append(b, `,"PartialResponseReasons":[]}`...)
	q.json(http.StatusOK, b)
}
