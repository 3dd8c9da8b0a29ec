package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/auth"
	"github.com/defenderharvester/defenderharvester/internal/delivery"
	"github.com/defenderharvester/defenderharvester/internal/httpx"
	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/pipeline"
	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/source/srcutil"
	"github.com/defenderharvester/defenderharvester/internal/state"
	"github.com/defenderharvester/defenderharvester/internal/webhook"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestObserverRecordsEvents(t *testing.T) {
	clk := newClock()
	m := New(Options{Now: clk.Now})
	g := m.Registry()
	boom := fmt.Errorf("output splunk: %w", delivery.Permanent(errors.New("HTTP 403 invalid token")))

	m.SourceStarted("t1", "actioncenter")
	if v := mustSample(t, g, "defenderharvester_source_running", ts("t1", "actioncenter")); v != 1 {
		t.Errorf("running = %v during the run, want 1", v)
	}
	m.ChunkDone("t1", "actioncenter", source.Window{}, 7)
	m.ChunkDone("t1", "actioncenter", source.Window{}, 3)
	m.Written("t1", "actioncenter", "files", 10, nil)
	m.Written("t1", "actioncenter", "splunk", 10, boom)
	m.Spooled("t1", "actioncenter", "splunk", 10)
	m.Written("t1", "actioncenter", "splunk", 4, nil) // drained later
	m.SourceDone("t1", pipeline.Result{Source: "actioncenter", Fetched: 12, New: 10, Duplicates: 2, OutOfWindow: 1,
		Duration: 3 * time.Second, Cursor: clk.Now().Add(-5 * time.Minute)})
	m.SourceDone("t1", pipeline.Result{Source: "machinegroups", New: 3, Changes: map[string]int{"Added": 2, "Removed": 1},
		Err: fmt.Errorf("source machinegroups: %w", mde.ErrThrottled)})

	tso := func(o string) map[string]string {
		return map[string]string{"tenant": "t1", "source": "actioncenter", "output": o}
	}
	for _, tt := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"defenderharvester_source_running", ts("t1", "actioncenter"), 0},
		{"defenderharvester_source_chunks_total", ts("t1", "actioncenter"), 2},
		{"defenderharvester_source_records_fetched_total", ts("t1", "actioncenter"), 12},
		{"defenderharvester_source_records_new_total", ts("t1", "actioncenter"), 10},
		{"defenderharvester_source_records_duplicate_total", ts("t1", "actioncenter"), 2},
		{"defenderharvester_source_records_out_of_window_total", ts("t1", "actioncenter"), 1},
		{"defenderharvester_output_records_written_total", tso("files"), 10},
		{"defenderharvester_output_records_written_total", tso("splunk"), 4},
		{"defenderharvester_output_write_failures_total", map[string]string{"tenant": "t1", "source": "actioncenter", "output": "splunk", "kind": KindRefusedByOutput}, 1},
		{"defenderharvester_output_records_spooled_total", tso("splunk"), 10},
		{"defenderharvester_source_runs_total", map[string]string{"tenant": "t1", "source": "actioncenter", "outcome": "ok"}, 1},
		{"defenderharvester_source_runs_total", map[string]string{"tenant": "t1", "source": "machinegroups", "outcome": "partial"}, 1},
		{"defenderharvester_source_run_duration_seconds", ts("t1", "actioncenter"), 1}, // one observation
		{"defenderharvester_source_errors_total", map[string]string{"tenant": "t1", "source": "machinegroups", "kind": KindThrottled}, 1},
		{"defenderharvester_snapshot_changes_total", map[string]string{"tenant": "t1", "source": "machinegroups", "change": "Added"}, 2},
		{"defenderharvester_snapshot_changes_total", map[string]string{"tenant": "t1", "source": "machinegroups", "change": "Removed"}, 1},
		{"defenderharvester_source_last_success_timestamp_seconds", ts("t1", "actioncenter"), float64(clk.Now().Unix())},
		{"defenderharvester_source_consecutive_failures", ts("t1", "actioncenter"), 0},
		{"defenderharvester_source_consecutive_failures", ts("t1", "machinegroups"), 1},
		{"defenderharvester_source_cursor_timestamp_seconds", ts("t1", "actioncenter"), float64(clk.Now().Add(-5 * time.Minute).Unix())},
		{"defenderharvester_source_lag_seconds", ts("t1", "actioncenter"), 300},
	} {
		if got := mustSample(t, g, tt.name, tt.labels); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	for _, absent := range []struct {
		name   string
		labels map[string]string
	}{
		{"defenderharvester_source_errors_total", map[string]string{"tenant": "t1", "source": "actioncenter", "kind": ""}},
		{"defenderharvester_source_last_success_timestamp_seconds", ts("t1", "machinegroups")},
		{"defenderharvester_source_lag_seconds", ts("t1", "machinegroups")}, // no cursor yet
	} {
		if _, ok := sample(t, g, absent.name, absent.labels); ok {
			t.Errorf("series %s%v exists, want none", absent.name, absent.labels)
		}
	}
}

