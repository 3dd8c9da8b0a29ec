// Package harvester assembles one harvest from a validated config: API
// clients and credentials, the selected sources, the sinks, the state store
// and the pipeline. The CLI commands (run, demo, compat) only parse flags and
// print what this returns.
package harvester

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/auth"
	"github.com/defenderharvester/defenderharvester/internal/clock"
	"github.com/defenderharvester/defenderharvester/internal/config"
	"github.com/defenderharvester/defenderharvester/internal/detect"
	"github.com/defenderharvester/defenderharvester/internal/httpx"
	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/pipeline"
	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/schedule"
	"github.com/defenderharvester/defenderharvester/internal/sink"
	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/state"

	_ "github.com/defenderharvester/defenderharvester/internal/sink/all"   // register sinks
	_ "github.com/defenderharvester/defenderharvester/internal/source/all" // register sources
)

// Request says what one harvest should do.
type Request struct {
	Config  *config.Config
	Sources []string  // source names; empty or ["all"] = every enabled source
	Outputs []string  // sink names; empty = those configured, else "files"
	OutDir  string    // overrides the files sink directory when set
	Since   time.Time // non-zero: cover event data from here on (a backfill)
	// Redeliver re-sends what was already harvested since Since to
	// RedeliverTo (output names; all when empty), moving no checkpoint.
	Redeliver   bool
	RedeliverTo []string
	// Timeout bounds the whole run (0: none); at the deadline every
	// source stops where its last completed chunk left it.
	Timeout time.Duration
	// SpoolAfter is how long one batch may wait on one output while
	// others keep flowing (0: the pipeline's default).
	SpoolAfter time.Duration
	// ResetState moves a damaged state file aside before the run (a
	// healthy one is kept).
	ResetState bool
	Logger     *slog.Logger
	Now        func() time.Time
	Stdout     io.Writer // for the stdout sink
	Getenv     func(string) string
	// Prompt shows a device-code sign-in message (public_api.auth.method:
	// device_code without a cached token).
	Prompt func(string)
	// Observer is told about the run's progress and outcomes (progress
	// display, metrics); nil: nobody.
	Observer pipeline.Observer
	// HTTPObserver is told about every retry decision of the API
	// clients (metrics of retries and throttling); nil: nobody.
	HTTPObserver func(httpx.Attempt)
	// Webhook builds the audit log's webhook listener when
	// sources.auditlog.webhook.address is set (serve, the webhook
	// command): Tenant.Webhook, Tenant.ServeWebhook. A one-shot run never
	// listens, so it never registers a webhook either.
	Webhook bool
}

// Report is the outcome of one harvest.
type Report struct {
	TenantID string
	Results  []pipeline.Result
	Outputs  []pipeline.OutputStatus
	Duration time.Duration
	// DeadlineHit says the run was stopped by its Timeout.
	DeadlineHit bool
	Timeout     time.Duration
	// Findings are what the detection pack found in this run's records
	// (detect.enabled).
	Findings []detect.Finding
}

// OutputsFailing counts outputs that are still failing at the end of the
// run or still have spooled records (an output that recovered and
// drained its spool does not count).
func (r Report) OutputsFailing() int {
	n := 0
	for _, o := range r.Outputs {
		if o.Err != nil || o.Backlog > 0 {
			n++
		}
	}
	return n
}

// DeadLettered counts records the outputs refused for reasons of their
// own (they are in dead-letter files, not delivered), and says where.
func (r Report) DeadLettered() (n int64, where []string) {
	for _, o := range r.Outputs {
		if o.Delivery.DeadLettered > 0 {
			n += o.Delivery.DeadLettered
			where = append(where, o.Output+": "+o.Delivery.DeadLetters)
		}
	}
	return n, where
}

// Failed counts the sources that did not succeed.
func (r Report) Failed() int {
	n := 0
	for _, res := range r.Results {
		if res.Err != nil {
			n++
		}
	}
	return n
}

