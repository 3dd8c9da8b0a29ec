package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/sim"
)

// TestDamagedStateFileIsRefused: a state file truncated to nothing or with
// a damaged page stops the run with one line naming the fix — no panic, no
// silent fresh start that would re-harvest everything into every output —
// and --reset-state moves it aside and starts over.
func TestDamagedStateFileIsRefused(t *testing.T) {
	f := newFixture(t, sim.Options{Seed: 61})
	cfg := f.writeConfig("dmg", "")
	statePath := filepath.Join(f.dir, "dmg.db")
	out := filepath.Join(f.dir, "dmg-out")

	mustWrite(t, statePath, nil, 0o600)
	code, stdout, stderr := f.runCLI("run", "--config", cfg, "--sources", "actioncenter")
	if code != 2 || !strings.Contains(stderr, "0 bytes") || !strings.Contains(stderr, "--reset-state") {
		t.Fatalf("0-byte state file: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if n := len(readOutput(t, out)); n != 0 {
		t.Fatalf("%d records were harvested on top of an empty state file", n)
	}
	if strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
		t.Errorf("the refusal takes more than one line:\n%s", stderr)
	}

	code, stdout, stderr = f.runCLI("run", "--config", cfg, "--sources", "actioncenter", "--reset-state")
	if code != 0 {
		t.Fatalf("--reset-state: exit %d\n%s\n%s", code, stdout, stderr)
	}
	moved, _ := filepath.Glob(statePath + ".damaged-*")
	if len(moved) != 1 {
		t.Fatalf("the damaged file was not kept aside: %v", moved)
	}
	delivered := len(readOutput(t, out))

	// Now damage every page but the two meta pages of the good file.
	b, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}
	page := os.Getpagesize()
	for i := 2 * page; i < len(b); i++ {
		b[i] ^= 0x5a
	}
	mustWrite(t, statePath, b, 0o600)
	code, stdout, stderr = f.runCLI("run", "--config", cfg, "--sources", "actioncenter")
	if code != 2 || !strings.Contains(stderr, "damaged") || strings.Contains(stderr, "goroutine") {
		t.Fatalf("damaged page: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if n := len(readOutput(t, out)); n != delivered {
		t.Fatalf("a run on a damaged state file delivered %d more records", n-delivered)
	}
	// A healthy file is never moved, even with --reset-state.
	code, _, stderr = f.runCLI("run", "--config", cfg, "--sources", "actioncenter", "--reset-state")
	if code != 0 {
		t.Fatalf("--reset-state after damage: exit %d %s", code, stderr)
	}
	code, _, stderr = f.runCLI("run", "--config", cfg, "--sources", "actioncenter", "--reset-state")
	if moved, _ := filepath.Glob(statePath + ".damaged-*"); code != 0 || len(moved) != 2 {
		t.Fatalf("a healthy state file was moved by --reset-state (exit %d, %d moved) %s", code, len(moved), stderr)
	}
}

// TestStalledEndpointsEndByTheDeadline: a portal that never answers and an
// output that never answers each end the run at its deadline, with one
// clear line and exit 4, and the state file is free for the next run.
func TestStalledEndpointsEndByTheDeadline(t *testing.T) {
	f := newFixture(t, sim.Options{Seed: 62})
	cfg := f.writeConfig("stall", "")
	f.tenant.Inject(sim.FaultRule{Family: sim.FamilyPortal, Kind: sim.FaultSlow, Count: 1000, Delay: time.Minute})
	start := time.Now()
	code, stdout, stderr := f.runCLI("run", "--config", cfg, "--sources", "actioncenter,suppressionrules", "--timeout", "1s")
	if took := time.Since(start); took > 30*time.Second {
		t.Fatalf("the run took %s with a 1 s deadline", took)
	}
	if code != 4 || !strings.Contains(stderr, "stopped at its deadline") {
		t.Fatalf("stalled portal: exit %d\n%s\n%s", code, stdout, stderr)
	}
	t.Logf("portal answering nothing, --timeout 1s: run ended after %s, exit %d", time.Since(start).Round(10*time.Millisecond), code)
	f.tenant.ClearInjected()
	if code, stdout, stderr := f.runCLI("run", "--config", cfg, "--sources", "actioncenter,suppressionrules"); code != 0 {
		t.Fatalf("the next run (state file lock released?): exit %d\n%s\n%s", code, stdout, stderr)
	}

	// An output that accepts the connection and never answers.
	f.tenant.Inject(sim.FaultRule{Family: sim.ReceiverSplunk, Kind: sim.FaultSlow, Count: 1000, Delay: time.Minute})
	f.clock.Advance(time.Hour)
	start = time.Now()
	code, stdout, stderr = f.runCLI("run", "--config", cfg, "--sources", "actioncenter", "--outputs", "splunk", "--timeout", "2s")
	if code != 4 || !strings.Contains(stderr, "stopped at its deadline") {
		t.Fatalf("hung output: exit %d\n%s\n%s", code, stdout, stderr)
	}
	t.Logf("HEC answering nothing, --timeout 2s: run ended after %s, exit %d; the next run succeeded", time.Since(start).Round(10*time.Millisecond), code)
	f.tenant.ClearInjected()
	if code, stdout, stderr := f.runCLI("run", "--config", cfg, "--sources", "actioncenter", "--outputs", "splunk"); code != 0 {
		t.Fatalf("after the hung output: exit %d\n%s\n%s", code, stdout, stderr)
	}
}

