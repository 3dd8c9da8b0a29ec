package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

// ---- helpers: read the data sets through the emulator's routes ----

func newScenarioEnv(t *testing.T, scenario string, mod func(*Options)) *env {
	return newEnv(t, func(o *Options) {
		o.Scenario = scenario
		o.AuditWebhookPoll = -1
		if mod != nil {
			mod(o)
		}
	})
}

type acRow struct {
	ActionID          string         `json:"ActionId"`
	ActionType        string         `json:"ActionType"`
	ActionStatus      string         `json:"ActionStatus"`
	ActionSource      string         `json:"ActionSource"`
	DecidedBy         string         `json:"DecidedBy"`
	UserPrincipalName *string        `json:"UserPrincipalName"`
	AdditionalFields  map[string]any `json:"AdditionalFields"`
	MachineID         string         `json:"MachineId"`
	ComputerName      string         `json:"ComputerName"`
	EventTime         string         `json:"EventTime"`
}

func (r acRow) raw() string { s, _ := r.AdditionalFields["raw_command"].(string); return s }

// acHistory pages the Action Center history of [from, now].
func (e *env) acHistory(from time.Time) []acRow {
	e.t.Helper()
	var out []acRow
	for page := 1; ; page++ {
		r := e.portal(http.MethodGet, "/apiproxy/mtp/actionCenter/actioncenterui/history-actions/?type=history&useMtpApi=true&sortByField=eventTime&sortOrder=Ascending&fromDate="+
			url.QueryEscape(from.Format(time.RFC3339))+"&pageSize=1000&pageIndex="+fmt.Sprint(page), nil)
		if r.status != http.StatusOK {
			e.t.Fatalf("action center: %d %s", r.status, truncate(r.body))
		}
		var v struct {
			Count   int
			Results []acRow
		}
		r.json(e.t, &v)
		out = append(out, v.Results...)
		if len(v.Results) == 0 || len(out) >= v.Count {
			return out
		}
	}
}

type maRow struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	Requestor string `json:"requestor"`
	Status    string `json:"status"`
	MachineID string `json:"machineId"`
	Scope     *string
	Commands  []struct {
		Command struct {
			Type string `json:"type"`
		} `json:"command"`
	} `json:"commands"`
	Created string `json:"creationDateTimeUtc"`
}

func (e *env) machineActions(tok, filter string) []maRow {
	e.t.Helper()
	q := "/api/machineactions"
	if filter != "" {
		q += "?$filter=" + url.QueryEscape(filter)
	}
	r := e.public(q, tok)
	if r.status != http.StatusOK {
		e.t.Fatalf("machineactions: %d %s", r.status, truncate(r.body))
	}
	var v struct{ Value []maRow }
	r.json(e.t, &v)
	return v.Value
}

type queryRow struct {
	QueryID       string
	Timestamp     string
	QuerySource   string
	InitiatedBy   string
	ApplicationID *string `json:"ApplicationId"`
	QueryText     string
}

func (e *env) executedQueries(from, to time.Time) []queryRow {
	e.t.Helper()
	body := fmt.Sprintf(`{"startTime":%q,"endTime":%q}`, from.Format(time.RFC3339), to.Format(time.RFC3339))
	r := e.portal(http.MethodPost, "/apiproxy/hunting/huntingService/reports", []byte(body))
	if r.status != http.StatusOK {
		e.t.Fatalf("reports: %d %s", r.status, truncate(r.body))
	}
	var v struct{ Results []queryRow }
	r.json(e.t, &v)
	return v.Results
}

func (e *env) portalJSON(path string, v any) {
	e.t.Helper()
	r := e.portal(http.MethodGet, path, nil)
	if r.status != http.StatusOK {
		e.t.Fatalf("%s: %d %s", path, r.status, truncate(r.body))
	}
	r.json(e.t, v)
}

type libFile struct {
	FileName        string `json:"fileName"`
	Sha256          string `json:"sha256"`
	CreationTime    string `json:"creationTime"`
	LastUpdatedTime string `json:"lastUpdatedTime"`
	CreatedBy       string `json:"createdBy"`
}

func (e *env) library(tok string) map[string]libFile {
	e.t.Helper()
	r := e.public("/api/libraryfiles", tok)
	if r.status != http.StatusOK {
		e.t.Fatalf("libraryfiles: %d %s", r.status, truncate(r.body))
	}
	var v struct{ Value []libFile }
	r.json(e.t, &v)
	out := map[string]libFile{}
	for _, f := range v.Value {
		out[f.FileName] = f
	}
	return out
}

type ruleRow struct {
	ID             int64 `json:"Id"`
	Name           string
	IsEnabled      bool
	IsAutoDisabled bool
	CreatedBy      string
	LastUpdatedBy  string
	LastUpdateTime string
	QueryText      string
}

