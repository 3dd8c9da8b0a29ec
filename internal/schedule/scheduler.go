package schedule

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/clock"
)

// ErrPanicked is wrapped by the error of a run that panicked.
var ErrPanicked = errors.New("run panicked")

// Job is one (tenant, source) harvest on a schedule.
type Job struct {
	Tenant, Source string
	Spec           Spec
	// Jitter spreads jobs with the same spec: the job's firings are
	// shifted by Offset(Tenant, Source, Jitter), the same on every start.
	Jitter time.Duration
	// Run harvests once. Its context ends when the job is removed or the
	// scheduler shuts down; it should return soon after.
	Run func(ctx context.Context) error
}

// Options configure a Scheduler; the zero value is usable.
type Options struct {
	Clock clock.Clock // nil = clock.Real()
	// MaxConcurrent bounds the runs in progress across all tenants;
	// MaxPerTenant those of one tenant. 0 = no limit. Keep MaxPerTenant
	// below MaxConcurrent so one slow tenant cannot hold every slot.
	MaxConcurrent int
	MaxPerTenant  int
	Logger        *slog.Logger // nil = discard
	Observer      Observer     // nil = none
}

// JobStatus is one job as Status reports it.
type JobStatus struct {
	Tenant, Source string
	Spec           string
	Offset         time.Duration // the job's jitter offset
	// Next is the next due time (offset included); zero before Start or
	// when the spec is never due again.
	Next      time.Time
	Waiting   bool // fired, waiting for a concurrency slot
	Running   bool
	LastStart time.Time
	LastEnd   time.Time
	LastErr   error // of the last finished run; nil after a success
	Failures  int   // failed runs in a row; 0 after a success
	Runs      int   // finished runs
	Skipped   int   // firings skipped (previous run still going or waiting)
}

// ShutdownError is returned by Shutdown when runs were still going when
// its context ended.
type ShutdownError struct {
	Running []string // "tenant/source", sorted
	Err     error    // the context's error
}

func (e *ShutdownError) Error() string {
	return fmt.Sprintf("schedule: %d run(s) still going when the shutdown wait ended (%s): %v; they were cancelled but did not return",
		len(e.Running), strings.Join(e.Running, ", "), e.Err)
}

func (e *ShutdownError) Unwrap() error { return e.Err }

type jobKey struct{ tenant, source string }

func (k jobKey) String() string { return k.tenant + "/" + k.source }

type phase int

const (
	idle    phase = iota
	waiting       // fired, waiting for slots
	running
)

type entry struct {
	job    Job
	key    jobKey
	offset time.Duration
	seq    uint64 // Add order: equal due times fire in it
	slots  *tenantSlots

	next time.Time
	idx  int // position in the queue; -1 when not queued

	ctx    context.Context // of its runs
	cancel context.CancelFunc

	phase   phase
	removed bool
	gone    chan struct{} // closed when a removed entry's last run has ended
	// again: Trigger came while it ran or waited; it runs once more
	// when this run ends.
	again bool

	lastStart, lastEnd time.Time
	lastErr            error
	failures           int
	runs, skipped      int
}

type tenantSlots struct {
	sem  chan struct{} // nil = no per-tenant limit
	jobs int           // entries of the tenant, removed ones still running included
}

const (
	created = iota
	started
	stopped
)

// Scheduler fires jobs on their schedules. Rules:
//   - each job runs first right after Start (or Add, once started) plus
//     its offset, then at every due time of its spec;
//   - never two runs of one job at once: a firing that finds the previous
//     one still running or waiting is skipped and reported, not queued;
//   - a firing waits for a per-tenant slot, then a global one, without
//     holding up other firings; a tenant waiting at its own limit holds no
//     global slot, and global slots are handed out first come, first
//     served, so no tenant starves the others;
//   - a run that fails or panics is recorded and reported; it affects no
//     other job and not the job's next firing.
//
// Methods are safe for concurrent use.
type Scheduler struct {
	clk       clock.Clock
	log       *slog.Logger
	obs       Observer
	global    chan struct{} // nil = no global limit
	perTenant int

	mu      sync.Mutex
	state   int
	jobs    map[jobKey]*entry
	tenants map[string]*tenantSlots
	queue   queue
	seq     uint64
	ctx     context.Context // parent of every run's context, from Start
	cancel  context.CancelFunc

	wake     chan struct{} // pokes the loop after Add/Remove/Shutdown
	loopDone chan struct{}
	runs     sync.WaitGroup
}

