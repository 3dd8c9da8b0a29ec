package sim

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

const graphScope = "https://graph.microsoft.com/.default"

type graphPageT struct {
	Context  string           `json:"@odata.context"`
	Count    *int             `json:"@odata.count"`
	NextLink string           `json:"@odata.nextLink"`
	Value    []map[string]any `json:"value"`
}

type graphErrT struct {
	Error struct {
		Code       string            `json:"code"`
		Message    string            `json:"message"`
		InnerError map[string]string `json:"innerError"`
	} `json:"error"`
}

func (e *env) graphToken() string {
	c := e.ten.Credentials()
	return e.token(c.ClientID, c.ClientSecret, graphScope)
}

func (e *env) graph(pathQuery, tok string) resp {
	e.t.Helper()
	h := map[string]string{}
	if tok != "" {
		h["Authorization"] = "Bearer " + tok
	}
	return e.do(http.MethodGet, GraphHost, pathQuery, nil, h)
}

// graphAll follows the nextLinks from pathQuery and returns the pages.
func (e *env) graphAll(pathQuery, tok string) []graphPageT {
	e.t.Helper()
	var pages []graphPageT
	for i := 0; pathQuery != ""; i++ {
		if i > 20 {
			e.t.Fatal("the list does not end")
		}
		r := e.graph(pathQuery, tok)
		if r.status != http.StatusOK {
			e.t.Fatalf("GET %s: %d %s", pathQuery, r.status, truncate(r.body))
		}
		var p graphPageT
		r.json(e.t, &p)
		pages = append(pages, p)
		pathQuery = ""
		if p.NextLink != "" {
			u, err := url.Parse(p.NextLink)
			if err != nil || u.Scheme != "https" || u.Host != GraphHost {
				e.t.Fatalf("nextLink %q", p.NextLink)
			}
			pathQuery = u.RequestURI()
		}
	}
	return pages
}

func graphIDs(pages []graphPageT) []string {
	var ids []string
	for _, p := range pages {
		for _, r := range p.Value {
			ids = append(ids, r["id"].(string))
		}
	}
	return ids
}

