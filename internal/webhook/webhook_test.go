package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	testTenant = "4a1b5c2d-1111-4222-8333-123456789abc"
	otherTen   = "99999999-1111-4222-8333-123456789abc"
	testHost   = "manage.office.com"
	testAuth   = "s3cr3t-auth-id-0123456789"
)

var testNow = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// item is a valid notification for id, as the service would send it.
func item(id string) map[string]any {
	return map[string]any{
		"tenantId":          testTenant,
		"clientId":          "c5393580-f805-4401-95e8-94b7a6ef2fc2",
		"contentType":       ContentTypeGeneral,
		"contentId":         id,
		"contentUri":        "https://" + testHost + "/api/v1.0/" + testTenant + "/activity/feed/audit/" + id,
		"contentCreated":    "2026-11-30T11:35:00.000Z",
		"contentExpiration": "2026-12-07T11:35:00.000Z",
	}
}

func contentID(i int) string {
	return fmt.Sprintf("20261130113500%06d$20261130113500%06d$audit_general$Audit_General$emea0025", i, i)
}

func items(from, n int) []map[string]any {
	out := make([]map[string]any, n)
	for i := range out {
		out[i] = item(contentID(from + i))
	}
	return out
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newListener(t testing.TB, mod func(*Options)) *Listener {
	t.Helper()
	clk := &fakeClock{t: testNow}
	opts := Options{AuthID: testAuth, TenantID: testTenant, Host: testHost, Now: clk.Now}
	if mod != nil {
		mod(&opts)
	}
	l, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Shutdown(context.Background()) })
	return l
}

type req struct {
	method, path, auth, ctype, code string
	body                            []byte
	bodyReader                      io.Reader
}

func do(h http.Handler, r req) *httptest.ResponseRecorder {
	if r.method == "" {
		r.method = http.MethodPost
	}
	if r.path == "" {
		r.path = "/"
	}
	var body io.Reader = bytes.NewReader(r.body)
	if r.bodyReader != nil {
		body = r.bodyReader
	}
	hr := httptest.NewRequest(r.method, "https://webhook.example"+r.path, body)
	if r.ctype == "" {
		r.ctype = "application/json; charset=utf-8"
	}
	if r.ctype != "-" {
		hr.Header.Set("Content-Type", r.ctype)
	}
	if r.auth != "" {
		hr.Header.Set(HeaderAuthID, r.auth)
	}
	if r.code != "" {
		hr.Header.Set(HeaderValidationCode, r.code)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, hr)
	return w
}

func drain(l *Listener) []Notification {
	var out []Notification
	for {
		select {
		case n, ok := <-l.Notifications():
			if !ok {
				return out
			}
			out = append(out, n)
		default:
			return out
		}
	}
}

func TestNewRefuses(t *testing.T) {
	ok := Options{AuthID: testAuth, TenantID: testTenant, Host: testHost}
	for _, tc := range []struct {
		name string
		mod  func(*Options)
		want string
	}{
		{"no AuthID", func(o *Options) { o.AuthID = "" }, "no AuthID"},
		{"AuthID with newline", func(o *Options) { o.AuthID = testAuth + "\n" }, "white space"},
		{"AuthID with a control", func(o *Options) { o.AuthID = "a\x01b" }, "printable"},
		{"tenant not a GUID", func(o *Options) { o.TenantID = "contoso.onmicrosoft.com" }, "not a GUID"},
		{"no host", func(o *Options) { o.Host = "" }, "no management host"},
		{"IP host", func(o *Options) { o.Host = "10.0.0.1" }, "IP address"},
		{"loopback host", func(o *Options) { o.Host = "localhost" }, "loopback"},
		{"host with port", func(o *Options) { o.Host = "manage.office.com:8443" }, "bare host"},
		{"unknown content type", func(o *Options) { o.ContentTypes = []string{"Audit.Teams"} }, "unknown content type"},
		{"no content types", func(o *Options) { o.ContentTypes = []string{} }, "no content types"},
		{"queue below items", func(o *Options) { o.QueueSize, o.MaxItems = 10, 20 }, "could never be queued"},
		{"relative path", func(o *Options) { o.Path = "hook" }, "does not start with /"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := ok
			tc.mod(&o)
			_, err := New(o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), testAuth) {
				t.Fatalf("the error shows the AuthID: %v", err)
			}
		})
	}
	if _, err := New(ok); err != nil {
		t.Fatalf("New with good options: %v", err)
	}
}

