package clock

import (
	"context"
	"sync"
	"time"
)

// Fake is a Clock that moves only when a test moves it, so code that
// waits for hours is tested in microseconds and every instant it sees is
// exact. Tests wait with BlockUntil until the code under test is parked
// on its timers, then Advance; this is the clockwork pattern. Safe for
// concurrent use.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	seq     uint64        // creation order: timers due at the same instant fire in it
	pending []*fakeTimer  // neither fired nor stopped
	changed chan struct{} // closed (and replaced) whenever pending changes
}

// NewFake returns a fake clock that reads start until it is moved.
func NewFake(start time.Time) *Fake {
	return &Fake{now: start, changed: make(chan struct{})}
}

// Now returns the fake's current time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// NewTimer returns a timer that fires when the fake reaches Now()+d; a
// non-positive d fires at once, as a real timer does.
func (f *Fake) NewTimer(d time.Duration) Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{f: f, when: f.now.Add(d), seq: f.seq, ch: make(chan time.Time, 1)}
	f.seq++
	if d <= 0 {
		t.ch <- f.now
		return t
	}
	f.pending = append(f.pending, t)
	f.notifyLocked()
	return t
}

// Advance moves the clock forward by d, firing every timer that falls
// due on the way in deadline order (creation order for equal deadlines);
// each timer receives its own deadline on C. A negative d does nothing.
func (f *Fake) Advance(d time.Duration) {
	if d < 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.advanceLocked(f.now.Add(d))
}

// Set moves the clock to t. Forward it fires timers like Advance;
// backward (a wall-clock step) it fires nothing and pending timers keep
// their deadlines.
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t.Before(f.now) {
		f.now = t
		return
	}
	f.advanceLocked(t)
}

func (f *Fake) advanceLocked(target time.Time) {
	fired := false
	for {
		i := -1
		for j, t := range f.pending {
			if t.when.After(target) {
				continue
			}
			if i < 0 || t.when.Before(f.pending[i].when) || (t.when.Equal(f.pending[i].when) && t.seq < f.pending[i].seq) {
				i = j
			}
		}
		if i < 0 {
			break
		}
		t := f.pending[i]
		f.pending = append(f.pending[:i], f.pending[i+1:]...)
		if t.when.After(f.now) {
			f.now = t.when
		}
		t.ch <- t.when // never blocks: a timer fires once into its own buffer
		fired = true
	}
	if target.After(f.now) {
		f.now = target
	}
	if fired {
		f.notifyLocked()
	}
}

// Waiters returns how many timers are pending (created, not yet fired
// nor stopped).
func (f *Fake) Waiters() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.pending)
}

// BlockUntil returns once at least n timers are pending — the code under
// test is parked and the next Advance will reach it — or with ctx's
// error when ctx ends first.
func (f *Fake) BlockUntil(ctx context.Context, n int) error {
	for {
		f.mu.Lock()
		ok, ch := len(f.pending) >= n, f.changed
		f.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Next returns the earliest deadline among the pending timers, and false
// when none is pending. Tests use it to step from one firing to the next.
func (f *Fake) Next() (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.pending) == 0 {
		return time.Time{}, false
	}
	next := f.pending[0].when
	for _, t := range f.pending[1:] {
		if t.when.Before(next) {
			next = t.when
		}
	}
	return next, true
}

func (f *Fake) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

type fakeTimer struct {
	f    *Fake
	when time.Time
	seq  uint64
	ch   chan time.Time
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	f := t.f
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, p := range f.pending {
		if p == t {
			f.pending = append(f.pending[:i], f.pending[i+1:]...)
			f.notifyLocked()
			return true
		}
	}
	// Fired: drop a value nobody received, so no stale tick follows Stop.
	select {
	case <-t.ch:
		return true
	default:
		return false
	}
}
