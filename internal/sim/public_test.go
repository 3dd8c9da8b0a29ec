package sim

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

type maPageT struct {
	Context  string           `json:"@odata.context"`
	Value    []map[string]any `json:"value"`
	NextLink string           `json:"@odata.nextLink"`
}

func odata(opts ...string) string {
	v := make([]string, 0, len(opts)/2)
	for i := 0; i+1 < len(opts); i += 2 {
		v = append(v, opts[i]+"="+url.QueryEscape(opts[i+1]))
	}
	return "/api/machineactions?" + strings.Join(v, "&")
}

func TestODataFilter(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.publicToken()
	all := mustPage(t, e.public("/api/machineactions", tok))
	if len(all.Value) < 50 {
		t.Fatalf("only %d machine actions", len(all.Value))
	}
	a := all.Value[len(all.Value)/2]
	tests := []struct {
		name, filter string
		status       int
		code         string
		want         func(map[string]any) bool
	}{
		{"creation ge", "creationDateTimeUtc ge 2026-03-09T00:00:00Z", 200, "", func(m map[string]any) bool { return m["creationDateTimeUtc"].(string) >= "2026-03-09T00:00:00" }},
		{"creation range", "creationDateTimeUtc ge 2026-03-05T00:00:00Z and creationDateTimeUtc lt 2026-03-06T00:00:00Z", 200, "", func(m map[string]any) bool {
			c := m["creationDateTimeUtc"].(string)
			return c >= "2026-03-05" && c < "2026-03-06"
		}},
		{"status", "status eq 'Succeeded'", 200, "", func(m map[string]any) bool { return m["status"] == "Succeeded" }},
		{"type and machine", "type eq '" + a["type"].(string) + "' and machineId eq '" + a["machineId"].(string) + "'", 200, "", func(m map[string]any) bool {
			return m["type"] == a["type"] && m["machineId"] == a["machineId"]
		}},
		{"id", "id eq '" + a["id"].(string) + "'", 200, "", func(m map[string]any) bool { return m["id"] == a["id"] }},
		{"requestor", "requestor eq '" + a["requestor"].(string) + "'", 200, "", func(m map[string]any) bool { return m["requestor"] == a["requestor"] }},
		// Undocumented but served: the original tool and Elastic filter on it.
		{"lastUpdate ge", "lastUpdateDateTimeUtc ge 2026-03-09T00:00:00Z", 200, "", func(m map[string]any) bool { return m["lastUpdateDateTimeUtc"].(string) >= "2026-03-09T00:00:00" }},
		{"lastUpdate range", "lastUpdateDateTimeUtc gt 2026-03-05T00:00:00Z and lastUpdateDateTimeUtc le 2026-03-06T00:00:00Z", 200, "", func(m map[string]any) bool {
			u := m["lastUpdateDateTimeUtc"].(string)
			return u > "2026-03-05T00:00:00.0000000Z" && u <= "2026-03-06T00:00:00.0000000Z"
		}},
		{"lastUpdate since, created before", "lastUpdateDateTimeUtc ge 2026-03-10T00:00:00Z and creationDateTimeUtc lt 2026-03-10T06:00:00Z", 200, "", func(m map[string]any) bool {
			return m["lastUpdateDateTimeUtc"].(string) >= "2026-03-10T00:00:00" && m["creationDateTimeUtc"].(string) < "2026-03-10T06:00:00"
		}},
		// The original's request: RFC 3339 with nanoseconds and an offset.
		{"lastUpdate original's format", "lastUpdateDateTimeUtc ge 2026-03-10T07:30:00.123456789+01:00", 200, "", func(m map[string]any) bool {
			return m["lastUpdateDateTimeUtc"].(string) >= "2026-03-10T06:30:00.1234567Z"
		}},
		{"lastUpdate quoted", "lastUpdateDateTimeUtc ge '2024-01-01T00:00:00Z'", 400, "ODataError", nil},
		{"lastUpdate ne", "lastUpdateDateTimeUtc ne 2024-01-01T00:00:00Z", 400, "ODataError", nil},
		{"lastUpdate or", "lastUpdateDateTimeUtc ge 2024-01-01T00:00:00Z or status eq 'Failed'", 400, "ODataError", nil},
		{"lastUpdate bad date", "lastUpdateDateTimeUtc ge today", 400, "ODataError", nil},
		{"lastUpdate wrong case", "LastUpdateDateTimeUtc ge 2024-01-01T00:00:00Z", 400, "ODataError", nil},
		{"doc typo field", "lastUpdateTimeUtc ge 2024-01-01T00:00:00Z", 400, "ODataError", nil},
		{"or", "status eq 'Failed' or status eq 'Succeeded'", 400, "ODataError", nil},
		{"ne", "status ne 'Failed'", 400, "ODataError", nil},
		{"ge on string", "status ge 'A'", 400, "ODataError", nil},
		{"quoted date", "creationDateTimeUtc ge '2024-01-01T00:00:00Z'", 400, "ODataError", nil},
		{"function", "startswith(requestor,'x')", 400, "ODataError", nil},
		{"unterminated", "status eq 'Succ", 400, "ODataError", nil},
		{"dangling and", "status eq 'Succeeded' and", 400, "ODataError", nil},
		{"bad date", "creationDateTimeUtc ge yesterday", 400, "ODataError", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.public(odata("$filter", tc.filter), tok)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, truncate(r.body))
			}
			if tc.status != 200 {
				var env struct {
					Error struct{ Code, Message, Target string }
				}
				r.json(t, &env)
				if env.Error.Code != tc.code || env.Error.Message == "" || !isGUID(env.Error.Target) {
					t.Fatalf("error envelope %s", r.body)
				}
				return
			}
			p := mustPage(t, r)
			if len(p.Value) == 0 {
				t.Fatal("filter matched nothing")
			}
			for _, m := range p.Value {
				if !tc.want(m) {
					t.Fatalf("row does not match filter: %v", m)
				}
			}
			// The filter selects exactly the matching rows of the full list.
			n := 0
			for _, m := range all.Value {
				if tc.want(m) {
					n++
				}
			}
			if n != len(p.Value) {
				t.Fatalf("filter returned %d rows, %d match", len(p.Value), n)
			}
		})
	}
}

