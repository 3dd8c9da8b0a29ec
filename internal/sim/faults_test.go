package sim

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseFaults(t *testing.T) {
	tests := []struct {
		spec    string
		want    []FaultRate
		wantErr string
	}{
		{"portal:429=0.1,public:500=0.05,timeline:slow=2s", []FaultRate{
			{Family: "portal", Kind: Fault429, Rate: 0.1},
			{Family: "public", Kind: Fault500, Rate: 0.05},
			{Family: "timeline", Kind: FaultSlow, Rate: 1, Delay: 2 * time.Second},
		}, ""},
		{"public:429=0.5@30s, legacy:reset=0.01 ,entra:503=1@2s", []FaultRate{
			{Family: "public", Kind: Fault429, Rate: 0.5, RetryAfter: 30 * time.Second},
			{Family: "legacy", Kind: FaultReset, Rate: 0.01},
			{Family: "entra", Kind: Fault503, Rate: 1, RetryAfter: 2 * time.Second},
		}, ""},
		{"*:truncate=0.2,portal:login=0.3,timeline:slow=0.25@150ms", []FaultRate{
			{Family: "*", Kind: FaultTruncate, Rate: 0.2},
			{Family: "portal", Kind: FaultLogin, Rate: 0.3},
			{Family: "timeline", Kind: FaultSlow, Rate: 0.25, Delay: 150 * time.Millisecond},
		}, ""},
		{"", nil, ""},
		{"portal", nil, "family:kind=value"},
		{"teams:429=0.1", nil, `family "teams" is unknown`},
		{"portal:418=0.1", nil, `kind "418" is unknown`},
		{"portal:429=1.5", nil, "not a probability"},
		{"portal:429=abc", nil, "not a probability"},
		{"portal:429=0.1@soon", nil, "not a duration"},
		{"timeline:slow=0.5", nil, "slow needs a delay"},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			f, err := ParseFaults(tc.spec)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Rates) != len(tc.want) {
				t.Fatalf("got %+v", f.Rates)
			}
			for i := range tc.want {
				if f.Rates[i] != tc.want[i] {
					t.Fatalf("rate %d: %+v, want %+v", i, f.Rates[i], tc.want[i])
				}
			}
			// String round-trips.
			g, err := ParseFaults(f.String())
			if err != nil || g.String() != f.String() {
				t.Fatalf("round trip %q → %q (%v)", f.String(), g.String(), err)
			}
		})
	}
}

func TestInjectedFaults(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.publicToken()
	id := e.ten.MachineIDs()[0]
	tlPath := "/apiproxy/mtp/mdeTimelineExperience/machines/" + id + "/events/?fromDate=2026-03-10T00:00:00Z&toDate=2026-03-10T06:00:00Z"

	// 429 twice for the public API, then normal service.
	e.ten.Inject(FaultRule{Family: FamilyPublic, Kind: Fault429, Count: 2, RetryAfter: 3 * time.Second})
	for i := 0; i < 2; i++ {
		r := e.public("/api/libraryfiles", tok)
		if r.status != 429 || r.header.Get("Retry-After") != "3" || !strings.Contains(string(r.body), `"code":"TooManyRequests"`) {
			t.Fatalf("injected 429 #%d: %d %q %s", i+1, r.status, r.header.Get("Retry-After"), r.body)
		}
	}
	if r := e.public("/api/libraryfiles", tok); r.status != 200 {
		t.Fatalf("after the rule is used up: %d", r.status)
	}
	// A timeline rule hits timeline routes only.
	e.ten.Inject(FaultRule{Family: FamilyTimeline, Kind: Fault503, Count: 1})
	if r := e.portal("GET", "/apiproxy/mtp/settings/GetAdvancedFeaturesSetting", nil); r.status != 200 {
		t.Fatalf("non-timeline route hit by a timeline rule: %d", r.status)
	}
	if r := e.portal("GET", tlPath, nil); r.status != 503 {
		t.Fatalf("timeline 503: %d", r.status)
	}
	// HTML login page with 200.
	e.ten.Inject(FaultRule{Family: FamilyPortal, Kind: FaultLogin, Count: 1})
	r := e.portal("GET", "/apiproxy/mtp/settings/GetAdvancedFeaturesSetting", nil)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") || !strings.Contains(string(r.body), "Sign in") {
		t.Fatalf("login fault: %d %s", r.status, truncate(r.body))
	}
	// 500 in the portal envelope.
	e.ten.Inject(FaultRule{Family: FamilyPortal, Kind: Fault500, Count: 1})
	if r := e.portal("GET", tlPath, nil); r.status != 500 || !strings.Contains(string(r.body), `"Message"`) {
		t.Fatalf("500 fault: %d %s", r.status, r.body)
	}
	// Entra 429 in the AADSTS envelope.
	e.ten.Inject(FaultRule{Family: FamilyEntra, Kind: Fault429, Count: 1})
	c := e.ten.Credentials()
	tr := e.do("POST", "login.microsoftonline.com", "/"+c.TenantID+"/oauth2/v2.0/token", []byte("grant_type=client_credentials"), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if tr.status != 429 || !strings.Contains(string(tr.body), "AADSTS") || tr.header.Get("Retry-After") != "1" {
		t.Fatalf("entra 429: %d %s", tr.status, tr.body)
	}
	// Invalid rules are ignored.
	e.ten.Inject(FaultRule{Family: "nope", Kind: Fault500, Count: 1})
	e.ten.Inject(FaultRule{Family: FamilyPortal, Kind: Fault500, Count: 0})
	if n := len(e.ten.faults.pendingRules()); n != 0 {
		t.Fatalf("%d rules pending, want 0", n)
	}
}

