package schedule

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSimulatedDay runs three tenants with four jobs each through a day of
// the fake clock: every run happens exactly at its due time plus the job's
// offset, and the counts are those of the schedules.
func TestSimulatedDay(t *testing.T) {
	ctx := testCtx(t)
	s, fc, rec := newTest(t, Options{MaxConcurrent: 4, MaxPerTenant: 2})
	const jitter = 10 * time.Minute
	specs := []struct {
		spec     string
		period   time.Duration
		interval bool // the offset is a phase within the interval
		perDay   int
	}{
		{"5m", 5 * time.Minute, true, 288},
		{"1h", time.Hour, true, 24},
		{"@hourly", time.Hour, false, 24},
		{"1d", 24 * time.Hour, true, 1},
	}
	tenants := []string{"contoso", "fabrikam", "woodgrove"}

	var mu sync.Mutex
	ranAt := map[string][]time.Time{}
	for _, tn := range tenants {
		for _, sp := range specs {
			key := tn + "/" + sp.spec
			err := s.Add(Job{Tenant: tn, Source: sp.spec, Spec: mustParse(t, sp.spec), Jitter: jitter,
				Run: func(context.Context) error {
					mu.Lock()
					ranAt[key] = append(ranAt[key], fc.Now())
					mu.Unlock()
					return nil
				}})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	end := t0.Add(24 * time.Hour)
	for {
		park(ctx, t, fc, rec)
		next, ok := fc.Next()
		if !ok || !next.Before(end) {
			break
		}
		fc.Set(next)
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	offsets := map[time.Duration]bool{}
	for _, tn := range tenants {
		for _, sp := range specs {
			off := Offset(tn, sp.spec, jitter)
			if sp.interval {
				off %= sp.period
			}
			offsets[off] = true
			var want []time.Time
			for at := t0.Add(off); at.Before(end); at = at.Add(sp.period) {
				want = append(want, at)
			}
			if len(want) != sp.perDay {
				t.Fatalf("%s/%s: test expects %d runs, the schedule says %d", tn, sp.spec, len(want), sp.perDay)
			}
			got := ranAt[tn+"/"+sp.spec]
			if !slices.EqualFunc(got, want, time.Time.Equal) {
				t.Errorf("%s/%s (offset %s): ran %d times, want %d; first runs %v, want %v",
					tn, sp.spec, off, len(got), len(want), got[:min(3, len(got))], want[:3])
			}
		}
	}
	if len(offsets) < 10 {
		t.Errorf("12 jobs share only %d distinct offsets; the jitter does not spread them", len(offsets))
	}
	for _, e := range rec.all("fired") {
		if e.f.Late() != 0 {
			t.Fatalf("%s/%s fired %s late", e.f.Tenant, e.f.Source, e.f.Late())
		}
	}
	if n := rec.count("skipped"); n != 0 {
		t.Fatalf("%d firings skipped; runs are instant here", n)
	}
}

func TestOverlappingFiringIsSkipped(t *testing.T) {
	ctx := testCtx(t)
	s, fc, rec := newTest(t, Options{})
	release := make(chan struct{})
	var calls atomic.Int32
	must(t, s.Add(Job{Tenant: "t", Source: "alerts", Spec: mustParse(t, "5m"), Run: func(context.Context) error {
		calls.Add(1)
		<-release
		return nil
	}}))
	must(t, s.Start(ctx))
	rec.waitFor(ctx, t, "the first run", func(r *recorder) bool { return r.count("started") == 1 })
	// Started is reported just before the job's Run is called.
	for calls.Load() == 0 {
		if ctx.Err() != nil {
			t.Fatal("the first run never called the job")
		}
		time.Sleep(time.Millisecond)
	}

	for i := 1; i <= 2; i++ {
		must(t, fc.BlockUntil(ctx, 1))
		fc.Advance(5 * time.Minute)
		rec.waitFor(ctx, t, "the skip", func(r *recorder) bool { return r.count("skipped") == i })
	}
	for _, e := range rec.all("skipped") {
		if e.why != SkipRunning {
			t.Fatalf("skipped because %q, want %q", e.why, SkipRunning)
		}
	}
	st := s.Status()[0]
	if !st.Running || st.Skipped != 2 || calls.Load() != 1 {
		t.Fatalf("while the first run goes on: status %+v, %d calls; want running, 2 skipped, 1 call", st, calls.Load())
	}

	close(release)
	rec.waitFor(ctx, t, "the first run to end", func(r *recorder) bool { return r.count("finished") == 1 })
	must(t, fc.BlockUntil(ctx, 1))
	fc.Advance(5 * time.Minute)
	rec.waitFor(ctx, t, "the next run", func(r *recorder) bool { return r.count("finished") == 2 })
	if st := s.Status()[0]; st.Running || st.Runs != 2 || st.Skipped != 2 || calls.Load() != 2 {
		t.Fatalf("after: status %+v, %d calls", st, calls.Load())
	}
}

// TestLimits fires eight jobs of two tenants at once and proves the runs
// in progress never exceed the global and per-tenant limits, that both
// limits are reached (three slots, at most two per tenant: one tenant
// holds two), and that every firing runs.
func TestLimits(t *testing.T) {
	ctx := testCtx(t)
	const maxAll, maxTenant = 3, 2
	s, _, rec := newTest(t, Options{MaxConcurrent: maxAll, MaxPerTenant: maxTenant})
	var mu sync.Mutex
	running, peak := 0, 0
	perTenant, peakTenant := map[string]int{}, 0
	proceed, entered := make(chan struct{}), make(chan struct{}, 8)
	for tn := range 2 {
		for src := range 4 {
			tenant := fmt.Sprintf("tenant-%d", tn)
			must(t, s.Add(Job{Tenant: tenant, Source: fmt.Sprintf("src-%d", src), Spec: mustParse(t, "1h"),
				Run: func(context.Context) error {
					mu.Lock()
					running++
					perTenant[tenant]++
					peak, peakTenant = max(peak, running), max(peakTenant, perTenant[tenant])
					mu.Unlock()
					entered <- struct{}{}
					<-proceed
					mu.Lock()
					running--
					perTenant[tenant]--
					mu.Unlock()
					return nil
				}}))
		}
	}
	must(t, s.Start(ctx))
	// Three run; the other five must report that they wait (four for
	// their tenant's slot, one for a global one) before any run ends.
	for range maxAll {
		<-entered
	}
	rec.waitFor(ctx, t, "five waits", func(r *recorder) bool { return r.count("waiting") == 8-maxAll })
	for range 8 {
		proceed <- struct{}{} // taken by some run in progress: one always is
	}
	rec.waitFor(ctx, t, "all eight runs", func(r *recorder) bool { return r.count("finished") == 8 })
	if peak != maxAll || peakTenant != maxTenant {
		t.Fatalf("peak runs %d (limit %d), peak per tenant %d (limit %d)", peak, maxAll, peakTenant, maxTenant)
	}
	ran := map[string]int{}
	for _, e := range rec.all("started") {
		ran[e.f.Tenant+"/"+e.f.Source]++
		if e.f.Waited() < 0 {
			t.Fatalf("negative wait %s", e.f.Waited())
		}
	}
	if len(ran) != 8 {
		t.Fatalf("%d distinct jobs ran, want 8: %v", len(ran), ran)
	}
}

// TestTenantAtItsLimitDoesNotBlockOthers: a tenant with three firings and
// a limit of one waits for its own slot without holding a global one, so
// the other tenant runs at once.
func TestTenantAtItsLimitDoesNotBlockOthers(t *testing.T) {
	ctx := testCtx(t)
	s, _, rec := newTest(t, Options{MaxConcurrent: 2, MaxPerTenant: 1})
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	block := func(context.Context) error { <-release; return nil }
	for _, src := range []string{"a", "b", "c"} {
		must(t, s.Add(Job{Tenant: "busy", Source: src, Spec: mustParse(t, "5m"), Run: block}))
	}
	must(t, s.Add(Job{Tenant: "quiet", Source: "a", Spec: mustParse(t, "5m"), Run: block}))
	must(t, s.Start(ctx))
	rec.waitFor(ctx, t, "two runs and two waits", func(r *recorder) bool {
		return r.count("started") == 2 && r.count("waiting") == 2
	})
	var tenants []string
	for _, e := range rec.all("started") {
		tenants = append(tenants, e.f.Tenant)
	}
	slices.Sort(tenants)
	if !slices.Equal(tenants, []string{"busy", "quiet"}) {
		t.Fatalf("running: %v; want one run of busy and the quiet tenant's", tenants)
	}
	for _, e := range rec.all("waiting") {
		if e.f.Tenant != "busy" || e.limit != LimitTenant {
			t.Fatalf("%s waits for the %s limit; only busy should wait, for its own", e.f.Tenant, e.limit)
		}
	}
	once.Do(func() { close(release) })
	rec.waitFor(ctx, t, "every run", func(r *recorder) bool { return r.count("finished") == 4 })
}

func TestFiringWaitingForASlotIsNotQueuedTwice(t *testing.T) {
	ctx := testCtx(t)
	s, fc, rec := newTest(t, Options{MaxConcurrent: 1})
	release := make(chan struct{})
	must(t, s.Add(Job{Tenant: "a", Source: "slow", Spec: mustParse(t, "5m"), Run: func(context.Context) error { <-release; return nil }}))
	must(t, s.Start(ctx))
	rec.waitFor(ctx, t, "the slow run", func(r *recorder) bool { return r.count("started") == 1 })
	must(t, s.Add(Job{Tenant: "b", Source: "fast", Spec: mustParse(t, "5m"), Run: nop}))
	rec.waitFor(ctx, t, "b to wait", func(r *recorder) bool { return r.count("waiting") == 1 })
	if st := s.Status(); !st[1].Waiting || st[1].Running {
		t.Fatalf("b's status %+v; want waiting", st[1])
	}
	must(t, fc.BlockUntil(ctx, 1))
	fc.Advance(5 * time.Minute)
	rec.waitFor(ctx, t, "two skips", func(r *recorder) bool { return r.count("skipped") == 2 })
	why := map[string]SkipReason{}
	for _, e := range rec.all("skipped") {
		why[e.f.Tenant] = e.why
	}
	if why["a"] != SkipRunning || why["b"] != SkipWaiting {
		t.Fatalf("skip reasons %v", why)
	}
	close(release)
	rec.waitFor(ctx, t, "both runs", func(r *recorder) bool { return r.count("finished") == 2 })
}

func TestShutdownCancelsAndWaits(t *testing.T) {
	ctx := testCtx(t)
	s, fc, rec := newTest(t, Options{MaxPerTenant: 1})
	stubborn := make(chan struct{})
	var once sync.Once
	letGo := func() { once.Do(func() { close(stubborn) }) }
	t.Cleanup(letGo) // before newTest's Shutdown, should the test fail early
	must(t, s.Add(Job{Tenant: "a", Source: "polite", Spec: mustParse(t, "5m"), Run: func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	}}))
	must(t, s.Add(Job{Tenant: "b", Source: "stubborn", Spec: mustParse(t, "5m"), Run: func(context.Context) error {
		<-stubborn // ignores its context
		return nil
	}}))
	must(t, s.Start(ctx))
	rec.waitFor(ctx, t, "both runs", func(r *recorder) bool { return r.count("started") == 2 })
	// b is at its limit: this firing waits, and shutdown must end the wait.
	must(t, s.Add(Job{Tenant: "b", Source: "waiting", Spec: mustParse(t, "5m"), Run: nop}))
	rec.waitFor(ctx, t, "the wait", func(r *recorder) bool { return r.count("waiting") == 1 })

	sctx, stop := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- s.Shutdown(sctx) }()
	rec.waitFor(ctx, t, "the polite run to end and the wait to be dropped", func(r *recorder) bool {
		return r.count("finished") == 1 && r.count("skipped") == 1
	})
	if e := rec.all("finished")[0]; e.f.Source != "polite" || !errors.Is(e.err, context.Canceled) {
		t.Fatalf("finished %s with %v; want polite with context.Canceled", e.f.Source, e.err)
	}
	if e := rec.all("skipped")[0]; e.f.Source != "waiting" || e.why != SkipStopped {
		t.Fatalf("skipped %s (%s); want the waiting firing, stopped", e.f.Source, e.why)
	}
	select {
	case err := <-errc:
		t.Fatalf("Shutdown returned %v while a run was still going", err)
	default:
	}
	stop()
	err := <-errc
	var se *ShutdownError
	if !errors.As(err, &se) || !slices.Equal(se.Running, []string{"b/stubborn"}) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown = %v; want a ShutdownError naming b/stubborn", err)
	}
	if !strings.Contains(err.Error(), "b/stubborn") {
		t.Fatalf("the error does not name the run: %v", err)
	}

	letGo()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown after the run ended = %v", err)
	}
	fired := rec.count("fired")
	fc.Advance(24 * time.Hour)
	if fc.Waiters() != 0 || rec.count("fired") != fired {
		t.Fatal("the scheduler still fires after Shutdown")
	}
	if err := s.Add(Job{Tenant: "c", Source: "x", Spec: mustParse(t, "5m"), Run: nop}); err == nil {
		t.Fatal("Add after Shutdown succeeded")
	}
	if err := s.Start(ctx); err == nil {
		t.Fatal("Start after Shutdown succeeded")
	}
}

