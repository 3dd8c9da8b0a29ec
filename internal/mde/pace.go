package mde

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Defaults of the pacer (ClientOptions.MaxInFlight, RaiseAfter).
const (
	// DefaultMaxInFlight is the most requests one client has in flight at
	// once while the API does not throttle: the timeline source's pool
	// of workers.
	DefaultMaxInFlight = 8
	// DefaultRaiseAfter is how many successes in a row raise a lowered
	// limit by one.
	DefaultRaiseAfter = 10
)

// Pacer is the adaptive gate every request of one API client passes
// (one pacer per client instance; the portal client and the public API
// client each have their own). It combines two things the API's
// throttling asks of the whole client, not only of the request that was
// throttled:
//
//   - a concurrency limit, AIMD: it starts at the configured maximum; a
//     throttled answer (429, a retryable status with Retry-After, or the
//     timeline's 403 "User is not exposed to machine", which is retried
//     as throttling and counts once per request, since it can also be a
//     scope miss of one device) halves it, at least 1; RaiseAfter successes in a row
//     raise it by one, up to the maximum. Requests already in flight when
//     the limit was halved do not halve it again: one congestion episode
//     costs one halving.
//   - a shared "not before" time: a throttled answer's Retry-After (or the
//     backoff computed for it) pauses every new request of the client
//     until then (the 403 pauses nobody else). A pause longer than the client's MaxWait makes new
//     requests fail at once with ErrThrottled instead of waiting.
//
// Waiting at the gate honours the context. Safe for concurrent use.
type Pacer struct {
	api        string // "portal", "public API", "legacy" for logs
	label      string // metrics label
	max        int
	raiseAfter int
	maxWait    time.Duration
	now        func() time.Time
	sleep      func(ctx context.Context, d time.Duration) error
	log        *slog.Logger

	mu        sync.Mutex
	limit     int
	inFlight  int
	waiting   int       // requests waiting at the gate
	run       int       // successes in a row since the last change
	gen       uint64    // bumped by every decrease
	notBefore time.Time // no new request is sent before this
	changed   chan struct{}
	// counters for State
	decreases, increases, pauses int
}

// PaceState is a snapshot of a Pacer, for tests and metrics.
type PaceState struct {
	Limit     int       // current concurrency limit
	Max       int       // configured maximum
	InFlight  int       // requests holding a slot now
	Waiting   int       // requests waiting for a slot or for the pause to end
	NotBefore time.Time // shared pause; zero or past when none
	Decreases int       // halvings so far
	Increases int       // raises so far
	Pauses    int       // shared pauses set or extended so far
}

func newPacer(o ClientOptions, api, label string) *Pacer {
	return &Pacer{
		api: api, label: label, max: o.MaxInFlight, raiseAfter: o.RaiseAfter, maxWait: o.MaxWait,
		now: o.Now, sleep: o.Sleep, log: o.Logger,
		limit: o.MaxInFlight, changed: make(chan struct{}),
	}
}

// Limit is the current concurrency limit.
func (p *Pacer) Limit() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.limit
}

// State is a snapshot of the pacer.
func (p *Pacer) State() PaceState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return PaceState{Limit: p.limit, Max: p.max, InFlight: p.inFlight, Waiting: p.waiting, NotBefore: p.notBefore,
		Decreases: p.decreases, Increases: p.increases, Pauses: p.pauses}
}

// paceTicket is one slot held by one attempt.
type paceTicket struct {
	gen  uint64 // the pacer's generation when the slot was granted
	held bool
}

// acquire waits until the shared pause is over and a slot is free, then
// takes the slot. waited is the end of a pause the caller already slept
// through (its own Retry-After), so it does not wait for it twice; zero
// when none.
func (p *Pacer) acquire(ctx context.Context, waited time.Time) (paceTicket, error) {
	p.mu.Lock()
	p.waiting++
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.waiting--
		p.mu.Unlock()
	}()
	for {
		if err := p.waitPause(ctx, &waited); err != nil {
			return paceTicket{}, err
		}
		p.mu.Lock()
		for p.inFlight >= p.limit {
			ch := p.changed
			p.mu.Unlock()
			select {
			case <-ctx.Done():
				return paceTicket{}, ctx.Err()
			case <-ch:
			}
			p.mu.Lock()
		}
		// A pause set while this request waited for a slot holds it back
		// too.
		if nb := p.notBefore; nb.After(waited) && nb.After(p.now()) {
			p.mu.Unlock()
			continue
		}
		p.inFlight++
		t := paceTicket{gen: p.gen, held: true}
		p.mu.Unlock()
		return t, nil
	}
}

