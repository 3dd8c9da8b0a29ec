package metrics

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/defenderharvester/defenderharvester/internal/httpx"
	"github.com/defenderharvester/defenderharvester/internal/pipeline"
	"github.com/defenderharvester/defenderharvester/internal/webhook"
	"github.com/prometheus/client_golang/prometheus"
)

// TestWebhookStats: a listener's Stats become the webhook series of its
// tenant, one outcome per request counter and one reason per
// webhook.Reason; a new listener's smaller snapshot replaces the old one
// (a counter reset for Prometheus).
func TestWebhookStats(t *testing.T) {
	m := New(Options{Now: newClock().Now})
	g := m.Registry()
	m.SetWebhookStats("contoso", webhook.Stats{
		Requests: 91, Validations: 1, Notifications: 2, AuthMissing: 3, AuthWrong: 4, NotFound: 5, BadMethod: 6,
		BadContentType: 7, Malformed: 8, TooLarge: 9, TooManyItems: 10, Busy: 11, Overflow: 12, Closed: 13,
		Accepted: 100, Duplicates: 20, OverflowItems: 30,
		Rejected: map[webhook.Reason]uint64{webhook.ReasonTenant: 2, webhook.ReasonContentURI: 5, webhook.ReasonExpired: 1},
		Queued:   40, Remembered: 120,
	})
	m.SetWebhookStats("fabrikam", webhook.Stats{}) // a listener nobody called yet: every series at 0

	req := func(tenant, outcome string) (string, map[string]string) {
		return Namespace + "_webhook_requests_total", map[string]string{"tenant": tenant, "outcome": outcome}
	}
	item := func(tenant, result string) (string, map[string]string) {
		return Namespace + "_webhook_notifications_total", map[string]string{"tenant": tenant, "result": result}
	}
	rejected := func(tenant string, r webhook.Reason) (string, map[string]string) {
		return Namespace + "_webhook_notifications_rejected_total", map[string]string{"tenant": tenant, "reason": r.String()}
	}
	gauge := func(name, tenant string) (string, map[string]string) {
		return Namespace + "_" + name, map[string]string{"tenant": tenant}
	}
	type series struct {
		name   string
		labels map[string]string
	}
	at := func(name string, labels map[string]string) series { return series{name, labels} }
	for _, tt := range []struct {
		series
		want float64
	}{
		{at(req("contoso", "validation")), 1},
		{at(req("contoso", "notification")), 2},
		{at(req("contoso", "auth_missing")), 3},
		{at(req("contoso", "auth_wrong")), 4},
		{at(req("contoso", "not_found")), 5},
		{at(req("contoso", "bad_method")), 6},
		{at(req("contoso", "bad_content_type")), 7},
		{at(req("contoso", "malformed")), 8},
		{at(req("contoso", "too_large")), 9},
		{at(req("contoso", "too_many_items")), 10},
		{at(req("contoso", "busy")), 11},
		{at(req("contoso", "overflow")), 12},
		{at(req("contoso", "closed")), 13},
		{at(item("contoso", "accepted")), 100},
		{at(item("contoso", "duplicate")), 20},
		{at(item("contoso", "overflow")), 30},
		{at(item("contoso", "rejected")), 8},
		{at(rejected("contoso", webhook.ReasonMalformed)), 0},
		{at(rejected("contoso", webhook.ReasonTenant)), 2},
		{at(rejected("contoso", webhook.ReasonContentType)), 0},
		{at(rejected("contoso", webhook.ReasonContentID)), 0},
		{at(rejected("contoso", webhook.ReasonContentURI)), 5},
		{at(rejected("contoso", webhook.ReasonTime)), 0},
		{at(rejected("contoso", webhook.ReasonExpired)), 1},
		{at(gauge("webhook_queue_length", "contoso")), 40},
		{at(gauge("webhook_remembered_content_ids", "contoso")), 120},
		{at(req("fabrikam", "auth_wrong")), 0},
		{at(item("fabrikam", "rejected")), 0},
		{at(rejected("fabrikam", webhook.ReasonContentURI)), 0},
		{at(gauge("webhook_queue_length", "fabrikam")), 0},
	} {
		if got := mustSample(t, g, tt.name, tt.labels); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	// Exactly the outcomes and reasons above: the label sets are fixed.
	for name, want := range map[string]int{
		Namespace + "_webhook_requests_total":               13,
		Namespace + "_webhook_notifications_total":          4,
		Namespace + "_webhook_notifications_rejected_total": len(webhook.Reasons()),
		Namespace + "_webhook_queue_length":                 1,
		Namespace + "_webhook_remembered_content_ids":       1,
	} {
		if n := countSeries(t, g, name, "contoso"); n != want {
			t.Errorf("%s has %d series of contoso, want %d", name, n, want)
		}
	}

	// The snapshot is copied: the caller's map changing later is not seen.
	st := webhook.Stats{Rejected: map[webhook.Reason]uint64{webhook.ReasonTime: 3}}
	m.SetWebhookStats("contoso", st) // a new listener (tenant reopened): counters from zero
	st.Rejected[webhook.ReasonTime] = 99
	for _, tt := range []struct {
		series
		want float64
	}{
		{at(req("contoso", "auth_wrong")), 0},
		{at(item("contoso", "accepted")), 0},
		{at(item("contoso", "rejected")), 3},
		{at(rejected("contoso", webhook.ReasonTime)), 3},
		{at(rejected("contoso", webhook.ReasonContentURI)), 0},
	} {
		if got := mustSample(t, g, tt.name, tt.labels); got != tt.want {
			t.Errorf("after a new listener: %s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}

	// And /metrics serves them.
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	_, body := get(t, srv.URL+"/metrics", "")
	for _, want := range []string{
		`defenderharvester_webhook_notifications_rejected_total{reason="time",tenant="contoso"} 3`,
		`defenderharvester_webhook_requests_total{outcome="auth_wrong",tenant="fabrikam"} 0`,
		"# TYPE defenderharvester_webhook_requests_total counter",
		"# TYPE defenderharvester_webhook_queue_length gauge",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestWebhookPushIsNotARun: a push's records add to its source's record
// counters and its outcome to the pushes'; runs, failures in a row, last
// success, running and readiness are left to the runs.
func TestWebhookPushIsNotARun(t *testing.T) {
	clk := newClock()
	m := New(Options{Now: clk.Now, FailuresUntilNotReady: 1})
	g := m.Registry()
	const src = "auditlog"
	boom := fmt.Errorf("source %s (notified content): %w", src, httpx.ErrTimeout)

	m.SourceDone("contoso", pipeline.Result{Source: src, Fetched: 10, New: 8, Duplicates: 2, Cursor: clk.Now()})
	for _, p := range []struct {
		res           pipeline.Result
		notifications int
	}{
		{pipeline.Result{Source: src, Fetched: 5, New: 4, Duplicates: 1}, 2},
		{pipeline.Result{Source: src, Fetched: 3, New: 1, Err: boom}, 1},
		{pipeline.Result{Source: src, Fetched: 1, Err: fmt.Errorf("x: %w", context.Canceled)}, 4},
		{pipeline.Result{Source: src, Err: errors.New("odd")}, 1},
	} {
		m.WebhookPushed("contoso", p.res, p.notifications)
	}
	// A push on a source that never ran makes no run series at all.
	m.WebhookPushed("fabrikam", pipeline.Result{Source: src, Fetched: 2, New: 2}, 1)

	tsr := func(tenant, outcome string) map[string]string {
		return map[string]string{"tenant": tenant, "outcome": outcome}
	}
	for _, tt := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"defenderharvester_source_records_fetched_total", ts("contoso", src), 10 + 5 + 3 + 1},
		{"defenderharvester_source_records_new_total", ts("contoso", src), 8 + 4 + 1},
		{"defenderharvester_source_records_duplicate_total", ts("contoso", src), 2 + 1},
		{"defenderharvester_source_records_fetched_total", ts("fabrikam", src), 2},
		{"defenderharvester_webhook_pushes_total", tsr("contoso", OutcomeOK), 1},
		{"defenderharvester_webhook_pushes_total", tsr("contoso", OutcomeFailed), 2},
		{"defenderharvester_webhook_pushes_total", tsr("contoso", OutcomeCanceled), 1},
		{"defenderharvester_webhook_pushes_total", tsr("fabrikam", OutcomeOK), 1},
		{"defenderharvester_webhook_pushed_notifications_total", map[string]string{"tenant": "contoso"}, 2 + 1 + 4 + 1},
		// The run's, untouched by the pushes.
		{"defenderharvester_source_runs_total", map[string]string{"tenant": "contoso", "source": src, "outcome": OutcomeOK}, 1},
		{"defenderharvester_source_consecutive_failures", ts("contoso", src), 0},
		{"defenderharvester_source_running", ts("contoso", src), 0},
		{"defenderharvester_source_run_duration_seconds", ts("contoso", src), 1},
		{"defenderharvester_source_last_success_timestamp_seconds", ts("contoso", src), float64(clk.Now().Unix())},
	} {
		if got := mustSample(t, g, tt.name, tt.labels); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	for _, name := range []string{"source_runs_total", "source_errors_total", "source_running", "source_run_duration_seconds",
		"source_consecutive_failures", "source_last_success_timestamp_seconds", "source_chunks_total"} {
		if n := countSeries(t, g, Namespace+"_"+name, "fabrikam"); n != 0 {
			t.Errorf("a push made %d series of %s", n, name)
		}
	}
	if n := countSeries(t, g, Namespace+"_source_errors_total", "contoso"); n != 0 {
		t.Errorf("failed pushes made %d series of source_errors_total", n)
	}
	if ok, reasons := m.Ready(); !ok {
		t.Fatalf("failed pushes made it not ready: %q", reasons)
	}

	// Nor does a successful push clear a failing source.
	m.SourceDone("contoso", pipeline.Result{Source: src, Err: boom})
	m.WebhookPushed("contoso", pipeline.Result{Source: src, Fetched: 1, New: 1}, 1)
	if ok, _ := m.Ready(); ok {
		t.Error("a successful push cleared the failed run")
	}
	if v := mustSample(t, g, "defenderharvester_source_consecutive_failures", ts("contoso", src)); v != 1 {
		t.Errorf("consecutive failures = %v after a failed run and a good push, want 1", v)
	}
}

// TestWebhookForget: Forget drops the tenant's webhook series, kept and
// counted, and no one else's.
func TestWebhookForget(t *testing.T) {
	m := New(Options{Now: newClock().Now})
	g := m.Registry()
	for _, tenant := range []string{"contoso", "fabrikam"} {
		m.SetWebhookStats(tenant, webhook.Stats{Requests: 1, AuthWrong: 1, Queued: 3})
		m.WebhookPushed(tenant, pipeline.Result{Source: "auditlog", Fetched: 1, New: 1}, 1)
	}
	m.Forget("contoso")
	for _, tt := range []struct {
		name string
		want int // series of contoso after Forget
	}{
		{"webhook_requests_total", 0},
		{"webhook_notifications_total", 0},
		{"webhook_notifications_rejected_total", 0},
		{"webhook_queue_length", 0},
		{"webhook_remembered_content_ids", 0},
		{"webhook_pushes_total", 0},
		{"webhook_pushed_notifications_total", 0},
		{"source_records_fetched_total", 0},
	} {
		name := Namespace + "_" + tt.name
		if n := countSeries(t, g, name, "contoso"); n != tt.want {
			t.Errorf("%s: %d series of contoso after Forget, want %d", name, n, tt.want)
		}
		if n := countSeries(t, g, name, "fabrikam"); n == 0 {
			t.Errorf("%s: Forget(contoso) dropped fabrikam's", name)
		}
	}
}

// countSeries counts the series of name whose tenant label is tenant.
func countSeries(t *testing.T, g prometheus.Gatherer, name, tenant string) int {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	n := 0
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "tenant" && l.GetValue() == tenant {
					n++
				}
			}
		}
	}
	return n
}