func (e *env) rules() map[int64]ruleRow {
	var rs []ruleRow
	e.portalJSON("/apiproxy/mtp/huntingService/rules/unified?pageIndex=1&pageSize=10000&sortOrder=Ascending&isUnifiedRulesListEnabled=true", &rs)
	out := map[int64]ruleRow{}
	for _, r := range rs {
		out[r.ID] = r
	}
	return out
}

type exportSetting struct {
	ID                 string  `json:"id"`
	DesignatedTenantID *string `json:"designatedTenantId"`
	EventHubProperties map[string]any
	Logs               []struct {
		Category string `json:"category"`
		Enabled  bool   `json:"enabled"`
	} `json:"logs"`
}

func (e *env) dataExport() []exportSetting {
	var v struct{ Value []exportSetting }
	e.portalJSON("/apiproxy/mtp/wdatpApi/dataexportsettings", &v)
	return v.Value
}

type suppressionRow struct {
	ID              int64 `json:"Id"`
	CreatedBy       string
	IsEnabled       bool
	ScopeConditions string
	RuleConditions  string
	AlertTitle      string
	CreationTime    string
}

type groupRow struct {
	MachineGroupID int `json:"MachineGroupId"`
	Name           string
	LastUpdated    string
	MachineCount   int
	GroupRules     []struct{ PropertyValue string }
}

func (e *env) groups() map[int]groupRow {
	var v struct{ Items []groupRow }
	e.portalJSON("/apiproxy/mtp/rbacManagementApi/rbac/machine_groups?addAadGroupNames=true&addMachineGroupCount=true", &v)
	out := map[int]groupRow{}
	for _, g := range v.Items {
		out[g.MachineGroupID] = g
	}
	return out
}

type appRow struct {
	ID                 string `json:"Id"`
	DisplayName        string
	LatestConnectivity string
	MonthlyStatistics  []int
}

func (e *env) connectedApps() map[string]appRow {
	var v []appRow
	e.portalJSON("/apiproxy/mtp/responseApiPortal/apps/all", &v)
	out := map[string]appRow{}
	for _, a := range v {
		out[a.ID] = a
	}
	return out
}

func (e *env) schemaTables() map[string][]string {
	var v struct {
		Tables []struct {
			Name    string
			Columns []struct{ Name string }
		}
	}
	e.portalJSON("/apiproxy/mtp/huntingService/schema", &v)
	out := map[string][]string{}
	for _, t := range v.Tables {
		for _, c := range t.Columns {
			out[t.Name] = append(out[t.Name], c.Name)
		}
	}
	return out
}

// auditRecords lists and fetches every record of content type ct published
// in [from, now) through the Management Activity API.
func (e *env) auditRecordsHTTP(tok, ct string, from time.Time) []map[string]any {
	e.t.Helper()
	if r := e.startSub(tok, ct, nil); r.status != http.StatusOK && afCode(e.t, r) != "AF20024" {
		e.t.Fatalf("start %s: %d %s", ct, r.status, r.body)
	}
	now := e.data.Now()
	var recs []map[string]any
	for s := from; s.Before(now); s = s.Add(24 * time.Hour) {
		end := minTime(s.Add(24*time.Hour), now.Add(time.Minute)) // contentCreated < endTime
		q := "&startTime=" + s.Format("2006-01-02T15:04:05") + "&endTime=" + end.Format("2006-01-02T15:04:05")
		items, _ := e.listAll(e.t, "content", ct, q, tok)
		for _, it := range items {
			var rs []map[string]any
			r := e.followURI(e.t, it.ContentURI, tok)
			if r.status != http.StatusOK {
				e.t.Fatalf("blob %s: %d %s", it.ContentID, r.status, truncate(r.body))
			}
			r.json(e.t, &rs)
			recs = append(recs, rs...)
		}
	}
	return recs
}

func stepByID(t *testing.T, steps []AbuseStep, id string) AbuseStep {
	t.Helper()
	for _, s := range steps {
		if s.ID == id {
			return s
		}
	}
	t.Fatalf("no step %q in %v", id, steps)
	return AbuseStep{}
}

// ---- tests ----

