package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/config"
	"github.com/defenderharvester/defenderharvester/internal/harvester"
	"github.com/defenderharvester/defenderharvester/internal/sink"
	"github.com/defenderharvester/defenderharvester/internal/state"
)

func init() {
	register(command{name: "run", summary: "one incremental harvest of the selected sources", run: runRun})
}

func runRun(ctx context.Context, env *Env, args []string) int {
	fs := newFlagSet(env, "run", "run [--config FILE] [--sources LIST|all] [--lookback DURATION | --since TIME] [--redeliver [--output NAME]] [--out DIR] [--timeout DURATION] [--reset-state] [--progress auto|tty|log|off]")
	cfgPath := fs.String("config", "", "config file (YAML); default $"+config.EnvConfig+" or built-in defaults")
	sources := fs.String("sources", "all", "comma-separated source names, or all (see 'defenderharvester sources')")
	lookback := fs.String("lookback", "", "backfill: cover this far back, e.g. 6h or 7d (only time not harvested yet is read)")
	since := fs.String("since", "", "backfill: cover from this time on (RFC 3339, e.g. 2026-11-01T00:00:00Z; only time not harvested yet is read)")
	redeliver := fs.Bool("redeliver", false, "send again, on purpose, what was already harvested since --since/--lookback (no checkpoint moves)")
	redeliverTo := fs.String("output", "", "with --redeliver: only to these outputs (comma-separated: "+strings.Join(outputNames(), ", ")+"), e.g. a newly added one")
	timeout := fs.String("timeout", "", "stop the run after this long (default: run_timeout from the config, 1h)")
	resetState := fs.Bool("reset-state", false, "if the state file is damaged, move it aside and start a new one (a healthy one is kept)")
	out := fs.String("out", "", "directory for the files output (overrides outputs.files.dir)")
	outputs := fs.String("outputs", "", "comma-separated outputs ("+strings.Join(outputNames(), ", ")+"); default: those enabled in the config, else files")
	tenant := fs.String("tenant", "", "with a config that lists tenants: only these (comma-separated names; default all, one after another)")
	debug := fs.Bool("debug", false, "debug logging")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file (for performance reports)")
	progressFlags := addProgressFlags(fs)
	if code, ok := parseFlags(fs, env, args); !ok {
		return code
	}
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			fmt.Fprintln(env.Stderr, "defenderharvester run: --cpuprofile:", err)
			return exitUsage
		}
		defer stop()
	}
	cfg, err := loadConfig(env, *cfgPath)
	if err != nil {
		fmt.Fprintln(env.Stderr, "defenderharvester run:", err)
		return exitUsage
	}
	selected, err := harvester.Select(cfg, splitList(*sources))
	if err != nil {
		fmt.Fprintln(env.Stderr, "defenderharvester run:", err)
		return exitUsage
	}
	start, err := windowStart(env.Now(), *lookback, *since)
	if err != nil {
		fmt.Fprintln(env.Stderr, "defenderharvester run:", err)
		return exitUsage
	}
	if *redeliver && start.IsZero() {
		fmt.Fprintln(env.Stderr, "defenderharvester run: --redeliver needs --since or --lookback: say from when to send again")
		return exitUsage
	}
	if *redeliverTo != "" && !*redeliver {
		fmt.Fprintln(env.Stderr, "defenderharvester run: --output only applies to --redeliver (use --outputs to pick the outputs of a normal run)")
		return exitUsage
	}
	deadline, err := runTimeout(cfg, *timeout)
	if err != nil {
		fmt.Fprintln(env.Stderr, "defenderharvester run:", err)
		return exitUsage
	}
	var names []string
	for _, f := range selected {
		names = append(names, f.Name)
	}
	disp, log, err := progressFlags.setup(env, cfg, splitList(*outputs), names, func(w io.Writer) *slog.Logger {
		return newLoggerTo(w, cfg.LogLevel, cfg.LogFormat, *debug)
	})
	if err != nil {
		fmt.Fprintln(env.Stderr, "defenderharvester run:", err)
		return exitUsage
	}
	prompt := disp.Wrap(env.Stderr)
	req := harvester.Request{
		Config:      cfg,
		Sources:     splitList(*sources),
		Outputs:     splitList(*outputs),
		OutDir:      *out,
		Since:       start,
		Redeliver:   *redeliver,
		RedeliverTo: splitList(*redeliverTo),
		Timeout:     deadline,
		SpoolAfter:  spoolAfter(cfg),
		ResetState:  *resetState,
		Logger:      log,
		Now:         env.Now,
		Stdout:      env.Stdout,
		Getenv:      env.Getenv,
		Prompt:      func(m string) { fmt.Fprintln(prompt, m) },
		Observer:    observer(disp),
	}
	tenants, err := selectTenants(cfg, *tenant)
	if err != nil {
		fmt.Fprintln(env.Stderr, "defenderharvester run:", err)
		return exitUsage
	}
	disp.Start()
	defer disp.Stop()
	if len(tenants) == 1 && !cfg.MultiTenant() {
		return harvestAndReport(ctx, env, req, summaryWriter(env, req.Outputs))
	}
	// One tenant after another; one tenant's failure never stops the
	// next. The exit code is the worst of them.
	code := exitOK
	for _, tc := range tenants {
		w := summaryWriter(env, req.Outputs)
		fmt.Fprintf(w, "== tenant %s ==\n", tc.TenantName())
		treq := req
		treq.Config = tc
		treq.Logger = req.Logger.With("tenant", tc.TenantName())
		code = worseExit(code, harvestAndReport(ctx, env, treq, w))
	}
	return code
}

