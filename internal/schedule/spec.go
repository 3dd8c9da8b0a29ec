// Package schedule decides when each (tenant, source) harvest runs in
// `serve`: schedules (intervals or cron expressions), a stable per-job
// jitter, and the Scheduler that fires jobs under global and per-tenant
// concurrency limits without ever overlapping two runs of one job.
package schedule

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/robfig/cron/v3"
)

const (
	// MinInterval is the shortest interval accepted: the APIs' rate limits
	// are shared by every source of a tenant, and a harvest of a busy
	// tenant takes longer than that anyway.
	MinInterval = 30 * time.Second
	// MaxInterval is the longest interval accepted; beyond it use a cron
	// expression (@yearly).
	MaxInterval = 366 * 24 * time.Hour
	// maxSpecLen bounds what reaches the cron parser; real specs are short.
	maxSpecLen = 200
)

const expected = "expected an interval such as 5m or a cron expression with 5 fields (minute hour day month weekday)"

// cronParser reads the standard five fields and descriptors; seconds are
// not offered (nothing here needs them, and six fields would make
// "0 */5 * * * *" mean something else than in crontab).
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Spec says when a job is due. The zero Spec is never due.
//
// An interval spec ("5m", "1h30m", "1d", "@every 10m") is due at every
// multiple of the interval since the Unix epoch (UTC), so its times do not
// depend on when the process started: "1h" is due on the hour, "1d" at
// midnight UTC, "7d" on Thursdays at midnight UTC (the epoch's weekday).
// A cron spec is due at the times of its expression, read in UTC unless it
// starts with CRON_TZ=<zone> or TZ=<zone>.
type Spec struct {
	text  string
	every time.Duration // interval specs
	cron  cron.Schedule // cron specs
}

// Parse reads a schedule: an interval (Go duration syntax plus a leading
// whole number of days, "7d", "1d12h"; whole seconds, MinInterval to
// MaxInterval), "@every <interval>", a five-field cron expression, or one
// of @hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually;
// cron expressions may start with CRON_TZ=<IANA zone> (or TZ=).
func Parse(s string) (Spec, error) {
	text := strings.Join(strings.Fields(s), " ")
	if len(text) > maxSpecLen {
		return Spec{}, fmt.Errorf("schedule %.40q…: %d characters is too long for a schedule; %s", text, len(text), expected)
	}
	sp, err := parse(text)
	if err != nil {
		return Spec{}, fmt.Errorf("schedule %q: %w", s, err)
	}
	sp.text = text
	return sp, nil
}

func parse(text string) (Spec, error) {
	if text == "" {
		return Spec{}, errors.New("empty; " + expected)
	}
	loc := time.UTC
	tz, rest, hasTZ := cutZone(text)
	if hasTZ {
		if rest == "" {
			return Spec{}, fmt.Errorf("time zone %q must be followed by a cron expression such as \"0 6 * * *\"", tz)
		}
		if tz == "" {
			return Spec{}, errors.New("empty time zone after TZ=; give an IANA name such as Europe/Berlin")
		}
		if _, _, again := cutZone(rest); again {
			return Spec{}, errors.New("more than one time zone prefix; give CRON_TZ=<zone> once")
		}
		if tz == "Local" {
			return Spec{}, errors.New("time zone Local depends on the machine; give an IANA name such as Europe/Berlin")
		}
		l, err := time.LoadLocation(tz)
		if err != nil {
			return Spec{}, fmt.Errorf("unknown time zone %q (give an IANA name such as Europe/Berlin): %w", tz, err)
		}
		loc, text = l, rest
	}

	if d, ok := strings.CutPrefix(text, "@every "); ok {
		if hasTZ {
			return Spec{}, errors.New("a time zone applies to cron expressions only; an interval is the same everywhere")
		}
		every, err := parseInterval(d)
		if err != nil {
			return Spec{}, err
		}
		return Spec{every: every}, nil
	}
	if strings.HasPrefix(text, "@") {
		switch text {
		case "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly":
		default:
			return Spec{}, fmt.Errorf("unknown descriptor %q; use @hourly, @daily, @weekly, @monthly, @yearly or @every <interval>", text)
		}
		return parseCron(text, loc)
	}
	if !strings.Contains(text, " ") {
		if hasTZ {
			return Spec{}, errors.New("a time zone applies to cron expressions only; an interval is the same everywhere")
		}
		every, err := parseInterval(text)
		if err != nil {
			return Spec{}, err
		}
		return Spec{every: every}, nil
	}
	if n := len(strings.Fields(text)); n != 5 {
		return Spec{}, fmt.Errorf("%s: found %d fields", expected, n)
	}
	return parseCron(text, loc)
}

