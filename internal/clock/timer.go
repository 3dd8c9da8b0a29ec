package clock

import "time"

// Clock is what a long-running component needs of time: the current
// instant and timers. Real is the machine's clock; tests drive a Fake so
// they never sleep.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that sends the time on C once d has
	// passed; a non-positive d fires at once.
	NewTimer(d time.Duration) Timer
}

// Timer is the part of *time.Timer that a Clock can drive.
type Timer interface {
	C() <-chan time.Time
	// Stop prevents the timer from firing. It reports whether it stopped
	// it; false means the value was already received or the timer was
	// already stopped. After Stop no stale value is received from C (the
	// Go 1.23 timer rule, kept by Fake too).
	Stop() bool
}

// Real returns the machine's clock.
func Real() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time { return r.t.C }
func (r realTimer) Stop() bool          { return r.t.Stop() }
