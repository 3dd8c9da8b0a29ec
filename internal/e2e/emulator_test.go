package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/cli"
	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/sim"
)

// Page clamps below every page size the harvester asks for (Action Center
// 200, custom detections 10000, device list 100, timeline 1000, machine
// actions 1000; library files send no $top) and equal to none of them.
var e2eClamps = map[string]int{
	sim.RouteActionCenter: 37, sim.RouteRules: 3, sim.RouteMachines: 4,
	sim.RouteTimeline: 53, sim.RouteMachineActions: 41, sim.RouteLibraryFiles: 2,
}

// TestPageClampGivesTheSameHarvest: a service that serves fewer rows per
// page than asked (on every paged route) must not cost a single record.
// The same tenant is harvested unclamped and clamped; every table must
// hold the same record ids.
func TestPageClampGivesTheSameHarvest(t *testing.T) {
	run := func(name string, opts sim.Options) (map[string]map[string]bool, *fixture) {
		f := newFixture(t, opts)
		cfg := f.writeConfig(name, "")
		if code, stdout, stderr := f.runCLI("run", "--config", cfg); code != 0 {
			t.Fatalf("%s run exit %d\n%s\n%s", name, code, stdout, stderr)
		}
		byTable := map[string]map[string]bool{}
		for _, l := range readOutput(t, filepath.Join(f.dir, name+"-out")) {
			if byTable[l.Table] == nil {
				byTable[l.Table] = map[string]bool{}
			}
			byTable[l.Table][l.RecordID] = true
		}
		return byTable, f
	}
	clean, cf := run("clean", sim.Options{Seed: 31})
	clamped, kf := run("clamped", sim.Options{Seed: 31, PageClamp: e2eClamps})
	// The clamp must have bitten: smaller pages mean more requests.
	if c, k := cf.tenant.RequestCount(sim.FamilyPortal)+cf.tenant.RequestCount(sim.FamilyPublic),
		kf.tenant.RequestCount(sim.FamilyPortal)+kf.tenant.RequestCount(sim.FamilyPublic); k <= c {
		t.Fatalf("the clamped harvest made %d requests, the clean one %d: the clamp did not apply", k, c)
	} else {
		t.Logf("requests: %d clean, %d clamped", c, k)
	}
	for _, table := range allTables {
		want, got := clean[table], clamped[table]
		if len(want) == 0 {
			t.Errorf("%s: empty in the clean harvest", table)
			continue
		}
		missing, extra := 0, 0
		for id := range want {
			if !got[id] {
				missing++
			}
		}
		for id := range got {
			if !want[id] {
				extra++
			}
		}
		if missing+extra > 0 {
			t.Errorf("%s: under the page clamp %d of %d records are missing and %d are extra", table, missing, len(want), extra)
		}
	}
}

// Sources whose events arrive late, their tables and the fields that
// identify one record in both the output and the emulator's ground truth.
var lagged = []struct {
	dataset, source, table string
	key                    func(map[string]any) string
}{
	{"actioncenter", "actioncenter", "MdeMachineActions", func(m map[string]any) string {
		return fmt.Sprint(m["ActionId"], "|", m["EventTime"], "|", m["ActionStatus"])
	}},
	{"machineactions", "machineactions", "MdeMachineActionsApi", func(m map[string]any) string {
		return fmt.Sprint(m["id"], "|", m["lastUpdateDateTimeUtc"], "|", m["status"])
	}},
	{"executedqueries", "executedqueries", "MdeExecutedQueries", func(m map[string]any) string { return fmt.Sprint(m["QueryId"]) }},
	{"timeline", "timeline", "MdeTimeline", func(m map[string]any) string {
		mach, _ := m["Machine"].(map[string]any)
		return fmt.Sprintf("%v|%.0f", mach["MachineId"], m["ReportId"])
	}},
}