// TestAbuseStepsVisibleAtTheirTime moves the data clock to just before and
// to each step's time and looks for the step through the HTTP routes the
// harvester reads.
func TestAbuseStepsVisibleAtTheirTime(t *testing.T) {
	e := newScenarioEnv(t, ScenarioAbuse, nil)
	steps := e.ten.AbuseSteps()
	user, app := e.ten.AbuseActors()
	if user != "attacker.admin@"+e.ten.w.domain || !isGUID(app) {
		t.Fatalf("actors %q %q", user, app)
	}
	abuseAt := testStart.Add(DefaultAbuseDelay)
	if steps[0].At != abuseAt || steps[0].ID != "library-upload" {
		t.Fatalf("first step %+v, want library-upload at %s", steps[0], abuseAt)
	}
	pub := e.publicToken()
	e.data.set(testStart)
	origSHA := e.library(pub)["collect-triage.ps1"].Sha256
	origQuery := e.rules()[127].QueryText
	lrRows := func(prefix string) bool {
		for _, r := range e.acHistory(abuseAt.Add(-time.Hour)) {
			if r.UserPrincipalName != nil && *r.UserPrincipalName == user && r.DecidedBy == user && strings.HasPrefix(r.raw(), prefix) {
				return true
			}
		}
		return false
	}
	actions := func(typ string) bool {
		return len(e.machineActions(pub, "requestor eq '"+app+"' and type eq '"+typ+"'")) > 0
	}
	queries := func(match func(queryRow) bool) bool {
		for _, q := range e.executedQueries(abuseAt.Add(-time.Hour), abuseAt.Add(6*time.Hour)) {
			if match(q) {
				return true
			}
		}
		return false
	}
	var audit func(op string) bool
	probes := map[string]func() bool{
		"library-upload": func() bool {
			f, ok := e.library(pub)[abuseScript]
			return ok && f.CreatedBy == user && f.CreationTime == fmt7Z(abuseAt) && f.LastUpdatedTime == fmt7Z(abuseAt)
		},
		"library-replace": func() bool {
			f := e.library(pub)["collect-triage.ps1"]
			return f.Sha256 != origSHA && f.LastUpdatedTime == fmt7Z(abuseAt.Add(5*time.Minute))
		},
		"lr-run-many": func() bool { return lrRows("run " + abuseScript) },
		"getfile":     func() bool { return lrRows("getfile") },
		"putfile":     func() bool { return lrRows("putfile " + abuseTool) },
		"memdump":     func() bool { return lrRows("run memdump.ps1") },
		"isolate":     func() bool { return actions("Isolate") },
		"lr-api":      func() bool { return actions("LiveResponse") },
		"release":     func() bool { return actions("Unisolate") },
		"hunting-sensitive": func() bool {
			return queries(func(q queryRow) bool { return q.QuerySource == "Portal" && q.InitiatedBy == user })
		},
		"hunting-spike": func() bool {
			return queries(func(q queryRow) bool {
				return q.QuerySource == "Api" && q.ApplicationID != nil && *q.ApplicationID == app
			})
		},
		"rule-disabled": func() bool {
			r := e.rules()[120]
			return !r.IsEnabled && r.LastUpdatedBy == user && r.LastUpdateTime == fmtMsZ(abuseAt.Add(time.Hour))
		},
		"rule-query-changed": func() bool {
			r := e.rules()[127]
			return r.IsEnabled && r.LastUpdatedBy == user && r.QueryText != origQuery && strings.HasPrefix(r.QueryText, origQuery)
		},
		"tamper-off": func() bool {
			var v map[string]any
			e.portalJSON("/apiproxy/mtp/settings/GetAdvancedFeaturesSetting", &v)
			return v["EnableWdavAntiTampering"] == false
		},
		"unsigned-scripts": func() bool {
			var v map[string]any
			e.portalJSON("/apiproxy/mtp/liveResponseApi/get_properties?useV2Api=true&useV3Api=true", &v)
			return v["AutomatedIrUnsignedScripts"] == true
		},
		"export-added": func() bool {
			for _, s := range e.dataExport() {
				if s.DesignatedTenantID != nil && *s.DesignatedTenantID != e.ten.TenantID() && s.EventHubProperties != nil {
					return true
				}
			}
			return false
		},
		"export-categories-removed": func() bool {
			for _, l := range e.dataExport()[0].Logs {
				if !l.Enabled {
					return true
				}
			}
			return false
		},
		"suppression-broad": func() bool {
			var rs []suppressionRow
			e.portalJSON("/apiproxy/mtp/suppressionRulesService/suppressionRules", &rs)
			for _, r := range rs {
				if r.CreatedBy == user && r.IsEnabled && r.ScopeConditions == "[[]]" {
					return true
				}
			}
			return false
		},
		"group-rules-changed": func() bool {
			g := e.groups()[2]
			return g.GroupRules[0].PropertyValue == abuseServersPrefix && g.LastUpdated == fmt7Z(abuseAt.Add(100*time.Minute))
		},
		"new-app": func() bool { _, ok := e.connectedApps()[app]; return ok },
		"schema-new-table": func() bool {
			ts := e.schemaTables()
			_, ok := ts["CloudProcessEvents"]
			return ok && contains(strings.Join(ts["DeviceProcessEvents"], ","), "ProcessRemoteSessionIP")
		},
		"app-registered": func() bool { return audit("Add application.") },
	}
	tok := e.auditToken()
	audit = func(op string) bool {
		for _, r := range e.auditRecordsHTTP(tok, AuditContentAAD, testStart) {
			if r["Operation"] == op && r["UserId"] == user && r["ObjectId"] == app {
				return true
			}
		}
		return false
	}
	seen := map[string]bool{}
	for _, s := range steps {
		seen[s.ID] = true
		p, ok := probes[s.ID]
		if !ok {
			t.Errorf("step %s has no probe", s.ID)
			continue
		}
		if s.At.Before(abuseAt) || s.At.After(abuseAt.Add(2*time.Hour)) {
			t.Errorf("step %s at %s: outside AbuseAt..+2h", s.ID, s.At)
		}
		if s.Dataset == "" || s.Description == "" || (s.Actor != user && s.Actor != app && s.Actor != "Microsoft") {
			t.Errorf("step %+v: dataset, description and actor wanted", s)
		}
		at := s.At
		if s.Dataset == "auditlog" {
			at = slotPublished(auditSlot(s.At)) // the audit log publishes later
		}
		e.data.set(at.Add(-time.Second))
		if p() {
			t.Errorf("step %s visible 1s before %s", s.ID, at)
		}
		e.data.set(at)
		if !p() {
			t.Errorf("step %s not visible at %s", s.ID, at)
		}
	}
	for id := range probes {
		if !seen[id] {
			t.Errorf("no step %s", id)
		}
	}
}

