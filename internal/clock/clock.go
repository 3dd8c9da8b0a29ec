// Package clock is time as the harvester sees it: the one context-aware
// sleep that the API clients, the delivery helper and the outputs share for
// backoff and polling waits, and SkewMeter, which measures how far our
// clock is from the servers' (their Date headers) so a run can warn and
// shift its windows.
package clock

import (
	"context"
	"time"
)

// Sleep waits d or until ctx ends, whichever is first; it returns ctx's
// error in the second case. A non-positive d only checks ctx.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