// TestTenantMismatchIsRefused: records are labelled with tenant_id, so a
// portal session of another tenant stops the run before anything is read.
func TestTenantMismatchIsRefused(t *testing.T) {
	f := newFixture(t, sim.Options{Seed: 63})
	cfg := f.writeConfig("tenant", "")
	body := strings.Replace(readFile(t, cfg), "tenant_id: \""+f.tenant.TenantID()+"\"\nstate_file", "tenant_id: \"11111111-2222-3333-4444-555555555555\"\nstate_file", 1)
	if body == readFile(t, cfg) {
		t.Fatal("the test could not change tenant_id in the written config")
	}
	mustWrite(t, cfg, []byte(body), 0o600)
	code, stdout, stderr := f.runCLI("run", "--config", cfg, "--sources", "actioncenter,featuresettings")
	if code == 0 || !strings.Contains(stderr, f.tenant.TenantID()) || !strings.Contains(stderr, "11111111-2222-3333-4444-555555555555") {
		t.Fatalf("wrong tenant: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if n := len(readOutput(t, filepath.Join(f.dir, "tenant-out"))); n != 0 {
		t.Fatalf("%d records were written under the wrong tenant", n)
	}
}

// TestBackfillReadsOnlyWhatIsMissing: a backfill over time partly
// harvested delivers only the missing part (nothing again, however old),
// and --redeliver --output re-sends on purpose to one output only.
func TestBackfillReadsOnlyWhatIsMissing(t *testing.T) {
	f := newFixture(t, sim.Options{Seed: 64, History: 5 * 24 * time.Hour})
	cfg := f.writeConfig("fill", "")
	out := filepath.Join(f.dir, "fill-out")
	args := []string{"run", "--config", cfg, "--sources", "actioncenter,executedqueries", "--outputs", "files,splunk"}
	if code, stdout, stderr := f.runCLI(args...); code != 0 {
		t.Fatalf("first run: %d\n%s\n%s", code, stdout, stderr)
	}
	first := len(readOutput(t, out))
	// Three days back: the first day is covered, two are missing.
	if code, stdout, stderr := f.runCLI(append(args, "--lookback", "72h")...); code != 0 {
		t.Fatalf("backfill: %d\n%s\n%s", code, stdout, stderr)
	}
	lines := readOutput(t, out)
	if len(lines) <= first || duplicates(lines) != 0 {
		t.Fatalf("backfill: %d records before, %d after, %d duplicates", first, len(lines), duplicates(lines))
	}
	want := 0
	for _, ds := range []string{"actioncenter", "executedqueries"} {
		ev, err := f.tenant.Events(ds, f.clock.Now().Add(-72*time.Hour), f.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		want += len(ev)
	}
	if len(lines) != want {
		t.Fatalf("after the backfill the output holds %d records; the emulator has %d in the 72 h", len(lines), want)
	}
	// A wider backfill later reads only the new gap; a repeat reads nothing.
	for _, lb := range []string{"96h", "96h"} {
		if code, stdout, stderr := f.runCLI(append(args, "--lookback", lb)...); code != 0 {
			t.Fatalf("backfill %s: %d\n%s\n%s", lb, code, stdout, stderr)
		}
	}
	lines = readOutput(t, out)
	if d := duplicates(lines); d != 0 {
		t.Fatalf("%d duplicates after repeated backfills beyond the seen-id retention", d)
	}
	splunkBefore := f.tenant.Received(sim.ReceiverSplunk).Unique
	// Re-send the last 6 hours to Splunk only.
	code, stdout, stderr := f.runCLI(append(args, "--redeliver", "--lookback", "6h", "--output", "splunk")...)
	if code != 0 {
		t.Fatalf("redeliver: %d\n%s\n%s", code, stdout, stderr)
	}
	if n := len(readOutput(t, out)); n != len(lines) {
		t.Fatalf("the files output got %d records from a redelivery to splunk only", n-len(lines))
	}
	st := f.tenant.Received(sim.ReceiverSplunk)
	if st.Unique != splunkBefore || st.Duplicates == 0 {
		t.Fatalf("splunk after redelivery: %d unique (before %d), %d duplicates", st.Unique, splunkBefore, st.Duplicates)
	}
	t.Logf("24 h harvested (%d records), backfill to 72 h and twice to 96 h: %d records, 0 duplicates; --redeliver 6h to splunk only: %d re-sent, files unchanged",
		first, len(lines), st.Duplicates)
}

// TestDoctorMarksRiskySettings: TLS verification switched off for an
// output is a problem doctor fails on; a setting that is only risky (the
// emulator address of these tests) is shown as a warning without failing.
func TestDoctorMarksRiskySettings(t *testing.T) {
	f := newFixture(t, sim.Options{Seed: 65})
	cfg := f.writeConfig("doc", "")
	code, stdout, stderr := f.runCLI("doctor", "--config", cfg, "--sources", "featuresettings")
	if code != 0 || !strings.Contains(stdout, "warning") || !strings.Contains(stdout, "emulator.address") {
		t.Fatalf("doctor with only warnings: exit %d\n%s\n%s", code, stdout, stderr)
	}
	body := strings.Replace(readFile(t, cfg), "  splunk:\n    enabled: false\n", "  splunk:\n    enabled: true\n    insecure_skip_verify: true\n", 1)
	if body == readFile(t, cfg) {
		t.Fatal("the test could not switch on the splunk output")
	}
	mustWrite(t, cfg, []byte(body), 0o600)
	code, stdout, stderr = f.runCLI("doctor", "--config", cfg, "--sources", "featuresettings")
	if code == 0 {
		t.Fatalf("doctor passed with TLS verification off for splunk:\n%s\n%s", stdout, stderr)
	}
	found := false
	for _, l := range strings.Split(stdout, "\n") {
		if strings.Contains(l, "output splunk") && strings.Contains(l, "FAIL") && strings.Contains(l, "insecure_skip_verify") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no failing row names insecure_skip_verify:\n%s", stdout)
	}
}

// TestDeadLettersExitThreeAndSayWhere: one record HEC refuses for its own
// content is dead-lettered (the others are delivered), and the run exits 3
// saying how many and where — a dead letter is never a quiet success.
func TestDeadLettersExitThreeAndSayWhere(t *testing.T) {
	// Record ids are stable: a harvest of the same emulated tenant into
	// files names the record to refuse.
	ref := newFixture(t, sim.Options{Seed: 66})
	if code, out, errs := ref.runCLI("run", "--config", ref.writeConfig("ref", ""), "--sources", "actioncenter"); code != 0 {
		t.Fatalf("reference run: %d\n%s\n%s", code, out, errs)
	}
	lines := readOutput(t, filepath.Join(ref.dir, "ref-out"))
	if len(lines) < 2 {
		t.Fatalf("need at least two records, got %d", len(lines))
	}
	bad := lines[len(lines)/2].RecordID

	f := newFixture(t, sim.Options{Seed: 66})
	f.tenant.SetHECInvalidEvents(bad)
	cfg := patchOutput(t, f.writeConfig("dl", ""), "splunk", fastRetries)
	code, stdout, stderr := f.runCLI("run", "--config", cfg, "--sources", "actioncenter", "--outputs", "splunk")
	if code != 3 {
		t.Fatalf("exit %d, want 3 (dead letters)\n%s\n%s", code, stdout, stderr)
	}
	dl := deadLetterFiles(t, f.dir)
	if len(dl) != 1 || !strings.Contains(stderr, "1 record(s)") || !strings.Contains(stderr, filepath.Dir(dl[0])) {
		t.Fatalf("dead letters %v; the run must say how many and where:\n%s", dl, stderr)
	}
	if !strings.Contains(readFile(t, dl[0]), bad) {
		t.Fatal("the dead-letter file does not hold the refused record")
	}
	ids := f.tenant.Received(sim.ReceiverSplunk).IDs()
	if ids[bad] != 0 || len(ids) != len(lines)-1 {
		t.Fatalf("splunk holds %d records (refused one: %d), want the %d others", len(ids), ids[bad], len(lines)-1)
	}
}

// TestSkewedServicesLoseNothing: the emulated services run 20 minutes
// behind this machine. With an overlap shorter than the skew, windows on
// our clock would pass events the services stamp later; the run measures
// the skew from the Date headers, says so, and follows their clock.
func TestSkewedServicesLoseNothing(t *testing.T) {
	const skew = -20 * time.Minute
	f := newFixture(t, sim.Options{Seed: 67, ClockSkew: skew})
	cfg := f.writeConfig("skew", "  actioncenter:\n    overlap: 1m\n    delay: 0s\n") // under sources:
	start := f.clock.Now()
	var warned bool
	for i := 0; i < 7; i++ {
		code, stdout, stderr := f.runCLI("run", "--config", cfg, "--sources", "actioncenter")
		if code != 0 {
			t.Fatalf("run %d: exit %d\n%s\n%s", i, code, stdout, stderr)
		}
		warned = warned || strings.Contains(stderr, "clock differs")
		f.clock.Advance(10 * time.Minute)
	}
	if !warned {
		t.Error("a 20-minute skew was not reported")
	}
	end := f.clock.Now().Add(-10 * time.Minute).Add(skew) // the services' now at the last run
	want, err := f.tenant.Events("actioncenter", start.Add(skew).Add(-24*time.Hour), end)
	if err != nil {
		t.Fatal(err)
	}
	got := readOutput(t, filepath.Join(f.dir, "skew-out"))
	if len(got) != len(want) || duplicates(got) != 0 {
		t.Fatalf("harvested %d records (%d duplicates); the services hold %d in the range", len(got), duplicates(got), len(want))
	}
	t.Logf("services 20 min behind, overlap 1 min, 7 runs: %d records, 0 lost, skew reported", len(got))
}