func TestHostForCloud(t *testing.T) {
	for cloud, want := range map[string]string{
		"": "manage.office.com", "Enterprise": "manage.office.com", "gcc": "manage-gcc.office.com",
		"GCC-High": "manage.office365.us", "gcchigh": "manage.office365.us", "dod": "manage.protection.apps.mil",
	} {
		got, err := HostForCloud(cloud)
		if err != nil || got != want {
			t.Errorf("HostForCloud(%q) = %q, %v; want %q", cloud, got, err, want)
		}
	}
	if _, err := HostForCloud("china"); err == nil {
		t.Error("HostForCloud(china): no error")
	}
}

// countCompares makes secretEqual count its calls (tests using it must
// not run in parallel).
func countCompares(t *testing.T) *atomic.Int64 {
	var n atomic.Int64
	orig := secretEqual
	secretEqual = func(got string, want [32]byte) bool { n.Add(1); return orig(got, want) }
	t.Cleanup(func() { secretEqual = orig })
	return &n
}

func TestValidationHandshake(t *testing.T) {
	compares := countCompares(t)
	body := []byte(`{"validationCode":"c0de-1234"}`)
	for _, tc := range []struct {
		name     string
		r        req
		want     int
		compared bool
	}{
		{"header and body", req{auth: testAuth, code: "c0de-1234", body: body}, 200, true},
		{"body only", req{auth: testAuth, body: body}, 200, true},
		{"header only, empty body", req{auth: testAuth, code: "c0de-1234"}, 200, true},
		{"wrong AuthID", req{auth: "not-it", code: "c0de-1234", body: body}, 403, true},
		{"AuthID differing in the last character", req{auth: testAuth[:len(testAuth)-1] + "X", code: "c0de-1234", body: body}, 403, true},
		{"missing AuthID", req{code: "c0de-1234", body: body}, 401, false},
		{"codes differ", req{auth: testAuth, code: "other", body: body}, 400, true},
		{"object without a code", req{auth: testAuth, body: []byte(`{"foo":1}`)}, 400, true},
		{"body not JSON", req{auth: testAuth, code: "c0de-1234", body: []byte(`{nope`)}, 400, true},
		{"array body with the header", req{auth: testAuth, code: "c0de-1234", body: []byte(`[]`)}, 400, true},
		{"GET", req{method: http.MethodGet, auth: testAuth, code: "c0de-1234"}, 405, false},
		{"another path", req{path: "/other", auth: testAuth, code: "c0de-1234"}, 404, false},
		{"text/plain", req{auth: testAuth, code: "c0de-1234", body: body, ctype: "text/plain"}, 415, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newListener(t, nil)
			before := compares.Load()
			w := do(l.Handler(), tc.r)
			if w.Code != tc.want {
				t.Fatalf("status %d (%s), want %d", w.Code, strings.TrimSpace(w.Body.String()), tc.want)
			}
			if got := compares.Load() > before; got != tc.compared {
				t.Errorf("constant-time compare used: %v, want %v", got, tc.compared)
			}
			s := l.Stats()
			if (s.Validations == 1) != (tc.want == 200) {
				t.Errorf("Validations = %d", s.Validations)
			}
			if len(drain(l)) != 0 {
				t.Error("a validation queued something")
			}
		})
	}
}

