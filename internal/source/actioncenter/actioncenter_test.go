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
		`{"Results":[]}`:             "no Count field",
		`{"Count":"3","Results":[]}`: "Count is not a non-negative integer",
		`{"Count":1}`:                "no Results field",
		`{"Count":1,"Results":"x"}`:  "field Results is not an array",
		`{"Count":1,"Results":[{"EventTime":"2026-01-01T00:00:00"}]}`: "no ActionId field",
		`{"Count":1,"Results":[{"ActionId":"a"}]}`:                    "no EventTime field",
		`{"Count":1,"Results":[{"ActionId":"a","EventTime":"soon"}]}`: "EventTime",
		`[]`: "expected a JSON object",
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
	if c.PageSize != 200 || c.Overlap.D() != 15*time.Minute || c.MaxWindow.D() != 7*24*time.Hour {
		t.Errorf("defaults %+v", c)
	}
	if _, err := f.New(source.Deps{}, &Config{PageSize: 5000}); err == nil || !strings.Contains(err.Error(), "page_size") {
		t.Errorf("err = %v", err)
	}
}

func FuzzDecodePage(f *testing.F) {
	f.Add([]byte(`{"Count":2,"Results":[` + action(1, "Completed") + `]}`))
	f.Add([]byte(`{"Count":-1,"Results":[]}`))
	f.Add([]byte(`{"Count":1,"Results":[{"ActionId":1,"EventTime":"2026-01-01T00:00:00Z"}]}`))
	f.Add([]byte(`{"Results":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodePage(b)
		if err != nil {
			if len(p.Items) != 0 {
				t.Fatal("items with error")
			}
			return
		}
		if p.Count < 0 {
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