// Run performs one incremental pass. An error means nothing could be run
// (bad selection, state file in use); per-source failures are in the
// report's results.
func Run(ctx context.Context, req Request) (rep Report, err error) {
	start := time.Now()
	defer func() {
		// Whatever stopped at the deadline says so (also a start-up step,
		// such as an output's health check, that the deadline cut short).
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			rep.DeadlineHit, rep.Timeout = true, req.Timeout
		}
	}()
	if req.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, req.Timeout)
		defer cancel()
	}
	t, err := Open(ctx, req)
	if err != nil {
		return Report{}, err
	}
	t.keepFindings = true
	results := t.run(ctx, nil, pipeline.RunOptions{Since: req.Since, Redeliver: req.Redeliver, Outputs: req.RedeliverTo})
	outputs, err := t.close()
	if err != nil {
		return Report{}, err
	}
	t.findingsMu.Lock()
	fs := t.findings
	t.findingsMu.Unlock()
	return Report{TenantID: t.tenant, Results: results, Outputs: outputs, Duration: time.Since(start), Findings: fs}, nil
}

// Tenant is one tenant opened for harvesting: its API clients, sources,
// outputs, state store and pipeline, kept between runs (serve runs each
// source on its own schedule through one Tenant). Open, Run any number of
// times (concurrently for different sources), Close.
type Tenant struct {
	req       Request
	log       *slog.Logger
	tenant    string
	factories []source.Factory
	sources   map[string]source.Source
	buildErrs map[string]error
	clients   *clients
	sinks     []sink.Sink
	store     *state.Store
	p         *pipeline.Pipeline
	hook      *hookedTenant // the audit log's webhook (Request.Webhook)
	detect    *inProcess    // the detection pack over what runs deliver (detect.enabled)

	// keepFindings: the one-shot Run reports the findings of its run;
	// serve only logs and delivers them (kept, they would grow forever).
	keepFindings bool
	findingsMu   sync.Mutex // serve runs sources of one tenant at once
	findings     []detect.Finding
}

