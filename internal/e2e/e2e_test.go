package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/cli"
	"github.com/defenderharvester/defenderharvester/internal/pipeline"
	"github.com/defenderharvester/defenderharvester/internal/sim"
	"github.com/defenderharvester/defenderharvester/internal/sim/simtest"
)

// TestMain lets the test binary act as the defenderharvester command when
// re-executed by a test (so a run can be killed as a real process).
func TestMain(m *testing.M) {
	if raw := os.Getenv("DH_E2E_CHILD_ARGS"); raw != "" {
		var args []string
		if err := json.Unmarshal([]byte(raw), &args); err != nil {
			fmt.Fprintln(os.Stderr, "bad DH_E2E_CHILD_ARGS:", err)
			os.Exit(3)
		}
		os.Exit(cli.Main(context.Background(), cli.OSEnv(), args))
	}
	os.Exit(m.Run())
}

// clock is a settable clock shared by the emulator and in-process runs.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}
func (c *clock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// fixture is an emulated tenant on loopback TLS plus a config for it.
type fixture struct {
	t      *testing.T
	tenant *sim.Tenant
	srv    *sim.Server
	clock  *clock
	dir    string
	ca     string // the emulator's CA certificate, in dir
}

func newFixture(t *testing.T, opts sim.Options) *fixture {
	t.Helper()
	c := &clock{t: time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)}
	if opts.Now == nil {
		opts.Now = c.Now
	}
	if opts.Machines == 0 {
		opts.Machines = 6
	}
	if opts.History == 0 {
		opts.History = 48 * time.Hour
	}
	if opts.TimelineHistory == 0 {
		opts.TimelineHistory = 24 * time.Hour
	}
	dir := t.TempDir()
	tenant, srv, ca := simtest.Start(t, opts, dir)
	return &fixture{t: t, tenant: tenant, srv: srv, clock: c, dir: dir, ca: ca}
}

// writeConfig writes a harvester config for the fixture under dir/name and
// returns its path; outputs go to dir/name-out, state to dir/name.db. The
// emulated Sentinel and Splunk outputs are configured but off unless
// picked with --outputs (or enabled by extra settings).
func (f *fixture) writeConfig(name string, extra string) string {
	f.t.Helper()
	cred := f.tenant.Credentials()
	info := f.tenant.Info(f.srv)
	ca := f.ca
	ec := cli.EmulatorConfig{
		TenantID: cred.TenantID, ClientID: cred.ClientID, Address: f.srv.Addr(), CAFile: ca,
		CookieFile: filepath.Join(f.dir, name+".cookie"), SecretFile: filepath.Join(f.dir, name+".secret"),
		HECTokenFile: filepath.Join(f.dir, name+".hec"), SentinelEndpoint: info.Sentinel.Endpoint,
		DCRImmutableID: info.Sentinel.DCRImmutableID, HECURL: strings.TrimSuffix(info.Splunk.URL, "/services/collector/event"),
		StateFile: filepath.Join(f.dir, name+".db"), OutDir: filepath.Join(f.dir, name+"-out"),
	}
	mustWrite(f.t, ec.CookieFile, []byte(cli.PortalCookieHeader(cred.SccAuth, cred.XSRFToken)), 0o600)
	mustWrite(f.t, ec.SecretFile, []byte(cred.ClientSecret), 0o600)
	mustWrite(f.t, ec.HECTokenFile, []byte(cred.HECToken), 0o600)
	body := strings.Replace(ec.YAML(), "rate_per_second: 50", "rate_per_second: 100", 1) + extra
	p := filepath.Join(f.dir, name+".yaml")
	mustWrite(f.t, p, []byte(body), 0o600)
	return p
}

func mustWrite(t *testing.T, p string, b []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, b, mode); err != nil {
		t.Fatal(err)
	}
}

// runCLI runs the command line in-process with the fixture's clock.
func (f *fixture) runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	env := &cli.Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }, Now: f.clock.Now}
	code := cli.Main(context.Background(), env, args)
	return code, out.String(), errb.String()
}

// line is one output record: its table and the fields tests look at.
type line struct {
	Table    string
	RecordID string `json:"RecordId"`
	raw      map[string]any
}

