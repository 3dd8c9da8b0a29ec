package sim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Clamps used by these tests: below every page size the harvester asks for
// (Action Center 200, rules 10000, device list 100, timeline 1000, machine
// actions 1000, library files: no $top) and equal to none of them.
var testClamps = map[string]int{
	RouteActionCenter: 37, RouteRules: 3, RouteMachines: 4, RouteTimeline: 53, RouteMachineActions: 41, RouteLibraryFiles: 2,
}

// keyOf names a record by the fields that identify it.
func keyOf(t *testing.T, raw json.RawMessage, fields ...string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("record is not an object: %s", truncate(raw))
	}
	var parts []string
	for _, f := range fields {
		v, ok := m[f]
		if !ok {
			t.Fatalf("record lacks %s: %s", f, truncate(raw))
		}
		parts = append(parts, strings.TrimSpace(string(mustJSON(v))))
	}
	return strings.Join(parts, "|")
}

// walkIndex pages a pageIndex/pageSize route until an empty page and
// returns the keys in order, the sizes of the pages and the last Count.
func walkIndex(t *testing.T, e *env, path string, size int, envelope bool, fields ...string) (keys []string, sizes []int, count int) {
	t.Helper()
	for idx := 1; idx < 10000; idx++ {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		r := e.portal(http.MethodGet, path+sep+"pageIndex="+strconv.Itoa(idx)+"&pageSize="+strconv.Itoa(size), nil)
		if r.status != http.StatusOK {
			t.Fatalf("%s page %d: %d %s", path, idx, r.status, truncate(r.body))
		}
		var rows []json.RawMessage
		if envelope {
			var env struct {
				Count   int
				Results []json.RawMessage
			}
			r.json(t, &env)
			rows, count = env.Results, env.Count
		} else {
			r.json(t, &rows)
		}
		if len(rows) == 0 {
			return keys, sizes, count
		}
		sizes = append(sizes, len(rows))
		for _, raw := range rows {
			keys = append(keys, keyOf(t, raw, fields...))
		}
	}
	t.Fatalf("%s does not end", path)
	return nil, nil, 0
}

// walkOData follows @odata.nextLink (and $skip for full $top pages) and
// returns the keys and page sizes.
func walkOData(t *testing.T, e *env, tok, first string, top int, field string) (keys []string, sizes []int) {
	t.Helper()
	skip := 0
	for requests := 0; requests < 10000; {
		group := 0
		link := first + "&$skip=" + strconv.Itoa(skip)
		if top > 0 {
			link += "&$top=" + strconv.Itoa(top)
		}
		for link != "" {
			requests++
			r := e.public(link, tok)
			if r.status != http.StatusOK {
				t.Fatalf("%s: %d %s", link, r.status, truncate(r.body))
			}
			var p struct {
				Value    []json.RawMessage `json:"value"`
				NextLink string            `json:"@odata.nextLink"`
			}
			r.json(t, &p)
			sizes = append(sizes, len(p.Value))
			group += len(p.Value)
			for _, raw := range p.Value {
				keys = append(keys, keyOf(t, raw, field))
			}
			link = ""
			if p.NextLink != "" {
				u, err := url.Parse(p.NextLink)
				if err != nil || u.Host != "api.security.microsoft.com" {
					t.Fatalf("nextLink %q", p.NextLink)
				}
				link = u.RequestURI()
			}
		}
		if top <= 0 || group < top {
			return keys, sizes
		}
		skip += top
	}
	t.Fatal("OData paging does not end")
	return nil, nil
}

