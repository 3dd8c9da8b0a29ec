package clock

import (
	"net/http"
	"testing"
	"time"
)

func TestSkewMeter(t *testing.T) {
	local := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		offsets []time.Duration // server − local of each answer
		want    time.Duration
		wantOK  bool
	}{
		{"nothing observed", nil, 0, false},
		{"two answers are not enough", []time.Duration{5 * time.Minute, 5 * time.Minute}, 0, false},
		{"server five minutes ahead", []time.Duration{5 * time.Minute, 5 * time.Minute, 5 * time.Minute}, 5 * time.Minute, true},
		{"our clock ahead by ten minutes", []time.Duration{-10 * time.Minute, -10 * time.Minute, -10 * time.Minute}, -10 * time.Minute, true},
		{"one-second resolution is noise", []time.Duration{time.Second, 0, -time.Second, time.Second}, 0, true},
		{"an outlier does not move the median", []time.Duration{2 * time.Minute, 2 * time.Minute, 2 * time.Minute, 3 * time.Hour, 2 * time.Minute}, 2 * time.Minute, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewSkewMeter()
			for _, off := range tt.offsets {
				// Date headers carry whole seconds.
				m.Observe(local.Add(off).Truncate(time.Second), local)
			}
			got, ok := m.Skew()
			if ok != tt.wantOK || got != tt.want {
				t.Fatalf("Skew() = %s, %v; want %s, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestSkewMeterKeepsRecentObservations(t *testing.T) {
	local := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	m := NewSkewMeter()
	for i := 0; i < 100; i++ {
		m.Observe(local.Add(-time.Hour), local)
	}
	// The clock was corrected: recent answers agree with ours.
	for i := 0; i < skewWindow; i++ {
		m.Observe(local, local)
	}
	if got, ok := m.Skew(); !ok || got != 0 {
		t.Fatalf("Skew() = %s, %v; want 0 once the recent answers agree", got, ok)
	}
}

func TestSkewMeterHeaders(t *testing.T) {
	local := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	m := NewSkewMeter()
	for _, v := range []string{"", "yesterday", "Sun, 99 Foo 2026 25:61:00 GMT"} {
		h := http.Header{}
		if v != "" {
			h.Set("Date", v)
		}
		m.ObserveHeader(h, local)
	}
	m.ObserveHeader(nil, local)
	if _, ok := m.Skew(); ok {
		t.Fatal("missing or garbage Date headers must not count as observations")
	}
	for i := 0; i < 3; i++ {
		h := http.Header{"Date": {local.Add(3 * time.Minute).Format(http.TimeFormat)}}
		m.ObserveHeader(h, local)
	}
	if got, ok := m.Skew(); !ok || got != 3*time.Minute {
		t.Fatalf("Skew() = %s, %v; want 3m0s", got, ok)
	}
	var nilMeter *SkewMeter
	nilMeter.Observe(local, local)
	if _, ok := nilMeter.Skew(); ok {
		t.Fatal("a nil meter reports nothing")
	}
}