// TestFailuresStayLocal: a job that panics and one that fails do not stop
// the scheduler nor touch another tenant; failures count in a row.
func TestFailuresStayLocal(t *testing.T) {
	ctx := testCtx(t)
	s, fc, rec := newTest(t, Options{MaxConcurrent: 1})
	var healed atomic.Bool
	must(t, s.Add(Job{Tenant: "bad", Source: "panics", Spec: mustParse(t, "5m"), Run: func(context.Context) error {
		if !healed.Load() {
			var m map[string]int
			m["boom"]++ // a real runtime panic
		}
		return nil
	}}))
	must(t, s.Add(Job{Tenant: "bad", Source: "fails", Spec: mustParse(t, "5m"), Run: func(context.Context) error {
		return errors.New("401 from the API")
	}}))
	must(t, s.Add(Job{Tenant: "good", Source: "alerts", Spec: mustParse(t, "5m"), Run: nop}))
	must(t, s.Start(ctx))
	for range 2 {
		park(ctx, t, fc, rec)
		fc.Advance(5 * time.Minute)
	}
	park(ctx, t, fc, rec)
	st := s.Status()
	byName := map[string]JobStatus{}
	for _, j := range st {
		byName[j.Tenant+"/"+j.Source] = j
	}
	if p := byName["bad/panics"]; p.Runs != 3 || p.Failures != 3 || !errors.Is(p.LastErr, ErrPanicked) || !strings.Contains(p.LastErr.Error(), "nil map") {
		t.Fatalf("bad/panics: %+v", p)
	}
	if f := byName["bad/fails"]; f.Runs != 3 || f.Failures != 3 || f.LastErr == nil || f.LastErr.Error() != "401 from the API" {
		t.Fatalf("bad/fails: %+v", f)
	}
	if g := byName["good/alerts"]; g.Runs != 3 || g.Failures != 0 || g.LastErr != nil || !g.LastEnd.Equal(t0.Add(10*time.Minute)) {
		t.Fatalf("good/alerts: %+v", g)
	}
	healed.Store(true)
	fc.Advance(5 * time.Minute)
	park(ctx, t, fc, rec)
	for _, j := range s.Status() {
		if j.Source == "panics" && (j.Failures != 0 || j.LastErr != nil) {
			t.Fatalf("a success must reset the failures: %+v", j)
		}
	}
}