// truth returns the emulator's records of a lagged data set (every
// machine's timeline for "timeline") in [from, to), by key.
func truth(t *testing.T, f *fixture, dataset string, key func(map[string]any) string, from, to time.Time) map[string]bool {
	t.Helper()
	sets := []string{dataset}
	if dataset == "timeline" {
		sets = nil
		for _, id := range f.tenant.MachineIDs() {
			sets = append(sets, "timeline:"+id)
		}
	}
	out := map[string]bool{}
	for _, ds := range sets {
		evs, err := f.tenant.Events(ds, from, to)
		if err != nil {
			t.Fatal(err)
		}
		for _, raw := range evs {
			var m map[string]any
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			out[key(m)] = true
		}
	}
	return out
}

// lagConfig writes a config whose lagged sources use delay and overlap.
func lagConfig(t *testing.T, f *fixture, name string, delay, overlap time.Duration) string {
	t.Helper()
	p := f.writeConfig(name, "")
	var b strings.Builder
	b.WriteString("sources:\n")
	for _, s := range lagged {
		fmt.Fprintf(&b, "  %s:\n    delay: %s\n    overlap: %s\n", s.source, delay, overlap)
		if s.source == "timeline" {
			b.WriteString("    machines: [all]\n")
		}
	}
	body := readFile(t, p)
	if !strings.Contains(body, "sources:\n  timeline:\n    machines: [all]\n") {
		t.Fatalf("the written config changed shape; adapt lagConfig:\n%s", body)
	}
	mustWrite(t, p, []byte(strings.Replace(body, "sources:\n  timeline:\n    machines: [all]\n", b.String(), 1)), 0o600)
	return p
}

// TestIngestionLagUpToDelayPlusOverlapLosesNothing: events show up to
// delay + overlap after their timestamp. Runs every ten minutes must
// together deliver every event the emulator holds, although many were not
// visible yet when the run whose window they belong to read it. A harvest
// with neither delay nor overlap, run alongside, shows that the lag bites.
func TestIngestionLagUpToDelayPlusOverlapLosesNothing(t *testing.T) {
	const delay, overlap = 5 * time.Minute, 10 * time.Minute
	f := newFixture(t, sim.Options{Seed: 61, IngestionLag: delay + overlap, Machines: 4})
	cfg := lagConfig(t, f, "lag", delay, overlap)
	naive := lagConfig(t, f, "naive", 0, 0)
	sources := make([]string, len(lagged))
	for i, s := range lagged {
		sources[i] = s.source
	}
	start := f.clock.Now()
	late := map[string]int{} // per data set: events inside a run's window not yet visible to it
	var runs []time.Time
	for i := 0; i < 31; i++ { // five hours, a run every ten minutes
		now := f.clock.Now()
		runs = append(runs, now)
		for _, s := range lagged {
			if i > 0 {
				// What this run can see of the window the previous run left open.
				seen := truth(t, f, s.dataset, s.key, runs[i-1].Add(-delay), now.Add(-delay))
				f.clock.Set(now.Add(delay + overlap))
				all := truth(t, f, s.dataset, s.key, runs[i-1].Add(-delay), now.Add(-delay))
				f.clock.Set(now)
				for k := range all {
					if !seen[k] {
						late[s.dataset]++
					}
				}
			}
		}
		for _, c := range []string{cfg, naive} {
			if code, out, errs := f.runCLI("run", "--config", c, "--sources", strings.Join(sources, ",")); code != 0 {
				t.Fatalf("run %d at %s (%s): exit %d\n%s\n%s", i, now.Format(time.TimeOnly), filepath.Base(c), code, out, errs)
			}
		}
		f.clock.Advance(10 * time.Minute)
	}
	last := runs[len(runs)-1]
	// Everything with a time before the last run's window minus the overlap
	// was visible to some run by then; compare once all of it is visible.
	from, to := start.Add(-23*time.Hour), last.Add(-delay-overlap)
	f.clock.Set(last.Add(delay + overlap))
	got := map[string]map[string]bool{}
	for _, dir := range []string{"lag-out", "naive-out"} {
		lines := readOutput(t, filepath.Join(f.dir, dir))
		if d := duplicates(lines); d != 0 {
			t.Errorf("%s: %d duplicate records across runs", dir, d)
		}
		for _, l := range lines {
			for _, s := range lagged {
				if l.Table == s.table {
					k := dir + "/" + s.dataset
					if got[k] == nil {
						got[k] = map[string]bool{}
					}
					got[k][s.key(l.raw)] = true
				}
			}
		}
	}
	naiveLost := 0
	for _, s := range lagged {
		want := truth(t, f, s.dataset, s.key, from, to)
		if len(want) == 0 || late[s.dataset] == 0 {
			t.Fatalf("%s: %d events, %d arrived late: the test proves nothing", s.dataset, len(want), late[s.dataset])
		}
		lost := 0
		for k := range want {
			if !got["lag-out/"+s.dataset][k] {
				lost++
			}
			if !got["naive-out/"+s.dataset][k] {
				naiveLost++
			}
		}
		if lost > 0 {
			t.Errorf("%s: %d of %d events lost with delay %s + overlap %s at a lag of up to %s (%d arrived after their window was read)",
				s.dataset, lost, len(want), delay, overlap, delay+overlap, late[s.dataset])
		}
		t.Logf("%s: %d events, %d arrived after their window was first read", s.dataset, len(want), late[s.dataset])
	}
	if naiveLost == 0 {
		t.Error("the harvest without delay and overlap lost nothing: the emulated lag does not bite")
	}
	t.Logf("without delay and overlap %d events were lost", naiveLost)
}