// A clamped route serves at most the clamp per page whatever the client
// asks, keeps the full total in Count, and a client that pages until the
// end (not until a short page) gets exactly what an unclamped service gives.
func TestPageClampServesEverythingInSmallerPages(t *testing.T) {
	plain := newEnv(t, nil)
	clamped := newEnv(t, func(o *Options) { o.PageClamp = testClamps })
	mid := plain.ten.MachineIDs()[1]
	tests := []struct {
		route    string
		path     string
		size     int
		envelope bool
		fields   []string
	}{
		{RouteActionCenter, "/apiproxy/mtp/actionCenter/actioncenterui/history-actions/?fromDate=2026-03-05T00:00:00Z&toDate=2026-03-10T18:00:00Z&sortOrder=Ascending", 200, true, []string{"ActionId", "EventTime", "ActionStatus"}},
		{RouteRules, "/apiproxy/mtp/huntingService/rules/unified?isUnifiedRulesListEnabled=true", 10000, false, []string{"Id"}},
		{RouteMachines, "/apiproxy/mtp/ndr/machines?lookingBackIndays=180", 100, false, []string{"SenseMachineId"}},
	}
	for _, tc := range tests {
		t.Run(tc.route, func(t *testing.T) {
			want, wantSizes, wantCount := walkIndex(t, plain, tc.path, tc.size, tc.envelope, tc.fields...)
			got, sizes, count := walkIndex(t, clamped, tc.path, tc.size, tc.envelope, tc.fields...)
			c := testClamps[tc.route]
			if len(want) <= c {
				t.Fatalf("only %d rows: the test needs more than the clamp %d", len(want), c)
			}
			if wantSizes[0] <= c || sizes[0] != c {
				t.Fatalf("unclamped first page %d rows, clamped %d; want more than %d, and %d", wantSizes[0], sizes[0], c, c)
			}
			for _, n := range sizes {
				if n > c {
					t.Fatalf("a clamped page holds %d rows, more than the clamp %d", n, c)
				}
			}
			if tc.envelope && count != wantCount {
				t.Fatalf("Count %d under the clamp, %d without: a clamp must not change the total", count, wantCount)
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("paging to the end under the clamp gave %d rows, the unclamped page %d (or another order)", len(got), len(want))
			}
		})
	}
	t.Run(RouteTimeline, func(t *testing.T) {
		first := "/machines/" + mid + "/events/?fromDate=2026-03-09T12:00:00.0000000Z&toDate=2026-03-10T12:00:00.0000000Z&pageSize=1000"
		walk := func(e *env) []json.RawMessage {
			return walkTimeline(t, func(p string) resp { return e.portal(http.MethodGet, p, nil) }, "/apiproxy/mtp/mdeTimelineExperience", first, mid)
		}
		want, got := walk(plain), walk(clamped)
		if len(want) <= testClamps[RouteTimeline] || len(got) != len(want) {
			t.Fatalf("clamped walk %d events, unclamped %d (clamp %d)", len(got), len(want), testClamps[RouteTimeline])
		}
		for i := range want {
			if !bytes.Equal(want[i], got[i]) {
				t.Fatalf("event %d differs under the clamp", i)
			}
		}
		var p tlPage
		clamped.portal(http.MethodGet, "/apiproxy/mtp/mdeTimelineExperience"+first, nil).json(t, &p)
		if len(p.Items) != testClamps[RouteTimeline] || p.Prev == "" {
			t.Fatalf("first clamped page: %d items, Prev %q", len(p.Items), p.Prev)
		}
	})
	t.Run(RouteMachineActions, func(t *testing.T) {
		q := "/api/machineactions?$filter=" + url.QueryEscape("creationDateTimeUtc ge 2026-03-01T00:00:00Z")
		for _, top := range []int{0, 1000, 60} {
			want, _ := walkOData(t, plain, plain.publicToken(), q, top, "id")
			got, sizes := walkOData(t, clamped, clamped.publicToken(), q, top, "id")
			if len(want) <= testClamps[RouteMachineActions] || strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("$top=%d: clamped walk %d rows, unclamped %d", top, len(got), len(want))
			}
			if sizes[0] != testClamps[RouteMachineActions] {
				t.Fatalf("$top=%d: first clamped page %d rows", top, sizes[0])
			}
		}
	})
	t.Run(RouteLibraryFiles, func(t *testing.T) {
		q := "/api/libraryfiles?x=1"
		want, _ := walkOData(t, plain, plain.publicToken(), q, 0, "fileName")
		got, sizes := walkOData(t, clamped, clamped.publicToken(), q, 0, "fileName")
		if len(want) <= testClamps[RouteLibraryFiles] || strings.Join(got, ",") != strings.Join(want, ",") || sizes[0] != testClamps[RouteLibraryFiles] {
			t.Fatalf("library files: clamped %v in pages %v, unclamped %v", got, sizes, want)
		}
	})
}