func TestODataOptions(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.publicToken()
	tests := []struct {
		name   string
		query  string
		status int
		check  func(t *testing.T, p maPageT)
	}{
		{"top", odata("$top", "3"), 200, func(t *testing.T, p maPageT) {
			if len(p.Value) != 3 || p.NextLink != "" {
				t.Fatalf("len %d nextLink %q", len(p.Value), p.NextLink)
			}
		}},
		{"top max", odata("$top", "10000"), 200, nil},
		{"top over max", odata("$top", "10001"), 400, nil},
		{"top negative", odata("$top", "-1"), 400, nil},
		{"skip bad", odata("$skip", "x"), 400, nil},
		{"orderby desc", odata("$orderby", "creationDateTimeUtc desc", "$top", "50"), 200, func(t *testing.T, p maPageT) {
			for i := 1; i < len(p.Value); i++ {
				if p.Value[i]["creationDateTimeUtc"].(string) > p.Value[i-1]["creationDateTimeUtc"].(string) {
					t.Fatal("not descending")
				}
			}
		}},
		{"orderby lastUpdate", odata("$orderby", "lastUpdateDateTimeUtc asc", "$top", "80"), 200, func(t *testing.T, p maPageT) {
			for i := 1; i < len(p.Value); i++ {
				if p.Value[i]["lastUpdateDateTimeUtc"].(string) < p.Value[i-1]["lastUpdateDateTimeUtc"].(string) {
					t.Fatal("not ascending by lastUpdateDateTimeUtc")
				}
			}
		}},
		{"orderby unknown", odata("$orderby", "title"), 400, nil},
		{"unsupported option", odata("$expand", "commands"), 400, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.public(tc.query, tok)
			if r.status != tc.status {
				t.Fatalf("status %d want %d: %s", r.status, tc.status, truncate(r.body))
			}
			if tc.check != nil {
				tc.check(t, mustPage(t, r))
			}
		})
	}
}

func mustPage(t *testing.T, r resp) maPageT {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, truncate(r.body))
	}
	var p maPageT
	r.json(t, &p)
	return p
}