func TestNotificationsAccepted(t *testing.T) {
	l := newListener(t, nil)
	a, b, c := item(contentID(1)), item(contentID(2)), item(contentID(3))
	b["contentType"] = ContentTypeAzureActiveDirectory
	b["contentUri"] = "https://MANAGE.Office.com:443/api/v1/" + strings.ToUpper(testTenant) + "/activity/feed/audit/" + contentID(2)
	b["tenantId"] = strings.ToUpper(testTenant)
	c["contentType"] = "dlp.all"
	c["contentCreated"] = "2026-11-30T11:35:00" // no zone: UTC
	w := do(l.Handler(), req{auth: testAuth, body: mustJSON(t, []any{a, b, c})})
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var res Result
	if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil || res != (Result{Accepted: 3}) {
		t.Fatalf("result %+v (%v)", res, err)
	}
	got := drain(l)
	if len(got) != 3 {
		t.Fatalf("queued %d, want 3", len(got))
	}
	want := []Notification{
		{TenantID: testTenant, ClientID: "c5393580-f805-4401-95e8-94b7a6ef2fc2", ContentType: ContentTypeGeneral, ContentID: contentID(1),
			ContentURI:     "https://manage.office.com/api/v1.0/" + testTenant + "/activity/feed/audit/" + contentID(1),
			ContentCreated: time.Date(2026, 11, 30, 11, 35, 0, 0, time.UTC), ContentExpiration: time.Date(2026, 12, 7, 11, 35, 0, 0, time.UTC)},
		{TenantID: testTenant, ClientID: "c5393580-f805-4401-95e8-94b7a6ef2fc2", ContentType: ContentTypeAzureActiveDirectory, ContentID: contentID(2),
			ContentURI:     "https://manage.office.com/api/v1/" + testTenant + "/activity/feed/audit/" + contentID(2),
			ContentCreated: time.Date(2026, 11, 30, 11, 35, 0, 0, time.UTC), ContentExpiration: time.Date(2026, 12, 7, 11, 35, 0, 0, time.UTC)},
		{TenantID: testTenant, ClientID: "c5393580-f805-4401-95e8-94b7a6ef2fc2", ContentType: ContentTypeDLP, ContentID: contentID(3),
			ContentURI:     "https://manage.office.com/api/v1.0/" + testTenant + "/activity/feed/audit/" + contentID(3),
			ContentCreated: time.Date(2026, 11, 30, 11, 35, 0, 0, time.UTC), ContentExpiration: time.Date(2026, 12, 7, 11, 35, 0, 0, time.UTC)},
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("item %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	// An empty array is a valid (if pointless) notification.
	if w := do(l.Handler(), req{auth: testAuth, body: []byte(" [ ] ")}); w.Code != 200 {
		t.Errorf("empty array: %d", w.Code)
	}
	if s := l.Stats(); s.Accepted != 3 || s.Notifications != 2 {
		t.Errorf("stats %+v", s)
	}
}

func TestSpoofedNotificationsRejected(t *testing.T) {
	id := contentID(7)
	path := "/api/v1.0/" + testTenant + "/activity/feed/audit/" + id
	uri := func(u string) func(map[string]any) { return func(m map[string]any) { m["contentUri"] = u } }
	set := func(k string, v any) func(map[string]any) { return func(m map[string]any) { m[k] = v } }
	for _, tc := range []struct {
		name   string
		mod    func(map[string]any)
		reason Reason
		only   []string // Options.ContentTypes
	}{
		{"another host", uri("https://evil.example.com" + path), ReasonContentURI, nil},
		{"a look-alike host", uri("https://manage.office.com.evil.example" + path), ReasonContentURI, nil},
		{"another cloud's host", uri("https://manage.office365.us" + path), ReasonContentURI, nil},
		{"loopback IP", uri("https://127.0.0.1" + path), ReasonContentURI, nil},
		{"IPv6 loopback", uri("https://[::1]" + path), ReasonContentURI, nil},
		{"metadata IP", uri("https://169.254.169.254" + path), ReasonContentURI, nil},
		{"localhost", uri("https://localhost" + path), ReasonContentURI, nil},
		{"user info", uri("https://user:pass@manage.office.com" + path), ReasonContentURI, nil},
		{"user info hiding the host", uri("https://manage.office.com@evil.example" + path), ReasonContentURI, nil},
		{"a port", uri("https://manage.office.com:8443" + path), ReasonContentURI, nil},
		{"an empty port", uri("https://manage.office.com:" + path), ReasonContentURI, nil},
		{"http", uri("http://manage.office.com" + path), ReasonContentURI, nil},
		{"no scheme", uri("//manage.office.com" + path), ReasonContentURI, nil},
		{"another tenant in the path", uri("https://manage.office.com/api/v1.0/" + otherTen + "/activity/feed/audit/" + id), ReasonContentURI, nil},
		{"another contentId in the path", uri("https://manage.office.com/api/v1.0/" + testTenant + "/activity/feed/audit/" + contentID(8)), ReasonContentURI, nil},
		{"another operation", uri("https://manage.office.com/api/v1.0/" + testTenant + "/activity/feed/subscriptions/start"), ReasonContentURI, nil},
		{"dot segments", uri("https://manage.office.com/api/v1.0/" + testTenant + "/activity/feed/audit/../../x/" + id), ReasonContentURI, nil},
		{"another API version", uri("https://manage.office.com/api/v2.0/" + testTenant + "/activity/feed/audit/" + id), ReasonContentURI, nil},
		{"a query", uri("https://manage.office.com" + path + "?redirect=https://evil.example"), ReasonContentURI, nil},
		{"a fragment", uri("https://manage.office.com" + path + "#x"), ReasonContentURI, nil},
		{"no contentUri", set("contentUri", ""), ReasonContentURI, nil},
		{"another tenantId", set("tenantId", otherTen), ReasonTenant, nil},
		{"no tenantId", set("tenantId", nil), ReasonTenant, nil},
		{"unknown contentType", set("contentType", "Audit.Teams"), ReasonContentType, nil},
		{"contentType not allowed here", nil, ReasonContentType, []string{ContentTypeExchange}},
		{"contentId with a slash", set("contentId", "a/b"), ReasonContentID, nil},
		{"no contentId", set("contentId", ""), ReasonContentID, nil},
		{"contentId too long", set("contentId", strings.Repeat("a", 600)), ReasonContentID, nil},
		{"contentCreated not a time", set("contentCreated", "yesterday"), ReasonTime, nil},
		{"no contentExpiration", set("contentExpiration", nil), ReasonTime, nil},
		{"expiration before creation", set("contentExpiration", "2026-11-29T11:35:00.000Z"), ReasonTime, nil},
		{"already expired", func(m map[string]any) {
			m["contentCreated"], m["contentExpiration"] = "2026-11-20T00:00:00Z", "2026-11-27T00:00:00Z"
		}, ReasonExpired, nil},
		{"tenantId a number", set("tenantId", 42), ReasonMalformed, nil},
		{"contentUri an object", set("contentUri", map[string]any{"a": 1}), ReasonMalformed, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newListener(t, func(o *Options) { o.ContentTypes = tc.only })
			bad := item(id)
			if tc.mod != nil {
				tc.mod(bad)
			}
			good := item(contentID(1))
			w := do(l.Handler(), req{auth: testAuth, body: mustJSON(t, []any{bad, good})})
			if tc.only != nil {
				// the "good" one is of a type not allowed either
				w = do(l.Handler(), req{auth: testAuth, body: mustJSON(t, []any{bad})})
			}
			if w.Code != 200 {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			for _, n := range drain(l) {
				if n.ContentID == id {
					t.Fatalf("the spoofed item was queued: %+v", n)
				}
			}
			s := l.Stats()
			if s.Rejected[tc.reason] == 0 {
				t.Fatalf("rejected by reason %v, want one for %s", s.Rejected, tc.reason)
			}
		})
	}
	// Items that are not objects.
	l := newListener(t, nil)
	w := do(l.Handler(), req{auth: testAuth, body: []byte(`[1, "x", null, [], true]`)})
	if w.Code != 200 || l.Stats().Rejected[ReasonMalformed] != 5 || len(drain(l)) != 0 {
		t.Fatalf("non-objects: %d, %v", w.Code, l.Stats().Rejected)
	}
}

func TestRequestsRefused(t *testing.T) {
	good := mustJSON(t, items(0, 2))
	huge := append([]byte(`[`), bytes.Repeat([]byte(` `), 2<<20)...)
	huge = append(huge, ']')
	for _, tc := range []struct {
		name string
		r    req
		want int
		stat func(Stats) uint64
	}{
		{"missing AuthID", req{body: good}, 401, func(s Stats) uint64 { return s.AuthMissing }},
		{"empty AuthID", req{auth: "", body: good}, 401, func(s Stats) uint64 { return s.AuthMissing }},
		{"wrong AuthID", req{auth: "guess", body: good}, 403, func(s Stats) uint64 { return s.AuthWrong }},
		{"AuthID with a suffix", req{auth: testAuth + "x", body: good}, 403, func(s Stats) uint64 { return s.AuthWrong }},
		{"GET", req{method: http.MethodGet, auth: testAuth}, 405, func(s Stats) uint64 { return s.BadMethod }},
		{"PUT", req{method: http.MethodPut, auth: testAuth, body: good}, 405, func(s Stats) uint64 { return s.BadMethod }},
		{"no content type", req{auth: testAuth, body: good, ctype: "-"}, 415, func(s Stats) uint64 { return s.BadContentType }},
		{"form content type", req{auth: testAuth, body: good, ctype: "application/x-www-form-urlencoded"}, 415, func(s Stats) uint64 { return s.BadContentType }},
		{"malformed JSON", req{auth: testAuth, body: []byte(`[{"tenantId":`)}, 400, func(s Stats) uint64 { return s.Malformed }},
		{"empty body", req{auth: testAuth}, 400, func(s Stats) uint64 { return s.Malformed }},
		{"a string", req{auth: testAuth, body: []byte(`"x"`)}, 400, func(s Stats) uint64 { return s.Malformed }},
		{"trailing data", req{auth: testAuth, body: append(append([]byte{}, good...), []byte(`[]`)...)}, 400, func(s Stats) uint64 { return s.Malformed }},
		{"huge body", req{auth: testAuth, body: huge}, 413, func(s Stats) uint64 { return s.TooLarge }},
		{"too many items", req{auth: testAuth, body: mustJSON(t, items(0, 11))}, 413, func(s Stats) uint64 { return s.TooManyItems }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newListener(t, func(o *Options) { o.MaxItems = 10 })
			w := do(l.Handler(), tc.r)
			if w.Code != tc.want {
				t.Fatalf("status %d (%s), want %d", w.Code, strings.TrimSpace(w.Body.String()), tc.want)
			}
			if tc.stat(l.Stats()) != 1 {
				t.Errorf("counter not incremented: %+v", l.Stats())
			}
			if n := len(drain(l)); n != 0 {
				t.Errorf("queued %d", n)
			}
		})
	}
}

func TestTwoAuthIDHeadersRefused(t *testing.T) {
	l := newListener(t, nil)
	r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(mustJSON(t, items(0, 1))))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Add(HeaderAuthID, "guess")
	r.Header.Add(HeaderAuthID, testAuth)
	w := httptest.NewRecorder()
	l.Handler().ServeHTTP(w, r)
	if w.Code != 403 {
		t.Fatalf("status %d", w.Code)
	}
}

