package timeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/source/srcutil/srctest"
)

var t0 = time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)

const (
	m1 = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1"
	m2 = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb2"
	m3 = "ccccccccccccccccccccccccccccccccccccccc3"
)

type event struct {
	id int64
	at time.Time
}

func (e event) json(machine string) string {
	ts := e.at.Format(mde.TimelineTimeLayout)
	return fmt.Sprintf(`{"ReportId":%d,"ActionTime":"%s","ActionTimeIsoString":"%s","ActionType":"ProcessCreated","Description":"x","Machine":{"MachineId":"%s","ComputerDnsName":"h"},"InitiatingProcess":{},"Process":{},"User":{},"SourceProvider":"MDE"}`, e.id, ts, ts, machine)
}

// fakeTimeline behaves as docs/ARCHITECTURE.md decision 4 says (docs/REFERENCE.md §1.7): events in [fromDate,
// toDate], newest first, keyset Prev link to the older rest.
type fakeTimeline struct {
	t        *testing.T
	mu       sync.Mutex
	events   map[string][]event
	forbid   map[string]bool
	prevHook func(machine, prev string) string // may rewrite Prev
	partial  bool
	requests []string
	devices  []string
	clamp    int // the device list returns at most this many rows a page
}

func (f *fakeTimeline) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := r.URL.Query()
	if r.URL.Path == MachinesPath {
		idx, _ := strconv.Atoi(q.Get("pageIndex"))
		size, _ := strconv.Atoi(q.Get("pageSize"))
		if f.clamp > 0 {
			size = min(size, f.clamp)
		}
		out := []map[string]string{}
		for i := (idx - 1) * size; i < idx*size && i < len(f.devices); i++ {
			out = append(out, map[string]string{"MachineId": f.devices[i], "SenseMachineId": f.devices[i], "ComputerDnsName": "h"})
		}
		json.NewEncoder(w).Encode(out)
		return
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, Base+"/machines/"), "/")
	machine := parts[0]
	if r.URL.Path != Base+"/machines/"+machine+"/events/" && r.URL.Path != Base+"/machines/"+machine+"/events" {
		f.t.Errorf("path %s", r.URL.Path)
	}
	f.requests = append(f.requests, machine+" "+q.Get("fromDate")+" "+q.Get("toDate")+" "+q.Get("ReportIdForScrolling"))
	if f.forbid[machine] {
		w.WriteHeader(403)
		w.Write([]byte(`"User is not exposed to machine"`))
		return
	}
	from, _ := mde.ParseTime(q.Get("fromDate"))
	to, _ := mde.ParseTime(q.Get("toDate"))
	size, _ := strconv.Atoi(q.Get("pageSize"))
	cursor, hasCursor := int64(0), q.Get("ReportIdForScrolling") != ""
	if hasCursor {
		cursor, _ = strconv.ParseInt(q.Get("ReportIdForScrolling"), 10, 64)
	}
	var in []event
	for _, e := range f.events[machine] {
		if e.at.Before(from) || e.at.After(to) {
			continue
		}
		if hasCursor && e.at.Equal(to) && e.id >= cursor {
			continue
		}
		in = append(in, e)
	}
	sort.Slice(in, func(i, j int) bool {
		if !in[i].at.Equal(in[j].at) {
			return in[i].at.After(in[j].at)
		}
		return in[i].id > in[j].id
	})
	prev := ""
	if len(in) > size {
		last := in[size-1]
		in = in[:size]
		pq := url.Values{"machineId": {machine}, "fromDate": {q.Get("fromDate")}, "toDate": {last.at.Format(mde.TimelineTimeLayout)},
			"ReportIdForScrolling": {strconv.FormatInt(last.id, 10)}, "IsScrollingForward": {"false"}, "pageSize": {q.Get("pageSize")}}
		prev = "/machines/" + machine + "/events/?" + pq.Encode()
	}
	if f.prevHook != nil && prev != "" {
		prev = f.prevHook(machine, prev)
	}
	items := make([]json.RawMessage, len(in))
	for i, e := range in {
		items[i] = json.RawMessage(e.json(machine))
	}
	reasons := []string{}
	if f.partial {
		reasons = []string{"SomeShardTimedOut"}
	}
	json.NewEncoder(w).Encode(map[string]any{"Items": items, "Prev": prev, "Next": "/machines/" + machine + "/events/?next", "PartialResponseReasons": reasons})
}