// TestLagGrowsWhileStalled: lag is computed at scrape time, so a source
// that stops reporting shows a growing lag; a failed run (no cursor)
// keeps the last one, and the cursor never moves back.
func TestLagGrowsWhileStalled(t *testing.T) {
	clk := newClock()
	m := New(Options{Now: clk.Now})
	lag := func() float64 {
		return mustSample(t, m.Registry(), "defenderharvester_source_lag_seconds", ts("t1", "timeline"))
	}

	m.SetCursor("t1", "timeline", clk.Now().Add(-10*time.Minute)) // seeded from the state file
	if v := lag(); v != 600 {
		t.Fatalf("lag after seeding = %v, want 600", v)
	}
	m.SourceDone("t1", pipeline.Result{Source: "timeline", Cursor: clk.Now().Add(-time.Minute)})
	if v := lag(); v != 60 {
		t.Fatalf("lag after a run = %v, want 60", v)
	}
	clk.Add(2 * time.Hour)
	if v := lag(); v != 2*3600+60 {
		t.Errorf("lag two hours later = %v, want %v", v, 2*3600+60)
	}
	m.SourceDone("t1", pipeline.Result{Source: "timeline", Err: errors.New("boom")})
	m.SetCursor("t1", "timeline", time.Unix(0, 0))
	clk.Add(time.Hour)
	if v := lag(); v != 3*3600+60 {
		t.Errorf("lag after a failed run = %v, want %v (the cursor neither resets nor moves back)", v, 3*3600+60)
	}
}

func TestReadyzFollowsConsecutiveFailures(t *testing.T) {
	m := New(Options{Now: newClock().Now})
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	fail := pipeline.Result{Source: "actioncenter", Err: fmt.Errorf("source actioncenter: %w", httpx.ErrTimeout)}

	for i := 1; i <= 3; i++ {
		m.SourceDone("contoso", fail)
		m.SourceDone("contoso", pipeline.Result{Source: "machineactions"}) // others stay fine
		code, body := get(t, srv.URL+"/readyz", "")
		if i < 3 {
			if code != http.StatusOK || body != "ok\n" {
				t.Fatalf("after %d failures: %d %q, want 200 ok", i, code, body)
			}
			continue
		}
		if code != http.StatusServiceUnavailable {
			t.Fatalf("after 3 failures: %d %q, want 503", code, body)
		}
		for _, want := range []string{`tenant "contoso"`, `source "actioncenter"`, "3 times in a row", "timeout"} {
			if !strings.Contains(body, want) {
				t.Errorf("reason %q does not say %q", body, want)
			}
		}
		if strings.Contains(body, "machineactions") {
			t.Errorf("reason %q names a healthy source", body)
		}
	}

	code, body := get(t, srv.URL+"/readyz", "application/json")
	var js struct {
		Ready   bool
		Reasons []string
	}
	if err := json.Unmarshal([]byte(body), &js); err != nil || code != 503 || js.Ready || len(js.Reasons) != 1 ||
		!strings.Contains(js.Reasons[0], "actioncenter") {
		t.Fatalf("JSON readyz = %d %s (%v), want 503 with one reason naming actioncenter", code, body, err)
	}

	// A cancelled run (shutdown) neither counts nor clears; a success clears.
	m.SourceDone("contoso", pipeline.Result{Source: "actioncenter", Err: fmt.Errorf("x: %w", context.Canceled)})
	if code, _ := get(t, srv.URL+"/readyz", ""); code != 503 {
		t.Errorf("a cancelled run made it ready (%d)", code)
	}
	m.SourceDone("contoso", pipeline.Result{Source: "actioncenter"})
	if code, body := get(t, srv.URL+"/readyz", "application/json"); code != 200 || !strings.Contains(body, `"ready":true`) {
		t.Errorf("after a success: %d %s, want 200 ready", code, body)
	}
}

