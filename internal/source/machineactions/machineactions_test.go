package machineactions

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/source/srcutil/srctest"
)

var t0 = time.Date(2026, 4, 25, 0, 0, 0, 0, time.UTC)

// act is an action created at created and last updated at updated.
func act(i int, created, updated time.Time, status string) string {
	return fmt.Sprintf(`{"id":"a-%d","type":"Isolate","title":"","requestor":"soar@contoso.com","requestorComment":"x","status":"%s","machineId":"m","computerDnsName":"h","creationDateTimeUtc":"%s","lastUpdateDateTimeUtc":"%s","cancellationRequestor":null,"cancellationComment":null,"cancellationDateTimeUtc":null,"errorHResult":0,"scope":"Selective","externalId":null,"requestSource":"PublicApi","relatedFileInfo":null,"commands":[],"troubleshootInfo":null}`,
		i, status, created.Format("2006-01-02T15:04:05.0000000Z"), updated.Format("2006-01-02T15:04:05.0000000Z"))
}

// row is one action of the fake service.
type row struct {
	id               int
	created, updated time.Time
	status           string
}

func (r row) json() string { return act(r.id, r.created, r.updated, r.status) }

// fakeService is a small OData machine-actions service: it evaluates the
// two filters the source sends (and'ed comparisons of lastUpdateDateTimeUtc
// and creationDateTimeUtc), orders by creation, pages with $top/$skip and,
// with clamp > 0, serves at most clamp rows per response with a nextLink to
// the rest of the $top, as a server that pages on its own does.
type fakeService struct {
	t            *testing.T
	mu           sync.Mutex
	rows         []row
	clamp        int
	refuseUpdate bool                          // 400 naming lastUpdateDateTimeUtc, as a service without the filter would
	afterRequest func(n int, rows []row) []row // changes the data between requests
	filters      []string
	requests     int
}

func (f *fakeService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := r.URL.Query()
	if r.URL.Path != Path || q.Get("$orderby") != "creationDateTimeUtc asc" {
		f.t.Errorf("request %s", r.URL)
	}
	filter := q.Get("$filter")
	f.filters = append(f.filters, filter)
	if f.refuseUpdate && strings.Contains(filter, "lastUpdateDateTimeUtc") {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":{"code":"ODataError","message":"Filtering on property 'lastUpdateDateTimeUtc' is not supported.","target":"x"}}`)
		return
	}
	var match []row
	for _, rw := range f.rows {
		ok := true
		for _, c := range strings.Split(filter, " and ") {
			p := strings.Fields(c)
			if len(p) != 3 {
				f.t.Fatalf("bad filter %q", filter)
			}
			bound, err := time.Parse(time.RFC3339Nano, p[2])
			if err != nil {
				f.t.Fatalf("bad filter %q", filter)
			}
			x := rw.created
			if p[0] == "lastUpdateDateTimeUtc" {
				x = rw.updated
			}
			switch p[1] {
			case "ge":
				ok = ok && !x.Before(bound)
			case "lt":
				ok = ok && x.Before(bound)
			default:
				f.t.Fatalf("operator %q", p[1])
			}
		}
		if ok {
			match = append(match, rw)
		}
	}
	sort.SliceStable(match, func(i, j int) bool { return match[i].created.Before(match[j].created) })
	top, _ := strconv.Atoi(q.Get("$top"))
	skip, _ := strconv.Atoi(q.Get("$skip"))
	n := top
	if f.clamp > 0 && f.clamp < n {
		n = f.clamp
	}
	end := min(skip+n, len(match))
	page := []json.RawMessage{}
	for _, rw := range match[min(skip, len(match)):end] {
		page = append(page, json.RawMessage(rw.json()))
	}
	out := map[string]any{"@odata.context": "https://api.security.microsoft.com/api/$metadata#MachineActions", "value": page}
	if n < top && end < len(match) {
		nq := r.URL.Query()
		nq.Set("$top", strconv.Itoa(top-n))
		nq.Set("$skip", strconv.Itoa(end))
		out["@odata.nextLink"] = "https://api.security.microsoft.com/api/machineactions?" + nq.Encode()
	}
	json.NewEncoder(w).Encode(out)
	f.requests++
	if f.afterRequest != nil {
		f.rows = f.afterRequest(f.requests, f.rows)
	}
}

func fetch(t *testing.T, f *fakeService, w source.Window, pageSize int) []string {
	t.Helper()
	s := srctest.Build(t, Name, source.Deps{API: srctest.Public(t, f)}, func(c any) { c.(*Config).PageSize = pageSize }).(source.EventSource)
	return fetchWith(t, s, w)
}

func fetchWith(t *testing.T, s source.EventSource, w source.Window) []string {
	t.Helper()
	var c srctest.Collector
	if err := s.Fetch(context.Background(), w, c.Emit); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, it := range c.Items {
		var v struct{ ID, Status string }
		json.Unmarshal(it.Raw, &v)
		ids = append(ids, v.ID+":"+v.Status)
		if !w.Contains(it.Time) {
			t.Errorf("emitted %s outside the window", v.ID)
		}
	}
	return ids
}

