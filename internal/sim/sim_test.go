package sim

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Same Seed and Start give byte-identical responses; another seed does not.
func TestDeterminism(t *testing.T) {
	paths := func(e *env) []string {
		id := e.ten.MachineIDs()[2]
		return []string{
			"/apiproxy/mtp/actionCenter/actioncenterui/history-actions/?pageSize=1000&fromDate=2026-03-01T00:00:00Z&toDate=2026-03-10T18:00:00Z",
			"/apiproxy/mtp/huntingService/rules/unified?pageSize=10000",
			"/apiproxy/mtp/mdeTimelineExperience/machines/" + id + "/events/?fromDate=2026-03-09T00:00:00Z&toDate=2026-03-10T00:00:00Z&pageSize=1000",
			"/apiproxy/mtp/ndr/machines?pageSize=100",
			"/apiproxy/mtp/responseApiPortal/apps/all",
			"/apiproxy/mtp/suppressionRulesService/suppressionRules",
			"/apiproxy/mtp/wdatpApi/dataexportsettings",
			"/apiproxy/mtp/liveResponseApi/library/get_files",
		}
	}
	get := func(seed int64) [][]byte {
		e := newEnv(t, func(o *Options) { o.Seed = seed })
		var out [][]byte
		for _, p := range paths(e) {
			r := e.portal("GET", p, nil)
			if r.status != 200 {
				t.Fatalf("%s: %d", p, r.status)
			}
			out = append(out, r.body)
		}
		r := e.portal("POST", "/apiproxy/hunting/huntingService/reports", []byte(`{"startTime":"2026-03-09T00:00:00Z","endTime":"2026-03-10T00:00:00Z"}`))
		out = append(out, r.body)
		r = e.public("/api/machineactions", e.publicToken())
		out = append(out, r.body)
		return out
	}
	a, b, c := get(7), get(7), get(8)
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			t.Fatalf("response %d differs between two tenants with the same seed", i)
		}
		if bytes.Equal(a[i], c[i]) {
			t.Fatalf("response %d is the same for another seed", i)
		}
	}
}