func TestReadyzFailuresThreshold(t *testing.T) {
	m := New(Options{FailuresUntilNotReady: 1})
	m.SourceDone("t", pipeline.Result{Source: "s", Err: errors.New("boom")})
	if ok, reasons := m.Ready(); ok || len(reasons) != 1 || !strings.Contains(reasons[0], "(last error: other)") {
		t.Fatalf("Ready() = %v %q, want not ready after one failure with N=1", ok, reasons)
	}
}

// TestSeededFailuresSurviveARestart: failures in a row read from the
// state file at start keep /readyz red; one success clears them.
func TestSeededFailuresSurviveARestart(t *testing.T) {
	m := New(Options{})
	m.SeedFailures("t", "s", 4)
	m.SeedFailures("t", "s", 1) // never lowers what it knows
	if ok, reasons := m.Ready(); ok || len(reasons) != 1 || !strings.Contains(reasons[0], "4 times") {
		t.Fatalf("Ready() = %v %q, want not ready naming 4 failures", ok, reasons)
	}
	m.SourceDone("t", pipeline.Result{Source: "s"})
	if ok, reasons := m.Ready(); !ok {
		t.Fatalf("still not ready after a success: %q", reasons)
	}
}

func TestSessionExpiry(t *testing.T) {
	clk := newClock()
	m := New(Options{Now: clk.Now})
	g := m.Registry()
	tenant := map[string]string{"tenant": "t1"}
	m.SetSession("t1", Session{Obtained: clk.Now().Add(-time.Hour), Expires: clk.Now().Add(30 * time.Minute)})

	if v := mustSample(t, g, "defenderharvester_portal_session_age_seconds", tenant); v != 3600 {
		t.Errorf("age = %v, want 3600", v)
	}
	if v := mustSample(t, g, "defenderharvester_portal_session_expiry_timestamp_seconds", tenant); v != float64(clk.Now().Add(30*time.Minute).Unix()) {
		t.Errorf("expiry = %v", v)
	}
	if v := mustSample(t, g, "defenderharvester_portal_session_expired", tenant); v != 0 {
		t.Errorf("expired = %v before the expiry, want 0", v)
	}
	if ok, _ := m.Ready(); !ok {
		t.Fatal("not ready with a live session")
	}

	clk.Add(31 * time.Minute) // the expiry passes with no event at all
	if v := mustSample(t, g, "defenderharvester_portal_session_expired", tenant); v != 1 {
		t.Errorf("expired = %v after the expiry, want 1", v)
	}
	if ok, reasons := m.Ready(); ok || len(reasons) != 1 || reasons[0] != `tenant "t1": portal session expired` {
		t.Fatalf("Ready() = %v %q, want the expired session", ok, reasons)
	}

	// A renewed session is fine again …
	m.SetSession("t1", Session{Obtained: clk.Now(), Expires: clk.Now().Add(4 * time.Hour)})
	if ok, r := m.Ready(); !ok {
		t.Fatalf("not ready after renewal: %q", r)
	}
	// … until the portal refuses it: a source failing with an expired
	// session marks it, whatever the service believes …
	clk.Add(time.Minute)
	m.SourceDone("t1", pipeline.Result{Source: "actioncenter", Err: fmt.Errorf("portal: %w", mde.ErrSessionExpired)})
	if ok, reasons := m.Ready(); ok || len(reasons) != 1 || !strings.Contains(reasons[0], `refused to source "actioncenter"`) {
		t.Fatalf("Ready() = %v %q, want the refused session", ok, reasons)
	}
	m.SetSession("t1", Session{Obtained: clk.Now().Add(-30 * time.Second), Expires: clk.Now().Add(4 * time.Hour)})
	if ok, _ := m.Ready(); ok {
		t.Fatal("a session older than the refusal cleared it")
	}
	// … until a session obtained after the refusal, or a success of that source.
	clk.Add(time.Minute)
	m.SetSession("t1", Session{Obtained: clk.Now(), Expires: clk.Now().Add(4 * time.Hour)})
	if ok, r := m.Ready(); !ok {
		t.Fatalf("not ready with a session newer than the refusal: %q", r)
	}
	m.SourceDone("t1", pipeline.Result{Source: "actioncenter", Err: fmt.Errorf("portal: %w", auth.ErrSessionExpired)})
	m.SourceDone("t1", pipeline.Result{Source: "actioncenter"})
	if ok, r := m.Ready(); !ok {
		t.Fatalf("not ready after the refusing source succeeded: %q", r)
	}
}

