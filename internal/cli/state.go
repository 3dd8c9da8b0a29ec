package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/config"
	"github.com/defenderharvester/defenderharvester/internal/harvester"
	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/state"
)

func init() {
	register(command{name: "state", summary: "show or repair the state file: show, reset SOURCE, spool purge|retry OUTPUT", run: runState})
}

// toolLockTimeout is how long the state tools wait for the state file's
// lock before saying that a running harvester holds it.
var toolLockTimeout = 500 * time.Millisecond

// serviceStateTimeout bounds the request to a running service's /state.
const serviceStateTimeout = 2 * time.Second

const stateUsage = `Usage:
  defenderharvester state show [--config FILE] [--tenant NAME] [--json]
  defenderharvester state reset SOURCE [--config FILE] [--tenant NAME] [--yes]
  defenderharvester state spool purge OUTPUT [--config FILE] [--tenant NAME] [--yes]
  defenderharvester state spool retry OUTPUT [--config FILE] [--tenant NAME]

The state tools read and change the state file(s) of the config's tenants
without a running service. While a service (serve) or a run holds a state
file they refuse to touch it; state show then asks the service's /state
endpoint (serve.listen, on this machine) instead.

  show          per tenant: every source's cursor and lag, covered ranges,
                backfill goal, last run, failures in a row and last error,
                parts (timeline devices); every output's spool and
                dead-letter files
  reset SOURCE  forget a source's state (and its parts'): the next run
                starts again from initial_lookback; a snapshot source
                reports every item again (ChangeType Initial). Without
                --yes it only says what it would remove
  spool purge   drop what is spooled for OUTPUT (never delivered to it)
  spool retry   build OUTPUT, send it its spool now, report sent and left

state show --json prints one document, the one a service serves at /state:
  {"tenants": [{
     "tenant", "tenant_id", "state_file", "generated_at", "error",
     "sources": [{"source", "tenant_id", "kind" (event|snapshot|unknown),
        "table", "enabled", "cursor", "lag_seconds",
        "covered": {"ranges", "earliest", "latest"}, "goal",
        "last_run", "last_success", "failures", "last_error", "retry_at",
        "seen_ids", "snapshot_at", "snapshot_items",
        "parts": {"count", "failing", "no_cursor", "least_advanced",
           "least_advanced_cursor",
           "failing_parts": [{"part", "cursor", "failures", "last_error", "retry_at"}]}}],
     "outputs": [{"output", "type", "configured",
        "spool": {"records", "batches", "bytes"},
        "dead_letters": {"dir", "lines", "error",
           "files": [{"path", "lines", "bytes", "first_reason", "retrying"}]}}]}]}
  Times are RFC 3339 UTC; a field left out means none (no cursor, never ran).
`

func runState(ctx context.Context, env *Env, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(env.Stderr, stateUsage)
		return exitUsage
	}
	switch args[0] {
	case "show":
		return runStateShow(ctx, env, args[1:])
	case "reset":
		return runStateReset(ctx, env, args[1:])
	case "spool":
		return runStateSpool(ctx, env, args[1:])
	case "-h", "-help", "--help", "help":
		fmt.Fprint(env.Stdout, stateUsage)
		return exitOK
	}
	fmt.Fprintf(env.Stderr, "defenderharvester state: unknown subcommand %q\n\n%s", args[0], stateUsage)
	return exitUsage
}

// parseArgs parses flags given before, between or after the positional
// arguments; want is how many positional arguments there must be.
func parseArgs(fs *flag.FlagSet, env *Env, args []string, want int, what string) ([]string, int, bool) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				return nil, exitOK, false
			}
			return nil, exitUsage, false
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != want {
		if len(pos) < want {
			fmt.Fprintf(env.Stderr, "defenderharvester %s: name the %s (see -h)\n", fs.Name(), what)
		} else {
			fmt.Fprintf(env.Stderr, "defenderharvester %s: unexpected argument %q (see -h)\n", fs.Name(), pos[want])
		}
		return nil, exitUsage, false
	}
	return pos, 0, true
}

