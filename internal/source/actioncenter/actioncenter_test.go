package actioncenter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/source/srcutil"
	"github.com/defenderharvester/defenderharvester/internal/source/srcutil/srctest"
)

var t0 = time.Date(2026, 4, 25, 0, 0, 0, 0, time.UTC)

func action(i int, status string) string {
	return fmt.Sprintf(`{"InvestigationId":null,"ActionId":"00000000-0000-0000-0000-%012d","StartTime":"2026-04-25T00:00:00.0000000","ActionType":"LiveResponseCommand","UserPrincipalName":"alex@contoso.com","AdditionalFields":{"raw_command":"run collect.ps1"},"EventTime":"%s","ActionStatus":"%s","ActionSource":"Portal","Product":"MDE","MachineId":"abc","ComputerName":"host01"}`,
		i, t0.Add(time.Duration(i)*time.Minute).Format("2006-01-02T15:04:05.0000000"), status)
}

// fakeHistory serves n actions with the documented paging and Count.
func fakeHistory(t *testing.T, n int, reqs *[]string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		*reqs = append(*reqs, q.Get("pageIndex"))
		if r.URL.Path != Path || q.Get("type") != "history" || q.Get("useMtpApi") != "true" || q.Get("sortByField") != "eventTime" || q.Get("sortOrder") != "Ascending" {
			t.Errorf("request %s?%s", r.URL.Path, r.URL.RawQuery)
		}
		if q.Get("fromDate") != "2026-04-25T00:00:00.000Z" || q.Get("toDate") != "2026-04-26T00:00:00.000Z" {
			t.Errorf("dates %s %s", q.Get("fromDate"), q.Get("toDate"))
		}
		idx, _ := strconv.Atoi(q.Get("pageIndex"))
		size, _ := strconv.Atoi(q.Get("pageSize"))
		var res []json.RawMessage
		for i := (idx - 1) * size; i < idx*size && i < n; i++ {
			res = append(res, json.RawMessage(action(i, "Completed")))
		}
		if res == nil {
			res = []json.RawMessage{}
		}
		json.NewEncoder(w).Encode(map[string]any{"Count": n, "Results": res})
	})
}

func TestFetchPaging(t *testing.T) {
	w := source.Window{From: t0, To: t0.Add(24 * time.Hour)}
	tests := []struct {
		n, pageSize int
		wantPages   string
	}{
		{n: 5, pageSize: 2, wantPages: "1,2,3"},
		{n: 4, pageSize: 2, wantPages: "1,2,3"}, // a full last page is confirmed by an empty one
		{n: 0, pageSize: 2, wantPages: "1"},
		{n: 3, pageSize: 200, wantPages: "1"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d rows by %d", tt.n, tt.pageSize), func(t *testing.T) {
			var reqs []string
			s := srctest.Build(t, Name, source.Deps{Portal: srctest.Portal(t, fakeHistory(t, tt.n, &reqs))},
				func(c any) { c.(*Config).PageSize = tt.pageSize }).(source.EventSource)
			var c srctest.Collector
			if err := s.Fetch(context.Background(), w, c.Emit); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(reqs, ","); got != tt.wantPages {
				t.Errorf("pages requested %s, want %s", got, tt.wantPages)
			}
			if len(c.Items) != tt.n {
				t.Fatalf("emitted %d, want %d", len(c.Items), tt.n)
			}
			ids := map[string]bool{}
			for i, it := range c.Items {
				if want := t0.Add(time.Duration(i) * time.Minute); !it.Time.Equal(want) {
					t.Errorf("item %d time %v, want %v (UTC, from EventTime)", i, it.Time, want)
				}
				if ids[it.ID] || it.ID == "" {
					t.Errorf("duplicate or empty id %q", it.ID)
				}
				ids[it.ID] = true
				if string(it.Raw) != action(i, "Completed") {
					t.Errorf("raw JSON changed: %s", it.Raw)
				}
			}
		})
	}
}

