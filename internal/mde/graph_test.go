package mde

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/defenderharvester/defenderharvester/internal/auth"
)

func newTestGraph(t *testing.T, h http.Handler, mod func(*GraphOptions)) (*GraphClient, *sleeps) {
	t.Helper()
	sl := &sleeps{}
	o := GraphOptions{Tokens: auth.NewStaticToken("GRAPHTOKEN"), ClientOptions: ClientOptions{
		Transport: plainServer(t, h), Sleep: sl.sleep, Limiter: &countLimiter{}, MaxAttempts: 2,
	}}
	if mod != nil {
		mod(&o)
	}
	c, err := NewGraphClient(o)
	if err != nil {
		t.Fatal(err)
	}
	return c, sl
}

func graphRule(id string) string {
	return fmt.Sprintf(`{"@odata.type":"#microsoft.graph.security.detectionRule","id":%q,"displayName":"Rule %s","isEnabled":true,"createdBy":"a@contoso.com","createdDateTime":"2026-01-01T00:00:00.0000000Z","lastModifiedBy":"b@contoso.com","lastModifiedDateTime":"2026-02-01T00:00:00.0000000Z","queryCondition":{"queryText":"DeviceEvents | take 1","lastModifiedDateTime":null},"schedule":{"period":"1H","nextRunDateTime":null},"lastRunDetails":{"lastRunDateTime":null,"status":null,"failureReason":null,"errorCode":null},"detectionAction":{"alertTemplate":{"title":"t","severity":"high"}}}`, id, id)
}

// graphPages serves pages keyed by $skiptoken ("" first); each page's
// body may name its next token with {next:TOKEN}.
func graphPages(pages map[string]string) *recorder {
	return &recorder{h: func(w http.ResponseWriter, r *http.Request) bool {
		body, ok := pages[r.URL.Query().Get("$skiptoken")]
		if !ok {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":{"code":"BadRequest","message":"bad skip token"}}`)
			return true
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, body)
		return true
	}}
}

const graphList = "https://graph.microsoft.com/beta/security/rules/detectionRules"

func TestGraphDetectionRulesPaging(t *testing.T) {
	rc := graphPages(map[string]string{
		"":   `{"@odata.context":"https://graph.microsoft.com/beta/$metadata#security/rules/detectionRules","@odata.count":5,"value":[` + graphRule("1") + `,` + graphRule("2") + `],"@odata.nextLink":"` + graphList + `?$top=2&$count=true&$skiptoken=p2"}`,
		"p2": `{"value":[` + graphRule("3") + `,` + graphRule("4") + `],"@odata.nextLink":"https://GRAPH.microsoft.com:443/beta/security/rules/detectionrules?$top=2&$count=true&$skiptoken=p3"}`,
		"p3": `{"value":[` + graphRule("5") + `],"@odata.nextLink":null}`,
	})
	c, _ := newTestGraph(t, rc, nil)
	rules, err := c.DetectionRules(context.Background(), GraphListOptions{Top: 2, Count: true})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range rules {
		var v struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(r, &v); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, v.ID)
	}
	if got := strings.Join(ids, ","); got != "1,2,3,4,5" {
		t.Errorf("ids = %s", got)
	}
	if string(rules[0]) != graphRule("1") {
		t.Errorf("the raw rule was changed: %s", rules[0])
	}
	reqs := rc.all()
	if len(reqs) != 3 {
		t.Fatalf("%d requests: %+v", len(reqs), reqs)
	}
	if r := reqs[0]; r.Host != GraphHost || r.Path != "/beta/security/rules/detectionRules" || r.Query != "$count=true&$top=2" || r.Auth != "Bearer GRAPHTOKEN" || r.Method != http.MethodGet {
		t.Errorf("first request %+v", r)
	}
	for _, r := range reqs[1:] {
		if r.Auth != "Bearer GRAPHTOKEN" || !strings.Contains(r.Query, "$skiptoken=") {
			t.Errorf("continuation request %+v", r)
		}
	}
}