// readOutput reads every JSONL file under dir; a line that does not parse
// fails the test (a torn line would).
func readOutput(t *testing.T, dir string) []line {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	var out []line
	for _, p := range files {
		table := strings.SplitN(filepath.Base(p), "-", 2)[0]
		fh, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		n := 0
		for sc.Scan() {
			n++
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("%s line %d is not JSON (torn write?): %v", p, n, err)
			}
			id, _ := m["RecordId"].(string)
			if id == "" {
				t.Fatalf("%s line %d has no RecordId", p, n)
			}
			out = append(out, line{Table: table, RecordID: id, raw: m})
		}
		fh.Close()
	}
	return out
}

func countByTable(lines []line) map[string]int {
	m := map[string]int{}
	for _, l := range lines {
		m[l.Table]++
	}
	return m
}

func duplicates(lines []line) int {
	seen := map[string]bool{}
	d := 0
	for _, l := range lines {
		k := l.Table + "/" + l.RecordID
		if seen[k] {
			d++
		}
		seen[k] = true
	}
	return d
}

var allTables = []string{
	"M365AlertServiceSettings", "M365DataExportSettings", "MdeAdvancedFeatureSettings",
	"MdeConnectedAppStats", "MdeCustomDetectionState", "MdeExecutedQueries", "MdeLibraryFiles",
	"MdeMachineActions", "MdeMachineActionsApi", "MdeMachineGroups", "MdeSchemaReference",
	"MdeSuppressionRules", "MdeTimeline",
}