// wantGraphIDs are the ids of the emulator's rules that exist at now.
func wantGraphIDs(e *env, now time.Time) []string {
	var ids []int64
	for _, d := range e.ten.w.rules {
		if d.Appears.IsZero() || !now.Before(d.Appears) {
			ids = append(ids, d.ID)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = strconv.FormatInt(id, 10)
	}
	return out
}

func TestGraphDetectionRulesPaging(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.graphToken()
	want := wantGraphIDs(e, e.data.Now())
	if len(want) <= GraphPageCap {
		t.Fatalf("only %d rules: paging is not exercised", len(want))
	}
	for _, tc := range []struct {
		query string
		size  int
	}{{"", GraphPageCap}, {"?$top=2", 2}, {"?$top=1000", GraphPageCap}, {"?$top=1", 1}} {
		for _, v := range []string{"beta", "v1.0"} {
			path := "/" + v + "/security/rules/detectionRules" + tc.query
			pages := e.graphAll(path, tok)
			if got := strings.Join(graphIDs(pages), ","); got != strings.Join(want, ",") {
				t.Errorf("%s: ids %s, want %s", path, got, strings.Join(want, ","))
			}
			for i, p := range pages {
				if len(p.Value) > tc.size || (i < len(pages)-1 && len(p.Value) != tc.size) {
					t.Errorf("%s: page %d has %d rules, want %d", path, i+1, len(p.Value), tc.size)
				}
				if p.Context != "https://graph.microsoft.com/"+v+"/$metadata#security/rules/detectionRules" || p.Count != nil {
					t.Errorf("%s: context %q count %v", path, p.Context, p.Count)
				}
				if i < len(pages)-1 && !strings.HasPrefix(p.NextLink, "https://graph.microsoft.com/"+v+"/security/rules/detectionRules?") {
					t.Errorf("%s: nextLink %q", path, p.NextLink)
				}
				if tc.query != "" && p.NextLink != "" && !strings.Contains(p.NextLink, tc.query[1:]) {
					t.Errorf("%s: nextLink %q drops %s", path, p.NextLink, tc.query)
				}
			}
		}
	}
	pages := e.graphAll("/beta/security/rules/detectionRules?$count=true", tok)
	for _, p := range pages {
		if p.Count == nil || *p.Count != len(want) {
			t.Errorf("@odata.count %v, want %d", p.Count, len(want))
		}
	}
}

// The rule created during the history is absent before it appears.
func TestGraphRuleAppears(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.graphToken()
	e.data.set(testStart.Add(ChangeRuleCreated - time.Minute))
	before := graphIDs(e.graphAll("/beta/security/rules/detectionRules", tok))
	e.data.set(testStart.Add(ChangeRuleCreated))
	after := graphIDs(e.graphAll("/beta/security/rules/detectionRules", tok))
	if len(after) != len(before)+1 || after[len(after)-1] != "200" || strings.Contains(strings.Join(before, ","), "200") {
		t.Errorf("before %v, after %v", before, after)
	}
}

// Graph shows the same rules as the portal's custom detections: names,
// queries, creators, schedules, enabled and run state agree; the last
// editor of an auto-disabled rule is the service, from the auto-disable on.
func TestGraphRulesMatchThePortal(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.graphToken()
	for _, at := range []time.Duration{ChangeRuleAutoDisabled - time.Minute, ChangeRuleAutoDisabled, 12 * time.Hour} {
		e.data.set(testStart.Add(at))
		var portal []map[string]any
		if r := e.portal("GET", "/apiproxy/mtp/huntingService/rules/unified?pageIndex=1&pageSize=10000&sortOrder=Ascending", nil); r.status != 200 {
			t.Fatalf("portal: %d %s", r.status, truncate(r.body))
		} else {
			r.json(t, &portal)
		}
		byID := map[string]map[string]any{}
		for _, p := range portal {
			byID[strconv.FormatFloat(p["Id"].(float64), 'f', -1, 64)] = p
		}
		pages := e.graphAll("/beta/security/rules/detectionRules", tok)
		n := 0
		for _, pg := range pages {
			for _, g := range pg.Value {
				n++
				p, ok := byID[g["id"].(string)]
				if !ok {
					t.Errorf("%s: Graph rule %s is not in the portal", at, g["id"])
					continue
				}
				same := func(field string, gv, pv any) {
					if gs, ok := gv.(string); ok {
						if ps, ok := pv.(string); ok && strings.HasSuffix(ps, "Z") && strings.HasSuffix(gs, "Z") {
							gt, _ := time.Parse(time.RFC3339Nano, gs)
							pt, _ := time.Parse(time.RFC3339Nano, ps)
							if gt.Equal(pt) {
								return
							}
						}
					}
					if gv != pv {
						t.Errorf("%s rule %s: %s = %v in Graph, %v in the portal", at, g["id"], field, gv, pv)
					}
				}
				same("displayName", g["displayName"], p["Name"])
				same("isEnabled", g["isEnabled"], p["IsEnabled"])
				same("createdBy", g["createdBy"], p["CreatedBy"])
				same("createdDateTime", g["createdDateTime"], p["CreationTime"])
				same("queryText", g["queryCondition"].(map[string]any)["queryText"], p["QueryText"])
				period := "0"
				if f := p["Frequency"].(float64); f > 0 {
					period = strconv.Itoa(int(f)) + "H"
				}
				sched := g["schedule"].(map[string]any)
				same("schedule.period", sched["period"], period)
				same("schedule.nextRunDateTime", sched["nextRunDateTime"], p["NextRunTime"])
				run := g["lastRunDetails"].(map[string]any)
				same("lastRunDetails.lastRunDateTime", run["lastRunDateTime"], p["LastRunTime"])
				var status any
				if s, ok := p["LastRunStatus"].(string); ok {
					status = strings.ToLower(s)
				}
				same("lastRunDetails.status", run["status"], status)
				if status == "failed" && (run["errorCode"] != "queryLimitsExceeded" || run["failureReason"] == nil) {
					t.Errorf("%s rule %s: failed run without errorCode/failureReason: %v", at, g["id"], run)
				}
				same("alertTemplate.severity", g["detectionAction"].(map[string]any)["alertTemplate"].(map[string]any)["severity"], strings.ToLower(p["Severity"].(string)))
				// The last editor: the creator, or the service once it
				// auto-disabled the rule.
				if p["IsAutoDisabled"] == true {
					if g["lastModifiedBy"] != graphRuleModifier || g["isEnabled"] != false {
						t.Errorf("%s rule %s: auto-disabled, lastModifiedBy %v isEnabled %v", at, g["id"], g["lastModifiedBy"], g["isEnabled"])
					}
				} else if g["lastModifiedBy"] != g["createdBy"] {
					t.Errorf("%s rule %s: lastModifiedBy %v, want the creator", at, g["id"], g["lastModifiedBy"])
				}
				same("lastModifiedBy", g["lastModifiedBy"], p["LastUpdatedBy"])
				same("lastModifiedDateTime", g["lastModifiedDateTime"], p["LastUpdateTime"])
				if g["@odata.type"] != "#microsoft.graph.security.detectionRule" || g["detectorId"] == "" {
					t.Errorf("rule %s: @odata.type %v detectorId %v", g["id"], g["@odata.type"], g["detectorId"])
				}
			}
		}
		if n != len(portal) {
			t.Errorf("%s: %d rules in Graph, %d in the portal", at, n, len(portal))
		}
	}
}

func TestGraphAuth(t *testing.T) {
	e := newEnv(t, nil)
	c := e.ten.Credentials()
	const path = "/beta/security/rules/detectionRules"
	restricted := e.token(c.RestrictedClientID, c.RestrictedClientSecret, graphScope)
	tests := []struct {
		name   string
		tok    string
		status int
		code   string
		msg    string
	}{
		{"no token", "", 401, "InvalidAuthenticationToken", "Access token is empty."},
		{"garbage", "x.y.z", 401, "InvalidAuthenticationToken", "Access token validation failure."},
		{"Defender API token", e.publicToken(), 401, "InvalidAuthenticationToken", "Invalid audience"},
		{"Management API token", e.token(c.ClientID, c.ClientSecret, "https://manage.office.com/.default"), 401, "InvalidAuthenticationToken", "Invalid audience"},
		{"app without the role", restricted, 403, "Forbidden", "API requires one of 'CustomDetection.Read.All, CustomDetection.ReadWrite.All'. Roles on the request ''"},
		{"Graph app id audience", e.token(c.ClientID, c.ClientSecret, graphAppID+"/.default"), 200, "", ""},
		{"the app", e.graphToken(), 200, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.graph(path, tc.tok)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, truncate(r.body))
			}
			if tc.status == 200 {
				return
			}
			var ge graphErrT
			r.json(t, &ge)
			if ge.Error.Code != tc.code || !strings.Contains(ge.Error.Message, tc.msg) || ge.Error.InnerError["request-id"] == "" {
				t.Errorf("error %+v, want %s %q", ge.Error, tc.code, tc.msg)
			}
		})
	}
	// An expired token.
	tok := e.graphToken()
	e.wall.Add(2 * time.Hour)
	if r := e.graph(path, tok); r.status != 401 || !strings.Contains(string(r.body), "Lifetime validation failed") {
		t.Errorf("expired token: %d %s", r.status, r.body)
	}
	// A Graph token is not a Defender API token.
	if r := e.public("/api/libraryfiles", e.graphToken()); r.status != 401 {
		t.Errorf("Graph token on the public API: %d", r.status)
	}
}

