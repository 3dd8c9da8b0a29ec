package sim

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Every portal route answers with the envelope docs/REFERENCE.md §1.7 (and
// docs/ARCHITECTURE.md) describes.
func TestPortalRouteEnvelopes(t *testing.T) {
	e := newEnv(t, nil)
	mid := e.ten.MachineIDs()[0]
	type check func(t *testing.T, body []byte)
	isArray := func(t *testing.T, b []byte) []map[string]any {
		t.Helper()
		var a []map[string]any
		if err := json.Unmarshal(b, &a); err != nil {
			t.Fatalf("want a bare JSON array, got %s", truncate(b))
		}
		return a
	}
	hasKeys := func(m map[string]any, keys ...string) string {
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				return k
			}
		}
		return ""
	}
	tests := []struct {
		name, method, path, body string
		check                    check
	}{
		{"action center", "GET", "/apiproxy/mtp/actionCenter/actioncenterui/history-actions/?useMtpApi=true&type=history&pageIndex=1&pageSize=5&sortByField=eventTime&sortOrder=Descending", "", func(t *testing.T, b []byte) {
			var env struct {
				Count   int
				Results []map[string]any
			}
			json.Unmarshal(b, &env)
			if env.Count == 0 || len(env.Results) != 5 {
				t.Fatalf("Count=%d len=%d, want a total and a page of 5", env.Count, len(env.Results))
			}
			r := env.Results[0]
			if k := hasKeys(r, "ActionId", "ActionType", "ActionStatus", "EventTime", "StartTime", "DecidedBy", "MachineId", "ComputerName", "AdditionalFields", "UserPrincipalName", "Product", "ActionSource"); k != "" {
				t.Fatalf("row lacks %s: %v", k, r)
			}
			et := r["EventTime"].(string)
			if _, err := time.Parse(layoutAC, et); err != nil || strings.HasSuffix(et, "Z") || len(et) != len("2026-04-25T21:13:34.0467247") {
				t.Fatalf("EventTime %q: want 7 fractional digits and no offset", et)
			}
		}},
		{"rules mtp", "GET", "/apiproxy/mtp/huntingService/rules/unified?pageIndex=1&pageSize=10000&sortOrder=Ascending&isUnifiedRulesListEnabled=true", "", func(t *testing.T, b []byte) {
			a := isArray(t, b)
			if len(a) < 5 {
				t.Fatalf("only %d rules", len(a))
			}
			if k := hasKeys(a[0], "Id", "Name", "Severity", "IsEnabled", "CreatedBy", "CreationTime", "LastUpdatedBy", "LastUpdateTime", "QueryText", "Frequency", "LastRunTime", "LastRunStatus", "LastRunFailureReason", "NextRunTime", "IsAutoDisabled", "MitreTechniques"); k != "" {
				t.Fatalf("rule lacks %s", k)
			}
		}},
		{"rules hunting prefix", "GET", "/apiproxy/hunting/huntingService/rules/unified", "", func(t *testing.T, b []byte) { isArray(t, b) }},
		{"reports", "POST", "/apiproxy/hunting/huntingService/reports", `{"startTime":"2026-03-10T12:00:00.000Z","endTime":"2026-03-10T18:00:00.000Z"}`, func(t *testing.T, b []byte) {
			var env struct {
				Count   int
				Results []map[string]any
			}
			json.Unmarshal(b, &env)
			if env.Count != len(env.Results) || env.Count == 0 {
				t.Fatalf("Count=%d len=%d", env.Count, len(env.Results))
			}
			if k := hasKeys(env.Results[0], "QueryId", "Timestamp", "QuerySource", "InitiatedBy", "ApplicationId", "QueryText", "DurationMs", "CpuTimeMs", "ResourceUsage", "State", "RowCount"); k != "" {
				t.Fatalf("query lacks %s", k)
			}
		}},
		{"reports mtp prefix", "POST", "/apiproxy/mtp/huntingService/reports", `{"startTime":"2026-03-10T12:00:00Z","endTime":"2026-03-10T13:00:00Z"}`, func(t *testing.T, b []byte) {}},
		{"schema", "GET", "/apiproxy/mtp/huntingService/schema", "", func(t *testing.T, b []byte) {
			var s struct {
				Tables []struct {
					Name    string
					Columns []struct{ Name, Type, Description string }
				}
			}
			json.Unmarshal(b, &s)
			if len(s.Tables) == 0 || s.Tables[0].Name == "" || len(s.Tables[0].Columns) == 0 {
				t.Fatalf("schema: %s", truncate(b))
			}
		}},
		{"timeline", "GET", "/apiproxy/mtp/mdeTimelineExperience/machines/" + mid + "/events/?machineId=" + mid + "&doNotUseCache=false&forceUseCache=false&fromDate=2026-03-10T00:00:00.0000000Z&toDate=2026-03-10T12:00:00.0000000Z&pageSize=10", "", func(t *testing.T, b []byte) {
			var env map[string]json.RawMessage
			json.Unmarshal(b, &env)
			if k := hasKeys(map[string]any{"Items": env["Items"], "Prev": env["Prev"], "Next": env["Next"], "PartialResponseReasons": env["PartialResponseReasons"]}, "Items"); k != "" || env["Items"] == nil || env["Prev"] == nil || env["Next"] == nil || string(env["PartialResponseReasons"]) != "[]" {
				t.Fatalf("timeline envelope: %s", truncate(b))
			}
		}},
		{"advanced features", "GET", "/apiproxy/mtp/settings/GetAdvancedFeaturesSetting", "", func(t *testing.T, b []byte) {
			var m map[string]any
			json.Unmarshal(b, &m)
			if _, ok := m["EnableWdavAntiTampering"].(bool); !ok || len(m) < 30 {
				t.Fatalf("advanced features: %s", truncate(b))
			}
		}},
		{"suppression", "GET", "/apiproxy/mtp/suppressionRulesService/suppressionRules", "", func(t *testing.T, b []byte) {
			a := isArray(t, b)
			rc, ok := a[0]["RuleConditions"].(string)
			var inner map[string]any
			if !ok || json.Unmarshal([]byte(rc), &inner) != nil {
				t.Fatalf("RuleConditions must be a JSON string, got %v", a[0]["RuleConditions"])
			}
			if _, ok := a[0]["ScopeConditions"].(string); !ok {
				t.Fatalf("ScopeConditions must be a JSON string")
			}
		}},
		{"machine groups", "GET", "/apiproxy/mtp/rbacManagementApi/rbac/machine_groups?addAadGroupNames=true&addMachineGroupCount=false", "", func(t *testing.T, b []byte) {
			var g struct {
				Items []struct {
					MachineGroupID           int `json:"MachineGroupId"`
					Priority                 int
					IsUnassignedMachineGroup bool
				} `json:"items"`
				ContainsAadGroupNames bool `json:"containsAadGroupNames"`
			}
			json.Unmarshal(b, &g)
			last := g.Items[len(g.Items)-1]
			if len(g.Items) < 2 || !last.IsUnassignedMachineGroup || last.Priority != 2147483647 {
				t.Fatalf("machine groups: %s", truncate(b))
			}
		}},
		{"connected apps", "GET", "/apiproxy/mtp/responseApiPortal/apps/all", "", func(t *testing.T, b []byte) {
			a := isArray(t, b)
			if ms, ok := a[0]["MonthlyStatistics"].([]any); !ok || len(ms) != 30 {
				t.Fatalf("MonthlyStatistics: %v", a[0]["MonthlyStatistics"])
			}
		}},
		{"alert service", "GET", "/apiproxy/mtp/alertsApiService/workloads/disabled?includeDetails=true", "", func(t *testing.T, b []byte) {
			var m map[string]any
			if json.Unmarshal(b, &m) != nil {
				t.Fatalf("not an object: %s", b)
			}
		}},
		{"data export", "GET", "/apiproxy/mtp/wdatpApi/dataexportsettings", "", func(t *testing.T, b []byte) {
			var m struct {
				Context string           `json:"@odata.context"`
				Value   []map[string]any `json:"value"`
			}
			json.Unmarshal(b, &m)
			if m.Context != "https://security.microsoft.com/api/$metadata#DataExportSettings" || len(m.Value) == 0 || m.Value[0]["id"] == nil {
				t.Fatalf("data export: %s", truncate(b))
			}
		}},
		{"lr properties", "GET", "/apiproxy/mtp/liveResponseApi/get_properties?useV2Api=true&useV3Api=true", "", func(t *testing.T, b []byte) {
			var m map[string]bool
			if json.Unmarshal(b, &m) != nil || len(m) != 3 {
				t.Fatalf("lr properties: %s", b)
			}
		}},
		{"library", "GET", "/apiproxy/mtp/liveResponseApi/library/get_files?useV3Api=true", "", func(t *testing.T, b []byte) {
			a := isArray(t, b)
			if k := hasKeys(a[0], "file_name", "last_updated_time", "sha256", "has_parameters"); k != "" {
				t.Fatalf("library file lacks %s", k)
			}
		}},
		{"machines", "GET", "/apiproxy/mtp/ndr/machines?hideLowFidelityDevices=true&lookingBackIndays=180&pageIndex=1&sortByField=riskscore&sortOrder=Descending", "", func(t *testing.T, b []byte) {
			a := isArray(t, b)
			if len(a) != 25 {
				t.Fatalf("default device page is %d, want 25", len(a))
			}
			if k := hasKeys(a[0], "MachineId", "SenseMachineId", "ComputerDnsName", "OsPlatform", "LastSeen", "FirstSeen", "HealthStatus", "RiskScore", "Domain"); k != "" {
				t.Fatalf("machine lacks %s", k)
			}
		}},
		{"tenant context", "GET", "/apiproxy/mtp/sccManagement/mgmt/TenantContext?realTime=true", "", func(t *testing.T, b []byte) {
			var m struct {
				AuthInfo struct {
					TenantID string `json:"TenantId"`
				}
			}
			json.Unmarshal(b, &m)
			if m.AuthInfo.TenantID != e.ten.TenantID() {
				t.Fatalf("AuthInfo.TenantId = %q", m.AuthInfo.TenantID)
			}
		}},
		{"requests latest", "GET", "/apiproxy/mtp/responseApiPortal/requests/latest?machineId=" + mid + "&tenantIds=", "", func(t *testing.T, b []byte) { isArray(t, b) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			r := e.portal(tc.method, tc.path, body)
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, truncate(r.body))
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Fatalf("Content-Type %q", ct)
			}
			tc.check(t, r.body)
		})
	}
}

