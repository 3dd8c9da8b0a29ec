// Package metrics is what `serve` tells Prometheus and its probes: a
// pipeline.Observer that counts records, writes, runs and errors per
// tenant, source and output; gauges the service sets (portal sessions,
// spools, delivery counters, schedule, webhook listeners and pushes); the
// httpx retry hook; and the health that /readyz reports. Every metric is
// listed in README.md.
//
// Labels are low-cardinality by construction: tenant, source, output,
// api, kind, outcome, class, result, reason — never a record id, URL or
// error text.
package metrics

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/delivery"
	"github.com/defenderharvester/defenderharvester/internal/httpx"
	"github.com/defenderharvester/defenderharvester/internal/pipeline"
	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/state"
	"github.com/defenderharvester/defenderharvester/internal/webhook"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Namespace prefixes every metric of the harvester.
const Namespace = "defenderharvester"

// DefaultFailuresUntilNotReady is the default of Options.FailuresUntilNotReady.
const DefaultFailuresUntilNotReady = 3

// Options configure New. Zero fields get defaults.
type Options struct {
	// Now is the clock of lag, ages and last-success times (tests inject
	// one); default time.Now.
	Now func() time.Time
	// FailuresUntilNotReady is how many failed runs in a row of one
	// source make the service not ready (default 3).
	FailuresUntilNotReady int
	// Alive reports whether the scheduler loop still runs (nil error);
	// /healthz answers 503 with its error otherwise. nil: always alive.
	Alive func() error
	// Logger receives the errors of a failed scrape; default discards.
	Logger *slog.Logger
}

// Session is what the service knows of a tenant's portal session.
type Session struct {
	// Obtained is when the session was issued or last renewed; zero when
	// unknown (copied cookies).
	Obtained time.Time
	// Expires is when the portal stops accepting it, zero when unknown.
	// For a session that renews itself this is its hard limit, not the
	// planned renewal: SessionExpiresSoon fires when less than 20 minutes
	// are left, which a renewal 30 minutes ahead never lets happen.
	Expires time.Time
	// Expired says the service knows it is no longer accepted.
	Expired bool
}

type sourceKey struct{ tenant, source string }
type outputKey struct{ tenant, output string }

type sourceState struct {
	cursor      time.Time
	lastSuccess time.Time
	failures    int    // failed runs in a row
	lastKind    string // kind of the latest failure
}

type sessionState struct {
	known bool // SetSession was called
	Session
	// seenExpired maps the sources whose last run failed with an expired
	// session to when it happened.
	seenExpired map[string]time.Time
}

type outputState struct {
	hasSpool     bool
	spoolRecords int
	spoolBytes   int64
	hasStats     bool
	stats        delivery.Stats
}

// Metrics records what the service does on its own registry. Safe for
// concurrent use; the zero value is not usable, call New.
type Metrics struct {
	opts Options
	reg  *prometheus.Registry

	fetched, newRecs, duplicates, outOfWindow *prometheus.CounterVec
	changes                                   *prometheus.CounterVec
	chunks                                    *prometheus.CounterVec
	runs                                      *prometheus.CounterVec
	runDuration                               *prometheus.HistogramVec
	sourceErrors                              *prometheus.CounterVec
	running                                   *prometheus.GaugeVec

	written, writeFailures, spooled *prometheus.CounterVec

	skipped  *prometheus.CounterVec
	waiting  *prometheus.GaugeVec
	slotWait *prometheus.HistogramVec
	schedule *prometheus.GaugeVec

	retries, throttled, giveUps *prometheus.CounterVec
	paceLimit, paceInFlight     *prometheus.GaugeVec
	pacePaused                  *prometheus.GaugeVec

	webhookPushes, webhookPushed *prometheus.CounterVec

	mu       sync.Mutex
	sources  map[sourceKey]*sourceState
	sessions map[string]*sessionState
	outputs  map[outputKey]*outputState
	webhooks map[string]*webhook.Stats // by tenant
}

var _ pipeline.Observer = (*Metrics)(nil)

