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
		`{"Count":1,"Results":"x"}`:                          "cannot read the response: it has Count (number), Results (string)",
		`{"Count":1}`:                                        "cannot read the response: it has Count (number); expected a JSON array or an object with an array under Results, Items, items or value",
		`{"Count":"1","Results":[]}`:                         "its total Count is a JSON string",
		`{"Results":[{"Timestamp":"2026-01-01T00:00:00Z"}]}`: "no QueryId, queryId, ExecutionId, executionId, Id or id field",
		`{"Results":[{"QueryId":"q"}]}`:                      "no Timestamp, timestamp, StartTime, startTime, ExecutionTime, executionTime, Time or time field",
		`{"Results":["q"]}`:                                  "record 0 is not a JSON object (it is a JSON string)",
		`<html><title>Sign in</title></html>`:                "not JSON but markup",
	}
	for body, want := range bad {
		if _, err := DecodePage([]byte(body)); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), Name) {
			t.Errorf("DecodePage(%s) err = %v, want %q", body, err, want)
		}
	}
}

// TestDecodeEnvelopes: the report's shape is not public, so every list
// envelope is read, with or without a total. All but the first two fail
// on the code before.
func TestDecodeEnvelopes(t *testing.T) {
	q1, q2 := query(1, t0), query(2, t0.Add(time.Minute))
	tests := []struct {
		body  string
		count int64
	}{
		{`{"Count":2,"Results":[` + q1 + `,` + q2 + `]}`, 2},
		{`{"Results":[` + q1 + `,` + q2 + `]}`, -1},
		{`[` + q1 + `,` + q2 + `]`, -1},
		{`{"Count":2,"Items":[` + q1 + `,` + q2 + `]}`, 2},
		{`{"items":[` + q1 + `,` + q2 + `],"count":2}`, 2},
		{`{"value":[` + q1 + `,` + q2 + `]}`, -1},
	}
	for _, tt := range tests {
		p, err := DecodePage([]byte(tt.body))
		if err != nil || p.Count != tt.count || len(p.Items) != 2 {
			t.Errorf("DecodePage(%.40s…) = %d, %d items, %v; want %d, 2", tt.body, p.Count, len(p.Items), err, tt.count)
			continue
		}
		if p.Items[0].ID != record.StableID(Name, "q-1") || !p.Items[1].Time.Equal(t0.Add(time.Minute)) || string(p.Items[1].Raw) != q2 {
			t.Errorf("items %+v", p.Items)
		}
	}
}

// TestTimeCandidates: the time comes from the first present of the
// documented candidates; an id other than QueryId is not known to be one
// per execution, so the time joins it in the record id.
func TestTimeCandidates(t *testing.T) {
	tests := []struct {
		rec, wantTime, wantID string
	}{
		{`{"QueryId":"a","Timestamp":"2026-04-25T01:00:00Z","StartTime":"2026-04-25T09:00:00Z"}`, "2026-04-25T01:00:00Z", record.StableID(Name, "a")},
		{`{"queryId":"a","timestamp":"2026-04-25T02:00:00Z"}`, "2026-04-25T02:00:00Z", record.StableID(Name, "a")},
		{`{"QueryId":"a","StartTime":"2026-04-25T03:00:00.0000000"}`, "2026-04-25T03:00:00Z", record.StableID(Name, "a")},
		{`{"Id":"b","executionTime":"2026-04-25T04:00:00Z"}`, "2026-04-25T04:00:00Z", record.StableID(Name, "b", "2026-04-25T04:00:00Z")},
		{`{"ExecutionId":"c","Time":"2026-04-25T05:00:00Z"}`, "2026-04-25T05:00:00Z", record.StableID(Name, "c", "2026-04-25T05:00:00Z")},
	}
	for _, tt := range tests {
		p, err := DecodePage([]byte(`[` + tt.rec + `]`))
		if err != nil || len(p.Items) != 1 {
			t.Errorf("%s: %v", tt.rec, err)
			continue
		}
		if got := p.Items[0].Time.Format(time.RFC3339); got != tt.wantTime || p.Items[0].ID != tt.wantID {
			t.Errorf("%s: time %s id %s, want %s %s", tt.rec, got, p.Items[0].ID, tt.wantTime, tt.wantID)
		}
	}
}

// TestUnknownShapeNamesKeysNotValues uses the shape the issue names: the
// error lists keys and types and never a value.
func TestUnknownShapeNamesKeysNotValues(t *testing.T) {
	const canary = "CANARY-hunting-6621"
	_, err := DecodePage([]byte(`{"Count":1,"Data":[{"QueryText":"` + canary + `"}]}`))
	want := "executedqueries: cannot read the response: it has Count (number), Data (array); expected a JSON array or an object with an array under Results, Items, items or value"
	if err == nil || err.Error() != want || strings.Contains(err.Error(), canary) {
		t.Errorf("err = %v\nwant %s", err, want)
	}
}

// TestStaleLowCountIsAccepted: a Count below the rows returned loses
// nothing, so the report is taken as it is.
func TestStaleLowCountIsAccepted(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"Count":1,"Results":[%s,%s]}`, query(1, t0.Add(time.Hour)), query(2, t0.Add(2*time.Hour)))
	})
	s := srctest.Build(t, Name, source.Deps{Portal: srctest.Portal(t, h)}, nil).(source.EventSource)
	var c srctest.Collector
	if err := s.Fetch(context.Background(), source.Window{From: t0, To: t0.Add(24 * time.Hour)}, c.Emit); err != nil || len(c.Items) != 2 {
		t.Fatalf("%d items, %v", len(c.Items), err)
	}
}

func TestConfig(t *testing.T) {
	f, _ := source.Lookup(Name)
	c := f.NewConfig().(*Config)
	if c.MaxWindow.D() != 24*time.Hour || c.Overlap.D() != 2*time.Hour || c.Delay.D() != 15*time.Minute || c.Validate() != nil {
		t.Errorf("defaults %+v", c)
	}
	c.MaxWindow = source.Duration(40 * 24 * time.Hour)
	want := "max_window 960h0m0s must be between 1s and 720h0m0s (the API's limit)"
	if err := c.Validate(); err == nil || err.Error() != want {
		t.Errorf("Validate = %v, want %q", err, want)
	}
	if _, err := f.New(source.Deps{}, c); err == nil || err.Error() != Name+": "+want {
		t.Errorf("New = %v: New must run Validate", err)
	}
	if _, err := f.New(source.Deps{Portal: srctest.Portal(t, http.NotFoundHandler())}, nil); err != nil {
		t.Errorf("nil config must mean the defaults: %v", err)
	}
}

func FuzzDecodePage(f *testing.F) {
	f.Add([]byte(`{"Count":1,"Results":[` + query(1, t0) + `]}`))
	f.Add([]byte(`{"Results":[{"QueryId":5,"Timestamp":"2026-01-01T00:00:00"}]}`))
	f.Add([]byte(`{"Count":-4,"Results":[]}`))
	f.Add([]byte(`[{"Id":"x","time":"2026-01-01T00:00:00Z"}]`))
	f.Add([]byte(`{"count":2,"value":[{"queryId":1,"startTime":"2026-01-01T00:00:00.1234567"}]}`))
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