// Without $top the service pages at the cap and links to the rest; with
// $top there is never a nextLink.
func TestPublicNextLink(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.PublicAPIPageCap = 40 })
	tok := e.publicToken()
	filter := "creationDateTimeUtc ge 2026-02-20T00:00:00Z"
	first := mustPage(t, e.public(odata("$filter", filter), tok))
	if len(first.Value) != 40 || first.NextLink == "" {
		t.Fatalf("first page %d rows, nextLink %q", len(first.Value), first.NextLink)
	}
	if first.Context != "https://api.security.microsoft.com/api/$metadata#MachineActions" {
		t.Fatalf("@odata.context %q", first.Context)
	}
	ids := map[string]bool{}
	rows := first.Value
	link := first.NextLink
	for link != "" {
		u, err := url.Parse(link)
		if err != nil || u.Scheme != "https" || u.Host != "api.security.microsoft.com" || u.Path != "/api/machineactions" {
			t.Fatalf("nextLink %q is not an absolute service URL", link)
		}
		if u.Query().Get("$filter") != filter || u.Query().Get("$skip") != strconv.Itoa(len(rows)) {
			t.Fatalf("nextLink %q lost the filter or has the wrong $skip", link)
		}
		p := mustPage(t, e.public(u.RequestURI(), tok))
		rows = append(rows, p.Value...)
		link = p.NextLink
	}
	for _, m := range rows {
		id := m["id"].(string)
		if ids[id] {
			t.Fatalf("id %s on two pages", id)
		}
		ids[id] = true
	}
	top := mustPage(t, e.public(odata("$filter", filter, "$top", "10000"), tok))
	if top.NextLink != "" || len(top.Value) != len(rows) {
		t.Fatalf("$top=10000: %d rows, nextLink %q; paging gave %d", len(top.Value), top.NextLink, len(rows))
	}
	if p := mustPage(t, e.public(odata("$filter", filter, "$top", "10"), tok)); p.NextLink != "" || len(p.Value) != 10 {
		t.Fatalf("$top=10: nextLink %q", p.NextLink)
	}
}

func TestMachineActionEntity(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.publicToken()
	r := e.public("/api/machineactions?$top=1000", tok)
	// Field order as documented (D.3).
	order := []string{`"id"`, `"type"`, `"title"`, `"requestor"`, `"requestorComment"`, `"status"`, `"machineId"`, `"computerDnsName"`,
		`"creationDateTimeUtc"`, `"lastUpdateDateTimeUtc"`, `"cancellationRequestor"`, `"cancellationComment"`, `"cancellationDateTimeUtc"`,
		`"errorHResult"`, `"scope"`, `"externalId"`, `"requestSource"`, `"relatedFileInfo"`, `"commands"`, `"troubleshootInfo"`}
	s := string(r.body)
	first := s[strings.Index(s, `"value":[`):]
	first = first[:strings.Index(first, `"troubleshootInfo"`)+20]
	last := -1
	for _, k := range order {
		i := strings.Index(first, k)
		if i < 0 || i < last {
			t.Fatalf("field %s missing or out of order in %s", k, first)
		}
		last = i
	}
	p := mustPage(t, r)
	var lr, quarantine map[string]any
	for _, m := range p.Value {
		if m["type"] == "LiveResponse" && m["status"] == "Succeeded" {
			lr = m
		}
		if m["type"] == "StopAndQuarantineFile" {
			quarantine = m
		}
		if !strings.HasSuffix(m["lastUpdateDateTimeUtc"].(string), "Z") || len(m["lastUpdateDateTimeUtc"].(string)) != 28 {
			t.Fatalf("lastUpdateDateTimeUtc %v: want 7 digits and Z", m["lastUpdateDateTimeUtc"])
		}
	}
	if lr == nil || quarantine == nil {
		t.Fatal("no succeeded LiveResponse or quarantine action in the history")
	}
	cmds := lr["commands"].([]any)
	c0 := cmds[0].(map[string]any)
	if len(cmds) == 0 || c0["commandStatus"] != "Completed" || c0["command"].(map[string]any)["type"] == nil {
		t.Fatalf("LR commands: %v", cmds)
	}
	if rf, ok := quarantine["relatedFileInfo"].(map[string]any); !ok || rf["fileIdentifierType"] != "Sha1" {
		t.Fatalf("relatedFileInfo: %v", quarantine["relatedFileInfo"])
	}
	// Single entity.
	one := e.public("/api/machineactions/"+lr["id"].(string), tok)
	var m map[string]any
	one.json(t, &m)
	if one.status != 200 || m["id"] != lr["id"] || !strings.HasSuffix(m["@odata.context"].(string), "#MachineActions/$entity") {
		t.Fatalf("single get: %d %s", one.status, truncate(one.body))
	}
	if r := e.public("/api/machineactions/6b0b8b4c-0000-4000-8000-000000000000", tok); r.status != 404 || !strings.Contains(string(r.body), "ResourceNotFound") {
		t.Fatalf("unknown id: %d %s", r.status, r.body)
	}
}

