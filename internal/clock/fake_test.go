package clock

import (
	"context"
	"sync"
	"testing"
	"time"
)

var (
	_ Clock = (*Fake)(nil)
	_ Clock = Real()
)

var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// received drains what the timers sent so far, in the order given.
func received(ts ...Timer) []time.Time {
	var out []time.Time
	for _, t := range ts {
		select {
		case v := <-t.C():
			out = append(out, v)
		default:
			out = append(out, time.Time{})
		}
	}
	return out
}

func TestFakeAdvanceFiresDueTimersWithTheirDeadlines(t *testing.T) {
	f := NewFake(t0)
	a := f.NewTimer(3 * time.Minute)
	b := f.NewTimer(time.Minute)
	c := f.NewTimer(10 * time.Minute)
	if got := f.Waiters(); got != 3 {
		t.Fatalf("Waiters() = %d, want 3", got)
	}
	if next, ok := f.Next(); !ok || !next.Equal(t0.Add(time.Minute)) {
		t.Fatalf("Next() = %v, %v; want %v", next, ok, t0.Add(time.Minute))
	}
	f.Advance(5 * time.Minute)
	got := received(a, b, c)
	want := []time.Time{t0.Add(3 * time.Minute), t0.Add(time.Minute), {}}
	for i := range want {
		if !got[i].Equal(want[i]) {
			t.Fatalf("timer %d received %v, want %v", i, got[i], want[i])
		}
	}
	if now := f.Now(); !now.Equal(t0.Add(5 * time.Minute)) {
		t.Fatalf("Now() = %v after Advance(5m)", now)
	}
	if got := f.Waiters(); got != 1 {
		t.Fatalf("Waiters() = %d after two fired, want 1", got)
	}
	f.Advance(-time.Hour)
	if now := f.Now(); !now.Equal(t0.Add(5 * time.Minute)) {
		t.Fatalf("a negative Advance moved the clock to %v", now)
	}
}

func TestFakeStepsFromDeadlineToDeadline(t *testing.T) {
	f := NewFake(t0)
	var order []int
	// Step with Next from deadline to deadline: each step fires exactly
	// the timers due then — 2 (1m), then 0 and 3 (2m), then 1.
	deadlines := []time.Duration{2 * time.Minute, 3 * time.Minute, time.Minute, 2 * time.Minute}
	ts := make([]Timer, len(deadlines))
	for i, d := range deadlines {
		ts[i] = f.NewTimer(d)
	}
	for step := 0; step < 3; step++ {
		next, ok := f.Next()
		if !ok {
			t.Fatal("no pending timer")
		}
		f.Set(next)
		for i, tm := range ts {
			select {
			case v := <-tm.C():
				if !v.Equal(next) {
					t.Fatalf("timer %d received %v, want %v", i, v, next)
				}
				order = append(order, i)
			default:
			}
		}
	}
	want := []int{2, 0, 3, 1}
	if len(order) != len(want) {
		t.Fatalf("fired %v, want %v", order, want)
	}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("fired %v, want %v", order, want)
		}
	}
}

func TestFakeSetBackwardFiresNothing(t *testing.T) {
	f := NewFake(t0)
	tm := f.NewTimer(time.Hour)
	f.Set(t0.Add(-time.Hour))
	if now := f.Now(); !now.Equal(t0.Add(-time.Hour)) {
		t.Fatalf("Now() = %v, want an hour before start", now)
	}
	if f.Waiters() != 1 {
		t.Fatal("a backward step must not fire or drop a timer")
	}
	f.Set(t0.Add(time.Hour))
	if got := received(tm)[0]; !got.Equal(t0.Add(time.Hour)) {
		t.Fatalf("timer received %v, want its deadline", got)
	}
}

func TestFakeTimerStop(t *testing.T) {
	tests := []struct {
		name     string
		advance  time.Duration
		receive  bool // the value was received before Stop
		wantStop bool
	}{
		{"pending", time.Minute, false, true},
		{"fired, not received", 2 * time.Hour, false, true},
		{"fired and received", 2 * time.Hour, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewFake(t0)
			tm := f.NewTimer(time.Hour)
			f.Advance(tt.advance)
			if tt.receive {
				<-tm.C()
			}
			if got := tm.Stop(); got != tt.wantStop {
				t.Fatalf("Stop() = %v, want %v", got, tt.wantStop)
			}
			if tm.Stop() {
				t.Fatal("a second Stop must report false")
			}
			f.Advance(24 * time.Hour)
			select {
			case v := <-tm.C():
				t.Fatalf("received %v after Stop", v)
			default:
			}
			if f.Waiters() != 0 {
				t.Fatalf("Waiters() = %d after Stop", f.Waiters())
			}
		})
	}
}

func TestFakeNonPositiveTimerFiresAtOnce(t *testing.T) {
	f := NewFake(t0)
	for _, d := range []time.Duration{0, -time.Second} {
		tm := f.NewTimer(d)
		if got := received(tm)[0]; !got.Equal(t0) {
			t.Fatalf("NewTimer(%v) received %v, want %v at once", d, got, t0)
		}
	}
	if f.Waiters() != 0 {
		t.Fatal("a timer that fired at once is not a waiter")
	}
}

func TestFakeBlockUntil(t *testing.T) {
	f := NewFake(t0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fired := make(chan time.Time)
	// Two goroutines park on a timer each; BlockUntil(2) returns only
	// once both are parked, so the Advance that follows reaches both.
	for i := 0; i < 2; i++ {
		go func() {
			tm := f.NewTimer(time.Minute)
			fired <- <-tm.C()
		}()
	}
	if err := f.BlockUntil(ctx, 2); err != nil {
		t.Fatal(err)
	}
	f.Advance(time.Minute)
	for i := 0; i < 2; i++ {
		if v := <-fired; !v.Equal(t0.Add(time.Minute)) {
			t.Fatalf("received %v", v)
		}
	}
	short, stop := context.WithCancel(ctx)
	stop()
	if err := f.BlockUntil(short, 1); err != context.Canceled {
		t.Fatalf("BlockUntil with nothing pending and a cancelled context = %v, want context.Canceled", err)
	}
}

// TestFakeConcurrentUse is for -race: timers created, stopped and fired
// from many goroutines while the clock moves.
func TestFakeConcurrentUse(t *testing.T) {
	f := NewFake(t0)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				tm := f.NewTimer(time.Duration(j%7) * time.Second)
				if j%2 == 0 {
					tm.Stop()
				}
				_ = f.Now()
			}
		}()
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			default:
				f.Advance(time.Second)
				f.Waiters()
			}
		}
	}()
	wg.Wait()
	close(done)
	f.Advance(time.Minute)
	if n := f.Waiters(); n != 0 {
		t.Fatalf("Waiters() = %d after every deadline passed", n)
	}
}