func TestHealthz(t *testing.T) {
	var alive error
	m := New(Options{Alive: func() error { return alive }})
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	if code, body := get(t, srv.URL+"/healthz", ""); code != 200 || body != "ok\n" {
		t.Fatalf("healthz = %d %q, want 200 ok", code, body)
	}
	alive = errors.New("scheduler loop stopped 5m ago")
	if code, body := get(t, srv.URL+"/healthz", ""); code != 503 || !strings.Contains(body, "scheduler loop stopped") {
		t.Fatalf("healthz = %d %q, want 503 with the reason", code, body)
	}
	// Failing sources make it not ready, never not alive.
	alive = nil
	for range 5 {
		m.SourceDone("t", pipeline.Result{Source: "s", Err: errors.New("x")})
	}
	if code, _ := get(t, srv.URL+"/healthz", ""); code != 200 {
		t.Fatalf("healthz = %d with failing sources, want 200", code)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	m := New(Options{})
	m.Written("t1", "actioncenter", "files", 5, nil)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	code, body := get(t, srv.URL+"/metrics", "")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{
		`defenderharvester_output_records_written_total{output="files",source="actioncenter",tenant="t1"} 5`,
		"go_goroutines", "process_start_time_seconds",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if code, _ := get(t, srv.URL+"/nothing", ""); code != 404 {
		t.Errorf("/nothing = %d, want 404", code)
	}
}

func TestObserveAttempt(t *testing.T) {
	m := New(Options{})
	g := m.Registry()
	p := httpx.Policy{Label: "entra", Observe: m.ObserveAttempt}
	for _, a := range []httpx.Attempt{
		{N: 1, Status: 429, Class: "4xx", Throttled: true, Retry: true},
		{N: 2, Status: 503, Class: "5xx", Throttled: true, Retry: true},
		{N: 3, Status: 503, Class: "5xx"},
	} {
		a.Label = p.Label
		p.Observe(a)
	}
	m.ObserveAttempt(httpx.Attempt{Class: "network", Retry: true}) // a policy nobody labelled
	for _, tt := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"defenderharvester_http_throttled_total", map[string]string{"api": "entra"}, 2},
		{"defenderharvester_http_retries_total", map[string]string{"api": "entra", "class": "4xx"}, 1},
		{"defenderharvester_http_retries_total", map[string]string{"api": "entra", "class": "5xx"}, 1},
		{"defenderharvester_http_retry_give_ups_total", map[string]string{"api": "entra", "class": "5xx"}, 1},
		{"defenderharvester_http_retries_total", map[string]string{"api": "unknown", "class": "network"}, 1},
	} {
		if got := mustSample(t, g, tt.name, tt.labels); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
}

func TestServiceGauges(t *testing.T) {
	clk := newClock()
	m := New(Options{Now: clk.Now})
	g := m.Registry()
	to := func(o string) map[string]string { return map[string]string{"tenant": "t1", "output": o} }

	m.SetSpools("t1", []state.SpoolInfo{{Output: "splunk", Batches: 2, Records: 300, Bytes: 9000}, {Output: "sentinel", Records: 1, Bytes: 10}})
	m.SetSpools("t1", []state.SpoolInfo{{Output: "splunk", Batches: 3, Records: 450, Bytes: 12000}}) // sentinel drained
	m.SetSpool("t2", "files", 7, 70)
	m.SetDeliveryStats("t1", "splunk", delivery.Stats{Requests: 10, Retries: 3, BytesSent: 1234, DeadLettered: 2, DeadLetters: "/var/lib/x/deadletter/splunk-*.jsonl"})
	m.SetSchedule("t1", "actioncenter", 5*time.Minute)
	m.RunSkipped("t1", "actioncenter")
	done := m.WaitingForSlot("t1")
	if v := mustSample(t, g, "defenderharvester_scheduler_runs_waiting", map[string]string{"tenant": "t1"}); v != 1 {
		t.Errorf("waiting = %v, want 1", v)
	}
	clk.Add(20 * time.Second)
	done()
	done() // idempotent

	for _, tt := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"defenderharvester_spool_records", to("splunk"), 450},
		{"defenderharvester_spool_bytes", to("splunk"), 12000},
		{"defenderharvester_spool_records", to("sentinel"), 0},
		{"defenderharvester_spool_bytes", map[string]string{"tenant": "t2", "output": "files"}, 70},
		{"defenderharvester_output_requests_total", to("splunk"), 10},
		{"defenderharvester_output_request_retries_total", to("splunk"), 3},
		{"defenderharvester_output_sent_bytes_total", to("splunk"), 1234},
		{"defenderharvester_output_dead_lettered_records_total", to("splunk"), 2},
		{"defenderharvester_source_schedule_interval_seconds", ts("t1", "actioncenter"), 300},
		{"defenderharvester_scheduler_runs_skipped_total", ts("t1", "actioncenter"), 1},
		{"defenderharvester_scheduler_runs_waiting", map[string]string{"tenant": "t1"}, 0},
		{"defenderharvester_scheduler_slot_wait_seconds", map[string]string{"tenant": "t1"}, 1},
	} {
		if got := mustSample(t, g, tt.name, tt.labels); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}

	m.Forget("t1")
	for _, name := range []string{"defenderharvester_spool_records", "defenderharvester_source_schedule_interval_seconds"} {
		fams, _ := g.Gather()
		for _, f := range fams {
			for _, s := range f.GetMetric() {
				for _, l := range s.GetLabel() {
					if f.GetName() == name && l.GetName() == "tenant" && l.GetValue() == "t1" {
						t.Errorf("%s still has tenant t1 after Forget", name)
					}
				}
			}
		}
	}
	if _, ok := sample(t, g, "defenderharvester_spool_bytes", map[string]string{"tenant": "t2", "output": "files"}); !ok {
		t.Error("Forget(t1) dropped t2's spool")
	}
}

