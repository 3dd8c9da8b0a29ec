package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/pipeline"
	"github.com/defenderharvester/defenderharvester/internal/sim"
)

// fastRetries keeps the network outputs' retry waits short in tests.
const fastRetries = `
    delivery:
      initial_backoff: 5ms
      max_backoff: 50ms
      max_attempts: 4
`

// idsIn returns table/RecordId → count for the files of a run.
func idsIn(t *testing.T, dir string) map[string]int {
	out := map[string]int{}
	for _, l := range readOutput(t, dir) {
		out[l.RecordID]++
	}
	return out
}

// assertReceived checks a receiver holds every RecordId the files hold,
// and nothing else; it returns the receiver's duplicate count.
func assertReceived(t *testing.T, f *fixture, receiver string, want map[string]int) int {
	t.Helper()
	st := f.tenant.Received(receiver)
	got := st.IDs()
	for id := range want {
		if got[id] == 0 {
			t.Fatalf("%s is missing record %s (it has %d unique of %d)", receiver, id, st.Unique, len(want))
		}
	}
	if st.Unique != len(want) {
		t.Fatalf("%s holds %d unique records, the files %d", receiver, st.Unique, len(want))
	}
	if st.NoID != 0 {
		t.Fatalf("%s accepted %d records without a RecordId", receiver, st.NoID)
	}
	return st.Duplicates
}

// TestEveryRecordReachesEveryOutput: files, Sentinel and Splunk receive the
// same records, each once; a second run adds nothing anywhere.
func TestEveryRecordReachesEveryOutput(t *testing.T) {
	f := newFixture(t, sim.Options{Seed: 31})
	cfg := f.writeConfig("all3", "")
	for i := 0; i < 2; i++ {
		if code, out, errs := f.runCLI("run", "--config", cfg, "--outputs", "files,sentinel,splunk"); code != 0 {
			t.Fatalf("run %d exit %d\n%s\n%s", i+1, code, out, errs)
		}
	}
	want := idsIn(t, filepath.Join(f.dir, "all3-out"))
	if len(want) < 1000 {
		t.Fatalf("only %d records; the test needs more", len(want))
	}
	for _, r := range []string{sim.ReceiverSentinel, sim.ReceiverSplunk} {
		if d := assertReceived(t, f, r, want); d != 0 {
			t.Errorf("%s received %d duplicates in two clean runs", r, d)
		}
		if st := f.tenant.Received(r); st.MaxRequestBytes > 1_048_576 {
			t.Errorf("%s got a request of %d bytes; the limit is 1 MB", r, st.MaxRequestBytes)
		}
	}
}

// TestReceiverOutageMidRun takes Splunk down after its third request: files
// and Sentinel still get everything, Splunk's share waits in the spool, the
// run says so and exits 1, and the next run (Splunk back) delivers it.
func TestReceiverOutageMidRun(t *testing.T) {
	f := newFixture(t, sim.Options{Seed: 32})
	cfg := f.writeConfig("outage", "")
	cfg = patchOutputs(t, cfg, fastRetries)
	// Connections reset from Splunk's fourth request on, until cleared.
	f.tenant.Inject(sim.FaultRule{Family: sim.ReceiverSplunk, Kind: sim.FaultReset, After: 3, Count: 1 << 20})
	code, out, errs := f.runCLI("run", "--config", cfg, "--outputs", "files,sentinel,splunk")
	if code != 1 || !strings.Contains(out, "output splunk") || !strings.Contains(errs, "spool") {
		t.Fatalf("an output outage must be reported and exit 1; got %d\n%s\n%s", code, out, errs)
	}
	want := idsIn(t, filepath.Join(f.dir, "outage-out"))
	if d := assertReceived(t, f, sim.ReceiverSentinel, want); d != 0 {
		t.Errorf("sentinel got %d duplicates", d)
	}
	if st := f.tenant.Received(sim.ReceiverSplunk); st.Unique >= len(want) {
		t.Fatalf("splunk got everything although it was down (%d of %d)", st.Unique, len(want))
	}

	f.tenant.ClearInjected()
	code, out, errs = f.runCLI("run", "--config", cfg, "--outputs", "files,sentinel,splunk")
	if code != 0 {
		t.Fatalf("run after the outage: exit %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(out, "delivered from spool") {
		t.Errorf("the summary does not say the spool was delivered:\n%s", out)
	}
	if d := assertReceived(t, f, sim.ReceiverSplunk, want); d > pipeline.DefaultBatchSize {
		t.Errorf("splunk got %d duplicates after the outage; at most the batch in flight is allowed", d)
	}
}

// TestChaosLosesNothing fails a share of the receivers' calls (429, 500,
// 503, resets): every record still arrives.
func TestChaosLosesNothing(t *testing.T) {
	faults, err := sim.ParseFaults("sentinel:chaos=0.25,splunk:chaos=0.25")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, sim.Options{Seed: 33, Faults: faults})
	// Besides the random share, a few certain failures, so the test never
	// depends on the dice.
	f.tenant.Inject(sim.FaultRule{Family: sim.ReceiverSentinel, Kind: sim.Fault429, Count: 2, RetryAfter: time.Millisecond})
	f.tenant.Inject(sim.FaultRule{Family: sim.ReceiverSplunk, Kind: sim.Fault503, Count: 2})
	cfg := patchOutputs(t, f.writeConfig("chaos", ""), strings.Replace(fastRetries, "max_attempts: 4", "max_attempts: 20", 1))
	if code, out, errs := f.runCLI("run", "--config", cfg, "--outputs", "files,sentinel,splunk"); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	want := idsIn(t, filepath.Join(f.dir, "chaos-out"))
	for _, r := range []string{sim.ReceiverSentinel, sim.ReceiverSplunk} {
		d := assertReceived(t, f, r, want)
		rej := f.tenant.Received(r).Rejected
		if len(rej) == 0 {
			t.Errorf("%s rejected nothing: the chaos was not applied", r)
		}
		t.Logf("%s: %d duplicates, rejected by status %v", r, d, rej)
	}
}

