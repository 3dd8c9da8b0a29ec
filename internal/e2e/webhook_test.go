package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/cli"
	"github.com/defenderharvester/defenderharvester/internal/config"
	"github.com/defenderharvester/defenderharvester/internal/service"
	"github.com/defenderharvester/defenderharvester/internal/sim"
)

// writeListenerCert writes a server certificate for 127.0.0.1 from the
// emulator's CA (which its webhook client trusts) as PEM files.
func writeListenerCert(t *testing.T, f *fixture) (certFile, keyFile string) {
	t.Helper()
	certPEM, keyPEM, err := f.tenant.IssueServerCertificatePEM("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(f.dir, "hook.crt"), filepath.Join(f.dir, "hook.key")
	mustWrite(t, certFile, certPEM, 0o644)
	mustWrite(t, keyFile, keyPEM, 0o600)
	return certFile, keyFile
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// auditTruth is every audit record id the emulator published for blobs
// created in [from, to), per table; the Defender records among them; and
// how many records were published again in a later blob.
func auditTruth(t *testing.T, f *fixture, from, to time.Time) (want map[string]map[string]bool, defender map[string]bool, republished int) {
	t.Helper()
	want, defender = map[string]map[string]bool{}, map[string]bool{}
	for ct, table := range auditTables {
		want[table] = map[string]bool{}
		blobs, err := f.tenant.AuditBlobs(ct, from, to)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range blobs {
			recs, err := f.tenant.AuditRecords(b.ContentID)
			if err != nil {
				t.Fatal(err)
			}
			for _, raw := range recs {
				var r struct{ Id, Workload string }
				if err := json.Unmarshal(raw, &r); err != nil || r.Id == "" {
					t.Fatalf("emulated record without an Id: %v", err)
				}
				if want[table][r.Id] {
					republished++
				}
				want[table][r.Id] = true
				if r.Workload == sim.DefenderWorkload {
					defender[r.Id] = true
				}
			}
		}
	}
	return want, defender, republished
}

// auditDelivered counts, per table, how often each audit record id is in
// the files output.
func auditDelivered(t *testing.T, dir string) map[string]map[string]int {
	t.Helper()
	got := map[string]map[string]int{}
	for _, l := range readOutput(t, dir) {
		id, _ := l.raw["Id"].(string)
		if got[l.Table] == nil {
			got[l.Table] = map[string]int{}
		}
		got[l.Table][id]++
	}
	return got
}

// TestWebhookDeliversEverySeededRecordOnce runs the webhook command's
// service against the emulated Management Activity API, whose webhook
// client was built apart from the listener, from the reference:
//
//  1. the tenant opens, the listener registers with subscriptions/start
//     (the emulator validates it over TLS at once), and the first poll
//     harvests the last day;
//  2. an hour and a half later the emulator posts its notifications: the
//     records of every notified blob arrive in files, Sentinel and Splunk
//     without any further poll;
//  3. spoofed notifications — wrong or missing AuthID, a contentUri on
//     loopback or another host, another tenant — are refused or rejected
//     and nothing fetches them;
//  4. after the service stops, a poll closes the gap the webhook cannot
//     see (blobs created between the first poll's window end and the
//     registration): every record published is then in every output
//     once.
func TestWebhookDeliversEverySeededRecordOnce(t *testing.T) {
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	clk := &clock{t: t0}
	f := newFixture(t, sim.Options{Seed: 33, Now: clk.Now, History: 3 * 24 * time.Hour, AuditRecordsPerHour: 30, AuditWebhookPoll: -1})
	cert, key := writeListenerCert(t, f)
	authFile := filepath.Join(f.dir, "hook.authid")
	const authID = "e2e-webhook-auth-id-3f9c1a"
	mustWrite(t, authFile, []byte(authID+"\n"), 0o600)
	port := freePort(t)
	tid := f.tenant.Credentials().TenantID
	hookURL := fmt.Sprintf("https://127.0.0.1:%d/o365/%s", port, tid)
	cfgPath := f.writeConfig("hook", fmt.Sprintf(`  auditlog:
    enabled: true
    schedule: "@yearly"
    webhook:
      address: "https://127.0.0.1:%d/o365/{tenant}"
      auth_id_file: %q
initial_lookback: 24h
serve:
  listen: "-"
  jitter: 0s
  webhook:
    listen: "127.0.0.1:%d"
    tls_cert_file: %q
    tls_key_file: %q
`, port, authFile, port, cert, key))
	body := strings.Replace(readFile(t, cfgPath), "enabled: false", "enabled: true", -1) // Sentinel and Splunk too
	mustWrite(t, cfgPath, []byte(body), 0o600)
	cfg, err := config.Load(cfgPath, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	svc, err := service.New(service.Options{Config: cfg, Now: clk.Now, OwnerID: "test", Sources: []string{"auditlog"}, RequireWebhook: true,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		sctx, scancel := context.WithTimeout(context.Background(), time.Minute)
		defer scancel()
		if err := svc.Shutdown(sctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}
	defer stop()

	// 1. The first poll ends.
	waitFor(t, 2*time.Minute, "the first poll", func() bool {
		for _, st := range svc.Status() {
			if st.Source == "auditlog" && st.Runs >= 1 && !st.Running {
				return true
			}
		}
		return false
	})
	if !strings.Contains(logs.String(), "webhook registered") {
		t.Fatalf("the webhook was not registered:\n%s", logs.String())
	}
	out := filepath.Join(f.dir, "hook-out")

	// 2. New content, notified by the emulator's webhook client.
	clk.Set(t0.Add(90 * time.Minute))
	notified := f.tenant.NotifyNow(ctx)
	if notified == 0 {
		t.Fatal("the emulator delivered no notification to the listener")
	}
	pushed, _, _ := auditTruth(t, f, t0.Add(time.Second), t0.Add(90*time.Minute+time.Nanosecond))
	pushedN := 0
	for _, ids := range pushed {
		pushedN += len(ids)
	}
	if pushedN == 0 {
		t.Fatal("the emulator published nothing after the registration: the test needs new content")
	}
	waitFor(t, time.Minute, "the notified records", func() bool {
		got := auditDelivered(t, out)
		for table, ids := range pushed {
			for id := range ids {
				if got[table][id] == 0 {
					return false
				}
			}
		}
		return true
	})
	for _, st := range svc.Status() {
		if st.Source == "auditlog" && st.Runs != 1 {
			t.Fatalf("%d polls ran: the notified records must come from the webhook alone", st.Runs)
		}
	}

	// 3. Spoofed notifications.
	var spied atomic.Int64
	spy := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		spied.Add(1)
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("[]"))
	}))
	defer spy.Close()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(readFile(t, f.ca)))
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	spyHost := strings.TrimPrefix(spy.URL, "https://")
	note := func(tenant, uri string) map[string]any {
		id := fmt.Sprintf("spoof%d", time.Now().UnixNano())
		return map[string]any{"tenantId": tenant, "clientId": "x", "contentType": sim.AuditContentGeneral, "contentId": id,
			"contentUri":     strings.ReplaceAll(uri, "ID", id),
			"contentCreated": clk.Now().UTC().Format(time.RFC3339), "contentExpiration": clk.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)}
	}
	post := func(auth string, items ...map[string]any) (int, string) {
		b, _ := json.Marshal(items)
		rq, _ := http.NewRequest(http.MethodPost, hookURL, bytes.NewReader(b))
		rq.Header.Set("Content-Type", "application/json")
		if auth != "" {
			rq.Header.Set("Webhook-AuthID", auth)
		}
		res, err := hc.Do(rq)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var rb bytes.Buffer
		_, _ = rb.ReadFrom(res.Body)
		return res.StatusCode, rb.String()
	}
	loopURI := "https://" + spyHost + "/api/v1.0/" + tid + "/activity/feed/audit/ID"
	goodURI := "https://manage.office.com/api/v1.0/" + tid + "/activity/feed/audit/ID"
	if code, _ := post("", note(tid, goodURI)); code != http.StatusUnauthorized {
		t.Errorf("no AuthID: %d, want 401", code)
	}
	if code, _ := post("not-"+authID, note(tid, goodURI)); code != http.StatusForbidden {
		t.Errorf("a wrong AuthID: %d, want 403", code)
	}
	const foreign = "0badbeef-1111-4222-8333-123456789abc"
	code, resp := post(authID,
		note(tid, loopURI),
		note(tid, "https://manage.office.com.evil.example/api/v1.0/"+tid+"/activity/feed/audit/ID"),
		note(tid, "https://127.0.0.1/api/v1.0/"+tid+"/activity/feed/audit/ID"),
		note(foreign, "https://manage.office.com/api/v1.0/"+foreign+"/activity/feed/audit/ID"),
	)
	if code != http.StatusOK || !strings.Contains(resp, `"rejected":4`) {
		t.Errorf("spoofed items: %d %s; want 200 with the 4 items rejected", code, resp)
	}
	// A path no tenant serves (a scanner): 404, counted without a tenant.
	rq, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("https://127.0.0.1:%d/wp-login.php", port), strings.NewReader("[]"))
	if res, err := hc.Do(rq); err != nil || res.StatusCode != http.StatusNotFound {
		t.Errorf("an unserved path: %v %v, want 404", res, err)
	} else {
		res.Body.Close()
	}
	families, err := svc.Metrics().Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	unrouted := -1.0
	for _, mf := range families {
		if mf.GetName() == "defenderharvester_webhook_unrouted_requests_total" {
			unrouted = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	if unrouted != 1 {
		t.Errorf("webhook_unrouted_requests_total = %v, want 1", unrouted)
	}
	time.Sleep(3 * time.Second) // longer than a push batch waits
	if n := spied.Load(); n != 0 {
		t.Fatalf("a spoofed contentUri was fetched %d times", n)
	}
	if strings.Contains(logs.String(), authID) {
		t.Fatal("the AuthID is in the log")
	}
	if !strings.Contains(logs.String(), "rejected") {
		t.Errorf("the rejected notifications were not logged:\n%s", logs.String())
	}
	stop()

	// 4. A poll closes the gap; every record once everywhere.
	var so, se bytes.Buffer
	env := &cli.Env{Stdout: &so, Stderr: &se, Getenv: func(string) string { return "" }, Now: clk.Now}
	if code := cli.Main(context.Background(), env, []string{"run", "--config", cfgPath, "--sources", "auditlog"}); code != 0 {
		t.Fatalf("the closing poll exit %d\n%s\n%s", code, so.String(), se.String())
	}
	// What the outputs must hold: blobs created since the first window's
	// start, up to the last poll's window end or notified.
	want, defender, _ := auditTruth(t, f, t0.Add(-24*time.Hour), t0.Add(90*time.Minute+time.Nanosecond))
	assertAuditOnce(t, f, out, want, defender)
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within %s", what, d)
		}
	}
}