func TestFetch(t *testing.T) {
	w := source.Window{From: t0, To: t0.Add(time.Hour)}
	rows := []row{
		{1, t0.Add(-48 * time.Hour), t0.Add(10 * time.Minute), "Succeeded"}, // old action, status changed in window
		{2, t0.Add(-48 * time.Hour), t0.Add(-47 * time.Hour), "Succeeded"},  // old, unchanged: not asked for
		{3, t0.Add(5 * time.Minute), t0.Add(6 * time.Minute), "Pending"},
		{4, t0.Add(50 * time.Minute), t0.Add(2 * time.Hour), "InProgress"}, // updated after the window: dropped
		{5, t0.Add(55 * time.Minute), t0.Add(59 * time.Minute), "Failed"},
		{6, t0.Add(-10 * time.Hour), t0.Add(30 * time.Minute), "TimeOut"},
	}
	byUpdate := "lastUpdateDateTimeUtc ge 2026-04-25T00:00:00.0000000Z and creationDateTimeUtc lt 2026-04-25T01:00:00.0000000Z"
	byCreation := "creationDateTimeUtc ge 2026-04-22T00:00:00.0000000Z and creationDateTimeUtc lt 2026-04-25T01:00:00.0000000Z"
	for _, tt := range []struct {
		name     string
		pageSize int
		clamp    int
		refuse   bool
	}{
		{"top and skip", 2, 0, false},
		{"one page", 1000, 0, false},
		{"service clamps pages (nextLink)", 1000, 1, false},
		{"clamp below a $top page", 3, 2, false},
		{"service refuses the update filter: top and skip", 2, 0, true},
		{"service refuses the update filter: clamped", 1000, 1, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeService{t: t, rows: rows, clamp: tt.clamp, refuseUpdate: tt.refuse}
			if got := strings.Join(fetch(t, f, w, tt.pageSize), ","); got != "a-1:Succeeded,a-6:TimeOut,a-3:Pending,a-5:Failed" {
				t.Errorf("emitted %s, want a-1,a-6,a-3,a-5 (creation order)", got)
			}
			want := byUpdate
			if tt.refuse {
				if f.filters[0] != byUpdate {
					t.Errorf("first filter %q, want the update filter tried first", f.filters[0])
				}
				f.filters, want = f.filters[1:], byCreation
			}
			for _, got := range f.filters {
				if got != want {
					t.Errorf("filter %q, want %q", got, want)
				}
			}
		})
	}
}

// Once the service refused the update filter the source stays on the
// creation filter; a 400 about something else is an error, not a fallback.
func TestFallbackIsStickyAndNarrow(t *testing.T) {
	w := source.Window{From: t0, To: t0.Add(time.Hour)}
	f := &fakeService{t: t, rows: []row{{1, t0, t0.Add(time.Minute), "Pending"}}, refuseUpdate: true}
	s := srctest.Build(t, Name, source.Deps{API: srctest.Public(t, f)}, nil).(source.EventSource)
	fetchWith(t, s, w)
	f.filters = nil
	fetchWith(t, s, source.Window{From: w.To, To: w.To.Add(time.Hour)})
	for _, got := range f.filters {
		if strings.Contains(got, "lastUpdate") {
			t.Fatalf("the refused filter was sent again: %q", got)
		}
	}
	other := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":{"code":"BadRequest","message":"The limit of '10000' for Top query has been exceeded.","target":"x"}}`)
	})
	s = srctest.Build(t, Name, source.Deps{API: srctest.Public(t, other)}, nil).(source.EventSource)
	if err := s.Fetch(context.Background(), w, (&srctest.Collector{}).Emit); err == nil || !strings.Contains(err.Error(), "Top query") {
		t.Fatalf("another 400 gave %v, want the service's error", err)
	}
}

// Actions that change while the pages are read must not push an unread row
// past a page boundary: rows can join the list (read twice at worst), never
// leave it.
func TestFetchWhileActionsChange(t *testing.T) {
	w := source.Window{From: t0, To: t0.Add(time.Hour)}
	for name, change := range map[string]func(r *row){
		// Read on page 1, completes now, after the window: with an upper
		// bound on the update it would leave the list and shift the rest.
		"a read action completes after the window": func(r *row) {
			if r.id == 1 {
				r.updated, r.status = t0.Add(2*time.Hour), "Succeeded"
			}
		},
		// An older action changes into the window and joins at the front.
		"an older action changes into the window": func(r *row) {
			if r.id == 0 {
				r.updated, r.status = t0.Add(20*time.Minute), "Succeeded"
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			rows := []row{{0, t0.Add(-2 * time.Hour), t0.Add(-90 * time.Minute), "InProgress"}}
			for i := 1; i <= 7; i++ {
				rows = append(rows, row{i, t0.Add(time.Duration(i) * time.Minute), t0.Add(time.Duration(i)*time.Minute + 30*time.Second), "Pending"})
			}
			f := &fakeService{t: t, rows: rows, afterRequest: func(n int, rs []row) []row {
				if n != 1 {
					return rs
				}
				out := append([]row(nil), rs...)
				for i := range out {
					change(&out[i])
				}
				return out
			}}
			got := map[string]bool{}
			for _, id := range fetch(t, f, w, 2) {
				got[id] = true
			}
			for i := 1; i <= 7; i++ {
				if id := fmt.Sprintf("a-%d:Pending", i); !got[id] {
					t.Errorf("%s was skipped while another action changed (got %v)", id, got)
				}
			}
		})
	}
}