// TestAbuseScenarioContent checks what each step looks like once it is
// over, through the same routes.
func TestAbuseScenarioContent(t *testing.T) {
	e := newScenarioEnv(t, ScenarioAbuse, nil)
	user, app := e.ten.AbuseActors()
	abuseAt := testStart.Add(DefaultAbuseDelay)
	regular := map[string]bool{}
	for _, o := range e.ten.RegularOperators() {
		regular[o] = true
	}
	if regular[user] || regular[app] || regular[e.ten.AbuseAppName()] {
		t.Fatal("the attacker is a regular operator")
	}

	// Live Response in Action Center.
	cmds := map[string]map[string]bool{} // command kind → devices
	for _, r := range e.acHistory(testStart.Add(-24 * time.Hour)) {
		upn := ""
		if r.UserPrincipalName != nil {
			upn = *r.UserPrincipalName
		}
		et, _ := time.Parse(layoutAC, r.EventTime)
		if (upn == user || r.DecidedBy == user) && et.Before(abuseAt) {
			t.Fatalf("attacker row before AbuseAt: %+v", r)
		}
		if upn != user {
			continue
		}
		if r.ActionType != "LiveResponseCommand" || r.ActionSource != "LiveResponse" || r.DecidedBy != user {
			t.Fatalf("attacker row %+v", r)
		}
		kind, _, _ := strings.Cut(r.raw(), " ")
		if strings.HasPrefix(r.raw(), "run ") {
			kind = r.raw()
		}
		if cmds[kind] == nil {
			cmds[kind] = map[string]bool{}
		}
		cmds[kind][r.MachineID] = true
	}
	for kind, want := range map[string]int{"run " + abuseScript: 8, "processes": 8, "getfile": 3, "putfile": 2, "run memdump.ps1 -ProcessName lsass": 1} {
		if n := len(cmds[kind]); n < want {
			t.Errorf("%s on %d devices, want at least %d (%v)", kind, n, want, cmds)
		}
	}
	for id := range cmds["run memdump.ps1 -ProcessName lsass"] {
		if m, _ := e.ten.w.machine(id); !m.Server {
			t.Errorf("memory dump on %s, not a server", m.Name)
		}
	}

	// Machine actions of the new app.
	pub := e.publicToken()
	acts := e.machineActions(pub, "requestor eq '"+app+"'")
	types := map[string]int{}
	for _, a := range acts {
		types[a.Type]++
		if a.Status != stSucceeded {
			t.Errorf("action %+v not succeeded", a)
		}
		if a.Type == "LiveResponse" {
			if len(a.Commands) != 2 || a.Commands[0].Command.Type != "RunScript" || a.Commands[1].Command.Type != "GetFile" {
				t.Errorf("LR action commands %+v", a.Commands)
			}
		}
	}
	if types["Isolate"] != 2 || types["Unisolate"] != 1 || types["LiveResponse"] != 1 {
		t.Errorf("app actions %v", types)
	}

	// Hunting: sensitive portal queries, a spike of API queries.
	qs := e.executedQueries(testStart.Add(-24*time.Hour), testStart.Add(12*time.Hour))
	var text strings.Builder
	perHour := map[int64]int{}
	for _, q := range qs {
		ts, _ := time.Parse(time.RFC3339Nano, q.Timestamp)
		isAttacker := q.InitiatedBy == user || (q.ApplicationID != nil && *q.ApplicationID == app)
		if isAttacker {
			if ts.Before(abuseAt) {
				t.Fatalf("attacker query before AbuseAt: %+v", q)
			}
			text.WriteString(q.QueryText + "\n")
		}
		if q.ApplicationID != nil && *q.ApplicationID == app {
			if q.InitiatedBy != e.ten.AbuseAppName() || q.QuerySource != "Api" {
				t.Errorf("API query %+v", q)
			}
			perHour[hourOf(ts)]++
		}
		if !isAttacker && q.QuerySource != "CustomDetection" && isSensitiveQuery(q.QueryText) {
			t.Errorf("routine query with a sensitive word: %+v", q)
		}
	}
	for _, w := range []string{"password", "lsass", "EmailEvents", "EmailAttachmentInfo", "AlertInfo", "AlertEvidence", "Tamper", "Custom detection"} {
		if !strings.Contains(text.String(), w) {
			t.Errorf("no attacker query mentions %s", w)
		}
	}
	if n := perHour[hourOf(abuseAt.Add(time.Hour))]; n < 60 {
		t.Errorf("%d API queries of the new app in the hour after AbuseAt+1h, want ≥ 60 (%v)", n, perHour)
	}

	// Snapshots after the attack.
	rs := e.rules()
	if r := rs[120]; r.IsEnabled || r.LastUpdatedBy != user || r.IsAutoDisabled {
		t.Errorf("rule 120 %+v", r)
	}
	if r := rs[127]; !contains(r.QueryText, "svc-healthcheck") || r.LastUpdateTime != fmtMsZ(abuseAt.Add(61*time.Minute)) {
		t.Errorf("rule 127 %+v", r)
	}
	for id, r := range rs {
		if id != 120 && id != 127 && (r.LastUpdatedBy != r.CreatedBy || !regular[r.CreatedBy]) {
			t.Errorf("rule %d changed: %+v", id, r)
		}
	}
	ex := e.dataExport()
	if len(ex) != 2 || ex[1].DesignatedTenantID == nil || *ex[1].DesignatedTenantID == e.ten.TenantID() {
		t.Errorf("export settings %+v", ex)
	}
	for _, l := range ex[0].Logs {
		if l.Category == "AdvancedHunting-DeviceFileEvents" {
			t.Errorf("DeviceFileEvents still exported: %+v", ex[0].Logs)
		}
	}
	// Servers leave the protected group, in the groups and the device list.
	g := e.groups()
	var ms []struct {
		ComputerDNSName string `json:"ComputerDnsName"`
		RbacGroupID     int    `json:"RbacGroupId"`
	}
	e.portalJSON("/apiproxy/mtp/ndr/machines?pageSize=1000&pageIndex=1", &ms)
	inGroup := map[int]int{}
	for _, m := range ms {
		inGroup[m.RbacGroupID]++
		if strings.HasPrefix(m.ComputerDNSName, "srv-dc") && m.RbacGroupID != 4 {
			t.Errorf("%s still in group %d", m.ComputerDNSName, m.RbacGroupID)
		}
	}
	if g[2].MachineCount != inGroup[2] || g[4].MachineCount != inGroup[4] || g[4].MachineCount == 0 {
		t.Errorf("group counts %+v, device list %v", g, inGroup)
	}
	a, ok := e.connectedApps()[app]
	sum := 0
	for _, n := range a.MonthlyStatistics {
		sum += n
	}
	if !ok || a.DisplayName != e.ten.AbuseAppName() || sum != 124 {
		t.Errorf("connected app %+v (calls %d, want 124)", a, sum)
	}

	// The unified audit log names the attacker.
	tok := e.auditToken()
	ops := map[string]map[string]bool{}
	for _, r := range e.auditRecordsHTTP(tok, AuditContentGeneral, testStart) {
		uid, _ := r["UserId"].(string)
		if uid != user && uid != app {
			continue
		}
		ct, _ := time.Parse("2006-01-02T15:04:05", r["CreationTime"].(string))
		if ct.Before(abuseAt) {
			t.Fatalf("attacker audit record before AbuseAt: %v", r)
		}
		op := r["Operation"].(string)
		if ops[op] == nil {
			ops[op] = map[string]bool{}
		}
		key, _ := r["DeviceId"].(string)
		switch op {
		case "ChangeCustomDetectionRuleStatus", "EditCustomDetection":
			if r["RecordType"] != float64(113) || r["RuleId"] == nil {
				t.Errorf("custom detection record %v", r)
			}
			key = r["RuleId"].(string)
		case "SetAdvancedFeatures":
			if r["RecordType"] != float64(111) || r["Workload"] != DefenderWorkload {
				t.Errorf("settings record %v", r)
			}
			key = r["SettingName"].(string)
		default:
			if r["RecordType"] != float64(110) || r["Workload"] != DefenderWorkload || key == "" {
				t.Errorf("response record %v", r)
			}
		}
		ops[op][uid+"|"+key] = true
	}
	for op, want := range map[string]int{"RunLiveResponseSession": 8, "LiveResponseGetFile": 4, "IsolateDevice": 2, "ReleaseFromIsolation": 1,
		"RunLiveResponseApi": 1, "ChangeCustomDetectionRuleStatus": 1, "EditCustomDetection": 1, "SetAdvancedFeatures": 2} {
		if n := len(ops[op]); n < want {
			t.Errorf("%d %s records of the attacker, want ≥ %d", n, op, want)
		}
	}
}

