package sim

import (
	"encoding/json"
	"net/http"
	"sort"
	"time"
)

// ---- custom detection rules (decision 2) ----

func (t *Tenant) hRules(q *req) {
	idx, size, ok := t.pageParams(q, RouteRules, 30, 10000)
	if !ok {
		return
	}
	desc, ok := sortOrderParam(q, "Ascending")
	if !ok {
		return
	}
	rules := t.w.rulesAt(q.now)
	sort.SliceStable(rules, func(i, j int) bool {
		if desc {
			return rules[i].ID > rules[j].ID
		}
		return rules[i].ID < rules[j].ID
	})
	q.json(http.StatusOK, page(rules, idx, size))
}

// ---- executed queries report (decision 3) ----

func (t *Tenant) hReports(q *req) {
	body, err := q.readBody(1 << 20)
	if err != nil {
		portalFail(q, http.StatusRequestEntityTooLarge, "", "The request body is too large.")
		return
	}
	var in struct {
		StartTime *string `json:"startTime"`
		EndTime   *string `json:"endTime"`
	}
	if err := json.Unmarshal(body, &in); err != nil || in.StartTime == nil || in.EndTime == nil {
		portalFail(q, http.StatusBadRequest, "", `The request body must be JSON {"startTime":"<ISO-8601>","endTime":"<ISO-8601>"}.`)
		return
	}
	from, err1 := parseTimeParam(*in.StartTime)
	to, err2 := parseTimeParam(*in.EndTime)
	switch {
	case err1 != nil || err2 != nil:
		portalFail(q, http.StatusBadRequest, "", "startTime and endTime must be ISO-8601 date-times.")
		return
	case !to.After(from):
		portalFail(q, http.StatusBadRequest, "", "endTime must be later than startTime.")
		return
	case to.Sub(from) > 30*24*time.Hour:
		portalFail(q, http.StatusBadRequest, "", "The time range must not exceed 30 days.")
		return
	}
	qs := t.executedQueries(q.now, from, to)
	out := make([]*queryRecord, len(qs))
	for i, r := range qs {
		out[len(qs)-1-i] = r // newest first
	}
	q.json(http.StatusOK, struct {
		Count   int            `json:"Count"`
		Results []*queryRecord `json:"Results"`
	}{len(out), out})
}

func (t *Tenant) hSchema(q *req) { q.json(http.StatusOK, t.w.huntingSchema(q.now)) }