func TestPageClampOptions(t *testing.T) {
	for _, bad := range []map[string]int{{"actioncentre": 5}, {RouteTimeline: 0}, {RouteRules: -1}} {
		if _, err := New(Options{PageClamp: bad}); err == nil || !strings.Contains(err.Error(), "PageClamp") {
			t.Errorf("New accepted PageClamp %v (err %v)", bad, err)
		}
	}
	got, err := ParsePageClamp("all=7, timeline=53")
	if err != nil || len(got) != len(PagedRoutes()) || got[RouteTimeline] != 53 || got[RouteRules] != 7 {
		t.Fatalf("ParsePageClamp: %v %v", got, err)
	}
	if back, err := ParsePageClamp(formatClamps(got)); err != nil || formatClamps(back) != formatClamps(got) {
		t.Fatalf("round trip: %v %v", back, err)
	}
	for spec, want := range map[string]string{
		"timeline":          "route=rows",
		"timeline=x":        "whole number",
		"timeline=0":        "whole number",
		"devices=5":         "unknown route",
		"timeline=1e3":      "whole number",
		"machines=99999999": "whole number",
	} {
		if _, err := ParsePageClamp(spec); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParsePageClamp(%q) err %v, want %q", spec, err, want)
		}
	}
}

// recordKeys maps each data set to the fields that identify one record.
var recordKeys = map[string][]string{
	"actioncenter":    {"ActionId", "EventTime", "ActionStatus"},
	"machineactions":  {"id", "lastUpdateDateTimeUtc", "status"},
	"executedqueries": {"QueryId"},
	"timeline":        {"ReportId"},
}

func eventKeys(t *testing.T, ten *Tenant, ds string, from, to time.Time) map[string]time.Time {
	t.Helper()
	evs, err := ten.Events(ds, from, to)
	if err != nil {
		t.Fatal(err)
	}
	kind, _, _ := strings.Cut(ds, ":")
	timeField := map[string]string{"actioncenter": "EventTime", "machineactions": "lastUpdateDateTimeUtc", "executedqueries": "Timestamp", "timeline": "ActionTime"}[kind]
	out := map[string]time.Time{}
	for _, raw := range evs {
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		ts, _ := parseTimeParam(m[timeField].(string))
		out[keyOf(t, raw, recordKeys[kind]...)] = ts
	}
	return out
}

// With ingestion lag an event shows only once its lag has passed: at any
// moment the services hold the events of a lag-free tenant minus some of
// the last IngestionLag, and once the lag has passed everything is there.
func TestIngestionLag(t *testing.T) {
	const lag = 25 * time.Minute
	now := testStart.Add(10 * time.Hour)
	plainClk, lagClk := newClock(now), newClock(now)
	plain, err := New(Options{Seed: 42, Start: testStart, Now: plainClk.Now, Machines: 8})
	if err != nil {
		t.Fatal(err)
	}
	lagged, err := New(Options{Seed: 42, Start: testStart, Now: lagClk.Now, Machines: 8, IngestionLag: lag})
	if err != nil {
		t.Fatal(err)
	}
	from := now.Add(-12 * time.Hour)
	for _, ds := range []string{"actioncenter", "machineactions", "executedqueries", "timeline:" + plain.MachineIDs()[3]} {
		t.Run(ds, func(t *testing.T) {
			lagClk.set(now)
			all := eventKeys(t, plain, ds, from, now)
			seen := eventKeys(t, lagged, ds, from, now)
			late := 0
			for k, ts := range all {
				if _, ok := seen[k]; ok {
					continue
				}
				late++
				if ts.Before(now.Add(-lag)) {
					t.Fatalf("%s of %s is still hidden although its lag (at most %s) has passed", k, ts, lag)
				}
			}
			if late == 0 {
				t.Fatal("no event of the last 25 minutes was held back: the lag does nothing")
			}
			if ds != "machineactions" { // an action shows an older state, a different key
				for k := range seen {
					if _, ok := all[k]; !ok {
						t.Fatalf("%s is shown with lag but not without", k)
					}
				}
			}
			lagClk.set(now.Add(lag))
			plainClk.set(now.Add(lag))
			defer plainClk.set(now)
			if a, b := eventKeys(t, plain, ds, from, now), eventKeys(t, lagged, ds, from, now); len(a) != len(b) {
				t.Fatalf("once the lag has passed: %d events with lag, %d without", len(b), len(a))
			}
		})
	}
}

