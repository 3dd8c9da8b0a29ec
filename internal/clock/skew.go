package clock

import (
	"net/http"
	"slices"
	"sync"
	"time"
)

// SkewNoise is the offset below which a measured skew is reported as 0:
// the Date header has one-second resolution and the answer spends some
// time on the wire, so smaller offsets say nothing about our clock.
const SkewNoise = 2 * time.Second

const (
	skewWindow  = 31 // recent observations kept; the median ignores outliers
	skewMinimum = 3  // observations needed before Skew reports anything
)

// SkewMeter estimates the offset server − local from the Date headers of
// the servers' answers. One meter is shared by every client of a run and
// is safe for concurrent use; a nil *SkewMeter ignores observations and
// reports nothing.
type SkewMeter struct {
	mu   sync.Mutex
	obs  [skewWindow]time.Duration
	n    int // observations stored (≤ skewWindow)
	next int // ring position of the next observation
}

// NewSkewMeter returns an empty meter.
func NewSkewMeter() *SkewMeter { return &SkewMeter{} }

// Observe records one answer: serverDate from its Date header and
// localReceived, our clock when its headers arrived. A zero serverDate
// is ignored.
func (m *SkewMeter) Observe(serverDate, localReceived time.Time) {
	if m == nil || serverDate.IsZero() || localReceived.IsZero() {
		return
	}
	// Date is truncated to the second and the answer spent time on the
	// wire: each observation is ±1 s, which SkewNoise absorbs.
	off := serverDate.Sub(localReceived)
	m.mu.Lock()
	m.obs[m.next] = off
	m.next = (m.next + 1) % skewWindow
	if m.n < skewWindow {
		m.n++
	}
	m.mu.Unlock()
}

// ObserveHeader records the Date header of an answer received at
// localReceived; a missing or unparsable Date is ignored.
func (m *SkewMeter) ObserveHeader(h http.Header, localReceived time.Time) {
	if m == nil || h == nil {
		return
	}
	v := h.Get("Date")
	if v == "" {
		return
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return
	}
	m.Observe(t, localReceived)
}

// Skew returns the median offset server − local of the recent answers,
// and false until at least three answers carried a usable Date. Offsets
// within ±SkewNoise are reported as 0.
func (m *SkewMeter) Skew() (time.Duration, bool) {
	if m == nil {
		return 0, false
	}
	m.mu.Lock()
	obs := slices.Clone(m.obs[:m.n])
	m.mu.Unlock()
	if len(obs) < skewMinimum {
		return 0, false
	}
	slices.Sort(obs)
	med := obs[len(obs)/2]
	if len(obs)%2 == 0 {
		med = (obs[len(obs)/2-1] + med) / 2
	}
	if med > -SkewNoise && med < SkewNoise {
		return 0, true
	}
	return med, true
}