// TestQuietScenarioHasNoAbuse: a normal day shows none of the attack and
// none of the default scenario's scheduled changes; routine work is done
// by the regular operators only.
func TestQuietScenarioHasNoAbuse(t *testing.T) {
	e := newScenarioEnv(t, ScenarioQuiet, nil)
	if e.ten.AbuseSteps() != nil || len(e.ten.Changes()) != 0 {
		t.Fatalf("steps %v, changes %v", e.ten.AbuseSteps(), e.ten.Changes())
	}
	if u, a := e.ten.AbuseActors(); u != "" || a != "" {
		t.Fatalf("actors %q %q", u, a)
	}
	regular := map[string]bool{}
	for _, o := range e.ten.RegularOperators() {
		regular[o] = true
	}
	from := testStart.Add(-24 * time.Hour)
	lrDevices := map[string]map[string]bool{}
	for _, r := range e.acHistory(from) {
		if r.DecidedBy != "Automation" && !regular[r.DecidedBy] {
			t.Errorf("Action Center row by %q: %+v", r.DecidedBy, r)
		}
		if r.UserPrincipalName != nil && !regular[*r.UserPrincipalName] {
			t.Errorf("Action Center row of %q", *r.UserPrincipalName)
		}
		raw := strings.ToLower(r.raw())
		for _, bad := range []string{"memdump", "lsass", `config\sam`, "login data", "putfile tools.exe", abuseScript} {
			if strings.Contains(raw, bad) {
				t.Errorf("Live Response command %q on a quiet day", r.raw())
			}
		}
		if strings.HasPrefix(raw, "run ") {
			if lrDevices[r.DecidedBy] == nil {
				lrDevices[r.DecidedBy] = map[string]bool{}
			}
			lrDevices[r.DecidedBy][r.MachineID] = true
		}
	}
	pub := e.publicToken()
	for _, a := range e.machineActions(pub, "creationDateTimeUtc ge "+from.Format(time.RFC3339)) {
		if !regular[a.Requestor] {
			t.Errorf("machine action by %q", a.Requestor)
		}
	}
	perAppHour := map[string]int{}
	for _, q := range e.executedQueries(from, testStart.Add(12*time.Hour)) {
		if isSensitiveQuery(q.QueryText) {
			t.Errorf("sensitive routine query %+v", q)
		}
		if !regular[q.InitiatedBy] {
			t.Errorf("query by %q", q.InitiatedBy)
		}
		if q.ApplicationID != nil {
			ts, _ := time.Parse(time.RFC3339Nano, q.Timestamp)
			perAppHour[fmt.Sprint(*q.ApplicationID, hourOf(ts))]++
		}
	}
	for k, n := range perAppHour {
		if n >= 20 {
			t.Errorf("%d API queries in one hour (%s)", n, k)
		}
	}

	// Snapshots: nothing changes all day.
	var af, lr map[string]any
	e.portalJSON("/apiproxy/mtp/settings/GetAdvancedFeaturesSetting", &af)
	e.portalJSON("/apiproxy/mtp/liveResponseApi/get_properties", &lr)
	if af["EnableWdavAntiTampering"] != true || lr["AutomatedIrUnsignedScripts"] != false {
		t.Errorf("tamper %v, unsigned %v", af["EnableWdavAntiTampering"], lr["AutomatedIrUnsignedScripts"])
	}
	for id, r := range e.rules() {
		if r.IsAutoDisabled || r.LastUpdatedBy != r.CreatedBy || !regular[r.CreatedBy] || id == 200 {
			t.Errorf("rule %d %+v", id, r)
		}
	}
	var sr []suppressionRow
	e.portalJSON("/apiproxy/mtp/suppressionRulesService/suppressionRules", &sr)
	if len(sr) != 3 {
		t.Errorf("%d suppression rules, want the 3 standing ones", len(sr))
	}
	if ex := e.dataExport(); len(ex) != 1 || ex[0].DesignatedTenantID != nil {
		t.Errorf("export settings %+v", ex)
	} else {
		for _, l := range ex[0].Logs {
			if !l.Enabled {
				t.Errorf("export category %s disabled", l.Category)
			}
		}
	}
	lib := e.library(pub)
	if len(lib) != 4 {
		t.Errorf("library %v", lib)
	}
	for _, f := range lib {
		if f.LastUpdatedTime != f.CreationTime {
			t.Errorf("library file %+v changed", f)
		}
	}
	apps := e.connectedApps()
	if len(apps) != 3 {
		t.Errorf("connected apps %v", apps)
	}
	for id := range apps {
		if !regular[id] {
			t.Errorf("connected app %s is not a regular operator", id)
		}
	}
	var alerts map[string]any
	e.portalJSON("/apiproxy/mtp/alertsApiService/workloads/disabled?includeDetails=true", &alerts)
	if _, ok := alerts["Mdc"]; ok {
		t.Error("alert workload Mdc disabled on a quiet day")
	}
	g := e.groups()
	for _, x := range g {
		if x.LastUpdated != g[1].LastUpdated {
			t.Errorf("group %d updated %s", x.MachineGroupID, x.LastUpdated)
		}
	}
	if _, ok := e.schemaTables()["CloudProcessEvents"]; ok {
		t.Error("schema changed on a quiet day")
	}

	// The audit log: regular users only.
	tok := e.auditToken()
	for _, ct := range []string{AuditContentGeneral, AuditContentAAD} {
		for _, r := range e.auditRecordsHTTP(tok, ct, testStart) {
			if uid, _ := r["UserId"].(string); !regular[uid] {
				t.Errorf("%s record by %q: %v", ct, uid, r["Operation"])
			}
			if rt := r["RecordType"]; rt == float64(111) || rt == float64(113) {
				t.Errorf("settings or rule change on a quiet day: %v", r)
			}
			if s := strings.ToLower(fmt.Sprint(r["CommandsString"], r["FileName"])); strings.Contains(s, "dump") || strings.Contains(s, "dmp") {
				t.Errorf("memory dump on a quiet day: %v", r)
			}
		}
	}
}

