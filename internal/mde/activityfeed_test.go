package mde

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/auth"
)

const (
	feedTenant = "11111111-2222-3333-4444-555555555555"
	feedOther  = "99999999-2222-3333-4444-555555555555"
)

// feedRecorder answers with the next scripted reply and records requests.
type feedRecorder struct {
	mu      sync.Mutex
	replies []func(w http.ResponseWriter, r *http.Request)
	reqs    []*http.Request
}

func (f *feedRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.reqs = append(f.reqs, r.Clone(r.Context()))
	var reply func(w http.ResponseWriter, r *http.Request)
	if len(f.replies) > 0 {
		reply, f.replies = f.replies[0], f.replies[1:]
	}
	f.mu.Unlock()
	if reply == nil {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `[]`)
		return
	}
	reply(w, r)
}

func afError(status int, code, msg string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":{"code":%q,"message":%q}}`, code, msg)
	}
}

// tlsFeed serves h over TLS on loopback for manage.office.com and
// returns a client reaching it through the emulator transport.
func tlsFeed(t *testing.T, h http.Handler) (*ActivityFeedClient, *sleeps) {
	t.Helper()
	caPEM, leaf := testCA(t, "manage.office.com", "manage-gcc.office.com")
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	rt, err := NewTransport(TransportOptions{EmulatorAddress: srv.Listener.Addr().String(), EmulatorCAPEM: caPEM})
	if err != nil {
		t.Fatal(err)
	}
	sl := &sleeps{}
	c, err := NewActivityFeedClient(ActivityFeedOptions{TenantID: feedTenant, Tokens: auth.NewStaticToken("MANAGETOKEN"),
		ClientOptions: ClientOptions{Transport: rt, Sleep: sl.sleep, Limiter: &countLimiter{}, MaxAttempts: 4}})
	if err != nil {
		t.Fatal(err)
	}
	return c, sl
}

func TestActivityFeedLinks(t *testing.T) {
	c, _ := tlsFeed(t, &feedRecorder{})
	good := []string{
		"https://manage.office.com/api/v1/" + feedTenant + "/activity/feed/subscriptions/content?contentType=Audit.SharePoint&startTime=2015-10-01&endTime=2015-10-02&nextPage=2015101900R022885001761",
		"https://manage.office.com/api/v1.0/" + strings.ToUpper(feedTenant) + "/activity/feed/subscriptions/content?nextPage=x",
		"https://MANAGE.office.com:443/api/v1.0/" + feedTenant + "/activity/feed/subscriptions/content",
	}
	for _, l := range good {
		if _, err := c.ValidateLink(l, "subscriptions/content"); err != nil {
			t.Errorf("%s refused: %v", l, err)
		}
	}
	bad := map[string]string{
		"https://evil.example/api/v1.0/" + feedTenant + "/activity/feed/subscriptions/content":              "not the management host",
		"https://127.0.0.1/api/v1.0/" + feedTenant + "/activity/feed/subscriptions/content":                 "not the management host",
		"https://manage.office.com.evil.example/api/v1.0/" + feedTenant + "/activity/feed/audit/x":          "not the management host",
		"https://manage-gcc.office.com/api/v1.0/" + feedTenant + "/activity/feed/subscriptions/content":     "not the management host",
		"http://manage.office.com/api/v1.0/" + feedTenant + "/activity/feed/subscriptions/content":          "https",
		"https://u:p@manage.office.com/api/v1.0/" + feedTenant + "/activity/feed/subscriptions/content":     "user info",
		"https://manage.office.com:8443/api/v1.0/" + feedTenant + "/activity/feed/subscriptions/content":    "port",
		"https://manage.office.com/api/v1.0/" + feedOther + "/activity/feed/subscriptions/content":          "not the configured tenant",
		"https://manage.office.com/api/v2.0/" + feedTenant + "/activity/feed/subscriptions/content":         "not under",
		"https://manage.office.com/api/v1.0/" + feedTenant + "/activity/feed/../../x/subscriptions/content": "dot segments",
		"https://manage.office.com/api/v1.0/" + feedTenant + "/activity/feed/subscriptions/content#x":       "fragment",
		"https://manage.office.com/api/v1.0/" + feedTenant + "/activity/feed/subscriptions/list":            "not a subscriptions/content link",
		"/api/v1.0/" + feedTenant + "/activity/feed/subscriptions/content":                                  "https",
	}
	for l, why := range bad {
		_, err := c.ValidateLink(l, "subscriptions/content")
		if err == nil || !errors.Is(err, ErrBadFeedLink) || !strings.Contains(err.Error(), why) {
			t.Errorf("%s: got %v, want an ErrBadFeedLink saying %q", l, err, why)
		}
	}
	if _, err := c.ValidateLink("https://manage.office.com/api/v1.0/"+feedTenant+"/activity/feed/audit/", "audit/"); err == nil {
		t.Error("a contentUri without a content id was accepted")
	}
}