func TestStatusChangeIsANewRecord(t *testing.T) {
	a, _ := DecodePage([]byte(`{"Count":1,"Results":[` + action(1, "Pending") + `]}`))
	b, _ := DecodePage([]byte(`{"Count":1,"Results":[` + action(1, "Completed") + `]}`))
	if len(a.Items) != 1 || len(b.Items) != 1 || a.Items[0].ID == b.Items[0].ID {
		t.Fatal("a status change must produce a different record id")
	}
	want := record.StableID(Name, "00000000-0000-0000-0000-000000000001", "2026-04-25T00:01:00.0000000", "Completed")
	if b.Items[0].ID != want {
		t.Errorf("id %s, want StableID(actioncenter, ActionId, EventTime, ActionStatus) %s", b.Items[0].ID, want)
	}
}

func TestDecodeRejects(t *testing.T) {
	tests := map[string]string{
		`{"Count":"3","Results":[]}`: "its total Count is a JSON string, not a non-negative integer",
		`{"Count":1}`:                "cannot read the response: it has Count (number); expected a JSON array or an object with an array under Results, Items, items or value",
		`{"Count":1,"Results":"x"}`:  "it has Count (number), Results (string)",
		`{"Count":1,"Results":[{"EventTime":"2026-01-01T00:00:00"}]}`: "no ActionId or actionId field",
		`{"Count":1,"Results":[{"ActionId":"a"}]}`:                    "no EventTime or eventTime field",
		`{"Count":1,"Results":[{"ActionId":"a","EventTime":"soon"}]}`: "EventTime",
		`{"Count":1,"Results":[7]}`:                                   "record 0 is not a JSON object (it is a JSON number)",
		`<html>sign in</html>`:                                        "not JSON but markup",
	}
	for body, want := range tests {
		p, err := DecodePage([]byte(body))
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "actioncenter") {
			t.Errorf("DecodePage(%s) err = %v, want %q", body, err, want)
		}
		if len(p.Items) != 0 {
			t.Errorf("items returned with error")
		}
	}
}

// TestDecodeEnvelopes: the list envelopes the portal uses elsewhere are
// read too, with or without a total, and records keep their raw JSON.
func TestDecodeEnvelopes(t *testing.T) {
	a, b := action(1, "Completed"), action(2, "Pending")
	tests := []struct {
		body  string
		count int64
	}{
		{`{"Count":2,"Results":[` + a + `,` + b + `]}`, 2},
		{`{"Results":[` + a + `,` + b + `]}`, -1},
		{`[` + a + `,` + b + `]`, -1},
		{`{"Count":2,"Items":[` + a + `,` + b + `]}`, 2},
		{`{"items":[` + a + `,` + b + `]}`, -1},
		{`{"@odata.count":2,"value":[` + a + `,` + b + `]}`, 2},
		{`[{"actionId":"x","eventTime":"2026-04-25T00:01:00.0000000","actionStatus":"Completed"},` + b + `]`, -1},
	}
	for _, tt := range tests {
		p, err := DecodePage([]byte(tt.body))
		if err != nil {
			t.Errorf("DecodePage(%.60s…): %v", tt.body, err)
			continue
		}
		if p.Count != tt.count || len(p.Items) != 2 {
			t.Errorf("DecodePage(%.60s…) = count %d, %d items; want %d, 2", tt.body, p.Count, len(p.Items), tt.count)
			continue
		}
		if string(p.Items[1].Raw) != b || !p.Items[0].Time.Equal(t0.Add(time.Minute)) {
			t.Errorf("item raw/time wrong: %s %v", p.Items[1].Raw, p.Items[0].Time)
		}
	}
}

// TestUnknownShapeNamesKeysNotValues: an envelope the decoder cannot read
// fails with its top-level keys and JSON types — never a value.
func TestUnknownShapeNamesKeysNotValues(t *testing.T) {
	const canary = "CANARY-actioncenter-4411"
	_, err := DecodePage([]byte(`{"Count":3,"Data":[{"ActionId":"` + canary + `"}],"Owner":"` + canary + `"}`))
	want := "actioncenter: cannot read the response: it has Count (number), Data (array), Owner (string); expected a JSON array or an object with an array under Results, Items, items or value"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
	if strings.Contains(err.Error(), canary) {
		t.Error("the error repeats a value")
	}
}

