package sim

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

type tlPage struct {
	Items                  []json.RawMessage
	Prev, Next             string
	PartialResponseReasons []string
}

type tlItem struct {
	ReportID            int64  `json:"ReportId"`
	ActionTimeIsoString string `json:"ActionTimeIsoString"`
	Machine             struct {
		MachineID string `json:"MachineId"`
	}
}

// walkTimeline follows Prev from the first page, the way the harvester
// does, and returns the items in the order served.
func walkTimeline(t *testing.T, get func(string) resp, prefix, first string, id string) []json.RawMessage {
	t.Helper()
	var items []json.RawMessage
	seenLinks := map[string]bool{}
	link := first
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("Prev chain does not end")
		}
		r := get(prefix + link)
		if r.status != 200 {
			t.Fatalf("page %d (%s): %d %s", pages, link, r.status, truncate(r.body))
		}
		var p tlPage
		r.json(t, &p)
		items = append(items, p.Items...)
		if p.Prev == "" {
			return items
		}
		if !strings.HasPrefix(p.Prev, "/machines/"+id+"/events/?") {
			t.Fatalf("Prev %q is not relative to the timeline base for this machine", p.Prev)
		}
		if seenLinks[p.Prev] {
			t.Fatalf("Prev repeats a cursor: %s", p.Prev)
		}
		seenLinks[p.Prev] = true
		u, _ := url.Parse(p.Prev)
		if u.Query().Get("IsScrollingForward") != "false" || u.Query().Get("ReportIdForScrolling") == "" {
			t.Fatalf("Prev lacks the keyset cursor: %s", p.Prev)
		}
		link = p.Prev
	}
}

// The Prev chain covers the window exactly once, newest first, and equals
// the ground truth.
func TestTimelinePrevChainCoversWindowOnce(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.TimelineEventsPerMachineHour = 40 })
	id := e.ten.MachineIDs()[3]
	from, to := testStart.Add(-3*24*time.Hour), testStart.Add(6*time.Hour)
	for _, size := range []int{1, 7, 200, 1000} {
		first := "/machines/" + id + "/events/?machineId=" + id + "&pageSize=" + itoa(size) +
			"&fromDate=" + url.QueryEscape(fmt7Z(from)) + "&toDate=" + url.QueryEscape(fmt7Z(to))
		if size == 1 {
			// A one-item page walk is slow; use a short window.
			first = strings.Replace(first, url.QueryEscape(fmt7Z(from)), url.QueryEscape(fmt7Z(to.Add(-2*time.Hour))), 1)
		}
		items := walkTimeline(t, func(p string) resp { return e.portal("GET", p, nil) }, "/apiproxy/mtp/mdeTimelineExperience", first, id)
		lo := from
		if size == 1 {
			lo = to.Add(-2 * time.Hour)
		}
		truth, err := e.ten.Events("timeline:"+id, lo, to.Add(100*time.Nanosecond))
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != len(truth) || len(items) == 0 {
			t.Fatalf("pageSize %d: chain served %d items, ground truth %d", size, len(items), len(truth))
		}
		seen := map[int64]bool{}
		var prev tlItem
		for i, raw := range items {
			var it tlItem
			json.Unmarshal(raw, &it)
			if seen[it.ReportID] {
				t.Fatalf("pageSize %d: ReportId %d served twice", size, it.ReportID)
			}
			seen[it.ReportID] = true
			if it.Machine.MachineID != id {
				t.Fatalf("event of machine %s in timeline of %s", it.Machine.MachineID, id)
			}
			if i > 0 && it.ActionTimeIsoString > prev.ActionTimeIsoString {
				t.Fatalf("pageSize %d: not newest first at %d", size, i)
			}
			// Newest first is the reverse of the ground truth's order.
			if string(raw) != string(truth[len(truth)-1-i]) {
				t.Fatalf("pageSize %d: item %d differs from ground truth", size, i)
			}
			prev = it
		}
	}
}