// New builds the metrics on a fresh registry with the Go runtime and
// process collectors.
func New(o Options) *Metrics {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.FailuresUntilNotReady <= 0 {
		o.FailuresUntilNotReady = DefaultFailuresUntilNotReady
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Metrics{
		opts:     o,
		reg:      prometheus.NewRegistry(),
		sources:  map[sourceKey]*sourceState{},
		sessions: map[string]*sessionState{},
		outputs:  map[outputKey]*outputState{},
		webhooks: map[string]*webhook.Stats{},
	}
	ts := []string{"tenant", "source"}
	tso := []string{"tenant", "source", "output"}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, labels)
	}
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: name, Help: help}, labels)
	}
	m.fetched = counter("source_records_fetched_total", "Items the source emitted (before dedup).", ts...)
	m.newRecs = counter("source_records_new_total", "New records delivered to every output (or spooled for the ones down).", ts...)
	m.duplicates = counter("source_records_duplicate_total", "Items dropped as already delivered (overlap re-reads).", ts...)
	m.outOfWindow = counter("source_records_out_of_window_total", "Items dropped because their time was outside the window asked for.", ts...)
	m.changes = counter("snapshot_changes_total", "Snapshot change records by change type (Initial, Added, Modified, Removed).", "tenant", "source", "change")
	m.chunks = counter("source_chunks_total", "Time windows read, delivered and committed.", ts...)
	m.runs = counter("source_runs_total", "Finished source runs by outcome: ok, failed, partial (failed after delivering some of it), canceled.", "tenant", "source", "outcome")
	m.runDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "source_run_duration_seconds", Help: "How long a source run took.",
		Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600},
	}, ts)
	m.sourceErrors = counter("source_errors_total", "Failed source runs by error kind.", "tenant", "source", "kind")
	m.running = gauge("source_running", "1 while a run of the source is under way.", ts...)
	m.written = counter("output_records_written_total", "Records an output accepted (spooled batches sent again included).", tso...)
	m.writeFailures = counter("output_write_failures_total", "Batches an output refused or failed to take, by error kind.", "tenant", "source", "output", "kind")
	m.spooled = counter("output_records_spooled_total", "Records put in an output's spool because it did not take them.", tso...)
	m.skipped = counter("scheduler_runs_skipped_total", "Scheduled runs skipped because the previous run of the source was still going.", ts...)
	m.waiting = gauge("scheduler_runs_waiting", "Runs waiting for a free slot (the concurrency limit).", "tenant")
	m.slotWait = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "scheduler_slot_wait_seconds", Help: "How long a run waited for a free slot.",
		Buckets: []float64{0.1, 1, 5, 15, 60, 300, 900, 3600},
	}, []string{"tenant"})
	m.schedule = gauge("source_schedule_interval_seconds", "How often the source is scheduled to run.", ts...)
	m.retries = counter("http_retries_total", "Requests sent again after a retryable failure, by API family and failure class (4xx, 5xx, timeout, network).", "api", "class")
	m.throttled = counter("http_throttled_total", "Answers asking us to slow down (429, or 5xx with Retry-After), by API family.", "api")
	m.giveUps = counter("http_retry_give_ups_total", "Requests abandoned after a retryable failure (attempts used up, or Retry-After beyond the maximum wait).", "api", "class")
	m.paceLimit = gauge("api_concurrency_limit", "Requests an API client lets run at once; throttling halves it, successes raise it back to its maximum.", "tenant", "api")
	m.paceInFlight = gauge("api_requests_in_flight", "Requests an API client is running now.", "tenant", "api")
	m.pacePaused = gauge("api_paused", "1 while an API client holds every new request back (a Retry-After or backoff after throttling).", "tenant", "api")
	m.webhookPushes = counter("webhook_pushes_total", "Pushes of webhook notifications through the pipeline by outcome: ok, failed, canceled (not runs).", "tenant", "outcome")
	m.webhookPushed = counter("webhook_pushed_notifications_total", "Webhook notifications whose content a push fetched and delivered (or tried to).", "tenant")

	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.reg.MustRegister(m.own()...)
	return m
}

// own lists the collectors of the harvester's own metrics.
func (m *Metrics) own() []prometheus.Collector {
	return []prometheus.Collector{
		m.fetched, m.newRecs, m.duplicates, m.outOfWindow, m.changes, m.chunks, m.runs, m.runDuration,
		m.sourceErrors, m.running, m.written, m.writeFailures, m.spooled,
		m.skipped, m.waiting, m.slotWait, m.schedule, m.retries, m.throttled, m.giveUps,
		m.paceLimit, m.paceInFlight, m.pacePaused, m.webhookPushes, m.webhookPushed,
		(*stateCollector)(m),
	}
}

// Registry is the registry /metrics serves; the service may register
// its own collectors on it.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

func (m *Metrics) source(tenant, src string) *sourceState {
	return entry(m.sources, sourceKey{tenant, src})
}

func (m *Metrics) session(tenant string) *sessionState { return entry(m.sessions, tenant) }

func (m *Metrics) output(tenant, out string) *outputState {
	return entry(m.outputs, outputKey{tenant, out})
}

// entry is m[k], created empty on first use.
func entry[K comparable, V any](m map[K]*V, k K) *V {
	v := m[k]
	if v == nil {
		v = new(V)
		m[k] = v
	}
	return v
}