// New returns a scheduler; jobs are added with Add and fire after Start.
func New(opts Options) (*Scheduler, error) {
	if opts.MaxConcurrent < 0 || opts.MaxPerTenant < 0 {
		return nil, fmt.Errorf("schedule: negative concurrency limit (max concurrent %d, per tenant %d); use 0 for no limit", opts.MaxConcurrent, opts.MaxPerTenant)
	}
	s := &Scheduler{
		clk:       opts.Clock,
		log:       opts.Logger,
		obs:       opts.Observer,
		perTenant: opts.MaxPerTenant,
		jobs:      map[jobKey]*entry{},
		tenants:   map[string]*tenantSlots{},
		wake:      make(chan struct{}, 1),
		loopDone:  make(chan struct{}),
	}
	if s.clk == nil {
		s.clk = clock.Real()
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.obs == nil {
		s.obs = NopObserver{}
	}
	if opts.MaxConcurrent > 0 {
		s.global = make(chan struct{}, opts.MaxConcurrent)
	}
	return s, nil
}

// Add schedules a job. A job for the same (tenant, source) must not be
// scheduled already, nor still finishing a run after Remove.
func (s *Scheduler) Add(j Job) error {
	switch {
	case j.Tenant == "" || j.Source == "":
		return fmt.Errorf("schedule: job %q/%q: tenant and source must both be named", j.Tenant, j.Source)
	case j.Spec.IsZero():
		return fmt.Errorf("schedule: job %s/%s has no schedule; give one parsed with schedule.Parse", j.Tenant, j.Source)
	case j.Run == nil:
		return fmt.Errorf("schedule: job %s/%s has nothing to run (Run is nil)", j.Tenant, j.Source)
	case j.Jitter < 0:
		return fmt.Errorf("schedule: job %s/%s: jitter %s is negative; use 0 for none", j.Tenant, j.Source, j.Jitter)
	}
	k := jobKey{j.Tenant, j.Source}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == stopped {
		return fmt.Errorf("schedule: cannot add %s: the scheduler is shut down", k)
	}
	if old, ok := s.jobs[k]; ok {
		if old.removed {
			return fmt.Errorf("schedule: cannot add %s yet: its removed job is still finishing a run; wait for the channel Remove returned", k)
		}
		return fmt.Errorf("schedule: %s is already scheduled (%s); remove it first to change its schedule", k, old.job.Spec)
	}
	ts := s.tenants[j.Tenant]
	if ts == nil {
		ts = &tenantSlots{}
		if s.perTenant > 0 {
			ts.sem = make(chan struct{}, s.perTenant)
		}
		s.tenants[j.Tenant] = ts
	}
	ts.jobs++
	e := &entry{job: j, key: k, offset: offset(j), seq: s.seq, slots: ts, idx: -1}
	s.seq++
	s.jobs[k] = e
	if s.state == started {
		s.scheduleLocked(e, s.clk.Now())
		s.poke()
	}
	return nil
}

// scheduleLocked queues a new entry for its first run at now + offset.
func (s *Scheduler) scheduleLocked(e *entry, now time.Time) {
	e.ctx, e.cancel = context.WithCancel(s.ctx)
	e.next = now.Add(e.offset)
	heap.Push(&s.queue, e)
}

// Remove stops scheduling every job of tenant and cancels their runs. The
// channel it returns is closed once none of them is running any more —
// only then may another replica take the tenant over.
func (s *Scheduler) Remove(tenant string) <-chan struct{} {
	return s.remove(func(k jobKey) bool { return k.tenant == tenant })
}

// RemoveJob is Remove for one (tenant, source).
func (s *Scheduler) RemoveJob(tenant, source string) <-chan struct{} {
	return s.remove(func(k jobKey) bool { return k == jobKey{tenant, source} })
}

func (s *Scheduler) remove(match func(jobKey) bool) <-chan struct{} {
	s.mu.Lock()
	var busy []chan struct{}
	for k, e := range s.jobs {
		if !match(k) || e.removed {
			if match(k) && e.removed {
				busy = append(busy, e.gone)
			}
			continue
		}
		e.removed = true
		if e.idx >= 0 {
			heap.Remove(&s.queue, e.idx)
		}
		if e.cancel != nil {
			e.cancel()
		}
		if e.phase == idle {
			s.dropLocked(e)
			continue
		}
		e.gone = make(chan struct{})
		busy = append(busy, e.gone)
	}
	s.mu.Unlock()
	s.poke()
	done := make(chan struct{})
	if len(busy) == 0 {
		close(done)
		return done
	}
	go func() {
		for _, c := range busy {
			<-c
		}
		close(done)
	}()
	return done
}

// dropLocked forgets a removed entry that is not running.
func (s *Scheduler) dropLocked(e *entry) {
	delete(s.jobs, e.key)
	if e.slots.jobs--; e.slots.jobs == 0 {
		delete(s.tenants, e.key.tenant)
	}
	if e.gone != nil {
		close(e.gone)
	}
}

// Start begins firing: every job added so far runs right away (plus its
// offset), then on its schedule. ctx is the parent of every run's context;
// when it ends, firing stops and runs are cancelled, as on Shutdown.
func (s *Scheduler) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case started:
		return errors.New("schedule: Start called twice")
	case stopped:
		return errors.New("schedule: cannot start after Shutdown; make a new Scheduler")
	}
	s.state = started
	s.ctx, s.cancel = context.WithCancel(ctx)
	now := s.clk.Now()
	for _, e := range s.sortedLocked() {
		s.scheduleLocked(e, now)
	}
	go s.loop()
	return nil
}

