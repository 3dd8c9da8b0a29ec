package schedule

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/clock"
)

var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC) // a Sunday, on every interval grid

// testCtx bounds a test that would otherwise hang on a bug; nothing in
// the tests waits on it to pass.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

type event struct {
	kind  string // fired, skipped, waiting, started, finished
	f     Firing
	why   SkipReason
	limit Limit
	took  time.Duration
	err   error
}

// recorder is an Observer that keeps every call and lets a test wait for
// a condition on them.
type recorder struct {
	mu      sync.Mutex
	events  []event
	changed chan struct{}
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{})} }

func (r *recorder) add(e event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

func (r *recorder) Fired(f Firing)                 { r.add(event{kind: "fired", f: f}) }
func (r *recorder) Skipped(f Firing, w SkipReason) { r.add(event{kind: "skipped", f: f, why: w}) }
func (r *recorder) Waiting(f Firing, l Limit)      { r.add(event{kind: "waiting", f: f, limit: l}) }
func (r *recorder) Started(f Firing)               { r.add(event{kind: "started", f: f}) }
func (r *recorder) Finished(f Firing, d time.Duration, err error) {
	r.add(event{kind: "finished", f: f, took: d, err: err})
}

// all returns the recorded events of kind ("" = every kind).
func (r *recorder) all(kind string) []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []event
	for _, e := range r.events {
		if kind == "" || e.kind == kind {
			out = append(out, e)
		}
	}
	return out
}

func (r *recorder) count(kind string) int { return len(r.all(kind)) }

// waitFor blocks until cond holds for the recorded events.
func (r *recorder) waitFor(ctx context.Context, t *testing.T, what string, cond func(r *recorder) bool) {
	t.Helper()
	for {
		r.mu.Lock()
		ch := r.changed
		r.mu.Unlock()
		if cond(r) {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("gave up waiting for %s; events: %d fired, %d started, %d finished, %d skipped, %d waiting",
				what, r.count("fired"), r.count("started"), r.count("finished"), r.count("skipped"), r.count("waiting"))
		}
	}
}

// settled: every firing has finished or was skipped while waiting.
func settled(r *recorder) bool {
	stopped := 0
	for _, e := range r.all("skipped") {
		if e.why == SkipStopped {
			stopped++
		}
	}
	return r.count("fired") == r.count("finished")+stopped
}

// park waits until the scheduler's loop sleeps on its timer and every run
// it fired so far has ended: the state in which a test moves the clock.
func park(ctx context.Context, t *testing.T, fc *clock.Fake, r *recorder) {
	t.Helper()
	if err := fc.BlockUntil(ctx, 1); err != nil {
		t.Fatalf("the scheduler never parked on its timer: %v", err)
	}
	r.waitFor(ctx, t, "the fired runs to end", settled)
}

func newTest(t *testing.T, opts Options) (*Scheduler, *clock.Fake, *recorder) {
	t.Helper()
	fc := clock.NewFake(t0)
	rec := newRecorder()
	opts.Clock, opts.Observer = fc, rec
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Bounded: a test that failed early may leave a run blocked.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return s, fc, rec
}

func nop(context.Context) error { return nil }
