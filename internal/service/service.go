// Package service is `serve`: the long-running form of the harvester. It
// opens every tenant this replica owns, runs each (tenant, source) on its
// own schedule, reports metrics and health, and shuts down without losing
// anything. The one-shot `run` is harvester.Run; both share harvester.Open.
//
// Lifecycle (OpenTelemetry Collector style): New checks everything that
// can be checked without the network, Start begins, Shutdown ends.
package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/clock"
	"github.com/defenderharvester/defenderharvester/internal/config"
	"github.com/defenderharvester/defenderharvester/internal/harvester"
	"github.com/defenderharvester/defenderharvester/internal/metrics"
	"github.com/defenderharvester/defenderharvester/internal/schedule"
	"github.com/defenderharvester/defenderharvester/internal/shard"
	"github.com/defenderharvester/defenderharvester/internal/webhook"
)

// Options configure New.
type Options struct {
	// Config is the loaded config (one tenant or many).
	Config *config.Config
	Logger *slog.Logger
	// Clock drives the schedules, leases and upkeep (tests use a fake);
	// nil = the real clock.
	Clock clock.Clock
	// Now is the harvest's clock (windows, record times); nil = time.Now.
	Now    func() time.Time
	Getenv func(string) string
	Stdout io.Writer
	// Listen overrides serve.listen ("" keeps it; "-" serves nothing).
	Listen string
	// ShardIndex and ShardCount say which tenants this replica owns
	// (shard.Owner of the tenant's name); ShardCount 0 = from the config.
	ShardIndex, ShardCount int
	// LeaseDir overrides serve.lease_dir.
	LeaseDir string
	// OwnerID names this replica in leases (default: host name and pid).
	OwnerID string
	// UpkeepEvery is how often gauges are refreshed and leases renewed
	// (default 15s; at most a third of the lease's life).
	UpkeepEvery time.Duration
	// ScheduleObserver is told about every firing too (tests; nil: none).
	ScheduleObserver schedule.Observer
	// Sources, when set, limits every tenant to these sources (the
	// webhook command: ["auditlog"]).
	Sources []string
	// RequireWebhook refuses a config in which no owned tenant has an
	// audit log webhook address (the webhook command).
	RequireWebhook bool
	// WebhookListen overrides serve.webhook.listen.
	WebhookListen string
}

// Service runs the schedules of every owned tenant.
type Service struct {
	opts    Options
	cfg     *config.Config
	log     *slog.Logger
	clk     clock.Clock
	metrics *metrics.Metrics
	sched   *schedule.Scheduler
	leaser  *shard.Leaser
	tenants []*tenantRunner

	httpSrv *http.Server
	ln      net.Listener
	// hooks serves the audit log webhook of every tenant that has one
	// (nil when none does).
	hooks *webhook.Server

	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	started bool
}

// Upkeep and lease timing.
const (
	upkeepEvery  = 15 * time.Second // session, spool and dead-letter gauges
	leaseTTL     = 60 * time.Second
	openBackoff  = 30 * time.Second // first wait after a tenant failed to open
	openMaxWait  = 10 * time.Minute
	minLeaseWait = time.Second
)