func (s *Scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

type firing struct {
	e   *entry
	f   Firing
	why SkipReason // "" = run it
}

// loop fires due jobs and sleeps on one timer until the next due time.
func (s *Scheduler) loop() {
	defer close(s.loopDone)
	for {
		s.mu.Lock()
		if s.state != started || s.ctx.Err() != nil {
			s.mu.Unlock()
			return
		}
		now := s.clk.Now()
		var due []firing
		for len(s.queue) > 0 && !s.queue[0].next.After(now) {
			e := s.queue[0]
			fi := firing{e: e, f: Firing{Tenant: e.key.tenant, Source: e.key.source, Due: e.next, Fired: now}}
			switch e.phase {
			case running:
				fi.why, e.skipped = SkipRunning, e.skipped+1
			case waiting:
				fi.why, e.skipped = SkipWaiting, e.skipped+1
			default:
				e.phase = waiting
				s.runs.Add(1)
			}
			due = append(due, fi)
			// Strictly after now: a scheduler that was held up fires a
			// job once, late, rather than once per missed due time.
			if e.next = e.nextAfter(now); e.next.IsZero() {
				heap.Pop(&s.queue)
				e.idx = -1
				s.log.Error("schedule: job has no further due time and stops", "tenant", e.key.tenant, "source", e.key.source, "schedule", e.job.Spec.String())
			} else {
				heap.Fix(&s.queue, 0)
			}
		}
		wait := time.Duration(-1)
		if len(s.queue) > 0 {
			wait = s.queue[0].next.Sub(now)
		}
		done := s.ctx.Done()
		s.mu.Unlock()

		// Observer calls outside the lock (they may call Status), and
		// Fired before the run's goroutine exists, so each job's calls
		// come in order.
		for _, fi := range due {
			if fi.why != "" {
				s.obs.Skipped(fi.f, fi.why)
				s.log.Warn("schedule: firing skipped", "tenant", fi.f.Tenant, "source", fi.f.Source, "reason", string(fi.why), "due", fi.f.Due)
				continue
			}
			s.obs.Fired(fi.f)
			go s.run(fi.e, fi.f)
		}

		var tick <-chan time.Time
		var t clock.Timer
		if wait >= 0 {
			t = s.clk.NewTimer(wait)
			tick = t.C()
		}
		select {
		case <-tick:
		case <-s.wake:
		case <-done:
		}
		if t != nil {
			t.Stop()
		}
	}
}

// nextAfter is the job's first due time strictly after t: the spec's,
// shifted by the offset (a phase for intervals, a delay for cron).
func (e *entry) nextAfter(t time.Time) time.Time {
	n := e.job.Spec.Next(t.Add(-e.offset))
	if n.IsZero() {
		return n
	}
	return n.Add(e.offset)
}

// run waits for the job's slots, runs it once and records the outcome.
func (s *Scheduler) run(e *entry, f Firing) {
	defer s.runs.Done()
	release, ok := s.acquire(e.ctx, e.slots.sem, f)
	if !ok {
		s.mu.Lock()
		e.phase = idle
		if e.removed {
			s.dropLocked(e)
		}
		s.mu.Unlock()
		s.obs.Skipped(f, SkipStopped)
		return
	}

	s.mu.Lock()
	e.phase = running
	f.Started = s.clk.Now()
	e.lastStart = f.Started
	s.mu.Unlock()
	s.obs.Started(f)
	s.log.Debug("schedule: run started", "tenant", f.Tenant, "source", f.Source, "due", f.Due, "late", f.Late(), "waited", f.Waited())

	stack, err := call(e.ctx, e.job.Run)
	end := s.clk.Now()
	release()
	took := end.Sub(f.Started)
	switch {
	case stack != nil:
		s.log.Error("schedule: run panicked", "tenant", f.Tenant, "source", f.Source, "took", took, "err", err, "stack", string(stack))
	case err != nil:
		s.log.Warn("schedule: run failed", "tenant", f.Tenant, "source", f.Source, "took", took, "err", err)
	default:
		s.log.Debug("schedule: run finished", "tenant", f.Tenant, "source", f.Source, "took", took)
	}
	s.mu.Lock()
	e.phase = idle
	e.lastEnd, e.lastErr = end, err
	e.runs++
	if err != nil {
		e.failures++
	} else {
		e.failures = 0
	}
	if e.removed {
		s.dropLocked(e)
	} else if e.again {
		e.again = false
		s.dueNowLocked(e, end)
	}
	s.mu.Unlock()
	// After the update, so an observer that calls Status sees it.
	s.obs.Finished(f, took, err)
}

// Trigger makes a job due now, outside its schedule (the audit log's
// webhook says new content is there): it runs at once, or as soon as its
// current run ends — once, however many triggers came meanwhile. Its
// schedule carries on from there. False when no such job is scheduled.
func (s *Scheduler) Trigger(tenant, source string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.jobs[jobKey{tenant, source}]
	if !ok || e.removed || s.state != started {
		return false
	}
	if e.phase != idle {
		e.again = true
		return true
	}
	s.dueNowLocked(e, s.clk.Now())
	return true
}

// dueNowLocked moves a queued entry's next due time to now.
func (s *Scheduler) dueNowLocked(e *entry, now time.Time) {
	if e.idx < 0 || !e.next.After(now) {
		return
	}
	e.next = now
	heap.Fix(&s.queue, e.idx)
	s.poke()
}

// acquire takes a tenant slot, then a global one, waiting for each if it
// must. Tenant first: a tenant at its own limit then waits without
// holding a global slot another tenant could use. Channel sends wake
// waiters in arrival order, so slots go first come, first served.
func (s *Scheduler) acquire(ctx context.Context, tenant chan struct{}, f Firing) (release func(), ok bool) {
	var held []chan struct{}
	release = func() {
		for _, c := range held {
			<-c
		}
	}
	for _, l := range []struct {
		sem   chan struct{}
		limit Limit
	}{{tenant, LimitTenant}, {s.global, LimitGlobal}} {
		if l.sem == nil {
			continue
		}
		select {
		case l.sem <- struct{}{}:
			held = append(held, l.sem)
			continue
		default:
		}
		s.obs.Waiting(f, l.limit)
		s.log.Debug("schedule: waiting for a slot", "tenant", f.Tenant, "source", f.Source, "limit", string(l.limit))
		select {
		case l.sem <- struct{}{}:
			held = append(held, l.sem)
		case <-ctx.Done():
			release()
			return nil, false
		}
	}
	if ctx.Err() != nil { // cancelled while the slots happened to be free
		release()
		return nil, false
	}
	return release, true
}

// call runs fn, turning a panic into an error (and the stack, for the
// log) so that one bad run cannot take the service down. A panic in a
// goroutine fn started is beyond reach, as anywhere in Go.
func call(ctx context.Context, fn func(context.Context) error) (stack []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			stack, err = debug.Stack(), fmt.Errorf("%w: %v", ErrPanicked, r)
		}
	}()
	return nil, fn(ctx)
}

