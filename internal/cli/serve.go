package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/defenderharvester/defenderharvester/internal/config"
	"github.com/defenderharvester/defenderharvester/internal/service"
	"github.com/defenderharvester/defenderharvester/internal/shard"
)

// Environment variables of serve's sharding (set by the Kubernetes
// manifests; flags win).
const (
	envShardCount = "DH_SHARD_COUNT"
	envShardIndex = "DH_SHARD_INDEX"
	envLeaseDir   = "DH_LEASE_DIR"
)

func init() {
	register(command{name: "serve", summary: "run as a service: every source of every tenant on its schedule, with /metrics, /healthz and /readyz (and the audit log webhook when configured)", run: runServe})
	register(command{name: "webhook", summary: "run only the audit log: the Management Activity API webhook listener of every tenant that has one, with the polls that close its gaps", run: runWebhook})
}

func runServe(ctx context.Context, env *Env, args []string) int {
	return serveCommand(ctx, env, "serve", args)
}

func runWebhook(ctx context.Context, env *Env, args []string) int {
	return serveCommand(ctx, env, "webhook", args)
}

// serveCommand is serve, or — as the webhook command — serve limited to
// the auditlog source of the tenants with a webhook address.
func serveCommand(ctx context.Context, env *Env, name string, args []string) int {
	hookOnly := name == "webhook"
	fs := newFlagSet(env, name, name+" [--config FILE] [--listen ADDR] [--webhook-listen ADDR] [--shard-count N --shard-index I|auto --lease-dir DIR]")
	cfgPath := fs.String("config", "", "config file (YAML); default $"+config.EnvConfig)
	hookListen := fs.String("webhook-listen", "", "address of the audit log webhook listener (default serve.webhook.listen, :9443)")
	listen := fs.String("listen", "", "address of /metrics, /healthz and /readyz (default serve.listen, :9464; - for none)")
	shardCount := fs.String("shard-count", "", "replicas sharing the tenants (default $"+envShardCount+", else serve.shard.count, 1)")
	shardIndex := fs.String("shard-index", "", "this replica's number from 0, or auto: the ordinal ending the host name (default $"+envShardIndex+", else serve.shard.index)")
	leaseDir := fs.String("lease-dir", "", "folder shared by the replicas for the tenants' leases (default $"+envLeaseDir+", else serve.lease_dir)")
	debug := fs.Bool("debug", false, "debug logging")
	if code, ok := parseFlags(fs, env, args); !ok {
		return code
	}
	cfg, err := loadConfig(env, *cfgPath)
	if err != nil {
		fmt.Fprintf(env.Stderr, "defenderharvester %s: %v\n", name, err)
		return exitUsage
	}
	log := newLoggerTo(env.Stderr, cfg.LogLevel, cfg.LogFormat, *debug)
	count, index, err := shardOf(env, cfg.Serve.Shard.Count, cfg.Serve.Shard.Index, *shardCount, *shardIndex)
	if err != nil {
		fmt.Fprintf(env.Stderr, "defenderharvester %s: %v\n", name, err)
		return exitUsage
	}
	opts := service.Options{
		Config: cfg, Logger: log, Now: env.Now, Getenv: env.Getenv, Stdout: env.Stdout,
		Listen: *listen, ShardCount: count, ShardIndex: index, LeaseDir: firstNonEmpty(*leaseDir, env.Getenv(envLeaseDir)),
		WebhookListen: *hookListen,
	}
	if hookOnly {
		opts.Sources, opts.RequireWebhook = []string{"auditlog"}, true
	}
	svc, err := service.New(opts)
	if err != nil {
		fmt.Fprintf(env.Stderr, "defenderharvester %s: %v\n", name, err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := svc.Start(ctx); err != nil {
		fmt.Fprintf(env.Stderr, "defenderharvester %s: %v\n", name, err)
		return exitFailed
	}
	log.Info("serving", "addr", svc.Addr(), "webhook", svc.WebhookAddr(), "tenants", len(svc.Tenants()))
	<-ctx.Done()
	stop()
	signal.Reset(os.Interrupt, syscall.SIGTERM) // a second signal ends the process at once
	wait := cfg.Serve.ShutdownTimeout.D()
	log.Info("stopping: runs in flight are cancelled (what they delivered is committed, the rest is read again next time)", "wait", wait)
	sctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := svc.Shutdown(sctx); err != nil {
		log.Error("shutdown did not finish cleanly; nothing is lost, unfinished work is read again at the next start", "err", err)
		return exitFailed
	}
	log.Info("stopped")
	return exitOK
}

// shardOf resolves the shard count and index: flags, then environment,
// then config.
func shardOf(env *Env, cfgCount int, cfgIndex, flagCount, flagIndex string) (count, index int, err error) {
	count = cfgCount
	if v := firstNonEmpty(flagCount, env.Getenv(envShardCount)); v != "" {
		count, err = strconv.Atoi(v)
		if err != nil || count < 1 {
			return 0, 0, fmt.Errorf("--shard-count / %s: %q is not a positive whole number (the number of replicas)", envShardCount, v)
		}
	}
	idx := firstNonEmpty(flagIndex, env.Getenv(envShardIndex), cfgIndex, "0")
	index, err = shard.ParseIndex(idx)
	if err != nil {
		return 0, 0, fmt.Errorf("--shard-index / %s: %w", envShardIndex, err)
	}
	if index >= count {
		return 0, 0, fmt.Errorf("shard index %d is not below the shard count %d: with %d replicas, number them 0 to %d", index, count, count, count-1)
	}
	return count, index, nil
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