func events(n int, start time.Time, step time.Duration) []event {
	out := make([]event, n)
	for i := range out {
		out[i] = event{id: int64(1000 + i), at: start.Add(time.Duration(i) * step)}
	}
	return out
}

func build(t *testing.T, f *fakeTimeline, machines []string, pageSize int) source.EventSource {
	t.Helper()
	f.t = t
	return srctest.Build(t, Name, source.Deps{Portal: srctest.Portal(t, f)}, func(c any) {
		cfg := c.(*Config)
		cfg.Machines = machines
		cfg.PageSize = pageSize
		cfg.MachinePageSize = 2
	}).(source.EventSource)
}

func TestFetchFollowsPrev(t *testing.T) {
	evs := events(5, t0.Add(time.Hour), time.Minute)
	evs = append(evs, event{id: 9, at: evs[2].at}) // same time, different ReportId
	f := &fakeTimeline{events: map[string][]event{m1: evs}}
	s := build(t, f, []string{m1}, 2)
	var c srctest.Collector
	if err := s.Fetch(context.Background(), source.Window{From: t0, To: t0.Add(6 * time.Hour)}, c.Emit); err != nil {
		t.Fatal(err)
	}
	if len(f.requests) != 3 {
		t.Errorf("requests %d, want 3 (pages of 2): %v", len(f.requests), f.requests)
	}
	if !strings.HasPrefix(f.requests[0], m1+" 2026-04-01T00:00:00.0000000Z 2026-04-01T06:00:00.0000000Z") {
		t.Errorf("first request %s", f.requests[0])
	}
	if len(c.Items) != len(evs) {
		t.Fatalf("emitted %d, want %d", len(c.Items), len(evs))
	}
	ids := map[string]bool{}
	for _, it := range c.Items {
		ids[it.ID] = true
	}
	for _, e := range evs {
		id := record.StableID(Name, m1, strconv.FormatInt(e.id, 10), e.at.Format(mde.TimelineTimeLayout))
		if !ids[id] {
			t.Errorf("event %d missing or id not StableID(timeline, machine, ReportId, ActionTimeIsoString)", e.id)
		}
	}
}

func TestFetchSplitsLongWindows(t *testing.T) {
	f := &fakeTimeline{events: map[string][]event{m1: events(3, t0, 4*24*time.Hour)}}
	s := build(t, f, []string{m1}, 1000)
	var c srctest.Collector
	if err := s.Fetch(context.Background(), source.Window{From: t0, To: t0.Add(10 * 24 * time.Hour)}, c.Emit); err != nil {
		t.Fatal(err)
	}
	// max_window (6 h by default) cuts the range into slices.
	if len(f.requests) != 40 || !strings.HasPrefix(f.requests[1], m1+" 2026-04-01T06:00:00.0000000Z 2026-04-01T12:00:00.0000000Z") ||
		!strings.HasPrefix(f.requests[39], m1+" 2026-04-10T18:00:00.0000000Z 2026-04-11T00:00:00.0000000Z") {
		t.Errorf("requests %q, want 40 slices of 6 hours", f.requests)
	}
	// The service's bounds are inclusive: an event on a slice edge comes
	// with both slices (the pipeline keeps it in the one that holds it).
	distinct := map[string]bool{}
	for _, it := range c.Items {
		distinct[it.ID] = true
	}
	if len(distinct) != 3 {
		t.Errorf("emitted %d distinct events, want the 3 events of all slices", len(distinct))
	}
}