// Status returns every scheduled job, sorted by tenant then source.
// Removed jobs are not listed, even while their last run finishes.
func (s *Scheduler) Status() []JobStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []JobStatus
	for _, e := range s.sortedLocked() {
		if e.removed {
			continue
		}
		out = append(out, JobStatus{
			Tenant: e.key.tenant, Source: e.key.source,
			Spec: e.job.Spec.String(), Offset: e.offset,
			Next:    e.next,
			Waiting: e.phase == waiting, Running: e.phase == running,
			LastStart: e.lastStart, LastEnd: e.lastEnd, LastErr: e.lastErr,
			Failures: e.failures, Runs: e.runs, Skipped: e.skipped,
		})
	}
	return out
}

func (s *Scheduler) sortedLocked() []*entry {
	out := make([]*entry, 0, len(s.jobs))
	for _, e := range s.jobs {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b *entry) int {
		return cmp.Or(cmp.Compare(a.key.tenant, b.key.tenant), cmp.Compare(a.key.source, b.key.source))
	})
	return out
}

// Shutdown stops firing, cancels the context of every run in progress
// and waits for them to return until ctx ends. It returns a
// *ShutdownError naming the runs still going then. Later calls wait again.
func (s *Scheduler) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	wasStarted := s.state == started
	s.state = stopped
	if s.cancel != nil {
		s.cancel()
	}
	s.mu.Unlock()
	s.poke()
	if wasStarted {
		<-s.loopDone // quick: the loop only waits on its timer and ctx
	}
	done := make(chan struct{})
	go func() {
		s.runs.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	var still []string
	for _, e := range s.sortedLocked() {
		if e.phase != idle {
			still = append(still, e.key.String())
		}
	}
	s.mu.Unlock()
	if len(still) == 0 { // they ended just as ctx did
		return nil
	}
	return &ShutdownError{Running: still, Err: ctx.Err()}
}

// queue is a min-heap of entries by next due time, then Add order.
type queue []*entry

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if !q[i].next.Equal(q[j].next) {
		return q[i].next.Before(q[j].next)
	}
	return q[i].seq < q[j].seq
}
func (q queue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].idx, q[j].idx = i, j
}
func (q *queue) Push(x any) {
	e := x.(*entry)
	e.idx = len(*q)
	*q = append(*q, e)
}
func (q *queue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	e.idx = -1
	return e
}

// Alive reports whether the loop still fires on time (the service's
// /healthz): an error when it stopped while the scheduler was started,
// or when the earliest due job is more than grace overdue.
func (s *Scheduler) Alive(grace time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != started {
		return nil
	}
	select {
	case <-s.loopDone:
		if s.ctx.Err() == nil {
			return errors.New("schedule: the firing loop stopped")
		}
		return nil
	default:
	}
	if len(s.queue) > 0 {
		if late := s.clk.Now().Sub(s.queue[0].next); late > grace {
			return fmt.Errorf("schedule: %s/%s is %s overdue: the firing loop is stuck", s.queue[0].key.tenant, s.queue[0].key.source, late.Round(time.Second))
		}
	}
	return nil
}