// TestOriginalMachineActionsCommandLine: the original tool's machine-actions
// call — $filter on lastUpdateDateTimeUtc, which the documentation omits —
// works against the emulator, byte for byte as the 2023 tool sent it; and
// the harvester's drop-in for its command line harvests the same actions
// on that filter, without falling back to re-reading by creation time.
func TestOriginalMachineActionsCommandLine(t *testing.T) {
	f := newFixture(t, sim.Options{Seed: 47})
	rt, err := mde.NewTransport(mde.TransportOptions{EmulatorAddress: f.srv.Addr(), EmulatorCAPEM: f.tenant.CACertPEM()})
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: rt}
	cred := f.tenant.Credentials()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	postJSON(t, hc, "https://login.microsoftonline.com/"+cred.TenantID+"/oauth2/v2.0/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {cred.LegacyClientID}, "client_secret": {cred.LegacyClientSecret},
		"scope": {"https://securitycenter.microsoft.com/mtp/.default"}}, &tok)

	// The original: from = now − lookback in the machine's zone, RFC 3339
	// with nanoseconds, url.QueryEscape'd; no nextLink handling.
	now := f.clock.Now()
	from := now.Add(-2 * time.Hour).In(time.FixedZone("CET", 3600))
	req, _ := http.NewRequest(http.MethodGet, "https://api-eu.securitycenter.windows.com/api/machineactions?$filter="+
		url.QueryEscape("lastUpdateDateTimeUtc ge "+from.Format(time.RFC3339Nano)), nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the original's request: %d %s", resp.StatusCode, body)
	}
	var page struct {
		Value []map[string]any `json:"value"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatal(err)
	}
	key := lagged[1].key
	want := truth(t, f, "machineactions", key, from, now.Add(time.Nanosecond))
	if len(want) == 0 || len(page.Value) != len(want) {
		t.Fatalf("the original's request got %d actions, the emulator has %d updated in the last 2 hours", len(page.Value), len(want))
	}
	for _, m := range page.Value {
		if !want[key(m)] {
			t.Fatalf("the original's request got %v, not an action updated since %s", key(m), from)
		}
	}

	// The drop-in, as a user of the original types it (legacy hosts).
	cfg := f.writeConfig("orig", "")
	var outb, errb strings.Builder
	env := &cliEnv{vars: map[string]string{"DH_CONFIG": cfg}}
	if code := env.run(f, &outb, &errb, "-machineactions", "-lookback", "2", "-accesstoken", tok.AccessToken, "-location", "weu", "-files"); code != 0 {
		t.Fatalf("-machineactions: exit %d\n%s\n%s", code, outb.String(), errb.String())
	}
	if strings.Contains(errb.String(), "refused $filter") {
		t.Fatalf("the harvester fell back to reading by creation time although the service takes the filter:\n%s", errb.String())
	}
	got := map[string]bool{}
	counts := map[string]int{}
	for _, l := range readOutput(t, filepath.Join(f.dir, "orig-out")) {
		counts[l.Table]++
		if l.Table == "MdeMachineActionsApi" {
			got[key(l.raw)] = true
		}
	}
	if counts["MdeMachineActions"] == 0 {
		t.Errorf("-machineactions wrote no Action Center history:\n%s", outb.String())
	}
	// The source trails now by its delay (2m by default).
	for k := range truth(t, f, "machineactions", key, from, now.Add(-2*time.Minute)) {
		if !got[k] {
			t.Errorf("-machineactions missed %s", k)
		}
	}
}

// lockedBuffer collects what the emulator's goroutines print.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSimulateReliabilityFlags runs `simulate` as a user would with the
// page clamp, lag, skew and request log flags; bad values are refused with
// the flag named and nothing started.
func TestSimulateReliabilityFlags(t *testing.T) {
	for _, bad := range [][]string{
		{"--page-clamp", "devices=5"}, {"--page-clamp", "timeline=0"},
		{"--ingestion-lag", "5h"}, {"--ingestion-lag", "-5m"}, {"--clock-skew", "5"},
	} {
		var errb bytes.Buffer
		env := &cli.Env{Stdout: io.Discard, Stderr: &errb, Getenv: func(string) string { return "" }, Now: time.Now}
		code := cli.Main(context.Background(), env, append([]string{"simulate", "--listen", "127.0.0.1:0", "--plain"}, bad...))
		if code != 2 || !strings.Contains(errb.String(), strings.TrimPrefix(bad[0], "--")[:5]) {
			t.Errorf("simulate %v: exit %d, %q; want exit 2 naming the flag", bad, code, errb.String())
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	var errb lockedBuffer
	env := &cli.Env{Stdout: pw, Stderr: &errb, Getenv: func(string) string { return "" }, Now: time.Now}
	done := make(chan int, 1)
	go func() {
		done <- cli.Main(ctx, env, []string{"simulate", "--listen", "127.0.0.1:0", "--plain", "--machines", "9",
			"--page-clamp", "machines=4", "--ingestion-lag", "10m", "--clock-skew", "-3m", "--log-requests"})
		pw.Close()
	}()
	first, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("no first line from simulate: %v", err)
	}
	go io.Copy(io.Discard, pr)
	var info sim.Info
	if err := json.Unmarshal([]byte(first), &info); err != nil {
		t.Fatalf("first line: %v", err)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+info.Address+"/apiproxy/mtp/ndr/machines?pageSize=100", nil)
	req.Host = "security.microsoft.com"
	req.Header.Set("Cookie", cli.PortalCookieHeader(info.SccAuth, info.XSRFToken))
	req.Header.Set("X-XSRF-TOKEN", info.XSRFToken)
	asked := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var machines []map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&machines)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(machines) != 4 {
		t.Fatalf("device list: %d with %d rows, want 200 and the clamp's 4", resp.StatusCode, len(machines))
	}
	date, err := http.ParseTime(resp.Header.Get("Date"))
	if skew := date.Sub(asked); err != nil || skew > -2*time.Minute || skew < -4*time.Minute {
		t.Fatalf("Date %q is %s off this machine's clock, want about -3m", resp.Header.Get("Date"), skew)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("simulate exited %d", code)
	}
	var logLine string
	for _, l := range strings.Split(errb.String(), "\n") {
		if strings.Contains(l, " GET security.microsoft.com /apiproxy/mtp/ndr/machines ") {
			logLine = l
		}
	}
	if !strings.Contains(logLine, "query=pageSize status=200 bytes=") || !strings.Contains(logLine, "duration=") {
		t.Fatalf("no request log line for the device list:\n%s", errb.String())
	}
	for name, secret := range map[string]string{"sccauth": info.SccAuth, "XSRF token": info.XSRFToken, "client secret": info.ClientSecret} {
		if strings.Contains(errb.String(), secret) {
			t.Errorf("simulate's stderr holds the %s", name)
		}
	}
}
