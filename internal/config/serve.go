package config

import (
	"fmt"
	"time"
)

// Serve configures the long-running form (`serve`): its HTTP endpoint,
// how many runs go at once, and how replicas share tenants.
type Serve struct {
	// Listen is the address of /metrics, /healthz and /readyz.
	Listen string `yaml:"listen"`
	// MaxConcurrentRuns bounds the runs of all tenants at once;
	// MaxConcurrentRunsPerTenant those of one tenant (so one big tenant
	// cannot take every slot).
	MaxConcurrentRuns          int `yaml:"max_concurrent_runs"`
	MaxConcurrentRunsPerTenant int `yaml:"max_concurrent_runs_per_tenant"`
	// Jitter spreads the firings of the tenants' schedules over this
	// much time (a stable offset per tenant and source).
	Jitter Duration `yaml:"jitter"`
	// NotReadyAfterFailures turns /readyz red when a source failed this
	// many times in a row.
	NotReadyAfterFailures int `yaml:"not_ready_after_failures"`
	// ShutdownTimeout is how long SIGTERM waits for runs in flight.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// LeaseDir, shared by every replica, holds one lease per tenant: a
	// replica harvests a tenant only while it holds its lease.
	LeaseDir string `yaml:"lease_dir"`
	Shard    Shard  `yaml:"shard"`
	// Webhook is the listener of the audit log's webhook mode: where the
	// Office 365 Management Activity API posts its notifications for
	// every tenant whose sources.auditlog.webhook.address is set.
	Webhook Webhook `yaml:"webhook"`
}

// Webhook configures the listener the Management Activity API posts
// notifications to (serve and the webhook command). Each tenant's path
// is the path of its sources.auditlog.webhook.address.
type Webhook struct {
	// Listen is the address the listener binds (default :9443).
	Listen string `yaml:"listen"`
	// TLSCertFile and TLSKeyFile (PEM) make it serve HTTPS; the service
	// only posts to https addresses with a publicly trusted certificate.
	TLSCertFile string `yaml:"tls_cert_file"`
	TLSKeyFile  string `yaml:"tls_key_file"`
	// PlainHTTP serves without TLS, for a proxy that terminates TLS in
	// front and forwards to this address; it must be said explicitly,
	// because the AuthID travels in every request.
	PlainHTTP bool `yaml:"plain_http"`
	// Bounds of what a flood of requests can take (0: the defaults of
	// internal/webhook: 1 MiB, 16 requests at once, 10,000 queued
	// notifications per tenant).
	MaxBodyBytes  int64 `yaml:"max_body_bytes"`
	MaxConcurrent int   `yaml:"max_concurrent"`
	QueueSize     int   `yaml:"queue_size"`
}

// DefaultWebhookListen is the default of serve.webhook.listen.
const DefaultWebhookListen = ":9443"

func (w Webhook) validate(add func(key, format string, a ...any)) {
	if w.Listen == "" {
		add("serve.webhook.listen", "is empty; use an address such as :9443")
	}
	switch {
	case (w.TLSCertFile == "") != (w.TLSKeyFile == ""):
		add("serve.webhook.tls_cert_file", "and serve.webhook.tls_key_file go together: give both (PEM files) or neither")
	case w.TLSCertFile != "" && w.PlainHTTP:
		add("serve.webhook.plain_http", "is true while a certificate is configured: choose one")
	}
	if w.MaxBodyBytes < 0 || w.MaxBodyBytes > 64<<20 {
		add("serve.webhook.max_body_bytes", "%d is out of range: use 0 (1 MiB) up to 67108864", w.MaxBodyBytes)
	}
	if w.MaxConcurrent < 0 || w.MaxConcurrent > 1024 {
		add("serve.webhook.max_concurrent", "%d is out of range: use 0 (16) up to 1024", w.MaxConcurrent)
	}
	if w.QueueSize < 0 || w.QueueSize > 1_000_000 {
		add("serve.webhook.queue_size", "%d is out of range: use 0 (10000) up to 1000000", w.QueueSize)
	}
}

// Shard says which share of the tenants this replica harvests.
type Shard struct {
	Count int    `yaml:"count"` // replicas in all (1: this one does every tenant)
	Index string `yaml:"index"` // this replica's number (0-based), or "auto": the ordinal ending $HOSTNAME
}

// Defaults of Serve.
const (
	DefaultListen                = ":9464"
	DefaultMaxConcurrentRuns     = 8
	DefaultMaxRunsPerTenant      = 2
	DefaultJitter                = 30 * time.Second
	DefaultNotReadyAfterFailures = 3
	DefaultShutdownTimeout       = 45 * time.Second
)

func defaultServe() Serve {
	return Serve{
		Listen:                     DefaultListen,
		MaxConcurrentRuns:          DefaultMaxConcurrentRuns,
		MaxConcurrentRunsPerTenant: DefaultMaxRunsPerTenant,
		Jitter:                     Duration(DefaultJitter),
		NotReadyAfterFailures:      DefaultNotReadyAfterFailures,
		ShutdownTimeout:            Duration(DefaultShutdownTimeout),
		Shard:                      Shard{Count: 1, Index: "0"},
		Webhook:                    Webhook{Listen: DefaultWebhookListen},
	}
}

func (s Serve) validate(add func(key, format string, a ...any)) {
	if s.MaxConcurrentRuns < 1 || s.MaxConcurrentRuns > 1024 {
		add("serve.max_concurrent_runs", "%d is out of range: use 1 to 1024", s.MaxConcurrentRuns)
	}
	if s.MaxConcurrentRunsPerTenant < 1 || s.MaxConcurrentRunsPerTenant > s.MaxConcurrentRuns {
		add("serve.max_concurrent_runs_per_tenant", "%d is out of range: use 1 to serve.max_concurrent_runs (%d)", s.MaxConcurrentRunsPerTenant, s.MaxConcurrentRuns)
	}
	if s.Jitter < 0 {
		add("serve.jitter", "must not be negative; 0 fires every tenant at the same moment")
	}
	if s.NotReadyAfterFailures < 1 {
		add("serve.not_ready_after_failures", "must be at least 1")
	}
	if s.ShutdownTimeout <= 0 {
		add("serve.shutdown_timeout", "must be positive, e.g. 45s")
	}
	if s.Shard.Count < 1 || s.Shard.Count > 4096 {
		add("serve.shard.count", "%d is out of range: use the number of replicas (1 to 4096)", s.Shard.Count)
	}
	if s.Shard.Count > 1 && s.LeaseDir == "" {
		add("serve.lease_dir", "is needed with serve.shard.count > 1: a folder all replicas share, so a tenant is never harvested by two at once while replicas change")
	}
	s.Webhook.validate(add)
}

func (s Serve) String() string { return fmt.Sprintf("listen %s", s.Listen) }

// Detect runs the detection pack inside run and serve, over the records
// each run delivers.
type Detect struct {
	// Enabled turns it on.
	Enabled bool `yaml:"enabled"`
	// Lookups is the folder of allow-lists: <name>.csv with a SearchKey
	// column (the rules' not_in_lookup lists; an absent list is empty).
	Lookups string `yaml:"lookups"`
	// Emit writes the findings to every output, table
	// DefenderHarvesterFindings (default true); false only logs them.
	Emit *bool `yaml:"emit"`
	// Rules limits the pack to these rule ids (default: all).
	Rules []string `yaml:"rules"`
}

// Emits says whether findings go to the outputs.
func (d Detect) Emits() bool { return d.Emit == nil || *d.Emit }