// TestAbuseBaselineIsQuiet: before AbuseAt the abuse tenant serves what
// the quiet tenant serves, byte for byte.
func TestAbuseBaselineIsQuiet(t *testing.T) {
	abuseAt := testStart.Add(DefaultAbuseDelay)
	q := newScenarioEnv(t, ScenarioQuiet, nil)
	a := newScenarioEnv(t, ScenarioAbuse, nil)
	for _, ds := range []string{"actioncenter", "machineactions", "executedqueries"} {
		x, _ := q.ten.Events(ds, testStart.Add(-48*time.Hour), abuseAt)
		y, _ := a.ten.Events(ds, testStart.Add(-48*time.Hour), abuseAt)
		if len(x) == 0 || !reflect.DeepEqual(x, y) {
			t.Errorf("%s before AbuseAt differs (%d vs %d records)", ds, len(x), len(y))
		}
	}
	x, _ := q.ten.Events("actioncenter", abuseAt, testStart.Add(12*time.Hour))
	y, _ := a.ten.Events("actioncenter", abuseAt, testStart.Add(12*time.Hour))
	if len(y) <= len(x) {
		t.Errorf("abuse adds no Action Center rows after AbuseAt (%d vs %d)", len(y), len(x))
	}
	q.data.set(abuseAt.Add(-time.Second))
	a.data.set(abuseAt.Add(-time.Second))
	for _, p := range []string{
		"/apiproxy/mtp/huntingService/rules/unified?pageSize=10000",
		"/apiproxy/mtp/settings/GetAdvancedFeaturesSetting",
		"/apiproxy/mtp/liveResponseApi/get_properties",
		"/apiproxy/mtp/suppressionRulesService/suppressionRules",
		"/apiproxy/mtp/rbacManagementApi/rbac/machine_groups?addMachineGroupCount=true",
		"/apiproxy/mtp/responseApiPortal/apps/all",
		"/apiproxy/mtp/wdatpApi/dataexportsettings",
		"/apiproxy/mtp/liveResponseApi/library/get_files",
		"/apiproxy/mtp/huntingService/schema",
		"/apiproxy/mtp/ndr/machines?pageSize=1000",
	} {
		if x, y := q.portal(http.MethodGet, p, nil), a.portal(http.MethodGet, p, nil); x.status != 200 || !bytes.Equal(x.body, y.body) {
			t.Errorf("%s before AbuseAt differs", p)
		}
	}
	for _, ct := range []string{AuditContentGeneral, AuditContentAAD} {
		bx, _ := q.ten.AuditBlobs(ct, testStart.Add(-24*time.Hour), abuseAt)
		by, _ := a.ten.AuditBlobs(ct, testStart.Add(-24*time.Hour), abuseAt)
		if !reflect.DeepEqual(bx, by) {
			t.Errorf("%s blobs before AbuseAt differ", ct)
		}
	}
}