func TestTimelineNextAndFormat(t *testing.T) {
	e := newEnv(t, nil)
	id := e.ten.MachineIDs()[0]
	r := e.portal("GET", "/apiproxy/mtp/mdeTimelineExperience/machines/"+id+"/events/?fromDate=2026-03-10T00:00:00Z&toDate=2026-03-11T00:00:00Z&pageSize=5", nil)
	var p tlPage
	r.json(t, &p)
	u, err := url.Parse(p.Next)
	if err != nil || !strings.HasPrefix(p.Next, "/machines/"+id+"/events/?") {
		t.Fatalf("Next %q", p.Next)
	}
	if u.Query().Get("fromDate") != "2026-03-11T00:00:00.0000000Z" || u.Query().Get("toDate") != "2026-03-12T00:00:00.0000000Z" {
		t.Fatalf("Next should be the following window of the same length: %s", p.Next)
	}
	var it map[string]any
	json.Unmarshal(p.Items[0], &it)
	ts, _ := it["ActionTimeIsoString"].(string)
	if len(ts) != len("2026-03-10T23:59:59.1234567Z") || !strings.HasSuffix(ts, "Z") {
		t.Fatalf("ActionTimeIsoString %q: want 7 digits and Z", ts)
	}
	if _, ok := it["ReportId"].(float64); !ok {
		t.Fatalf("ReportId is not a number: %v", it["ReportId"])
	}
	// Data from the future is never served.
	r = e.portal("GET", "/apiproxy/mtp/mdeTimelineExperience/machines/"+id+"/events/?fromDate=2026-03-11T00:00:00Z&toDate=2026-03-12T00:00:00Z", nil)
	r.json(t, &p)
	if len(p.Items) != 0 || p.Prev != "" {
		t.Fatalf("future window served %d items (Prev %q)", len(p.Items), p.Prev)
	}
}