func TestPortalStrictness(t *testing.T) {
	e := newEnv(t, nil)
	mid := e.ten.MachineIDs()[0]
	tests := []struct {
		name, method, path, body string
		status                   int
		contains                 string
	}{
		{"unknown path", "GET", "/apiproxy/mtp/k8sMachineApi/ine/machineapiservice/machinetimeline", "", 404, "No HTTP resource"},
		{"fabricated XLR path", "GET", "/apiproxy/mtp/responseApiPortal/machineactions", "", 404, "Message"},
		{"wrong method", "POST", "/apiproxy/mtp/settings/GetAdvancedFeaturesSetting", "{}", 405, "does not support http method 'POST'"},
		{"reports via GET", "GET", "/apiproxy/hunting/huntingService/reports", "", 405, "Message"},
		{"report window over 30 days", "POST", "/apiproxy/hunting/huntingService/reports", `{"startTime":"2026-01-01T00:00:00Z","endTime":"2026-03-01T00:00:00Z"}`, 400, "30 days"},
		{"report bad body", "POST", "/apiproxy/hunting/huntingService/reports", `{"startTime":5}`, 400, "startTime"},
		{"ac bad sort field", "GET", "/apiproxy/mtp/actionCenter/actioncenterui/history-actions/?sortByField=nonsense", "", 400, "sortByField"},
		{"ac bad sort order", "GET", "/apiproxy/mtp/actionCenter/actioncenterui/history-actions/?sortOrder=sideways", "", 400, "sortOrder"},
		{"ac page index 0", "GET", "/apiproxy/mtp/actionCenter/actioncenterui/history-actions/?pageIndex=0", "", 400, "pageIndex"},
		{"ac bad date", "GET", "/apiproxy/mtp/actionCenter/actioncenterui/history-actions/?fromDate=yesterday", "", 400, "fromDate"},
		{"timeline window over 30 days", "GET", "/apiproxy/mtp/mdeTimelineExperience/machines/" + mid + "/events/?fromDate=2026-01-01T00:00:00Z&toDate=2026-02-15T00:00:00Z", "", 400, "30 days"},
		{"timeline pageSize over 1000", "GET", "/apiproxy/mtp/mdeTimelineExperience/machines/" + mid + "/events/?fromDate=2026-03-09T00:00:00Z&toDate=2026-03-10T00:00:00Z&pageSize=1001", "", 400, "pageSize"},
		{"timeline unknown machine", "GET", "/apiproxy/mtp/mdeTimelineExperience/machines/" + strings.Repeat("0", 40) + "/events/", "", 404, "was not found"},
		{"timeline machineId mismatch", "GET", "/apiproxy/mtp/mdeTimelineExperience/machines/" + mid + "/events/?machineId=" + strings.Repeat("a", 40), "", 400, "machineId"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			r := e.portal(tc.method, tc.path, body)
			if r.status != tc.status || !strings.Contains(string(r.body), tc.contains) {
				t.Fatalf("got %d %s, want %d containing %q", r.status, truncate(r.body), tc.status, tc.contains)
			}
			var m map[string]any
			if err := json.Unmarshal(r.body, &m); err != nil {
				t.Fatalf("error body is not JSON: %s", r.body)
			}
		})
	}
}

