package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, labels, nil)
}

// The series computed at scrape time from what Metrics keeps: lag and
// ages grow with the clock even while nothing reports anything, which is
// the point when a source is stalled.
var (
	descCursor      = desc("source_cursor_timestamp_seconds", "How far the source is harvested (Unix time): an event source's cursor, a snapshot source's last snapshot.", "tenant", "source")
	descLag         = desc("source_lag_seconds", "Now minus the cursor: how far behind the harvest is; keeps growing while the source is stalled.", "tenant", "source")
	descLastSuccess = desc("source_last_success_timestamp_seconds", "When a run of the source last succeeded (Unix time).", "tenant", "source")
	descFailures    = desc("source_consecutive_failures", "Failed runs of the source in a row (0 after a success).", "tenant", "source")
	descSessionAge  = desc("portal_session_age_seconds", "Age of the tenant's portal session (since it was issued or renewed).", "tenant")
	descSessionExp  = desc("portal_session_expiry_timestamp_seconds", "When the tenant's portal session expires (Unix time), when known.", "tenant")
	descSessionGone = desc("portal_session_expired", "1 when the tenant's portal session has expired or the portal refused it, else 0.", "tenant")
	descSpoolRecs   = desc("spool_records", "Records waiting in the output's spool.", "tenant", "output")
	descSpoolBytes  = desc("spool_bytes", "Bytes waiting in the output's spool.", "tenant", "output")
	descRequests    = desc("output_requests_total", "Requests a network output sent, retries included.", "tenant", "output")
	descRetries     = desc("output_request_retries_total", "Requests a network output sent again after a failure.", "tenant", "output")
	descSentBytes   = desc("output_sent_bytes_total", "Request body bytes a network output sent.", "tenant", "output")
	descDeadLetters = desc("output_dead_lettered_records_total", "Records an output can never take, written to the dead-letter store.", "tenant", "output")

	descHookRequests   = desc("webhook_requests_total", "Requests the tenant's webhook listener answered, by outcome.", "tenant", "outcome")
	descHookItems      = desc("webhook_notifications_total", "Notification items the webhook listener received, by result: accepted, duplicate, overflow, rejected.", "tenant", "result")
	descHookRejected   = desc("webhook_notifications_rejected_total", "Notification items the webhook listener rejected (answered 200, not queued), by reason.", "tenant", "reason")
	descHookQueued     = desc("webhook_queue_length", "Accepted webhook notifications waiting for a push.", "tenant")
	descHookRemembered = desc("webhook_remembered_content_ids", "Content ids the webhook listener remembers to drop duplicates.", "tenant")
)

// stateCollector exports Metrics' kept state; a distinct type so these
// methods stay off Metrics' API.
type stateCollector Metrics

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCursor, descLag, descLastSuccess, descFailures, descSessionAge,
		descSessionExp, descSessionGone, descSpoolRecs, descSpoolBytes, descRequests, descRetries, descSentBytes, descDeadLetters,
		descHookRequests, descHookItems, descHookRejected, descHookQueued, descHookRemembered} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	m := (*Metrics)(c)
	now := m.opts.Now()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, s := range m.sources {
		gauge(descFailures, float64(s.failures), k.tenant, k.source)
		if !s.cursor.IsZero() {
			gauge(descCursor, unix(s.cursor), k.tenant, k.source)
			gauge(descLag, max(now.Sub(s.cursor), 0).Seconds(), k.tenant, k.source)
		}
		if !s.lastSuccess.IsZero() {
			gauge(descLastSuccess, unix(s.lastSuccess), k.tenant, k.source)
		}
	}
	for tenant, s := range m.sessions {
		if s.known && !s.Obtained.IsZero() {
			gauge(descSessionAge, max(now.Sub(s.Obtained), 0).Seconds(), tenant)
		}
		if s.known && !s.Expires.IsZero() {
			gauge(descSessionExp, unix(s.Expires), tenant)
		}
		gauge(descSessionGone, b2f(s.expired(now)), tenant)
	}
	for k, o := range m.outputs {
		if o.hasSpool {
			gauge(descSpoolRecs, float64(o.spoolRecords), k.tenant, k.output)
			gauge(descSpoolBytes, float64(o.spoolBytes), k.tenant, k.output)
		}
		if o.hasStats {
			counter(descRequests, float64(o.stats.Requests), k.tenant, k.output)
			counter(descRetries, float64(o.stats.Retries), k.tenant, k.output)
			counter(descSentBytes, float64(o.stats.BytesSent), k.tenant, k.output)
			counter(descDeadLetters, float64(o.stats.DeadLettered), k.tenant, k.output)
		}
	}
	for tenant, st := range m.webhooks {
		collectWebhook(ch, tenant, st)
	}
}

func unix(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