func TestFloodBeyondQueue(t *testing.T) {
	l := newListener(t, func(o *Options) { o.QueueSize, o.MaxItems, o.RetryAfter = 10, 5, 7*time.Second })
	var accepted []string
	for b := 0; b < 3; b++ {
		w := do(l.Handler(), req{auth: testAuth, body: mustJSON(t, items(b*3, 3))})
		if w.Code != 200 {
			t.Fatalf("batch %d: %d", b, w.Code)
		}
		for i := 0; i < 3; i++ {
			accepted = append(accepted, contentID(b*3+i))
		}
	}
	// 9 queued, room for 1: a batch of 3 is refused whole, for the
	// service to retry; so is every later one while nobody consumes.
	for b := 3; b < 50; b++ {
		w := do(l.Handler(), req{auth: testAuth, body: mustJSON(t, items(b*3, 3))})
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "7" {
			t.Fatalf("batch %d: %d Retry-After %q, want 503 7", b, w.Code, w.Header().Get("Retry-After"))
		}
	}
	s := l.Stats()
	if s.Overflow != 47 || s.OverflowItems != 141 || s.Queued != 9 || s.Accepted != 9 {
		t.Fatalf("stats %+v", s)
	}
	// Nothing accepted is lost.
	var got []string
	for _, n := range drain(l) {
		got = append(got, n.ContentID)
	}
	if strings.Join(got, ",") != strings.Join(accepted, ",") {
		t.Fatalf("drained %v, want %v", got, accepted)
	}
	// The retry of a refused batch is taken once there is room (its items
	// were not remembered as seen).
	w := do(l.Handler(), req{auth: testAuth, body: mustJSON(t, items(9, 3))})
	if w.Code != 200 || len(drain(l)) != 3 {
		t.Fatalf("retry after draining: %d", w.Code)
	}
}