// selectTenants returns the tenants to run: all, or those named (a
// single-tenant config is its own one tenant).
func selectTenants(cfg *config.Config, names string) ([]*config.Config, error) {
	tcs, err := cfg.TenantConfigs()
	if err != nil {
		return nil, err
	}
	if names == "" {
		return tcs, nil
	}
	if !cfg.MultiTenant() {
		return nil, errors.New("--tenant: this config lists no tenants (add a tenants: list, see README 'Many tenants')")
	}
	byName := map[string]*config.Config{}
	var known []string
	for _, tc := range tcs {
		byName[tc.Name] = tc
		known = append(known, tc.Name)
	}
	var out []*config.Config
	for _, n := range splitList(names) {
		tc, ok := byName[n]
		if !ok {
			return nil, fmt.Errorf("--tenant: no tenant named %q; the config lists: %s", n, strings.Join(known, ", "))
		}
		out = append(out, tc)
	}
	return out, nil
}

// worseExit keeps the more serious of two exit codes: a failure (1) over
// a deadline (4) over dead letters (3) over success.
func worseExit(a, b int) int {
	rank := map[int]int{exitOK: 0, exitDeadLetters: 1, exitDeadline: 2, exitFailed: 3, exitUsage: 4}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

func startCPUProfile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// outputNames lists every registered output, for help texts.
func outputNames() []string {
	var names []string
	for _, f := range sink.All() {
		names = append(names, f.Name)
	}
	return names
}

// summaryWriter keeps stdout clean for JSON when the stdout output is used.
func summaryWriter(env *Env, outputs []string) io.Writer {
	for _, o := range outputs {
		if o == "stdout" {
			return env.Stderr
		}
	}
	return env.Stdout
}

// harvestAndReport runs one harvest, prints its report and picks the exit
// code: 1 when a source or an output failed, else 4 when the deadline
// stopped the run, else 3 when records were dead-lettered, else 0.
func harvestAndReport(ctx context.Context, env *Env, req harvester.Request, w io.Writer) int {
	rep, err := harvester.Run(ctx, req)
	if s, ok := req.Observer.(interface{ Stop() }); ok {
		s.Stop() // a progress display leaves its last state before the report
	}
	if err != nil {
		fmt.Fprintln(env.Stderr, "defenderharvester:", err)
		switch {
		case errors.Is(err, state.ErrDamaged):
			return exitUsage
		case rep.DeadlineHit:
			fmt.Fprintf(env.Stderr, "the run was stopped at its deadline (%s; run_timeout or --timeout) before it could start harvesting\n", rep.Timeout)
			return exitDeadline
		}
		return exitFailed
	}
	printReport(w, rep)
	if len(rep.Findings) > 0 {
		by := map[string]int{}
		var ids []string
		for _, f := range rep.Findings {
			if by[f.RuleID] == 0 {
				ids = append(ids, f.RuleID+" "+f.Title)
			}
			by[f.RuleID]++
		}
		fmt.Fprintf(w, "detections: %d findings in this run's records (also in DefenderHarvesterFindings unless detect.emit is false):\n", len(rep.Findings))
		for _, id := range ids {
			fmt.Fprintf(w, "  %-4d %s\n", by[strings.SplitN(id, " ", 2)[0]], id)
		}
	}
	code := exitOK
	if rep.DeadlineHit {
		fmt.Fprintf(env.Stderr, "the run was stopped at its deadline (%s; run_timeout or --timeout): what finished is kept, the rest is read again next run\n", rep.Timeout)
		code = exitDeadline
	}
	if n, where := rep.DeadLettered(); n > 0 {
		fmt.Fprintf(env.Stderr, "%d record(s) were refused by an output for reasons of their own and are NOT delivered; they are kept in dead-letter files (%s): fix and resend them, or drop them knowingly\n", n, strings.Join(where, "; "))
		if code == exitOK {
			code = exitDeadLetters
		}
	}
	// Sources the deadline stopped are covered by exit 4; any other
	// failure is exit 1.
	if n := failedOtherwise(rep); n > 0 {
		fmt.Fprintf(env.Stderr, "%d of %d sources failed; their checkpoints did not move past what failed (see the errors above)\n", n, len(rep.Results))
		code = exitFailed
	}
	if n := rep.OutputsFailing(); n > 0 {
		fmt.Fprintf(env.Stderr, "%d output(s) did not take everything; their records are kept in the spool in the state file and sent as soon as they answer (this run or the next)\n", n)
		code = exitFailed
	}
	return code
}

// failedOtherwise counts the sources that failed for another reason than
// the run's deadline.
func failedOtherwise(rep harvester.Report) int {
	n := 0
	for _, r := range rep.Results {
		if r.Err != nil && !(rep.DeadlineHit && errors.Is(r.Err, context.DeadlineExceeded)) {
			n++
		}
	}
	return n
}

// runTimeout is --timeout, else the config's run_timeout.
func runTimeout(cfg *config.Config, flag string) (time.Duration, error) {
	if flag == "" {
		return configRunTimeout(cfg), nil
	}
	d, err := config.ParseDuration(flag)
	if err != nil {
		return 0, fmt.Errorf("--timeout: %w", err)
	}
	if d <= 0 {
		return 0, errors.New("--timeout must be more than 0")
	}
	return d, nil
}

func printReport(w io.Writer, rep harvester.Report) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "SOURCE\tTABLE\tKIND\tWINDOW\tRECORDS\tNEW\tDUPLICATES\tDURATION\tSTATUS\n")
	for _, r := range rep.Results {
		win := "-"
		if !r.Window.From.IsZero() {
			win = r.Window.From.UTC().Format("01-02 15:04") + " → " + r.Window.To.UTC().Format("01-02 15:04")
		}
		status := "ok"
		if r.Err != nil {
			status = "FAILED: " + oneLine(r.Err.Error())
		}
		if r.PartsTotal > 0 {
			status = fmt.Sprintf("%d/%d parts ok; %s", r.PartsTotal-len(r.Parts), r.PartsTotal, status)
		}
		newCol := fmt.Sprint(r.New)
		if len(r.Changes) > 0 {
			newCol = changesString(r.Changes)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%d\t%s\t%s\n", r.Source, r.Table, r.Kind, win, r.Fetched, newCol, r.Duplicates, r.Duration.Round(time.Millisecond), status)
	}
	tw.Flush()
	for _, o := range rep.Outputs {
		if d := o.Delivery; d.Requests > 0 {
			fmt.Fprintf(w, "output %s: %d records in %d requests (average %s, largest %s before compression), %d retries, %d dead-lettered\n",
				o.Output, d.Records, d.Requests, byteSize(d.BytesSent/d.Requests), byteSize(d.MaxRequestBytes), d.Retries, d.DeadLettered)
		}
		if o.Err == nil && o.Spooled == 0 && o.Drained == 0 && o.Backlog == 0 {
			continue
		}
		line := fmt.Sprintf("output %s: spooled %d, delivered from spool %d, still spooled %d", o.Output, o.Spooled, o.Drained, o.Backlog)
		switch {
		case o.Err != nil:
			line += " — FAILED: " + oneLine(o.Err.Error())
		case o.Outage:
			line += " — it failed during the run and recovered"
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintf(w, "tenant %s, %d sources, %s\n", rep.TenantID, len(rep.Results), rep.Duration.Round(time.Millisecond))
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func changesString(m map[string]int) string {
	var parts []string
	for _, k := range []string{"Initial", "Added", "Modified", "Removed"} {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", strings.ToLower(k), m[k]))
		}
	}
	if len(parts) == 0 {
		return "0"
	}
	return strings.Join(parts, ", ")
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// loadConfig reads --config, else $DH_CONFIG, else the defaults.
func loadConfig(env *Env, path string) (*config.Config, error) {
	if path == "" {
		path = env.Getenv(config.EnvConfig)
	}
	cfg, err := config.Load(path, env.Getenv)
	if err != nil {
		return nil, err
	}
	if err := harvester.Check(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// windowStart turns --lookback / --since into an explicit window start.
func windowStart(now time.Time, lookback, since string) (time.Time, error) {
	switch {
	case lookback != "" && since != "":
		return time.Time{}, fmt.Errorf("--lookback and --since cannot be used together: pick one")
	case lookback != "":
		d, err := config.ParseDuration(lookback)
		if err != nil {
			return time.Time{}, fmt.Errorf("--lookback: %w", err)
		}
		if d == 0 {
			return time.Time{}, fmt.Errorf("--lookback must be more than 0")
		}
		return now.Add(-d), nil
	case since != "":
		t, err := time.Parse(time.RFC3339, since)
		if err != nil {
			return time.Time{}, fmt.Errorf("--since %q: write an RFC 3339 time such as 2026-11-01T00:00:00Z", since)
		}
		if !t.Before(now) {
			return time.Time{}, fmt.Errorf("--since %s is not in the past", since)
		}
		return t, nil
	}
	return time.Time{}, nil
}
