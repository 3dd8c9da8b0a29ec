package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/auth"
	"github.com/defenderharvester/defenderharvester/internal/config"
	"github.com/defenderharvester/defenderharvester/internal/harvester"
	"github.com/defenderharvester/defenderharvester/internal/metrics"
	"github.com/defenderharvester/defenderharvester/internal/pipeline"
	"github.com/defenderharvester/defenderharvester/internal/schedule"
)

// tenantRunner owns one tenant in the service: its lease, its open
// harvester.Tenant and its jobs.
type tenantRunner struct {
	s    *Service
	name string
	cfg  *config.Config
	jobs []plannedJob
	log  *slog.Logger
	// webhook: the tenant harvests the audit log with a webhook address.
	webhook bool

	mu     sync.Mutex
	phase  string            // waiting for lease, opening, running, closed
	err    error             // why it is not running, when it is not
	opened *harvester.Tenant // while running (for /state)
}

func (r *tenantRunner) setPhase(p string, err error) {
	r.mu.Lock()
	r.phase, r.err = p, err
	r.mu.Unlock()
}

// supervise takes the lease, opens the tenant (retrying with a growing
// pause), schedules its sources and keeps the gauges and the lease fresh
// until ctx ends or the lease is lost; then it stops the tenant's jobs,
// waits for its runs, closes it and releases the lease. A lost lease
// starts over (wait for it again).
func (r *tenantRunner) supervise(ctx context.Context) {
	for ctx.Err() == nil {
		if !r.acquireLease(ctx) {
			return
		}
		t := r.open(ctx)
		if t == nil {
			// Stopping, or the lease was lost while waiting to open
			// again: then wait for the lease anew.
			r.releaseLease()
			continue
		}
		// The webhook first: it is registered before the first poll, which
		// could otherwise start a subscription without it (and the
		// 15-minute start throttle would delay the registration).
		stopHook := r.startWebhook(ctx, t)
		if err := r.schedule(t); err != nil {
			r.log.Error("cannot schedule the tenant's sources (a bug)", "err", err)
		}
		r.setPhase("running", nil)
		r.mu.Lock()
		r.opened = t
		r.mu.Unlock()
		lost := r.keepUp(ctx, t)
		stopHook()
		// Remove cancels the tenant's runs; they commit what was
		// delivered and leave the rest for the next owner.
		<-r.s.sched.Remove(r.name)
		r.mu.Lock()
		r.opened = nil
		r.mu.Unlock()
		if err := t.Close(); err != nil {
			r.log.Error("closing the tenant", "err", err)
		}
		r.releaseLease()
		r.setPhase("closed", nil)
		if !lost {
			return
		}
		r.log.Warn("lost the tenant's lease (another replica holds it now); stopped harvesting it and will wait for the lease again")
	}
}

// acquireLease waits until this replica holds the tenant's lease (always
// true without a lease folder). false: ctx ended.
func (r *tenantRunner) acquireLease(ctx context.Context) bool {
	l := r.s.leaser
	if l == nil {
		return true
	}
	r.setPhase("taking the lease", nil)
	logged := false
	for {
		ok, err := l.TryAcquire(ctx, r.name)
		switch {
		case err != nil:
			r.setPhase("waiting for lease", err)
			r.log.Error("cannot take the tenant's lease; trying again", "err", err)
		case ok:
			r.log.Info("took the tenant's lease")
			return true
		case !logged:
			lease, _, _ := l.Holder(r.name)
			r.setPhase("waiting for lease", fmt.Errorf("held by %s until %s unless renewed", lease.Owner, lease.Expires.UTC().Format(time.RFC3339)))
			r.log.Info("the tenant's lease is held by another replica; waiting until it is released or expires", "holder", lease.Owner, "expires", lease.Expires)
			logged = true
		}
		if !r.s.sleep(ctx, leaseTTL/4) {
			return false
		}
	}
}