// Connection-level faults: a reset yields a transport error, a truncated
// body an unexpected EOF after the headers.
func TestConnectionFaults(t *testing.T) {
	e := newEnv(t, nil)
	c := e.ten.Credentials()
	get := func() (*http.Response, error) {
		req, _ := http.NewRequest("GET", e.srv.URL+"/apiproxy/mtp/huntingService/schema", nil)
		req.Host = "security.microsoft.com"
		req.Header.Set("Cookie", "sccauth="+c.SccAuth)
		req.Header.Set("X-XSRF-TOKEN", c.XSRFToken)
		return (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	}
	e.ten.Inject(FaultRule{Family: FamilyPortal, Kind: FaultReset, Count: 1})
	if res, err := get(); err == nil {
		res.Body.Close()
		t.Fatalf("reset fault: got a response %d", res.StatusCode)
	}
	e.ten.Inject(FaultRule{Family: FamilyPortal, Kind: FaultTruncate, Count: 1})
	res, err := get()
	if err != nil {
		t.Fatalf("truncate fault should send headers: %v", err)
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err == nil || res.StatusCode != 200 || int64(len(b)) >= res.ContentLength {
		t.Fatalf("truncate fault: status %d, read %d of %d bytes, err %v", res.StatusCode, len(b), res.ContentLength, err)
	}
	res, err = get()
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("after faults: %v", err)
	}
	res.Body.Close()
}

// Probabilistic faults are seeded: the same seed gives the same sequence.
func TestProbabilisticFaultsAreSeeded(t *testing.T) {
	seq := func() string {
		f, _ := ParseFaults("portal:500=0.3,portal:429=0.2")
		e := newEnv(t, func(o *Options) { o.Faults = f })
		var s strings.Builder
		for i := 0; i < 60; i++ {
			s.WriteString(itoa(e.portal("GET", "/apiproxy/mtp/huntingService/schema", nil).status) + " ")
		}
		return s.String()
	}
	a, b := seq(), seq()
	if a != b {
		t.Fatalf("fault sequences differ:\n%s\n%s", a, b)
	}
	if !strings.Contains(a, "500") || !strings.Contains(a, "429") || !strings.Contains(a, "200") {
		t.Fatalf("rates 0.3/0.2 over 60 requests gave %s", a)
	}
}

// TestInjectedFaultAfterN starts a scripted outage after N good requests
// (a failure in the middle of a run) and ends it with ClearInjected.
func TestInjectedFaultAfterN(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.publicToken()
	e.ten.Inject(FaultRule{Family: FamilyPublic, Kind: Fault500, After: 2, Count: 100})
	var got []int
	for i := 0; i < 4; i++ {
		got = append(got, e.public("/api/libraryfiles", tok).status)
	}
	if fmt.Sprint(got) != "[200 200 500 500]" {
		t.Fatalf("statuses %v, want two good answers then the outage", got)
	}
	e.ten.ClearInjected()
	if r := e.public("/api/libraryfiles", tok); r.status != 200 {
		t.Fatalf("after ClearInjected: %d", r.status)
	}
}
