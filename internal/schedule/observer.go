package schedule

import "time"

// Firing is one time a job fell due.
type Firing struct {
	Tenant, Source string
	// Due is when the spec, shifted by the job's offset, made it due.
	Due time.Time
	// Fired is when the scheduler saw it due: Fired − Due is how late
	// the scheduler was (a stopped process, a busy machine).
	Fired time.Time
	// Started is when the run got its slots and began; zero before.
	Started time.Time
}

// Late is how long after its due time the firing was seen.
func (f Firing) Late() time.Duration { return f.Fired.Sub(f.Due) }

// Waited is how long the firing waited for a concurrency slot; 0 until it
// started.
func (f Firing) Waited() time.Duration {
	if f.Started.IsZero() {
		return 0
	}
	return f.Started.Sub(f.Fired)
}

// SkipReason says why a firing did not run.
type SkipReason string

const (
	// SkipRunning: the job's previous run was still going. Firings are
	// not queued behind it: the next run reads everything since the last
	// one anyway.
	SkipRunning SkipReason = "previous run still going"
	// SkipWaiting: the job's previous firing was still waiting for a slot.
	SkipWaiting SkipReason = "previous firing still waiting for a concurrency slot"
	// SkipStopped: the job was removed or the scheduler shut down while
	// the firing waited for a slot.
	SkipStopped SkipReason = "stopped while waiting for a concurrency slot"
)

// Limit names the concurrency limit a firing waits for.
type Limit string

const (
	LimitTenant Limit = "tenant" // Options.MaxPerTenant
	LimitGlobal Limit = "global" // Options.MaxConcurrent
)

// Observer is told what the scheduler does as it happens: the metrics of
// `serve` are an observer. For one firing the calls come in order: Fired,
// Waiting (if it must), then Started and Finished, or Skipped; Status
// already shows each change when its call is made. Calls come from
// several goroutines at once (the next firing of a job may be reported
// while its previous run's Finished is under way); they must return
// quickly and may call Status.
type Observer interface {
	// Fired: a job fell due and will run once it has its slots.
	Fired(f Firing)
	// Skipped: a firing did not run, and why.
	Skipped(f Firing, why SkipReason)
	// Waiting: a firing found limit full and waits for a slot; other
	// firings go on meanwhile.
	Waiting(f Firing, limit Limit)
	// Started: the run begins (f.Started is set).
	Started(f Firing)
	// Finished: the run returned after took; err is its error (a panic
	// is reported as an error wrapping ErrPanicked).
	Finished(f Firing, took time.Duration, err error)
}

// NopObserver ignores everything; embed it to implement only some calls.
type NopObserver struct{}

func (NopObserver) Fired(Firing)                          {}
func (NopObserver) Skipped(Firing, SkipReason)            {}
func (NopObserver) Waiting(Firing, Limit)                 {}
func (NopObserver) Started(Firing)                        {}
func (NopObserver) Finished(Firing, time.Duration, error) {}