// The services agree with Events under lag: Action Center's Count, the
// executed-queries report and a timeline page hold only visible events.
func TestIngestionLagOnTheWire(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.IngestionLag = 40 * time.Minute })
	now := e.data.Now()
	from := now.Add(-6 * time.Hour)
	var ac struct{ Count int }
	e.portal(http.MethodGet, "/apiproxy/mtp/actionCenter/actioncenterui/history-actions/?fromDate="+from.Format(time.RFC3339)+"&toDate="+now.Format(time.RFC3339)+"&pageSize=1", nil).json(t, &ac)
	truth := eventKeys(t, e.ten, "actioncenter", from, now.Add(time.Nanosecond))
	if ac.Count != len(truth) {
		t.Fatalf("Action Center Count %d, visible events %d", ac.Count, len(truth))
	}
	var rep struct{ Count int }
	e.portal(http.MethodPost, "/apiproxy/hunting/huntingService/reports", []byte(`{"startTime":"`+from.Format(time.RFC3339)+`","endTime":"`+now.Format(time.RFC3339)+`"}`)).json(t, &rep)
	if q := eventKeys(t, e.ten, "executedqueries", from, now); rep.Count != len(q) {
		t.Fatalf("report Count %d, visible queries %d", rep.Count, len(q))
	}
	mid := e.ten.MachineIDs()[0]
	items := walkTimeline(t, func(p string) resp { return e.portal(http.MethodGet, p, nil) }, "/apiproxy/mtp/mdeTimelineExperience",
		"/machines/"+mid+"/events/?fromDate="+url.QueryEscape(fmt7Z(from))+"&toDate="+url.QueryEscape(fmt7Z(now))+"&pageSize=100", mid)
	if tl := eventKeys(t, e.ten, "timeline:"+mid, from, now.Add(time.Nanosecond)); len(items) != len(tl) {
		t.Fatalf("timeline walk %d events, visible %d", len(items), len(tl))
	}
}

// The lag of an event is fixed by the seed: two tenants agree, and it is
// spread over the whole range rather than a constant.
func TestIngestionLagIsDeterministic(t *testing.T) {
	w := newWorld(Options{Seed: 9, Start: testStart, IngestionLag: time.Hour, Machines: 1, History: time.Hour, TimelineHistory: time.Hour}, 0)
	w2 := newWorld(Options{Seed: 9, Start: testStart, IngestionLag: time.Hour, Machines: 1, History: time.Hour, TimelineHistory: time.Hour}, 0)
	var lags []time.Duration
	for i := 0; i < 200; i++ {
		a, b := w.lagFor(lblLagAC, "x", int64(i)), w2.lagFor(lblLagAC, "x", int64(i))
		if a != b || a < 0 || a > time.Hour {
			t.Fatalf("lag %d: %s and %s", i, a, b)
		}
		lags = append(lags, a)
	}
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	if lags[20] > 20*time.Minute || lags[180] < 40*time.Minute {
		t.Fatalf("lags are not spread over [0, 1h]: 10th percentile %s, 90th %s", lags[20], lags[180])
	}
	if _, err := New(Options{IngestionLag: -time.Minute}); err == nil {
		t.Fatal("a negative IngestionLag was accepted")
	}
}