// Status changes move lastUpdateDateTimeUtc; portal Live Response never
// shows up in machineactions; API Live Response shows up in both.
func TestMachineActionLifecycle(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.publicToken()
	// Find an action that is still open now.
	p := mustPage(t, e.public(odata("$filter", "creationDateTimeUtc ge 2026-03-10T20:00:00Z"), tok))
	var open map[string]any
	for _, m := range p.Value {
		if m["status"] == "Pending" || m["status"] == "InProgress" {
			open = m
		}
	}
	if open == nil {
		// Move the clock back until one is open.
		for i := 0; i < 48 && open == nil; i++ {
			e.data.Add(-7 * time.Minute)
			p = mustPage(t, e.public(odata("$filter", "creationDateTimeUtc ge 2026-03-10T12:00:00Z"), tok))
			for _, m := range p.Value {
				if m["status"] == "Pending" || m["status"] == "InProgress" {
					open = m
				}
			}
		}
	}
	if open == nil {
		t.Fatal("no open machine action found")
	}
	e.data.Add(4 * time.Hour)
	one := e.public("/api/machineactions/"+open["id"].(string), tok)
	var later map[string]any
	one.json(t, &later)
	if later["status"] == open["status"] || later["lastUpdateDateTimeUtc"].(string) <= open["lastUpdateDateTimeUtc"].(string) {
		t.Fatalf("status %v→%v, lastUpdate %v→%v: want a later status", open["status"], later["status"], open["lastUpdateDateTimeUtc"], later["lastUpdateDateTimeUtc"])
	}

	all := mustPage(t, e.public("/api/machineactions", tok))
	ids := map[string]bool{}
	for _, m := range all.Value {
		ids[m["id"].(string)] = true
	}
	_, rows := acPage(t, e, "pageSize=1000&fromDate=2026-03-08T00:00:00Z&toDate=2026-03-11T00:00:00Z")
	portalLR, apiLR := 0, 0
	for _, r := range rows {
		if r.ActionType != "LiveResponseCommand" {
			continue
		}
		maID, _ := r.AdditionalFields["machine_action_id"].(string)
		switch r.ActionSource {
		case "LiveResponse":
			portalLR++
			if ids[r.ActionID] {
				t.Fatalf("portal Live Response command %s appears in machineactions", r.ActionID)
			}
		case "PublicApi":
			apiLR++
			if !ids[maID] {
				t.Fatalf("API Live Response command of action %q missing from machineactions", maID)
			}
		}
	}
	if portalLR == 0 || apiLR == 0 {
		t.Fatalf("portal LR rows %d, API LR rows %d: want both", portalLR, apiLR)
	}
}