func TestRemoveWaitsForTheRunAndAllowsReAdding(t *testing.T) {
	ctx := testCtx(t)
	s, fc, rec := newTest(t, Options{})
	cancelled, letGo := make(chan struct{}), make(chan struct{})
	var goneRuns atomic.Int32
	gone := Job{Tenant: "gone", Source: "alerts", Spec: mustParse(t, "5m"), Run: func(ctx context.Context) error {
		if goneRuns.Add(1) > 1 {
			return nil
		}
		<-ctx.Done()
		close(cancelled)
		<-letGo // still busy after the cancel, like a run committing its last chunk
		return ctx.Err()
	}}
	must(t, s.Add(gone))
	must(t, s.Add(Job{Tenant: "gone", Source: "idle", Spec: mustParse(t, "1d"), Jitter: 24 * time.Hour, Run: nop}))
	must(t, s.Add(Job{Tenant: "stay", Source: "alerts", Spec: mustParse(t, "5m"), Run: nop}))
	must(t, s.Start(ctx))
	rec.waitFor(ctx, t, "gone's run", func(r *recorder) bool { return r.count("started") >= 2 })

	done := s.Remove("gone")
	<-cancelled
	select {
	case <-done:
		t.Fatal("Remove's channel closed while the run was still going")
	default:
	}
	if err := s.Add(gone); err == nil || !strings.Contains(err.Error(), "still finishing") {
		t.Fatalf("re-adding during the run: %v", err)
	}
	for _, j := range s.Status() {
		if j.Tenant == "gone" {
			t.Fatalf("removed job listed: %+v", j)
		}
	}
	close(letGo)
	<-done

	// Taken back (the shard came home): it runs at once, then on schedule.
	fc.Advance(time.Minute)
	must(t, s.Add(gone))
	rec.waitFor(ctx, t, "the re-added run", func(r *recorder) bool { return goneRuns.Load() == 2 })
	park(ctx, t, fc, rec)
	for _, j := range s.Status() {
		if j.Tenant == "gone" && !j.Next.Equal(t0.Add(5*time.Minute)) {
			t.Fatalf("re-added job next due %v, want the 5m grid", j.Next)
		}
	}
	select {
	case <-s.Remove("nobody"):
	default:
		t.Fatal("removing an unknown tenant must return a closed channel")
	}
	<-s.RemoveJob("stay", "alerts")
	if st := s.Status(); len(st) != 1 || st[0].Tenant != "gone" {
		t.Fatalf("after RemoveJob: %+v", st)
	}
}

