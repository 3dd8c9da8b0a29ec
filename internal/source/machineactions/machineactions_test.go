package machineactions

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
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

// fakeAPI serves rows with $top/$skip, or with nextLinks when useNext.
func fakeAPI(t *testing.T, rows []string, useNext bool, filters *[]string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.URL.Path != Path {
			t.Errorf("path %s", r.URL.Path)
		}
		if f := q.Get("$filter"); f != "" {
			*filters = append(*filters, f)
			if q.Get("$orderby") != "creationDateTimeUtc asc" {
				t.Errorf("orderby %q", q.Get("$orderby"))
			}
		}
		top, _ := strconv.Atoi(q.Get("$top"))
		skip, _ := strconv.Atoi(q.Get("$skip"))
		if useNext {
			top = 2
		}
		end := min(skip+top, len(rows))
		page := []json.RawMessage{}
		for _, r := range rows[min(skip, len(rows)):end] {
			page = append(page, json.RawMessage(r))
		}
		out := map[string]any{"@odata.context": "https://api.security.microsoft.com/api/$metadata#MachineActions", "value": page}
		if useNext && end < len(rows) {
			nq := r.URL.Query()
			nq.Del("$top")
			nq.Set("$skip", strconv.Itoa(end))
			out["@odata.nextLink"] = "https://api.security.microsoft.com/api/machineactions?" + nq.Encode()
		}
		json.NewEncoder(w).Encode(out)
	})
}

func TestFetch(t *testing.T) {
	w := source.Window{From: t0, To: t0.Add(time.Hour)}
	rows := []string{
		act(1, t0.Add(-48*time.Hour), t0.Add(10*time.Minute), "Succeeded"), // old action, status changed in window
		act(2, t0.Add(-48*time.Hour), t0.Add(-47*time.Hour), "Succeeded"),  // old, unchanged: dropped
		act(3, t0.Add(5*time.Minute), t0.Add(6*time.Minute), "Pending"),
		act(4, t0.Add(50*time.Minute), t0.Add(2*time.Hour), "InProgress"), // updated after window: dropped
		act(5, t0.Add(55*time.Minute), t0.Add(59*time.Minute), "Failed"),
	}
	for _, tt := range []struct {
		name     string
		pageSize int
		useNext  bool
	}{{"top and skip", 2, false}, {"one page", 1000, false}, {"nextLink", 1000, true}} {
		t.Run(tt.name, func(t *testing.T) {
			var filters []string
			s := srctest.Build(t, Name, source.Deps{API: srctest.Public(t, fakeAPI(t, rows, tt.useNext, &filters))},
				func(c any) { c.(*Config).PageSize = tt.pageSize }).(source.EventSource)
			var c srctest.Collector
			if err := s.Fetch(context.Background(), w, c.Emit); err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, it := range c.Items {
				var v struct{ ID string }
				json.Unmarshal(it.Raw, &v)
				ids = append(ids, v.ID)
				if !w.Contains(it.Time) {
					t.Errorf("emitted %s outside the window", v.ID)
				}
			}
			if got := strings.Join(ids, ","); got != "a-1,a-3,a-5" {
				t.Errorf("emitted %s, want a-1,a-3,a-5", got)
			}
			wantFilter := "creationDateTimeUtc ge 2026-04-22T00:00:00.0000000Z and creationDateTimeUtc lt 2026-04-25T01:00:00.0000000Z"
			for _, f := range filters {
				if f != wantFilter {
					t.Errorf("filter %q, want %q (revisit 72h before the window)", f, wantFilter)
				}
			}
		})
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
	if c.PageSize != 1000 || c.Revisit.D() != 72*time.Hour || c.Overlap.D() != 15*time.Minute || c.MaxWindow.D() != 30*24*time.Hour {
		t.Errorf("defaults %+v", c)
	}
	if _, err := f.New(source.Deps{}, &Config{PageSize: 20000}); err == nil {
		t.Error("page_size above 10000 accepted")
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