// TestRunWithWrittenConfigProducesEveryTableOnce is the "done when":
// simulate's config + run produce every table; a second run writes no
// duplicate; an hour later only new records arrive.
func TestRunWithWrittenConfigProducesEveryTableOnce(t *testing.T) {
	f := newFixture(t, sim.Options{Seed: 7})
	cfg := f.writeConfig("a", "")
	code, stdout, stderr := f.runCLI("run", "--config", cfg)
	if code != 0 {
		t.Fatalf("run exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	out := filepath.Join(f.dir, "a-out")
	first := readOutput(t, out)
	counts := countByTable(first)
	for _, table := range allTables {
		if counts[table] == 0 {
			t.Errorf("table %s is empty after the first run (summary:\n%s)", table, stdout)
		}
	}
	if d := duplicates(first); d != 0 {
		t.Fatalf("%d duplicate records after one run", d)
	}

	code, stdout, stderr = f.runCLI("run", "--config", cfg)
	if code != 0 {
		t.Fatalf("second run exit %d: %s %s", code, stdout, stderr)
	}
	if again := readOutput(t, out); len(again) != len(first) {
		t.Fatalf("a second run at the same moment wrote %d more records; want 0\n%s", len(again)-len(first), stdout)
	}

	f.clock.Advance(time.Hour)
	code, stdout, stderr = f.runCLI("run", "--config", cfg)
	if code != 0 {
		t.Fatalf("third run exit %d: %s %s", code, stdout, stderr)
	}
	later := readOutput(t, out)
	if d := duplicates(later); d != 0 {
		t.Fatalf("%d duplicate records after an incremental run", d)
	}
	grown := countByTable(later)
	for _, table := range []string{"MdeTimeline", "MdeMachineActions"} {
		if grown[table] <= counts[table] {
			t.Errorf("%s did not grow an hour later (%d → %d)", table, counts[table], grown[table])
		}
	}
}

// TestNoLossWhenKilled kills `run` (SIGKILL) at many moments and checks
// that the resumed harvest holds exactly what an uninterrupted one does:
// nothing lost, nothing extra, duplicates only from batches in flight.
func TestNoLossWhenKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("kills real processes; skipped with -short")
	}
	// Child processes run on the wall clock: freeze the emulator's data an
	// hour before it, so every run — each ending its windows a source's
	// delay (at most 15 min) before its own now, a little later each time —
	// sees the same data.
	frozen := time.Now().Add(-time.Hour)
	f := newFixture(t, sim.Options{Seed: 11, Now: func() time.Time { return frozen }, Machines: 12, TimelineHistory: 48 * time.Hour})
	extra := "initial_lookback: 7d\n"
	clean := f.writeConfig("clean", extra)
	began := time.Now()
	code, out, errs := f.child(clean, 0)
	took := time.Since(began)
	if code != 0 {
		t.Fatalf("clean run exit %d\n%s\n%s", code, out, errs)
	}
	want := readOutput(t, filepath.Join(f.dir, "clean-out"))
	if len(want) < 1000 {
		t.Fatalf("clean run harvested only %d records; the test needs more to be meaningful", len(want))
	}

	// The killed harvest also feeds the emulated Sentinel and Splunk, so
	// a kill between a network send and the commit is covered too.
	killed := f.writeConfig("killed", extra)
	outputs := []string{"--outputs", "files,sentinel,splunk"}
	kills := 0
	// Kill at 2.5, 5 or 7.5 % of an uninterrupted run's time: each resumed
	// run starts where the killed one left its checkpoints and does not
	// redo finished windows, so later kills must come early to meet work.
	for i := 1; i <= 18; i++ {
		after := took * time.Duration(1+i%3) / 40
		code, _, _ := f.child(killed, after, outputs...)
		if code == -1 {
			kills++
		}
	}
	if code, out, errs := f.child(killed, 0, outputs...); code != 0 {
		t.Fatalf("final run exit %d\n%s\n%s", code, out, errs)
	}
	if kills < 9 {
		t.Fatalf("only %d of 18 runs were killed before they finished: the test proves little (a clean run takes %s)", kills, took)
	}
	got := readOutput(t, filepath.Join(f.dir, "killed-out"))
	wantSet, _ := sameHarvest(t, want, got, kills, "kills")
	wantByTable := countByTable(want)
	tableOf := map[string]string{}
	for _, l := range want {
		tableOf[l.RecordID] = l.Table
	}
	checkDups := func(where string, dups map[string]int) {
		checkDuplicates(t, where, dups, wantByTable, kills, "kills")
	}
	for _, r := range []string{sim.ReceiverSentinel, sim.ReceiverSplunk} {
		st := f.tenant.Received(r)
		ids := st.IDs()
		for k := range wantSet {
			if ids[k[strings.Index(k, "/")+1:]] == 0 {
				t.Fatalf("%s lost record %s after %d kills", r, k, kills)
			}
		}
		if st.Unique != len(wantSet) {
			t.Fatalf("%s holds %d unique records, want %d", r, st.Unique, len(wantSet))
		}
		// A kill can interrupt a batch per output after the receiver took
		// it (sink retries may also have resent a request the receiver
		// had accepted before the connection died).
		recvDups := map[string]int{}
		for id, n := range ids {
			if n > 1 {
				recvDups[tableOf[id]] += n - 1
			}
		}
		checkDups(r, recvDups)
		t.Logf("%s: %d records, %d duplicates", r, st.Unique, st.Duplicates)
	}
	t.Logf("files: %d records, %d kills, %d duplicates", len(got), kills, duplicates(got))
}

// sameHarvest checks that an interrupted harvest (got) holds every record
// of an uninterrupted one (want) and nothing else, with at most one batch
// per interruption delivered twice per table; it returns the records of
// want and the duplicates in got per table. what names the interruptions.
func sameHarvest(t *testing.T, want, got []line, interruptions int, what string) (map[string]bool, map[string]int) {
	t.Helper()
	have := map[string]int{}
	for _, l := range got {
		have[l.Table+"/"+l.RecordID]++
	}
	wantSet := map[string]bool{}
	for _, l := range want {
		k := l.Table + "/" + l.RecordID
		wantSet[k] = true
		if have[k] == 0 {
			t.Fatalf("record %s was lost after %d %s", k, interruptions, what)
		}
	}
	dups := map[string]int{}
	for k, n := range have {
		if !wantSet[k] {
			t.Fatalf("record %s appeared only in the interrupted harvest", k)
		}
		dups[strings.SplitN(k, "/", 2)[0]] += n - 1
	}
	checkDuplicates(t, "files", dups, countByTable(want), interruptions, what)
	return wantSet, dups
}

