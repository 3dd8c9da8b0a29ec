package mde

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/defenderharvester/defenderharvester/internal/auth"
)

type seen struct {
	Host, Path, Query, Method, Auth, Cookie, Body string
}

// recorder answers {} and remembers every request it got.
type recorder struct {
	mu   sync.Mutex
	reqs []seen
	h    func(w http.ResponseWriter, r *http.Request) bool // true: handled
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, seen{r.Host, r.URL.Path, r.URL.RawQuery, r.Method, r.Header.Get("Authorization"), r.Header.Get("Cookie"), string(b)})
	rc.mu.Unlock()
	if rc.h != nil && rc.h(w, r) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{}`))
}

func (rc *recorder) all() []seen {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]seen(nil), rc.reqs...)
}

func newTestLegacy(t *testing.T, loc string, h http.Handler) *LegacyClient {
	t.Helper()
	c, err := NewLegacyClient(LegacyOptions{Location: loc, Tokens: auth.NewStaticToken("LEGACYTOKEN"), ClientOptions: ClientOptions{
		Transport: plainServer(t, h), Sleep: (&sleeps{}).sleep, Limiter: &countLimiter{}, MaxAttempts: 2,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestLegacyMapping(t *testing.T) {
	const mid = "0123456789abcdef0123456789abcdef01234567"
	tests := []struct {
		loc, path string
		post      bool
		wantHost  string
		wantPath  string
	}{
		{"weu", "/apiproxy/mtp/actionCenter/actioncenterui/history-actions/", false, "m365d-autoir-ac-prd-weu.securitycenter.windows.com", "/api/autoir/actioncenterui/history-actions/"},
		{"weu", "/apiproxy/mtp/huntingService/rules/unified", false, "m365d-hunting-api-prd-weu.securitycenter.windows.com", "/api/ine/huntingservice/rules"},
		{"weu", "/apiproxy/mtp/huntingService/schema", false, "m365d-hunting-api-prd-weu.securitycenter.windows.com", "/api/ine/huntingservice/schema"},
		{"weu", "/apiproxy/hunting/huntingService/reports", true, "m365d-hunting-api-prd-weu.securitycenter.windows.com", "/api/ine/huntingservice/reports"},
		{"weu", "/apiproxy/mtp/suppressionRulesService/suppressionRules", false, "wdatpprd-weu.securitycenter.windows.com", "/api/ine/suppressionrulesservice/suppressionRules"},
		{"weu", "/apiproxy/mtp/rbacManagementApi/rbac/machine_groups", false, "wdatpprd-weu.securitycenter.windows.com", "/rbac/machine_groups"},
		{"weu", "/apiproxy/mtp/responseApiPortal/apps/all", false, "wdatpprd-weu.securitycenter.windows.com", "/api/cloud/portal/apps/all"},
		{"weu", "/apiproxy/mtp/mdeTimelineExperience/machines/" + mid + "/events/", false, "wdatpprd-weu.securitycenter.windows.com", "/api/detection/experience/timeline/machines/" + mid + "/events/"},
		// advanced features: the original's special cases, else wdatpprd-<loc>
		{"weu", "/apiproxy/mtp/settings/GetAdvancedFeaturesSetting", false, "wdatpprd-eu.securitycenter.windows.com", "/api/settings/GetAdvancedFeaturesSetting"},
		{"weu3", "/apiproxy/mtp/settings/GetAdvancedFeaturesSetting", false, "wdatpprd-eu3.securitycenter.windows.com", "/api/settings/GetAdvancedFeaturesSetting"},
		{"eus", "/apiproxy/mtp/settings/GetAdvancedFeaturesSetting", false, "wdatpprd-us.securitycenter.windows.com", "/api/settings/GetAdvancedFeaturesSetting"},
		{"eus3", "/apiproxy/mtp/settings/GetAdvancedFeaturesSetting", false, "wdatpprd-us3.securitycenter.windows.com", "/api/settings/GetAdvancedFeaturesSetting"},
		{"cus3", "/apiproxy/mtp/settings/GetAdvancedFeaturesSetting", false, "wdatpprd-cus3.securitycenter.windows.com", "/api/settings/GetAdvancedFeaturesSetting"},
		// alert service: m365duseprd-<loc> for every location (the original fell back to wdatpprd)
		{"weu", "/apiproxy/mtp/alertsApiService/workloads/disabled", false, "m365duseprd-weu.securitycenter.windows.com", "/api/ine/alertsapiservice/workloads/disabled"},
		{"uks", "/apiproxy/mtp/alertsApiService/workloads/disabled", false, "m365duseprd-uks.securitycenter.windows.com", "/api/ine/alertsapiservice/workloads/disabled"},
		// data export: by geography
		{"weu3", "/apiproxy/mtp/wdatpApi/dataexportsettings", false, "api-eu.securitycenter.windows.com", "/api/dataexportsettings"},
		{"neu", "/apiproxy/mtp/wdatpApi/dataexportsettings", false, "api-eu.securitycenter.windows.com", "/api/dataexportsettings"},
		{"eus", "/apiproxy/mtp/wdatpApi/dataexportsettings", false, "api-us.securitycenter.windows.com", "/api/dataexportsettings"},
		{"wus3", "/apiproxy/mtp/wdatpApi/dataexportsettings", false, "api-us.securitycenter.windows.com", "/api/dataexportsettings"},
		// the old full form of -location
		{"wdatpprd-WEU", "/apiproxy/mtp/huntingService/schema", false, "m365d-hunting-api-prd-weu.securitycenter.windows.com", "/api/ine/huntingservice/schema"},
	}
	for _, tt := range tests {
		t.Run(tt.loc+tt.path, func(t *testing.T) {
			rc := &recorder{}
			c := newTestLegacy(t, tt.loc, rc)
			q := url.Values{"fromDate": {"2026-01-01T00:00:00Z"}, "pageIndex": {"2"}}
			var err error
			if tt.post {
				_, err = c.Post(context.Background(), tt.path, q, map[string]string{"startTime": "s"})
			} else {
				_, err = c.Get(context.Background(), tt.path, q)
			}
			if err != nil {
				t.Fatal(err)
			}
			got := rc.all()
			if len(got) != 1 {
				t.Fatalf("%d requests, want 1", len(got))
			}
			r := got[0]
			if r.Host != tt.wantHost || r.Path != tt.wantPath {
				t.Errorf("sent to %s%s, want %s%s", r.Host, r.Path, tt.wantHost, tt.wantPath)
			}
			if r.Auth != "Bearer LEGACYTOKEN" || r.Cookie != "" {
				t.Errorf("Authorization %q, Cookie %q: want the bearer token and no cookies", r.Auth, r.Cookie)
			}
			if r.Query != q.Encode() {
				t.Errorf("query %q, want %q", r.Query, q.Encode())
			}
			if tt.post && r.Body != `{"startTime":"s"}` {
				t.Errorf("body %q", r.Body)
			}
		})
	}
}

func TestLegacyUnavailable(t *testing.T) {
	tests := []struct{ loc, path string }{
		{"weu", "/apiproxy/mtp/ndr/machines"},
		{"weu", "/apiproxy/mtp/sccManagement/mgmt/TenantContext"},
		{"weu", "/apiproxy/mtp/liveResponseApi/get_properties"},
		{"weu", "/apiproxy/mtp/mdeTimelineExperience/machines/"},
		{"uks", "/apiproxy/mtp/wdatpApi/dataexportsettings"}, // no known data-export host
		{"aue", "/apiproxy/mtp/wdatpApi/dataexportsettings"},
	}
	for _, tt := range tests {
		t.Run(tt.loc+tt.path, func(t *testing.T) {
			rc := &recorder{}
			c := newTestLegacy(t, tt.loc, rc)
			_, err := c.Get(context.Background(), tt.path, nil)
			if !errors.Is(err, ErrNoLegacyHost) || !strings.Contains(err.Error(), "use the portal proxy") {
				t.Errorf("err = %v, want ErrNoLegacyHost", err)
			}
			if len(rc.all()) != 0 {
				t.Errorf("an unmapped path reached a server")
			}
		})
	}
}

func TestLegacyLocationValidation(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"weu", "weu", true},
		{" EUS3 ", "eus3", true},
		{"wdatpprd-weu", "weu", true},
		{"", "", false},
		{"w", "", false},
		{"weu.evil.com", "", false},
		{"weu/", "", false},
		{"weu-1", "", false},
		{"3weu", "", false},
		{"weu123", "", false},
		{"abcdefghi", "", false},
		{"wéu", "", false},
	}
	for _, tt := range tests {
		got, err := ParseLocation(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseLocation(%q) = %q, %v; want %q ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		_, err = NewLegacyClient(LegacyOptions{Location: tt.in, Tokens: auth.NewStaticToken("t")})
		if (err == nil) != tt.ok {
			t.Errorf("NewLegacyClient(%q) err = %v", tt.in, err)
		}
	}
	if _, err := NewLegacyClient(LegacyOptions{Location: "weu"}); err == nil {
		t.Error("a legacy client without a token source was accepted")
	}
}

func TestLegacyHints(t *testing.T) {
	rc := &recorder{h: func(w http.ResponseWriter, r *http.Request) bool {
		w.WriteHeader(401)
		w.Write([]byte(`{"Message":"Authorization has been denied for this request."}`))
		return true
	}}
	c := newTestLegacy(t, "weu", rc)
	_, err := c.Get(context.Background(), "/apiproxy/mtp/huntingService/schema", nil)
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "portal proxy") {
		t.Errorf("err = %v; want a 401 that points to the portal proxy", err)
	}
	if strings.Contains(err.Error(), "LEGACYTOKEN") {
		t.Error("the token leaked into the error")
	}
}

// FuzzLegacyRoute: timeline continuation links reach Route after the
// source translated them, so any path and location must either be refused
// or land on one of the location's own hosts under a legacy API root.
func FuzzLegacyRoute(f *testing.F) {
	f.Add("weu", "/apiproxy/mtp/mdeTimelineExperience/machines/abc/events/")
	f.Add("wdatpprd-eus3", "/apiproxy/mtp/wdatpApi/dataexportsettings")
	f.Add("uks", "/apiproxy/mtp/mdeTimelineExperience/machines/../../x")
	f.Add("weu.evil", "/apiproxy/mtp/huntingService/schema")
	f.Add("neu", "/apiproxy/mtp/mdeTimelineExperience/machines/a%2f..")
	f.Fuzz(func(t *testing.T, loc, path string) {
		c, err := NewLegacyClient(LegacyOptions{Location: loc, Tokens: auth.NewStaticToken("t"),
			ClientOptions: ClientOptions{Transport: http.DefaultTransport}})
		if err != nil {
			return
		}
		u, err := c.Route(path)
		if err != nil {
			return
		}
		if !c.d.fam.allowHost(u) || !strings.HasSuffix(u.Host, legacyDomain) {
			t.Fatalf("Route(%q) = %s: host not allow-listed", path, u)
		}
		if !strings.HasPrefix(u.Path, "/api/") && u.Path != "/rbac/machine_groups" {
			t.Fatalf("Route(%q) = %s: not under a legacy API root", path, u)
		}
		for _, seg := range strings.Split(u.Path, "/") {
			if seg == ".." || seg == "." {
				t.Fatalf("Route(%q) = %s: dot segment", path, u)
			}
		}
	})
}

func TestLegacyPublicBaseURL(t *testing.T) {
	for loc, want := range map[string]string{"weu": "https://api-eu.securitycenter.windows.com", "neu3": "https://api-eu.securitycenter.windows.com",
		"eus": "https://api-us.securitycenter.windows.com", "wdatpprd-cus": "https://api-us.securitycenter.windows.com"} {
		got, err := LegacyPublicBaseURL(loc)
		if err != nil || got != want {
			t.Errorf("%s → %q, %v; want %q", loc, got, err, want)
		}
	}
	if _, err := LegacyPublicBaseURL("aue"); !errors.Is(err, ErrNoLegacyHost) {
		t.Errorf("an unknown geography must be refused, got %v", err)
	}
}