// A window end between two 100 ns ticks still takes a record on the tick
// before it.
func TestWindowEndsBetweenTicks(t *testing.T) {
	edge := t0.Add(time.Hour)
	f := &fakeService{t: t, rows: []row{{9, edge, edge, "Pending"}}}
	if got := fetch(t, f, source.Window{From: t0, To: edge.Add(50 * time.Nanosecond)}, 10); len(got) != 1 {
		t.Fatalf("emitted %v; the action at %s is inside [from, to)", got, edge)
	}
	if !strings.Contains(f.filters[0], "lt 2026-04-25T01:00:00.0000001Z") {
		t.Fatalf("filter %q does not round the end up", f.filters[0])
	}
}

func TestDecodePage(t *testing.T) {
	p, err := DecodePage([]byte(`{"value":[{"id":"x","status":"Succeeded","lastUpdateTimeUtc":"2026-04-25T00:00:00Z"}],"@odata.nextLink":"https://api.security.microsoft.com/api/machineactions?$skip=1"}`))
	if err != nil || len(p.Items) != 1 || p.NextLink == "" {
		t.Fatalf("%+v %v", p, err)
	}
	if p.Items[0].ID != record.StableID(Name, "x", "2026-04-25T00:00:00Z", "Succeeded") {
		t.Error("id is not StableID(machineactions, id, lastUpdate, status)")
	}
	bad := map[string]string{
		`{"value":"x"}`: "field value is not an array",
		`[]`:            "expected an object with value",
		`{"value":[{"lastUpdateDateTimeUtc":"2026-04-25T00:00:00Z"}]}`: "no id field",
		`{"value":[{"id":"x"}]}`:            "no lastUpdateDateTimeUtc or lastUpdateTimeUtc field",
		`{"value":[],"@odata.nextLink":{}}`: "nextLink is not a string",
	}
	for body, want := range bad {
		if _, err := DecodePage([]byte(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("DecodePage(%s) err = %v, want %q", body, err, want)
		}
	}
}

func TestRepeatedOrForeignNextLink(t *testing.T) {
	for name, link := range map[string]string{
		"repeated": "https://api.security.microsoft.com/api/machineactions?$skip=1",
		"foreign":  "https://evil.example/api/machineactions?$skip=1",
	} {
		t.Run(name, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, `{"value":[],"@odata.nextLink":%q}`, link)
			})
			s := srctest.Build(t, Name, source.Deps{API: srctest.Public(t, h)}, nil).(source.EventSource)
			err := s.Fetch(context.Background(), source.Window{From: t0, To: t0.Add(time.Hour)}, (&srctest.Collector{}).Emit)
			if err == nil || !strings.Contains(err.Error(), map[string]string{"repeated": "already returned", "foreign": "refusing"}[name]) {
				t.Errorf("err = %v", err)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	f, _ := source.Lookup(Name)
	c := f.NewConfig().(*Config)
	if c.PageSize != 1000 || c.Revisit.D() != 72*time.Hour || c.Overlap.D() != 30*time.Minute || c.Delay.D() != 2*time.Minute || c.MaxWindow.D() != 30*24*time.Hour {
		t.Errorf("defaults %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
	for _, n := range []int{0, -1, 10001} {
		if err := (&Config{PageSize: n}).Validate(); err == nil || !strings.HasPrefix(err.Error(), "page_size") {
			t.Errorf("page_size %d: %v, want an error naming page_size", n, err)
		}
	}
	if _, err := f.New(source.Deps{}, &Config{PageSize: 20000}); err == nil || !strings.HasPrefix(err.Error(), "machineactions: page_size") {
		t.Errorf("page_size above 10000: %v", err)
	}
}

func FuzzDecodePage(f *testing.F) {
	f.Add([]byte(`{"value":[` + act(1, t0, t0, "Pending") + `]}`))
	f.Add([]byte(`{"value":[{"id":1,"lastUpdateTimeUtc":"2026-01-01T00:00:00"}],"@odata.nextLink":null}`))
	f.Add([]byte(`{"value":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodePage(b)
		if err != nil {
			return
		}
		if p.Rows != len(p.Items) {
			t.Fatal("rows and items differ")
		}
		srctest.CheckEventItems(t, p.Items)
	})
}
