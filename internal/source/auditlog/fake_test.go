package auditlog

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/auth"
	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/record"
)

const (
	tenant   = "11111111-2222-3333-4444-555555555555"
	other    = "99999999-2222-3333-4444-555555555555"
	token    = "MANAGE-TOKEN"
	host     = "manage.office.com"
	feedTime = "2006-01-02T15:04:05"
)

// fakeClock is the time of the fake service and of the source.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// blob is one content blob of the fake service.
type blob struct {
	ct      string
	id      string
	created time.Time
	records []string
}

// fault is a scripted error answer for the next requests matching op.
type fault struct {
	op     string // "list", "start", "content", "blob"
	status int
	code   string
	msg    string
	times  int // how many requests it answers (0: forever)
}

// fakeFeed is a strict Management Activity API (reference protocols.md
// §C): bearer token and PublisherIdentifier on every call, windows ≤ 24 h
// starting ≤ 7 days back on contentCreated, NextPageUri headers with the
// documented /api/v1/ path, AF error envelopes.
type fakeFeed struct {
	t        *testing.T
	clock    *fakeClock
	mu       sync.Mutex
	subs     map[string]bool
	blobs    []blob
	pageSize int
	faults   []*fault
	// spoofNext / spoofURI replace the NextPageUri / contentUri handed out.
	spoofNext, spoofURI string
	// requests counts requests by op; fetched counts blob GETs by id.
	requests map[string]int
	fetched  map[string]int
	starts   []time.Time
	windows  [][2]time.Time
	foreign  []string // requests that reached a host or tenant they must not
	// hook, when set, may answer a request of kind with a fault.
	hook func(kind string) *fault
	next bool // a NextPageUri was followed
	// webhooks are the subscriptions' webhooks (by content type);
	// hideAuthID lists them with an empty authId; startBodies are the
	// bodies of the start requests, in order ("" without one).
	webhooks    map[string]*fakeHook
	hideAuthID  bool
	startBodies []string
	// ct is the contentType of the request being answered (for hooks).
	ct string
}

// fakeHook is a subscription's webhook in the fake service.
type fakeHook struct {
	Address    string `json:"address"`
	AuthID     string `json:"authId"`
	Expiration string `json:"expiration"`
	status     string // enabled, disabled
}

func (h *fakeHook) same(o *fakeHook) bool {
	if h == nil || o == nil {
		return h == nil && o == nil
	}
	return h.Address == o.Address && h.AuthID == o.AuthID && h.Expiration == o.Expiration
}

func newFake(t *testing.T, clk *fakeClock) *fakeFeed {
	return &fakeFeed{t: t, clock: clk, subs: map[string]bool{}, pageSize: 2,
		requests: map[string]int{}, fetched: map[string]int{}, webhooks: map[string]*fakeHook{}}
}

func (f *fakeFeed) add(b ...blob) {
	f.mu.Lock()
	f.blobs = append(f.blobs, b...)
	f.mu.Unlock()
}