// checkDuplicates: an interruption can leave in flight at most one batch
// per source that was running (sources run in parallel): per table, at
// most one batch — no more than the table holds — per interruption.
func checkDuplicates(t *testing.T, where string, dups, wantByTable map[string]int, interruptions int, what string) {
	t.Helper()
	for table, d := range dups {
		if bound := interruptions * min(pipeline.DefaultBatchSize, wantByTable[table]); d > bound {
			t.Fatalf("%s: %d duplicates of %s after %d %s; at most one batch per interruption (%d) can be in flight", where, d, table, interruptions, what, bound)
		}
	}
}

// child runs `run --config cfg` as a separate process; with killAfter > 0
// it is killed with SIGKILL after that long (code -1 if it was).
func (f *fixture) child(cfg string, killAfter time.Duration, extra ...string) (int, string, string) {
	f.t.Helper()
	return f.childSignal(append([]string{"run", "--config", cfg}, extra...), killAfter, os.Kill)
}

// childSignal runs the command line as a separate process; with after > 0
// it sends sig after that long and waits for the process to end (code -1
// when sig killed it).
func (f *fixture) childSignal(argv []string, killAfter time.Duration, sig os.Signal) (int, string, string) {
	f.t.Helper()
	var when func() bool
	if killAfter > 0 {
		deadline := time.Now().Add(killAfter)
		when = func() bool { return !time.Now().Before(deadline) }
	}
	return f.childUntil(argv, when, sig)
}

// childUntil runs the command line as a separate process; with when set
// it sends sig as soon as when() holds (checked every 2 ms; after 2
// minutes at the latest: a `serve` has no end of its own) and waits for
// the process to end (code -1 when sig killed it).
func (f *fixture) childUntil(argv []string, when func() bool, sig os.Signal) (int, string, string) {
	f.t.Helper()
	args, _ := json.Marshal(argv)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "DH_E2E_CHILD_ARGS="+string(args))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if when != nil {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		latest := time.Now().Add(2 * time.Minute)
		for !when() && time.Now().Before(latest) {
			select {
			case <-done:
				return cmd.ProcessState.ExitCode(), out.String(), errb.String()
			case <-tick.C:
			}
		}
		{
			_ = cmd.Process.Signal(sig)
			select {
			case <-done:
			case <-time.After(2 * time.Minute):
				_ = cmd.Process.Kill()
				<-done
				f.t.Fatalf("the process did not end within 2 minutes of %v", sig)
			}
			return cmd.ProcessState.ExitCode(), out.String(), errb.String()
		}
	}
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		f.t.Fatal("run did not finish in 2 minutes")
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// TestEventOnWindowEdgeDeliveredOnce puts the clock exactly on an Action
// Center event's time: the first run's window [from, now) must not take it,
// the next run must, and it must appear exactly once.
func TestEventOnWindowEdgeDeliveredOnce(t *testing.T) {
	f := newFixture(t, sim.Options{Seed: 5})
	events, err := f.tenant.Events("actioncenter", f.clock.Now().Add(-6*time.Hour), f.clock.Now())
	if err != nil || len(events) == 0 {
		t.Fatalf("no action center events to test with: %v", err)
	}
	var ev struct{ ActionId, EventTime string }
	if err := json.Unmarshal(events[len(events)/2], &ev); err != nil {
		t.Fatal(err)
	}
	edge, err := time.Parse("2006-01-02T15:04:05.9999999", ev.EventTime)
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Set(edge)
	cfg := f.writeConfig("edge", "")
	count := func() int {
		n := 0
		for _, l := range readOutput(t, filepath.Join(f.dir, "edge-out")) {
			if l.raw["ActionId"] == ev.ActionId && l.raw["EventTime"] == ev.EventTime {
				n++
			}
		}
		return n
	}
	if code, out, errs := f.runCLI("run", "--config", cfg, "--sources", "actioncenter"); code != 0 {
		t.Fatalf("run: %d %s %s", code, out, errs)
	}
	if n := count(); n != 0 {
		t.Fatalf("event at the window's end was delivered by the run that ends there (%d times)", n)
	}
	f.clock.Advance(10 * time.Minute)
	if code, out, errs := f.runCLI("run", "--config", cfg, "--sources", "actioncenter"); code != 0 {
		t.Fatalf("run: %d %s %s", code, out, errs)
	}
	f.clock.Advance(10 * time.Minute)
	if code, out, errs := f.runCLI("run", "--config", cfg, "--sources", "actioncenter"); code != 0 {
		t.Fatalf("run: %d %s %s", code, out, errs)
	}
	if n := count(); n != 1 {
		t.Fatalf("event on the window edge delivered %d times; want exactly once", n)
	}
}

