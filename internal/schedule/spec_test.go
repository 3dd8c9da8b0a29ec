package schedule

import (
	"strings"
	"testing"
	"time"
)

func mustParse(t testing.TB, s string) Spec {
	t.Helper()
	sp, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func TestParseAndNext(t *testing.T) {
	// 2026-03-04 is a Wednesday.
	after := time.Date(2026, 3, 4, 10, 7, 30, 0, time.UTC)
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		spec   string
		after  time.Time
		want   time.Time
		String string
	}{
		// Intervals are aligned to the Unix epoch, not to after.
		{"5m", after, time.Date(2026, 3, 4, 10, 10, 0, 0, time.UTC), "5m"},
		{"90s", after, time.Date(2026, 3, 4, 10, 9, 0, 0, time.UTC), "90s"},
		{"1h", after, time.Date(2026, 3, 4, 11, 0, 0, 0, time.UTC), "1h"},
		{"1h30m", after, time.Date(2026, 3, 4, 10, 30, 0, 0, time.UTC), "1h30m"},
		{"1d", after, time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC), "1d"},
		{"7d", after, time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC), "7d"},       // Thursdays, like 1970-01-01
		{"1d12h", after, time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC), "1d12h"}, // multiples of 36h since the epoch
		{"30s", after, time.Date(2026, 3, 4, 10, 8, 0, 0, time.UTC), "30s"},
		{"@every 10m", after, time.Date(2026, 3, 4, 10, 10, 0, 0, time.UTC), "@every 10m"},
		{"  @every   2d ", after, time.Date(2026, 3, 6, 0, 0, 0, 0, time.UTC), "@every 2d"},
		// Exactly on a due time: the next one.
		{"5m", time.Date(2026, 3, 4, 10, 10, 0, 0, time.UTC), time.Date(2026, 3, 4, 10, 15, 0, 0, time.UTC), "5m"},
		// Before 1970 the grid still holds.
		{"1h", time.Date(1969, 12, 31, 22, 30, 0, 0, time.UTC), time.Date(1969, 12, 31, 23, 0, 0, 0, time.UTC), "1h"},
		// Cron: UTC unless told, whatever after's location.
		{"*/5 * * * *", after, time.Date(2026, 3, 4, 10, 10, 0, 0, time.UTC), "*/5 * * * *"},
		{"0 6 * * *", after.In(berlin), time.Date(2026, 3, 5, 6, 0, 0, 0, time.UTC), "0 6 * * *"},
		{"0 6 * * mon-fri", time.Date(2026, 3, 6, 7, 0, 0, 0, time.UTC), time.Date(2026, 3, 9, 6, 0, 0, 0, time.UTC), "0 6 * * mon-fri"},
		{"CRON_TZ=Europe/Berlin 0 6 * * *", after, time.Date(2026, 3, 5, 5, 0, 0, 0, time.UTC), "CRON_TZ=Europe/Berlin 0 6 * * *"},
		{"TZ=America/New_York 0 6 * * *", after, time.Date(2026, 3, 4, 11, 0, 0, 0, time.UTC), "TZ=America/New_York 0 6 * * *"},
		{"@hourly", after, time.Date(2026, 3, 4, 11, 0, 0, 0, time.UTC), "@hourly"},
		{"@daily", after, time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC), "@daily"},
		{"CRON_TZ=Europe/Berlin @daily", after, time.Date(2026, 3, 4, 23, 0, 0, 0, time.UTC), "CRON_TZ=Europe/Berlin @daily"},
		{"@weekly", after, time.Date(2026, 3, 8, 0, 0, 0, 0, time.UTC), "@weekly"},
		{"0 0 29 2 *", after, time.Date(2028, 2, 29, 0, 0, 0, 0, time.UTC), "0 0 29 2 *"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			sp := mustParse(t, tt.spec)
			if got := sp.Next(tt.after); !got.Equal(tt.want) {
				t.Fatalf("Next(%v) = %v, want %v", tt.after, got.UTC(), tt.want)
			}
			if sp.String() != tt.String {
				t.Fatalf("String() = %q, want %q", sp.String(), tt.String)
			}
			again := mustParse(t, sp.String())
			if got := again.Next(tt.after); !got.Equal(tt.want) {
				t.Fatalf("String() did not read back to the same spec: Next = %v", got)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		spec string
		want []string // substrings of the error
	}{
		{"", []string{`schedule ""`, "empty", "expected an interval"}},
		{"   ", []string{"empty"}},
		{"*/5 * *", []string{`schedule "*/5 * *": expected an interval such as 5m or a cron expression with 5 fields (minute hour day month weekday): found 3 fields`}},
		{"0 */5 * * * *", []string{"found 6 fields"}},
		{"10s", []string{"shorter than the minimum 30s"}},
		{"29s", []string{"shorter than the minimum 30s"}},
		{"0", []string{"shorter than the minimum"}},
		{"-5m", []string{"shorter than the minimum"}},
		{"0d", []string{"shorter than the minimum"}},
		{"90.5s", []string{"whole seconds"}},
		{"367d", []string{"longer than the maximum 366d", "@yearly"}},
		{"99999999999999999999d", []string{"longer than the maximum"}},
		{"366d1h", []string{"longer than the maximum"}},
		{"1d-5h", []string{"after the days"}},
		{"5x", []string{"expected an interval such as 5m", `unknown unit "x"`}},
		{"1.5d", []string{"expected an interval"}},
		{"five minutes", []string{"found 2 fields"}},
		{"@every", []string{"unknown descriptor"}},
		{"@every 10s", []string{"shorter than the minimum"}},
		{"@every banana", []string{"expected an interval"}},
		{"@fortnightly", []string{"unknown descriptor", "@hourly"}},
		{"60 * * * *", []string{"expected an interval", "above maximum"}},
		{"* 24 * * *", []string{"above maximum"}},
		{"* * 0 * *", []string{"below minimum"}},
		{"* * * 13 *", []string{"above maximum"}},
		{"* * * * 8", []string{"above maximum"}},
		{"*/0 * * * *", []string{"step"}},
		{"5-1 * * * *", []string{"beyond end"}},
		{"0 0 30 2 *", []string{"never matches a real date"}},
		{"0 0 31 4,6 *", []string{"never matches"}},
		{"TZ=", []string{"must be followed by a cron expression"}},
		{"TZ=UTC", []string{"must be followed by a cron expression"}},
		{"CRON_TZ=Europe/Berlin", []string{"must be followed"}},
		{"TZ=TZ=TZ=", []string{"must be followed"}},
		{"TZ= 0 6 * * *", []string{"empty time zone"}},
		{"TZ=Mars/Olympus 0 6 * * *", []string{`unknown time zone "Mars/Olympus"`, "IANA"}},
		{"TZ=../../etc/passwd 0 6 * * *", []string{"unknown time zone"}},
		{"TZ=Local 0 6 * * *", []string{"depends on the machine"}},
		{"TZ=UTC TZ=UTC 0 6 * * *", []string{"more than one time zone"}},
		{"TZ=UTC 5m", []string{"cron expressions only"}},
		{"TZ=UTC @every 5m", []string{"cron expressions only"}},
		{strings.Repeat("1", 300), []string{"too long"}},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			sp, err := Parse(tt.spec)
			if err == nil {
				t.Fatalf("Parse(%q) = %q, want an error", tt.spec, sp)
			}
			if !sp.IsZero() {
				t.Fatal("a failed Parse must return the zero Spec")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("Parse(%q) error %q does not say %q", tt.spec, err, w)
				}
			}
		})
	}
}

