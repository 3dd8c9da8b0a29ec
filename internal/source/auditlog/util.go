package auditlog

import (
	"bytes"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/mde"
)

func ceilSecond(t time.Time) time.Time {
	c := t.Truncate(time.Second)
	if c.Before(t) {
		c = c.Add(time.Second)
	}
	return c
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func trimSpace(b []byte) []byte { return bytes.TrimSpace(b) }

func describe(b []byte) string { return mde.DescribeJSON(b) }

// isGUID reports whether s is an 8-4-4-4-12 hex GUID (any case).
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return false
			}
		default:
			if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F') {
				return false
			}
		}
	}
	return true
}