// Event data only appears when the data clock reaches it; later
// observations extend earlier ones.
func TestDataAppearsAsClockAdvances(t *testing.T) {
	clk := newClock(testStart)
	ten, err := New(Options{Seed: 42, Start: testStart, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	stamp := regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?`)
	from, to := testStart.Add(-time.Hour), testStart.Add(48*time.Hour)
	for _, ds := range []string{"actioncenter", "machineactions", "executedqueries", "timeline:" + ten.MachineIDs()[0]} {
		t.Run(ds, func(t *testing.T) {
			clk.set(testStart)
			before, err := ten.Events(ds, from, to)
			if err != nil {
				t.Fatal(err)
			}
			clk.Add(6 * time.Hour)
			after, err := ten.Events(ds, from, to)
			if err != nil {
				t.Fatal(err)
			}
			if len(after) <= len(before) {
				t.Fatalf("%d records at Start, %d six hours later: nothing new appeared", len(before), len(after))
			}
			for _, raw := range after {
				for _, ts := range stamp.FindAllString(string(raw), -1) {
					if tm, err := parseTimeParam(ts); err == nil && tm.After(clk.Now()) {
						t.Fatalf("a record mentions %s, after the data clock %s: %.300s", ts, clk.Now(), raw)
					}
				}
			}
		})
	}
}

// Snapshot data changes exactly at the documented times.
func TestSnapshotChangesAtKnownTimes(t *testing.T) {
	clk := newClock(testStart)
	ten, err := New(Options{Seed: 42, Start: testStart, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ten: ten}
	e.srv = newTestServer(t, ten)
	get := func(path string) string {
		r := e.portal("GET", path, nil)
		if r.status != 200 {
			t.Fatalf("%s: %d", path, r.status)
		}
		return string(r.body)
	}
	tests := []struct {
		name, path string
		at         time.Duration
		changed    func(before, after string) bool
	}{
		{"tamper protection", "/apiproxy/mtp/settings/GetAdvancedFeaturesSetting", ChangeTamperProtectionOff, func(b, a string) bool {
			return strings.Contains(b, `"EnableWdavAntiTampering":true`) && strings.Contains(a, `"EnableWdavAntiTampering":false`)
		}},
		{"unsigned scripts", "/apiproxy/mtp/liveResponseApi/get_properties?useV2Api=true&useV3Api=true", ChangeUnsignedScriptsOn, func(b, a string) bool {
			return strings.Contains(b, `"AutomatedIrUnsignedScripts":false`) && strings.Contains(a, `"AutomatedIrUnsignedScripts":true`)
		}},
		{"rule auto-disabled", "/apiproxy/mtp/huntingService/rules/unified?pageSize=100", ChangeRuleAutoDisabled, func(b, a string) bool {
			return !strings.Contains(b, `"IsAutoDisabled":true`) && strings.Contains(a, `"IsAutoDisabled":true`)
		}},
		{"suppression rule added", "/apiproxy/mtp/suppressionRulesService/suppressionRules", ChangeSuppressionRuleAdded, func(b, a string) bool {
			return strings.Count(a, `"RuleTitle"`) == strings.Count(b, `"RuleTitle"`)+1
		}},
		{"library script", "/apiproxy/mtp/liveResponseApi/library/get_files?useV3Api=true", ChangeLibraryScriptUploaded, func(b, a string) bool {
			return !strings.Contains(b, "export-browser-creds.ps1") && strings.Contains(a, "export-browser-creds.ps1")
		}},
		{"connected app", "/apiproxy/mtp/responseApiPortal/apps/all", ChangeConnectedAppAdded, func(b, a string) bool {
			return !strings.Contains(b, "IR-Automation-Test") && strings.Contains(a, "IR-Automation-Test")
		}},
		{"alert workload disabled", "/apiproxy/mtp/alertsApiService/workloads/disabled?includeDetails=true", ChangeAlertWorkloadDisabled, func(b, a string) bool {
			return strings.Contains(b, `"Aad"`) && !strings.Contains(b, `"Mdc"`) && strings.Contains(a, `"Mdc"`)
		}},
		{"data export destination", "/apiproxy/mtp/wdatpApi/dataexportsettings", ChangeDataExportAdded, func(b, a string) bool {
			return !strings.Contains(b, "eventHubResourceId") && strings.Contains(a, "eventHubResourceId")
		}},
		{"rule created", "/apiproxy/mtp/huntingService/rules/unified?pageSize=100", ChangeRuleCreated, func(b, a string) bool {
			return strings.Count(a, `"Id":`) == strings.Count(b, `"Id":`)+1
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk.set(testStart.Add(tc.at - time.Nanosecond))
			before := get(tc.path)
			clk.set(testStart.Add(tc.at))
			after := get(tc.path)
			if !tc.changed(before, after) {
				t.Fatalf("no expected change at Start+%s:\nbefore %.300s\nafter  %.300s", tc.at, before, after)
			}
		})
	}
	if n := len(ten.Changes()); n != len(tests) {
		t.Fatalf("Changes lists %d changes, the test covers %d", n, len(tests))
	}
	// LastRunTime advances hourly for an enabled hourly rule.
	var r1, r2 []ruleJSON
	clk.set(testStart.Add(90 * time.Minute))
	json.Unmarshal([]byte(get("/apiproxy/mtp/huntingService/rules/unified")), &r1)
	clk.set(testStart.Add(150 * time.Minute))
	json.Unmarshal([]byte(get("/apiproxy/mtp/huntingService/rules/unified")), &r2)
	if r1[0].Frequency != 1 || r1[0].LastRunTime == nil || r2[0].LastRunTime == nil || *r1[0].LastRunTime == *r2[0].LastRunTime {
		t.Fatalf("hourly rule LastRunTime did not advance: %v → %v", deref(r1[0].LastRunTime), deref(r2[0].LastRunTime))
	}
}

func deref(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

func TestEventsErrorsAndOptions(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.ten.Events("alerts", testStart, testStart.Add(time.Hour)); err == nil || !strings.Contains(err.Error(), "unknown dataset") {
		t.Fatalf("unknown dataset: %v", err)
	}
	if _, err := e.ten.Events("timeline:nope", testStart, testStart.Add(time.Hour)); err == nil || !strings.Contains(err.Error(), "unknown machine") {
		t.Fatalf("unknown machine: %v", err)
	}
	if _, err := e.ten.Events("actioncenter", testStart, testStart.Add(-time.Hour)); err == nil {
		t.Fatal("inverted window accepted")
	}
	bad := []Options{
		{Machines: -1},
		{History: -time.Hour},
		{PublicAPIPageCap: 10001},
		{TimelineEventsPerMachineHour: 100000},
		{TenantID: "not-a-guid"},
		{Faults: Faults{Rates: []FaultRate{{Family: "nope", Kind: Fault429, Rate: 0.1}}}},
		{Faults: Faults{Rates: []FaultRate{{Family: "portal", Kind: Fault429, Rate: 2}}}},
	}
	for i, o := range bad {
		if _, err := New(o); err == nil {
			t.Fatalf("options %d accepted: %+v", i, o)
		}
	}
	ten, err := New(Options{Seed: 1, Machines: 3, TenantID: "AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ten.MachineIDs()) != 3 || ten.TenantID() != "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee" {
		t.Fatalf("machines %d tenant %s", len(ten.MachineIDs()), ten.TenantID())
	}
	for _, id := range ten.MachineIDs() {
		if len(id) != 40 || strings.Trim(id, "0123456789abcdef") != "" {
			t.Fatalf("machine id %q is not 40 hex", id)
		}
	}
	c := ten.Credentials()
	if s := c.String(); strings.Contains(s, c.ClientSecret) || strings.Contains(s, c.SccAuth) {
		t.Fatalf("Credentials.String leaks secrets: %s", s)
	}
}

func TestRequestCount(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.publicToken()
	e.public("/api/libraryfiles", tok)
	e.public("/api/nope", tok)
	e.portal("GET", "/apiproxy/mtp/mdeTimelineExperience/machines/"+e.ten.MachineIDs()[0]+"/events/", nil)
	e.do("GET", "wdatpprd-weu.securitycenter.windows.com", "/rbac/machine_groups", nil, nil)
	want := map[string]int{FamilyEntra: 1, FamilyPublic: 2, FamilyPortal: 1, FamilyTimeline: 1, FamilyLegacy: 1}
	for f, n := range want {
		if got := e.ten.RequestCount(f); got != n {
			t.Fatalf("RequestCount(%s) = %d, want %d", f, got, n)
		}
	}
}

// Memory stays bounded however far back data is read.
func TestBucketCachesAreBounded(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.History = 300 * 24 * time.Hour; o.TimelineEventsPerMachineHour = 1 })
	if _, err := e.ten.Events("actioncenter", testStart.Add(-300*24*time.Hour), testStart); err != nil {
		t.Fatal(err)
	}
	if n := e.ten.opsCache.len(); n > 4096 {
		t.Fatalf("ops cache holds %d buckets", n)
	}
}
