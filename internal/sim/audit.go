package sim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ---- Office 365 Management Activity API (manage.office.com) ----
//
// Follows the shared protocol reference §C (the Management Activity API
// reference and troubleshooting pages): routes under
// /api/v1.0/{tenant}/activity/feed/, the AF error envelope, the content
// window rules, NextPageUri paging, blobs, webhooks and throttling. Where
// the reference is silent the choices are listed in README "Office 365
// Management Activity API".

// FamilyManage counts and targets (faults) the Management Activity API.
const FamilyManage = "manage"

// auditState is one tenant's Management Activity API state.
type auditState struct {
	mu             sync.Mutex
	logDisabled    bool // unified audit logging switched off
	roleWithheld   bool // the app's token lacks ActivityFeed.Read
	throttleStatus int  // 403 or 429
	quota          int  // requests per minute per publisher pool
	quotaMinute    int64
	quotaUsed      map[string]int
	subs           map[string]*auditSub // by content type
	history        []auditNotification  // webhook attempts, oldest first (bounded)
	loop           bool                 // the delivery loop runs
	deliverMu      sync.Mutex           // one delivery round at a time
}

type auditSub struct {
	enabled   bool
	hook      *auditHook
	clientID  string
	lastStart time.Time // wall clock, for the start throttle
}

type auditHook struct {
	Address    string    `json:"address"`
	AuthID     string    `json:"authId"`
	Expiration string    `json:"expiration"`
	cursor     time.Time // data clock: blobs created after it are yet to be notified
	// failures counts the notification batches in a row that failed
	// (every retry refused); disabled is set after
	// AuditWebhookDisableAfter of them, until a start re-enables it.
	failures int
	disabled bool
}

func (h *auditHook) same(o *auditHook) bool {
	if h == nil || o == nil {
		return h == nil && o == nil
	}
	return h.Address == o.Address && h.AuthID == o.AuthID && h.Expiration == o.Expiration
}

func (h *auditHook) view() any {
	if h == nil {
		return nil
	}
	status := "enabled"
	if h.disabled {
		status = "disabled"
	}
	return map[string]string{"status": status, "address": h.Address, "authId": h.AuthID, "expiration": h.Expiration}
}

// active reports whether notifications go to h.
func (h *auditHook) active() bool { return h != nil && !h.disabled }

// maxAuditHistory bounds the notification history per tenant.
const maxAuditHistory = 20000

type auditNotification struct {
	ct, id  string
	created time.Time
	sent    time.Time
	status  string
}

func newAuditState(o Options) *auditState {
	return &auditState{throttleStatus: o.AuditThrottleStatus, quota: o.AuditQuotaPerMinute, quotaUsed: map[string]int{}, subs: map[string]*auditSub{}}
}

// ---- knobs ----

// SetUnifiedAuditLog switches the tenant's unified audit logging on (the
// default) or off; off, every Management Activity API call answers the
// service's "Tenant <id> does not exist." error (HTTP 400).
func (t *Tenant) SetUnifiedAuditLog(enabled bool) {
	t.audit.mu.Lock()
	defer t.audit.mu.Unlock()
	t.audit.logDisabled = !enabled
}

// SetAuditRoleGranted grants (default) or withholds ActivityFeed.Read from
// the tenant's app: tokens issued afterwards for https://manage.office.com
// carry no role and every call answers AF10001.
func (t *Tenant) SetAuditRoleGranted(granted bool) {
	t.audit.mu.Lock()
	defer t.audit.mu.Unlock()
	t.audit.roleWithheld = !granted
}

func (t *Tenant) auditRoleGranted() bool {
	t.audit.mu.Lock()
	defer t.audit.mu.Unlock()
	return !t.audit.roleWithheld
}