func acPage(t *testing.T, e *env, query string) (int, []acRecordT) {
	t.Helper()
	r := e.portal("GET", "/apiproxy/mtp/actionCenter/actioncenterui/history-actions/?"+query, nil)
	if r.status != 200 {
		t.Fatalf("action center %s: %d %s", query, r.status, truncate(r.body))
	}
	var env struct {
		Count   int
		Results []acRecordT
	}
	r.json(t, &env)
	return env.Count, env.Results
}

type acRecordT struct {
	ActionID          string `json:"ActionId"`
	ActionType        string
	ActionStatus      string
	ActionSource      string
	EventTime         string
	UserPrincipalName *string
	DecidedBy         string
	AdditionalFields  map[string]any
}

func TestActionCenterPaging(t *testing.T) {
	e := newEnv(t, nil)
	from, to := "2026-02-20T00:00:00.000Z", "2026-03-10T12:00:00.000Z"
	base := "fromDate=" + url.QueryEscape(from) + "&toDate=" + url.QueryEscape(to) + "&sortByField=eventTime&sortOrder=Ascending"
	total, first := acPage(t, e, base)
	if len(first) != 30 {
		t.Fatalf("default page holds %d rows, want 30", len(first))
	}
	if total <= 1000 {
		t.Fatalf("test needs more than 1000 rows in the window, has %d", total)
	}
	// pageSize above 1000 is clamped to 1000.
	if _, rows := acPage(t, e, base+"&pageSize=5000"); len(rows) != 1000 {
		t.Fatalf("pageSize=5000 returned %d rows, want the clamp of 1000", len(rows))
	}
	// Walking all pages yields every row exactly once, in order, and the
	// last page is short.
	seen := map[string]bool{}
	var all []acRecordT
	size := 250
	for idx := 1; ; idx++ {
		n, rows := acPage(t, e, base+"&pageSize="+itoa(size)+"&pageIndex="+itoa(idx))
		if n != total {
			t.Fatalf("Count changed between pages: %d vs %d", n, total)
		}
		all = append(all, rows...)
		if len(rows) < size {
			break
		}
	}
	if len(all) != total {
		t.Fatalf("pages held %d rows, Count says %d", len(all), total)
	}
	for i, r := range all {
		k := r.ActionID + r.EventTime + r.ActionStatus
		if seen[k] {
			t.Fatalf("row %s repeated", k)
		}
		seen[k] = true
		if i > 0 && r.EventTime < all[i-1].EventTime {
			t.Fatalf("not ascending at %d", i)
		}
		if r.EventTime < "2026-02-20T00:00:00" || r.EventTime > "2026-03-10T12:00:00.0000000" {
			t.Fatalf("row outside window: %s", r.EventTime)
		}
	}
	// Past the last page: empty Results, same Count.
	if n, rows := acPage(t, e, base+"&pageSize=1000&pageIndex=99"); n != total || len(rows) != 0 {
		t.Fatalf("page past the end: Count=%d rows=%d", n, len(rows))
	}
	// The ground truth agrees with the service.
	ev, err := e.ten.Events("actioncenter", mustTime(from), mustTime(to))
	if err != nil {
		t.Fatal(err)
	}
	// toDate is inclusive for the service; nothing happens exactly at it.
	if len(ev) != total {
		t.Fatalf("Events has %d rows, service %d", len(ev), total)
	}
	// Descending is the reverse order.
	_, desc := acPage(t, e, strings.Replace(base, "Ascending", "Descending", 1)+"&pageSize=1")
	if desc[0].EventTime != all[len(all)-1].EventTime {
		t.Fatalf("descending starts at %s, want %s", desc[0].EventTime, all[len(all)-1].EventTime)
	}
}