// SourceStarted implements pipeline.Observer.
func (m *Metrics) SourceStarted(tenant, src string) {
	m.running.WithLabelValues(tenant, src).Set(1)
}

// Planned implements pipeline.Observer (nothing to record).
func (m *Metrics) Planned(string, string, int, source.Window) {}

// ChunkDone implements pipeline.Observer. Records are counted from the
// run's Result, so they are not counted twice here.
func (m *Metrics) ChunkDone(tenant, src string, _ source.Window, _ int) {
	m.chunks.WithLabelValues(tenant, src).Inc()
}

// Written implements pipeline.Observer.
func (m *Metrics) Written(tenant, src, output string, records int, err error) {
	if err != nil {
		m.writeFailures.WithLabelValues(tenant, src, output, ErrorKind(err)).Inc()
		return
	}
	m.written.WithLabelValues(tenant, src, output).Add(float64(records))
}

// Spooled implements pipeline.Observer.
func (m *Metrics) Spooled(tenant, src, output string, records int) {
	m.spooled.WithLabelValues(tenant, src, output).Add(float64(records))
}

// SourceDone implements pipeline.Observer: counts, outcome, duration,
// cursor, last success and failures in a row.
func (m *Metrics) SourceDone(tenant string, res pipeline.Result) {
	src := res.Source
	m.running.WithLabelValues(tenant, src).Set(0)
	m.fetched.WithLabelValues(tenant, src).Add(float64(res.Fetched))
	m.newRecs.WithLabelValues(tenant, src).Add(float64(res.New))
	m.duplicates.WithLabelValues(tenant, src).Add(float64(res.Duplicates))
	m.outOfWindow.WithLabelValues(tenant, src).Add(float64(res.OutOfWindow))
	for change, n := range res.Changes {
		m.changes.WithLabelValues(tenant, src, change).Add(float64(n))
	}
	out := Outcome(res)
	m.runs.WithLabelValues(tenant, src, out).Inc()
	m.runDuration.WithLabelValues(tenant, src).Observe(res.Duration.Seconds())
	kind := ErrorKind(res.Err)
	if kind != "" {
		m.sourceErrors.WithLabelValues(tenant, src, kind).Inc()
	}

	now := m.opts.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.source(tenant, src)
	if res.Cursor.After(s.cursor) {
		s.cursor = res.Cursor
	}
	switch out {
	case OutcomeOK:
		s.failures, s.lastKind, s.lastSuccess = 0, "", now
		if ss := m.sessions[tenant]; ss != nil {
			delete(ss.seenExpired, src)
		}
	case OutcomeCanceled:
		// A shutdown says nothing about the source's health.
	default:
		s.failures++
		s.lastKind = kind
		if kind == KindSessionExpired {
			ss := m.session(tenant)
			if ss.seenExpired == nil {
				ss.seenExpired = map[string]time.Time{}
			}
			ss.seenExpired[src] = now
		}
	}
}

// The outcomes of a run (the outcome label of source_runs_total).
const (
	OutcomeOK       = "ok"
	OutcomeFailed   = "failed"
	OutcomePartial  = "partial"
	OutcomeCanceled = "canceled"
)

// Outcome sorts a run: ok; canceled (shutdown); partial when it failed
// after delivering part of its work (records, some parts of a
// partitioned source, the readable parts of a snapshot); else failed.
func Outcome(res pipeline.Result) string {
	var pe *source.PartialError
	switch {
	case res.Err == nil:
		return OutcomeOK
	case errors.Is(res.Err, context.Canceled):
		return OutcomeCanceled
	case res.New > 0, errors.As(res.Err, &pe), res.PartsTotal > 0 && len(res.Parts) < res.PartsTotal:
		return OutcomePartial
	}
	return OutcomeFailed
}

// SeedFailures sets a source's failed runs in a row as the state file
// kept them (at start), so a restart does not turn a failing source's
// readiness green; runs observed since count on from there.
func (m *Metrics) SeedFailures(tenant, src string, failures int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.source(tenant, src)
	if failures > s.failures {
		s.failures = failures
		if s.lastKind == "" {
			s.lastKind = KindOther
		}
	}
}

// SetCursor seeds a source's cursor (from the state file at start), so
// lag is reported before its first run. It never moves a cursor back.
func (m *Metrics) SetCursor(tenant, src string, cursor time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.source(tenant, src)
	if cursor.After(s.cursor) {
		s.cursor = cursor
	}
}

// SetSchedule records how often a source runs (the stall alert compares
// the lag with it).
func (m *Metrics) SetSchedule(tenant, src string, every time.Duration) {
	m.schedule.WithLabelValues(tenant, src).Set(every.Seconds())
}

// RunSkipped: a scheduled run was skipped because the previous one of
// the same source was still going.
func (m *Metrics) RunSkipped(tenant, src string) {
	m.skipped.WithLabelValues(tenant, src).Inc()
}