// Open prepares a tenant: checks which tenant the portal session belongs
// to, builds the sources and outputs, opens the state store (held until
// Close) and starts the outputs' drainers. ctx bounds the start-up and
// the drainers' life.
func Open(ctx context.Context, req Request) (*Tenant, error) {
	if req.Logger == nil {
		req.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if req.Now == nil {
		req.Now = time.Now
	}
	if req.Stdout == nil {
		req.Stdout = os.Stdout
	}
	if req.Getenv == nil {
		req.Getenv = func(string) string { return "" }
	}
	cfg := req.Config

	factories, err := Select(cfg, req.Sources)
	if err != nil {
		return nil, err
	}
	if req.ResetState {
		moved, ok, err := state.Quarantine(cfg.StateFile, req.Now())
		if err != nil {
			return nil, err
		}
		if ok {
			req.Logger.Warn("the damaged state file was moved aside; this run starts a new one from the initial lookback", "moved_to", moved)
		} else {
			req.Logger.Info("--reset-state: the state file is healthy (or absent) and was kept")
		}
	}

	clients, err := newClients(ctx, cfg, req.Logger, req.Prompt, req.HTTPObserver)
	if err != nil {
		return nil, err
	}

	tenant := cfg.TenantID
	if clients.proxy != nil && needsPortal(factories) {
		// The records are labelled with this tenant: it must be the one the
		// portal session belongs to (the client, built with tenant_id,
		// refuses any other with mde.ErrWrongTenant).
		tc, err := clients.proxy.TenantContext(ctx)
		switch {
		case errors.Is(err, mde.ErrWrongTenant):
			return nil, fmt.Errorf("%w: records would be labelled with the wrong tenant, so nothing was harvested", err)
		case err != nil && tenant == "":
			return nil, fmt.Errorf("tenant_id is not set and reading it from the portal failed: %w", err)
		case err != nil:
			clients.portal, clients.proxy = nil, nil
			clients.portalErr = fmt.Errorf("cannot confirm which tenant the portal session belongs to, so its data is not harvested (records would carry tenant_id %s unchecked): %w", tenant, err)
		case tenant == "":
			tenant = tc.TenantID
		}
		if clients.proxy != nil {
			measureSkew(ctx, clients, req.Logger)
		}
	}
	if tenant == "" {
		return nil, errors.New("tenant_id is not set: put it in the config (tenant_id) or DH_TENANT_ID")
	}
	if clients.tokensErr == nil && clients.api == nil && needsPublic(factories) {
		// Tokens could be built only once the tenant is known.
		if err := clients.buildPublic(cfg, tenant, req.Logger); err != nil {
			clients.tokensErr = err
		}
	}

	deps := source.Deps{TenantID: tenant, TenantName: cfg.Name, Logger: req.Logger, Now: req.Now, Getenv: tenantGetenv(cfg.Name, req.Getenv)}
	if clients.portal != nil {
		deps.Portal = clients.portal
	}
	if clients.api != nil {
		deps.API = clients.api
	}
	if clients.manage != nil {
		deps.ActivityFeed = clients.activityFeed(tenant)
	}
	if clients.graph != nil {
		deps.Graph = clients.graph
	}
	t := &Tenant{req: req, log: req.Logger, tenant: tenant, factories: factories, clients: clients,
		sources: map[string]source.Source{}, buildErrs: map[string]error{}}
	for _, f := range factories {
		src, err := build(f, cfg, deps, clients)
		if err != nil {
			t.buildErrs[f.Name] = err
			continue
		}
		t.sources[f.Name] = src
	}

	if req.Webhook {
		if err := t.openWebhook(cfg.Serve.Webhook); err != nil {
			return nil, err
		}
	}

	sinks, err := buildSinks(cfg, req, clients.transport)
	if err != nil {
		return nil, err
	}
	store, err := state.Open(cfg.StateFile, state.Options{Logger: req.Logger})
	if errors.Is(err, state.ErrDamaged) {
		return nil, fmt.Errorf("%w (nothing was harvested)", err)
	}
	if err != nil {
		return nil, err
	}

	// An output that cannot start (its service is down, its token was
	// revoked) must not stop the others: it starts the run marked down, so
	// its share goes to its spool. Only when none can start is there
	// nothing to deliver to.
	unavailable := map[string]error{}
	for _, s := range sinks {
		if err := s.Start(ctx); err != nil {
			unavailable[s.Name()] = fmt.Errorf("output %s cannot start: %w", s.Name(), err)
		}
	}
	if len(unavailable) == len(sinks) {
		shutdown(sinks, req.Logger)
		store.Close()
		var errs []error
		for _, s := range sinks {
			errs = append(errs, unavailable[s.Name()])
		}
		return nil, errors.Join(errs...)
	}
	if cfg.Detect.Enabled && !req.Redeliver {
		if t.detect, err = newInProcess(cfg.Detect); err != nil {
			shutdown(sinks, req.Logger)
			store.Close()
			return nil, err
		}
	}
	var tap func(string, []record.Record)
	if t.detect != nil {
		tap = t.detect.tap
	}
	p, err := pipeline.New(pipeline.Options{
		Tap:             tap,
		Unavailable:     unavailable,
		Store:           store,
		Sinks:           sinks,
		Logger:          req.Logger,
		Now:             req.Now,
		InitialLookback: time.Duration(cfg.InitialLookback),
		Concurrency:     cfg.Concurrency,
		SpoolMaxBytes:   cfg.SpoolMaxBytes,
		SpoolAfter:      req.SpoolAfter,
		Skew:            clients.skew.Skew,
		Observer:        req.Observer,
	})
	if err != nil {
		shutdown(sinks, req.Logger)
		store.Close()
		return nil, err
	}
	t.sinks, t.store, t.p = sinks, store, p
	if !req.Redeliver {
		p.Start(ctx)
	}
	return t, nil
}

// tenantGetenv is the environment a tenant's sources read: in a
// multi-tenant config DH_<TENANT>_X first (DH_CONTOSO_WEBHOOK_AUTH_ID),
// then DH_X, which all tenants share.
func tenantGetenv(name string, getenv func(string) string) func(string) string {
	if name == "" {
		return getenv
	}
	return func(k string) string {
		if v := getenv(config.TenantEnvName(name, k)); v != "" {
			return v
		}
		return getenv(k)
	}
}

// TenantID is the tenant's id (from the config or the portal session).
func (t *Tenant) TenantID() string { return t.tenant }

// Store is the tenant's open state store (for status pages).
func (t *Tenant) Store() *state.Store { return t.store }

// Sources names the sources this tenant was opened with, in order.
func (t *Tenant) Sources() []string {
	out := make([]string, len(t.factories))
	for i, f := range t.factories {
		out[i] = f.Name
	}
	return out
}

// Session is the tenant's portal session (nil without one): its age and
// expiry feed the metrics.
func (t *Tenant) Session() auth.PortalSession { return t.clients.session }

// Pacers are the API clients' concurrency pacers by API family
// ("portal", "public"); a client not built has none.
func (t *Tenant) Pacers() map[string]*mde.Pacer {
	out := map[string]*mde.Pacer{}
	if t.clients.proxy != nil {
		out["portal"] = t.clients.proxy.Pacer()
	}
	if t.clients.api != nil {
		out["public"] = t.clients.api.Pacer()
	}
	if t.clients.graph != nil {
		out["graph"] = t.clients.graph.Pacer()
	}
	return out
}

// Run harvests the named sources (nil: every source it was opened with)
// and returns their results in the order of the selection. The caller
// never runs one source twice at once.
func (t *Tenant) Run(ctx context.Context, names []string, ro pipeline.RunOptions) []pipeline.Result {
	return t.run(ctx, names, ro)
}

func (t *Tenant) run(ctx context.Context, names []string, ro pipeline.RunOptions) []pipeline.Result {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var runnable []source.Source
	var results []pipeline.Result
	for _, f := range t.factories {
		if len(names) > 0 && !want[f.Name] {
			continue
		}
		if err, failed := t.buildErrs[f.Name]; failed {
			res := pipeline.Result{Source: f.Name, Table: f.Table, Kind: f.Kind, Err: err}
			if t.req.Observer != nil {
				t.req.Observer.SourceDone(t.tenant, res) // a source that cannot be built fails every run
			}
			results = append(results, res)
			continue
		}
		runnable = append(runnable, t.sources[f.Name])
	}
	results = append(results, t.p.RunSources(ctx, t.tenant, runnable, ro)...)
	sortResults(results, t.factories)
	if fs := t.reportFindings(ctx); len(fs) > 0 && t.keepFindings {
		t.findingsMu.Lock()
		t.findings = append(t.findings, fs...)
		t.findingsMu.Unlock()
	}
	return results
}

// Outputs reports each output's status (cumulative since Open).
func (t *Tenant) Outputs() []pipeline.OutputStatus { return t.p.Outputs() }

// Close stops the drainers (after a last attempt at each spool), shuts
// the outputs down and releases the state file.
func (t *Tenant) Close() error {
	_, err := t.close()
	return err
}

func (t *Tenant) close() ([]pipeline.OutputStatus, error) {
	if !t.req.Redeliver {
		t.p.Shutdown()
	}
	outputs := t.p.Outputs()
	err := shutdown(t.sinks, t.log)
	if cerr := t.store.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return outputs, err
}

func shutdown(sinks []sink.Sink, log *slog.Logger) error {
	var first error
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, s := range sinks {
		if err := s.Shutdown(ctx); err != nil {
			log.Error("output shutdown failed", "output", s.Name(), "err", err)
			if first == nil {
				first = fmt.Errorf("output %s: %w", s.Name(), err)
			}
		}
	}
	return first
}

// sortResults puts results back in the selection order.
func sortResults(results []pipeline.Result, factories []source.Factory) {
	pos := map[string]int{}
	for i, f := range factories {
		pos[f.Name] = i
	}
	sort.SliceStable(results, func(i, j int) bool { return pos[results[i].Source] < pos[results[j].Source] })
}

// Select resolves source names: "all" (or nothing) means every source that
// is enabled by default or configured, minus those configured with
// enabled: false. Named sources always run.
func Select(cfg *config.Config, names []string) ([]source.Factory, error) {
	if len(names) == 0 || (len(names) == 1 && names[0] == "all") {
		var out []source.Factory
		for _, f := range source.All() {
			node, configured := cfg.Sources[f.Name]
			on, err := config.Enabled(node)
			if err != nil {
				return nil, fmt.Errorf("sources.%s.%w", f.Name, err)
			}
			if !on {
				continue
			}
			if f.DefaultEnabled || configured {
				out = append(out, f)
			}
		}
		return out, nil
	}
	var out []source.Factory
	seen := map[string]bool{}
	for _, n := range names {
		n = strings.TrimSpace(strings.ToLower(n))
		if n == "" || seen[n] {
			continue
		}
		if n == "all" {
			return nil, errors.New("--sources: \"all\" cannot be combined with other names")
		}
		f, ok := source.Lookup(n)
		if !ok {
			return nil, fmt.Errorf("--sources: unknown source %q; known sources: %s", n, strings.Join(Names(), ", "))
		}
		seen[n] = true
		out = append(out, f)
	}
	if len(out) == 0 {
		return nil, errors.New("--sources: no source named; use a comma-separated list or all")
	}
	return out, nil
}

// Names lists every registered source name.
func Names() []string {
	var out []string
	for _, f := range source.All() {
		out = append(out, f.Name)
	}
	return out
}

// Check validates the config's plugin sections before any work: each
// names a real source or output, and its settings decode and pass the
// plugin's own checks — so a bad value stops the run at once instead of
// failing one source after the others moved their checkpoints. A config
// with tenants is checked tenant by tenant.
func Check(cfg *config.Config) error {
	if cfg.MultiTenant() {
		tcs, err := cfg.TenantConfigs()
		if err != nil {
			return err
		}
		var errs []error
		for _, tc := range tcs {
			if err := checkOne(tc); err != nil {
				errs = append(errs, fmt.Errorf("tenants.%s: %w", tc.Name, err))
			}
		}
		return errors.Join(errs...)
	}
	return checkOne(cfg)
}

func checkOne(cfg *config.Config) error {
	var errs []error
	check := func(kind string, sections config.PluginConfigs, known []string, settings func(name string) (bool, error)) {
		for _, name := range sortedNames(sections) {
			section := kind + "s." + name
			on, err := config.Enabled(sections[name])
			if err != nil {
				errs = append(errs, fmt.Errorf("%s.%w", section, err))
				continue
			}
			found, err := settings(name)
			switch {
			case !found:
				errs = append(errs, fmt.Errorf("%s: unknown %s; known %ss: %s", section, kind, kind, strings.Join(known, ", ")))
			case on && err != nil: // a switched-off section may be incomplete
				errs = append(errs, err)
			}
		}
	}
	check("source", cfg.Sources, Names(), func(name string) (bool, error) {
		f, ok := source.Lookup(name)
		if !ok {
			return false, nil
		}
		if _, err := sourceSettings(cfg, f); err != nil {
			return true, err
		}
		if text := config.Schedule(cfg.Sources[name]); text != "" {
			if _, err := schedule.Parse(text); err != nil {
				return true, fmt.Errorf("sources.%s.schedule: %w", name, err)
			}
		}
		return true, nil
	})
	check("output", cfg.Outputs, sinkNames(), func(name string) (bool, error) {
		f, ok := sink.Lookup(config.OutputType(name, cfg.Outputs[name]))
		if !ok {
			return false, nil
		}
		_, err := sinkSettings(cfg, name, f)
		return true, err
	})
	return errors.Join(errs...)
}

func sortedNames(m config.PluginConfigs) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// sourceSettings decodes, resolves and validates a source's section.
func sourceSettings(cfg *config.Config, f source.Factory) (any, error) {
	var settings any
	if f.NewConfig != nil {
		settings = f.NewConfig()
	}
	return settings, cfg.LoadPlugin(cfg.Sources[f.Name], "sources."+f.Name, settings)
}

// sinkSettings decodes, resolves and validates the section of the
// output instance name (of type f).
func sinkSettings(cfg *config.Config, name string, f sink.Factory) (any, error) {
	var settings any
	if f.NewConfig != nil {
		settings = f.NewConfig()
	}
	return settings, cfg.LoadPlugin(cfg.Outputs[name], "outputs."+name, settings)
}

// instanceNames lists the named output instances of the config (those
// whose name is not their type).
func instanceNames(cfg *config.Config) []string {
	var out []string
	for _, n := range sortedNames(cfg.Outputs) {
		if config.OutputType(n, cfg.Outputs[n]) != n {
			out = append(out, n)
		}
	}
	return out
}

func sinkNames() []string {
	var out []string
	for _, f := range sink.All() {
		out = append(out, f.Name)
	}
	return out
}

// measureSkew makes sure the skew meter has the answers it needs (three)
// before any window is planned: windows follow the services' clock when
// it is more than a minute off ours, and a window planned on our clock
// before the skew is known could pass events the services stamp later.
// The extra requests are the cheapest the portal serves (TenantContext).
func measureSkew(ctx context.Context, c *clients, log *slog.Logger) {
	for i := 0; i < 2; i++ {
		if _, ok := c.skew.Skew(); ok {
			return
		}
		if _, err := c.proxy.TenantContext(ctx); err != nil {
			log.Debug("measuring the services' clock: an extra TenantContext request failed; windows use this machine's clock until the skew is known", "err", err)
			return
		}
	}
}

func needsPortal(fs []source.Factory) bool {
	for _, f := range fs {
		if f.API == "portal" {
			return true
		}
	}
	return false
}

func needsPublic(fs []source.Factory) bool {
	for _, f := range fs {
		if f.API == "public" {
			return true
		}
	}
	return false
}

func build(f source.Factory, cfg *config.Config, deps source.Deps, c *clients) (source.Source, error) {
	switch f.API {
	case "portal":
		if c.portal == nil {
			return nil, c.portalErr
		}
	case "public":
		if c.api == nil {
			if c.tokensErr != nil {
				return nil, c.tokensErr
			}
			return nil, errors.New("the public Defender API is not configured")
		}
	}
	settings, err := sourceSettings(cfg, f)
	if err != nil {
		return nil, err
	}
	return f.New(deps, settings)
}

func buildSinks(cfg *config.Config, req Request, rt http.RoundTripper) ([]sink.Sink, error) {
	names := req.Outputs
	if len(names) == 0 {
		var err error
		if names, err = OutputNames(cfg); err != nil {
			return nil, err
		}
	}
	var out []sink.Sink
	for _, n := range names {
		node := cfg.Outputs[n]
		typ := config.OutputType(n, node)
		f, ok := sink.Lookup(typ)
		if !ok {
			known := append(sinkNames(), instanceNames(cfg)...)
			return nil, fmt.Errorf("output %q is not known; known outputs: %s", n, strings.Join(known, ", "))
		}
		settings, err := sinkSettings(cfg, n, f)
		if err != nil {
			return nil, err
		}
		deps := sink.Deps{Logger: req.Logger, Now: req.Now, Stdout: req.Stdout, Transport: rt,
			Emulated: cfg.Emulator.Address != "", Getenv: req.Getenv, DataDir: filepath.Dir(cfg.StateFile)}
		if n != typ {
			deps.Name = n
		}
		if req.OutDir != "" {
			if d, ok := settings.(interface{ SetDir(string) }); ok {
				d.SetDir(req.OutDir)
			}
		}
		if ts, ok := settings.(sink.TenantScoper); ok && cfg.Name != "" {
			ts.ForTenant(cfg.Name)
		}
		s, err := f.New(deps, settings)
		if err != nil {
			return nil, fmt.Errorf("outputs.%s: %w", n, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// clients holds the API clients the config allows, and why the others
// could not be built (reported per source, so other sources still run).
type clients struct {
	net       Net
	skew      *clock.SkewMeter
	transport http.RoundTripper
	portal    mde.Portal        // proxy or legacy client
	proxy     *mde.PortalClient // nil in legacy mode
	session   auth.PortalSession
	portalErr error
	api       *mde.PublicAPIClient
	tokens    auth.TokenSource
	// graph is Microsoft Graph with the public API credential asked for
	// https://graph.microsoft.com/.default.
	graph *mde.GraphClient
	// manage is the public API credential asked for the Management
	// Activity API (https://manage.office.com/.default).
	manage    auth.TokenSource
	tokensErr error
	prompt    func(string) // device-code sign-in messages
}

// newClients builds the clients of one command over one Net (transport,
// HTTP policy and skew meter shared by all of them).
func newClients(ctx context.Context, cfg *config.Config, log *slog.Logger, prompt func(string), observe func(httpx.Attempt)) (*clients, error) {
	skew := clock.NewSkewMeter()
	n, err := NewNet(cfg, skew, log)
	if err != nil {
		return nil, err
	}
	n.Policy.Label, n.Policy.Observe = "auth", observe
	c := &clients{net: n, transport: n.Transport, skew: skew, prompt: prompt}

	if cfg.Portal.Mode == config.ModeLegacy {
		log.Warn("portal.mode legacy: Microsoft closed the regional *.securitycenter.windows.com hosts to user tokens in 2025; expect 401/403 and prefer the portal proxy")
		tokens, err := n.LegacyTokens(cfg, cfg.TenantID)
		if err != nil {
			c.portalErr = fmt.Errorf("portal.mode legacy: %w", err)
		} else {
			lc, err := mde.NewLegacyClient(mde.LegacyOptions{
				ClientOptions: n.ClientOptions(),
				Location:      cfg.Portal.Location,
				Tokens:        tokens,
			})
			if err != nil {
				return nil, fmt.Errorf("portal.location: %w", err)
			}
			c.portal = lc
		}
	} else if session, err := n.PortalSession(cfg, cfg.TenantID); err != nil {
		c.portalErr = err
	} else {
		pc, err := n.PortalClient(cfg, session)
		if err != nil {
			return nil, err
		}
		c.portal, c.proxy, c.session = pc, pc, session
	}
	if cfg.TenantID != "" || cfg.PublicAPI.Auth.Method == config.MethodToken {
		if err := c.buildPublic(cfg, cfg.TenantID, log); err != nil {
			c.tokensErr = err
		}
	}
	return c, nil
}

func (c *clients) buildPublic(cfg *config.Config, tenant string, log *slog.Logger) error {
	sources, err := c.net.tokenSources(cfg, tenant, c.prompt)
	if err != nil {
		return err
	}
	tokens := sources(ScopePublicAPI)
	base := cfg.PublicAPI.BaseURL
	if cfg.Portal.Mode == config.ModeLegacy && base == config.Default().PublicAPI.BaseURL {
		// The original sent machine actions to the regional service host
		// with the same token as the portal data.
		if base, err = mde.LegacyPublicBaseURL(cfg.Portal.Location); err != nil {
			return err
		}
	}
	api, err := mde.NewPublicAPIClient(mde.PublicOptions{
		ClientOptions: c.net.ClientOptions(),
		BaseURL:       base,
		Tokens:        tokens,
	})
	if err != nil {
		return err
	}
	graph, err := mde.NewGraphClient(mde.GraphOptions{
		ClientOptions: c.net.ClientOptions(),
		Tokens:        sources(ScopeGraph),
	})
	if err != nil {
		return err
	}
	c.api, c.tokens, c.manage, c.graph = api, tokens, sources(ScopeManage), graph
	return nil
}

// activityFeed builds Management Activity API clients of tenant over the
// run's Net with the manage.office.com credential; each only sends that
// credential to the management host of its cloud.
func (c *clients) activityFeed(tenant string) func(cloud, publisher string) (mde.ActivityFeed, error) {
	return func(cloud, publisher string) (mde.ActivityFeed, error) {
		return mde.NewActivityFeedClient(mde.ActivityFeedOptions{
			ClientOptions:       c.net.ClientOptions(),
			TenantID:            tenant,
			Cloud:               cloud,
			PublisherIdentifier: publisher,
			Tokens:              c.manage,
		})
	}
}
