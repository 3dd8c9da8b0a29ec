package sim

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// ---- helpers ----

func newAuditEnv(t *testing.T, mod func(*Options)) *env {
	return newEnv(t, func(o *Options) {
		o.AuditWebhookPoll = -1
		o.AuditWebhookBackoff = time.Millisecond
		if mod != nil {
			mod(o)
		}
	})
}

func (e *env) auditToken() string {
	c := e.ten.Credentials()
	return e.token(c.ClientID, c.ClientSecret, AuditResource+"/.default")
}

// auditTokenAt gets a token from tenant tid's token endpoint.
func (e *env) auditTokenAt(tid, clientID, secret, scope string) string {
	e.t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret}, "scope": {scope}}
	r := e.do(http.MethodPost, "login.microsoftonline.com", "/"+tid+"/oauth2/v2.0/token", []byte(form.Encode()),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if r.status != http.StatusOK {
		e.t.Fatalf("token at %s: %d %s", tid, r.status, r.body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	r.json(e.t, &tok)
	return tok.AccessToken
}

func (e *env) manage(method, pathQuery, tok string, body []byte) resp {
	e.t.Helper()
	h := map[string]string{"Content-Type": "application/json"}
	if tok != "" {
		h["Authorization"] = "Bearer " + tok
	}
	return e.do(method, ManageHost, pathQuery, body, h)
}

func (e *env) feed() string { return "/api/v1.0/" + e.ten.TenantID() + "/activity/feed/" }

func (e *env) startSub(tok, ct string, body []byte) resp {
	e.t.Helper()
	return e.manage(http.MethodPost, e.feed()+"subscriptions/start?contentType="+ct, tok, body)
}

// followURI sends a GET for an absolute manage.office.com URL, verbatim.
func (e *env) followURI(t *testing.T, raw, tok string) resp {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil || u.Host != ManageHost || u.Scheme != "https" {
		t.Fatalf("URI %q is not an https://manage.office.com URL", raw)
	}
	return e.manage(http.MethodGet, u.RequestURI(), tok, nil)
}

func afCode(t *testing.T, r resp) string {
	t.Helper()
	var v struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("not an AF envelope: %d %s", r.status, truncate(r.body))
	}
	return v.Error.Code
}

type contentItem struct {
	ContentType       string `json:"contentType"`
	ContentID         string `json:"contentId"`
	ContentURI        string `json:"contentUri"`
	ContentCreated    string `json:"contentCreated"`
	ContentExpiration string `json:"contentExpiration"`
	// notifications only
	NotificationSent   string `json:"notificationSent"`
	NotificationStatus string `json:"notificationStatus"`
	// webhook notifications only
	TenantID string `json:"tenantId"`
	ClientID string `json:"clientId"`
}

// listAll lists content (or notifications) following NextPageUri to the end.
func (e *env) listAll(t *testing.T, route, ct, query, tok string) (items []contentItem, pages int) {
	t.Helper()
	r := e.manage(http.MethodGet, e.feed()+"subscriptions/"+route+"?contentType="+ct+query, tok, nil)
	for {
		if r.status != http.StatusOK {
			t.Fatalf("%s page %d: %d %s", route, pages+1, r.status, r.body)
		}
		var page []contentItem
		r.json(t, &page)
		items = append(items, page...)
		pages++
		next := r.header.Get("NextPageUri")
		if next == "" {
			return items, pages
		}
		if len(page) != DefaultAuditPageCap {
			t.Fatalf("page %d has %d items and a NextPageUri: want full pages of %d", pages, len(page), DefaultAuditPageCap)
		}
		if !strings.Contains(next, "/api/v1/"+e.ten.TenantID()+"/") || !strings.Contains(next, "nextPage=") {
			t.Fatalf("NextPageUri %q: want the documented /api/v1/ form with nextPage", next)
		}
		r = e.followURI(t, next, tok)
	}
}

// ---- tests ----

func TestAuditErrorCodes(t *testing.T) {
	e := newAuditEnv(t, nil)
	tok := e.auditToken()
	c := e.ten.Credentials()
	noRole := e.token(c.RestrictedClientID, c.RestrictedClientSecret, AuditResource+"/.default")
	publicTok := e.publicToken()
	if r := e.startSub(tok, AuditContentGeneral, nil); r.status != http.StatusOK {
		t.Fatalf("start: %d %s", r.status, r.body)
	}
	tid := e.ten.TenantID()
	other := "11111111-2222-4333-8444-555555555555"
	cases := []struct {
		name, method, path, tok string
		status                  int
		code                    string
	}{
		{"no token", "GET", e.feed() + "subscriptions/list", "", 401, ""},
		{"public API token", "GET", e.feed() + "subscriptions/list", publicTok, 401, ""},
		{"app without ActivityFeed.Read", "GET", e.feed() + "subscriptions/list", noRole, 401, "AF10001"},
		{"tenant not a GUID", "GET", "/api/v1.0/contoso.com/activity/feed/subscriptions/list", tok, 400, "AF20013"},
		{"tenant mismatch", "GET", "/api/v1.0/" + other + "/activity/feed/subscriptions/list", tok, 401, "AF20010"},
		{"invalid content type", "GET", e.feed() + "subscriptions/content?contentType=Audit.Defender", tok, 400, "AF20020"},
		{"content type case", "POST", e.feed() + "subscriptions/start?contentType=audit.general", tok, 400, "AF20020"},
		{"no subscription", "GET", e.feed() + "subscriptions/content?contentType=Audit.Exchange", tok, 400, "AF20022"},
		{"re-start without change", "POST", e.feed() + "subscriptions/start?contentType=Audit.General", tok, 400, "AF20024"},
		{"bad nextPage", "GET", e.feed() + "subscriptions/content?contentType=Audit.General&nextPage=2026031000R000000037abcdef", tok, 400, "AF20031"},
		{"unknown content", "GET", e.feed() + "audit/" + auditContentID(999, ctGeneral, hourOf(testStart), 0), tok, 400, "AF20050"},
		{"invalid content id", "GET", e.feed() + "audit/nonsense", tok, 400, "AF20052"},
		{"unknown route", "GET", e.feed() + "subscriptions/whatever", tok, 404, "NotFound"},
		{"wrong method", "GET", e.feed() + "subscriptions/start?contentType=Audit.General", tok, 405, "MethodNotAllowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.manage(tc.method, tc.path, tc.tok, nil)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.code == "" {
				if !contains(string(r.body), "Authorization has been denied") {
					t.Fatalf("body %s", r.body)
				}
				return
			}
			if got := afCode(t, r); got != tc.code {
				t.Fatalf("code %s, want %s: %s", got, tc.code, r.body)
			}
		})
	}
	t.Run("AF10001 message", func(t *testing.T) {
		r := e.manage("GET", e.feed()+"subscriptions/list", noRole, nil)
		if !contains(string(r.body), "The permission set () sent in the request did not include the expected permission ActivityFeed.Read.") {
			t.Fatalf("%s", r.body)
		}
	})
	t.Run("role withheld", func(t *testing.T) {
		e.ten.SetAuditRoleGranted(false)
		defer e.ten.SetAuditRoleGranted(true)
		r := e.manage("GET", e.feed()+"subscriptions/list", e.auditToken(), nil)
		if r.status != 401 || afCode(t, r) != "AF10001" {
			t.Fatalf("%d %s", r.status, r.body)
		}
		// A token issued before keeps its role.
		if r := e.manage("GET", e.feed()+"subscriptions/list", tok, nil); r.status != 200 {
			t.Fatalf("old token: %d %s", r.status, r.body)
		}
	})
	t.Run("unified audit logging off", func(t *testing.T) {
		e.ten.SetUnifiedAuditLog(false)
		defer e.ten.SetUnifiedAuditLog(true)
		r := e.startSub(tok, AuditContentExchange, nil)
		if r.status != 400 || !contains(string(r.body), "Tenant "+tid+" does not exist.") || !contains(afCode(t, r), "StartSubscription [") {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("stop", func(t *testing.T) {
		if r := e.manage("POST", e.feed()+"subscriptions/stop?contentType=Audit.SharePoint", tok, nil); afCode(t, r) != "AF20022" {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
}

func TestAuditSubscriptionsLifecycle(t *testing.T) {
	e := newAuditEnv(t, nil)
	tok := e.auditToken()
	if r := e.manage("GET", e.feed()+"subscriptions/list", tok, nil); r.status != 200 || string(r.body) != "[]" {
		t.Fatalf("empty list: %d %s", r.status, r.body)
	}
	for _, ct := range AuditContentTypes() {
		r := e.startSub(tok, ct, nil)
		if r.status != 200 {
			t.Fatalf("start %s: %d %s", ct, r.status, r.body)
		}
		var v map[string]any
		r.json(t, &v)
		if v["contentType"] != ct || v["status"] != "enabled" || v["webhook"] != nil {
			t.Fatalf("start answer %s", r.body)
		}
	}
	if r := e.manage("POST", e.feed()+"subscriptions/stop?contentType=DLP.All", tok, nil); r.status != 200 || len(r.body) != 0 {
		t.Fatalf("stop: %d %s", r.status, r.body)
	}
	var list []map[string]any
	e.manage("GET", e.feed()+"subscriptions/list", tok, nil).json(t, &list)
	if len(list) != 5 || list[4]["status"] != "disabled" || list[0]["status"] != "enabled" {
		t.Fatalf("list %v", list)
	}
	if r := e.manage("GET", e.feed()+"subscriptions/content?contentType=DLP.All", tok, nil); afCode(t, r) != "AF20022" {
		t.Fatalf("content of a stopped subscription: %s", r.body)
	}
	// Start is throttled: 15 minutes between starts of a content type.
	r := e.startSub(tok, AuditContentDLP, nil)
	if r.status != http.StatusForbidden || afCode(t, r) != "AF429" || !contains(string(r.body), "Method=StartSubscription") {
		t.Fatalf("second start within 15 min: %d %s", r.status, r.body)
	}
	e.wall.Add(16 * time.Minute)
	if r := e.startSub(tok, AuditContentDLP, nil); r.status != 200 {
		t.Fatalf("start after 16 min: %d %s", r.status, r.body)
	}
}

func TestAuditWindowRules(t *testing.T) {
	e := newAuditEnv(t, nil)
	tok := e.auditToken()
	e.startSub(tok, AuditContentSharePoint, nil)
	now := e.data.Now() // 2026-03-11T00:00Z
	cases := []struct {
		name, q string
		code    string // "" = 200
	}{
		{"neither (last 24 h)", "", ""},
		{"date only", "&startTime=2026-03-10&endTime=2026-03-11", ""},
		{"HH:MM", "&startTime=2026-03-10T06:00&endTime=2026-03-10T18:30", ""},
		{"HH:MM:SS", "&startTime=2026-03-10T06:00:00&endTime=2026-03-10T18:30:00", ""},
		{"with Z and ms", "&startTime=2026-03-10T06:00:00.000Z&endTime=2026-03-10T18:30:00Z", ""},
		{"7 days back exactly", "&startTime=2026-03-04T00:00:00&endTime=2026-03-05T00:00:00", ""},
		{"start only", "&startTime=2026-03-10", "AF20030"},
		{"end only", "&endTime=2026-03-10", "AF20030"},
		{"more than 24 h", "&startTime=2026-03-09T23:59&endTime=2026-03-11", "AF20030"},
		{"older than 7 days", "&startTime=2026-03-03T23:00&endTime=2026-03-04T10:00", "AF20030"},
		{"not a time", "&startTime=yesterday&endTime=today", "AF20030"},
		{"offset", "&startTime=2026-03-10T06:00:00%2B02:00&endTime=2026-03-10T08:00:00%2B02:00", "AF20030"},
		{"start equals end", "&startTime=2026-03-10T06:00&endTime=2026-03-10T06:00", "AF20055"},
		{"reversed", "&startTime=2026-03-10T08:00&endTime=2026-03-10T06:00", "AF20055"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.manage("GET", e.feed()+"subscriptions/content?contentType=Audit.SharePoint"+tc.q, tok, nil)
			if tc.code == "" {
				if r.status != 200 {
					t.Fatalf("%d %s", r.status, r.body)
				}
				return
			}
			if r.status != 400 || afCode(t, r) != tc.code {
				t.Fatalf("%d %s, want %s", r.status, r.body, tc.code)
			}
		})
	}
	t.Run("start <= contentCreated < end", func(t *testing.T) {
		from, to := now.Add(-10*time.Hour), now.Add(-4*time.Hour)
		q := "&startTime=" + from.Format("2006-01-02T15:04:05") + "&endTime=" + to.Format("2006-01-02T15:04:05")
		items, _ := e.listAll(t, "content", AuditContentSharePoint, q, tok)
		truth, _ := e.ten.AuditBlobs(AuditContentSharePoint, from, to)
		if len(items) == 0 || len(items) != len(truth) {
			t.Fatalf("%d items, ground truth %d", len(items), len(truth))
		}
		for i, it := range items {
			c, err := time.Parse(layoutMsZ, it.ContentCreated)
			if err != nil || c.Before(from) || !c.Before(to) || it.ContentID != truth[i].ContentID {
				t.Fatalf("item %d %+v outside [%s,%s) or not %s", i, it, from, to, truth[i].ContentID)
			}
		}
	})
	t.Run("omitted window NextPageUri carries the computed window", func(t *testing.T) {
		r := e.manage("GET", e.feed()+"subscriptions/content?contentType=Audit.SharePoint", tok, nil)
		next := r.header.Get("NextPageUri")
		if next == "" {
			t.Skip("one page only")
		}
		if !contains(next, "startTime=2026-03-10T00%3A00%3A00") && !contains(next, "startTime=2026-03-10T00:00:00") {
			t.Fatalf("NextPageUri %s", next)
		}
	})
}

func TestAuditContentPaging(t *testing.T) {
	e := newAuditEnv(t, nil)
	tok := e.auditToken()
	e.startSub(tok, AuditContentGeneral, nil)
	now := e.data.Now()
	items, pages := e.listAll(t, "content", AuditContentGeneral, "&PublisherIdentifier=0b8ac3a3-6b3a-4d0b-8a4c-2b2b3c4d5e6f", tok)
	truth, _ := e.ten.AuditBlobs(AuditContentGeneral, now.Add(-24*time.Hour), now.Add(time.Millisecond))
	if pages < 2 || len(items) != len(truth) {
		t.Fatalf("%d items on %d pages; ground truth %d blobs (want several pages)", len(items), pages, len(truth))
	}
	seen := map[string]bool{}
	for i, it := range items {
		if seen[it.ContentID] {
			t.Fatalf("content %s listed twice", it.ContentID)
		}
		seen[it.ContentID] = true
		created, err := time.Parse(layoutMsZ, it.ContentCreated)
		exp, err2 := time.Parse(layoutMsZ, it.ContentExpiration)
		switch {
		case it.ContentID != truth[i].ContentID:
			t.Fatalf("item %d is %s, want %s", i, it.ContentID, truth[i].ContentID)
		case !strings.Contains(it.ContentID, "$"):
			t.Fatalf("content id %q has no $", it.ContentID)
		case it.ContentURI != "https://manage.office.com/api/v1.0/"+e.ten.TenantID()+"/activity/feed/audit/"+it.ContentID:
			t.Fatalf("contentUri %s", it.ContentURI)
		case err != nil || err2 != nil || !strings.HasSuffix(it.ContentExpiration, "Z") || exp.Sub(created) != 7*24*time.Hour:
			t.Fatalf("created %s expiration %s", it.ContentCreated, it.ContentExpiration)
		case it.ContentType != AuditContentGeneral:
			t.Fatalf("contentType %s", it.ContentType)
		}
	}
	// A token from another window is refused.
	r := e.manage("GET", e.feed()+"subscriptions/content?contentType=Audit.General", tok, nil)
	next, _ := url.Parse(r.header.Get("NextPageUri"))
	tokn := next.Query().Get("nextPage")
	r = e.manage("GET", e.feed()+"subscriptions/content?contentType=Audit.General&startTime=2026-03-10T01:00&endTime=2026-03-10T02:00&nextPage="+tokn, tok, nil)
	if afCode(t, r) != "AF20031" {
		t.Fatalf("foreign nextPage: %d %s", r.status, r.body)
	}
}

var reNoZ = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$`)
var reGUID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func TestAuditBlobFetchAndExpiry(t *testing.T) {
	e := newAuditEnv(t, nil)
	tok := e.auditToken()
	now := e.data.Now()
	for _, ct := range AuditContentTypes() {
		blobs, _ := e.ten.AuditBlobs(ct, now.Add(-3*time.Hour), now)
		if len(blobs) == 0 {
			t.Fatalf("%s: no blobs in 3 hours", ct)
		}
		r := e.followURI(t, blobs[0].ContentURI+"?PublisherIdentifier=0b8ac3a3-6b3a-4d0b-8a4c-2b2b3c4d5e6f", tok)
		if r.status != 200 {
			t.Fatalf("%s: %d %s", ct, r.status, r.body)
		}
		var recs []map[string]any
		r.json(t, &recs)
		if len(recs) == 0 {
			t.Fatalf("%s: empty blob", ct)
		}
		for _, rec := range recs {
			id, _ := rec["Id"].(string)
			ctime, _ := rec["CreationTime"].(string)
			rt, isNum := rec["RecordType"].(float64)
			if !reGUID.MatchString(id) || !reNoZ.MatchString(ctime) || !isNum || rt <= 0 || rec["Workload"] == "" ||
				rec["Operation"] == "" || rec["OrganizationId"] != e.ten.TenantID() || rec["UserId"] == "" {
				t.Fatalf("%s record %v", ct, rec)
			}
			if at, _ := time.Parse("2006-01-02T15:04:05", ctime); !at.Before(blobs[0].Created) {
				t.Fatalf("record at %s after its blob %s", ctime, blobs[0].Created)
			}
		}
	}
	old, _ := e.ten.AuditBlobs(AuditContentExchange, now.Add(-7*24*time.Hour-3*time.Hour), now.Add(-7*24*time.Hour))
	if len(old) == 0 {
		t.Fatal("no blobs 7 days back")
	}
	if r := e.followURI(t, old[0].ContentURI, tok); r.status != 400 || afCode(t, r) != "AF20051" || !contains(string(r.body), "has already expired") {
		t.Fatalf("expired: %d %s", r.status, r.body)
	}
	future, _ := e.ten.AuditBlobs(AuditContentExchange, now.Add(time.Hour), now.Add(3*time.Hour))
	if r := e.followURI(t, future[0].ContentURI, tok); afCode(t, r) != "AF20050" {
		t.Fatalf("not yet published: %d %s", r.status, r.body)
	}
	// Same seed, same blobs and records.
	e2 := newAuditEnv(t, nil)
	a, _ := e.ten.AuditBlobs(AuditContentGeneral, now.Add(-2*time.Hour), now)
	b, _ := e2.ten.AuditBlobs(AuditContentGeneral, now.Add(-2*time.Hour), now)
	ra, _ := e.ten.AuditRecords(a[0].ContentID)
	rb, _ := e2.ten.AuditRecords(b[0].ContentID)
	if len(a) != len(b) || a[0] != b[0] || string(mustJSON(ra)) != string(mustJSON(rb)) {
		t.Fatal("same seed gave different content")
	}
}

func TestAuditRedelivery(t *testing.T) {
	e := newAuditEnv(t, nil)
	tok := e.auditToken()
	now := e.data.Now()
	var re *AuditBlob
	for d := 0; d < 4 && re == nil; d++ {
		blobs, err := e.ten.AuditBlobs(AuditContentGeneral, now.Add(-time.Duration(d+1)*24*time.Hour), now.Add(-time.Duration(d)*24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		for i := range blobs {
			if blobs[i].RedeliveryOf != "" {
				re = &blobs[i]
			}
		}
	}
	if re == nil {
		t.Fatal("no re-delivered blob in 4 days")
	}
	srcCT, srcHour, _, _ := parseContentID(re.RedeliveryOf)
	if srcCT != ctGeneral || hourStart(srcHour).After(re.Created.Add(-48*time.Hour)) {
		t.Fatalf("re-delivery %s of %s is not days later", re.ContentID, re.RedeliveryOf)
	}
	ids := func(uri string) []string {
		r := e.followURI(t, uri, tok)
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		var recs []struct{ Id string }
		r.json(t, &recs)
		var out []string
		for _, x := range recs {
			out = append(out, x.Id)
		}
		return out
	}
	a, b := ids(re.ContentURI), ids(e.ten.contentURI(re.RedeliveryOf))
	if len(a) == 0 || strings.Join(a, ",") != strings.Join(b, ",") || re.ContentID == re.RedeliveryOf {
		t.Fatalf("re-delivery ids %v, original %v", a, b)
	}
}

func TestAuditDefenderRecords(t *testing.T) {
	e := newAuditEnv(t, nil)
	tok := e.auditToken()
	e.startSub(tok, AuditContentGeneral, nil)
	items, _ := e.listAll(t, "content", AuditContentGeneral, "", tok)
	machines := map[string]bool{}
	for _, id := range e.ten.MachineIDs() {
		machines[id] = true
	}
	found := map[string]bool{}
	for _, it := range items {
		var recs []map[string]any
		e.followURI(t, it.ContentURI, tok).json(t, &recs)
		for _, r := range recs {
			if r["Workload"] != DefenderWorkload {
				continue
			}
			op, _ := r["Operation"].(string)
			if op != "AddIndicator" && (r["RecordType"] != float64(110) || !machines[r["DeviceId"].(string)] || r["DeviceName"] == "" || r["ObjectId"] != r["DeviceId"]) {
				t.Fatalf("defender record %v", r)
			}
			if !strings.HasSuffix(r["UserId"].(string), "@"+e.ten.w.domain) {
				t.Fatalf("UserId %v", r["UserId"])
			}
			switch op {
			case "RunLiveResponseApi":
				if s, _ := r["CommandsString"].(string); s == "" {
					t.Fatalf("no CommandsString: %v", r)
				}
			case "LiveResponseGetFile":
				if s, _ := r["FileSHA256"].(string); len(s) != 64 || r["FileName"] == nil {
					t.Fatalf("get file %v", r)
				}
			}
			found[op] = true
		}
	}
	for _, op := range []string{"RunLiveResponseApi", "LiveResponseGetFile", "IsolateDevice", "RunLiveResponseSession", "CollectInvestigationPackage", "ReleaseFromIsolation"} {
		if !found[op] {
			t.Errorf("no %s record in a day of Audit.General (found %v)", op, found)
		}
	}
}

// hookServer is a webhook listener with a certificate from the emulator's CA.
type hookServer struct {
	*httptest.Server
	mu       sync.Mutex
	status   int // answer to every request
	reqs     []hookReq
	validate string
}

type hookReq struct {
	header http.Header
	body   []byte
}

func newHookServer(t *testing.T, ten *Tenant) *hookServer {
	cert, err := ten.IssueServerCertificate()
	if err != nil {
		t.Fatal(err)
	}
	h := &hookServer{status: 200}
	h.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.reqs = append(h.reqs, hookReq{r.Header.Clone(), b})
		st := h.status
		h.mu.Unlock()
		w.WriteHeader(st)
	}))
	h.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	h.StartTLS()
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) take() []hookReq {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.reqs
	h.reqs = nil
	return out
}

func (h *hookServer) setStatus(s int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.status = s
}

func TestAuditWebhook(t *testing.T) {
	e := newAuditEnv(t, func(o *Options) { o.AuditWebhookRetries = 2 })
	tok := e.auditToken()
	hs := newHookServer(t, e.ten)
	body := func(addr string) []byte {
		return []byte(`{"webhook":{"address":"` + addr + `","authId":"s3cr3t-auth","expiration":""}}`)
	}

	t.Run("http address", func(t *testing.T) {
		r := e.startSub(tok, AuditContentExchange, body("http://127.0.0.1:1/hook"))
		if afCode(t, r) != "AF20021" || !contains(string(r.body), "HTTPS") {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("validation refused", func(t *testing.T) {
		hs.setStatus(http.StatusUnauthorized)
		defer hs.setStatus(200)
		r := e.startSub(tok, AuditContentExchange, body(hs.URL+"/hook"))
		if afCode(t, r) != "AF20021" || !contains(string(r.body), "did not return HTTP 200") {
			t.Fatalf("%d %s", r.status, r.body)
		}
		hs.take()
		var list []map[string]any
		e.manage("GET", e.feed()+"subscriptions/list", tok, nil).json(t, &list)
		if len(list) != 0 {
			t.Fatalf("a refused validation created %v", list)
		}
	})

	r := e.startSub(tok, AuditContentGeneral, body(hs.URL+"/hook"))
	if r.status != 200 {
		t.Fatalf("start with webhook: %d %s", r.status, r.body)
	}
	var started struct {
		Webhook map[string]string
	}
	r.json(t, &started)
	if started.Webhook["address"] != hs.URL+"/hook" || started.Webhook["status"] != "enabled" || started.Webhook["authId"] != "s3cr3t-auth" {
		t.Fatalf("start answer %s", r.body)
	}
	reqs := hs.take()
	if len(reqs) != 1 {
		t.Fatalf("%d validation requests", len(reqs))
	}
	var vb struct{ ValidationCode string }
	_ = json.Unmarshal(reqs[0].body, &vb)
	if code := reqs[0].header.Get("Webhook-ValidationCode"); code == "" || code != vb.ValidationCode ||
		reqs[0].header.Get("Webhook-AuthID") != "s3cr3t-auth" || !strings.HasPrefix(reqs[0].header.Get("Content-Type"), "application/json") {
		t.Fatalf("validation request %v %s", reqs[0].header, reqs[0].body)
	}

	// Nothing new yet; three hours later there are blobs to notify.
	if n := e.ten.NotifyNow(context.Background()); n != 0 {
		t.Fatalf("notified %d blobs created before the webhook", n)
	}
	e.data.Add(3 * time.Hour)
	e.wall.Add(3 * time.Hour)
	tok = e.auditToken()
	n := e.ten.NotifyNow(context.Background())
	truth, _ := e.ten.AuditBlobs(AuditContentGeneral, e.data.Now().Add(-3*time.Hour).Add(time.Millisecond), e.data.Now().Add(time.Millisecond))
	if n == 0 || n != len(truth) {
		t.Fatalf("delivered %d, %d blobs appeared", n, len(truth))
	}
	var got []contentItem
	for _, rq := range hs.take() {
		if rq.header.Get("Webhook-AuthID") != "s3cr3t-auth" || rq.header.Get("Webhook-ValidationCode") != "" {
			t.Fatalf("notification headers %v", rq.header)
		}
		var arr []contentItem
		if err := json.Unmarshal(rq.body, &arr); err != nil {
			t.Fatalf("notification is not an array: %s", rq.body)
		}
		got = append(got, arr...)
	}
	if len(got) != n || got[0].TenantID != e.ten.TenantID() || got[0].ClientID != e.ten.Credentials().ClientID || got[0].ContentURI == "" || got[0].ContentExpiration == "" {
		t.Fatalf("notifications %+v", got)
	}
	if r := e.followURI(t, got[0].ContentURI, tok); r.status != 200 {
		t.Fatalf("notified blob: %d %s", r.status, r.body)
	}
	if e.ten.NotifyNow(context.Background()) != 0 {
		t.Fatal("notified twice")
	}

	// A refusing listener: every attempt (1 + 2 retries) is in the history.
	hs.setStatus(http.StatusServiceUnavailable)
	e.data.Add(2 * time.Hour)
	e.wall.Add(2 * time.Hour)
	tok = e.auditToken()
	if n := e.ten.NotifyNow(context.Background()); n != 0 {
		t.Fatalf("delivered %d to a refusing listener", n)
	}
	if k := len(hs.take()); k%3 != 0 || k == 0 {
		t.Fatalf("%d attempts, want 3 per batch", k)
	}
	e.data.Add(time.Second) // the window's end is exclusive
	hist, _ := e.listAll(t, "notifications", AuditContentGeneral, "", tok)
	ok, failed := 0, 0
	for _, h := range hist {
		switch h.NotificationStatus {
		case "Succeeded":
			ok++
		case "Failed":
			failed++
		default:
			t.Fatalf("status %q", h.NotificationStatus)
		}
		if h.NotificationSent == "" || h.ContentID == "" {
			t.Fatalf("history item %+v", h)
		}
	}
	if ok != n || failed == 0 || failed%3 != 0 {
		t.Fatalf("history: %d succeeded, %d failed", ok, failed)
	}
}

func TestAuditThrottling(t *testing.T) {
	for _, status := range []int{http.StatusForbidden, http.StatusTooManyRequests} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			e := newAuditEnv(t, func(o *Options) { o.AuditQuotaPerMinute = 3; o.AuditThrottleStatus = status })
			tok := e.auditToken()
			list := func(pub string) resp {
				q := ""
				if pub != "" {
					q = "?PublisherIdentifier=" + pub
				}
				return e.manage("GET", e.feed()+"subscriptions/list"+q, tok, nil)
			}
			for i := 0; i < 3; i++ {
				if r := list(""); r.status != 200 {
					t.Fatalf("call %d: %d %s", i, r.status, r.body)
				}
			}
			r := list("")
			if r.status != status || afCode(t, r) != "AF429" || !contains(string(r.body), "Too many requests. Method=ListSubscriptions, PublisherId=00000000-0000-0000-0000-000000000000") || r.header.Get("Retry-After") != "" {
				t.Fatalf("over quota: %d %v %s", r.status, r.header, r.body)
			}
			pub := "0b8ac3a3-6b3a-4d0b-8a4c-2b2b3c4d5e6f"
			if r := list(pub); r.status != 200 {
				t.Fatalf("own publisher pool: %d %s", r.status, r.body)
			}
			e.wall.Add(time.Minute)
			if r := list(""); r.status != 200 {
				t.Fatalf("next minute: %d %s", r.status, r.body)
			}
		})
	}
	t.Run("faults", func(t *testing.T) {
		e := newAuditEnv(t, nil)
		tok := e.auditToken()
		if err := e.ten.SetAuditThrottleStatus(429); err != nil {
			t.Fatal(err)
		}
		e.ten.Inject(FaultRule{Family: FamilyManage, Kind: Fault429, Count: 1})
		r := e.manage("GET", e.feed()+"audit/x?PublisherIdentifier=ABC", tok, nil)
		if r.status != 429 || afCode(t, r) != "AF429" || !contains(string(r.body), "Method=GetBlob, PublisherId=abc") || r.header.Get("Retry-After") != "" {
			t.Fatalf("injected 429: %d %v %s", r.status, r.header, r.body)
		}
		e.ten.Inject(FaultRule{Family: FamilyManage, Kind: Fault500, Count: 1})
		r = e.manage("GET", e.feed()+"subscriptions/list", tok, nil)
		if r.status != 500 || afCode(t, r) != "AF50000" {
			t.Fatalf("injected 500: %d %s", r.status, r.body)
		}
		if f, err := ParseFaults("manage:429=0.5"); err != nil || f.Rates[0].Family != FamilyManage {
			t.Fatalf("ParseFaults: %v %v", f, err)
		}
		if n := e.ten.RequestCount(FamilyManage); n != 2 {
			t.Fatalf("RequestCount(manage) = %d", n)
		}
	})
}

func TestAuditMultiTenantIsolation(t *testing.T) {
	e := newAuditEnv(t, func(o *Options) { o.Tenants = 2 })
	a, b := e.ten.Tenants()[0], e.ten.Tenants()[1]
	tokA := e.auditTokenAt(a.ID, a.ClientID, a.ClientSecret, AuditResource+"/.default")
	tokB := e.auditTokenAt(b.ID, b.ClientID, b.ClientSecret, AuditResource+"/.default")
	feedA, feedB := "/api/v1.0/"+a.ID+"/activity/feed/", "/api/v1.0/"+b.ID+"/activity/feed/"
	if r := e.manage("POST", feedA+"subscriptions/start?contentType=Audit.General", tokA, nil); r.status != 200 {
		t.Fatalf("A start: %d %s", r.status, r.body)
	}
	if r := e.manage("GET", feedA+"subscriptions/content?contentType=Audit.General", tokB, nil); r.status != 401 || afCode(t, r) != "AF20010" {
		t.Fatalf("B's token on A's feed: %d %s", r.status, r.body)
	}
	if r := e.manage("GET", feedB+"subscriptions/content?contentType=Audit.General", tokB, nil); afCode(t, r) != "AF20022" {
		t.Fatalf("B has no subscription: %d %s", r.status, r.body)
	}
	now := e.data.Now()
	blobsA, _ := e.ten.AuditBlobs(AuditContentGeneral, now.Add(-2*time.Hour), now)
	if r := e.manage("GET", feedB+"audit/"+blobsA[0].ContentID, tokB, nil); afCode(t, r) != "AF20050" {
		t.Fatalf("A's blob at B: %d %s", r.status, r.body)
	}
	if r := e.manage("GET", feedA+"audit/"+blobsA[0].ContentID, tokB, nil); afCode(t, r) != "AF20010" {
		t.Fatalf("A's blob with B's token: %d %s", r.status, r.body)
	}
	blobsB, _ := e.ten.Tenant(1).AuditBlobs(AuditContentGeneral, now.Add(-2*time.Hour), now)
	if blobsB[0].ContentID == blobsA[0].ContentID {
		t.Fatal("tenants share content ids")
	}
	recs, _ := e.ten.Tenant(1).AuditRecords(blobsB[0].ContentID)
	if !bytes.Contains(recs[0], []byte(b.ID)) {
		t.Fatalf("B's record does not name B: %s", recs[0])
	}
}

func TestAuditRequestLogKeepsSecrets(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	e := newAuditEnv(t, func(o *Options) { o.RequestLog = lockedWriter{&mu, &buf} })
	tok := e.auditToken()
	hs := newHookServer(t, e.ten)
	e.startSub(tok, AuditContentGeneral, []byte(`{"webhook":{"address":"`+hs.URL+`","authId":"very-secret-auth-id"}}`))
	e.manage("GET", e.feed()+"subscriptions/content?contentType=Audit.General&PublisherIdentifier=pub-secret", tok, nil)
	mu.Lock()
	log := buf.String()
	mu.Unlock()
	if !contains(log, "manage.office.com") || contains(log, tok) || contains(log, "very-secret-auth-id") || contains(log, "pub-secret") || contains(log, e.ten.Credentials().ClientSecret) {
		t.Fatalf("request log:\n%s", log)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestAuditOverTLS: the emulator's own TLS listener serves manage.office.com
// with a certificate the emulator's CA verifies for that name.
func TestAuditOverTLS(t *testing.T) {
	e := newAuditEnv(t, nil)
	srv, err := e.ten.Serve("127.0.0.1:0", true)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(e.ten.CACertPEM())
	cl := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, srv.Addr())
		},
	}}
	rq, _ := http.NewRequest(http.MethodGet, "https://"+ManageHost+e.feed()+"subscriptions/list", nil)
	rq.Header.Set("Authorization", "Bearer "+e.auditToken())
	res, err := cl.Do(rq)
	if err != nil {
		t.Fatalf("TLS to %s: %v", ManageHost, err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	if got := e.ten.Info(srv).BaseURLs["auditlog"]; got != "https://manage.office.com/api/v1.0/"+e.ten.TenantID()+"/activity/feed" {
		t.Fatalf("BaseURLs[auditlog] = %q", got)
	}
}

// After AuditWebhookDisableAfter failed batches in a row (every retry
// refused) the webhook is disabled: list shows it "disabled" and nothing
// more is sent; a start with the same webhook is a change (not AF20024)
// that validates and re-enables it, and notifications resume with the
// blobs created since the last successful delivery.
func TestAuditWebhookDisabledAfterFailures(t *testing.T) {
	tests := []struct {
		name        string
		disable     int // Options.AuditWebhookDisableAfter
		wantDisable int // failed rounds until disabled, 0 = never
	}{
		{"default 3", 0, 3},
		{"after 2", 2, 2},
		{"never", -1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newAuditEnv(t, func(o *Options) { o.AuditWebhookRetries = 1; o.AuditWebhookDisableAfter = tt.disable })
			hs := newHookServer(t, e.ten)
			body := []byte(`{"webhook":{"address":"` + hs.URL + `/hook","authId":"s3cr3t-auth","expiration":""}}`)
			tok := e.auditToken()
			if r := e.startSub(tok, AuditContentGeneral, body); r.status != 200 {
				t.Fatalf("start: %d %s", r.status, r.body)
			}
			hs.take()
			hookStatus := func() any {
				t.Helper()
				var list []struct {
					ContentType string
					Status      string
					Webhook     map[string]string
				}
				e.manage(http.MethodGet, e.feed()+"subscriptions/list", tok, nil).json(t, &list)
				if len(list) != 1 || list[0].Status != "enabled" {
					t.Fatalf("list %+v", list)
				}
				if list[0].Webhook == nil {
					return nil
				}
				return list[0].Webhook["status"]
			}
			advance := func(d time.Duration) {
				e.data.Add(d)
				e.wall.Add(d)
				tok = e.auditToken()
			}
			// One successful round: the last successful delivery.
			advance(2 * time.Hour)
			if n := e.ten.NotifyNow(context.Background()); n == 0 {
				t.Fatal("nothing delivered")
			}
			hs.take()
			lastOK := e.data.Now()

			hs.setStatus(http.StatusServiceUnavailable)
			rounds := 5
			if tt.wantDisable > 0 {
				rounds = tt.wantDisable
			}
			for i := 1; i <= rounds; i++ {
				advance(time.Hour)
				if n := e.ten.NotifyNow(context.Background()); n != 0 {
					t.Fatalf("round %d delivered %d to a refusing listener", i, n)
				}
				if k := len(hs.take()); k != 2 {
					t.Fatalf("round %d: %d attempts, want 2 (1 + 1 retry) of one batch", i, k)
				}
				want := "enabled"
				if i == tt.wantDisable {
					want = "disabled"
				}
				if st := hookStatus(); st != want {
					t.Fatalf("after %d failed rounds the webhook is %v, want %s", i, st, want)
				}
			}
			if tt.wantDisable == 0 {
				return
			}
			// Disabled: nothing is sent, even to a listener that is back.
			hs.setStatus(http.StatusOK)
			advance(time.Hour)
			if n := e.ten.NotifyNow(context.Background()); n != 0 || len(hs.take()) != 0 {
				t.Fatalf("a disabled webhook was notified (%d)", n)
			}
			// Re-enable: the same webhook again is a change; it validates.
			advance(16 * time.Minute)
			r := e.startSub(tok, AuditContentGeneral, body)
			if r.status != 200 || !strings.Contains(string(r.body), `"status":"enabled"`) {
				t.Fatalf("re-enabling start: %d %s", r.status, r.body)
			}
			if reqs := hs.take(); len(reqs) != 1 || reqs[0].header.Get("Webhook-ValidationCode") == "" {
				t.Fatalf("re-enabling start sent %d requests, want the validation", len(reqs))
			}
			if st := hookStatus(); st != "enabled" {
				t.Fatalf("after the start the webhook is %v", st)
			}
			if r := e.startSub(tok, AuditContentGeneral, body); afCode(t, r) != "AF20024" {
				t.Fatalf("the same start again: %d %s, want AF20024", r.status, r.body)
			}
			// Resumed from the last successful delivery.
			n := e.ten.NotifyNow(context.Background())
			truth, _ := e.ten.AuditBlobs(AuditContentGeneral, lastOK.Add(time.Millisecond), e.data.Now().Add(time.Millisecond))
			got := map[string]bool{}
			for _, rq := range hs.take() {
				var arr []contentItem
				if err := json.Unmarshal(rq.body, &arr); err != nil {
					t.Fatalf("notification %s", rq.body)
				}
				for _, it := range arr {
					got[it.ContentID] = true
				}
			}
			if len(truth) == 0 {
				t.Fatal("no blobs were created while the webhook failed; the test needs some")
			}
			if n != len(truth) || len(got) != len(truth) {
				t.Fatalf("resumed with %d notifications (%d ids), %d blobs were created since the last delivery", n, len(got), len(truth))
			}
			for _, b := range truth {
				if !got[b.ContentID] {
					t.Errorf("blob created %s not notified after re-enabling", b.Created)
				}
			}
		})
	}
}