// Live Response commands carry the operator and the command; a status
// change is a second row with a later EventTime.
func TestActionCenterLiveResponseRows(t *testing.T) {
	e := newEnv(t, nil)
	_, rows := acPage(t, e, "pageSize=1000&sortOrder=Ascending&fromDate=2026-03-10T12:00:00Z&toDate=2026-03-11T00:00:00Z")
	byID := map[string][]acRecordT{}
	lr := 0
	for _, r := range rows {
		byID[r.ActionID] = append(byID[r.ActionID], r)
		if r.ActionType == "LiveResponseCommand" && r.ActionSource == "LiveResponse" {
			lr++
			if r.UserPrincipalName == nil || !strings.Contains(*r.UserPrincipalName, "@") {
				t.Fatalf("portal LR row without operator UPN: %+v", r)
			}
			if cmd, _ := r.AdditionalFields["raw_command"].(string); cmd == "" {
				t.Fatalf("LR row without raw_command: %+v", r)
			}
		}
	}
	if lr == 0 {
		t.Fatal("no portal Live Response rows in 12 hours (the scripted session is at Start+90m)")
	}
	changed := 0
	for _, rs := range byID {
		if len(rs) >= 2 && rs[1].EventTime > rs[0].EventTime && rs[0].ActionStatus == "Pending" && rs[1].ActionStatus != "Pending" {
			changed++
		}
	}
	if changed == 0 {
		t.Fatal("no action appears twice with a later EventTime after a status change")
	}
}

