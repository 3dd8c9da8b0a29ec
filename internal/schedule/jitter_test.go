package schedule

import (
	"fmt"
	"testing"
	"time"
)

// TestOffsetIsPinned: offsets decide when every job of every tenant runs;
// these values (FNV-1a 64 of tenant NUL source, mod jitter, checked
// against an independent implementation) must not change by accident.
func TestOffsetIsPinned(t *testing.T) {
	tests := []struct {
		tenant, source string
		want           time.Duration
	}{
		{"contoso", "alerts", 3070616800663},
		{"fabrikam", "machines", 3044838527640},
		{"72f988bf-86f1-41af-91ab-2d7cd011db47", "timeline", 268402729797},
		{"a", "bc", 17423684899},
		{"ab", "c", 2037221804135},
	}
	for _, tt := range tests {
		if got := Offset(tt.tenant, tt.source, time.Hour); got != tt.want {
			t.Errorf("Offset(%q, %q, 1h) = %d, want %d", tt.tenant, tt.source, got, tt.want)
		}
	}
}

func TestOffsetRangeAndSpread(t *testing.T) {
	if Offset("t", "s", 0) != 0 || Offset("t", "s", -time.Minute) != 0 {
		t.Fatal("no jitter must mean no offset")
	}
	const jitter = 10 * time.Minute
	buckets := make([]int, 10) // one per minute
	for i := range 1000 {
		off := Offset(fmt.Sprintf("tenant-%d", i), "alerts", jitter)
		if off < 0 || off >= jitter {
			t.Fatalf("offset %s outside [0, %s)", off, jitter)
		}
		buckets[off/time.Minute]++
	}
	for i, n := range buckets {
		if n < 60 || n > 140 { // 100 expected per minute
			t.Fatalf("minute %d of the jitter window holds %d of 1000 tenants: %v", i, n, buckets)
		}
	}
}

func TestIntervalOffsetIsAPhase(t *testing.T) {
	j := Job{Tenant: "contoso", Source: "alerts", Spec: mustParse(t, "5m"), Jitter: time.Hour}
	if off := offset(j); off >= 5*time.Minute || off != Offset(j.Tenant, j.Source, time.Hour)%(5*time.Minute) {
		t.Fatalf("offset %s; an interval job's offset is a phase within its interval", off)
	}
	j.Spec = mustParse(t, "@hourly")
	if off := offset(j); off != Offset(j.Tenant, j.Source, time.Hour) {
		t.Fatalf("offset %s; a cron job is delayed by the whole offset", off)
	}
}