// fetchAll runs one window against h with page_size size.
func fetchAll(t *testing.T, h http.Handler, size int) ([]source.Item, error) {
	t.Helper()
	s := srctest.Build(t, Name, source.Deps{Portal: srctest.Portal(t, h)},
		func(c any) { c.(*Config).PageSize = size }).(source.EventSource)
	var c srctest.Collector
	err := s.Fetch(context.Background(), source.Window{From: t0, To: t0.Add(24 * time.Hour)}, c.Emit)
	return c.Items, err
}

func actions(n int) []string {
	rows := make([]string, n)
	for i := range rows {
		rows[i] = action(i, "Completed")
	}
	return rows
}

// TestClampedPages: a service that serves fewer rows than asked must not
// end the window early — with a Count, paging goes on until Count is
// reached; without one, the first page's size is taken as the clamp.
// Either way every row arrives, whether the service counts page offsets in
// the size it served or the size asked. Fails on the code before paging
// was reworked (it stopped at the first short page, and refused bare
// arrays).
func TestClampedPages(t *testing.T) {
	tests := []struct {
		name     string
		list     *srctest.PagedList
		wantReqs string
	}{
		{"Count, offsets in served size", &srctest.PagedList{Clamp: 3, TotalKey: "Count", Envelope: "Results"}, "1/10,2/3,3/3,4/3"},
		{"Count, offsets in asked size", &srctest.PagedList{Clamp: 3, OffsetByAsked: true, TotalKey: "Count", Envelope: "Results"}, "1/10,2/3,3/3,4/3"},
		{"no total, bare array", &srctest.PagedList{Clamp: 3}, "1/10,2/3,3/3,4/3"},
		{"no total, offsets in asked size", &srctest.PagedList{Clamp: 3, OffsetByAsked: true, Envelope: "Results"}, "1/10,2/3,3/3,4/3"},
		{"stale low Count under a clamp", &srctest.PagedList{Clamp: 3, TotalKey: "Count", TotalDelta: -8, Envelope: "Results"}, "1/10,2/3,3/3,4/3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.list.Rows = actions(10)
			items, err := fetchAll(t, tt.list, 10)
			if err != nil {
				t.Fatal(err)
			}
			ids := map[string]bool{}
			for _, it := range items {
				ids[it.ID] = true
			}
			if len(ids) != 10 {
				t.Errorf("got %d of 10 actions (requests %s)", len(ids), tt.list.Requests())
			}
			if got := tt.list.Requests(); got != tt.wantReqs {
				t.Errorf("requests %s, want %s", got, tt.wantReqs)
			}
		})
	}
}

// TestCountAboveRowsFails: a Count the pages never reach fails the window
// loudly instead of reporting success. Fails on the code before (it ended
// at the short page and returned nil).
func TestCountAboveRowsFails(t *testing.T) {
	for _, clamp := range []int{0, 2} {
		list := &srctest.PagedList{Rows: actions(5), Clamp: clamp, TotalKey: "Count", TotalDelta: 3, Envelope: "Results"}
		_, err := fetchAll(t, list, 4)
		if err == nil || !strings.Contains(err.Error(), "actioncenter: the service reported 8 rows, returned 5") {
			t.Errorf("clamp %d: err = %v (requests %s)", clamp, err, list.Requests())
		}
	}
}

func TestFetchStopsOnBadPage(t *testing.T) {
	calls := 0
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		if calls == 1 {
			fmt.Fprintf(w, `{"Count":4,"Results":[%s,%s]}`, action(0, "Completed"), action(1, "Completed"))
			return
		}
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<html>sign in</html>"))
	})
	s := srctest.Build(t, Name, source.Deps{Portal: srctest.Portal(t, h)}, func(c any) { c.(*Config).PageSize = 2 }).(source.EventSource)
	var c srctest.Collector
	err := s.Fetch(context.Background(), source.Window{From: t0, To: t0.Add(24 * time.Hour)}, c.Emit)
	if err == nil || !strings.Contains(err.Error(), "page 2") {
		t.Fatalf("err = %v", err)
	}
	if !errors.Is(err, mde.ErrSessionExpired) {
		t.Errorf("err %v should be ErrSessionExpired", err)
	}
}

