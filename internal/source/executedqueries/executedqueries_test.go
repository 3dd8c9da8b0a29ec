package executedqueries

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/source/srcutil/srctest"
)

var t0 = time.Date(2026, 4, 25, 0, 0, 0, 0, time.UTC)

func query(i int, at time.Time) string {
	return fmt.Sprintf(`{"QueryId":"q-%d","Timestamp":"%s","QuerySource":"Api","InitiatedBy":"MDE-Alex-App","ApplicationId":"app","QueryText":"DeviceEvents | take 10","DurationMs":12,"CpuTimeMs":3,"ResourceUsage":"Low","State":"Completed","RowCount":10}`,
		i, at.Format(time.RFC3339Nano))
}

// fakeReports answers with the queries in [startTime, endTime]; cap limits
// the rows returned while Count stays the full number.
func fakeReports(t *testing.T, at []time.Time, cap int, bodies *[]string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != Path {
			t.Errorf("%s %s", r.Method, r.URL.Path)
		}
		b, _ := io.ReadAll(r.Body)
		*bodies = append(*bodies, string(b))
		var req struct{ StartTime, EndTime string }
		json.Unmarshal(b, &req)
		from, _ := mde.ParseTime(req.StartTime)
		to, _ := mde.ParseTime(req.EndTime)
		res := []json.RawMessage{}
		n := 0
		for i, ts := range at {
			if !ts.Before(from) && !ts.After(to) {
				n++
				if len(res) < cap {
					res = append(res, json.RawMessage(query(i, ts)))
				}
			}
		}
		json.NewEncoder(w).Encode(map[string]any{"Count": n, "Results": res})
	})
}

func TestFetch(t *testing.T) {
	at := []time.Time{t0.Add(time.Hour), t0.Add(30 * time.Hour), t0.Add(47 * time.Hour)}
	var bodies []string
	s := srctest.Build(t, Name, source.Deps{Portal: srctest.Portal(t, fakeReports(t, at, 100, &bodies))}, nil).(source.EventSource)
	var c srctest.Collector
	if err := s.Fetch(context.Background(), source.Window{From: t0, To: t0.Add(48 * time.Hour)}, c.Emit); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{"endTime":"2026-04-26T00:00:00.000Z","startTime":"2026-04-25T00:00:00.000Z"}`,
		`{"endTime":"2026-04-27T00:00:00.000Z","startTime":"2026-04-26T00:00:00.000Z"}`,
	}
	if strings.Join(bodies, "\n") != strings.Join(want, "\n") {
		t.Errorf("request bodies:\n%s\nwant one per day:\n%s", strings.Join(bodies, "\n"), strings.Join(want, "\n"))
	}
	if len(c.Items) != 3 {
		t.Fatalf("emitted %d, want 3", len(c.Items))
	}
	if c.Items[0].ID != record.StableID(Name, "q-0") || !c.Items[2].Time.Equal(at[2]) {
		t.Errorf("item ids/times wrong: %+v", c.Items[0])
	}
}

func TestTruncatedReportIsSplit(t *testing.T) {
	at := []time.Time{t0.Add(time.Hour), t0.Add(2 * time.Hour), t0.Add(13 * time.Hour), t0.Add(20 * time.Hour)}
	var bodies []string
	s := srctest.Build(t, Name, source.Deps{Portal: srctest.Portal(t, fakeReports(t, at, 2, &bodies))}, nil).(source.EventSource)
	var c srctest.Collector
	if err := s.Fetch(context.Background(), source.Window{From: t0, To: t0.Add(24 * time.Hour)}, c.Emit); err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, it := range c.Items {
		ids[it.ID] = true
	}
	if len(ids) != 4 {
		t.Errorf("got %d distinct queries after splitting, want 4 (requests: %d)", len(ids), len(bodies))
	}
}

func TestUnsplittableReportFails(t *testing.T) {
	at := []time.Time{t0.Add(time.Hour), t0.Add(time.Hour), t0.Add(time.Hour)}
	var bodies []string
	s := srctest.Build(t, Name, source.Deps{Portal: srctest.Portal(t, fakeReports(t, at, 1, &bodies))}, nil).(source.EventSource)
	err := s.Fetch(context.Background(), source.Window{From: t0, To: t0.Add(24 * time.Hour)}, (&srctest.Collector{}).Emit)
	if err == nil || !strings.Contains(err.Error(), "cannot be split") {
		t.Fatalf("err = %v", err)
	}
}

func TestDecodeRejects(t *testing.T) {
	bad := map[string]string{
		`{"Count":1,"Results":"x"}`:  "field Results is not an array",
		`{"Count":1}`:                "no Results field",
		`[]`:                         "expected a JSON object",
		`{"Count":"1","Results":[]}`: "Count",
		`{"Results":[{"Timestamp":"2026-01-01T00:00:00Z"}]}`: "no QueryId field",
		`{"Results":[{"QueryId":"q"}]}`:                      "no Timestamp field",
	}
	for body, want := range bad {
		if _, err := DecodePage([]byte(body)); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), Name) {
			t.Errorf("DecodePage(%s) err = %v, want %q", body, err, want)
		}
	}
}

func TestConfig(t *testing.T) {
	f, _ := source.Lookup(Name)
	c := f.NewConfig().(*Config)
	if c.MaxWindow.D() != 24*time.Hour || c.Overlap.D() != 15*time.Minute {
		t.Errorf("defaults %+v", c)
	}
	c.MaxWindow = source.Duration(40 * 24 * time.Hour)
	if _, err := f.New(source.Deps{}, c); err == nil || !strings.Contains(err.Error(), "max_window") {
		t.Errorf("err = %v", err)
	}
}

func FuzzDecodePage(f *testing.F) {
	f.Add([]byte(`{"Count":1,"Results":[` + query(1, t0) + `]}`))
	f.Add([]byte(`{"Results":[{"QueryId":5,"Timestamp":"2026-01-01T00:00:00"}]}`))
	f.Add([]byte(`{"Count":-4,"Results":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodePage(b)
		if err != nil {
			return
		}
		if p.Count < -1 {
			t.Fatal("bad count")
		}
		srctest.CheckEventItems(t, p.Items)
	})
}