func TestRulesPaging(t *testing.T) {
	e := newEnv(t, nil)
	get := func(q string) []map[string]any {
		r := e.portal("GET", "/apiproxy/mtp/huntingService/rules/unified?"+q, nil)
		var a []map[string]any
		r.json(t, &a)
		return a
	}
	all := get("pageSize=10000")
	p1, p2, p3 := get("pageSize=4&pageIndex=1"), get("pageSize=4&pageIndex=2"), get("pageSize=4&pageIndex=3")
	if len(p1) != 4 || len(p2) != 4 || len(p1)+len(p2)+len(p3) != len(all) || len(p3) >= 4 {
		t.Fatalf("pages %d/%d/%d of %d", len(p1), len(p2), len(p3), len(all))
	}
	if p2[0]["Id"] != all[4]["Id"] {
		t.Fatalf("page 2 starts at %v, want %v", p2[0]["Id"], all[4]["Id"])
	}
}

func TestPortalSession(t *testing.T) {
	e := newEnv(t, nil)
	c := e.ten.Credentials()
	const path = "/apiproxy/mtp/settings/GetAdvancedFeaturesSetting"
	cookie := "sccauth=" + c.SccAuth + "; XSRF-TOKEN=" + url.QueryEscape(c.XSRFToken)
	tests := []struct {
		name   string
		hdr    map[string]string
		status int
	}{
		{"valid session", map[string]string{"Cookie": cookie, "X-XSRF-TOKEN": c.XSRFToken}, 200},
		{"no sccauth", map[string]string{"X-XSRF-TOKEN": c.XSRFToken}, 302},
		{"wrong sccauth", map[string]string{"Cookie": "sccauth=forged", "X-XSRF-TOKEN": c.XSRFToken}, 302},
		{"no xsrf header", map[string]string{"Cookie": cookie}, 401},
		{"wrong xsrf", map[string]string{"Cookie": cookie, "X-XSRF-TOKEN": "nope"}, 401},
		{"xsrf not url-decoded", map[string]string{"Cookie": cookie, "X-XSRF-TOKEN": url.QueryEscape(c.XSRFToken)}, 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("GET", "security.microsoft.com", path, nil, tc.hdr)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, truncate(r.body))
			}
			if tc.status == 302 {
				if loc := r.header.Get("Location"); !strings.HasPrefix(loc, "https://login.microsoftonline.com/") {
					t.Fatalf("redirect to %q", loc)
				}
				if !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") || !strings.Contains(string(r.body), "<html") {
					t.Fatalf("302 body is not HTML: %s", r.body)
				}
			}
		})
	}

	// GET / with the session rotates the XSRF token; both new and old work.
	r := e.do("GET", "security.microsoft.com", "/", nil, map[string]string{"Cookie": "sccauth=" + c.SccAuth})
	if r.status != 200 {
		t.Fatalf("GET /: %d", r.status)
	}
	var fresh string
	for _, ck := range (&http.Response{Header: r.header}).Cookies() {
		if ck.Name == "XSRF-TOKEN" {
			fresh, _ = url.QueryUnescape(ck.Value)
		}
	}
	if fresh == "" || fresh == c.XSRFToken {
		t.Fatalf("GET / did not set a fresh XSRF-TOKEN cookie (got %q)", fresh)
	}
	for _, x := range []string{fresh, c.XSRFToken} {
		if r := e.do("GET", "security.microsoft.com", path, nil, map[string]string{"Cookie": "sccauth=" + c.SccAuth, "X-XSRF-TOKEN": x}); r.status != 200 {
			t.Fatalf("token after rotation: %d", r.status)
		}
	}
	// Old tokens expire after enough rotations.
	for i := 0; i < xsrfKeep; i++ {
		e.do("GET", "security.microsoft.com", "/", nil, map[string]string{"Cookie": "sccauth=" + c.SccAuth})
	}
	if r := e.do("GET", "security.microsoft.com", path, nil, map[string]string{"Cookie": "sccauth=" + c.SccAuth, "X-XSRF-TOKEN": c.XSRFToken}); r.status != 401 {
		t.Fatalf("stale XSRF token still accepted: %d", r.status)
	}
	if r := e.do("GET", "security.microsoft.com", "/", nil, nil); r.status != 302 {
		t.Fatalf("GET / without session: %d, want 302", r.status)
	}
	// A revoked session redirects; the new credentials work.
	if err := e.ten.RevokePortalSession(); err != nil {
		t.Fatal(err)
	}
	if r := e.do("GET", "security.microsoft.com", path, nil, map[string]string{"Cookie": cookie, "X-XSRF-TOKEN": c.XSRFToken}); r.status != 302 {
		t.Fatalf("revoked session: %d, want 302", r.status)
	}
	if r := e.portal("GET", path, nil); r.status != 200 {
		t.Fatalf("new session: %d", r.status)
	}
}

func TestPortalBearer(t *testing.T) {
	e := newEnv(t, nil)
	c := e.ten.Credentials()
	tests := []struct {
		scope  string
		status int
	}{
		{portalAppID + "/.default", 200},
		{"https://security.microsoft.com/.default", 200},
		{"https://api.securitycenter.microsoft.com/.default", 401},
		{"https://securitycenter.microsoft.com/mtp/.default", 401},
	}
	for _, tc := range tests {
		t.Run(tc.scope, func(t *testing.T) {
			tok := e.token(c.ClientID, c.ClientSecret, tc.scope)
			r := e.do("GET", "mto.security.microsoft.com", "/apiproxy/mtp/settings/GetAdvancedFeaturesSetting", nil, map[string]string{"Authorization": "Bearer " + tok})
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
		})
	}
}

func itoa(n int) string { return strconvItoa(n) }

func mustTime(s string) time.Time {
	tm, err := parseTimeParam(s)
	if err != nil {
		panic(err)
	}
	return tm
}
