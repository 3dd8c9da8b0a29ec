package harvester

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/config"
	"github.com/defenderharvester/defenderharvester/internal/sink"
	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/source/auditlog"
)

// DoctorCheck is one line of the doctor's table.
type DoctorCheck struct {
	DataSet string // source name, "portal session", "public API token" or "output <name>"
	API     string // portal, legacy, public or output
	OK      bool
	// Warning marks a risky setting that works: shown, not failed.
	Warning bool
	Problem string
	Fix     string
}

// DoctorRequest says what doctor checks.
type DoctorRequest struct {
	Config  *config.Config
	Sources []string // empty or ["all"]: every enabled source
	Logger  *slog.Logger
	Now     func() time.Time
	Getenv  func(string) string
	// Timeout bounds each check (default 30s).
	Timeout time.Duration
}

// Checker is an output that can verify its credentials and reachability
// without writing a record. Outputs without it are started and shut down.
type Checker interface {
	Check(ctx context.Context) error
}

// Doctor checks every configured credential and every selected data set
// with the cheapest real request each needs, and every configured output.
// It never writes records or state. The error is for a selection that
// cannot be checked at all.
func Doctor(ctx context.Context, req DoctorRequest) ([]DoctorCheck, error) {
	if req.Logger == nil {
		req.Logger = slog.New(slog.DiscardHandler)
	}
	if req.Now == nil {
		req.Now = time.Now
	}
	if req.Getenv == nil {
		req.Getenv = func(string) string { return "" }
	}
	if req.Timeout <= 0 {
		req.Timeout = 30 * time.Second
	}
	cfg := req.Config
	factories, err := Select(cfg, req.Sources)
	if err != nil {
		return nil, err
	}
	c, err := newClients(ctx, cfg, req.Logger, nil, nil)
	if err != nil {
		return nil, err
	}
	var out []DoctorCheck
	for _, w := range cfg.Warnings() {
		fix, _ := configWarningFix(w)
		out = append(out, DoctorCheck{DataSet: "config", API: "-", OK: true, Warning: true, Problem: w, Fix: fix})
	}
	portalAPI := "portal"
	if cfg.Portal.Mode == config.ModeLegacy {
		portalAPI = "legacy"
	}
	// fail explains err; fallback is the row's own fix for an error
	// nothing more is known about.
	fail := func(name, api string, err error, fallback string) DoctorCheck {
		p, f, specific := explain(err, api)
		if !specific {
			f = fallback
		}
		return DoctorCheck{DataSet: name, API: api, Problem: p, Fix: f}
	}
	sessionFix := fixSessionExpired
	switch {
	case portalAPI == "legacy":
		sessionFix = publicMethodFix(cfg.PublicAPI.Auth.Method)
	case cfg.Portal.Auth.Method == config.PortalESTS:
		sessionFix = "Copy a fresh ESTSAUTHPERSISTENT cookie (private window, \"Stay signed in\") into " + config.EnvPortalESTS + " or portal.auth.ests_file, then run `defenderharvester login portal` " + readme + "."
	case cfg.Portal.Auth.Method == config.PortalBearer:
		sessionFix = fixNoRefresh
	}
	publicFix := publicMethodFix(cfg.PublicAPI.Auth.Method)
	timed := func(f func(ctx context.Context) error) error {
		cctx, cancel := context.WithTimeout(ctx, req.Timeout)
		defer cancel()
		return f(cctx)
	}

	tenant := cfg.TenantID
	if needs(factories, "portal") {
		row := DoctorCheck{DataSet: "portal session", API: portalAPI, OK: true}
		switch {
		case c.portalErr != nil:
			row = fail(row.DataSet, portalAPI, c.portalErr, sessionFix)
		case c.proxy != nil:
			var got string
			err := timed(func(ctx context.Context) error {
				tc, err := c.proxy.TenantContext(ctx)
				got = tc.TenantID
				return err
			})
			switch {
			case err != nil: // including a session of another tenant (mde.ErrWrongTenant)
				row = fail(row.DataSet, portalAPI, err, sessionFix)
			case tenant == "":
				tenant = got
			}
		}
		out = append(out, row)
	}
	if needs(factories, "public") {
		if c.api == nil && c.tokensErr == nil && tenant != "" {
			if err := c.buildPublic(cfg, tenant, req.Logger); err != nil {
				c.tokensErr = err
			}
		}
		row := DoctorCheck{DataSet: "public API token", API: "public", OK: true}
		switch {
		case c.tokensErr != nil:
			row = fail(row.DataSet, "public", c.tokensErr, publicFix)
		case c.tokens == nil:
			row = fail(row.DataSet, "public", withFix(errors.New("tenant_id is not set and the portal could not tell it: set tenant_id or DH_TENANT_ID"), fixTenantID), publicFix)
		default:
			if err := timed(func(ctx context.Context) error { _, err := c.tokens.Token(ctx); return err }); err != nil {
				row = fail(row.DataSet, "public", err, publicFix)
			}
		}
		out = append(out, row)
	}

	getenv := req.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	deps := source.Deps{TenantID: tenant, TenantName: cfg.Name, Logger: req.Logger, Now: req.Now, Getenv: tenantGetenv(cfg.Name, getenv)}
	if c.portal != nil {
		deps.Portal = c.portal
	}
	if c.api != nil {
		deps.API = c.api
	}
	if c.manage != nil {
		deps.ActivityFeed = c.activityFeed(tenant)
	}
	if c.graph != nil {
		deps.Graph = c.graph
	}
	discard := func(context.Context, source.Item) error { return nil }
	for _, f := range factories {
		api := f.API
		if api == "portal" {
			api = portalAPI
		}
		src, err := build(f, cfg, deps, c)
		if err != nil {
			out = append(out, fail(f.Name, api, err, sourceFix(f.Name)))
			continue
		}
		err = timed(func(ctx context.Context) error {
			switch s := src.(type) {
			case source.EventSource:
				now := req.Now()
				return s.Fetch(ctx, source.Window{From: now.Add(-time.Minute), To: now}, discard)
			case source.SnapshotSource:
				return s.Snapshot(ctx, discard)
			}
			return fmt.Errorf("source %s is neither an event nor a snapshot source", f.Name)
		})
		if err != nil {
			out = append(out, fail(f.Name, api, err, sourceFix(f.Name)))
			continue
		}
		out = append(out, DoctorCheck{DataSet: f.Name, API: api, OK: true})
		if h, ok := src.(auditlog.Hooked); ok {
			if ws, on := h.Webhook(); on {
				out = append(out, checkWebhook(cfg.Serve.Webhook, ws))
			}
		}
	}
	out = append(out, checkOutputs(ctx, cfg, req, c, timed)...)
	return out, nil
}