// SetAuditThrottleStatus picks the HTTP status of AF429 answers: 403 (the
// troubleshooting page's example, the default) or 429.
func (t *Tenant) SetAuditThrottleStatus(status int) error {
	if status != http.StatusForbidden && status != http.StatusTooManyRequests {
		return fmt.Errorf("sim: AF429 status %d: use 403 or 429", status)
	}
	t.audit.mu.Lock()
	defer t.audit.mu.Unlock()
	t.audit.throttleStatus = status
	return nil
}

// SetAuditQuotaPerMinute sets the per-minute request quota of each
// publisher pool (PublisherIdentifier, or the shared pool without one).
func (t *Tenant) SetAuditQuotaPerMinute(n int) {
	t.audit.mu.Lock()
	defer t.audit.mu.Unlock()
	t.audit.quota = max(1, n)
}

// ---- the service ----

// auditMethods names a route's operation as AF429 messages do.
var auditMethods = map[string]string{
	"start": "StartSubscription", "stop": "StopSubscription", "list": "ListSubscriptions",
	"content": "ListContent", "notifications": "ListNotifications", "audit": "GetBlob",
}

func auditMethod(q *req) string {
	segs := strings.Split(strings.Trim(q.r.URL.Path, "/"), "/")
	for i := len(segs) - 1; i >= 0; i-- {
		if m, ok := auditMethods[strings.ToLower(segs[i])]; ok {
			return m
		}
	}
	return "Unknown"
}

func (t *Tenant) manageService() service {
	s := service{family: FamilyManage, fail: t.manageFail, auth: t.manageAuth}
	// The documented NextPageUri uses /api/v1/: both prefixes route.
	for _, v := range []string{"v1.0", "v1"} {
		p := "/api/" + v + "/{tenant}/activity/feed/"
		s.routes.add(http.MethodPost, p+"subscriptions/start", "", t.hAuditStart)
		s.routes.add(http.MethodPost, p+"subscriptions/stop", "", t.hAuditStop)
		s.routes.add(http.MethodGet, p+"subscriptions/list", "", t.hAuditList)
		s.routes.add(http.MethodGet, p+"subscriptions/content", "", t.hAuditContent)
		s.routes.add(http.MethodGet, p+"subscriptions/notifications", "", t.hAuditNotifications)
		s.routes.add(http.MethodGet, p+"audit/{contentId}", "", t.hAuditBlob)
	}
	return s
}

