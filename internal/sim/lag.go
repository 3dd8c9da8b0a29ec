package sim

import "time"

// Ingestion lag (Options.IngestionLag): an event of Action Center history,
// the executed-queries report, the machine actions and the timeline becomes
// visible some time after its own timestamp, as data flowing through a
// service's pipeline does. Each event's lag is uniform in [0, max], drawn
// from its own seeded stream (seed, data set, event identity), so it is the
// same on every request and for every Tenant with the same Seed, and
// switching the lag on does not change the data itself.

// Seed labels of the lag streams (apart from the data streams in util.go).
const (
	lblLag uint64 = 0x1a9 + iota
	lblLagAC
	lblLagMA
	lblLagQuery
	lblLagTimeline
)

// lagFor is the ingestion lag of one event of a data set.
func (w *world) lagFor(set uint64, key string, n int64) time.Duration {
	if w.lag <= 0 {
		return 0
	}
	r := rngFor(w.seed, lblLag, set, strLabel(key), uint64(n))
	return time.Duration(r.Int64N(int64(w.lag) + 1))
}

// setVisibility stamps when each record of a freshly generated operations
// bucket becomes visible.
func (w *world) setVisibility(b *opsBucket) {
	for _, r := range b.ac {
		r.visible = r.eventTime.Add(w.lagFor(lblLagAC, r.ActionID+"|"+r.ActionStatus, 0))
	}
	for _, a := range b.actions {
		for i := range a.States {
			a.States[i].Visible = a.States[i].At.Add(w.lagFor(lblLagMA, a.ID, int64(i)))
		}
	}
}