// TestFailingSourceDoesNotMoveItsCursorNorStopOthers makes the timeline's
// service fail (persistent 500s beyond the retry budget): that source
// fails, the others are harvested, and a rerun completes the timeline.
func TestFailingSourceDoesNotMoveItsCursorNorStopOthers(t *testing.T) {
	f := newFixture(t, sim.Options{Seed: 3})
	// One worker: the three faults must meet one request, not three
	// concurrent ones that each retry and succeed (the config ends in
	// sources.timeline, so the line joins it).
	cfg := f.writeConfig("fail", "    workers: 1\nhttp:\n  backoff: 1ms\n  max_wait: 1s\n  max_attempts: 3\n")
	f.tenant.Inject(sim.FaultRule{Family: sim.FamilyTimeline, Kind: sim.Fault500, Count: 3})
	code, stdout, stderr := f.runCLI("run", "--config", cfg, "--sources", "timeline,suppressionrules")
	if code == 0 {
		t.Fatalf("run succeeded although the timeline's service kept failing:\n%s", stdout)
	}
	if !strings.Contains(stdout, "FAILED") || !strings.Contains(stdout, "500") {
		t.Fatalf("the summary does not say the timeline failed with the server error:\n%s\n%s", stdout, stderr)
	}
	counts := countByTable(readOutput(t, filepath.Join(f.dir, "fail-out")))
	if counts["MdeSuppressionRules"] == 0 {
		t.Fatal("suppression rules were not harvested although only the timeline failed")
	}
	before := counts["MdeTimeline"]
	code, stdout, stderr = f.runCLI("run", "--config", cfg, "--sources", "timeline")
	if code != 0 {
		t.Fatalf("rerun failed: %s %s", stdout, stderr)
	}
	lines := readOutput(t, filepath.Join(f.dir, "fail-out"))
	if d := duplicates(lines); d != 0 {
		t.Fatalf("%d duplicates after the rerun", d)
	}
	after := countByTable(lines)["MdeTimeline"]
	all := 0
	for _, id := range f.tenant.MachineIDs() {
		// The timeline keeps its window end delay (10m) behind now.
		ev, err := f.tenant.Events("timeline:"+id, f.clock.Now().Add(-24*time.Hour), f.clock.Now().Add(-10*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		all += len(ev)
	}
	if after != all {
		t.Fatalf("after the rerun the timeline holds %d records (%d before); the emulator has %d in the window", after, before, all)
	}
}

// TestSimulateWritesAWorkingConfig runs the simulate command as a user
// would and checks its first line and the config it writes.
func TestSimulateWritesAWorkingConfig(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	env := &cli.Env{Stdout: pw, Stderr: io.Discard, Getenv: func(string) string { return "" }, Now: time.Now}
	cfgPath := filepath.Join(dir, "sim.yaml")
	done := make(chan int, 1)
	go func() {
		done <- cli.Main(ctx, env, []string{"simulate", "--listen", "127.0.0.1:0", "--ca-out", filepath.Join(dir, "ca.pem"), "--write-config", cfgPath, "--machines", "3"})
		pw.Close()
	}()
	first, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("no first line from simulate: %v", err)
	}
	go io.Copy(io.Discard, pr)
	var info map[string]any
	if err := json.Unmarshal([]byte(first), &info); err != nil {
		t.Fatalf("first line is not one JSON object: %q", first)
	}
	for _, k := range []string{"address", "tenant_id", "client_id"} {
		if info[k] == nil || info[k] == "" {
			t.Errorf("the JSON line lacks %q: %s", k, first)
		}
	}
	st, err := os.Stat(cfgPath + ".cookie")
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("cookie file missing or not 0600: %v %v", err, st)
	}
	cfgBody, _ := os.ReadFile(cfgPath)
	var sec map[string]any
	_ = json.Unmarshal([]byte(first), &sec)
	if s, _ := sec["client_secret"].(string); s != "" && strings.Contains(string(cfgBody), s) {
		t.Fatal("the written config holds the client secret in clear; it belongs in the 0600 side file")
	}
	wd, _ := os.Getwd()
	defer os.Chdir(wd)
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := cli.Main(context.Background(), &cli.Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }, Now: time.Now},
		[]string{"run", "--config", cfgPath, "--sources", "actioncenter,machineactions,featuresettings"})
	if code != 0 {
		t.Fatalf("run with the written config: exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	counts := countByTable(readOutput(t, filepath.Join(dir, "sim-out")))
	for _, table := range []string{"MdeMachineActions", "MdeMachineActionsApi", "MdeAdvancedFeatureSettings"} {
		if counts[table] == 0 {
			t.Errorf("%s empty after a run with the written config", table)
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("simulate exited %d after cancel", code)
	}
}

// TestFaultyServicesGiveTheSameHarvest runs the same tenant twice: once
// clean, once with 5xx, 429 + Retry-After, connection resets, truncated
// bodies and slow pages injected. Retries must make the two harvests equal.
func TestFaultyServicesGiveTheSameHarvest(t *testing.T) {
	faults, err := sim.ParseFaults("portal:500=0.08,portal:reset=0.05,portal:truncate=0.05,public:503=0.1,public:429=0.05,timeline:slow=20ms,entra:500=0.2")
	if err != nil {
		t.Fatal(err)
	}
	retry := "http:\n  backoff: 5ms\n  max_wait: 3s\n  max_attempts: 10\n"
	run := func(name string, opts sim.Options, rules ...sim.FaultRule) ([]line, map[sim.FaultKind]int) {
		f := newFixture(t, opts)
		for _, r := range rules {
			f.tenant.Inject(r)
		}
		cfg := f.writeConfig(name, retry)
		code, stdout, stderr := f.runCLI("run", "--config", cfg)
		if code != 0 {
			t.Fatalf("%s run exit %d\n%s\n%s", name, code, stdout, stderr)
		}
		return readOutput(t, filepath.Join(f.dir, name+"-out")), f.tenant.FaultsFired()
	}
	clean, _ := run("clean", sim.Options{Seed: 21})
	// Besides the random rates, every kind is also scripted a few requests
	// in, so each one is certain to happen.
	faulty, fired := run("faulty", sim.Options{Seed: 21, Faults: faults},
		sim.FaultRule{Family: sim.FamilyPortal, Kind: sim.FaultTruncate, Count: 2, After: 3},
		sim.FaultRule{Family: sim.FamilyPortal, Kind: sim.FaultReset, Count: 2, After: 5},
		sim.FaultRule{Family: sim.FamilyPortal, Kind: sim.Fault500, Count: 2, After: 7},
		sim.FaultRule{Family: sim.FamilyPublic, Kind: sim.Fault503, Count: 2, After: 1, RetryAfter: time.Millisecond},
		sim.FaultRule{Family: sim.FamilyPortal, Kind: sim.Fault429, Count: 2, After: 9, RetryAfter: time.Millisecond})
	for _, k := range []sim.FaultKind{sim.Fault500, sim.FaultReset, sim.FaultTruncate, sim.Fault503, sim.Fault429, sim.FaultSlow} {
		if fired[k] == 0 {
			t.Errorf("no %s fault was served: the faulty run proves nothing about it (served: %v)", k, fired)
		}
	}
	if len(clean) != len(faulty) {
		t.Fatalf("clean harvest %d records, faulty %d", len(clean), len(faulty))
	}
	ids := map[string]bool{}
	for _, l := range clean {
		ids[l.Table+"/"+l.RecordID] = true
	}
	for _, l := range faulty {
		if !ids[l.Table+"/"+l.RecordID] {
			t.Fatalf("faulty harvest has %s/%s that the clean one lacks", l.Table, l.RecordID)
		}
	}
}

// TestSecretsNeverPrinted runs harvests with debug logging, injected
// failures and an expired session, and scans everything printed and
// written for the session cookies and the client secret.
func TestSecretsNeverPrinted(t *testing.T) {
	faults, err := sim.ParseFaults("portal:500=0.1,public:429=0.05,entra:500=0.3")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, sim.Options{Seed: 4, Faults: faults})
	cred := f.tenant.Credentials()
	cfg := patchOutputs(t, f.writeConfig("canary", "log_level: debug\nhttp:\n  backoff: 5ms\n  max_wait: 3s\n  max_attempts: 10\n"), fastRetries)
	var printed strings.Builder
	for i := 0; i < 2; i++ {
		_, out, errs := f.runCLI("run", "--config", cfg, "--debug", "--outputs", "files,sentinel,splunk")
		printed.WriteString(out + errs)
	}
	// An output failing with its credentials in play: the errors must not
	// quote them either.
	f.tenant.SetReceiverDown(sim.ReceiverSplunk, true)
	f.clock.Advance(time.Hour)
	_, out0, errs0 := f.runCLI("run", "--config", cfg, "--debug", "--outputs", "files,sentinel,splunk", "--sources", "actioncenter")
	printed.WriteString(out0 + errs0)
	f.tenant.SetReceiverDown(sim.ReceiverSplunk, false)
	f.tenant.Inject(sim.FaultRule{Family: sim.FamilyPortal, Kind: sim.FaultLogin, Count: 5})
	_, out, errs := f.runCLI("run", "--config", cfg, "--debug", "--sources", "actioncenter,featuresettings")
	printed.WriteString(out + errs)
	if err := f.tenant.RevokePortalSession(); err != nil {
		t.Fatal(err)
	}
	code, out, errs := f.runCLI("run", "--config", cfg, "--debug", "--sources", "suppressionrules")
	printed.WriteString(out + errs)
	if code == 0 || !strings.Contains(out+errs, "session") {
		t.Fatalf("a revoked session did not fail with a session error: %s %s", out, errs)
	}
	state, _ := os.ReadFile(filepath.Join(f.dir, "canary.db"))
	var files strings.Builder
	for _, l := range readOutput(t, filepath.Join(f.dir, "canary-out")) {
		b, _ := json.Marshal(l.raw)
		files.Write(b)
	}
	for name, secret := range map[string]string{"sccauth": cred.SccAuth, "XSRF token": cred.XSRFToken, "client secret": cred.ClientSecret, "HEC token": cred.HECToken} {
		if strings.Contains(printed.String(), secret) {
			t.Errorf("the %s appears in the command's output or logs", name)
		}
		if bytes.Contains(state, []byte(secret)) {
			t.Errorf("the %s is stored in the state file", name)
		}
		if strings.Contains(files.String(), secret) {
			t.Errorf("the %s appears in the harvested records", name)
		}
	}
	// Every access token the emulator issues is a JWT, whose text starts
	// with the base64 of `{"`: none may be printed or stored.
	if strings.Contains(printed.String(), "eyJ") || bytes.Contains(state, []byte("eyJ")) {
		t.Error("a bearer token (JWT) appears in the output, the logs or the state file")
	}
	if !strings.Contains(printed.String(), "level=DEBUG") {
		t.Fatal("debug logging was not on: the scan proves nothing")
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func osStat(p string) (os.FileMode, error) {
	st, err := os.Stat(p)
	if err != nil {
		return 0, err
	}
	return st.Mode().Perm(), nil
}

// cliEnv runs the command line in-process with chosen environment variables.
type cliEnv struct{ vars map[string]string }

func (c *cliEnv) run(f *fixture, out, errw io.Writer, args ...string) int {
	env := &cli.Env{Stdout: out, Stderr: errw, Getenv: func(k string) string { return c.vars[k] }, Now: f.clock.Now}
	return cli.Main(context.Background(), env, args)
}