// patchOutputs adds settings under both network outputs in a config file.
func patchOutputs(t *testing.T, path, settings string) string {
	t.Helper()
	patchOutput(t, path, "splunk", settings)
	return patchOutput(t, path, "sentinel", settings)
}

// patchOutput adds settings under one output of a config file.
func patchOutput(t *testing.T, path, output, settings string) string {
	t.Helper()
	b := readFile(t, path)
	s := strings.Replace(b, "  "+output+":\n", "  "+output+":"+settings, 1)
	mustWrite(t, path, []byte(s), 0o600)
	return path
}

// TestOutputDownAtStart: Splunk is unreachable before the run begins. The
// run still harvests into files and Sentinel, keeps Splunk's share in its
// spool, exits 1 naming Splunk; once Splunk is back, the spool drains.
func TestOutputDownAtStart(t *testing.T) {
	f := newFixture(t, sim.Options{Seed: 34})
	cfg := patchOutputs(t, f.writeConfig("downstart", ""), fastRetries)
	f.tenant.SetReceiverDown(sim.ReceiverSplunk, true)
	code, out, errs := f.runCLI("run", "--config", cfg, "--outputs", "files,sentinel,splunk")
	if code != 1 || !strings.Contains(out, "output splunk") || !strings.Contains(out, "cannot start") {
		t.Fatalf("want exit 1 naming the output that could not start; got %d\n%s\n%s", code, out, errs)
	}
	want := idsIn(t, filepath.Join(f.dir, "downstart-out"))
	if len(want) == 0 {
		t.Fatal("nothing harvested while one output was down")
	}
	assertReceived(t, f, sim.ReceiverSentinel, want)
	f.tenant.SetReceiverDown(sim.ReceiverSplunk, false)
	if code, out, errs := f.runCLI("run", "--config", cfg, "--outputs", "files,sentinel,splunk"); code != 0 {
		t.Fatalf("after the outage: exit %d\n%s\n%s", code, out, errs)
	}
	if d := assertReceived(t, f, sim.ReceiverSplunk, want); d != 0 {
		t.Errorf("splunk got %d duplicates; it received nothing before its spool", d)
	}
}

// TestSentinelTimeRangeLimit: with the Logs Ingestion limit on the time
// range of one call switched on in the emulator, a day's harvest still
// arrives whole — and the emulator really refuses calls that break it.
func TestSentinelTimeRangeLimit(t *testing.T) {
	f := newFixture(t, sim.Options{Seed: 35, LogsIngestionMaxSpan: 30 * time.Minute})
	cfg := f.writeConfig("span", "")
	if code, out, errs := f.runCLI("run", "--config", cfg, "--outputs", "files,sentinel", "--sources", "actioncenter,executedqueries"); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	want := idsIn(t, filepath.Join(f.dir, "span-out"))
	assertReceived(t, f, sim.ReceiverSentinel, want)
	if n := f.tenant.Received(sim.ReceiverSentinel).Rejected[400]; n != 0 {
		t.Fatalf("%d calls broke the 30-minute limit", n)
	}

	// Without the split the emulator refuses, and the run says so.
	off := patchOutput(t, f.writeConfig("nosplit", ""), "sentinel", "\n    max_time_span: 0s\n")
	code, out, errs := f.runCLI("run", "--config", off, "--outputs", "files,sentinel", "--sources", "actioncenter")
	if code == 0 || !strings.Contains(out, "RecordsTimeRangeIsMoreThan30Minutes") {
		t.Fatalf("the emulator accepted a call spanning a day (exit %d):\n%s\n%s", code, out, errs)
	}
}

// TestOriginalFlagsDeliverToSentinelAndSplunk: the original command line
// with -sentinel and -splunk reaches the new outputs — Splunk through the
// original's SplunkUri / SplunkToken variables, Sentinel through the
// config's outputs.sentinel (its old Data Collector variables are gone).
func TestOriginalFlagsDeliverToSentinelAndSplunk(t *testing.T) {
	f := newFixture(t, sim.Options{Seed: 36})
	cfg := f.writeConfig("orig", "")
	info := f.tenant.Info(f.srv)
	var outb, errb strings.Builder
	env := &cliEnv{vars: map[string]string{
		"DH_CONFIG":   cfg,
		"SplunkUri":   info.Splunk.URL,
		"SplunkToken": f.tenant.Credentials().HECToken,
	}}
	// The written config has a splunk section; drop it so the original's
	// variables are what configures Splunk.
	s := readFile(t, cfg)
	s = s[:strings.Index(s, "  splunk:\n")] + s[strings.Index(s, "sources:\n"):]
	mustWrite(t, cfg, []byte(s), 0o600)
	code := env.run(f, &outb, &errb, "-machineactions", "-customdetections", "-sentinel", "-splunk", "-lookback", "6")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, outb.String(), errb.String())
	}
	for _, r := range []string{sim.ReceiverSentinel, sim.ReceiverSplunk} {
		st := f.tenant.Received(r)
		if st.Unique == 0 || st.ByTable["MdeMachineActions"]+st.ByTable["Custom-MdeMachineActions"] == 0 {
			t.Errorf("%s received nothing from the original flags: %+v", r, st.ByTable)
		}
	}
	if strings.Contains(outb.String()+errb.String(), f.tenant.Credentials().HECToken) {
		t.Fatal("the HEC token was printed")
	}
}