func TestBadContinuations(t *testing.T) {
	tests := []struct {
		name string
		hook func(machine, prev string) string
		want string
	}{
		{"absolute link", func(m, p string) string { return "https://evil.example" + p }, "refusing continuation link"},
		{"other device", func(m, p string) string { return strings.Replace(p, "/machines/"+m, "/machines/"+m2, 1) }, "refusing continuation link"},
		{"other device in query", func(m, p string) string { return strings.Replace(p, "machineId="+m, "machineId="+m2, 1) }, "another device"},
		{"dot segments", func(m, p string) string { return "/machines/" + m + "/events/../../admin" }, "dot segments"},
		{"unexpected path", func(m, p string) string { return "/machines/" + m + "/events/export?x=1" }, "unexpected path"},
		{"moved window start", func(m, p string) string {
			return setQuery(p, "fromDate", mde.FormatTimelineTime(t0.Add(10*time.Minute)))
		}, "moves the window start"},
		{"not moving back", func(m, p string) string { return setQuery(p, "toDate", mde.FormatTimelineTime(t0.Add(2*time.Hour))) }, "does not move back"},
		{"repeated cursor", func(m, p string) string {
			return "/machines/" + m + "/events/?fromDate=2026-04-01T00%3A00%3A00.0000000Z&toDate=2026-04-01T00%3A30%3A00.0000000Z&ReportIdForScrolling=1&pageSize=1"
		}, "already returned"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeTimeline{events: map[string][]event{m1: events(10, t0, time.Minute)}, prevHook: tt.hook}
			s := build(t, f, []string{m1}, 1)
			err := s.Fetch(context.Background(), source.Window{From: t0, To: t0.Add(time.Hour)}, (&srctest.Collector{}).Emit)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if len(f.requests) > 3 {
				t.Errorf("kept paging after a bad link: %d requests", len(f.requests))
			}
		})
	}
}

func TestPartialResponseIsError(t *testing.T) {
	f := &fakeTimeline{events: map[string][]event{m1: events(1, t0, time.Minute)}, partial: true}
	s := build(t, f, []string{m1}, 10)
	var c srctest.Collector
	err := s.Fetch(context.Background(), source.Window{From: t0, To: t0.Add(time.Hour)}, c.Emit)
	if err == nil || !strings.Contains(err.Error(), "partial timeline page") || len(c.Items) != 0 {
		t.Fatalf("err = %v, emitted %d", err, len(c.Items))
	}
}

func TestAllMachinesAndFailingDevice(t *testing.T) {
	f := &fakeTimeline{
		devices: []string{m1, m2, m3},
		events:  map[string][]event{m1: events(2, t0, time.Minute), m2: events(1, t0, time.Minute), m3: events(3, t0, time.Minute)},
		forbid:  map[string]bool{m2: true},
	}
	s := build(t, f, []string{"all"}, 1000)
	var c srctest.Collector
	err := s.Fetch(context.Background(), source.Window{From: t0, To: t0.Add(time.Hour)}, c.Emit)
	if !errors.Is(err, mde.ErrForbidden) || !strings.Contains(err.Error(), m2) {
		t.Errorf("err = %v, want the forbidden device named", err)
	}
	if len(c.Items) != 5 {
		t.Errorf("emitted %d, want 5 from the two working devices", len(c.Items))
	}
	// The 403 "not exposed" may be throttling, so the client retries it
	// (srctest allows 2 attempts); each working device is read once.
	per := map[string]int{}
	for _, r := range f.requests {
		per[r[:40]]++
	}
	if per[m1] != 1 || per[m3] != 1 || per[m2] != 2 {
		t.Errorf("timeline requests %v, want one per working device and 2 attempts for the forbidden one", f.requests)
	}
}

// TestDeviceListUnderAPageClamp: the device list has no total, so a page
// shorter than asked (a service clamping pageSize) must not end the list.
func TestDeviceListUnderAPageClamp(t *testing.T) {
	var devs []string
	for i := range 7 {
		devs = append(devs, fmt.Sprintf("%040x", i+1))
	}
	f := &fakeTimeline{t: t, devices: devs, events: map[string][]event{}, clamp: 3}
	s := srctest.Build(t, Name, source.Deps{Portal: srctest.Portal(t, f)}, func(c any) {
		c.(*Config).Machines = []string{"all"}
	}).(source.PartitionedSource)
	parts, err := s.Parts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 7 {
		t.Fatalf("listed %d devices under a clamp of 3 per page, want all 7", len(parts))
	}
}

