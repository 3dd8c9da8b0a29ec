package metrics

import (
	"maps"

	"github.com/defenderharvester/defenderharvester/internal/pipeline"
	"github.com/defenderharvester/defenderharvester/internal/webhook"
	"github.com/prometheus/client_golang/prometheus"
)

// The outcomes of a webhook request (the outcome label of
// webhook_requests_total), one per webhook.Stats request counter.
const (
	WebhookValidation     = "validation"       // validation handshake answered 200
	WebhookNotification   = "notification"     // notification request answered 200
	WebhookAuthMissing    = "auth_missing"     // no Webhook-AuthID (401)
	WebhookAuthWrong      = "auth_wrong"       // a wrong Webhook-AuthID (403)
	WebhookNotFound       = "not_found"        // another path (404)
	WebhookBadMethod      = "bad_method"       // not POST (405)
	WebhookBadContentType = "bad_content_type" // not application/json (415)
	WebhookMalformed      = "malformed"        // not a JSON array, nor a validation (400)
	WebhookTooLarge       = "too_large"        // body over the limit (413)
	WebhookTooManyItems   = "too_many_items"   // more notifications than the limit (413)
	WebhookBusy           = "busy"             // too many requests at once (503)
	WebhookOverflow       = "overflow"         // the queue had no room for the request (503)
	WebhookClosed         = "closed"           // arrived during shutdown (503)
)

// The results of a notification item (the result label of
// webhook_notifications_total).
const (
	WebhookItemAccepted  = "accepted"  // queued for a push
	WebhookItemDuplicate = "duplicate" // already queued within the dedup window (answered 200, not queued)
	WebhookItemOverflow  = "overflow"  // in a request refused for overflow (the service sends it again)
	WebhookItemRejected  = "rejected"  // refused by a check (webhook_notifications_rejected_total says which)
)

// labelCount is one series of a counter kept as a snapshot.
type labelCount struct {
	label string
	n     uint64
}

// webhookRequests pairs each request outcome with its counter in st.
func webhookRequests(st *webhook.Stats) []labelCount {
	return []labelCount{
		{WebhookValidation, st.Validations}, {WebhookNotification, st.Notifications},
		{WebhookAuthMissing, st.AuthMissing}, {WebhookAuthWrong, st.AuthWrong},
		{WebhookNotFound, st.NotFound}, {WebhookBadMethod, st.BadMethod},
		{WebhookBadContentType, st.BadContentType}, {WebhookMalformed, st.Malformed},
		{WebhookTooLarge, st.TooLarge}, {WebhookTooManyItems, st.TooManyItems},
		{WebhookBusy, st.Busy}, {WebhookOverflow, st.Overflow}, {WebhookClosed, st.Closed},
	}
}

// SetWebhookStats publishes a tenant's webhook listener's Stats
// (Listener.Stats(), e.g. before each scrape or every few seconds).
// Its counters are the listener's since it was built; a new listener
// starting from zero reads as a counter reset.
func (m *Metrics) SetWebhookStats(tenant string, st webhook.Stats) {
	st.Rejected = maps.Clone(st.Rejected)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.webhooks[tenant] = &st
}

// WebhookPushed records a push (pipeline.Push) of notifications the
// tenant's webhook listener accepted: its records count with the
// source's (fetched, new, duplicate: records delivered by a push are
// records delivered), its outcome with the pushes'. A push is not a run:
// runs, failures in a row, last success, running and readiness are the
// scheduled runs' alone.
func (m *Metrics) WebhookPushed(tenant string, res pipeline.Result, notifications int) {
	src := res.Source
	m.fetched.WithLabelValues(tenant, src).Add(float64(res.Fetched))
	m.newRecs.WithLabelValues(tenant, src).Add(float64(res.New))
	m.duplicates.WithLabelValues(tenant, src).Add(float64(res.Duplicates))
	out := OutcomeOK
	switch ErrorKind(res.Err) {
	case "":
	case KindCanceled:
		out = OutcomeCanceled
	default:
		out = OutcomeFailed
	}
	m.webhookPushes.WithLabelValues(tenant, out).Inc()
	m.webhookPushed.WithLabelValues(tenant).Add(float64(max(notifications, 0)))
}

// collectWebhook sends the series of one tenant's webhook Stats.
func collectWebhook(ch chan<- prometheus.Metric, tenant string, st *webhook.Stats) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for _, r := range webhookRequests(st) {
		counter(descHookRequests, r.n, tenant, r.label)
	}
	var rejected uint64
	for _, r := range webhook.Reasons() {
		n := st.Rejected[r]
		rejected += n
		counter(descHookRejected, n, tenant, r.String())
	}
	counter(descHookItems, st.Accepted, tenant, WebhookItemAccepted)
	counter(descHookItems, st.Duplicates, tenant, WebhookItemDuplicate)
	counter(descHookItems, st.OverflowItems, tenant, WebhookItemOverflow)
	counter(descHookItems, rejected, tenant, WebhookItemRejected)
	ch <- prometheus.MustNewConstMetric(descHookQueued, prometheus.GaugeValue, float64(st.Queued), tenant)
	ch <- prometheus.MustNewConstMetric(descHookRemembered, prometheus.GaugeValue, float64(st.Remembered), tenant)
}

// WebhookUnrouted counts, through n, the requests the webhook server
// answered 404 because no tenant's listener is mounted on their path
// (scanners, a proxy that rewrites paths): no tenant label, as no tenant
// is involved. Called once by the service that runs the server.
func (m *Metrics) WebhookUnrouted(n func() uint64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: Namespace, Name: "webhook_unrouted_requests_total",
		Help: "Requests the webhook server answered 404 because no tenant's listener serves their path.",
	}, func() float64 { return float64(n()) }))
}
