package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/cli"
	dhclock "github.com/defenderharvester/defenderharvester/internal/clock"
	"github.com/defenderharvester/defenderharvester/internal/config"
	"github.com/defenderharvester/defenderharvester/internal/harvester"
	"github.com/defenderharvester/defenderharvester/internal/schedule"
	"github.com/defenderharvester/defenderharvester/internal/service"
	"github.com/defenderharvester/defenderharvester/internal/sim"
	"github.com/defenderharvester/defenderharvester/internal/sim/simtest"
	"github.com/defenderharvester/defenderharvester/internal/source"
)

// multiFixture is an emulator serving several tenants and a config
// listing them, sharing one files output.
type multiFixture struct {
	*fixture
	infos []sim.TenantInfo
}

func newMultiFixture(t *testing.T, tenants int, now func() time.Time) *multiFixture {
	t.Helper()
	f := newFixture(t, sim.Options{Seed: 21, Tenants: tenants, Now: now, Machines: 2,
		History: 6 * time.Hour, TimelineHistory: time.Hour})
	return &multiFixture{fixture: f, infos: f.tenant.Tenants()}
}

// writeTenantsConfig writes a config listing every tenant (each with its
// own cookie and secret files) and harvesting only the named sources,
// with their schedules; swap gives tenant i the cookie of tenant j.
func (m *multiFixture) writeTenantsConfig(name string, schedules map[string]string, extra string, swap map[int]int) string {
	m.t.Helper()
	ca := m.ca
	var b strings.Builder
	fmt.Fprintf(&b, "emulator:\n  address: %s\n  ca_file: %s\n", m.srv.Addr(), ca)
	fmt.Fprintf(&b, "state_file: %s\n", filepath.Join(m.dir, name, "state.db"))
	fmt.Fprintf(&b, "http:\n  max_attempts: 1\nportal:\n  rate_per_second: 100\n")
	fmt.Fprintf(&b, "outputs:\n  files:\n    dir: %s\n", filepath.Join(m.dir, name+"-out"))
	b.WriteString("sources:\n")
	for _, f := range source.All() {
		if s, ok := schedules[f.Name]; ok {
			fmt.Fprintf(&b, "  %s:\n    schedule: %q\n", f.Name, s)
			continue
		}
		fmt.Fprintf(&b, "  %s:\n    enabled: false\n", f.Name)
	}
	b.WriteString(extra)
	b.WriteString("tenants:\n")
	for i, ti := range m.infos {
		cookieOf := ti
		if j, ok := swap[i]; ok {
			cookieOf = m.infos[j]
		}
		cookie := filepath.Join(m.dir, name+"-"+ti.Name+".cookie")
		secret := filepath.Join(m.dir, name+"-"+ti.Name+".secret")
		mustWrite(m.t, cookie, []byte(cli.PortalCookieHeader(cookieOf.SccAuth, cookieOf.XSRFToken)), 0o600)
		mustWrite(m.t, secret, []byte(ti.ClientSecret), 0o600)
		fmt.Fprintf(&b, "  - name: %s\n    tenant_id: %s\n    portal:\n      cookie_file: %s\n    public_api:\n      client_id: %s\n      client_secret_file: %s\n",
			ti.Name, ti.ID, cookie, ti.ClientID, secret)
	}
	p := filepath.Join(m.dir, name+".yaml")
	mustWrite(m.t, p, []byte(b.String()), 0o600)
	return p
}

// readTenantOutputs reads a files output shared by the tenants: each
// tenant writes into its own folder <dir>/<name>/, holding its records
// only; nothing is written beside them.
func (m *multiFixture) readTenantOutputs(dir string) []line {
	m.t.Helper()
	if loose, _ := filepath.Glob(filepath.Join(dir, "*.jsonl")); len(loose) > 0 {
		m.t.Errorf("files written outside the tenants' folders: %v", loose)
	}
	var all []line
	for _, ti := range m.infos {
		for _, l := range readOutput(m.t, filepath.Join(dir, ti.Name)) {
			if tid, _ := l.raw["TenantId"].(string); tid != ti.ID {
				m.t.Fatalf("%s's folder holds a record of tenant %s", ti.Name, tid)
			}
			all = append(all, l)
		}
	}
	return all
}