func afErr(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"code":%q,"message":%q}}`, code, msg)
}

func (f *fakeFeed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Host != host {
		f.foreign = append(f.foreign, r.Host+r.URL.Path)
		afErr(w, 404, "X", "wrong host")
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+token {
		afErr(w, 401, "AF10001", "The permission set () sent in the request did not include the expected permission ActivityFeed.Read.")
		return
	}
	q := r.URL.Query()
	if q.Get("PublisherIdentifier") != tenant {
		f.t.Errorf("%s %s without PublisherIdentifier", r.Method, r.URL.Path)
	}
	segs := strings.Split(r.URL.Path, "/")
	if len(segs) < 7 || segs[1] != "api" || (segs[2] != "v1.0" && segs[2] != "v1") || segs[4] != "activity" || segs[5] != "feed" {
		afErr(w, 404, "AF20050", "unknown path")
		return
	}
	if segs[3] != tenant {
		f.foreign = append(f.foreign, r.URL.Path)
		afErr(w, 400, "AF20010", "The tenant ID in the request does not match the token.")
		return
	}
	op := strings.Join(segs[6:], "/")
	kind := map[string]string{"subscriptions/list": "list", "subscriptions/start": "start", "subscriptions/content": "content"}[op]
	if strings.HasPrefix(op, "audit/") {
		kind = "blob"
	}
	f.requests[kind]++
	f.ct = q.Get("contentType")
	var body []byte
	if kind == "start" {
		body, _ = io.ReadAll(r.Body)
		f.startBodies = append(f.startBodies, string(body))
	}
	if f.hook != nil {
		if ft := f.hook(kind); ft != nil {
			afErr(w, ft.status, ft.code, ft.msg)
			return
		}
	}
	for i, ft := range f.faults {
		if ft.op == kind {
			if ft.times > 0 {
				ft.times--
				if ft.times == 0 {
					f.faults = append(f.faults[:i], f.faults[i+1:]...)
				}
			}
			afErr(w, ft.status, ft.code, ft.msg)
			return
		}
	}
	switch kind {
	case "list":
		out := []map[string]any{}
		for _, ct := range mde.ContentTypes {
			if f.subs[ct] {
				var hook any
				if h := f.webhooks[ct]; h != nil {
					id := h.AuthID
					if f.hideAuthID {
						id = ""
					}
					hook = map[string]string{"status": h.status, "address": h.Address, "authId": id, "expiration": h.Expiration}
				}
				out = append(out, map[string]any{"contentType": ct, "status": "enabled", "webhook": hook})
			}
		}
		json.NewEncoder(w).Encode(out)
	case "start":
		ct := q.Get("contentType")
		if r.Method != http.MethodPost {
			afErr(w, 405, "X", "method")
			return
		}
		f.starts = append(f.starts, f.clock.Now())
		var in struct {
			Webhook *fakeHook `json:"webhook"`
		}
		if len(body) > 0 {
			if r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &in) != nil {
				afErr(w, 400, "AF20002", "Invalid parameter type: body.")
				return
			}
			if in.Webhook != nil {
				in.Webhook.status = "enabled"
			}
		}
		// Start enables the subscription and sets, re-enables or removes
		// its webhook; with nothing to change it is AF20024.
		old := f.webhooks[ct]
		if f.subs[ct] && old.same(in.Webhook) && (old == nil || old.status == "enabled") {
			afErr(w, 400, "AF20024", "The subscription is already enabled. No property change.")
			return
		}
		f.subs[ct] = true
		f.webhooks[ct] = in.Webhook
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		json.NewEncoder(w).Encode(map[string]any{"contentType": ct, "status": "enabled", "webhook": in.Webhook})
	case "content":
		f.content(w, r, q)
	case "blob":
		id := strings.TrimPrefix(op, "audit/")
		for _, b := range f.blobs {
			if b.id == id {
				if !f.clock.Now().Before(b.created.Add(7 * 24 * time.Hour)) {
					afErr(w, 400, "AF20051", "Content requested with the key "+id+" has already expired. Content older than 7 days cannot be retrieved.")
					return
				}
				f.fetched[id]++
				fmt.Fprint(w, "["+strings.Join(b.records, ",")+"]")
				return
			}
		}
		afErr(w, 400, "AF20050", "The specified content does not exist.")
	default:
		afErr(w, 404, "X", "unknown operation")
	}
}

func (f *fakeFeed) content(w http.ResponseWriter, r *http.Request, q url.Values) {
	ct := q.Get("contentType")
	if !f.subs[ct] {
		afErr(w, 400, "AF20022", "No subscription found for the specified content type.")
		return
	}
	start, err1 := time.Parse(feedTime, q.Get("startTime"))
	end, err2 := time.Parse(feedTime, q.Get("endTime"))
	now := f.clock.Now()
	if err1 != nil || err2 != nil || !start.Before(end) || end.Sub(start) > 24*time.Hour {
		afErr(w, 400, "AF20030", "Start time and end time must both be specified (or both omitted) and must be less than or equal to 24 hours apart, with the start time no more than 7 days in the past.")
		return
	}
	if start.Before(now.Add(-7 * 24 * time.Hour)) {
		afErr(w, 400, "AF20055", "Start time and end time must both be specified (or both omitted) and must be less than or equal to 24 hours apart, with the start time no more than 7 days in the past.")
		return
	}
	var match []blob
	for _, b := range f.blobs {
		if b.ct == ct && !b.created.Before(start) && b.created.Before(end) && b.created.Before(now) {
			match = append(match, b)
		}
	}
	sort.Slice(match, func(i, j int) bool { return match[i].created.Before(match[j].created) })
	off := 0
	if p := q.Get("nextPage"); p != "" {
		f.next = true
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > len(match) {
			afErr(w, 400, "AF20031", "Invalid nextPage")
			return
		}
		off = n
	} else {
		f.windows = append(f.windows, [2]time.Time{start, end})
	}
	page := match[off:]
	if len(page) > f.pageSize {
		page = page[:f.pageSize]
		link := fmt.Sprintf("https://%s/api/v1/%s/activity/feed/subscriptions/content?contentType=%s&startTime=%s&endTime=%s&nextPage=%d",
			host, tenant, ct, q.Get("startTime"), q.Get("endTime"), off+f.pageSize)
		if f.spoofNext != "" {
			link = f.spoofNext
		}
		w.Header().Set("NextPageUri", link)
	}
	out := []map[string]string{}
	for _, b := range page {
		u := fmt.Sprintf("https://%s/api/v1.0/%s/activity/feed/audit/%s", host, tenant, b.id)
		if f.spoofURI != "" {
			u = f.spoofURI
		}
		out = append(out, map[string]string{"contentType": ct, "contentId": b.id, "contentUri": u,
			"contentCreated": b.created.Format("2006-01-02T15:04:05.000Z"), "contentExpiration": b.created.Add(7 * 24 * time.Hour).Format("2006-01-02T15:04:05.000Z")})
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	json.NewEncoder(w).Encode(out)
}

// rec is an audit record (CreationTime without Z, as the service writes).
func rec(id string, at time.Time, workload, op string, recordType int) string {
	return fmt.Sprintf(`{"CreationTime":%q,"Id":%q,"Operation":%q,"OrganizationId":%q,"RecordType":%d,"UserKey":"k","UserType":0,"Version":1,"Workload":%q,"ClientIP":"10.0.0.1","ObjectId":"dev1","UserId":"soc@contoso.com","DeviceName":"pc1","DeviceId":"dev1"}`,
		at.UTC().Format(feedTime), id, op, tenant, recordType, workload)
}

// serve starts f over TLS for the management host (and, so that a
// wrongly followed link would be seen, evil.example and 127.0.0.1) and
// returns a real client reaching it.
func serve(t *testing.T, f *fakeFeed, waits *[]time.Duration) *mde.ActivityFeedClient {
	t.Helper()
	caPEM, leaf := testCert(t)
	srv := httptest.NewUnstartedServer(f)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	rt, err := mde.NewTransport(mde.TransportOptions{EmulatorAddress: srv.Listener.Addr().String(), EmulatorCAPEM: caPEM})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	c, err := mde.NewActivityFeedClient(mde.ActivityFeedOptions{TenantID: tenant, Tokens: auth.NewStaticToken(token),
		ClientOptions: mde.ClientOptions{Transport: rt, Limiter: mde.Limiters{}, MaxAttempts: 4,
			Sleep: func(ctx context.Context, d time.Duration) error {
				mu.Lock()
				if waits != nil {
					*waits = append(*waits, d)
				}
				mu.Unlock()
				return ctx.Err()
			}}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testCert(t *testing.T) ([]byte, tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: host},
		DNSNames: []string{host, "evil.example", "manage.office.com.evil.example"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// idOf is the item id of audit record id in table.
func idOf(table, id string) string { return record.StableID(Name, table, id) }