func TestActivityFeedCalls(t *testing.T) {
	ok := func(body string, hdr ...string) func(w http.ResponseWriter, r *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			for i := 0; i+1 < len(hdr); i += 2 {
				w.Header().Set(hdr[i], hdr[i+1])
			}
			fmt.Fprint(w, body)
		}
	}
	next := "https://manage.office.com/api/v1/" + feedTenant + "/activity/feed/subscriptions/content?contentType=Audit.General&startTime=2026-11-29T00:00:00&endTime=2026-11-30T00:00:00&nextPage=P2"
	tests := []struct {
		name     string
		replies  []func(w http.ResponseWriter, r *http.Request)
		call     func(c *ActivityFeedClient) error
		wantErr  string // "" = success
		requests int
		waits    int
	}{
		{name: "start already enabled (AF20024) is success",
			replies: []func(http.ResponseWriter, *http.Request){afError(400, "AF20024", "The subscription is already enabled. No property change.")},
			call:    func(c *ActivityFeedClient) error { return c.StartSubscription(t.Context(), ContentGeneral, nil) }, requests: 1},
		{name: "AF429 with HTTP 403 is retried with backoff",
			replies: []func(http.ResponseWriter, *http.Request){afError(403, "AF429", "Too many requests. Method=GetBlob, PublisherId=x"), ok(`[]`)},
			call: func(c *ActivityFeedClient) error {
				_, err := c.FetchContent(t.Context(), "https://manage.office.com/api/v1.0/"+feedTenant+"/activity/feed/audit/abc$def")
				return err
			}, requests: 2, waits: 1},
		{name: "AF429 with HTTP 429 is retried with backoff",
			replies: []func(http.ResponseWriter, *http.Request){afError(429, "AF429", "Too many requests."), afError(429, "AF429", "Too many requests."), ok(`[]`)},
			call: func(c *ActivityFeedClient) error {
				_, err := c.ListContent(t.Context(), ContentGeneral, time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC), "")
				return err
			}, requests: 3, waits: 2},
		{name: "another 403 is final",
			replies: []func(http.ResponseWriter, *http.Request){afError(403, "AF10001", "The permission set () sent in the request did not include the expected permission ActivityFeed.Read.")},
			call:    func(c *ActivityFeedClient) error { _, err := c.Subscriptions(t.Context()); return err },
			wantErr: "ActivityFeed.Read and give admin consent", requests: 1},
		{name: "tenant mismatch",
			replies: []func(http.ResponseWriter, *http.Request){afError(401, "AF20010", "The tenant ID in the request does not match the token.")},
			call:    func(c *ActivityFeedClient) error { _, err := c.Subscriptions(t.Context()); return err },
			wantErr: "tenant mismatch", requests: 1},
		{name: "audit logging off",
			replies: []func(http.ResponseWriter, *http.Request){afError(400, "AF20012", "Tenant "+feedTenant+" does not exist.")},
			call:    func(c *ActivityFeedClient) error { _, err := c.Subscriptions(t.Context()); return err },
			wantErr: "turn it on", requests: 1},
		{name: "NextPageUri to another host is refused",
			replies: []func(http.ResponseWriter, *http.Request){ok(`[]`, "NextPageUri", "https://evil.example/api/v1/"+feedTenant+"/activity/feed/subscriptions/content?nextPage=2")},
			call: func(c *ActivityFeedClient) error {
				_, err := c.ListContent(t.Context(), ContentGeneral, time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC), "")
				return err
			}, wantErr: "not the management host", requests: 1},
		{name: "NextPageUrl is accepted and followed with PublisherIdentifier",
			replies: []func(http.ResponseWriter, *http.Request){ok(`[]`, "NextPageUrl", next), ok(`[]`)},
			call: func(c *ActivityFeedClient) error {
				p, err := c.ListContent(t.Context(), ContentGeneral, time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC), "")
				if err != nil {
					return err
				}
				if p.Next != next {
					return fmt.Errorf("next %q", p.Next)
				}
				_, err = c.ListContent(t.Context(), ContentGeneral, time.Time{}, time.Time{}, p.Next)
				return err
			}, requests: 2},
		{name: "redirects are not followed",
			replies: []func(http.ResponseWriter, *http.Request){func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "https://evil.example/x", http.StatusFound)
			}},
			call:    func(c *ActivityFeedClient) error { _, err := c.Subscriptions(t.Context()); return err },
			wantErr: "redirect", requests: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &feedRecorder{replies: tt.replies}
			c, sl := tlsFeed(t, rec)
			err := tt.call(c)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err %v, want %q", err, tt.wantErr)
			}
			if len(rec.reqs) != tt.requests {
				t.Errorf("%d requests, want %d", len(rec.reqs), tt.requests)
			}
			if n := len(sl.all()); n < tt.waits {
				t.Errorf("%d backoff waits, want %d", n, tt.waits)
			}
			for _, r := range rec.reqs {
				if r.Host != "manage.office.com" || r.Header.Get("Authorization") != "Bearer MANAGETOKEN" {
					t.Errorf("request to %s with auth %q", r.Host, r.Header.Get("Authorization"))
				}
				if r.URL.Query().Get("PublisherIdentifier") != feedTenant {
					t.Errorf("%s %s: no PublisherIdentifier", r.Method, r.URL.Path)
				}
			}
		})
	}
}