// New checks the config (tenants, schedules, shard) and builds the
// service; nothing is contacted yet.
func New(opts Options) (*Service, error) {
	cfg := opts.Config
	if cfg == nil {
		return nil, errors.New("service: no config")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Getenv == nil {
		opts.Getenv = func(string) string { return "" }
	}
	if opts.UpkeepEvery <= 0 || opts.UpkeepEvery > leaseTTL/3 {
		opts.UpkeepEvery = upkeepEvery
	}
	if opts.Listen == "" {
		opts.Listen = cfg.Serve.Listen
	}
	if opts.ShardCount == 0 {
		opts.ShardCount = cfg.Serve.Shard.Count
	}
	if opts.LeaseDir == "" {
		opts.LeaseDir = cfg.Serve.LeaseDir
	}
	if opts.ShardCount < 1 || opts.ShardIndex < 0 || opts.ShardIndex >= opts.ShardCount {
		return nil, fmt.Errorf("shard index %d is not below the shard count %d: give each replica a number from 0 to count-1", opts.ShardIndex, opts.ShardCount)
	}
	if opts.ShardCount > 1 && opts.LeaseDir == "" {
		return nil, errors.New("several replicas (shard count > 1) need a lease folder all of them share (serve.lease_dir or --lease-dir), so a tenant is never harvested by two at once while replicas change")
	}
	tcs, err := cfg.TenantConfigs()
	if err != nil {
		return nil, err
	}
	s := &Service{opts: opts, cfg: cfg, log: opts.Logger, clk: opts.Clock}
	s.metrics = metrics.New(metrics.Options{
		Now:                   opts.Clock.Now,
		FailuresUntilNotReady: cfg.Serve.NotReadyAfterFailures,
		Alive:                 s.alive,
		Logger:                opts.Logger,
	})
	s.sched, err = schedule.New(schedule.Options{
		Clock:         opts.Clock,
		MaxConcurrent: cfg.Serve.MaxConcurrentRuns,
		MaxPerTenant:  cfg.Serve.MaxConcurrentRunsPerTenant,
		Logger:        opts.Logger,
		Observer:      schedObservers{schedObserver{m: s.metrics, waiting: &sync.Map{}}, opts.ScheduleObserver},
	})
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	hooked := 0
	hookPaths := map[string]string{} // path → tenant
	for _, tc := range tcs {
		name := tc.TenantName()
		names[name] = true
		if !shard.Owns(name, opts.ShardIndex, opts.ShardCount) {
			continue
		}
		jobs, err := jobsOf(tc, opts.Sources)
		if err != nil {
			return nil, err
		}
		hookPath, err := harvester.WebhookPath(tc)
		if err != nil {
			return nil, err
		}
		wants := hookPath != ""
		if wants {
			hooked++
			if other, taken := hookPaths[hookPath]; taken {
				return nil, fmt.Errorf("tenants %s and %s have the same audit log webhook path %s: give each its own sources.auditlog.webhook.address (a {tenant} placeholder in it does that)", other, name, hookPath)
			}
			hookPaths[hookPath] = name
		}
		s.tenants = append(s.tenants, &tenantRunner{s: s, name: name, cfg: tc, jobs: jobs, webhook: wants,
			log: opts.Logger.With("tenant", name)})
	}
	if opts.RequireWebhook && hooked == 0 && len(s.tenants) > 0 {
		return nil, errors.New("no tenant has an audit log webhook: set sources.auditlog.webhook.address (and its AuthID) and enable the auditlog source")
	}
	if hooked > 0 {
		if s.hooks, err = newWebhookServer(cfg.Serve.Webhook, opts.WebhookListen, opts.Logger); err != nil {
			return nil, err
		}
		s.metrics.WebhookUnrouted(s.hooks.NotFound)
	}
	if opts.ShardCount > 1 || opts.LeaseDir != "" {
		owner := opts.OwnerID
		if owner == "" {
			owner = defaultOwnerID()
		}
		s.leaser, err = shard.NewLeaser(opts.LeaseDir, owner, leaseTTL, opts.Clock)
		if err != nil {
			return nil, fmt.Errorf("serve.lease_dir: %w", err)
		}
	}
	s.log.Info("serve: tenants owned by this replica", "owned", len(s.tenants), "configured", len(names),
		"shard_index", opts.ShardIndex, "shard_count", opts.ShardCount)
	return s, nil
}

// plannedJob is one source of a tenant and its schedule.
type plannedJob struct {
	source string
	spec   schedule.Spec
}

// jobsOf reads the schedule of every source the tenant harvests (of
// only, when set).
func jobsOf(tc *config.Config, only []string) ([]plannedJob, error) {
	factories, err := harvester.Select(tc, only)
	if err != nil {
		return nil, err
	}
	var jobs []plannedJob
	var errs []error
	for _, f := range factories {
		text, key := config.Schedule(tc.Sources[f.Name]), "sources."+f.Name+".schedule"
		if text == "" {
			text, key = f.ScheduleOrDefault(), "the default schedule of "+f.Name
		}
		spec, err := schedule.Parse(text)
		if err != nil {
			if tc.Name != "" {
				key = "tenants." + tc.Name + "." + key
			}
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
			continue
		}
		jobs = append(jobs, plannedJob{source: f.Name, spec: spec})
	}
	return jobs, errors.Join(errs...)
}

// Metrics is the service's metrics and health (for tests and wiring).
func (s *Service) Metrics() *metrics.Metrics { return s.metrics }

// Addr is where /metrics, /healthz and /readyz are served ("" when not).
func (s *Service) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Tenants names the tenants this replica owns, sorted.
func (s *Service) Tenants() []string {
	out := make([]string, len(s.tenants))
	for i, t := range s.tenants {
		out[i] = t.name
	}
	sort.Strings(out)
	return out
}

// Status reports every scheduled job.
func (s *Service) Status() []schedule.JobStatus { return s.sched.Status() }

// Start serves the endpoints and begins every owned tenant: each takes
// its lease (when replicas share tenants), opens, and joins the
// schedules. A tenant that cannot open is retried on its own; it never
// holds the others back.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("service: started twice")
	}
	s.started = true
	s.mu.Unlock()
	if s.opts.Listen != "-" {
		ln, err := net.Listen("tcp", s.opts.Listen)
		if err != nil {
			return fmt.Errorf("serve.listen %s: %w (use another address, or --listen -)", s.opts.Listen, err)
		}
		s.ln = ln
		s.httpSrv = &http.Server{Handler: s.handler(), ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute}
		go func() {
			if err := s.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("the metrics and health endpoint stopped", "err", err)
			}
		}()
	}
	ctx, s.cancel = context.WithCancel(ctx)
	if s.hooks != nil {
		// Before the tenants open: each registers its webhook, and the
		// service validates the address at once.
		if err := s.hooks.Start(ctx); err != nil {
			s.cancel()
			s.closeEndpoint()
			return err
		}
	}
	if err := s.sched.Start(ctx); err != nil {
		s.cancel()
		return err
	}
	for _, t := range s.tenants {
		s.wg.Go(func() { t.supervise(ctx) })
	}
	return nil
}