// A skewed emulator answers with its own time in Date — on data routes,
// errors and unknown hosts alike — and shows data as of its own now.
func TestClockSkew(t *testing.T) {
	const skew = -7 * time.Minute
	e := newEnv(t, func(o *Options) { o.ClockSkew = skew })
	// Date is the emulator's wall clock (Clock + skew), as a server's is.
	want := e.wall.Now().Add(skew).UTC().Format(http.TimeFormat)
	for name, r := range map[string]resp{
		"portal data":   e.portal(http.MethodGet, "/apiproxy/mtp/suppressionRulesService/suppressionRules", nil),
		"portal 404":    e.portal(http.MethodGet, "/apiproxy/mtp/nothing", nil),
		"public 401":    e.do(http.MethodGet, "api.security.microsoft.com", "/api/machineactions", nil, nil),
		"entra":         e.do(http.MethodGet, "login.microsoftonline.com", "/common/discovery/instance", nil, nil),
		"unknown host":  e.do(http.MethodGet, "example.org", "/", nil, nil),
		"public data":   e.public("/api/machineactions?$top=1", e.publicToken()),
		"sign-in 302":   e.do(http.MethodGet, "security.microsoft.com", "/apiproxy/mtp/huntingService/schema", nil, nil),
		"legacy region": e.do(http.MethodGet, "wdatpprd-eus.securitycenter.windows.com", "/rbac/machine_groups", nil, nil),
	} {
		if got := r.header.Get("Date"); got != want {
			t.Errorf("%s (%d): Date %q, want the emulator's skewed time %q", name, r.status, got, want)
		}
	}
	// Data: the skewed tenant at T shows what an unskewed one shows at T+skew.
	clk := newClock(e.data.Now().Add(skew))
	ref, err := New(Options{Seed: 42, Start: testStart, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	from := e.data.Now().Add(-3 * time.Hour)
	a, b := eventKeys(t, e.ten, "actioncenter", from, e.data.Now()), eventKeys(t, ref, "actioncenter", from, e.data.Now())
	if len(a) != len(b) || len(a) == 0 {
		t.Fatalf("skewed tenant shows %d Action Center events, an unskewed one at the skewed time %d", len(a), len(b))
	}
	if _, err := New(Options{ClockSkew: 25 * time.Hour}); err == nil {
		t.Fatal("a ClockSkew of 25h was accepted")
	}
}

// The request log has one line per request with what an operator needs and
// nothing that can hold a secret.
func TestRequestLog(t *testing.T) {
	var buf syncBuffer
	e := newEnv(t, func(o *Options) { o.RequestLog = &buf })
	c := e.ten.Credentials()
	tok := e.publicToken()
	e.public("/api/machineactions?$filter="+url.QueryEscape("requestor eq 'alice@contoso.com'")+"&$top=2", tok)
	e.portal(http.MethodGet, "/apiproxy/mtp/ndr/machines?pageSize=2&machineSearchPrefix=ws", nil)
	e.do(http.MethodGet, "example.org", "/x?token=s3cr3t-query-value", nil, nil)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines for 4 requests:\n%s", len(lines), buf.String())
	}
	for i, want := range []string{
		"POST login.microsoftonline.com /" + c.TenantID + "/oauth2/v2.0/token query=- status=200 bytes=",
		"GET api.security.microsoft.com /api/machineactions query=%24filter,%24top status=200 bytes=",
		"GET security.microsoft.com /apiproxy/mtp/ndr/machines query=machineSearchPrefix,pageSize status=200 bytes=",
		"GET example.org /x query=token status=421 bytes=",
	} {
		if !strings.Contains(lines[i], " "+want) || !strings.Contains(lines[i], " duration=") {
			t.Errorf("line %d %q lacks %q", i, lines[i], want)
		}
		if _, err := time.Parse("2006-01-02T15:04:05.000Z", strings.Fields(lines[i])[0]); err != nil {
			t.Errorf("line %d does not start with a time: %q", i, lines[i])
		}
	}
	for name, secret := range map[string]string{"client secret": c.ClientSecret, "sccauth": c.SccAuth, "XSRF": c.XSRFToken, "token": tok, "query value": "s3cr3t", "filter value": "alice"} {
		if strings.Contains(buf.String(), secret) {
			t.Errorf("the request log holds the %s", name)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