// afFail writes the service's envelope {"error":{"code","message"}}.
func afFail(q *req, status int, code, msg string) {
	q.json(status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

// manageFail is the service's fail: router errors and injected faults in
// the AF envelope (a 429 fault is AF429 with the tenant's throttle status
// and no Retry-After, which the service does not send).
func (t *Tenant) manageFail(q *req, status int, code, msg string) {
	switch {
	case status == http.StatusTooManyRequests:
		q.w.Header().Del("Retry-After")
		t.af429(q)
	case status >= 500:
		q.w.Header().Del("Retry-After")
		afFail(q, status, "AF50000", "An internal server error occurred. Retry the request.")
	default:
		afFail(q, status, code, msg)
	}
}

func publisherOf(q *req) string {
	p, _ := param(q, "PublisherIdentifier")
	return strings.ToLower(strings.TrimSpace(p))
}

func (t *Tenant) af429(q *req) {
	t.audit.mu.Lock()
	st := t.audit.throttleStatus
	t.audit.mu.Unlock()
	pub := publisherOf(q)
	if pub == "" {
		pub = "00000000-0000-0000-0000-000000000000"
	}
	afFail(q, st, "AF429", fmt.Sprintf("Too many requests. Method=%s, PublisherId=%s", auditMethod(q), pub))
}

var reTenantGUID = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// manageAuth checks token, tenant, role, audit logging and the quota.
func (t *Tenant) manageAuth(q *req) bool {
	c, present, err := t.bearer(q.r)
	if !present || err != nil || !audIn(c, AuditResource) {
		// ASP.NET Web API's answer to a missing or unacceptable token.
		q.json(http.StatusUnauthorized, map[string]string{"Message": "Authorization has been denied for this request."})
		return false
	}
	seg := q.vars["tenant"]
	switch {
	case !reTenantGUID.MatchString(seg):
		afFail(q, http.StatusBadRequest, "AF20013", fmt.Sprintf("The tenant ID passed in the URL (%s) is not a valid GUID.", seg))
		return false
	case !strings.EqualFold(seg, c.Tid):
		afFail(q, http.StatusUnauthorized, "AF20010", fmt.Sprintf("The tenant ID passed in the URL (%s) does not match the tenant ID passed in the access token (%s).", seg, c.Tid))
		return false
	case !hasRole(c, AuditRole):
		afFail(q, http.StatusUnauthorized, "AF10001", fmt.Sprintf("The permission set (%s) sent in the request did not include the expected permission %s.", strings.Join(c.Roles, ","), AuditRole))
		return false
	}
	q.claims = c
	pub := publisherOf(q)
	now := t.clock()
	t.audit.mu.Lock()
	disabled := t.audit.logDisabled
	over := false
	if !disabled {
		if m := now.Unix() / 60; m != t.audit.quotaMinute {
			t.audit.quotaMinute, t.audit.quotaUsed = m, map[string]int{}
		}
		if t.audit.quotaUsed[pub] >= t.audit.quota {
			over = true
		} else {
			t.audit.quotaUsed[pub]++
		}
	}
	t.audit.mu.Unlock()
	switch {
	case disabled:
		ct, _ := param(q, "contentType")
		p := publisherOf(q)
		if p == "" {
			p = c.AppID
		}
		afFail(q, http.StatusBadRequest,
			fmt.Sprintf("%s [CorrId=%s][TenantId=%s,ContentType=%s,ApplicationId=%s,PublisherId=%s][AppId=%s] failed. Exception", auditMethod(q), correlationID(), t.w.tenantID, ct, c.AppID, p, c.AppID),
			fmt.Sprintf("Microsoft.Office.Compliance.Audit.DataServiceException: Tenant %s does not exist.", t.w.tenantID))
		return false
	case over:
		t.faults.count(Fault429)
		t.af429(q)
		return false
	}
	return true
}

// contentTypeParam reads contentType; a missing or unknown one is AF20020.
func contentTypeParam(q *req) (string, bool) {
	ct, _ := param(q, "contentType")
	if auditCTIndex(ct) < 0 {
		afFail(q, http.StatusBadRequest, "AF20020", "The specified content type is not valid.")
		return "", false
	}
	return ct, true
}

// ---- subscriptions ----

func (t *Tenant) hAuditStart(q *req) {
	ct, ok := contentTypeParam(q)
	if !ok {
		return
	}
	body, err := q.readBody(64 << 10)
	if err != nil {
		afFail(q, http.StatusBadRequest, "AF20002", "Invalid parameter type: body. Expected type: JSON object of at most 64 KiB.")
		return
	}
	var in struct {
		Webhook *auditHook `json:"webhook"`
	}
	if s := strings.TrimSpace(string(body)); s != "" {
		if err := json.Unmarshal(body, &in); err != nil {
			afFail(q, http.StatusBadRequest, "AF20002", "Invalid parameter type: body. Expected type: JSON object such as {\"webhook\":{\"address\":\"https://…\",\"authId\":\"…\",\"expiration\":\"\"}}.")
			return
		}
	}
	hook := in.Webhook
	if hook != nil && hook.Address == "" && hook.AuthID == "" && hook.Expiration == "" {
		hook = nil
	}
	if hook != nil && hook.Expiration != "" {
		exp, err := parseAuditTime(hook.Expiration)
		if err != nil {
			afFail(q, http.StatusBadRequest, "AF20002", fmt.Sprintf("Invalid parameter type: expiration (%s). Expected type: DateTime.", hook.Expiration))
			return
		}
		if !exp.After(q.now) {
			afFail(q, http.StatusBadRequest, "AF20003", fmt.Sprintf("Expiration %s provided is set to past date and time.", hook.Expiration))
			return
		}
	}
	wall := t.clock()
	t.audit.mu.Lock()
	sub := t.audit.subs[ct]
	switch {
	// A disabled webhook given again is a change: the start re-enables it.
	case sub != nil && sub.enabled && sub.hook.same(hook) && (hook == nil || sub.hook.active()):
		t.audit.mu.Unlock()
		afFail(q, http.StatusBadRequest, "AF20024", "The subscription is already enabled. No property change.")
		return
	case sub != nil && !sub.lastStart.IsZero() && wall.Sub(sub.lastStart) < auditStartThrottle:
		t.audit.mu.Unlock()
		t.faults.count(Fault429)
		t.af429(q)
		return
	}
	t.audit.mu.Unlock()
	if hook != nil {
		if !strings.HasPrefix(strings.ToLower(hook.Address), "https://") {
			afFail(q, http.StatusBadRequest, "AF20021", "The address must begin with HTTPS.")
			return
		}
		if err := t.validateWebhook(q.r.Context(), hook); err != nil {
			afFail(q, http.StatusBadRequest, "AF20021", fmt.Sprintf("The webhook endpoint {%s} could not be validated. %s", hook.Address, err.Error()))
			return
		}
		hook.cursor = q.now
	}
	t.audit.mu.Lock()
	sub = t.audit.subs[ct]
	if sub == nil {
		sub = &auditSub{}
		t.audit.subs[ct] = sub
	}
	// The same webhook, or one re-enabled at the address of the disabled
	// one, resumes where the notifications stopped.
	if hook != nil && sub.enabled && sub.hook != nil && (sub.hook.same(hook) || sub.hook.disabled && sub.hook.Address == hook.Address) {
		hook.cursor = sub.hook.cursor
	}
	sub.enabled, sub.hook, sub.clientID, sub.lastStart = true, hook, q.claims.AppID, wall
	startLoop := hook != nil && !t.audit.loop && t.opts.AuditWebhookPoll > 0
	if startLoop {
		t.audit.loop = true
	}
	t.audit.mu.Unlock()
	if startLoop {
		go t.deliveryLoop()
	}
	q.json(http.StatusOK, map[string]any{"contentType": ct, "status": "enabled", "webhook": hook.view()})
}

func (t *Tenant) hAuditStop(q *req) {
	ct, ok := contentTypeParam(q)
	if !ok {
		return
	}
	t.audit.mu.Lock()
	sub := t.audit.subs[ct]
	if sub == nil || !sub.enabled {
		t.audit.mu.Unlock()
		afFail(q, http.StatusBadRequest, "AF20022", "No subscription found for the specified content type.")
		return
	}
	sub.enabled = false
	t.audit.mu.Unlock()
	q.w.Header().Set("Content-Length", "0")
	q.w.WriteHeader(http.StatusOK)
}

func (t *Tenant) hAuditList(q *req) {
	out := []map[string]any{}
	t.audit.mu.Lock()
	for _, ct := range auditCTs {
		sub := t.audit.subs[ct]
		if sub == nil {
			continue
		}
		status := "enabled"
		var hook any
		if sub.enabled {
			hook = sub.hook.view()
		} else {
			status = "disabled"
		}
		out = append(out, map[string]any{"contentType": ct, "status": status, "webhook": hook})
	}
	t.audit.mu.Unlock()
	q.json(http.StatusOK, out)
}

// subscribed answers AF20022 unless ct's subscription is enabled.
func (t *Tenant) subscribed(q *req, ct string) bool {
	t.audit.mu.Lock()
	sub := t.audit.subs[ct]
	ok := sub != nil && sub.enabled
	t.audit.mu.Unlock()
	if !ok {
		afFail(q, http.StatusBadRequest, "AF20022", "No subscription found for the specified content type.")
	}
	return ok
}

// ---- the content window and paging ----

const (
	msgAF20030 = "Start time and end time must both be specified (or both omitted) and must be less than or equal to 24 hours apart, with the start time no more than 7 days in the past."
	msgAF20055 = "Start time and end time must both be specified (or both omitted) and must be less than or equal to 24 hours apart, with the start time prior to end time."
)

// auditTimeLayouts are the documented forms (UTC); a fraction and a
// trailing Z are accepted too.
var auditTimeLayouts = []string{"2006-01-02", "2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02T15:04:05.999999999"}

func parseAuditTime(s string) (time.Time, error) {
	s = strings.TrimSuffix(strings.TrimSpace(s), "Z")
	for _, l := range auditTimeLayouts {
		if tm, err := time.ParseInLocation(l, s, time.UTC); err == nil {
			return tm, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not YYYY-MM-DD, YYYY-MM-DDTHH:MM or YYYY-MM-DDTHH:MM:SS (UTC)", s)
}

// auditWindow reads startTime/endTime and applies the rules; it returns the
// window and the strings NextPageUri repeats.
func auditWindow(q *req) (from, to time.Time, fromS, toS string, ok bool) {
	fromS, hasFrom := param(q, "startTime")
	toS, hasTo := param(q, "endTime")
	hasFrom, hasTo = hasFrom && fromS != "", hasTo && toS != ""
	switch {
	case hasFrom != hasTo:
		afFail(q, http.StatusBadRequest, "AF20030", msgAF20030)
		return
	case !hasFrom:
		to = q.now.UTC().Truncate(time.Second)
		from = to.Add(-auditMaxWindow)
		fromS, toS = from.Format("2006-01-02T15:04:05"), to.Format("2006-01-02T15:04:05")
	default:
		var e1, e2 error
		from, e1 = parseAuditTime(fromS)
		to, e2 = parseAuditTime(toS)
		if e1 != nil || e2 != nil {
			afFail(q, http.StatusBadRequest, "AF20030", msgAF20030)
			return
		}
	}
	switch {
	case !from.Before(to):
		afFail(q, http.StatusBadRequest, "AF20055", msgAF20055)
		return
	case to.Sub(from) > auditMaxWindow || from.Before(q.now.Add(-auditRetention)):
		afFail(q, http.StatusBadRequest, "AF20030", msgAF20030)
		return
	}
	return from, to, fromS, toS, true
}

// nextPageToken is opaque to clients: the next item's index and a check
// binding it to the tenant, route, content type and window.
func (t *Tenant) nextPageToken(route, ct, fromS, toS string, from time.Time, idx int) string {
	return fmt.Sprintf("%sR%09d%06x", from.Format("2006010215"), idx, t.pageCheck(route, ct, fromS, toS, idx))
}

func (t *Tenant) pageCheck(route, ct, fromS, toS string, idx int) uint64 {
	return mix(uint64(t.w.seed)^strLabel(strings.Join([]string{t.w.tenantID, route, ct, fromS, toS, strconv.Itoa(idx)}, "|"))) & 0xffffff
}

// pageStart reads nextPage; a bad token is AF20031.
func (t *Tenant) pageStart(q *req, route, ct, fromS, toS string) (int, bool) {
	tok, has := param(q, "nextPage")
	if !has {
		return 0, true
	}
	bad := func() (int, bool) {
		afFail(q, http.StatusBadRequest, "AF20031", fmt.Sprintf("Invalid nextPage Input: %s.", tok))
		return 0, false
	}
	if len(tok) != 10+1+9+6 || tok[10] != 'R' {
		return bad()
	}
	idx, err := strconv.Atoi(tok[11:20])
	check, err2 := strconv.ParseUint(tok[20:], 16, 32)
	if err != nil || err2 != nil || check != t.pageCheck(route, ct, fromS, toS, idx) {
		return bad()
	}
	return idx, true
}

// writePage answers items[idx:idx+cap] with NextPageUri when more follow.
func (t *Tenant) writePage(q *req, route, ct, fromS, toS string, from time.Time, idx int, items []map[string]any) {
	size := t.opts.AuditPageCap
	if idx > len(items) {
		idx = len(items)
	}
	end := min(len(items), idx+size)
	if end < len(items) {
		v := "contentType=" + url.QueryEscape(ct) + "&startTime=" + url.QueryEscape(fromS) + "&endTime=" + url.QueryEscape(toS)
		if p, ok := param(q, "PublisherIdentifier"); ok {
			v += "&PublisherIdentifier=" + url.QueryEscape(p)
		}
		v += "&nextPage=" + t.nextPageToken(route, ct, fromS, toS, from, end)
		q.w.Header().Set("NextPageUri", "https://"+ManageHost+"/api/v1/"+t.w.tenantID+"/activity/feed/subscriptions/"+route+"?"+v)
	}
	q.json(http.StatusOK, items[idx:end])
}

func (t *Tenant) contentItem(ct, id string, created time.Time) map[string]any {
	return map[string]any{
		"contentType": ct, "contentId": id, "contentUri": t.contentURI(id),
		"contentCreated": fmtMsZ(created), "contentExpiration": fmtMsZ(created.Add(auditRetention)),
	}
}

func (t *Tenant) hAuditContent(q *req) {
	ct, ok := contentTypeParam(q)
	if !ok || !t.subscribed(q, ct) {
		return
	}
	from, to, fromS, toS, ok := auditWindow(q)
	if !ok {
		return
	}
	idx, ok := t.pageStart(q, "content", ct, fromS, toS)
	if !ok {
		return
	}
	blobs := t.auditBlobsIn(auditCTIndex(ct), from, to, q.now)
	items := make([]map[string]any, 0, len(blobs))
	for _, b := range blobs {
		items = append(items, t.contentItem(ct, b.id, b.created))
	}
	t.writePage(q, "content", ct, fromS, toS, from, idx, items)
}

func (t *Tenant) hAuditNotifications(q *req) {
	ct, ok := contentTypeParam(q)
	if !ok || !t.subscribed(q, ct) {
		return
	}
	from, to, fromS, toS, ok := auditWindow(q)
	if !ok {
		return
	}
	idx, ok := t.pageStart(q, "notifications", ct, fromS, toS)
	if !ok {
		return
	}
	var items []map[string]any
	t.audit.mu.Lock()
	for _, n := range t.audit.history {
		if n.ct != ct || n.sent.Before(from) || !n.sent.Before(to) {
			continue
		}
		it := t.contentItem(ct, n.id, n.created)
		it["notificationSent"] = fmtMsZ(n.sent)
		it["notificationStatus"] = n.status
		items = append(items, it)
	}
	t.audit.mu.Unlock()
	if items == nil {
		items = []map[string]any{}
	}
	t.writePage(q, "notifications", ct, fromS, toS, from, idx, items)
}

func (t *Tenant) hAuditBlob(q *req) {
	id := q.vars["contentId"]
	b, shaped := t.findBlob(id)
	switch {
	case !shaped:
		afFail(q, http.StatusBadRequest, "AF20052", fmt.Sprintf("Content ID %s in the URL is invalid.", id))
		return
	case b == nil || b.created.After(q.now):
		afFail(q, http.StatusBadRequest, "AF20050", fmt.Sprintf("The specified content (%s) does not exist.", id))
		return
	case !q.now.Before(b.created.Add(auditRetention)):
		afFail(q, http.StatusBadRequest, "AF20051", fmt.Sprintf("Content requested with the key %s has already expired. Content older than 7 days cannot be retrieved.", id))
		return
	}
	q.json(http.StatusOK, t.auditRecords(b))
}