func TestLateSchedulerFiresOnceNotOncePerMissedTime(t *testing.T) {
	ctx := testCtx(t)
	s, fc, rec := newTest(t, Options{})
	must(t, s.Add(Job{Tenant: "t", Source: "s", Spec: mustParse(t, "5m"), Run: nop}))
	must(t, s.Start(ctx))
	park(ctx, t, fc, rec)
	fc.Advance(62 * time.Minute) // e.g. the machine was suspended
	park(ctx, t, fc, rec)
	fired := rec.all("fired")
	if len(fired) != 2 || rec.count("skipped") != 0 {
		t.Fatalf("fired %d times and skipped %d; want the first run and one late firing, nothing for each missed time", len(fired), rec.count("skipped"))
	}
	if late := fired[1].f.Late(); late != 57*time.Minute {
		t.Fatalf("late %s, want 57m (due at 5m, seen at 62m)", late)
	}
	if next := s.Status()[0].Next; !next.Equal(t0.Add(65 * time.Minute)) {
		t.Fatalf("next due %v, want back on the grid at 65m", next)
	}
}

func TestFirstRunAfterAddIsDelayedByTheOffset(t *testing.T) {
	ctx := testCtx(t)
	s, fc, rec := newTest(t, Options{})
	must(t, s.Start(ctx))
	fc.Advance(time.Hour)
	j := Job{Tenant: "contoso", Source: "alerts", Spec: mustParse(t, "0 */6 * * *"), Jitter: 30 * time.Minute, Run: nop}
	off := Offset(j.Tenant, j.Source, j.Jitter)
	if off == 0 {
		t.Fatal("pick names with a non-zero offset")
	}
	must(t, s.Add(j))
	must(t, fc.BlockUntil(ctx, 1))
	if next, _ := fc.Next(); !next.Equal(t0.Add(time.Hour + off)) {
		t.Fatalf("first run due %v, want added at 01:00 + offset %s", next, off)
	}
	if rec.count("fired") != 0 {
		t.Fatal("fired before its offset")
	}
	fc.Advance(off)
	park(ctx, t, fc, rec)
	if f := rec.all("fired"); len(f) != 1 || !f[0].f.Due.Equal(t0.Add(time.Hour+off)) {
		t.Fatalf("fired %+v", f)
	}
	// Cron: the next firing is the cron time delayed by the offset.
	if next := s.Status()[0].Next; !next.Equal(t0.Add(6*time.Hour + off)) {
		t.Fatalf("next due %v, want 06:00 + %s", next, off)
	}
}