// toolTenants loads the config and returns its tenants, or only the one
// named by --tenant. one: the command changes state, so a multi-tenant
// config needs --tenant.
func toolTenants(env *Env, cmd, cfgPath, tenant string, one bool) (*config.Config, []*config.Config, bool) {
	cfg, err := loadConfig(env, cfgPath)
	if err != nil {
		fmt.Fprintf(env.Stderr, "defenderharvester %s: %v\n", cmd, err)
		return nil, nil, false
	}
	all, err := cfg.TenantConfigs()
	if err != nil {
		fmt.Fprintf(env.Stderr, "defenderharvester %s: %v\n", cmd, err)
		return nil, nil, false
	}
	names := make([]string, len(all))
	for i, tc := range all {
		names[i] = tc.TenantName()
	}
	if tenant == "" {
		if one && len(all) > 1 {
			fmt.Fprintf(env.Stderr, "defenderharvester %s: the config has %d tenants; name one with --tenant (tenants: %s)\n", cmd, len(all), strings.Join(names, ", "))
			return nil, nil, false
		}
		return cfg, all, true
	}
	for _, tc := range all {
		if tc.TenantName() == tenant {
			return cfg, []*config.Config{tc}, true
		}
	}
	fmt.Fprintf(env.Stderr, "defenderharvester %s: --tenant %s: no such tenant in the config (tenants: %s)\n", cmd, tenant, strings.Join(names, ", "))
	return nil, nil, false
}

// openToolStore opens a tenant's state file for a tool; a missing file is
// no error (nil store: the tenant never ran). A file held by a running
// harvester is refused with what to do.
func openToolStore(env *Env, top, tc *config.Config) (*state.Store, error) {
	if _, err := os.Stat(tc.StateFile); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	store, err := state.Open(tc.StateFile, state.Options{LockTimeout: toolLockTimeout, Logger: newLogger(env, "warn", false)})
	if errors.Is(err, state.ErrInUse) {
		return nil, &inUseError{tenant: tc.TenantName(), path: tc.StateFile, url: serviceStateURL(top.Serve.Listen)}
	}
	return store, err
}

type inUseError struct{ tenant, path, url string }

func (e *inUseError) Error() string {
	return fmt.Sprintf("the state file of tenant %s (%s) is in use by a running defenderharvester (serve or run); stop it first, or for `state show` read the service's /state endpoint at %s",
		e.tenant, e.path, e.url)
}

// serviceStateURL is where a service started with this config serves
// /state; loopback reports whether the tools may ask it (only a service
// on this machine's loopback is asked).
func serviceStateURL(listen string) string {
	u, _ := serviceStateTarget(listen)
	return u
}

func serviceStateTarget(listen string) (url string, loopback bool) {
	if listen == "" {
		listen = config.DefaultListen
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "http://" + listen + "/state", false
	}
	switch {
	case host == "" || host == "0.0.0.0" || host == "localhost":
		host, loopback = "127.0.0.1", true
	case host == "::":
		host, loopback = "::1", true
	default:
		ip := net.ParseIP(host)
		loopback = ip != nil && ip.IsLoopback()
	}
	return "http://" + net.JoinHostPort(host, port) + "/state", loopback
}