func TestDuplicatesDeduped(t *testing.T) {
	clk := &fakeClock{t: testNow}
	l := newListener(t, func(o *Options) { o.Now, o.DedupWindow = clk.Now, time.Hour })
	batch := mustJSON(t, append(items(0, 3), item(contentID(1)))) // one repeated inside the batch
	check := func(want Result) {
		t.Helper()
		w := do(l.Handler(), req{auth: testAuth, body: batch})
		var res Result
		_ = json.Unmarshal(w.Body.Bytes(), &res)
		if w.Code != 200 || res != want {
			t.Fatalf("status %d result %+v, want 200 %+v", w.Code, res, want)
		}
	}
	check(Result{Accepted: 3, Duplicates: 1})
	clk.Add(59 * time.Minute)
	check(Result{Accepted: 0, Duplicates: 4}) // the service retried
	if n := len(drain(l)); n != 3 {
		t.Fatalf("queued %d, want 3", n)
	}
	clk.Add(2 * time.Minute) // past the window: forgotten
	check(Result{Accepted: 3, Duplicates: 1})
	if s := l.Stats(); s.Duplicates != 6 || s.Accepted != 6 || s.Remembered != 3 {
		t.Fatalf("stats %+v", s)
	}
}

func TestDedupBounded(t *testing.T) {
	l := newListener(t, func(o *Options) { o.DedupMax, o.QueueSize, o.MaxItems = 100, 100, 50 })
	for b := 0; b < 40; b++ {
		if w := do(l.Handler(), req{auth: testAuth, body: mustJSON(t, items(b*50, 50))}); w.Code != 200 {
			t.Fatalf("batch %d: %d", b, w.Code)
		}
		drain(l)
	}
	l.mu.Lock()
	n, order := l.seen.len(), len(l.seen.order)-l.seen.head
	l.mu.Unlock()
	if n != 100 || order != 100 {
		t.Fatalf("remembered %d (order %d), want 100", n, order)
	}
}