func TestConfig(t *testing.T) {
	f, _ := source.Lookup(Name)
	c := f.NewConfig().(*Config)
	if c.PageSize != 200 || c.Overlap.D() != time.Hour || c.Delay.D() != 5*time.Minute || c.MaxWindow.D() != 7*24*time.Hour {
		t.Errorf("defaults %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
	bad := map[string]*Config{
		"page_size 5000 must be between 1 and 1000 (the service clamps larger pages)": {PageSize: 5000},
		"page_size 0 must be between 1 and 1000":                                      {},
		"overlap -1m0s must not be negative":                                          {PageSize: 1, Windowing: srcutil.Windowing{Overlap: source.Duration(-time.Minute)}},
	}
	for want, c := range bad {
		if err := c.Validate(); err == nil || err.Error() != want {
			t.Errorf("Validate(%+v) = %v, want %q", c, err, want)
		}
		if _, err := f.New(source.Deps{}, c); err == nil || err.Error() != "actioncenter: "+want {
			t.Errorf("New(%+v) = %v: New must run Validate", c, err)
		}
	}
	if _, err := f.New(source.Deps{Portal: srctest.Portal(t, http.NotFoundHandler())}, nil); err != nil {
		t.Errorf("nil config must mean the defaults: %v", err)
	}
}

func FuzzDecodePage(f *testing.F) {
	f.Add([]byte(`{"Count":2,"Results":[` + action(1, "Completed") + `]}`))
	f.Add([]byte(`{"Count":-1,"Results":[]}`))
	f.Add([]byte(`{"Count":1,"Results":[{"ActionId":1,"EventTime":"2026-01-01T00:00:00Z"}]}`))
	f.Add([]byte(`{"Results":"x"}`))
	f.Add([]byte(`[` + action(2, "Pending") + `]`))
	f.Add([]byte(`{"@odata.count":1,"value":[{"actionId":"a","eventTime":"2026-01-01T00:00:00Z"}]}`))
	f.Add([]byte(`{"Count":1,"Items":[{}],"value":[{}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodePage(b)
		if err != nil {
			if len(p.Items) != 0 {
				t.Fatal("items with error")
			}
			return
		}
		if p.Count < -1 {
			t.Fatal("negative count")
		}
		srctest.CheckEventItems(t, p.Items)
	})
}

// TestStaleCountDoesNotStopPaging: a Count lower than the rows served
// (stale, or 0) must not end the window while pages come back full.
func TestStaleCountDoesNotStopPaging(t *testing.T) {
	const rows, size = 5, 2
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		idx, _ := strconv.Atoi(r.URL.Query().Get("pageIndex"))
		res := []json.RawMessage{}
		for i := (idx - 1) * size; i < idx*size && i < rows; i++ {
			res = append(res, json.RawMessage(action(i, "Completed")))
		}
		json.NewEncoder(w).Encode(map[string]any{"Count": 2, "Results": res})
	})
	s := srctest.Build(t, Name, source.Deps{Portal: srctest.Portal(t, h)},
		func(c any) { c.(*Config).PageSize = size }).(source.EventSource)
	var c srctest.Collector
	if err := s.Fetch(context.Background(), source.Window{From: t0, To: t0.Add(24 * time.Hour)}, c.Emit); err != nil {
		t.Fatal(err)
	}
	if len(c.Items) != rows {
		t.Fatalf("emitted %d of %d rows: paging stopped at the stale Count", len(c.Items), rows)
	}
}

// TestIgnoredPageIndexIsRefused: a service that serves page 1 for every
// pageIndex must fail the window, not loop.
func TestIgnoredPageIndexIsRefused(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"Count": 100, "Results": []json.RawMessage{
			json.RawMessage(action(0, "Completed")), json.RawMessage(action(1, "Completed"))}})
	})
	s := srctest.Build(t, Name, source.Deps{Portal: srctest.Portal(t, h)},
		func(c any) { c.(*Config).PageSize = 2 }).(source.EventSource)
	var c srctest.Collector
	err := s.Fetch(context.Background(), source.Window{From: t0, To: t0.Add(24 * time.Hour)}, c.Emit)
	if err == nil || !strings.Contains(err.Error(), "repeats page") {
		t.Fatalf("want a paging-loop error, got %v", err)
	}
}