// TestLint: every metric follows the Prometheus naming rules (units,
// _total on counters, help text).
func TestLint(t *testing.T) {
	m := populated(newClock())
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, Namespace+"_") {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	}
}

func TestErrorKind(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("source x: %w", err) }
	for _, tt := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{errors.New("anything"), KindOther},
		{wrap(context.Canceled), KindCanceled},
		{wrap(delivery.Permanent(errors.New("403"))), KindRefusedByOutput},
		{wrap(delivery.Rejected(errors.New("bad record"))), KindRefusedByOutput},
		{wrap(state.ErrSpoolFull), KindRefusedByOutput},
		{wrap(state.ErrDamaged), KindState},
		{wrap(mde.ErrSessionExpired), KindSessionExpired},
		{wrap(auth.ErrSessionExpired), KindSessionExpired},
		{wrap(&auth.SignInError{Code: 50058}), KindAuth},
		{wrap(mde.ErrUnauthorized), KindAuth},
		{wrap(mde.ErrWrongTenant), KindAuth},
		{wrap(mde.ErrThrottled), KindThrottled},
		{wrap(&httpx.StatusError{Code: 429}), KindThrottled},
		{wrap(httpx.ErrTimeout), KindTimeout},
		{wrap(context.DeadlineExceeded), KindTimeout},
		{wrap(httpx.AttemptError(nil, errors.New("connection refused"), "h", time.Second, false)), KindNetwork},
		{wrap(httpx.ErrCertificate), KindNetwork},
		{wrap(mde.ErrServer), KindServer},
		{wrap(&httpx.StatusError{Code: 502}), KindServer},
		{wrap(mde.ErrNotJSON), KindShape},
		{wrap(srcutil.ErrRepeatedLink), KindShape},
		{wrap(readListErr()), KindShape},
		{wrap(json.Unmarshal([]byte("{"), new(any))), KindShape},
		{wrap(mde.ErrNotFound), KindAPI},
		{wrap(mde.ErrRedirect), KindAPI},
		{wrap(fmt.Errorf("%w: %w", mde.ErrSessionUpkeep, errors.New("odd"))), KindAuth},
		{wrap(fmt.Errorf("%w: %w", mde.ErrSessionUpkeep, httpx.ErrTimeout)), KindTimeout},
		// The cause an operator acts on wins over the symptom.
		{errors.Join(httpx.ErrTimeout, mde.ErrSessionExpired), KindSessionExpired},
		{errors.Join(errors.New("x"), delivery.Permanent(httpx.ErrTimeout)), KindRefusedByOutput},
	} {
		if got := ErrorKind(tt.err); got != tt.want {
			t.Errorf("ErrorKind(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestOutcome(t *testing.T) {
	boom := errors.New("boom")
	for _, tt := range []struct {
		name string
		res  pipeline.Result
		want string
	}{
		{"ok", pipeline.Result{}, OutcomeOK},
		{"failed", pipeline.Result{Err: boom}, OutcomeFailed},
		{"cancelled", pipeline.Result{Err: fmt.Errorf("x: %w", context.Canceled), New: 5}, OutcomeCanceled},
		{"delivered some", pipeline.Result{Err: boom, New: 5}, OutcomePartial},
		{"partial snapshot", pipeline.Result{Err: fmt.Errorf("x: %w", &source.PartialError{Failed: []string{"a"}, Err: boom})}, OutcomePartial},
		{"some parts failed", pipeline.Result{Err: boom, PartsTotal: 3, Parts: []pipeline.PartResult{{Part: "d1"}}}, OutcomePartial},
		{"every part failed", pipeline.Result{Err: boom, PartsTotal: 1, Parts: []pipeline.PartResult{{Part: "d1"}}}, OutcomeFailed},
	} {
		if got := Outcome(tt.res); got != tt.want {
			t.Errorf("%s: Outcome = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func get(t *testing.T, url, accept string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// populated is Metrics after one call of every method that makes series,
// so every metric of the registry is exposed.
func populated(clk *fakeClock) *Metrics {
	m := New(Options{Now: clk.Now})
	m.SourceStarted("t1", "actioncenter")
	m.ChunkDone("t1", "actioncenter", source.Window{}, 1)
	m.Written("t1", "actioncenter", "splunk", 1, nil)
	m.Written("t1", "actioncenter", "splunk", 1, errors.New("down"))
	m.Spooled("t1", "actioncenter", "splunk", 1)
	m.SourceDone("t1", pipeline.Result{Source: "actioncenter", Fetched: 1, New: 1, Cursor: clk.Now(), Duration: time.Second})
	m.SourceDone("t1", pipeline.Result{Source: "machinegroups", Changes: map[string]int{"Added": 1}, Err: errors.New("x")})
	m.SetSchedule("t1", "actioncenter", time.Minute)
	m.RunSkipped("t1", "actioncenter")
	m.WaitingForSlot("t1")()
	m.SetSession("t1", Session{Obtained: clk.Now(), Expires: clk.Now().Add(time.Hour)})
	m.SetSpool("t1", "splunk", 1, 1)
	m.SetDeliveryStats("t1", "splunk", delivery.Stats{Requests: 1})
	m.SetPace("t1", "portal", Pace{Limit: 4, InFlight: 2, Paused: true})
	m.ObserveAttempt(httpx.Attempt{Label: "portal", Class: "5xx", Throttled: true, Retry: true})
	m.ObserveAttempt(httpx.Attempt{Label: "portal", Class: "5xx"})
	m.SetWebhookStats("t1", webhook.Stats{Requests: 1, Notifications: 1, Accepted: 1, Queued: 1, Remembered: 1})
	m.WebhookPushed("t1", pipeline.Result{Source: "auditlog", Fetched: 1, New: 1}, 1)
	m.WebhookUnrouted(func() uint64 { return 1 })
	return m
}

// readListErr is what a source meets on an answer it cannot read.
func readListErr() error {
	_, err := srcutil.ReadList("src", []byte(`{"odd":1}`), srcutil.ListShape{})
	return err
}

// The pacer gauges: a throttled client shows its lowered limit and that
// it is paused; Forget drops them with the tenant.
func TestPaceGauges(t *testing.T) {
	m := New(Options{Now: newClock().Now})
	m.SetPace("contoso", "portal", Pace{Limit: 2, InFlight: 1, Paused: true})
	labels := map[string]string{"tenant": "contoso", "api": "portal"}
	if v := mustSample(t, m.Registry(), Namespace+"_api_concurrency_limit", labels); v != 2 {
		t.Errorf("limit = %v, want 2", v)
	}
	if v := mustSample(t, m.Registry(), Namespace+"_api_requests_in_flight", labels); v != 1 {
		t.Errorf("in flight = %v, want 1", v)
	}
	if v := mustSample(t, m.Registry(), Namespace+"_api_paused", labels); v != 1 {
		t.Errorf("paused = %v, want 1", v)
	}
	m.SetPace("contoso", "portal", Pace{Limit: 8})
	if v := mustSample(t, m.Registry(), Namespace+"_api_paused", labels); v != 0 {
		t.Errorf("paused after the pause = %v, want 0", v)
	}
	m.Forget("contoso")
	if _, ok := sample(t, m.Registry(), Namespace+"_api_concurrency_limit", labels); ok {
		t.Error("the gauge outlived its tenant")
	}
}
