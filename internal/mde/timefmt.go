package mde

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// PortalTimeLayout is the portal's query time format (milliseconds, Z).
const PortalTimeLayout = "2006-01-02T15:04:05.000Z"

// TimelineTimeLayout is the timeline's query time format (7 digits, Z).
const TimelineTimeLayout = "2006-01-02T15:04:05.0000000Z"

// FormatPortalTime formats t in UTC as the portal expects, truncated to the
// millisecond.
func FormatPortalTime(t time.Time) string { return t.UTC().Format(PortalTimeLayout) }

// FormatPortalTimeCeil formats t rounded up to the next millisecond, for
// upper bounds that must not cut off the last sub-millisecond.
func FormatPortalTimeCeil(t time.Time) string {
	t = t.UTC()
	if tr := t.Truncate(time.Millisecond); !tr.Equal(t) {
		t = tr.Add(time.Millisecond)
	}
	return t.Format(PortalTimeLayout)
}

// FormatTimelineTime formats t in UTC with 7 fractional digits.
func FormatTimelineTime(t time.Time) string { return t.UTC().Format(TimelineTimeLayout) }

// ParseTime reads the timestamps the Defender APIs return: RFC 3339 with
// or without offset, 0–7 (up to 9) fractional digits, 'T' or space. A
// missing offset means UTC. The result is in UTC.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if len(s) < 19 || len(s) > 40 {
		return time.Time{}, fmt.Errorf("time %q is not an ISO 8601 timestamp", clean(s, 48))
	}
	b := []byte(s)
	if b[10] == ' ' || b[10] == 't' {
		b[10] = 'T'
	}
	if last := b[len(b)-1]; last == 'z' {
		b[len(b)-1] = 'Z'
	}
	s = string(b)
	hasOffset := strings.HasSuffix(s, "Z") || strings.ContainsAny(s[19:], "+-")
	layout := "2006-01-02T15:04:05.999999999"
	if hasOffset {
		layout += "Z07:00"
	}
	t, err := time.Parse(layout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q is not an ISO 8601 timestamp", clean(s, 48))
	}
	if t.IsZero() {
		return time.Time{}, errors.New("time is the zero time")
	}
	return t.UTC(), nil
}