// Shutdown stops firing, cancels the runs in flight (what they delivered
// is committed; what they did not is read again next time: nothing is
// lost), closes every tenant (each output's drainer makes a last attempt
// at its spool), releases the leases and stops the endpoints. ctx bounds
// the wait (serve.shutdown_timeout).
func (s *Service) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	started := s.started
	s.mu.Unlock()
	if !started {
		return nil
	}
	var errs []error
	if err := s.sched.Shutdown(ctx); err != nil {
		errs = append(errs, err)
	}
	s.cancel()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("tenants still closing when the shutdown wait ended: %w", ctx.Err()))
	}
	if s.httpSrv != nil {
		if err := s.httpSrv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("closing the endpoint: %w", err))
		}
	}
	if s.hooks != nil {
		if err := s.hooks.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// closeEndpoint stops the metrics endpoint of a Start that failed.
func (s *Service) closeEndpoint() {
	if s.httpSrv != nil {
		_ = s.httpSrv.Close()
	}
}

// WebhookAddr is where the webhook listener listens ("" when none).
func (s *Service) WebhookAddr() string {
	if s.hooks == nil || s.hooks.Addr() == nil {
		return ""
	}
	return s.hooks.Addr().String()
}

// newWebhookServer builds the one listener every tenant's webhook is
// mounted on.
func newWebhookServer(c config.Webhook, listen string, log *slog.Logger) (*webhook.Server, error) {
	if listen == "" {
		listen = c.Listen
	}
	tlsCfg, err := harvester.WebhookTLS(c, log)
	if err != nil {
		return nil, err
	}
	if tlsCfg == nil {
		log.Warn("the audit log webhook listens without TLS (serve.webhook.plain_http): only run it behind a proxy that terminates TLS, on a network nobody else can read — the AuthID travels in every request",
			"listen", listen)
	}
	return webhook.NewServer(webhook.ServerOptions{Listen: listen, Logger: log, TLSConfig: tlsCfg})
}

// alive is /healthz: the scheduler's loop must still fire on time.
func (s *Service) alive() error {
	return s.sched.Alive(time.Minute)
}
