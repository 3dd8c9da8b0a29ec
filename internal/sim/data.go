package sim

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// retentionFrom is the oldest time the services still return at now.
func (t *Tenant) retentionFrom(now time.Time) time.Time {
	from := now.Add(-180 * 24 * time.Hour)
	if t.w.dataFrom.After(from) {
		from = t.w.dataFrom
	}
	return from
}

// acRows returns the Action Center rows visible at now with EventTime in
// [from, to] (both inclusive), oldest first.
func (t *Tenant) acRows(now, from, to time.Time) []*acRecord {
	if lo := t.retentionFrom(now); from.Before(lo) {
		from = lo
	}
	if to.After(now) {
		to = now
	}
	var out []*acRecord
	if to.Before(from) {
		return out
	}
	for h := hourOf(from.Add(-maxOpSpan)); h <= hourOf(to); h++ {
		for _, r := range t.ops(h).ac {
			if !r.eventTime.Before(from) && !r.eventTime.After(to) && !r.visible.After(now) {
				out = append(out, r)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].eventTime.Before(out[j].eventTime) })
	return out
}

// machineActions returns the machine actions as visible at now whose
// creation time is in [from, to], oldest first.
func (t *Tenant) machineActions(now, from, to time.Time) []maRecord {
	if lo := t.retentionFrom(now); from.Before(lo) {
		from = lo
	}
	if to.After(now) {
		to = now
	}
	var out []maRecord
	for h := hourOf(from); h <= hourOf(to) && !to.Before(from); h++ {
		for _, a := range t.ops(h).actions {
			c := a.created()
			if c.Before(from) || c.After(to) {
				continue
			}
			if rec, ok := a.view(now); ok {
				out = append(out, rec)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].created.Before(out[j].created) })
	return out
}

// executedQueries returns queries with Timestamp in [from, to) visible at now.
func (t *Tenant) executedQueries(now, from, to time.Time) []*queryRecord {
	if lo := t.retentionFrom(now); from.Before(lo) {
		from = lo
	}
	var out []*queryRecord
	last := hourOf(to)
	if hn := hourOf(now); hn < last {
		last = hn
	}
	for h := hourOf(from); h <= last; h++ {
		for _, q := range t.queries(h) {
			if !q.at.Before(from) && q.at.Before(to) && !q.visible.After(now) {
				out = append(out, q)
			}
		}
	}
	return out
}

// Events is the ground truth: the records of dataset visible at Now() whose
// event time lies in [from, to), oldest first, as the services print them.
// Datasets: "actioncenter" (EventTime), "machineactions" (current state of
// each action, by lastUpdateDateTimeUtc), "executedqueries" (Timestamp) and
// "timeline:<machineId>" (ActionTime).
func (t *Tenant) Events(dataset string, from, to time.Time) ([]json.RawMessage, error) {
	now := t.now().UTC()
	from, to = from.UTC(), to.UTC()
	if to.Before(from) {
		return nil, fmt.Errorf("sim: events window ends (%s) before it starts (%s)", to, from)
	}
	var out []json.RawMessage
	switch {
	case dataset == "actioncenter":
		for _, r := range t.acRows(now, from, to) {
			if r.eventTime.Before(to) {
				out = append(out, mustJSON(r))
			}
		}
	case dataset == "machineactions":
		var recs []maRecord
		for _, r := range t.machineActions(now, from.Add(-maxOpSpan), to) {
			if !r.updated.Before(from) && r.updated.Before(to) {
				recs = append(recs, r)
			}
		}
		sort.SliceStable(recs, func(i, j int) bool { return recs[i].updated.Before(recs[j].updated) })
		for _, r := range recs {
			out = append(out, mustJSON(r))
		}
	case dataset == "executedqueries":
		for _, q := range t.executedQueries(now, from, to) {
			out = append(out, mustJSON(q))
		}
	case strings.HasPrefix(dataset, "timeline:"):
		id := strings.TrimPrefix(dataset, "timeline:")
		m, ok := t.w.machine(id)
		if !ok {
			return nil, fmt.Errorf("sim: unknown machine %q: use one of MachineIDs()", id)
		}
		if from.Before(t.w.tlFrom) {
			from = t.w.tlFrom
		}
		for h := hourOf(from); h <= hourOf(to) && h <= hourOf(now); h++ {
			evs := t.timeline(m.ID, h)
			for i := len(evs) - 1; i >= 0; i-- { // stored newest first
				e := evs[i]
				if !e.at.Before(from) && e.at.Before(to) && !e.visible.After(now) {
					out = append(out, e.raw)
				}
			}
		}
	default:
		return nil, fmt.Errorf("sim: unknown dataset %q: use actioncenter, machineactions, executedqueries or timeline:<machineId>", dataset)
	}
	return out, nil
}
