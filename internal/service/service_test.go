package service

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/clock"
	"github.com/defenderharvester/defenderharvester/internal/config"
	"github.com/defenderharvester/defenderharvester/internal/sim"
	"github.com/defenderharvester/defenderharvester/internal/sim/simtest"
	"github.com/defenderharvester/defenderharvester/internal/source"
)

// emulated is an emulator with two tenants and a config for them that
// harvests only featuresettings; wrongCookie gives tenant-2 tenant-1's
// portal cookie (the tenant check refuses it: tenant-2 cannot open).
func emulated(t *testing.T, now func() time.Time, wrongCookie bool, extra string) *config.Config {
	t.Helper()
	cfg, err := config.Load(emulatedConfig(t, now, wrongCookie, extra, ""), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// emulatedConfig writes the config and returns its path; schedule, when
// set, is featuresettings' schedule.
func emulatedConfig(t *testing.T, now func() time.Time, wrongCookie bool, extra, schedule string) string {
	t.Helper()
	dir := t.TempDir()
	em, srv, ca := simtest.Start(t, sim.Options{Seed: 3, Tenants: 2, Machines: 1, Now: now}, dir)
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var b strings.Builder
	fmt.Fprintf(&b, "emulator: {address: %s, ca_file: %s}\nhttp: {max_attempts: 1}\n", srv.Addr(), ca)
	fmt.Fprintf(&b, "outputs: {files: {dir: %s}}\nserve: {listen: '127.0.0.1:0', jitter: 0s}\n%s", filepath.Join(dir, "out"), extra)
	b.WriteString("sources:\n")
	for _, f := range source.All() {
		if f.Name != "featuresettings" {
			fmt.Fprintf(&b, "  %s: {enabled: false}\n", f.Name)
		}
	}
	if schedule != "" {
		fmt.Fprintf(&b, "  featuresettings: {schedule: %q}\n", schedule)
	}
	b.WriteString("tenants:\n")
	tenants := em.Tenants()
	for i, ti := range tenants {
		cookie := sim.PortalCookieHeader(ti.SccAuth, ti.XSRFToken)
		if wrongCookie && i == 1 {
			cookie = sim.PortalCookieHeader(tenants[0].SccAuth, tenants[0].XSRFToken)
		}
		fmt.Fprintf(&b, "  - name: %s\n    tenant_id: %s\n    portal: {cookie_file: %s}\n", ti.Name, ti.ID, write(ti.Name+".cookie", cookie))
	}
	return write("config.yaml", b.String())
}

func TestNewRefusesWhatCannotWork(t *testing.T) {
	cases := []struct {
		name  string
		extra string
		opts  func(*Options)
		want  string
	}{
		{"index beyond count", "", func(o *Options) { o.ShardCount, o.ShardIndex = 3, 3 }, "not below the shard count"},
		{"replicas without leases", "", func(o *Options) { o.ShardCount, o.ShardIndex = 2, 0 }, "lease folder"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{Config: emulated(t, time.Now, false, tc.extra)}
			tc.opts(&o)
			if _, err := New(o); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
		})
	}
}

func TestBadScheduleNamesTheTenantAndKey(t *testing.T) {
	p := emulatedConfig(t, time.Now, false, "", "every tuesday")
	cfg, err := config.Load(p, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(Options{Config: cfg})
	if err == nil || !strings.Contains(err.Error(), "tenants.tenant-1.sources.featuresettings.schedule") {
		t.Fatalf("err = %v, want it to name tenants.tenant-1.sources.featuresettings.schedule", err)
	}
}

// TestTenantThatCannotOpenIsRetriedAlone: a tenant whose portal session
// is refused never opens; it is retried on its own and turns /readyz red
// after three attempts, while the other tenant is harvested on schedule.
func TestTenantThatCannotOpenIsRetriedAlone(t *testing.T) {
	fake := clock.NewFake(time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC))
	cfg := emulated(t, fake.Now, true, "")
	svc, err := New(Options{Config: cfg, Clock: fake, Now: fake.Now, OwnerID: "t"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer svc.Shutdown(context.Background())
	// Opening attempts come after 30 s, 60 s, 120 s: step the clock from
	// timer to timer through seven minutes (the scheduler's, tenant-1's
	// upkeep, tenant-2's pause before its next attempt).
	end := fake.Now().Add(7 * time.Minute)
	for fake.Now().Before(end) {
		waitParked(t, svc, fake, 3)
		step(t, fake)
	}
	waitIdle(t, svc)
	code, body := simtest.Get(t, "http://"+svc.Addr()+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "tenant-2") || strings.Contains(body, "tenant-1") {
		t.Fatalf("/readyz = %d %q; want 503 naming tenant-2 only", code, body)
	}
	var ran bool
	for _, j := range svc.Status() {
		if j.Tenant == "tenant-1" && j.Runs > 0 && j.LastErr == nil {
			ran = true
		}
		if j.Tenant == "tenant-2" {
			t.Errorf("tenant-2 has a job though it never opened: %+v", j)
		}
	}
	if !ran {
		t.Error("tenant-1 was not harvested while tenant-2 failed")
	}
	_, status := simtest.Get(t, "http://"+svc.Addr()+"/status")
	if !strings.Contains(status, `"cannot open"`) {
		t.Errorf("/status does not show tenant-2 as unable to open: %s", status)
	}
}

func waitIdle(t *testing.T, svc *Service) {
	t.Helper()
	waitParked(t, svc, nil, 0)
}

// waitParked waits until no run is going or waiting, no tenant is
// opening, and (with fake) n timers are pending. The timers are read
// first: the scheduler marks what it fires before it re-arms its timer,
// so a status read after them sees every run fired meanwhile.
func waitParked(t *testing.T, svc *Service, fake *clock.Fake, n int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		parked := fake == nil || fake.Waiters() >= n
		busy := false
		for _, j := range svc.Status() {
			busy = busy || j.Running || j.Waiting
		}
		svc.mu.Lock()
		opening := false
		for _, tr := range svc.tenants {
			tr.mu.Lock()
			opening = opening || tr.phase == "opening" || tr.phase == ""
			tr.mu.Unlock()
		}
		svc.mu.Unlock()
		if parked && !busy && !opening {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the service did not settle in 30 s (busy %v, opening %v, parked %v)", busy, opening, parked)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestHandoverWaitsForTheLease: two replicas that both believe they own
// a tenant (a rollout between shard counts) never harvest it at once —
// the second waits until the first released the lease at its shutdown,
// then takes the tenant over at once.
func TestHandoverWaitsForTheLease(t *testing.T) {
	fake := clock.NewFake(time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC))
	cfg := emulated(t, fake.Now, false, "")
	leases := filepath.Join(t.TempDir(), "leases")
	// The two replicas use one state folder here only because the test
	// has one disk; in a cluster each has its own volume.
	newReplica := func(owner string) *Service {
		svc, err := New(Options{Config: cfg, Clock: fake, Now: fake.Now, LeaseDir: leases, OwnerID: owner, Listen: "-"})
		if err != nil {
			t.Fatal(err)
		}
		return svc
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := newReplica("replica-a")
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitJobs(t, a, 2)
	b := newReplica("replica-b")
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer b.Shutdown(context.Background())
	// b waits: several lease attempts pass, it schedules nothing. Each
	// step waits until both replicas are parked on their timers (a: its
	// scheduler and two upkeeps; b: two lease waits — with no jobs its
	// scheduler has no timer), so a renews its leases as in real time.
	for i := 0; i < 8; i++ {
		waitParked(t, a, fake, 5)
		step(t, fake)
	}
	if n := len(b.Status()); n != 0 {
		t.Fatalf("replica b scheduled %d jobs while a holds the leases", n)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		_, status := httpStatus(b)
		if strings.Count(status, "waiting for lease") == 2 && strings.Contains(status, "replica-a") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b's tenants do not say whose lease they wait for: %s", status)
		}
		time.Sleep(time.Millisecond)
	}
	if err := a.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	// b takes both tenants at its next attempt.
	for deadline := time.Now().Add(30 * time.Second); len(b.Status()) < 2; {
		if time.Now().After(deadline) {
			_, st := httpStatus(b)
			t.Fatalf("b did not take the tenants over after a released them (%d jobs): %s", len(b.Status()), st)
		}
		step(t, fake)
		time.Sleep(time.Millisecond)
	}
}

func waitJobs(t *testing.T, svc *Service, n int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); len(svc.Status()) < n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d jobs scheduled after 30 s, want %d", len(svc.Status()), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// httpStatus renders the service's /status without a listener.
func httpStatus(svc *Service) (int, string) {
	rec := httptest.NewRecorder()
	svc.handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/status", nil))
	return rec.Code, rec.Body.String()
}

// step moves the fake clock to its next timer (never back).
func step(t *testing.T, fake *clock.Fake) {
	t.Helper()
	if next, ok := fake.Next(); ok && next.After(fake.Now()) {
		fake.Set(next)
	} else if ok {
		fake.Advance(0)
	}
}

// webhookConfig writes a two-tenant config harvesting only the audit
// log, with address as both tenants' webhook address and serveExtra
// under serve.webhook.
func webhookConfig(t *testing.T, address, serveExtra string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	var b strings.Builder
	fmt.Fprintf(&b, "outputs: {files: {dir: %s}}\n", filepath.Join(dir, "out"))
	fmt.Fprintf(&b, "serve:\n  listen: '127.0.0.1:0'\n  webhook:\n    listen: '127.0.0.1:0'\n%s", serveExtra)
	b.WriteString("sources:\n")
	for _, f := range source.All() {
		if f.Name != "auditlog" {
			fmt.Fprintf(&b, "  %s: {enabled: false}\n", f.Name)
		}
	}
	if address != "" {
		fmt.Fprintf(&b, "  auditlog: {enabled: true, webhook: {address: %q}}\n", address)
	} else {
		b.WriteString("  auditlog: {enabled: true}\n")
	}
	b.WriteString("tenants:\n  - name: contoso\n    tenant_id: 4a1b5c2d-1111-4222-8333-123456789abc\n  - name: fabrikam\n    tenant_id: 5a1b5c2d-1111-4222-8333-123456789abc\n")
	p := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(p, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestWebhookSettingsRefused: what cannot work is refused before
// anything starts, naming the key to change.
func TestWebhookSettingsRefused(t *testing.T) {
	cases := []struct {
		name, address, serve string
		require              bool
		want                 string
	}{
		{"webhook command without a webhook", "", "", true, "sources.auditlog.webhook.address"},
		{"two tenants on one path", "https://dh.example.com/o365", "    plain_http: true\n", false, "same audit log webhook path /o365"},
		{"neither TLS nor plain_http", "https://dh.example.com/o365/{tenant}", "", false, "tls_cert_file and tls_key_file"},
		{"not https", "http://dh.example.com/o365/{tenant}", "    plain_http: true\n", false, "webhook.address"},
		{"missing certificate file", "https://dh.example.com/o365/{tenant}", "    tls_cert_file: nope.crt\n    tls_key_file: nope.key\n", false, "tls_key_file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := webhookConfig(t, tc.address, tc.serve)
			_, err := New(Options{Config: cfg, RequireWebhook: tc.require, Sources: []string{"auditlog"}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
		})
	}
	// {tenant} gives each tenant its own path: accepted, one listener.
	svc, err := New(Options{Config: webhookConfig(t, "https://dh.example.com/o365/{tenant}", "    plain_http: true\n"), RequireWebhook: true})
	if err != nil {
		t.Fatal(err)
	}
	if svc.hooks == nil {
		t.Fatal("no webhook listener for tenants with webhook addresses")
	}
	// Without a webhook address serve runs no listener.
	svc, err = New(Options{Config: webhookConfig(t, "", "")})
	if err != nil || svc.hooks != nil {
		t.Fatalf("serve without webhook addresses: err %v, listener %v", err, svc.hooks != nil)
	}
}