func TestGraphVersions(t *testing.T) {
	rc := graphPages(map[string]string{"": `{"value":[]}`})
	c, _ := newTestGraph(t, rc, nil)
	if _, err := c.DetectionRules(context.Background(), GraphListOptions{Version: GraphV1}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DetectionRules(context.Background(), GraphListOptions{}); err != nil {
		t.Fatal(err)
	}
	reqs := rc.all()
	if len(reqs) != 2 || reqs[0].Path != "/v1.0/security/rules/detectionRules" || reqs[1].Path != "/beta/security/rules/detectionRules" || reqs[1].Query != "" {
		t.Errorf("requests %+v", reqs)
	}
	if _, err := c.DetectionRules(context.Background(), GraphListOptions{Version: "v2.0"}); err == nil || !strings.Contains(err.Error(), "beta or v1.0") {
		t.Errorf("err = %v", err)
	}
	if _, err := c.List(context.Background(), GraphBeta, "/security/../users", nil); err == nil {
		t.Error("a path with dot segments was accepted")
	}
	if len(rc.all()) != 2 {
		t.Error("a refused request was sent")
	}
}

func TestGraphLinkValidation(t *testing.T) {
	c, _ := newTestGraph(t, &recorder{}, nil)
	const want = "/beta/security/rules/detectionRules"
	good := []string{
		graphList + "?$skiptoken=abc",
		"https://graph.microsoft.com:443/beta/security/rules/detectionRules?$top=3&$skiptoken=abc",
		"https://Graph.Microsoft.com/beta/Security/Rules/DetectionRules?$skip=3",
	}
	for _, l := range good {
		if _, err := c.ValidateLink(l, want); err != nil {
			t.Errorf("%s: %v", l, err)
		}
	}
	bad := map[string]string{
		"http://graph.microsoft.com/beta/security/rules/detectionRules?$skiptoken=SECRETQ":           "not an absolute https URL",
		"/beta/security/rules/detectionRules?$skiptoken=SECRETQ":                                     "not an absolute https URL",
		"https://evil.example/beta/security/rules/detectionRules?$skiptoken=SECRETQ":                 `host "evil.example" is not graph.microsoft.com`,
		"https://graph.microsoft.com.evil.example/beta/security/rules/detectionRules?x=SECRETQ":      "is not graph.microsoft.com",
		"https://graph.microsoft.com:8443/beta/security/rules/detectionRules?$skiptoken=SECRETQ":     "port other than 443",
		"https://u:p@graph.microsoft.com/beta/security/rules/detectionRules?$skiptoken=SECRETQ":      "user info",
		"https://graph.microsoft.com/beta/security/rules/detectionRules?$skiptoken=SECRETQ#frag":     "fragment",
		"https://graph.microsoft.com/beta/users?$skiptoken=SECRETQ":                                  `path "/beta/users" is not the list's path`,
		"https://graph.microsoft.com/v1.0/security/rules/detectionRules?$skiptoken=SECRETQ":          "is not the list's path",
		"https://graph.microsoft.com/beta/security/rules/detectionRules/1?$skiptoken=SECRETQ":        "is not the list's path",
		"https://graph.microsoft.com/beta/security/rules/../rules/detectionRules?$skiptoken=SECRETQ": "dot segments",
		"https://graph.microsoft.com/beta/security%2Frules/detectionRules?$skiptoken=SECRETQ":        "encoded slashes",
		"https://graph.microsoft.com/beta/security/rules/detectionRules?$skiptoken=SECRETQ\\x":       "backslash",
		"https://graph.microsoft.com/beta/security/rules/detectionRules?$skiptoken=SECRETQ%zz":       "query string is malformed",
		"": "empty",
		"https://graph.microsoft.com/beta/security/rules/detectionRules?" + strings.Repeat("a", 9000): "longer than 8 KiB",
	}
	for l, why := range bad {
		_, err := c.ValidateLink(l, want)
		if !errors.Is(err, ErrBadGraphLink) || !strings.Contains(err.Error(), why) {
			t.Errorf("%q: err = %v, want %q", l, err, why)
		}
		if err != nil && strings.Contains(err.Error(), "SECRETQ") {
			t.Errorf("%q: the error repeats the query: %v", l, err)
		}
	}
}

func TestGraphRefusedLinkIsNeverRequested(t *testing.T) {
	rc := graphPages(map[string]string{
		"": `{"value":[` + graphRule("1") + `],"@odata.nextLink":"https://evil.example/beta/security/rules/detectionRules?$skiptoken=p2"}`,
	})
	c, _ := newTestGraph(t, rc, nil)
	_, err := c.DetectionRules(context.Background(), GraphListOptions{})
	if !errors.Is(err, ErrBadGraphLink) || !strings.Contains(err.Error(), "@odata.nextLink") {
		t.Errorf("err = %v", err)
	}
	if n := len(rc.all()); n != 1 {
		t.Errorf("%d requests; the refused link must not be followed", n)
	}
}

func TestGraphPagingLoop(t *testing.T) {
	tests := map[string]map[string]string{
		"link repeats itself": {
			"":   `{"value":[` + graphRule("1") + `],"@odata.nextLink":"` + graphList + `?$skiptoken=p2"}`,
			"p2": `{"value":[` + graphRule("2") + `],"@odata.nextLink":"` + graphList + `?$skiptoken=p2"}`,
		},
		"link back to the first page": {
			"": `{"value":[` + graphRule("1") + `],"@odata.nextLink":"` + graphList + `"}`,
		},
	}
	for name, pages := range tests {
		t.Run(name, func(t *testing.T) {
			c, _ := newTestGraph(t, graphPages(pages), nil)
			if _, err := c.DetectionRules(context.Background(), GraphListOptions{}); !errors.Is(err, ErrGraphLinkLoop) {
				t.Errorf("err = %v, want ErrGraphLinkLoop", err)
			}
		})
	}
	// A list that never ends: a new link every page.
	n := 0
	endless := &recorder{h: func(w http.ResponseWriter, r *http.Request) bool {
		n++
		fmt.Fprintf(w, `{"value":[],"@odata.nextLink":"%s?$skiptoken=%d"}`, graphList, n)
		return true
	}}
	c, _ := newTestGraph(t, endless, func(o *GraphOptions) { o.MaxPages = 4 })
	if _, err := c.DetectionRules(context.Background(), GraphListOptions{}); !errors.Is(err, ErrGraphLinkLoop) || !strings.Contains(err.Error(), "more than 4 pages") {
		t.Errorf("err = %v", err)
	}
	if n != 4 {
		t.Errorf("%d pages read, want 4", n)
	}
}

func TestGraphCount(t *testing.T) {
	tests := []struct {
		name, page1, page2 string
		want               int
		wantErr            string
	}{
		{"count matches", `{"@odata.count":2,"value":[` + graphRule("1") + `],"@odata.nextLink":"` + graphList + `?$skiptoken=p2"}`, `{"@odata.count":2,"value":[` + graphRule("2") + `]}`, 2, ""},
		{"count on the first page only", `{"@odata.count":2,"value":[` + graphRule("1") + `],"@odata.nextLink":"` + graphList + `?$skiptoken=p2"}`, `{"value":[` + graphRule("2") + `]}`, 2, ""},
		{"stale low count", `{"@odata.count":1,"value":[` + graphRule("1") + `,` + graphRule("2") + `]}`, ``, 2, ""},
		{"null count", `{"@odata.count":null,"value":[` + graphRule("1") + `]}`, ``, 1, ""},
		{"fewer than the count", `{"@odata.count":3,"value":[` + graphRule("1") + `],"@odata.nextLink":"` + graphList + `?$skiptoken=p2"}`, `{"value":[` + graphRule("2") + `]}`, 0, "reported 3 items (@odata.count), returned 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newTestGraph(t, graphPages(map[string]string{"": tc.page1, "p2": tc.page2}), nil)
			rules, err := c.DetectionRules(context.Background(), GraphListOptions{Count: true})
			if tc.wantErr != "" {
				if !errors.Is(err, ErrGraphShape) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || len(rules) != tc.want {
				t.Errorf("%d rules, err %v; want %d", len(rules), err, tc.want)
			}
		})
	}
}

func TestGraphErrors(t *testing.T) {
	graphErr := func(status int, code, msg string) *recorder {
		return &recorder{h: func(w http.ResponseWriter, r *http.Request) bool {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"error":{"code":%q,"message":%q,"innerError":{"date":"2026-03-10T12:00:00","request-id":"r1","client-request-id":"r1"}}}`, code, msg)
			return true
		}}
	}
	tests := []struct {
		name     string
		rc       *recorder
		is       error
		want     []string
		requests int
	}{
		{"403 missing role", graphErr(403, "Forbidden", "Missing role permissions on the request. API requires one of 'CustomDetection.Read.All, CustomDetection.ReadWrite.All'. Roles on the request ''."),
			ErrForbidden, []string{"HTTP 403 Forbidden", "CustomDetection.Read.All (API permissions", "admin consent"}, 1},
		{"401 audience", graphErr(401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience."),
			ErrUnauthorized, []string{"HTTP 401 InvalidAuthenticationToken", "audience is not Microsoft Graph", GraphScope}, 1},
		{"401 other", graphErr(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired."),
			ErrUnauthorized, []string{"issued by the configured tenant for Microsoft Graph"}, 1},
		{"400 segment", graphErr(400, "BadRequest", "Resource not found for the segment 'detectionRules'."),
			ErrBadRequest, []string{"api_version (beta or v1.0)"}, 1},
		{"404", graphErr(404, "NotFound", "not found"), ErrNotFound, []string{"HTTP 404"}, 1},
		{"redirect", &recorder{h: func(w http.ResponseWriter, r *http.Request) bool {
			w.Header().Set("Location", graphList+"?x=1")
			w.WriteHeader(http.StatusFound)
			return true
		}}, ErrRedirect, nil, 1},
		{"html", &recorder{h: func(w http.ResponseWriter, r *http.Request) bool {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, "<html>sign in</html>")
			return true
		}}, ErrNotJSON, nil, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newTestGraph(t, tc.rc, nil)
			_, err := c.DetectionRules(context.Background(), GraphListOptions{})
			if !errors.Is(err, tc.is) {
				t.Fatalf("err = %v, want %v", err, tc.is)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want it to mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "GRAPHTOKEN") {
				t.Errorf("the error shows the token: %v", err)
			}
			if n := len(tc.rc.all()); n != tc.requests {
				t.Errorf("%d requests, want %d", n, tc.requests)
			}
		})
	}
}

// A 401 drops the token (when the source can renew it) and the request is
// sent once more with a new one.
func TestGraphRejectedTokenIsRenewedOnce(t *testing.T) {
	n := 0
	rc := &recorder{h: func(w http.ResponseWriter, r *http.Request) bool {
		n++
		if n == 1 {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":{"code":"InvalidAuthenticationToken","message":"Lifetime validation failed, the token is expired."}}`)
			return true
		}
		fmt.Fprint(w, `{"value":[`+graphRule("1")+`]}`)
		return true
	}}
	ts := &renewingTokens{}
	c, _ := newTestGraph(t, rc, func(o *GraphOptions) { o.Tokens = ts })
	rules, err := c.DetectionRules(context.Background(), GraphListOptions{})
	if err != nil || len(rules) != 1 {
		t.Fatalf("rules %d, err %v", len(rules), err)
	}
	reqs := rc.all()
	if len(reqs) != 2 || reqs[0].Auth != "Bearer tok-1" || reqs[1].Auth != "Bearer tok-2" || ts.dropped != "tok-1" {
		t.Errorf("requests %+v, dropped %q", reqs, ts.dropped)
	}
}

