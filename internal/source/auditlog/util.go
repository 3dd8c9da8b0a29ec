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