// TestCronAcrossDST walks a year of a zone with daylight saving: every due
// time comes strictly after the one before, and none is lost.
func TestCronAcrossDST(t *testing.T) {
	for _, spec := range []string{
		"CRON_TZ=Europe/Berlin 30 2 * * *", // 02:30 is skipped in March, doubled in October
		"CRON_TZ=America/Sao_Paulo 0 0 * * *",
		"CRON_TZ=Europe/Berlin */15 * * * *",
	} {
		sp := mustParse(t, spec)
		at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		end := at.AddDate(1, 0, 0)
		n := 0
		for at.Before(end) {
			next := sp.Next(at)
			if !next.After(at) {
				t.Fatalf("%s: Next(%v) = %v, not after it", spec, at, next)
			}
			at = next
			n++
		}
		if n < 364 {
			t.Fatalf("%s: %d due times in a year", spec, n)
		}
	}
}

func TestZeroSpecIsNeverDue(t *testing.T) {
	var sp Spec
	if !sp.IsZero() || !sp.Next(time.Now()).IsZero() || sp.String() != "" {
		t.Fatal("the zero Spec must never be due")
	}
	far := time.Unix(1<<62, 0)
	if got := mustParse(t, "1h").Next(far); !got.IsZero() && !got.After(far) {
		t.Fatalf("Next near the end of time = %v", got)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"5m", "1d12h", "@every 10m", "*/5 * * * *", "CRON_TZ=Europe/Berlin 0 6 * * *",
		"TZ=", "TZ=UTC", "@daily", "0 0 30 2 *", "1-5/2,7 */3 1 jan-mar sun", "99999999999999999999d", "-1d", "?"} {
		f.Add(s, int64(1772618850))
	}
	f.Fuzz(func(t *testing.T, s string, unix int64) {
		sp, err := Parse(s)
		if err != nil {
			if !sp.IsZero() {
				t.Fatal("error with a non-zero Spec")
			}
			if !strings.HasPrefix(err.Error(), "schedule ") {
				t.Fatalf("error %q does not name the schedule", err)
			}
			return
		}
		if sp.IsZero() {
			t.Fatal("no error and a zero Spec")
		}
		again, err := Parse(sp.String())
		if err != nil {
			t.Fatalf("String() %q does not parse back: %v", sp.String(), err)
		}
		after := time.Unix(unix%(1<<40), 0).UTC() // ±35,000 years
		n1, n2 := sp.Next(after), again.Next(after)
		if !n1.Equal(n2) {
			t.Fatalf("%q and its String() disagree: %v vs %v", s, n1, n2)
		}
		if !n1.IsZero() && !n1.After(after) {
			t.Fatalf("Next(%v) = %v, not after it", after, n1)
		}
		if every := sp.interval(); every > 0 && (every < MinInterval || every > MaxInterval || every%time.Second != 0) {
			t.Fatalf("interval %s outside the rules", every)
		}
	})
}