func TestBusyBeyondMaxConcurrent(t *testing.T) {
	l := newListener(t, func(o *Options) { o.MaxConcurrent = 1 })
	pr, pw := io.Pipe()
	done := make(chan int)
	go func() { done <- do(l.Handler(), req{auth: testAuth, bodyReader: pr}).Code }()
	// Wait until the first request holds the slot.
	for len(l.sem) == 0 {
		time.Sleep(time.Millisecond)
	}
	w := do(l.Handler(), req{auth: testAuth, body: mustJSON(t, items(0, 1))})
	if w.Code != 503 || w.Header().Get("Retry-After") == "" {
		t.Fatalf("second request: %d", w.Code)
	}
	_, _ = pw.Write(mustJSON(t, items(5, 1)))
	_ = pw.Close()
	if code := <-done; code != 200 {
		t.Fatalf("first request: %d", code)
	}
	if s := l.Stats(); s.Busy != 1 || s.Accepted != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestConcurrentRequests(t *testing.T) {
	l := newListener(t, func(o *Options) {
		o.Listen, o.MaxConcurrent, o.QueueSize, o.MaxItems = "127.0.0.1:0", 4, 64, 8
	})
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String() + "/"
	consumed := map[string]int{}
	consumerDone := make(chan struct{})
	go func() {
		defer close(consumerDone)
		for n := range l.Notifications() {
			consumed[n.ContentID]++
		}
	}()
	const workers, perWorker, batch = 16, 20, 5
	var okItems atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < workers; g++ {
		wg.Go(func() {
			for r := 0; r < perWorker; r++ {
				// every batch overlaps the next one by 2 ids: duplicates
				first := (g*perWorker+r)*(batch-2) + 0
				body := mustJSON(t, items(first, batch))
				for attempt := 0; ; attempt++ {
					hr, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
					hr.Header.Set("Content-Type", "application/json")
					hr.Header.Set(HeaderAuthID, testAuth)
					resp, err := http.DefaultClient.Do(hr)
					if err != nil {
						t.Error(err)
						return
					}
					var res Result
					_ = json.NewDecoder(resp.Body).Decode(&res)
					resp.Body.Close()
					if resp.StatusCode == 200 {
						okItems.Add(int64(res.Accepted))
						break
					}
					if resp.StatusCode != 503 {
						t.Errorf("status %d", resp.StatusCode)
						return
					}
					time.Sleep(time.Millisecond) // as the service would, later
				}
			}
		})
	}
	wg.Wait()
	if err := l.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-consumerDone
	wantIDs := workers*perWorker*(batch-2) + 2
	if len(consumed) != wantIDs || okItems.Load() != int64(wantIDs) {
		t.Fatalf("consumed %d distinct, answered accepted %d; want %d", len(consumed), okItems.Load(), wantIDs)
	}
	for id, k := range consumed {
		if k != 1 {
			t.Fatalf("%s consumed %d times", id, k)
		}
	}
	if s := l.Stats(); s.Accepted != uint64(wantIDs) {
		t.Fatalf("stats %+v", s)
	}
}

func TestShutdownClosesQueue(t *testing.T) {
	l := newListener(t, func(o *Options) { o.Listen = "127.0.0.1:0" })
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := l.Start(context.Background()); err == nil {
		t.Fatal("started twice")
	}
	if w := do(l.Handler(), req{auth: testAuth, body: mustJSON(t, items(0, 2))}); w.Code != 200 {
		t.Fatal(w.Code)
	}
	if err := l.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if w := do(l.Handler(), req{auth: testAuth, body: mustJSON(t, items(2, 2))}); w.Code != 503 {
		t.Fatalf("after shutdown: %d", w.Code)
	}
	var n int
	for range l.Notifications() { // drains the queued, then ends
		n++
	}
	if n != 2 || l.Stats().Closed != 1 {
		t.Fatalf("drained %d, stats %+v", n, l.Stats())
	}
	if err := l.Shutdown(context.Background()); err != nil {
		t.Fatalf("second shutdown: %v", err)
	}
	// A listener that was only ever used as a Handler can be shut down,
	// and one shut down cannot start.
	h := newListener(t, func(o *Options) { o.Listen = "127.0.0.1:0" })
	if err := h.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err == nil {
		t.Fatal("started after shutdown")
	}
}

func TestTLS(t *testing.T) {
	ts := httptest.NewTLSServer(http.NotFoundHandler()) // for its certificate and a client trusting it
	defer ts.Close()
	l := newListener(t, func(o *Options) { o.Listen, o.TLSConfig, o.Path = "127.0.0.1:0", ts.TLS.Clone(), "/hook" })
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	hr, _ := http.NewRequest(http.MethodPost, "https://"+l.Addr().String()+"/hook", strings.NewReader(`{"validationCode":"x"}`))
	hr.Header.Set("Content-Type", "application/json; charset=utf-8")
	hr.Header.Set(HeaderAuthID, testAuth)
	hr.Header.Set(HeaderValidationCode, "x")
	resp, err := ts.Client().Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || l.Stats().Validations != 1 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func TestLogsKeepSecrets(t *testing.T) {
	var buf syncBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	l := newListener(t, func(o *Options) { o.Logger = log })
	h := l.Handler()
	do(h, req{auth: "received-wrong-secret", body: mustJSON(t, items(0, 1))})
	do(h, req{auth: testAuth, code: "the-validation-code", body: []byte(`{"validationCode":"the-validation-code"}`)})
	bad := item(contentID(3))
	bad["contentUri"] = "https://admin:hunter2-password@evil.example/api/v1.0/" + testTenant + "/activity/feed/audit/" + contentID(3)
	do(h, req{auth: testAuth, body: mustJSON(t, []any{bad})})
	out := buf.String()
	for _, secret := range []string{testAuth, "received-wrong-secret", "the-validation-code", "hunter2-password", "evil.example"} {
		if strings.Contains(out, secret) {
			t.Errorf("the log shows %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{"wrong Webhook-AuthID", "remote=192.0.2.1", "subscription validated", "reason=content_uri"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q:\n%s", want, out)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestValidateContentURI(t *testing.T) {
	id := contentID(1)
	p := "/activity/feed/audit/" + id
	for _, tc := range []struct {
		raw, want string
	}{
		{"https://manage.office.com/api/v1.0/" + testTenant + p, "https://manage.office.com/api/v1.0/" + testTenant + p},
		{"https://manage.office.com/api/v1/" + testTenant + p, "https://manage.office.com/api/v1/" + testTenant + p},
		{"HTTPS://Manage.Office.Com:443/api/v1.0/" + testTenant + p, "https://manage.office.com/api/v1.0/" + testTenant + p},
		{"https://manage.office.com/api/v1.0/" + testTenant + "/activity/feed/audit/" + strings.ReplaceAll(id, "$", "%24"), "https://manage.office.com/api/v1.0/" + testTenant + p},
		{"https://manage.office.com./api/v1.0/" + testTenant + p, ""},
		{"https://manage.office.com/api/v1.0/" + testTenant + p + "/", ""},
		{"https://manage.office.com/api/v1.0/" + testTenant + "/activity/feed/audit%2F" + id, ""},
		{"https://manage.office.com/api/v1.0//" + testTenant + p, ""},
		{"https://manage.office.com\\@evil.example/api/v1.0/" + testTenant + p, ""},
		{"https://manage.office.com%2eevil.example/api/v1.0/" + testTenant + p, ""},
		{"https://[fe80::1%25eth0]/api/v1.0/" + testTenant + p, ""},
		{"https://2130706433/api/v1.0/" + testTenant + p, ""},
		{"https:manage.office.com/api/v1.0/" + testTenant + p, ""},
		{" https://manage.office.com/api/v1.0/" + testTenant + p, ""},
		{"https://manage.office.com/api/v1.0/" + testTenant + p + "?", ""},
	} {
		got, err := ValidateContentURI(tc.raw, testHost, testTenant, id)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("ValidateContentURI(%q) = %q, %v; want %q", tc.raw, got, err, tc.want)
		}
	}
}