// cutZone splits a CRON_TZ=/TZ= prefix off. robfig/cron's own handling
// panics on a prefix without a space (robfig/cron#554), so it never sees
// one.
func cutZone(text string) (zone, rest string, ok bool) {
	for _, p := range []string{"CRON_TZ=", "TZ="} {
		if after, found := strings.CutPrefix(text, p); found {
			zone, rest, _ = strings.Cut(after, " ")
			return zone, rest, true
		}
	}
	return "", "", false
}

func parseCron(text string, loc *time.Location) (sp Spec, err error) {
	defer func() {
		// The parser is third-party code fed with user input; a panic in
		// it is a bad schedule, not a crash.
		if r := recover(); r != nil {
			sp, err = Spec{}, fmt.Errorf("%s: cannot read it (%v)", expected, r)
		}
	}()
	sched, err := cronParser.Parse(text)
	if err != nil {
		return Spec{}, fmt.Errorf("%s: %w", expected, err)
	}
	ss, ok := sched.(*cron.SpecSchedule)
	if !ok {
		return Spec{}, fmt.Errorf("%s: unsupported form", expected)
	}
	ss.Location = loc // the parser defaults to time.Local; ours is UTC
	// Some valid-looking expressions never match (30 February).
	ref := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	if ss.Next(ref).IsZero() {
		return Spec{}, errors.New("the cron expression never matches a real date (e.g. day 30 of February); check day and month")
	}
	return Spec{cron: ss}, nil
}

// parseInterval reads a Go duration with an optional leading whole number
// of days ("7d", "1d12h").
func parseInterval(s string) (time.Duration, error) {
	var d time.Duration
	if i := strings.IndexByte(s, 'd'); i > 0 && isDigits(s[:i]) {
		days, err := strconv.Atoi(s[:i])
		if err != nil || days > int(MaxInterval/(24*time.Hour)) {
			return 0, fmt.Errorf("interval %q is longer than the maximum %s; use a cron expression such as @yearly", s, fmtInterval(MaxInterval))
		}
		d = time.Duration(days) * 24 * time.Hour
		if rest := s[i+1:]; rest != "" {
			if !unicode.IsDigit(rune(rest[0])) {
				return 0, fmt.Errorf("%s: interval %q: expected hours, minutes or seconds after the days, such as 1d12h", expected, s)
			}
			r, err := time.ParseDuration(rest)
			if err != nil {
				return 0, fmt.Errorf("%s: interval %q: %w", expected, s, err)
			}
			if r > MaxInterval {
				r = MaxInterval + 1 // reported below; avoids overflow
			}
			d += r
		}
	} else {
		var err error
		d, err = time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("%s: interval %q: %w (units: d, h, m, s)", expected, s, err)
		}
	}
	switch {
	case d < MinInterval:
		return 0, fmt.Errorf("interval %q is shorter than the minimum %s: the APIs' rate limits are shared by every source of a tenant", s, fmtInterval(MinInterval))
	case d > MaxInterval:
		return 0, fmt.Errorf("interval %q is longer than the maximum %s; use a cron expression such as @yearly", s, fmtInterval(MaxInterval))
	case d%time.Second != 0:
		return 0, fmt.Errorf("interval %q: give whole seconds", s)
	}
	return d, nil
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

func fmtInterval(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// Next returns the first time the spec is due strictly after after, in
// after's location; zero when it is never due again (the zero Spec, or a
// cron expression with no match within five years).
func (s Spec) Next(after time.Time) time.Time {
	switch {
	case s.every > 0:
		e := int64(s.every / time.Second)
		sec := after.Unix()
		if sec > math.MaxInt64-e {
			return time.Time{}
		}
		k := sec / e
		if sec%e < 0 {
			k-- // floor for times before 1970
		}
		return time.Unix((k+1)*e, 0).In(after.Location())
	case s.cron != nil:
		// Around a DST change a zone's local times are ambiguous and the
		// parser's answer can land at or before after; look again an hour
		// later rather than stop the job.
		probe := after
		for range 4 {
			n := s.cron.Next(probe)
			if n.IsZero() || n.After(after) {
				return n
			}
			probe = probe.Add(time.Hour)
		}
	}
	return time.Time{}
}

// String returns the spec as written (whitespace collapsed); Parse reads it
// back to the same spec.
func (s Spec) String() string { return s.text }

// IsZero reports whether s is the zero Spec (never due).
func (s Spec) IsZero() bool { return s.every == 0 && s.cron == nil }

// interval returns the interval of an interval spec, and 0 for cron.
func (s Spec) interval() time.Duration { return s.every }
