package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/defenderharvester/defenderharvester/internal/source"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/defenderharvester/defenderharvester/detections"
	"github.com/defenderharvester/defenderharvester/internal/config"
	"github.com/defenderharvester/defenderharvester/internal/detect"
	"github.com/defenderharvester/defenderharvester/internal/harvester"
	"github.com/defenderharvester/defenderharvester/internal/pipeline"
	"github.com/defenderharvester/defenderharvester/internal/sim"
	"go.yaml.in/yaml/v3"
)

func init() {
	register(command{name: "demo", summary: "harvest every data set from a built-in emulated tenant, twice", run: runDemo})
}

const demoMarker = ".defenderharvester-demo"

func runDemo(ctx context.Context, env *Env, args []string) int {
	fs := newFlagSet(env, "demo", "demo [--out DIR] [--seed N] [--sentinel] [--splunk]")
	out := fs.String("out", "demo-out", "directory for the demo's files and state (re-used only if an earlier demo made it)")
	seed := fs.Int64("seed", 1, "seed of the emulated tenant")
	verbose := fs.Bool("debug", false, "show the harvester's logs")
	toSentinel := fs.Bool("sentinel", false, "also deliver to the emulated Microsoft Sentinel (Logs Ingestion API)")
	toSplunk := fs.Bool("splunk", false, "also deliver to the emulated Splunk HTTP Event Collector")
	if code, ok := parseFlags(fs, env, args); !ok {
		return code
	}
	began := time.Now()
	if err := prepareDemoDir(*out); err != nil {
		fmt.Fprintln(env.Stderr, "demo:", err)
		return exitUsage
	}
	clock := newDemoClock(env.Now())
	level := "warn"
	if *verbose {
		level = "debug"
	}
	log := newLogger(env, level, false)
	// The abuse scenario: a quiet tenant until an hour after pass 1, then
	// an attacker with a stolen admin session (the emulator's README,
	// Scenarios); pass 2 harvests it and the detection pack finds it.
	attack := clock.Now().Add(time.Hour).Truncate(time.Second)
	tenant, err := sim.New(sim.Options{Seed: *seed, Now: clock.Now, Logger: log, Scenario: sim.ScenarioAbuse, AbuseAt: attack})
	if err != nil {
		fmt.Fprintln(env.Stderr, "demo:", err)
		return exitFailed
	}
	srv, err := tenant.Serve("127.0.0.1:0", true)
	if err != nil {
		fmt.Fprintln(env.Stderr, "demo:", err)
		return exitFailed
	}
	defer srv.Close()
	cfg, err := demoConfig(tenant, srv, *out, level)
	if err != nil {
		fmt.Fprintln(env.Stderr, "demo:", err)
		return exitFailed
	}
	outputs := []string{"files"}
	if *toSentinel {
		outputs = append(outputs, "sentinel")
	}
	if *toSplunk {
		outputs = append(outputs, "splunk")
	}
	cred := tenant.Credentials()
	fmt.Fprintf(env.Stdout, "Emulated tenant %s on %s (seed %d, %d devices). Output: %s\n\n", cred.TenantID, srv.Addr(), *seed, len(tenant.MachineIDs()), *out)
	req := harvester.Request{Config: cfg, Sources: []string{"all"}, Outputs: outputs, Logger: log, Now: clock.Now, Stdout: io.Discard}

	fmt.Fprintln(env.Stdout, "Pass 1 — first harvest (event sources read the last 24 hours):")
	rep1, err := harvester.Run(ctx, req)
	if err != nil {
		fmt.Fprintln(env.Stderr, "demo:", err)
		return exitFailed
	}
	printReport(env.Stdout, rep1)

	// Twelve emulated hours: the attack happens an hour after pass 1
	// (a library script, Live Response on many devices, files pulled, a
	// detection disabled, tamper protection off, an export destination,
	// a broad suppression rule, …), so pass 2 shows its records and
	// change records.
	clock.Advance(12 * time.Hour)
	pass2 := clock.Now()
	user, _ := tenant.AbuseActors()
	fmt.Fprintf(env.Stdout, "\nMeanwhile, at %s, %s starts abusing a stolen admin session.\n", attack.UTC().Format("15:04 UTC"), user)
	fmt.Fprintln(env.Stdout, "\nPass 2 — twelve emulated hours later, incremental from the checkpoints:")
	rep2, err := harvester.Run(ctx, req)
	if err != nil {
		fmt.Fprintln(env.Stderr, "demo:", err)
		return exitFailed
	}
	printReport(env.Stdout, rep2)

	counts, err := countOutput(*out)
	if err != nil {
		fmt.Fprintln(env.Stderr, "demo:", err)
		return exitFailed
	}
	fmt.Fprintln(env.Stdout, "\nWhat landed in the files:")
	tw := tabwriter.NewWriter(env.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tRECORDS\tPASS 1\tPASS 2\tDUPLICATE RecordIds")
	tables := make([]string, 0, len(counts))
	for t := range counts {
		tables = append(tables, t)
	}
	sort.Strings(tables)
	total, dups := 0, 0
	shared := sharedTables()
	for _, t := range tables {
		c := counts[t]
		p1, p2 := "-", "-" // a source writing several tables counts them together (below)
		if shared[t] == "" && t != pipeline.ConfigurationChangesTable {
			p1, p2 = fmt.Sprint(newFor(rep1, t)), fmt.Sprint(newFor(rep2, t))
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\n", t, c.records, p1, p2, c.duplicates)
		total += c.records
		dups += c.duplicates
	}
	tw.Flush()
	for _, src := range sortedValues(shared) {
		fmt.Fprintf(env.Stdout, "(%s writes several tables: pass 1 %d, pass 2 %d records over them.)\n", src, newOf(rep1, src), newOf(rep2, src))
	}
	fmt.Fprintf(env.Stdout, "(%s: every snapshot data set's changes, one row per changed field.)\n", pipeline.ConfigurationChangesTable)
	if err := printChanges(env.Stdout, *out, pass2); err != nil {
		fmt.Fprintln(env.Stderr, "demo:", err)
		return exitFailed
	}
	fired, err := demoFindings(env.Stdout, *out, tenant)
	if err != nil {
		fmt.Fprintln(env.Stderr, "demo:", err)
		return exitFailed
	}
	receiversOK := printReceivers(env.Stdout, tenant, counts, *toSentinel, *toSplunk)
	fmt.Fprintf(env.Stdout, "\n%d records in %d tables, %d duplicates, in %s.\n", total, len(tables), dups, time.Since(began).Round(time.Millisecond))
	if rep1.Failed()+rep2.Failed()+rep1.OutputsFailing()+rep2.OutputsFailing() > 0 || dups > 0 || !receiversOK || fired == 0 {
		fmt.Fprintln(env.Stderr, "demo: something went wrong (see above)")
		return exitFailed
	}
	fmt.Fprintf(env.Stdout, "Try: defenderharvester detect --in %s --lookups %s --json | jq -c '{RuleId, Actor, FirstSeen}'\n", *out, filepath.Join(*out, "allow-lists"))
	fmt.Fprintf(env.Stdout, "Try: jq -c 'select(.ActionType==\"LiveResponseCommand\") | {EventTime, UserPrincipalName, ComputerName, cmd: .AdditionalFields.raw_command}' %s/MdeMachineActions-*.jsonl | head\n", *out)
	return exitOK
}

// routineFields change on every run of a healthy tenant; the demo
// summarises them instead of listing each.
var routineFields = map[string]bool{"LastRunTime": true, "NextRunTime": true, "LastRunStatus": true,
	"MonthlyStatistics": true, "LatestConnectivity": true}

// printChanges lists the change records pass 2 produced: what a detection
// engineer would alert on.
func printChanges(w io.Writer, dir string, harvested time.Time) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil {
		return err
	}
	stamp := harvested.UTC().Format(time.RFC3339Nano)
	var lines []string
	routine := 0
	for _, f := range files {
		table := strings.SplitN(filepath.Base(f), "-", 2)[0]
		err := scanLines(f, func(b []byte) error {
			var r struct {
				HarvestedAt   string
				ChangeType    string
				SnapshotKey   string
				ChangedFields []string
			}
			if err := json.Unmarshal(b, &r); err != nil {
				return err
			}
			if r.HarvestedAt != stamp || r.ChangeType == "" || r.ChangeType == "Initial" {
				return nil
			}
			if r.ChangeType == "Modified" && allRoutine(r.ChangedFields) {
				routine++
				return nil
			}
			detail := ""
			if len(r.ChangedFields) > 0 {
				detail = " (" + strings.Join(r.ChangedFields, ", ") + ")"
			}
			lines = append(lines, fmt.Sprintf("  %-26s %-8s %s%s", table, r.ChangeType, r.SnapshotKey, detail))
			return nil
		})
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
	}
	sort.Strings(lines)
	fmt.Fprintln(w, "\nChanges pass 2 recorded (the stuff of detections):")
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
	if routine > 0 {
		fmt.Fprintf(w, "  … and %d routine updates (rule run times, app usage counters)\n", routine)
	}
	return nil
}

func allRoutine(fields []string) bool {
	for _, f := range fields {
		if !routineFields[f] {
			return false
		}
	}
	return len(fields) > 0
}

// demoConfig writes the config `simulate --write-config` would, into the
// demo directory, and loads it like a user's.
func demoConfig(tenant *sim.Tenant, srv *sim.Server, dir, level string) (*config.Config, error) {
	caFile := filepath.Join(dir, "sim-ca.pem")
	if err := os.WriteFile(caFile, tenant.CACertPEM(), 0o600); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(abs, "demo.yaml")
	if err := writeEmulatorConfig(cfgPath, tenant.Info(srv), tenant.Credentials(), srv.Addr(), caFile, false); err != nil {
		return nil, err
	}
	cfg, err := config.Load(cfgPath, func(string) string { return "" })
	if err != nil {
		return nil, err
	}
	cfg.StateFile = filepath.Join(abs, "state.db")
	cfg.LogLevel = level
	// The emulator is local: no need for the production politeness limit.
	cfg.Portal.RatePerSecond = 100
	files := &yaml.Node{}
	if err := files.Encode(map[string]any{"dir": abs}); err != nil {
		return nil, err
	}
	cfg.Outputs["files"] = files
	// The unified audit log is off by default (it needs its own app
	// permission); the emulated tenant serves it, so the demo shows it.
	audit := &yaml.Node{}
	if err := audit.Encode(map[string]any{"enabled": true}); err != nil {
		return nil, err
	}
	cfg.Sources["auditlog"] = audit
	// So are the custom detection rules from Microsoft Graph (who changed
	// a rule, and when).
	rules := &yaml.Node{}
	if err := rules.Encode(map[string]any{"enabled": true}); err != nil {
		return nil, err
	}
	cfg.Sources["detectionrules"] = rules
	return cfg, nil
}

// printReceivers shows what the emulated Sentinel and Splunk accepted,
// table by table, next to what the files hold: every record in both.
func printReceivers(w io.Writer, tenant *sim.Tenant, files map[string]tableCount, sentinel, splunk bool) bool {
	if !sentinel && !splunk {
		return true
	}
	type col struct {
		name string
		st   sim.ReceiverStats
		on   bool
	}
	cols := []col{{"Sentinel", tenant.Received(sim.ReceiverSentinel), sentinel}, {"Splunk", tenant.Received(sim.ReceiverSplunk), splunk}}
	fmt.Fprintln(w, "\nWhat the emulated receivers accepted (records per table; files count unique RecordIds):")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprint(tw, "TABLE\tFILES")
	for _, c := range cols {
		if c.on {
			fmt.Fprintf(tw, "\t%s", strings.ToUpper(c.name))
		}
	}
	fmt.Fprintln(tw)
	tables := make([]string, 0, len(files))
	for t := range files {
		tables = append(tables, t)
	}
	sort.Strings(tables)
	ok := true
	for _, t := range tables {
		fmt.Fprintf(tw, "%s\t%d", t, files[t].records-files[t].duplicates)
		for _, c := range cols {
			if !c.on {
				continue
			}
			n := receivedFor(c.st, t)
			if n != files[t].records-files[t].duplicates {
				ok = false
			}
			fmt.Fprintf(tw, "\t%d", n)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	for _, c := range cols {
		if c.on {
			fmt.Fprintf(w, "%s: %d records in %d requests (largest %d bytes), %d duplicates.\n", c.name, c.st.Records, c.st.Requests, c.st.MaxRequestBytes, c.st.Duplicates)
		}
	}
	if !ok {
		fmt.Fprintln(w, "A receiver is missing records (see above).")
	}
	return ok
}

// receivedFor counts a table's unique records in a receiver, whatever
// stream or sourcetype name it arrived under.
func receivedFor(st sim.ReceiverStats, table string) int {
	n := 0
	for name, c := range st.ByTable {
		if name == table || strings.TrimPrefix(name, "Custom-") == table {
			n += c
		}
	}
	return n
}

// sharedTables maps every table of a source that writes several to the
// source's name.
func sharedTables() map[string]string {
	out := map[string]string{}
	for _, f := range source.All() {
		if len(f.Tables) == 0 {
			continue
		}
		out[f.Table] = f.Name
		for _, t := range f.Tables {
			out[t] = f.Name
		}
	}
	return out
}

// sortedValues lists the distinct values of m, sorted.
func sortedValues(m map[string]string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range m {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out
}

// newOf is what source src delivered in a run.
func newOf(rep harvester.Report, src string) int {
	n := 0
	for _, r := range rep.Results {
		if r.Source == src {
			n += r.New
		}
	}
	return n
}

func newFor(rep harvester.Report, table string) int {
	n := 0
	for _, r := range rep.Results {
		if r.Table != table {
			continue
		}
		if len(r.Changes) > 0 {
			for _, c := range r.Changes {
				n += c
			}
			continue
		}
		n += r.New
	}
	return n
}

// prepareDemoDir creates dir, or empties it when an earlier demo made it.
// It refuses to touch a directory it did not create.
func prepareDemoDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return err
	case len(entries) > 0:
		if _, err := os.Stat(filepath.Join(dir, demoMarker)); err != nil {
			return fmt.Errorf("%s exists and was not made by demo: choose another --out", dir)
		}
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, demoMarker), []byte("made by defenderharvester demo; safe to delete\n"), 0o600)
}

type tableCount struct{ records, duplicates int }

// countOutput reads every JSONL file and counts records and repeated
// RecordIds per table, the proof that nothing was delivered twice.
func countOutput(dir string) (map[string]tableCount, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil {
		return nil, err
	}
	out := map[string]tableCount{}
	seen := map[string]map[string]bool{}
	for _, f := range files {
		table := strings.SplitN(filepath.Base(f), "-", 2)[0]
		if seen[table] == nil {
			seen[table] = map[string]bool{}
		}
		if err := scanIDs(f, func(id string) {
			c := out[table]
			c.records++
			if seen[table][id] {
				c.duplicates++
			}
			seen[table][id] = true
			out[table] = c
		}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func scanIDs(path string, fn func(id string)) error {
	return scanLines(path, func(b []byte) error {
		var r struct {
			RecordID string `json:"RecordId"`
		}
		if err := json.Unmarshal(b, &r); err != nil || r.RecordID == "" {
			return fmt.Errorf("%s: a line without a RecordId: %v", path, err)
		}
		fn(r.RecordID)
		return nil
	})
}

func scanLines(path string, fn func([]byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		if err := fn(sc.Bytes()); err != nil {
			return err
		}
	}
	return sc.Err()
}

// demoClock is the shared clock of the emulated tenant and the harvester,
// so the demo can show an hour passing in a second.
type demoClock struct {
	mu sync.Mutex
	t  time.Time
}

func newDemoClock(t time.Time) *demoClock { return &demoClock{t: t} }

func (c *demoClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *demoClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// demoFindings runs the detection pack over what the demo harvested, with
// the emulated tenant's regular operators on the allow-lists (the tuning
// a real tenant needs too; written to <out>/allow-lists so detect can be
// run again by hand), and prints the findings. It returns how many fired.
func demoFindings(w io.Writer, dir string, tenant *sim.Tenant) (int, error) {
	lists := filepath.Join(dir, "allow-lists")
	if err := os.MkdirAll(lists, 0o700); err != nil {
		return 0, err
	}
	ops := "SearchKey\n" + strings.Join(tenant.RegularOperators(), "\n") + "\n"
	rules, err := detections.Rules()
	if err != nil {
		return 0, err
	}
	names := map[string]bool{}
	for _, r := range rules {
		for _, l := range r.Lookups() {
			names[l] = true
		}
	}
	for l := range names {
		if err := os.WriteFile(filepath.Join(lists, l+".csv"), []byte(ops), 0o600); err != nil {
			return 0, err
		}
	}
	lookups, err := detect.LoadLookups(lists)
	if err != nil {
		return 0, err
	}
	fs, st, err := detect.EvaluateDir(dir, rules, lookups, time.Time{})
	if err != nil {
		return 0, err
	}
	fmt.Fprintln(w, "\nWhat the detection pack finds (defenderharvester detect, regular operators on the allow-lists):")
	fmt.Fprintf(w, "%d findings from %d rules over %d records\n", len(fs), len(rules), st.Records)
	type perRule struct {
		n      int
		first  time.Time
		actors []string
	}
	by := map[string]*perRule{}
	for _, f := range fs {
		p := by[f.RuleID]
		if p == nil {
			p = &perRule{first: f.FirstSeen}
			by[f.RuleID] = p
		}
		p.n++
		if f.FirstSeen.Before(p.first) {
			p.first = f.FirstSeen
		}
		if f.Actor != "" && !slices.Contains(p.actors, f.Actor) {
			p.actors = append(p.actors, f.Actor)
		}
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tSEVERITY\tFINDINGS\tFIRST SEEN (UTC)\tACTORS\tTITLE")
	for _, r := range rules {
		p := by[r.ID]
		if p == nil {
			fmt.Fprintf(tw, "%s\t%s\t0\t-\t-\t%s\n", r.ID, r.Severity, r.Title)
			continue
		}
		actors := strings.Join(p.actors, ", ")
		if actors == "" {
			actors = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", r.ID, r.Severity, p.n, p.first.UTC().Format("2006-01-02 15:04"), truncate(actors, 50), r.Title)
	}
	tw.Flush()
	fmt.Fprintf(w, "%d of %d rules fired.\n", len(by), len(rules))
	return len(fs), nil
}