func TestGraphTokenCarriesTheRole(t *testing.T) {
	e := newEnv(t, nil)
	parts := strings.Split(e.graphToken(), ".")
	var c claims
	b, _ := b64.DecodeString(parts[1])
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if c.Aud != audGraph || !hasRole(&c, GraphRole) || hasRole(&c, "Machine.Read.All") {
		t.Errorf("claims %+v", c)
	}
}

func TestGraphBadRequests(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.graphToken()
	tests := []struct {
		path   string
		status int
		msg    string
	}{
		{"/beta/security/rules/detectionRules?$skiptoken=bogus", 400, "skip token is not valid"},
		{"/beta/security/rules/detectionRules?$skiptoken=" + graphSkipToken(999), 400, "skip token is not valid"},
		{"/beta/security/rules/detectionRules?$top=0", 400, "$top"},
		{"/beta/security/rules/detectionRules?$top=x", 400, "$top"},
		{"/beta/security/rules/detectionRules?$top=1&$top=2", 400, "more than once"},
		{"/beta/security/rules/detectionRules?$count=maybe", 400, "count"},
		{"/beta/security/rules/detectionRules?$filter=isEnabled%20eq%20true", 400, "$filter"},
		{"/v2.0/security/rules/detectionRules", 400, "Invalid version: v2.0"},
		{"/beta/security/rules/nosuch", 400, "Resource not found for the segment 'nosuch'."},
		{"/beta/users", 400, "Resource not found for the segment 'users'."},
	}
	for _, tc := range tests {
		r := e.graph(tc.path, tok)
		var ge graphErrT
		r.json(t, &ge)
		if r.status != tc.status || !strings.Contains(ge.Error.Message, tc.msg) {
			t.Errorf("%s: %d %s, want %d %q", tc.path, r.status, r.body, tc.status, tc.msg)
		}
	}
	r := e.do(http.MethodPost, GraphHost, "/beta/security/rules/detectionRules", []byte(`{}`), map[string]string{"Authorization": "Bearer " + tok})
	if r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d %s", r.status, r.body)
	}
	if n := e.ten.RequestCount(FamilyGraph); n != len(tests)+1 {
		t.Errorf("%d Graph requests counted, want %d", n, len(tests)+1)
	}
}

func TestGraphFaults(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.graphToken()
	e.ten.Inject(FaultRule{Family: FamilyGraph, Kind: Fault429, Count: 1, RetryAfter: 2 * time.Second})
	r := e.graph("/beta/security/rules/detectionRules", tok)
	var ge graphErrT
	r.json(t, &ge)
	if r.status != 429 || r.header.Get("Retry-After") != "2" || ge.Error.Code != "TooManyRequests" {
		t.Errorf("%d %v %s", r.status, r.header, r.body)
	}
	if r := e.graph("/beta/security/rules/detectionRules", tok); r.status != 200 {
		t.Errorf("after the fault: %d", r.status)
	}
}