func (r *tenantRunner) releaseLease() {
	if r.s.leaser == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.s.leaser.Release(ctx, r.name); err != nil {
		r.log.Warn("cannot release the tenant's lease; it expires by itself", "err", err, "ttl", leaseTTL)
	}
}

// renewLease keeps the lease; false: it is lost.
func (r *tenantRunner) renewLease(ctx context.Context) bool {
	if r.s.leaser == nil {
		return true
	}
	if err := r.s.leaser.Renew(ctx, r.name); err != nil {
		r.log.Error("renewing the tenant's lease failed", "err", err)
		return false
	}
	return true
}

// open opens the tenant, trying again after a growing pause (30 s to
// 10 min) while the lease is kept; nil when ctx ended or the lease was
// lost meanwhile. Each failure counts as a failed run of
// every source, so metrics and /readyz see a tenant that cannot start.
func (r *tenantRunner) open(ctx context.Context) *harvester.Tenant {
	wait := openBackoff
	for {
		r.setPhase("opening", nil)
		t, err := harvester.Open(ctx, harvester.Request{
			Config:       r.cfg,
			Logger:       r.log,
			Now:          r.s.opts.Now,
			Stdout:       r.s.opts.Stdout,
			Getenv:       r.s.opts.Getenv,
			SpoolAfter:   time.Duration(r.cfg.SpoolAfter),
			Observer:     relabel{name: r.name, m: r.s.metrics},
			HTTPObserver: r.s.metrics.ObserveAttempt,
			Webhook:      r.webhook && r.s.hooks != nil,
		})
		if err == nil {
			r.seedCursors(t)
			return t
		}
		if ctx.Err() != nil {
			return nil
		}
		r.setPhase("cannot open", err)
		r.log.Error("the tenant cannot start; its sources are tried again later, the other tenants carry on", "err", err, "retry_in", wait)
		for _, j := range r.jobs {
			r.s.metrics.SourceDone(r.name, pipeline.Result{Source: j.source, Err: fmt.Errorf("the tenant cannot start: %w", err)})
		}
		if !r.sleepKeepingLease(ctx, wait) {
			return nil
		}
		wait = min(wait*2, openMaxWait)
	}
}

// seedCursors gives the lag gauges their value before the first run, and
// readiness the failures in a row the state file kept.
func (r *tenantRunner) seedCursors(t *harvester.Tenant) {
	infos, err := t.Store().Sources()
	if err != nil {
		r.log.Warn("cannot read the cursors for the lag metrics", "err", err)
		return
	}
	least := map[string]time.Time{}
	for _, st := range infos {
		if st.Part() == "" && st.Failures > 0 {
			r.s.metrics.SeedFailures(r.name, st.Source, st.Failures)
		}
		at := st.Cursor
		if at.IsZero() {
			at = st.SnapshotAt
		}
		if at.IsZero() {
			continue
		}
		src := st.Name() // parts count as their source
		if cur, ok := least[src]; !ok || at.Before(cur) {
			least[src] = at
		}
	}
	for src, at := range least {
		r.s.metrics.SetCursor(r.name, src, at)
	}
}

// startWebhook mounts the tenant's audit log webhook on the service's
// listener, registers it with the Management Activity API and delivers
// what it accepts, until the returned stop: unmounted, the listener
// closed, the consumer's push cancelled (what it delivered is committed;
// the rest is read by the poll). A tenant without a webhook gets a no-op.
func (r *tenantRunner) startWebhook(ctx context.Context, t *harvester.Tenant) (stop func()) {
	l := t.Webhook()
	if l == nil || r.s.hooks == nil {
		return func() {}
	}
	unmount, err := r.s.hooks.Mount(l)
	if err != nil {
		r.log.Error("the tenant's audit log webhook cannot be served; its audit log is still polled on schedule", "err", err)
		return func() {}
	}
	_ = t.RegisterWebhook(ctx) // logged; the source's subscription checks retry it
	hctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t.ServeWebhook(hctx, func(res pipeline.Result, notifications int) {
			r.s.metrics.WebhookPushed(r.name, res, notifications)
		})
	}()
	return func() {
		unmount()
		cancel()
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		if err := l.Shutdown(sctx); err != nil {
			r.log.Warn("closing the webhook listener", "err", err)
		}
		<-done
		r.s.metrics.SetWebhookStats(r.name, l.Stats())
	}
}