// Live Response and isolation actions show up in the device timeline.
func TestTimelineHasResponseActions(t *testing.T) {
	e := newEnv(t, nil)
	found := 0
	for _, id := range e.ten.MachineIDs() {
		evs, err := e.ten.Events("timeline:"+id, testStart.Add(-48*time.Hour), testStart.Add(12*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		for _, raw := range evs {
			if strings.Contains(string(raw), `"ActionType":"LiveResponseCommand"`) || strings.Contains(string(raw), `"ActionType":"MachineIsolated"`) {
				found++
			}
		}
	}
	if found == 0 {
		t.Fatal("no response actions in any timeline over 60 hours")
	}
}

func TestLegacyHosts(t *testing.T) {
	e := newEnv(t, nil)
	c := e.ten.Credentials()
	mtp := e.token(c.LegacyClientID, c.LegacyClientSecret, "https://securitycenter.microsoft.com/mtp/.default")
	pub := e.publicToken()
	id := e.ten.MachineIDs()[1]
	tests := []struct {
		name, method, host, path, tok, body string
		status                              int
		contains                            string
	}{
		{"timeline", "GET", "wdatpprd-weu.securitycenter.windows.com", "/api/detection/experience/timeline/machines/" + id + "/events/?machineId=" + id + "&doNotUseCache=false&forceUseCache=false&fromDate=2026-03-10T06%3A00%3A00Z&pageSize=1000", mtp, "", 200, `"Items"`},
		{"advanced features eu", "GET", "wdatpprd-eu.securitycenter.windows.com", "/api/settings/GetAdvancedFeaturesSetting", mtp, "", 200, "EnableWdavAntiTampering"},
		{"suppression", "GET", "wdatpprd-weu.securitycenter.windows.com", "/api/ine/suppressionrulesservice/suppressionRules", mtp, "", 200, "RuleConditions"},
		{"machine groups", "GET", "wdatpprd-weu.securitycenter.windows.com", "/rbac/machine_groups", mtp, "", 200, `"items"`},
		{"connected apps", "GET", "wdatpprd-weu.securitycenter.windows.com", "/api/cloud/portal/apps/all", mtp, "", 200, "MonthlyStatistics"},
		{"action center", "GET", "m365d-autoir-ac-prd-weu.securitycenter.windows.com", "/api/autoir/actioncenterui/history-actions/?useMtpApi=true&pageIndex=1&fromDate=2026-03-10T00%3A00%3A00Z&toDate=2026-03-10T12%3A00%3A00.000Z&sortByField=eventTime&sortOrder=Descending", mtp, "", 200, `"Count"`},
		{"rules", "GET", "m365d-hunting-api-prd-weu.securitycenter.windows.com", "/api/ine/huntingservice/rules?pageIndex=1&pageSize=1000&sortOrder=Descending", mtp, "", 200, `"QueryText"`},
		{"schema", "GET", "m365d-hunting-api-prd-weu.securitycenter.windows.com", "/api/ine/huntingservice/schema", mtp, "", 200, `"Tables"`},
		{"reports", "POST", "m365d-hunting-api-prd-weu.securitycenter.windows.com", "/api/ine/huntingservice/reports", mtp, `{"startTime":"2026-03-10T11:00:00Z","endTime":"2026-03-10T12:00:00.000Z"}`, 200, `"Results"`},
		{"alert service", "GET", "m365duseprd-weu.securitycenter.windows.com", "/api/ine/alertsapiservice/workloads/disabled?includeDetails=true", mtp, "", 200, "{"},
		{"data export", "GET", "api-eu.securitycenter.windows.com", "/api/dataexportsettings", mtp, "", 200, "api-eu.securitycenter.windows.com/api/$metadata#DataExportSettings"},
		{"machine actions mtp token", "GET", "api-eu.securitycenter.windows.com", "/api/machineactions?$filter=creationDateTimeUtc+ge+2026-03-10T00:00:00Z", mtp, "", 200, "#MachineActions"},
		// The original's -machineactions request: url.QueryEscape'd RFC 3339 with nanoseconds.
		{"machine actions by last update (the original's)", "GET", "api-eu.securitycenter.windows.com", "/api/machineactions?$filter=lastUpdateDateTimeUtc+ge+2026-03-10T11%3A00%3A00.123456789%2B01%3A00", mtp, "", 200, "#MachineActions"},
		{"machine actions public token", "GET", "api-eu.securitycenter.windows.com", "/api/machineactions", pub, "", 200, "#MachineActions"},
		{"no token", "GET", "wdatpprd-weu.securitycenter.windows.com", "/rbac/machine_groups", "", "", 401, "denied"},
		{"public token on wdatpprd", "GET", "wdatpprd-weu.securitycenter.windows.com", "/rbac/machine_groups", pub, "", 401, "audience"},
		{"route on the wrong host", "GET", "wdatpprd-weu.securitycenter.windows.com", "/api/autoir/actioncenterui/history-actions/", mtp, "", 404, "No HTTP resource"},
		{"alert service on wdatpprd (DH fallback bug)", "GET", "wdatpprd-neu.securitycenter.windows.com", "/api/ine/alertsapiservice/workloads/disabled", mtp, "", 404, "Message"},
		{"another region's host", "GET", "wdatpprd-eus.securitycenter.windows.com", "/rbac/machine_groups", mtp, "", 401, "not provisioned in this region"},
		{"another region's action center", "GET", "m365d-autoir-ac-prd-neu.securitycenter.windows.com", "/api/autoir/actioncenterui/history-actions/", mtp, "", 401, "not provisioned in this region"},
		{"another geography's api host", "GET", "api-us.securitycenter.windows.com", "/api/dataexportsettings", mtp, "", 401, "not provisioned in this region"},
		{"unknown host", "GET", "evil.securitycenter.windows.net", "/", mtp, "", 421, "not an emulated"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{"Content-Type": "application/json"}
			if tc.tok != "" {
				h["Authorization"] = "Bearer " + tc.tok
			}
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			r := e.do(tc.method, tc.host, tc.path, body, h)
			if r.status != tc.status || !strings.Contains(string(r.body), tc.contains) {
				t.Fatalf("got %d %s, want %d with %q", r.status, truncate(r.body), tc.status, tc.contains)
			}
		})
	}

	// Legacy timeline links are relative to /api/detection/experience/timeline.
	first := "/machines/" + id + "/events/?machineId=" + id + "&fromDate=" + url.QueryEscape(fmt7Z(testStart.Add(-20*time.Hour))) + "&toDate=" + url.QueryEscape(fmt7Z(testStart)) + "&pageSize=50"
	items := walkTimeline(t, func(p string) resp {
		return e.do(http.MethodGet, "wdatpprd-weu.securitycenter.windows.com", p, nil, map[string]string{"Authorization": "Bearer " + mtp})
	}, "/api/detection/experience/timeline", first, id)
	truth, _ := e.ten.Events("timeline:"+id, testStart.Add(-20*time.Hour), testStart.Add(time.Nanosecond))
	if len(items) != len(truth) {
		t.Fatalf("legacy chain served %d items, ground truth %d", len(items), len(truth))
	}
}