// firings records every firing the scheduler reports.
type firings struct {
	schedule.NopObserver
	mu  sync.Mutex
	all map[string][]schedule.Firing // tenant/source → firings
}

func (f *firings) Fired(fr schedule.Firing) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.all == nil {
		f.all = map[string][]schedule.Firing{}
	}
	k := fr.Tenant + "/" + fr.Source
	f.all[k] = append(f.all[k], fr)
}

// settle waits until every run fired so far has finished and the
// service is parked on its timers again (the scheduler's and each
// tenant's upkeep).
func settle(t *testing.T, fake *dhclock.Fake, svc *service.Service, timers int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		// Waiters first: the scheduler marks what it fires (Waiting)
		// before it re-arms its timer, so once the timers are back, a
		// status read after them sees every run fired meanwhile.
		parked := fake.Waiters() >= timers
		next, armed := fake.Next()
		busy := false
		for _, j := range svc.Status() {
			if j.Running || j.Waiting {
				busy = true
			}
			// A job added or re-planned after the scheduler armed its
			// timer: the timer is re-armed for it in a moment (on a busy
			// machine it can lag); moving the clock before would fire
			// the job late.
			if !j.Next.IsZero() && (!armed || j.Next.Before(next)) {
				busy = true
			}
		}
		if parked && !busy {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the service did not settle within a minute (waiters %d, want %d)", fake.Waiters(), timers)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// TestServeSimulatedDayThreeTenants is the "done when": serve,
// driven by a fake clock through a whole day against an emulator with
// three tenants, fires every schedule on time (5 min, hourly, daily, each
// shifted by its stable jitter), delivers each tenant's records once,
// exposes lag per tenant and source, and turns /readyz red when one
// tenant's source keeps failing — without touching the other tenants.
func TestServeSimulatedDayThreeTenants(t *testing.T) {
	if testing.Short() {
		t.Skip("a simulated day: about 1,000 runs")
	}
	// A day is about a thousand runs, each with its fsyncs (state and
	// files): on tmpfs they cost nothing, so the test measures the
	// scheduling, not the disk.
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		t.Setenv("TMPDIR", "/dev/shm")
	}
	start := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	fake := dhclock.NewFake(start)
	m := newMultiFixture(t, 3, fake.Now)
	// Machine actions every 15 minutes, not 5: the public API's client-side
	// limit (100 requests a minute) runs on the real clock, and a day
	// squeezed into seconds must stay within its burst.
	schedules := map[string]string{"machineactions": "15m", "featuresettings": "1h", "schema": "@daily"}
	cfgPath := m.writeTenantsConfig("day", schedules, "serve:\n  jitter: 2m\n  listen: 127.0.0.1:0\n", nil)
	cfg, err := config.Load(cfgPath, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	obs := &firings{}
	svc, err := service.New(service.Options{Config: cfg, Clock: fake, Now: fake.Now, UpkeepEvery: 5 * time.Minute,
		ScheduleObserver: obs, OwnerID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	// Tenant 2's public API fails from the start: its machine actions
	// fail every run, the other tenants' never.
	m.tenant.Tenant(1).Inject(sim.FaultRule{Family: sim.FamilyPublic, Kind: sim.Fault500, Count: 1 << 20})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// Every tenant opens (in real time) before the clock moves.
	for deadline := time.Now().Add(time.Minute); len(svc.Status()) < len(m.infos)*len(schedules); {
		if time.Now().After(deadline) {
			t.Fatalf("only %d jobs scheduled after a minute", len(svc.Status()))
		}
		time.Sleep(time.Millisecond)
	}
	timers := 1 + len(m.infos) // the scheduler's and each tenant's upkeep
	settle(t, fake, svc, timers)
	end := start.Add(24 * time.Hour)
	for {
		next, ok := fake.Next()
		if !ok || !next.Before(end) {
			break
		}
		fake.Set(next)
		settle(t, fake, svc, timers)
	}

	base := "http://" + svc.Addr()
	// /metrics: lag per tenant and source.
	_, metricsText := simtest.Get(t, base+"/metrics")
	for _, ti := range m.infos {
		want := fmt.Sprintf(`defenderharvester_source_lag_seconds{source="featuresettings",tenant="%s"}`, ti.Name)
		if !strings.Contains(metricsText, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// /readyz names the failing tenant's source, and only it.
	code, body := simtest.Get(t, base+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "tenant-2") || !strings.Contains(body, "machineactions") {
		t.Errorf("/readyz = %d %q, want 503 naming tenant-2's machineactions", code, body)
	}
	if strings.Contains(body, "tenant-1") || strings.Contains(body, "tenant-3") {
		t.Errorf("/readyz blames a healthy tenant: %q", body)
	}

	// The service's /state, just before it stops…
	_, served := simtest.Get(t, base+"/state")
	if err := svc.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	// …and `state show` once it stopped agree with the runs: tenant 2's
	// machine actions failed every run and never got a cursor; every
	// other source ran at the end of the day without a failure.
	code, shown, errs := m.runCLI("state", "show", "--config", cfgPath, "--json")
	if code != 0 {
		t.Fatalf("state show: exit %d: %s", code, errs)
	}
	var fromService, fromTool harvester.StateDoc
	if err := json.Unmarshal([]byte(served), &fromService); err != nil {
		t.Fatalf("/state: %v: %s", err, served)
	}
	if err := json.Unmarshal([]byte(shown), &fromTool); err != nil {
		t.Fatalf("state show --json: %v: %s", err, shown)
	}
	lastDue := map[string]time.Time{}
	for k, fs := range obs.all {
		lastDue[k] = fs[len(fs)-1].Due
	}
	for _, doc := range []harvester.StateDoc{fromService, fromTool} {
		if len(doc.Tenants) != len(m.infos) {
			t.Fatalf("state lists %d tenants, want %d", len(doc.Tenants), len(m.infos))
		}
		for _, ts := range doc.Tenants {
			for _, ss := range ts.Sources {
				if _, scheduled := schedules[ss.Source]; !scheduled {
					continue
				}
				k := ts.Tenant + "/" + ss.Source
				failing := ts.Tenant == "tenant-2" && ss.Source == "machineactions"
				switch {
				case failing && (ss.Failures < 3 || ss.Cursor != nil || !strings.Contains(ss.LastError, "500")):
					t.Errorf("%s: failures %d, cursor %v, last error %q; want every run failed with the 500", k, ss.Failures, ss.Cursor, ss.LastError)
				case !failing && ss.Failures != 0:
					t.Errorf("%s: %d failures in a row (%s)", k, ss.Failures, ss.LastError)
				case !failing && (ss.LastRun == nil || !ss.LastRun.Equal(lastDue[k])):
					t.Errorf("%s: last run %v, want the last firing %s", k, ss.LastRun, lastDue[k])
				}
			}
		}
	}

	// Every schedule fired on time: never late, spaced exactly by its
	// period, the first within the jitter of the start.
	period := map[string]time.Duration{"machineactions": 15 * time.Minute, "featuresettings": time.Hour, "schema": 24 * time.Hour}
	for _, ti := range m.infos {
		for src, every := range period {
			fs := obs.all[ti.Name+"/"+src]
			want := int(24 * time.Hour / every)
			if len(fs) < want || len(fs) > want+1 {
				t.Errorf("%s/%s fired %d times in a day, want %d (every %s)", ti.Name, src, len(fs), want, every)
				continue
			}
			for i, fr := range fs {
				if fr.Fired != fr.Due {
					t.Errorf("%s/%s firing %d: due %s, fired %s", ti.Name, src, i, fr.Due, fr.Fired)
				}
				if i > 0 && src != "schema" && fr.Due.Sub(fs[i-1].Due) != every {
					t.Errorf("%s/%s firing %d came %s after the previous, want %s", ti.Name, src, i, fr.Due.Sub(fs[i-1].Due), every)
				}
			}
			if first := fs[0].Due.Sub(start); first < 0 || first > 2*time.Minute+every {
				t.Errorf("%s/%s first fired %s after the start", ti.Name, src, first)
			}
		}
	}
	// Each tenant's records arrived, under its own tenant id, once.
	lines := m.readTenantOutputs(filepath.Join(m.dir, "day-out"))
	// Record ids are per tenant (the same schema row has the same id in
	// every tenant): the dedup key downstream is (TenantId, RecordId).
	seen := map[string]int{}
	for _, l := range lines {
		tid, _ := l.raw["TenantId"].(string)
		seen[tid+"/"+l.Table+"/"+l.RecordID]++
	}
	for k, n := range seen {
		if n > 1 {
			t.Errorf("record %s delivered %d times", k, n)
		}
	}
	byTenant := map[string]map[string]int{}
	for _, l := range lines {
		tid, _ := l.raw["TenantId"].(string)
		if byTenant[tid] == nil {
			byTenant[tid] = map[string]int{}
		}
		byTenant[tid][l.Table]++
	}
	for i, ti := range m.infos {
		got := byTenant[ti.ID]
		if got["MdeAdvancedFeatureSettings"] == 0 || got["MdeSchemaReference"] == 0 {
			t.Errorf("%s: tables %v, want its settings and schema", ti.Name, got)
		}
		if wantActions := i != 1; (got["MdeMachineActionsApi"] > 0) != wantActions {
			t.Errorf("%s: %d machine actions (its public API fails: %v)", ti.Name, got["MdeMachineActionsApi"], !wantActions)
		}
	}
	if len(byTenant) != len(m.infos) {
		t.Errorf("records carry %d tenant ids, want %d: %v", len(byTenant), len(m.infos), keys(byTenant))
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestRunTenantsIsolated: a tenant configured with another tenant's
// portal cookie is refused (its records would carry the wrong tenant id);
// the other tenants are harvested in full, each under its own id.
func TestRunTenantsIsolated(t *testing.T) {
	m := newMultiFixture(t, 3, nil)
	cfgPath := m.writeTenantsConfig("iso", map[string]string{"actioncenter": "5m", "featuresettings": "1h"}, "", map[int]int{1: 0})
	code, out, errs := m.runCLI("run", "--config", cfgPath)
	if code != 1 {
		t.Fatalf("run exit %d, want 1 (one tenant refused)\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(out+errs, "tenant-2") || !strings.Contains(out+errs, "wrong tenant") {
		t.Errorf("the refusal does not name tenant-2 and the reason:\n%s\n%s", out, errs)
	}
	byTenant := map[string]int{}
	for _, l := range m.readTenantOutputs(filepath.Join(m.dir, "iso-out")) {
		tid, _ := l.raw["TenantId"].(string)
		byTenant[tid]++
	}
	if byTenant[m.infos[1].ID] != 0 {
		t.Errorf("tenant-2 delivered %d records with another tenant's cookie", byTenant[m.infos[1].ID])
	}
	for _, i := range []int{0, 2} {
		if byTenant[m.infos[i].ID] == 0 {
			t.Errorf("%s delivered nothing though its credentials are right", m.infos[i].Name)
		}
	}
	// Tenant 1's data never appears twice (once under its id, once under
	// tenant 2's).
	if len(byTenant) != 2 {
		t.Errorf("records carry tenant ids %v", keys(byTenant))
	}
	// doctor checks every tenant and says which one is wrong.
	code, out, errs = m.runCLI("doctor", "--config", cfgPath)
	if code != 1 {
		t.Fatalf("doctor exit %d, want 1\n%s\n%s", code, out, errs)
	}
	for _, line := range strings.Split(out, "\n") {
		fail := strings.Contains(line, "FAIL")
		switch {
		case strings.HasPrefix(line, "tenant-2: ") && strings.Contains(line, "portal") && !fail:
			t.Errorf("doctor passes tenant-2's portal with another tenant's cookie: %s", line)
		case (strings.HasPrefix(line, "tenant-1: ") || strings.HasPrefix(line, "tenant-3: ")) && fail:
			t.Errorf("doctor fails a tenant whose credentials are right: %s", line)
		}
	}
	if !strings.Contains(out, "tenant-1: ") || !strings.Contains(out, "tenant-3: ") {
		t.Errorf("doctor did not check every tenant:\n%s", out)
	}
}

// TestServeStoppedMidRunLosesNothing: `serve` stopped with SIGTERM (it
// shuts down cleanly, exit 0) or killed with SIGKILL while its first
// runs are under way, again and again, then a run to the end: every
// record of an uninterrupted harvest is delivered, nothing else is, and
// duplicates stay within one batch per interruption.
func TestServeStoppedMidRunLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("runs serve as a child process many times")
	}
	frozen := time.Now().Add(-time.Hour)
	f := newFixture(t, sim.Options{Seed: 12, Now: func() time.Time { return frozen }, Machines: 16, TimelineHistory: 72 * time.Hour})
	extra := "initial_lookback: 7d\nserve:\n  listen: 127.0.0.1:0\n  jitter: 0s\n  max_concurrent_runs_per_tenant: 4\n"
	clean := f.writeConfig("clean", extra)
	began := time.Now()
	if code, out, errs := f.child(clean, 0); code != 0 {
		t.Fatalf("clean run exit %d\n%s\n%s", code, out, errs)
	}
	took := time.Since(began)
	want := readOutput(t, filepath.Join(f.dir, "clean-out"))
	if len(want) < 1000 {
		t.Fatalf("the clean run harvested only %d records; the test needs more", len(want))
	}

	stopped := f.writeConfig("stopped", extra)
	outDir := filepath.Join(f.dir, "stopped-out")
	interrupted, midway := 0, 0
	for i, sig := range []os.Signal{syscall.SIGTERM, os.Kill, syscall.SIGTERM, os.Kill, syscall.SIGTERM, os.Kill} {
		// Interrupt once serve has written something more (it is
		// harvesting), at once or a little later (0, 2.5, 5 % of a clean
		// run): resumed runs do not redo finished windows, so later
		// interruptions would find the harvest done.
		// A serve that has nothing left to write (an earlier
		// interruption came late) is stopped idle after a while.
		before, started := dirBytes(outDir), time.Now()
		var since time.Time
		when := func() bool {
			if since.IsZero() && dirBytes(outDir) > before {
				since = time.Now()
			}
			return (!since.IsZero() && time.Since(since) >= time.Duration(i%3)*took/40) ||
				time.Since(started) > 10*time.Second+10*took
		}
		code, _, errs := f.childUntil([]string{"serve", "--config", stopped}, when, sig)
		// Complete lines only: after a SIGKILL the last one may be torn
		// (the next start repairs it).
		if n := countLines(outDir); n > 0 && n < len(want) {
			midway++
		}
		switch {
		case sig == syscall.SIGTERM && code != 0:
			t.Fatalf("serve after SIGTERM: exit %d, want a clean stop (0)\n%s", code, errs)
		case sig == syscall.SIGTERM && !strings.Contains(errs, "stopped"):
			t.Fatalf("serve after SIGTERM did not say it stopped:\n%s", errs)
		}
		interrupted++
	}
	if midway < 4 {
		t.Fatalf("only %d of %d interruptions came while serve was harvesting (a clean run takes %s): the test proves little", midway, interrupted, took)
	}
	if code, out, errs := f.child(stopped, 0); code != 0 {
		t.Fatalf("final run exit %d\n%s\n%s", code, out, errs)
	}
	wantSet, dups := sameHarvest(t, want, readOutput(t, filepath.Join(f.dir, "stopped-out")), interrupted, "interruptions of serve")
	t.Logf("%d records, %d interruptions (%d while harvesting; a clean run takes %s), duplicates by table %v", len(wantSet), interrupted, midway, took, dups)
}

// dirBytes is the size of the files in dir (0 when it does not exist).
func dirBytes(dir string) int64 {
	entries, _ := os.ReadDir(dir)
	var n int64
	for _, e := range entries {
		if info, err := e.Info(); err == nil {
			n += info.Size()
		}
	}
	return n
}