// renewingTokens hands out tok-1 until it is told to drop it, then tok-2.
type renewingTokens struct {
	gen     int
	dropped string
}

func (r *renewingTokens) Token(context.Context) (string, error) {
	return fmt.Sprintf("tok-%d", r.gen+1), nil
}

func (r *renewingTokens) Invalidate(tok string) { r.dropped, r.gen = tok, r.gen+1 }

func TestGraphCredentialsOnlyToGraph(t *testing.T) {
	rc := &recorder{}
	c, _ := newTestGraph(t, rc, nil)
	for _, link := range []string{
		"https://evil.example/beta/security/rules/detectionRules",
		"https://graph.microsoft.com.evil.example/beta/x",
		"https://graph.microsoft.com:8443/beta/x",
		"http://graph.microsoft.com/beta/x",
		"https://u:p@graph.microsoft.com/beta/x",
		"https://api.security.microsoft.com/api/x",
		"https://login.microsoftonline.com/x",
		"https://graph.microsoft.us/beta/x",
	} {
		u, _ := url.Parse(link)
		if _, err := c.d.do(context.Background(), http.MethodGet, u, nil); !errors.Is(err, ErrHostNotAllowed) {
			t.Errorf("%s: err = %v, want ErrHostNotAllowed", link, err)
		}
	}
	if n := len(rc.all()); n != 0 {
		t.Errorf("%d refused requests reached a server", n)
	}
	for _, base := range []string{"https://evil.example", "http://graph.microsoft.com", "https://graph.microsoft.com/beta", "https://graph.microsoft.com:444", "https://graph.microsoft.com?x=1"} {
		if _, err := NewGraphClient(GraphOptions{BaseURL: base, Tokens: auth.NewStaticToken("t")}); err == nil {
			t.Errorf("base URL %s accepted", base)
		}
	}
	if _, err := NewGraphClient(GraphOptions{}); err == nil || !strings.Contains(err.Error(), "CustomDetection.Read.All") {
		t.Errorf("no tokens: err = %v", err)
	}
}