func TestMaxMachines(t *testing.T) {
	f := &fakeTimeline{t: t, devices: []string{m1, m2, m3}, events: map[string][]event{}}
	s := srctest.Build(t, Name, source.Deps{Portal: srctest.Portal(t, f)}, func(c any) {
		cfg := c.(*Config)
		cfg.Machines, cfg.MaxMachines, cfg.MachinePageSize = []string{"ALL"}, 2, 2
	}).(source.EventSource)
	if err := s.Fetch(context.Background(), source.Window{From: t0, To: t0.Add(time.Hour)}, (&srctest.Collector{}).Emit); err != nil {
		t.Fatal(err)
	}
	if len(f.requests) != 2 {
		t.Errorf("harvested %d devices, want max_machines=2", len(f.requests))
	}
}

func TestNewValidates(t *testing.T) {
	f, _ := source.Lookup(Name)
	if f.DefaultEnabled {
		t.Error("timeline must not be enabled by default")
	}
	tests := []struct {
		machines []string
		want     string
	}{
		{nil, "set machines to device ids or [all]"},
		{[]string{"../x"}, "not a device id"},
		{[]string{"all", m1}, "not both"},
	}
	for _, tt := range tests {
		c := NewConfig()
		c.Machines = tt.machines
		if _, err := f.New(source.Deps{}, c); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("machines %v: err = %v, want %q", tt.machines, err, tt.want)
		}
	}
	c := NewConfig()
	c.Machines = []string{m1}
	c.MaxWindow = source.Duration(31 * 24 * time.Hour)
	if _, err := f.New(source.Deps{}, c); err == nil || !strings.Contains(err.Error(), "max_window") {
		t.Errorf("max_window over 30d accepted: %v", err)
	}
}

func TestDecodePageRejects(t *testing.T) {
	bad := map[string]string{
		`{"Items":"x","Prev":""}`: "it has Items (string), Prev (string); expected",
		`{"Prev":""}`:             "it has Prev (string); expected",
		`[]`:                      "bare array without the Prev link",
		`{"Items":[],"Prev":5}`:   "field Prev is a JSON number, not a string",
		`{"Items":[],"PartialResponseReasons":"x"}`:                  "PartialResponseReasons is not an array",
		`{"Items":[{"ActionTimeIsoString":"2026-04-01T00:00:00Z"}]}`: "no ReportId or reportId field",
		`{"Items":[{"ReportId":1}]}`:                                 "no ActionTimeIsoString, ActionTime, actionTime or Timestamp field",
	}
	for body, want := range bad {
		if _, err := DecodePage(m1, []byte(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("DecodePage(%s) err = %v, want %q", body, err, want)
		}
	}
}

func FuzzDecodePage(f *testing.F) {
	f.Add([]byte(`{"Items":[` + events(1, t0, 0)[0].json(m1) + `],"Prev":"/machines/x/events/?a=1","Next":"","PartialResponseReasons":[]}`))
	f.Add([]byte(`{"Items":[{"ReportId":"1","ActionTime":"2026-04-01T00:00:00"}],"Prev":null}`))
	f.Add([]byte(`{"Items":[],"PartialResponseReasons":["x"]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodePage(m1, b)
		if err != nil {
			if len(p.Items) != 0 {
				t.Fatal("items with an error")
			}
			return
		}
		srctest.CheckEventItems(t, p.Items)
	})
}

func FuzzDecodeDevices(f *testing.F) {
	f.Add([]byte(`[{"MachineId":"` + m1 + `","SenseMachineId":"` + m1 + `"}]`))
	f.Add([]byte(`[{"MachineId":"../../x"}]`))
	f.Add([]byte(`{"Results":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		devs, _, err := DecodeDevices(b)
		if err != nil {
			return
		}
		for _, d := range devs {
			if !machineIDRe.MatchString(d.ID) {
				t.Fatalf("unsafe device id %q", d.ID)
			}
		}
	})
}

// setQuery replaces one query parameter of a relative link.
func setQuery(link, key, value string) string {
	u, err := url.Parse(link)
	if err != nil {
		return link
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}