// TestAbuseDeterministic: the same seed gives the same attack and the
// same answers; another seed another app.
func TestAbuseDeterministic(t *testing.T) {
	answers := func(e *env) []byte {
		var b bytes.Buffer
		for _, p := range []string{
			"/apiproxy/mtp/actionCenter/actioncenterui/history-actions/?fromDate=2026-03-10T00:00:00Z&pageSize=1000",
			"/apiproxy/mtp/huntingService/rules/unified?pageSize=10000",
			"/apiproxy/mtp/suppressionRulesService/suppressionRules",
			"/apiproxy/mtp/rbacManagementApi/rbac/machine_groups?addMachineGroupCount=true",
			"/apiproxy/mtp/responseApiPortal/apps/all",
			"/apiproxy/mtp/wdatpApi/dataexportsettings",
			"/apiproxy/mtp/liveResponseApi/library/get_files",
			"/apiproxy/mtp/huntingService/schema",
		} {
			b.Write(e.portal(http.MethodGet, p, nil).body)
		}
		b.Write(e.portal(http.MethodPost, "/apiproxy/hunting/huntingService/reports", []byte(`{"startTime":"2026-03-10T12:00:00Z","endTime":"2026-03-10T18:00:00Z"}`)).body)
		b.Write(e.public("/api/machineactions", e.publicToken()).body)
		blobs, _ := e.ten.AuditBlobs(AuditContentGeneral, testStart, testStart.Add(6*time.Hour))
		for _, bl := range blobs {
			recs, _ := e.ten.AuditRecords(bl.ContentID)
			for _, r := range recs {
				b.Write(r)
			}
		}
		return b.Bytes()
	}
	x, y := newScenarioEnv(t, ScenarioAbuse, nil), newScenarioEnv(t, ScenarioAbuse, nil)
	if !reflect.DeepEqual(x.ten.AbuseSteps(), y.ten.AbuseSteps()) {
		t.Fatal("same seed, different steps")
	}
	if !bytes.Equal(answers(x), answers(y)) {
		t.Fatal("same seed, different answers")
	}
	_, app := x.ten.AbuseActors()
	z := newScenarioEnv(t, ScenarioAbuse, func(o *Options) { o.Seed = 7 })
	if _, app2 := z.ten.AbuseActors(); app2 == app {
		t.Fatal("another seed, the same app id")
	}
	js, err := json.Marshal(x.ten.AbuseSteps())
	if err != nil || !contains(string(js), `"id":"lr-run-many"`) {
		t.Fatalf("steps JSON %s %v", js, err)
	}
}

