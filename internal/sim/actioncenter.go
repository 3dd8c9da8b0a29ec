package sim

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
)

// ---- Action Center history (decision 1) ----

var acSortFields = map[string]func(*acRecord) string{
	"eventtime":       func(r *acRecord) string { return r.EventTime },
	"investigationid": func(r *acRecord) string { return fmt.Sprintf("%020d", derefInt(r.InvestigationID)) },
	"bulkid":          func(r *acRecord) string { return r.ActionID },
	"actiontype":      func(r *acRecord) string { return r.ActionType },
	"entitytype":      func(r *acRecord) string { return r.EntityType },
	"computername":    func(r *acRecord) string { return r.ComputerName },
	"actiondecision":  func(r *acRecord) string { return derefStr(r.ActionDecision) },
	"decidedby":       func(r *acRecord) string { return r.DecidedBy },
	"actionsource":    func(r *acRecord) string { return r.ActionSource },
	"actionstatus":    func(r *acRecord) string { return r.ActionStatus },
}

func derefInt(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

func derefStr(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

const (
	acDefaultPage = 30
	acMaxPage     = 1000
)

func (t *Tenant) hActionCenter(q *req) {
	idx, size, ok := t.pageParams(q, RouteActionCenter, acDefaultPage, acMaxPage)
	if !ok {
		return
	}
	field := "eventtime"
	if s, ok := param(q, "sortByField"); ok && s != "" {
		field = strings.ToLower(s)
	}
	key, known := acSortFields[field]
	if !known {
		portalFail(q, http.StatusBadRequest, "", fmt.Sprintf("The value '%s' is not valid for sortByField.", field))
		return
	}
	desc, ok := sortOrderParam(q, "Descending")
	if !ok {
		return
	}
	from, hasFrom, ok := timeParam(q, "fromDate")
	if !ok {
		return
	}
	to, hasTo, ok := timeParam(q, "toDate")
	if !ok {
		return
	}
	if !hasTo {
		to = q.now
	}
	if !hasFrom {
		from = t.retentionFrom(q.now)
	}
	if to.Before(from) {
		portalFail(q, http.StatusBadRequest, "", "fromDate must not be later than toDate.")
		return
	}
	rows := t.acRows(q.now, from, to)
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := key(rows[i]), key(rows[j])
		if a == b {
			a, b = rows[i].EventTime+rows[i].ActionID+rows[i].ActionStatus, rows[j].EventTime+rows[j].ActionID+rows[j].ActionStatus
		}
		if desc {
			return a > b
		}
		return a < b
	})
	q.json(http.StatusOK, struct {
		Count   int         `json:"Count"`
		Results []*acRecord `json:"Results"`
	}{len(rows), page(rows, idx, size)})
}