// waitPause sleeps until the shared pause is over. It sleeps again only
// when the pause was extended meanwhile, so a clock that does not move
// (tests) never loops.
func (p *Pacer) waitPause(ctx context.Context, waited *time.Time) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		p.mu.Lock()
		nb := p.notBefore
		p.mu.Unlock()
		if !nb.After(*waited) {
			return nil
		}
		d := nb.Sub(p.now())
		if d <= 0 {
			return nil
		}
		if d > p.maxWait {
			return fmt.Errorf("%w: the %s API asked every request to wait %s, more than the configured maximum %s; try again later", ErrThrottled, p.api, d.Round(time.Second), p.maxWait)
		}
		if err := p.sleep(ctx, d); err != nil {
			return err
		}
		*waited = nb
	}
}

// release gives the slot back after an answer that was not throttling;
// ok says it was a success (2xx with data), which counts toward raising
// the limit.
func (p *Pacer) release(ctx context.Context, t *paceTicket, ok bool) {
	if !t.held {
		return
	}
	t.held = false
	p.mu.Lock()
	p.inFlight--
	raised := false
	if ok && p.limit < p.max {
		p.run++
		if p.run >= p.raiseAfter {
			p.limit++
			p.run = 0
			p.increases++
			raised = true
		}
	}
	limit := p.limit
	p.wake()
	p.mu.Unlock()
	if raised {
		p.log.LogAttrs(ctx, slog.LevelInfo, "API no longer throttling; raising the request concurrency",
			slog.String("api", p.api), slog.Int("limit", limit), slog.Int("max", p.max))
	}
}

// throttled gives the slot back after a throttled answer: it halves the
// limit (once per congestion episode) and, when pause > 0, holds every new
// request of the client back until now+pause. It returns the end of the
// pause (zero when none).
func (p *Pacer) throttled(ctx context.Context, t *paceTicket, pause time.Duration, why string) time.Time {
	p.mu.Lock()
	if t.held {
		t.held = false
		p.inFlight--
	}
	p.run = 0
	halved, from := false, p.limit
	// Only a request sent after the last decrease can tell that the lower
	// limit is still too high.
	if t.gen == p.gen && p.limit > 1 {
		p.limit = max(1, p.limit/2)
		p.gen++
		p.decreases++
		halved = true
	}
	var until time.Time
	paused := false
	if pause > 0 {
		now := p.now()
		until = now.Add(pause)
		if until.After(p.notBefore) {
			// Logged when a pause starts, not each time answers
			// throttled together extend it.
			paused = !p.notBefore.After(now)
			p.notBefore = until
			p.pauses++
		}
	}
	limit := p.limit
	p.wake()
	p.mu.Unlock()
	if halved {
		p.log.LogAttrs(ctx, slog.LevelWarn, "API throttling; lowering the request concurrency",
			slog.String("api", p.api), slog.Int("from", from), slog.Int("limit", limit), slog.String("reason", why))
	}
	if paused {
		p.log.LogAttrs(ctx, slog.LevelWarn, "API throttling; pausing every request of this API",
			slog.String("api", p.api), slog.Duration("pause", pause), slog.String("reason", why))
	}
	return until
}

// wake tells every waiter that a slot or the limit changed; p.mu held.
func (p *Pacer) wake() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// Pacer is the client's adaptive gate (its current concurrency limit and
// shared pause), for tests and metrics.
func (c *PortalClient) Pacer() *Pacer { return c.d.pace }

// Pacer is the client's adaptive gate, for tests and metrics.
func (c *PublicAPIClient) Pacer() *Pacer { return c.d.pace }

// Pacer is the client's adaptive gate, for tests and metrics.
func (c *LegacyClient) Pacer() *Pacer { return c.d.pace }