func TestAddAndNewRejectBadInput(t *testing.T) {
	s, _, _ := newTest(t, Options{})
	spec := mustParse(t, "5m")
	must(t, s.Add(Job{Tenant: "t", Source: "s", Spec: spec, Run: nop}))
	tests := []struct {
		name string
		job  Job
		want string
	}{
		{"no tenant", Job{Source: "s", Spec: spec, Run: nop}, "must both be named"},
		{"no source", Job{Tenant: "t", Spec: spec, Run: nop}, "must both be named"},
		{"no spec", Job{Tenant: "t", Source: "x", Run: nop}, "no schedule"},
		{"no run", Job{Tenant: "t", Source: "x", Spec: spec}, "Run is nil"},
		{"negative jitter", Job{Tenant: "t", Source: "x", Spec: spec, Run: nop, Jitter: -time.Second}, "negative"},
		{"duplicate", Job{Tenant: "t", Source: "s", Spec: spec, Run: nop}, "already scheduled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Add(tt.job)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Add = %v, want an error saying %q", err, tt.want)
			}
		})
	}
	if _, err := New(Options{MaxConcurrent: -1}); err == nil {
		t.Fatal("New accepted a negative limit")
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err == nil {
		t.Fatal("Start twice succeeded")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// blockingObserver holds the firing loop in Fired until released: a
// stuck loop, as /healthz must notice.
type blockingObserver struct {
	NopObserver
	release chan struct{}
	once    sync.Once
	entered chan struct{}
}

func (b *blockingObserver) Fired(Firing) {
	b.once.Do(func() { close(b.entered) })
	<-b.release
}

// TestAliveNoticesAStuckLoop: Alive is nil while the loop fires on time
// and names the overdue job once the loop is stuck past the grace.
func TestAliveNoticesAStuckLoop(t *testing.T) {
	ctx := testCtx(t)
	obs := &blockingObserver{release: make(chan struct{}), entered: make(chan struct{})}
	s, fc, _ := newTest(t, Options{})
	s.obs = obs
	spec, _ := Parse("5m")
	if err := s.Add(Job{Tenant: "t", Source: "s", Spec: spec, Run: nop}); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer close(obs.release) // before newTest's cleanup shuts it down
	select {
	case <-obs.entered: // the first firing: the loop is now held
	case <-ctx.Done():
		t.Fatal("no firing")
	}
	if err := s.Alive(time.Minute); err != nil {
		t.Fatalf("Alive right after a firing: %v", err)
	}
	fc.Advance(10 * time.Minute) // the next is due at 5 m; the loop cannot fire it
	err := s.Alive(time.Minute)
	if err == nil || !strings.Contains(err.Error(), "t/s") || !strings.Contains(err.Error(), "overdue") {
		t.Fatalf("Alive with a stuck loop = %v, want the overdue job named", err)
	}
}

// TestTriggerRunsNowOrRightAfter: a trigger runs an hourly job at once
// (its schedule carries on after it); triggers that come while it runs
// make it run once more as soon as it ends, not once per trigger; a job
// not scheduled cannot be triggered.
func TestTriggerRunsNowOrRightAfter(t *testing.T) {
	ctx := testCtx(t)
	s, fc, rec := newTest(t, Options{})
	block := make(chan struct{})
	var calls atomic.Int32
	must(t, s.Add(Job{Tenant: "t", Source: "auditlog", Spec: mustParse(t, "1h"), Run: func(context.Context) error {
		if calls.Add(1) == 2 {
			<-block // the triggered run is still going when more triggers come
		}
		return nil
	}}))
	must(t, s.Start(ctx))
	rec.waitFor(ctx, t, "the first run", func(r *recorder) bool { return r.count("finished") == 1 })
	park(ctx, t, fc, rec)

	fc.Advance(10 * time.Minute)
	if !s.Trigger("t", "auditlog") {
		t.Fatal("Trigger found no job")
	}
	rec.waitFor(ctx, t, "the triggered run", func(r *recorder) bool { return r.count("started") == 2 })
	if got := rec.all("started")[1].f.Due; !got.Equal(t0.Add(10 * time.Minute)) {
		t.Errorf("triggered run due %s, want at the trigger (%s)", got, t0.Add(10*time.Minute))
	}
	for range 3 {
		if !s.Trigger("t", "auditlog") {
			t.Fatal("Trigger during a run found no job")
		}
	}
	close(block)
	rec.waitFor(ctx, t, "the run after the triggers", func(r *recorder) bool { return r.count("finished") == 3 })
	park(ctx, t, fc, rec)
	if n := calls.Load(); n != 3 {
		t.Errorf("%d runs; want 3 (start, trigger, one for the triggers during it)", n)
	}
	// The hourly schedule carries on.
	fc.Advance(time.Hour)
	rec.waitFor(ctx, t, "the next scheduled run", func(r *recorder) bool { return r.count("finished") == 4 })
	if s.Trigger("t", "other") {
		t.Error("Trigger of a job never added reported success")
	}
}