// WaitingForSlot marks a run of tenant waiting for a free slot; call the
// returned func once it has one (or gives up).
func (m *Metrics) WaitingForSlot(tenant string) (done func()) {
	start := m.opts.Now()
	g := m.waiting.WithLabelValues(tenant)
	g.Inc()
	var once sync.Once
	return func() {
		once.Do(func() {
			g.Dec()
			m.slotWait.WithLabelValues(tenant).Observe(max(m.opts.Now().Sub(start), 0).Seconds())
		})
	}
}

// SetSession records the tenant's portal session. A session obtained
// after a source saw the old one expire clears that observation.
func (m *Metrics) SetSession(tenant string, s Session) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ss := m.session(tenant)
	ss.known, ss.Session = true, s
	if !s.Expired && !s.Obtained.IsZero() {
		for src, at := range ss.seenExpired {
			if s.Obtained.After(at) {
				delete(ss.seenExpired, src)
			}
		}
	}
}

// Pace is one API client's pacer as the gauges show it.
type Pace struct {
	Limit, InFlight int
	Paused          bool
}

// SetPace records an API client's concurrency limit, requests in flight
// and whether it is paused by throttling.
func (m *Metrics) SetPace(tenant, api string, p Pace) {
	m.paceLimit.WithLabelValues(tenant, api).Set(float64(p.Limit))
	m.paceInFlight.WithLabelValues(tenant, api).Set(float64(p.InFlight))
	paused := 0.0
	if p.Paused {
		paused = 1
	}
	m.pacePaused.WithLabelValues(tenant, api).Set(paused)
}

// SetSpools replaces the tenant's spool gauges with store.Spools(): an
// output missing from infos has an empty spool.
func (m *Metrics) SetSpools(tenant string, infos []state.SpoolInfo) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, o := range m.outputs {
		if k.tenant == tenant {
			o.spoolRecords, o.spoolBytes = 0, 0
		}
	}
	for _, in := range infos {
		o := m.output(tenant, in.Output)
		o.hasSpool, o.spoolRecords, o.spoolBytes = true, in.Records, in.Bytes
	}
}

// SetSpool sets one output's spool gauges.
func (m *Metrics) SetSpool(tenant, output string, records int, bytes int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.output(tenant, output)
	o.hasSpool, o.spoolRecords, o.spoolBytes = true, records, bytes
}

// SetDeliveryStats publishes a network output's delivery.Stats (requests,
// retries, bytes, dead letters). They are counters of the exporter's
// life; a new exporter starting from zero reads as a counter reset.
func (m *Metrics) SetDeliveryStats(tenant, output string, st delivery.Stats) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.output(tenant, output)
	o.hasStats, o.stats = true, st
}

// ObserveAttempt is the httpx.Policy.Observe hook: set
// policy.Observe = m.ObserveAttempt (with policy.Label naming the API).
func (m *Metrics) ObserveAttempt(a httpx.Attempt) {
	api := a.Label
	if api == "" {
		api = "unknown"
	}
	if a.Throttled {
		m.throttled.WithLabelValues(api).Inc()
	}
	if a.Retry {
		m.retries.WithLabelValues(api, a.Class).Inc()
	} else {
		m.giveUps.WithLabelValues(api, a.Class).Inc()
	}
}

// Forget drops every series and health fact of a tenant (removed from
// the config).
func (m *Metrics) Forget(tenant string) {
	l := prometheus.Labels{"tenant": tenant}
	for _, v := range []*prometheus.CounterVec{m.fetched, m.newRecs, m.duplicates, m.outOfWindow, m.changes,
		m.chunks, m.runs, m.sourceErrors, m.written, m.writeFailures, m.spooled, m.skipped, m.webhookPushes, m.webhookPushed} {
		v.DeletePartialMatch(l)
	}
	for _, v := range []*prometheus.GaugeVec{m.running, m.waiting, m.schedule, m.paceLimit, m.paceInFlight, m.pacePaused} {
		v.DeletePartialMatch(l)
	}
	m.runDuration.DeletePartialMatch(l)
	m.slotWait.DeletePartialMatch(l)
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.sources {
		if k.tenant == tenant {
			delete(m.sources, k)
		}
	}
	for k := range m.outputs {
		if k.tenant == tenant {
			delete(m.outputs, k)
		}
	}
	delete(m.sessions, tenant)
	delete(m.webhooks, tenant)
}

// expired reports whether the session is known to be expired at now.
func (s *sessionState) expired(now time.Time) bool {
	return s.Expired || (!s.Expires.IsZero() && !now.Before(s.Expires)) || len(s.seenExpired) > 0
}