func TestActivityFeedOptions(t *testing.T) {
	tok := auth.NewStaticToken("x")
	for _, o := range []ActivityFeedOptions{
		{TenantID: "contoso.onmicrosoft.com", Tokens: tok},
		{TenantID: feedTenant, Tokens: tok, Cloud: "china"},
		{TenantID: feedTenant, Tokens: tok, PublisherIdentifier: "vendor"},
		{TenantID: feedTenant},
		{TenantID: feedTenant, Tokens: tok, BaseURL: "https://evil.example"},
	} {
		if _, err := NewActivityFeedClient(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	for cloud, host := range Clouds {
		c, err := NewActivityFeedClient(ActivityFeedOptions{TenantID: feedTenant, Tokens: tok, Cloud: cloud})
		if err != nil || c.base.Host != host {
			t.Errorf("cloud %s: %v, host %v", cloud, err, c)
		}
	}
}

func TestDecodeContentListShapes(t *testing.T) {
	good := `[{"contentType":"Audit.SharePoint","contentId":"492638008028$492638008028$f28ab78ad40140608012736e373933ebspo2015043022$4a81a7c326fc4aed89c62e6039ab833b$04","contentUri":"https://manage.office.com/api/v1.0/t/activity/feed/audit/x","contentCreated":"2015-05-23T17:35:00.000Z","contentExpiration":"2015-05-30T17:35:00.000Z"}]`
	cs, err := DecodeContentList([]byte(good))
	if err != nil || len(cs) != 1 || !cs[0].ContentCreated.Equal(time.Date(2015, 5, 23, 17, 35, 0, 0, time.UTC)) {
		t.Fatalf("%v %+v", err, cs)
	}
	bad := map[string]string{
		`{"value":[{"secret":"SECRETVALUE"}]}`: "object with keys [value]",
		`"SECRETVALUE"`:                        "a JSON string",
		`[{"contentType":"SECRETVALUE","contentId":"a","contentUri":"u","contentCreated":12}]`:  "field contentCreated is a JSON number, not a string",
		`[{"contentType":"a","contentId":"a","contentUri":"u","contentCreated":"SECRETVALUE"}]`: "contentCreated is not an ISO 8601 time",
		`["SECRETVALUE"]`:               "entry 0 is a JSON string",
		`[{"contentId":"SECRETVALUE"}]`: "field contentType is missing",
		`<html>SECRETVALUE</html>`:      "markup",
	}
	for body, want := range bad {
		_, err := DecodeContentList([]byte(body))
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "SECRETVALUE") {
			t.Errorf("%s: %v, want %q and no value", body, err, want)
		}
	}
}

func FuzzDecodeContentList(f *testing.F) {
	f.Add([]byte(`[{"contentType":"Audit.General","contentId":"a$b","contentUri":"https://manage.office.com/api/v1.0/t/activity/feed/audit/a$b","contentCreated":"2026-11-29T10:00:00.000Z","contentExpiration":"2026-12-06T10:00:00.000Z"}]`))
	f.Add([]byte(`{"error":{"code":"AF20022","message":"x"}}`))
	f.Add([]byte(`[null,1,"x"]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		cs, err := DecodeContentList(b)
		if err != nil {
			return
		}
		for _, c := range cs {
			if c.ContentURI == "" || c.ContentCreated.IsZero() {
				t.Fatalf("accepted an entry without uri or time: %+v", c)
			}
		}
	})
}

// The start request: no body without a webhook; the documented
// {"webhook":{address, authId, expiration}} as JSON with one; AF20024 is
// success either way; AF20021 says what to check and never carries the
// AuthID, even when the service echoes it.
func TestStartSubscriptionWebhook(t *testing.T) {
	const secret = "S3CRET-AUTH-ID"
	hook := &WebhookSpec{Address: "https://hooks.contoso.com/o365/contoso", AuthID: secret, Expiration: "2027-01-01T00:00:00Z"}
	tests := []struct {
		name     string
		hook     *WebhookSpec
		reply    func(w http.ResponseWriter, r *http.Request)
		wantBody string // "" = no body
		wantErr  []string
		wantCode string
	}{
		{name: "no webhook: no body", reply: afError(200, "", ""), wantBody: ""},
		{name: "webhook: JSON body", hook: hook,
			reply: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, `{"contentType":"Audit.General","status":"enabled","webhook":{"status":"enabled","address":"https://hooks.contoso.com/o365/contoso","authId":"S3CRET-AUTH-ID","expiration":""}}`)
			},
			wantBody: `{"webhook":{"address":"https://hooks.contoso.com/o365/contoso","authId":"S3CRET-AUTH-ID","expiration":"2027-01-01T00:00:00Z"}}`},
		{name: "webhook, already so (AF20024)", hook: hook,
			reply:    afError(400, "AF20024", "The subscription is already enabled. No property change."),
			wantBody: `{"webhook":{"address":"https://hooks.contoso.com/o365/contoso","authId":"S3CRET-AUTH-ID","expiration":"2027-01-01T00:00:00Z"}}`},
		{name: "validation failed (AF20021)", hook: hook,
			reply:    afError(400, "AF20021", "The webhook endpoint {https://hooks.contoso.com/o365/contoso} could not be validated. The endpoint did not return HTTP 200."),
			wantBody: `{"webhook":{"address":"https://hooks.contoso.com/o365/contoso","authId":"S3CRET-AUTH-ID","expiration":"2027-01-01T00:00:00Z"}}`,
			wantErr:  []string{"AF20021", "did not answer the service's validation POST with HTTP 200", "webhook.listen", "trusted publicly", "preserves the path"}, wantCode: AFWebhookValidation},
		{name: "AF20021 echoing the AuthID is redacted", hook: hook,
			reply:    afError(400, "AF20021", "Validation with authId "+secret+" failed. The endpoint did not return HTTP 200."),
			wantBody: `{"webhook":{"address":"https://hooks.contoso.com/o365/contoso","authId":"S3CRET-AUTH-ID","expiration":"2027-01-01T00:00:00Z"}}`,
			wantErr:  []string{"AF20021", "[redacted]", "validation POST"}, wantCode: AFWebhookValidation},
		{name: "not https (AF20021)", hook: &WebhookSpec{Address: "http://hooks.contoso.com/", AuthID: secret},
			reply:    afError(400, "AF20021", "The address must begin with HTTPS."),
			wantBody: `{"webhook":{"address":"http://hooks.contoso.com/","authId":"S3CRET-AUTH-ID","expiration":""}}`,
			wantErr:  []string{"must be an https URL"}, wantCode: AFWebhookValidation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var bodies []string
			var ctypes []string
			c, _ := tlsFeed(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				bodies, ctypes = append(bodies, string(b)), append(ctypes, r.Header.Get("Content-Type"))
				mu.Unlock()
				if r.Method != http.MethodPost || r.URL.Query().Get("contentType") != ContentGeneral {
					t.Errorf("%s %s", r.Method, r.URL)
				}
				if tt.reply == nil || (tt.wantBody == "" && tt.hook == nil) {
					w.Header().Set("Content-Type", "application/json")
					fmt.Fprint(w, `{"contentType":"Audit.General","status":"enabled","webhook":null}`)
					return
				}
				tt.reply(w, r)
			}))
			err := c.StartSubscription(t.Context(), ContentGeneral, tt.hook)
			if len(tt.wantErr) == 0 && err != nil {
				t.Fatalf("err %v", err)
			}
			for _, want := range tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("err %v, want %q", err, want)
				}
			}
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Errorf("the error carries the AuthID: %v", err)
			}
			if tt.wantCode != "" && FeedCode(err) != tt.wantCode {
				t.Errorf("code %q, want %s", FeedCode(err), tt.wantCode)
			}
			if len(bodies) != 1 {
				t.Fatalf("%d requests", len(bodies))
			}
			if bodies[0] != tt.wantBody {
				t.Errorf("body %s, want %s", bodies[0], tt.wantBody)
			}
			if tt.wantBody != "" && !strings.HasPrefix(ctypes[0], "application/json") || tt.wantBody == "" && ctypes[0] != "" {
				t.Errorf("Content-Type %q with body %q", ctypes[0], bodies[0])
			}
		})
	}
	if s := fmt.Sprintf("%v %+v", *hook, hook); strings.Contains(s, secret) {
		t.Errorf("formatting a WebhookSpec prints the AuthID: %s", s)
	}
	c, _ := tlsFeed(t, &feedRecorder{})
	if err := c.StartSubscription(t.Context(), ContentGeneral, &WebhookSpec{AuthID: secret}); err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("a webhook without address: %v", err)
	}
}

// subscriptions/list: the webhook member absent or null is no webhook, an
// object gives its string fields, anything else names the key and the
// JSON type, never a value.
func TestDecodeSubscriptionsWebhook(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    *SubscriptionWebhook
		wantErr string
	}{
		{name: "absent", body: `[{"contentType":"Audit.General","status":"enabled"}]`},
		{name: "null", body: `[{"contentType":"Audit.General","status":"enabled","webhook":null}]`},
		{name: "object", body: `[{"contentType":"Audit.General","status":"enabled","webhook":{"status":"disabled","address":"https://h.example/x","authId":"SECRETVALUE","expiration":"2027-01-01T00:00:00"}}]`,
			want: &SubscriptionWebhook{Status: "disabled", Address: "https://h.example/x", AuthID: "SECRETVALUE", Expiration: "2027-01-01T00:00:00"}},
		{name: "object with fields missing or null", body: `[{"contentType":"Audit.General","status":"enabled","webhook":{"address":"https://h.example/x","authId":null,"extra":1}}]`,
			want: &SubscriptionWebhook{Address: "https://h.example/x"}},
		{name: "empty object", body: `[{"contentType":"Audit.General","status":"enabled","webhook":{}}]`, want: &SubscriptionWebhook{}},
		{name: "a string", body: `[{"contentType":"Audit.General","status":"enabled","webhook":"SECRETVALUE"}]`, wantErr: "entry 0: field webhook is a JSON string, not an object or null"},
		{name: "an array", body: `[{"contentType":"Audit.General","status":"enabled","webhook":["SECRETVALUE"]}]`, wantErr: "field webhook is a JSON array"},
		{name: "a boolean", body: `[{"contentType":"Audit.General","status":"enabled","webhook":true}]`, wantErr: "field webhook is a JSON boolean"},
		{name: "a number", body: `[{"contentType":"Audit.General","status":"enabled","webhook":12}]`, wantErr: "field webhook is a JSON number"},
		{name: "authId not a string", body: `[{"contentType":"Audit.General","status":"enabled","webhook":{"authId":["SECRETVALUE"]}}]`, wantErr: "field webhook.authId is a JSON array, not a string"},
		{name: "address not a string", body: `[{"contentType":"Audit.General","status":"enabled","webhook":{"address":{"x":"SECRETVALUE"}}}]`, wantErr: "field webhook.address is a JSON object, not a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			subs, err := DecodeSubscriptions([]byte(tt.body))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "SECRETVALUE") {
					t.Fatalf("err %v, want %q and no value", err, tt.wantErr)
				}
				return
			}
			if err != nil || len(subs) != 1 || subs[0].ContentType != ContentGeneral || !subs[0].Enabled() {
				t.Fatalf("%v %+v", err, subs)
			}
			got := subs[0].Webhook
			if (got == nil) != (tt.want == nil) || got != nil && *got != *tt.want {
				t.Fatalf("webhook %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzDecodeSubscriptions(f *testing.F) {
	f.Add([]byte(`[{"contentType":"Audit.General","status":"enabled","webhook":null}]`))
	f.Add([]byte(`[{"contentType":"Audit.Exchange","status":"enabled","webhook":{"status":"disabled","address":"https://h/x","authId":"a","expiration":""}}]`))
	f.Add([]byte(`[{"contentType":"DLP.All","status":"disabled","webhook":[1]}]`))
	f.Add([]byte(`{"error":{"code":"AF20022","message":"x"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		subs, err := DecodeSubscriptions(b)
		if err != nil {
			return
		}
		for _, s := range subs {
			if strings.TrimSpace(s.ContentType) == "" || strings.TrimSpace(s.Status) == "" {
				t.Fatalf("accepted an entry without content type or status: %+v", s)
			}
		}
	})
}