func TestDecodeGraphPageShapes(t *testing.T) {
	tests := []struct {
		name, body string
		want       string // "" = ok
	}{
		{"envelope", `{"@odata.context":"x","value":[{"id":"1"}],"@odata.nextLink":"https://graph.microsoft.com/beta/a"}`, ""},
		{"empty list", `{"value":[]}`, ""},
		{"bare array", `[{"id":"SECRETV"}]`, "expected a JSON object with the items under value, got a JSON array"},
		{"no value", `{"error":{"code":"SECRETV"},"items":[]}`, "got a JSON object with keys [error (object), items (array)]"},
		{"value a string", `{"value":"SECRETV"}`, "field value is a JSON string, not an array"},
		{"value null", `{"value":null}`, "field value is JSON null, not an array"},
		{"entry not an object", `{"value":[{"id":"1"},"SECRETV"]}`, "value entry 1 is a JSON string, not an object"},
		{"nextLink a number", `{"value":[],"@odata.nextLink":12345}`, "field @odata.nextLink is a JSON number, not a string"},
		{"nextLink empty", `{"value":[],"@odata.nextLink":""}`, "@odata.nextLink is an empty string"},
		{"count a string", `{"value":[],"@odata.count":"SECRETV"}`, "field @odata.count is a JSON string, not a number"},
		{"count negative", `{"value":[],"@odata.count":-1}`, "not a non-negative integer"},
		{"count fractional", `{"value":[],"@odata.count":1.5}`, "not a non-negative integer"},
		{"html", `<html>SECRETV</html>`, "markup (HTML or XML)"},
		{"empty", ``, "an empty body"},
		{"truncated", `{"value":[{"id":"1"}`, "a JSON object"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := DecodeGraphPage([]byte(tc.body))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrGraphShape) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "SECRETV") {
				t.Errorf("the error repeats a value: %v", err)
			}
			if len(p.Items) != 0 || p.NextLink != "" {
				t.Error("page content with an error")
			}
		})
	}
}

func FuzzDecodeGraphPage(f *testing.F) {
	for _, s := range []string{`{"value":[{"id":"1"}],"@odata.nextLink":"https://graph.microsoft.com/beta/x","@odata.count":1}`, `{"value":[]}`, `{"value":[1]}`, `{"@odata.count":-4,"value":[]}`, `[]`, `{"value":{}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodeGraphPage(b)
		if err != nil {
			if !errors.Is(err, ErrGraphShape) || len(p.Items) != 0 || p.NextLink != "" {
				t.Fatalf("bad error result %v %+v", err, p)
			}
			return
		}
		if p.Count < -1 {
			t.Fatal("negative count")
		}
		for _, it := range p.Items {
			if !json.Valid(it) || it[0] != '{' {
				t.Fatalf("item %q is not an object", it)
			}
		}
	})
}