// schedule adds a job per source.
func (r *tenantRunner) schedule(t *harvester.Tenant) error {
	var errs []error
	for _, j := range r.jobs {
		src := j.source
		r.s.metrics.SetSchedule(r.name, src, period(j.spec, r.s.clk.Now()))
		errs = append(errs, r.s.sched.Add(schedule.Job{
			Tenant: r.name, Source: src, Spec: j.spec, Jitter: time.Duration(r.s.cfg.Serve.Jitter),
			Run: func(ctx context.Context) error {
				ctx, cancel := context.WithTimeout(ctx, time.Duration(r.cfg.RunTimeout))
				defer cancel()
				for _, res := range t.Run(ctx, []string{src}, pipeline.RunOptions{}) {
					if res.Err != nil {
						return res.Err
					}
				}
				return nil
			},
		}))
	}
	return errors.Join(errs...)
}

// period is how often spec fires (for the stall alert).
func period(spec schedule.Spec, now time.Time) time.Duration {
	a := spec.Next(now)
	return spec.Next(a).Sub(a)
}

// keepUp refreshes the gauges and renews the lease until ctx ends
// (false) or the lease is lost (true).
func (r *tenantRunner) keepUp(ctx context.Context, t *harvester.Tenant) (lost bool) {
	for {
		r.gauges(t)
		if !r.s.sleep(ctx, r.s.opts.UpkeepEvery) {
			return false
		}
		if !r.renewLease(ctx) {
			return ctx.Err() == nil
		}
	}
}

// gauges publishes the session, spool and delivery figures.
func (r *tenantRunner) gauges(t *harvester.Tenant) {
	if sr, ok := t.Session().(auth.SessionReporter); ok {
		info := sr.Info()
		if info.RenewsItself {
			// It signs in again before that time: no expiry to alert on.
			info.ExpiresAt = time.Time{}
		}
		now := r.s.opts.Now()
		r.s.metrics.SetSession(r.name, metrics.Session{Obtained: info.ObtainedAt, Expires: info.ExpiresAt,
			Expired: !info.ExpiresAt.IsZero() && !now.Before(info.ExpiresAt)})
	}
	if infos, err := t.Store().Spools(); err == nil {
		r.s.metrics.SetSpools(r.name, infos)
	} else {
		r.log.Warn("cannot read the spool sizes", "err", err)
	}
	for _, o := range t.Outputs() {
		r.s.metrics.SetDeliveryStats(r.name, o.Output, o.Delivery)
	}
	if l := t.Webhook(); l != nil {
		r.s.metrics.SetWebhookStats(r.name, l.Stats())
	}
	now := time.Now() // the pacers' clock
	for api, p := range t.Pacers() {
		st := p.State()
		r.s.metrics.SetPace(r.name, api, metrics.Pace{Limit: st.Limit, InFlight: st.InFlight, Paused: st.NotBefore.After(now)})
	}
}

// sleepKeepingLease waits d, renewing the lease on the way; false when
// ctx ended or the lease was lost.
func (r *tenantRunner) sleepKeepingLease(ctx context.Context, d time.Duration) bool {
	for d > 0 {
		step := min(d, r.s.opts.UpkeepEvery)
		if !r.s.sleep(ctx, step) || !r.renewLease(ctx) {
			return false
		}
		d -= step
	}
	return true
}

// sleep waits d on the service's clock; false when ctx ended first.
func (s *Service) sleep(ctx context.Context, d time.Duration) bool {
	t := s.clk.NewTimer(max(d, minLeaseWait))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		return true
	}
}

func defaultOwnerID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	return fmt.Sprintf("%s/%d", host, os.Getpid())
}