// checkWebhook checks what serve needs to receive the audit log's
// notifications, without listening: the AuthID was read (the source was
// built), the listener's TLS files load, or plain_http is said. Whether
// the service can reach the address only the registration shows (serve
// logs "webhook registered").
func checkWebhook(c config.Webhook, ws auditlog.WebhookSettings) DoctorCheck {
	row := DoctorCheck{DataSet: "auditlog webhook", API: "webhook", OK: true}
	switch _, err := WebhookTLS(c, nil); {
	case err == nil:
	case c.TLSCertFile == "":
		row = DoctorCheck{DataSet: row.DataSet, API: "webhook", Problem: "serve.webhook has no certificate and plain_http is not set",
			Fix: "set serve.webhook.tls_cert_file and tls_key_file, or plain_http: true behind a proxy that terminates TLS"}
	default:
		row = DoctorCheck{DataSet: row.DataSet, API: "webhook", Problem: err.Error(),
			Fix: "give serve.webhook.tls_cert_file and tls_key_file a PEM certificate chain for the host of " + ws.Address + " and its key (mode 0600)"}
	}
	return row
}

// checkOutputs checks the outputs named in the config (none: nothing to
// check; the default files output needs no credential).
func checkOutputs(ctx context.Context, cfg *config.Config, req DoctorRequest, c *clients, timed func(func(context.Context) error) error) []DoctorCheck {
	var names []string
	for n, node := range cfg.Outputs {
		if on, err := config.Enabled(node); err == nil && on {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil
	}
	var out []DoctorCheck
	sinks, err := buildSinks(cfg, Request{Config: cfg, Outputs: names, Logger: req.Logger, Now: req.Now, Stdout: io.Discard, Getenv: req.Getenv}, c.transport)
	if err != nil {
		p, f, specific := explain(err, "output")
		if !specific {
			f = "Correct the outputs section of the config as the problem says (README, Outputs and delivery guarantees)."
			for _, n := range names {
				if strings.Contains(p, "outputs."+n) || strings.Contains(p, "output "+strconv.Quote(n)) {
					f = outputFix(n)
				}
			}
		}
		return []DoctorCheck{{DataSet: "outputs", API: "output", Problem: p, Fix: f}}
	}
	for _, s := range sinks {
		row := DoctorCheck{DataSet: "output " + s.Name(), API: "output", OK: true}
		err := timed(func(ctx context.Context) error {
			if ch, ok := s.(Checker); ok {
				return ch.Check(ctx)
			}
			return s.Start(ctx)
		})
		if err != nil {
			p, f, specific := explain(err, "output")
			if !specific {
				f = outputFix(s.Name())
			}
			row = DoctorCheck{DataSet: row.DataSet, API: "output", Problem: p, Fix: f}
		}
		out = append(out, row)
		if w, ok := s.(sink.Warner); ok {
			for _, warning := range w.Warnings() {
				out = append(out, DoctorCheck{DataSet: row.DataSet, API: "output", Problem: warning,
					Fix: outputWarningFix(s.Name(), warning)})
			}
		}
	}
	_ = shutdown(sinks, req.Logger)
	return out
}

func needs(fs []source.Factory, api string) bool {
	for _, f := range fs {
		if f.API == api {
			return true
		}
	}
	return false
}