func TestPublicAuth(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(e *env) string // returns the Authorization header
		status int
		code   string
	}{
		{"valid", func(e *env) string { return "Bearer " + e.publicToken() }, 200, ""},
		{"new host audience", func(e *env) string {
			c := e.ten.Credentials()
			return "Bearer " + e.token(c.ClientID, c.ClientSecret, "https://api.security.microsoft.com/.default")
		}, 200, ""},
		{"WindowsDefenderATP app id audience", func(e *env) string {
			c := e.ten.Credentials()
			return "Bearer " + e.token(c.ClientID, c.ClientSecret, wdatpAppID+"/.default")
		}, 200, ""},
		{"missing", func(e *env) string { return "" }, 401, "Unauthorized"},
		{"not bearer", func(e *env) string { return "Basic abc" }, 401, "Unauthorized"},
		{"garbage", func(e *env) string { return "Bearer a.b.c" }, 401, "Unauthorized"},
		{"tampered payload", func(e *env) string {
			tok := e.publicToken()
			parts := strings.Split(tok, ".")
			var c claims
			p, _ := b64.DecodeString(parts[1])
			json.Unmarshal(p, &c)
			c.Roles = append(c.Roles, "Machine.ReadWrite.All")
			return "Bearer " + parts[0] + "." + b64.EncodeToString(mustJSON(c)) + "." + parts[2]
		}, 401, "Unauthorized"},
		{"wrong audience", func(e *env) string {
			c := e.ten.Credentials()
			return "Bearer " + e.token(c.ClientID, c.ClientSecret, "https://securitycenter.microsoft.com/mtp/.default")
		}, 401, "Unauthorized"},
		{"expired", func(e *env) string {
			tok := e.publicToken()
			e.wall.Add(3600 * time.Second)
			return "Bearer " + tok
		}, 401, "Unauthorized"},
		{"no role", func(e *env) string {
			c := e.ten.Credentials()
			return "Bearer " + e.token(c.RestrictedClientID, c.RestrictedClientSecret, "https://api.securitycenter.microsoft.com/.default")
		}, 403, "Forbidden"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			h := map[string]string{}
			if a := tc.setup(e); a != "" {
				h["Authorization"] = a
			}
			for _, path := range []string{"/api/machineactions?$top=1", "/api/libraryfiles"} {
				r := e.do("GET", "api.securitycenter.microsoft.com", path, nil, h)
				if r.status != tc.status || (tc.code != "" && !strings.Contains(string(r.body), `"code":"`+tc.code+`"`)) {
					t.Fatalf("%s: got %d %s, want %d %s", path, r.status, truncate(r.body), tc.status, tc.code)
				}
			}
		})
	}
}

func TestPublicRateLimit(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.publicToken()
	for i := 0; i < 100; i++ {
		if r := e.public("/api/libraryfiles", tok); r.status != 200 {
			t.Fatalf("call %d: %d", i+1, r.status)
		}
		e.wall.Add(100 * time.Millisecond)
	}
	r := e.public("/api/machineactions?$top=1", tok)
	if r.status != http.StatusTooManyRequests || !strings.Contains(string(r.body), `"code":"TooManyRequests"`) {
		t.Fatalf("101st call in a minute: %d %s", r.status, r.body)
	}
	ra, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > 60 {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	// A new token of the same app shares the budget.
	c := e.ten.Credentials()
	other := e.token(c.ClientID, c.ClientSecret, "https://api.security.microsoft.com/.default")
	if r := e.public("/api/libraryfiles", other); r.status != 429 {
		t.Fatalf("same app, other token: %d, want 429", r.status)
	}
	e.wall.Add(time.Duration(ra) * time.Second)
	if r := e.public("/api/libraryfiles", tok); r.status != 200 {
		t.Fatalf("after Retry-After: %d", r.status)
	}
	// 1,500 per hour.
	e2 := newEnv(t, nil)
	tok2 := e2.publicToken()
	for i := 0; i < 1500; i++ {
		if r := e2.public("/api/libraryfiles", tok2); r.status != 200 {
			t.Fatalf("call %d: %d", i+1, r.status)
		}
		e2.wall.Add(1200 * time.Millisecond) // 50 per minute
	}
	r = e2.public("/api/libraryfiles", tok2)
	if r.status != 429 {
		t.Fatalf("1,501st call within the hour: %d", r.status)
	}
	if ra, _ := strconv.Atoi(r.header.Get("Retry-After")); ra < 60 {
		t.Fatalf("hourly limit Retry-After %d, want the wait for the oldest call to leave the hour", ra)
	}
}

func TestLibraryFiles(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Now = newClock(testStart).Now })
	tok := e.publicToken()
	var p struct {
		Context string `json:"@odata.context"`
		Value   []map[string]any
	}
	e.public("/api/libraryfiles", tok).json(t, &p)
	if p.Context != "https://api.security.microsoft.com/api/$metadata#LibraryFiles" || len(p.Value) == 0 {
		t.Fatalf("library: %+v", p)
	}
	for _, f := range p.Value {
		if _, has := f["parametersDescription"]; has != (f["hasParameters"] == true) {
			t.Fatalf("parametersDescription present only when set: %v", f)
		}
	}
	if r := e.public("/api/libraryfiles?$filter=fileName eq 'x'", tok); r.status != 400 {
		t.Fatalf("$filter on libraryfiles: %d", r.status)
	}
}
