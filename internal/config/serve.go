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
}

func (s Serve) String() string { return fmt.Sprintf("listen %s", s.Listen) }