// fetchServiceState asks a running service for its /state document.
func fetchServiceState(ctx context.Context, listen string) (harvester.StateDoc, string, error) {
	var doc harvester.StateDoc
	url, loopback := serviceStateTarget(listen)
	if !loopback {
		return doc, url, fmt.Errorf("serve.listen %s is not a loopback address; the tools only ask a service on this machine's loopback — read %s yourself", listen, url)
	}
	ctx, cancel := context.WithTimeout(ctx, serviceStateTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return doc, url, err
	}
	client := &http.Client{
		Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return doc, url, fmt.Errorf("no answer from %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return doc, url, fmt.Errorf("%s answered %s", url, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&doc); err != nil {
		return doc, url, fmt.Errorf("%s did not send a state document: %w", url, err)
	}
	return doc, url, nil
}

func runStateShow(ctx context.Context, env *Env, args []string) int {
	fs := newFlagSet(env, "state show", "state show [--config FILE] [--tenant NAME] [--json]")
	cfgPath := fs.String("config", "", "config file (YAML); default $"+config.EnvConfig)
	tenant := fs.String("tenant", "", "only this tenant (its name in the config)")
	asJSON := fs.Bool("json", false, "print one JSON document (see 'defenderharvester state -h' for its fields)")
	if code, ok := parseFlags(fs, env, args); !ok {
		return code
	}
	top, tenants, ok := toolTenants(env, "state show", *cfgPath, *tenant, false)
	if !ok {
		return exitUsage
	}
	now := env.Now()
	doc := harvester.StateDoc{Tenants: []harvester.TenantState{}}
	code := exitOK
	var inUse []*inUseError
	inUseAt := map[string]int{}
	for _, tc := range tenants {
		store, err := openToolStore(env, top, tc)
		var iu *inUseError
		if errors.As(err, &iu) {
			inUse = append(inUse, iu)
			inUseAt[tc.TenantName()] = len(doc.Tenants)
			doc.Tenants = append(doc.Tenants, harvester.TenantState{Tenant: tc.TenantName(), TenantID: tc.TenantID, StateFile: tc.StateFile,
				GeneratedAt: now.UTC(), Sources: []harvester.SourceState{}, Outputs: []harvester.OutputState{}, Error: err.Error()})
			continue
		}
		if err != nil {
			fmt.Fprintf(env.Stderr, "defenderharvester state show: tenant %s: %v\n", tc.TenantName(), err)
			code = exitFailed
			continue
		}
		ts, err := harvester.StateReport(tc, store, now)
		if store != nil {
			store.Close()
		}
		if err != nil {
			fmt.Fprintf(env.Stderr, "defenderharvester state show: tenant %s: %v\n", tc.TenantName(), err)
			code = exitFailed
			continue
		}
		doc.Tenants = append(doc.Tenants, ts)
	}
	if len(inUse) > 0 {
		svc, url, err := fetchServiceState(ctx, top.Serve.Listen)
		if err != nil {
			for _, iu := range inUse {
				fmt.Fprintf(env.Stderr, "defenderharvester state show: %v\n", iu)
			}
			fmt.Fprintf(env.Stderr, "asking the running service failed: %v\n", err)
			code = exitFailed
		} else {
			fmt.Fprintf(env.Stderr, "state of tenant(s) %s read from the running service at %s\n", tenantNames(inUse), url)
			for _, ts := range svc.Tenants {
				if i, ok := inUseAt[ts.Tenant]; ok {
					doc.Tenants[i] = ts
					delete(inUseAt, ts.Tenant)
				}
			}
			for name := range inUseAt {
				fmt.Fprintf(env.Stderr, "defenderharvester state show: the service at %s did not report tenant %s\n", url, name)
				code = exitFailed
			}
		}
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(doc); err != nil {
			fmt.Fprintln(env.Stderr, "defenderharvester state show:", err)
			return exitFailed
		}
		return code
	}
	for i, ts := range doc.Tenants {
		if i > 0 {
			fmt.Fprintln(env.Stdout)
		}
		printTenantState(env.Stdout, ts, now)
	}
	return code
}

func tenantNames(list []*inUseError) string {
	var names []string
	for _, iu := range list {
		names = append(names, iu.tenant)
	}
	return strings.Join(names, ", ")
}

func printTenantState(w io.Writer, ts harvester.TenantState, now time.Time) {
	head := "tenant " + ts.Tenant
	if ts.TenantID != "" {
		head += " (" + ts.TenantID + ")"
	}
	fmt.Fprintf(w, "%s — state file %s\n", head, ts.StateFile)
	if ts.Error != "" {
		fmt.Fprintf(w, "  cannot be read: %s\n", oneLine(ts.Error))
		return
	}
	ids := map[string]bool{}
	for _, s := range ts.Sources {
		ids[s.TenantID] = true
	}
	multi := len(ids) > 1
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	cols := "SOURCE\tKIND\tCURSOR (UTC)\tLAG\tCOVERED\tGOAL\tLAST RUN\tFAILURES\tLAST ERROR\tRETRY AFTER\tPARTS"
	if multi {
		cols = "TENANT ID\t" + cols
	}
	fmt.Fprintln(tw, cols)
	for _, s := range ts.Sources {
		name := s.Source
		if !s.Enabled {
			name += " (off)"
		}
		cursor := fmtTime(s.Cursor)
		if s.Kind == "snapshot" {
			cursor = fmtTime(s.SnapshotAt)
			if s.SnapshotAt != nil {
				cursor += fmt.Sprintf(" (%d items)", s.SnapshotItems)
			}
		}
		lagCol := "-"
		if s.LagSeconds != nil {
			lagCol = fmtLag(time.Duration(*s.LagSeconds) * time.Second)
		}
		covered := "-"
		if c := s.Covered; c.Ranges > 0 {
			covered = fmt.Sprintf("%d: %s → %s", c.Ranges, fmtTime(c.Earliest), fmtTime(c.Latest))
		}
		lastRun := fmtTime(s.LastRun)
		if s.LastRun != nil && s.Failures == 0 {
			lastRun += " ok"
		} else if s.LastRun != nil {
			lastRun += " failed"
		}
		lastErr := "-"
		if s.LastError != "" {
			lastErr = truncate(oneLine(s.LastError), 60)
		}
		parts := "-"
		if p := s.Parts; p != nil {
			parts = fmt.Sprintf("%d", p.Count)
			if p.Failing > 0 {
				parts += fmt.Sprintf(", %d failing", p.Failing)
			}
			if p.NoCursor > 0 {
				parts += fmt.Sprintf(", %d without cursor", p.NoCursor)
			}
			if p.LeastAdvanced != "" {
				parts += fmt.Sprintf(", least advanced %s at %s", p.LeastAdvanced, fmtTime(p.LeastAdvancedCursor))
			}
		}
		row := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s", name, s.Kind, cursor, lagCol, covered, fmtTime(s.Goal), lastRun,
			s.Failures, lastErr, fmtTime(s.RetryAt), parts)
		if multi {
			row = s.TenantID + "\t" + row
		}
		fmt.Fprintln(tw, row)
	}
	tw.Flush()
	for _, s := range ts.Sources {
		if s.Parts == nil || len(s.Parts.FailingParts) == 0 {
			continue
		}
		fmt.Fprintf(w, "failing parts of %s:\n", s.Source)
		for _, p := range s.Parts.FailingParts {
			fmt.Fprintf(w, "  %s: %d failure(s) in a row, retry after %s: %s\n", p.Part, p.Failures, fmtTime(p.RetryAt), truncate(oneLine(p.LastError), 120))
		}
		if s.Parts.Failing > len(s.Parts.FailingParts) {
			fmt.Fprintf(w, "  and %d more\n", s.Parts.Failing-len(s.Parts.FailingParts))
		}
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "OUTPUT\tTYPE\tSPOOL\tDEAD LETTERS")
	for _, o := range ts.Outputs {
		name, typ := o.Output, o.Type
		if !o.Configured {
			name, typ = o.Output+" (not configured)", "-"
		}
		spool := "empty"
		if o.Spool.Records > 0 || o.Spool.Batches > 0 {
			spool = fmt.Sprintf("%d records in %d batches, %s", o.Spool.Records, o.Spool.Batches, byteSize(o.Spool.Bytes))
		}
		dl := "none"
		switch {
		case o.DeadLetters.Error != "":
			dl = "unreadable: " + truncate(oneLine(o.DeadLetters.Error), 80)
		case len(o.DeadLetters.Files) > 0:
			dl = fmt.Sprintf("%d lines in %d file(s) in %s", o.DeadLetters.Lines, len(o.DeadLetters.Files), o.DeadLetters.Dir)
			if n := retryingFiles(o.DeadLetters.Files); n > 0 {
				dl += fmt.Sprintf(" (%d part-way through a retry)", n)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", name, typ, spool, dl)
	}
	tw.Flush()
}

func retryingFiles(fs []harvester.DeadLetterFile) int {
	n := 0
	for _, f := range fs {
		if f.Retrying {
			n++
		}
	}
	return n
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

func fmtLag(d time.Duration) string {
	switch {
	case d < 0:
		return "-" + fmtLag(-d)
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return shortDuration(d.Round(time.Minute))
	}
	return fmt.Sprintf("%.1fd", d.Hours()/24)
}

// shortDuration drops zero minutes and seconds: 24h, 1h30m.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func runStateReset(_ context.Context, env *Env, args []string) int {
	fs := newFlagSet(env, "state reset", "state reset SOURCE [--config FILE] [--tenant NAME] [--yes]")
	cfgPath := fs.String("config", "", "config file (YAML); default $"+config.EnvConfig)
	tenant := fs.String("tenant", "", "the tenant (its name in the config); needed when the config lists tenants")
	yes := fs.Bool("yes", false, "remove it; without --yes only say what would be removed")
	pos, code, ok := parseArgs(fs, env, args, 1, "source to reset, e.g. state reset actioncenter")
	if !ok {
		return code
	}
	name := pos[0]
	top, tenants, ok := toolTenants(env, "state reset", *cfgPath, *tenant, true)
	if !ok {
		return exitUsage
	}
	tc := tenants[0]
	store, err := openToolStore(env, top, tc)
	if err != nil {
		fmt.Fprintln(env.Stderr, "defenderharvester state reset:", err)
		return exitFailed
	}
	var entries []state.SourceStatus
	if store != nil {
		defer store.Close()
		if entries, err = store.Sources(); err != nil {
			fmt.Fprintln(env.Stderr, "defenderharvester state reset:", err)
			return exitFailed
		}
	}
	byTenant := map[string][]string{}
	var tenantIDs []string
	for _, e := range entries {
		if state.OfSource(e.Source, name) {
			if _, seen := byTenant[e.Tenant]; !seen {
				tenantIDs = append(tenantIDs, e.Tenant)
			}
			byTenant[e.Tenant] = append(byTenant[e.Tenant], e.Source)
		}
	}
	f, registered := source.Lookup(name)
	if !registered && len(tenantIDs) == 0 {
		fmt.Fprintf(env.Stderr, "defenderharvester state reset: %q is not a source; sources: %s\n", name, strings.Join(harvester.Names(), ", "))
		return exitUsage
	}
	if len(tenantIDs) == 0 {
		fmt.Fprintf(env.Stdout, "tenant %s: nothing is stored for source %s; nothing to reset\n", tc.TenantName(), name)
		return exitOK
	}
	consequence := fmt.Sprintf("the next run of %s starts again from initial_lookback (%s)", name, shortDuration(time.Duration(tc.InitialLookback)))
	if registered && f.Kind == source.Snapshot {
		consequence = fmt.Sprintf("the next run of %s takes a new initial snapshot and sends every item again (ChangeType Initial)", name)
	}
	if !*yes {
		fmt.Fprintf(env.Stdout, "tenant %s: would remove the state of %s:\n", tc.TenantName(), name)
		for _, id := range tenantIDs {
			printKeys(env.Stdout, id, byTenant[id])
		}
		fmt.Fprintf(env.Stdout, "then %s.\nNothing was changed; run again with --yes to remove it.\n", consequence)
		return exitOK
	}
	for _, id := range tenantIDs {
		removed, err := store.ResetSource(id, name)
		if err != nil {
			fmt.Fprintln(env.Stderr, "defenderharvester state reset:", err)
			return exitFailed
		}
		fmt.Fprintf(env.Stdout, "tenant %s: removed the state of %s:\n", tc.TenantName(), name)
		printKeys(env.Stdout, id, removed)
	}
	fmt.Fprintf(env.Stdout, "%s.\n", strings.ToUpper(consequence[:1])+consequence[1:])
	return exitOK
}

// printKeys lists state keys of one tenant id (a long list of parts is
// shortened).
func printKeys(w io.Writer, tenantID string, keys []string) {
	const show = 10
	sort.Strings(keys)
	for i, k := range keys {
		if i == show {
			fmt.Fprintf(w, "  … and %d more part(s)\n", len(keys)-show)
			break
		}
		fmt.Fprintf(w, "  %s (tenant id %s)\n", k, tenantID)
	}
}

func runStateSpool(ctx context.Context, env *Env, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(env.Stderr, stateUsage)
		return exitUsage
	}
	switch args[0] {
	case "purge":
		return runSpoolPurge(env, args[1:])
	case "retry":
		return runSpoolRetry(ctx, env, args[1:])
	}
	fmt.Fprintf(env.Stderr, "defenderharvester state spool: unknown subcommand %q (purge or retry)\n\n%s", args[0], stateUsage)
	return exitUsage
}

// spoolOutputs are the outputs a spool command may name: the configured
// ones and any with a spool in the state file.
func spoolOutputs(tc *config.Config, store *state.Store) ([]string, map[string]state.SpoolInfo, error) {
	names, err := harvester.OutputNames(tc)
	if err != nil {
		return nil, nil, err
	}
	spools := map[string]state.SpoolInfo{}
	if store != nil {
		infos, err := store.Spools()
		if err != nil {
			return nil, nil, err
		}
		for _, in := range infos {
			spools[in.Output] = in
			if !slices.Contains(names, in.Output) {
				names = append(names, in.Output)
			}
		}
	}
	return names, spools, nil
}

func runSpoolPurge(env *Env, args []string) int {
	fs := newFlagSet(env, "state spool purge", "state spool purge OUTPUT [--config FILE] [--tenant NAME] [--yes]")
	cfgPath := fs.String("config", "", "config file (YAML); default $"+config.EnvConfig)
	tenant := fs.String("tenant", "", "the tenant (its name in the config); needed when the config lists tenants")
	yes := fs.Bool("yes", false, "drop the records; without --yes only say what would be dropped")
	pos, code, ok := parseArgs(fs, env, args, 1, "output whose spool to purge")
	if !ok {
		return code
	}
	output := pos[0]
	top, tenants, ok := toolTenants(env, "state spool purge", *cfgPath, *tenant, true)
	if !ok {
		return exitUsage
	}
	tc := tenants[0]
	store, err := openToolStore(env, top, tc)
	if err != nil {
		fmt.Fprintln(env.Stderr, "defenderharvester state spool purge:", err)
		return exitFailed
	}
	if store != nil {
		defer store.Close()
	}
	names, spools, err := spoolOutputs(tc, store)
	if err != nil {
		fmt.Fprintln(env.Stderr, "defenderharvester state spool purge:", err)
		return exitFailed
	}
	if !slices.Contains(names, output) {
		fmt.Fprintf(env.Stderr, "defenderharvester state spool purge: output %q is not configured for tenant %s and has no spool; outputs: %s\n", output, tc.TenantName(), strings.Join(names, ", "))
		return exitUsage
	}
	in, has := spools[output]
	if !has {
		fmt.Fprintf(env.Stdout, "tenant %s: nothing is spooled for output %s\n", tc.TenantName(), output)
		return exitOK
	}
	if !*yes {
		fmt.Fprintf(env.Stdout, "tenant %s: would drop %d record(s) in %d batch(es) (%s) spooled for output %s; they would never reach it.\nNothing was changed; run again with --yes to drop them (or 'state spool retry %s' to send them).\n",
			tc.TenantName(), in.Records, in.Batches, byteSize(in.Bytes), output, output)
		return exitOK
	}
	recs, batches, err := store.SpoolPurge(output)
	if err != nil {
		fmt.Fprintln(env.Stderr, "defenderharvester state spool purge:", err)
		return exitFailed
	}
	fmt.Fprintf(env.Stdout, "tenant %s: dropped %d record(s) in %d batch(es) spooled for output %s\n", tc.TenantName(), recs, batches, output)
	return exitOK
}

func runSpoolRetry(ctx context.Context, env *Env, args []string) int {
	fs := newFlagSet(env, "state spool retry", "state spool retry OUTPUT [--config FILE] [--tenant NAME]")
	cfgPath := fs.String("config", "", "config file (YAML); default $"+config.EnvConfig)
	tenant := fs.String("tenant", "", "only this tenant (its name in the config); default every tenant")
	pos, code, ok := parseArgs(fs, env, args, 1, "output whose spool to send")
	if !ok {
		return code
	}
	output := pos[0]
	top, tenants, ok := toolTenants(env, "state spool retry", *cfgPath, *tenant, false)
	if !ok {
		return exitUsage
	}
	// An output no selected tenant has is a usage error before anything
	// is opened; a tenant without it is skipped (tenants may have their
	// own outputs).
	var with []*config.Config
	var known []string
	for _, tc := range tenants {
		names, _ := harvester.OutputNames(tc)
		if slices.Contains(names, output) {
			with = append(with, tc)
		}
		for _, n := range names {
			if !slices.Contains(known, n) {
				known = append(known, n)
			}
		}
	}
	if len(with) == 0 {
		where := "tenant " + tenants[0].TenantName()
		if len(tenants) > 1 {
			where = "any tenant"
		}
		fmt.Fprintf(env.Stderr, "defenderharvester state spool retry: output %q is not configured for %s; configured outputs: %s (an output no longer configured can only be purged)\n", output, where, strings.Join(known, ", "))
		return exitUsage
	}
	code = exitOK
	for _, tc := range with {
		store, err := openToolStore(env, top, tc)
		if err != nil {
			fmt.Fprintln(env.Stderr, "defenderharvester state spool retry:", err)
			code = exitFailed
			continue
		}
		if store == nil {
			fmt.Fprintf(env.Stdout, "tenant %s: nothing is spooled for output %s\n", tc.TenantName(), output)
			continue
		}
		res, err := harvester.RetrySpool(ctx, tc, store, output, toolOptions(env, tc))
		store.Close()
		w := summaryWriter(env, []string{config.OutputType(output, tc.Outputs[output])})
		switch {
		case err != nil:
			fmt.Fprintf(w, "tenant %s: output %s: sent %d record(s), %d still spooled\n", tc.TenantName(), output, res.Sent, res.Left)
			fmt.Fprintf(env.Stderr, "defenderharvester state spool retry: tenant %s: %v\n", tc.TenantName(), err)
			code = exitFailed
		case res.Sent == 0 && res.Left == 0:
			fmt.Fprintf(w, "tenant %s: nothing is spooled for output %s\n", tc.TenantName(), output)
		default:
			fmt.Fprintf(w, "tenant %s: output %s: sent %d record(s), %d still spooled\n", tc.TenantName(), output, res.Sent, res.Left)
			if res.Left > 0 {
				code = exitFailed
			}
		}
	}
	return code
}

// toolOptions are what a tool hands the harvester to build an output
// (the stdout output writes to the command's stdout).
func toolOptions(env *Env, tc *config.Config) harvester.ToolOptions {
	return harvester.ToolOptions{Logger: newLogger(env, tc.LogLevel, false), Now: env.Now, Getenv: env.Getenv, Stdout: env.Stdout}
}
