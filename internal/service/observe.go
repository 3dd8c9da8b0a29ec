package service

import (
	"sync"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/metrics"
	"github.com/defenderharvester/defenderharvester/internal/pipeline"
	"github.com/defenderharvester/defenderharvester/internal/schedule"
	"github.com/defenderharvester/defenderharvester/internal/source"
)

// relabel reports a tenant's pipeline events under its configured name
// (stable, readable) instead of its tenant id.
type relabel struct {
	name string
	m    *metrics.Metrics
}

func (r relabel) SourceStarted(_, src string) { r.m.SourceStarted(r.name, src) }
func (r relabel) Planned(_, src string, chunks int, whole source.Window) {
	r.m.Planned(r.name, src, chunks, whole)
}
func (r relabel) ChunkDone(_, src string, w source.Window, records int) {
	r.m.ChunkDone(r.name, src, w, records)
}
func (r relabel) Written(_, src, output string, records int, err error) {
	r.m.Written(r.name, src, output, records, err)
}
func (r relabel) Spooled(_, src, output string, records int) {
	r.m.Spooled(r.name, src, output, records)
}
func (r relabel) SourceDone(_ string, res pipeline.Result) { r.m.SourceDone(r.name, res) }

// schedObserver turns scheduler events into metrics.
type schedObserver struct {
	m       *metrics.Metrics
	waiting *sync.Map // "tenant/source" → done func of metrics.WaitingForSlot
}

func (o schedObserver) Fired(schedule.Firing) {}

func (o schedObserver) Skipped(f schedule.Firing, _ schedule.SkipReason) {
	o.stopWaiting(f)
	o.m.RunSkipped(f.Tenant, f.Source)
}

func (o schedObserver) Waiting(f schedule.Firing, _ schedule.Limit) {
	done := o.m.WaitingForSlot(f.Tenant)
	if prev, loaded := o.waiting.Swap(f.Tenant+"/"+f.Source, done); loaded {
		prev.(func())()
	}
}

func (o schedObserver) Started(f schedule.Firing) { o.stopWaiting(f) }

func (o schedObserver) Finished(schedule.Firing, time.Duration, error) {}

func (o schedObserver) stopWaiting(f schedule.Firing) {
	if done, ok := o.waiting.LoadAndDelete(f.Tenant + "/" + f.Source); ok {
		done.(func())()
	}
}

// schedObservers fans scheduler events out (nil entries skipped).
type schedObservers []schedule.Observer

func (os schedObservers) each(f func(schedule.Observer)) {
	for _, o := range os {
		if o != nil {
			f(o)
		}
	}
}

func (os schedObservers) Fired(f schedule.Firing) { os.each(func(o schedule.Observer) { o.Fired(f) }) }
func (os schedObservers) Skipped(f schedule.Firing, r schedule.SkipReason) {
	os.each(func(o schedule.Observer) { o.Skipped(f, r) })
}
func (os schedObservers) Waiting(f schedule.Firing, l schedule.Limit) {
	os.each(func(o schedule.Observer) { o.Waiting(f, l) })
}
func (os schedObservers) Started(f schedule.Firing) {
	os.each(func(o schedule.Observer) { o.Started(f) })
}
func (os schedObservers) Finished(f schedule.Firing, d time.Duration, err error) {
	os.each(func(o schedule.Observer) { o.Finished(f, d, err) })
}