// TestScenarioOptions: validation, the AbuseAt default and a custom
// AbuseAt in the history.
func TestScenarioOptions(t *testing.T) {
	for _, o := range []Options{
		{Scenario: "noisy"},
		{Scenario: ScenarioQuiet, AbuseAt: testStart},
		{AbuseAt: testStart},
		{Scenario: ScenarioAbuse, Start: testStart, AbuseAt: testStart.Add(-31 * 24 * time.Hour)},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
	ten, err := New(Options{Seed: 3, Start: testStart, Scenario: " Abuse "})
	if err != nil || ten.AbuseSteps()[0].At != testStart.Add(2*time.Hour) {
		t.Fatalf("default AbuseAt: %v", err)
	}
	// The attack can lie in the history: a harvester's first run sees it.
	at := testStart.Add(-6*time.Hour + 1500*time.Millisecond)
	e := newScenarioEnv(t, ScenarioAbuse, func(o *Options) { o.AbuseAt = at })
	steps := e.ten.AbuseSteps()
	if steps[0].At != at.Truncate(time.Second) {
		t.Fatalf("first step at %s", steps[0].At)
	}
	e.data.set(testStart)
	var af map[string]any
	e.portalJSON("/apiproxy/mtp/settings/GetAdvancedFeaturesSetting", &af)
	if af["EnableWdavAntiTampering"] != false {
		t.Error("tamper protection still on after the attack in the history")
	}
	for _, c := range e.ten.Changes() {
		if c.At.Before(steps[0].At) {
			t.Errorf("change %+v before the attack", c)
		}
	}
	// Several tenants: each has its own attacker and app.
	m, err := New(Options{Seed: 3, Start: testStart, Scenario: ScenarioAbuse, Tenants: 2})
	if err != nil {
		t.Fatal(err)
	}
	u0, a0 := m.Tenant(0).AbuseActors()
	u1, a1 := m.Tenant(1).AbuseActors()
	if u0 == u1 || a0 == a1 || !strings.HasSuffix(u1, "@"+m.Tenant(1).w.domain) {
		t.Errorf("tenants share an attacker: %s %s / %s %s", u0, a0, u1, a1)
	}
	// The default scenario keeps its regular operators too.
	d, _ := New(Options{Seed: 3, Start: testStart})
	if ops := d.RegularOperators(); len(ops) != 12+6 || d.AbuseSteps() != nil {
		t.Errorf("default regular operators %v", ops)
	}
}
