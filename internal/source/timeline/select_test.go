package timeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/defenderharvester/defenderharvester/internal/auth"
	"github.com/defenderharvester/defenderharvester/internal/config"
	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/sim"
	"github.com/defenderharvester/defenderharvester/internal/sim/simtest"
	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/source/srcutil"
	"github.com/defenderharvester/defenderharvester/internal/source/srcutil/srctest"
)

// simNow is the emulator's data clock and the source's: fixed, so the
// alerts a test expects and the ones the source selects are the same.
var simNow = time.Date(2026, 6, 10, 15, 30, 0, 0, time.UTC)

// simPortal starts the emulated tenant and returns a portal client that
// reaches it over TLS with the tenant's portal session.
func simPortal(t *testing.T, opts sim.Options) mde.Portal {
	t.Helper()
	opts.Now = func() time.Time { return simNow }
	ten, srv, _ := simtest.Start(t, opts, "")
	rt, err := mde.NewTransport(mde.TransportOptions{EmulatorAddress: srv.Addr(), EmulatorCAPEM: ten.CACertPEM()})
	if err != nil {
		t.Fatal(err)
	}
	c := ten.Credentials()
	sess, err := auth.NewStaticCookies(c.SccAuth, url.QueryEscape(c.XSRFToken))
	if err != nil {
		t.Fatal(err)
	}
	pc, err := mde.NewPortalClient(mde.PortalOptions{Session: sess, ClientOptions: mde.ClientOptions{
		Transport: rt, MaxAttempts: 1, Limiter: mde.Limiters{}, Timeout: 10 * time.Second,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return pc
}

type simDevice struct {
	MachineID       string `json:"MachineId"`
	ComputerDNSName string `json:"ComputerDnsName"`
	RbacGroupID     int    `json:"RbacGroupId"`
	RbacGroupName   string `json:"RbacGroupName"`
}

// truth reads the emulator's devices and the devices of its alerts in
// [simNow-within, simNow] with plain decoding, independent of the source.
func truth(t *testing.T, p mde.Portal, within time.Duration) ([]simDevice, []string) {
	t.Helper()
	ctx := context.Background()
	var devs []simDevice
	for n := 1; ; n++ {
		body, err := p.Get(ctx, MachinesPath, url.Values{"pageIndex": {strconv.Itoa(n)}, "pageSize": {"3"}})
		if err != nil {
			t.Fatal(err)
		}
		var pg []simDevice
		if err := json.Unmarshal(body, &pg); err != nil {
			t.Fatal(err)
		}
		if len(pg) == 0 {
			break
		}
		devs = append(devs, pg...)
	}
	var alerted []string
	seen := map[string]bool{}
	for n := 1; ; n++ {
		body, err := p.Post(ctx, AlertsPath, nil, map[string]any{"daysAgo": "30", "pageNumber": n, "pageSize": 50})
		if err != nil {
			t.Fatal(err)
		}
		var pg struct {
			Entities []struct {
				LastUpdated      time.Time `json:"lastUpdated"`
				ImpactedEntities struct {
					Machines []struct {
						MachineID string `json:"machineId"`
					} `json:"machines"`
				} `json:"impactedEntities"`
			} `json:"entities"`
		}
		if err := json.Unmarshal(body, &pg); err != nil {
			t.Fatal(err)
		}
		if len(pg.Entities) == 0 {
			break
		}
		for _, a := range pg.Entities {
			if a.LastUpdated.Before(simNow.Add(-within)) {
				continue
			}
			for _, m := range a.ImpactedEntities.Machines {
				if !seen[m.MachineID] {
					seen[m.MachineID] = true
					alerted = append(alerted, m.MachineID)
				}
			}
		}
	}
	return devs, alerted
}

func buildSel(t *testing.T, p mde.Portal, mod func(*Config)) *src {
	t.Helper()
	s := srctest.Build(t, Name, source.Deps{Portal: p}, func(c any) {
		cfg := c.(*Config)
		cfg.MachinePageSize = 7 // several device pages, under the emulator's clamp too
		mod(cfg)
	}).(*src)
	s.now = func() time.Time { return simNow }
	return s
}

func sorted(xs []string) []string {
	out := slices.Clone(xs)
	sort.Strings(out)
	return out
}

// TestSelectorsAgainstEmulator: each selector, and their union, resolve
// to the emulator's devices; the result has no duplicate.
func TestSelectorsAgainstEmulator(t *testing.T) {
	p := simPortal(t, sim.Options{Seed: 5, Machines: 40, PageClamp: map[string]int{sim.RouteAlerts: 7, sim.RouteMachines: 5}})
	devs, alerted24 := truth(t, p, 24*time.Hour)
	if len(alerted24) == 0 || len(alerted24) == len(devs) {
		t.Fatalf("emulator: %d of %d devices alerted in 24 h; want a strict, non-empty subset", len(alerted24), len(devs))
	}
	byGroup := func(g string) []string {
		var out []string
		for _, d := range devs {
			if d.RbacGroupName == g {
				out = append(out, d.MachineID)
			}
		}
		return out
	}
	if len(byGroup("Servers")) == 0 || len(byGroup("Executives")) == 0 {
		t.Fatal("emulator: a machine group without devices")
	}
	d0, d1 := devs[0], devs[1]
	union := append([]string{d1.MachineID, d0.MachineID}, byGroup("Executives")...)
	union = append(union, alerted24...)
	tests := []struct {
		name string
		mod  func(*Config)
		want []string
	}{
		{"dns name, other case", func(c *Config) { c.MachineNames = []string{strings.ToUpper(d0.ComputerDNSName)} }, []string{d0.MachineID}},
		{"host part of the name", func(c *Config) { c.MachineNames = []string{strings.Split(d1.ComputerDNSName, ".")[0]} }, []string{d1.MachineID}},
		{"machine group by name", func(c *Config) { c.MachineGroups = []string{"servers"} }, byGroup("Servers")},
		{"machine group by id", func(c *Config) { c.MachineGroups = []string{"3"} }, byGroup("Executives")},
		{"alerted within 24h (alert pages clamped to 7)", func(c *Config) { c.AlertedWithin = source.Duration(24 * time.Hour) }, alerted24},
		{"union, deduplicated", func(c *Config) {
			c.Machines = []string{d1.MachineID}
			c.MachineNames = []string{d0.ComputerDNSName, d1.ComputerDNSName}
			c.MachineGroups = []string{"Executives"}
			c.AlertedWithin = source.Duration(24 * time.Hour)
		}, union},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := buildSel(t, p, tt.mod)
			got, err := s.Parts(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]bool{}
			for _, id := range tt.want {
				want[id] = true
			}
			if len(got) != len(want) {
				t.Fatalf("selected %d devices, want %d", len(got), len(want))
			}
			seen := map[string]bool{}
			for _, id := range got {
				if seen[id] || !want[id] {
					t.Fatalf("device %s selected twice or not wanted", id)
				}
				seen[id] = true
			}
			if len(tt.want) > 0 && got[0] != tt.want[0] {
				t.Errorf("first device %s, want %s (ids, names, groups, alerts in that order)", got[0], tt.want[0])
			}
		})
	}
}

func TestSelectCapsAtMaxMachines(t *testing.T) {
	p := simPortal(t, sim.Options{Seed: 5, Machines: 40})
	s := buildSel(t, p, func(c *Config) { c.MachineGroups = []string{"Workstations"}; c.MaxMachines = 3 })
	got, err := s.Parts(context.Background())
	if err != nil || len(got) != 3 {
		t.Fatalf("got %d devices, %v; want max_machines=3", len(got), err)
	}
}

func TestUnknownMachineNameIsAnError(t *testing.T) {
	p := simPortal(t, sim.Options{Seed: 5})
	devs, _ := truth(t, p, time.Hour)
	s := buildSel(t, p, func(c *Config) { c.MachineNames = []string{devs[0].ComputerDNSName, "nosuch.contoso.com", "ghost"} })
	_, err := s.Parts(context.Background())
	if err == nil || !strings.Contains(err.Error(), `"nosuch.contoso.com", "ghost"`) || strings.Contains(err.Error(), devs[0].ComputerDNSName) {
		t.Fatalf("err = %v, want both unknown names (and only those) named", err)
	}
}

// TestAmbiguousNameSelectsAll: a short name shared by several devices
// selects every one of them.
func TestAmbiguousNameSelectsAll(t *testing.T) {
	f := &fakeAlerts{devices: []map[string]any{
		{"SenseMachineId": m1, "ComputerDnsName": "web01.contoso.com"},
		{"SenseMachineId": m2, "ComputerDnsName": "WEB01.fabrikam.com"},
		{"SenseMachineId": m3, "ComputerDnsName": "web02.contoso.com"},
	}}
	s := buildFake(t, f, func(c *Config) { c.MachineNames = []string{"web01"} })
	got, err := s.Parts(context.Background())
	if err != nil || strings.Join(sorted(got), ",") != m1+","+m2 {
		t.Fatalf("got %v, %v; want both web01 devices", got, err)
	}
}

// fakeAlerts serves a device list and an alert queue that clamps its
// pages and may report a total it does not deliver.
type fakeAlerts struct {
	t        *testing.T
	mu       sync.Mutex
	devices  []map[string]any
	alerts   []string // raw alert objects
	clamp    int
	total    int // reported total; 0: len(alerts)
	raw      string
	bodies   []map[string]any
	requests int
}

func (f *fakeAlerts) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.URL.Path == MachinesPath {
		idx, _ := strconv.Atoi(r.URL.Query().Get("pageIndex"))
		size, _ := strconv.Atoi(r.URL.Query().Get("pageSize"))
		out := []map[string]any{}
		for i := (idx - 1) * size; i >= 0 && i < idx*size && i < len(f.devices); i++ {
			out = append(out, f.devices[i])
		}
		json.NewEncoder(w).Encode(out)
		return
	}
	if r.URL.Path != AlertsPath || r.Method != http.MethodPost {
		w.WriteHeader(404)
		return
	}
	f.requests++
	b, _ := io.ReadAll(r.Body)
	var body map[string]any
	if err := json.Unmarshal(b, &body); err != nil {
		w.WriteHeader(400)
		return
	}
	f.bodies = append(f.bodies, body)
	if f.raw != "" {
		w.Write([]byte(f.raw))
		return
	}
	n, size := int(body["pageNumber"].(float64)), int(body["pageSize"].(float64))
	if f.clamp > 0 {
		size = min(size, f.clamp)
	}
	var page []json.RawMessage
	for i := (n - 1) * size; i < n*size && i < len(f.alerts); i++ {
		page = append(page, json.RawMessage(f.alerts[i]))
	}
	total := f.total
	if total == 0 {
		total = len(f.alerts)
	}
	fmt.Fprintf(w, `{"entities":%s,"totalEntities":%d}`, mustJSON(page), total)
}

func mustJSON(v []json.RawMessage) string {
	if v == nil {
		return "[]"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func buildFake(t *testing.T, f *fakeAlerts, mod func(*Config)) *src {
	t.Helper()
	f.t = t
	s := srctest.Build(t, Name, source.Deps{Portal: srctest.Portal(t, f)}, func(c any) { mod(c.(*Config)) }).(*src)
	s.now = func() time.Time { return simNow }
	return s
}

func alertJSON(i int, machine string, age time.Duration) string {
	return fmt.Sprintf(`{"alertId":"da%d","lastEventTime":"%s","impactedEntities":{"machines":[{"machineId":"%s"}]}}`,
		i, simNow.Add(-age).Format(time.RFC3339Nano), machine)
}

// TestAlertPagingUnderClamp: the queue serves 7 alerts a page whatever
// is asked; every page is read until the reported total, and the body
// is the portal's.
func TestAlertPagingUnderClamp(t *testing.T) {
	var alerts []string
	for i := range 23 {
		alerts = append(alerts, alertJSON(i, fmt.Sprintf("%040x", i%11+1), time.Duration(i)*time.Hour))
	}
	f := &fakeAlerts{alerts: alerts, clamp: 7}
	s := buildFake(t, f, func(c *Config) { c.AlertedWithin = source.Duration(25 * time.Hour) })
	got, err := s.Parts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 11 {
		t.Errorf("selected %d devices, want the 11 of all 23 alerts", len(got))
	}
	if f.requests != 4 {
		t.Errorf("%d requests, want 4 pages (7+7+7+2)", f.requests)
	}
	b := f.bodies[0]
	if b["order"] != "desc" || b["sortByField"] != "LastEventTime" || b["daysAgo"] != "3" || b["pageNumber"] != 1.0 || b["pageSize"] != float64(defaultAlertPageSize) {
		t.Errorf("first body %v", b)
	}
	if f.bodies[1]["pageNumber"] != 2.0 || f.bodies[1]["pageSize"] != 7.0 {
		t.Errorf("second body %v, want page 2 in the clamped size", f.bodies[1])
	}
}

func TestAlertedWithinFiltersByTime(t *testing.T) {
	f := &fakeAlerts{alerts: []string{alertJSON(1, m1, time.Hour), alertJSON(2, m2, 23*time.Hour), alertJSON(3, m3, 25*time.Hour)}}
	s := buildFake(t, f, func(c *Config) { c.AlertedWithin = source.Duration(24 * time.Hour) })
	got, err := s.Parts(context.Background())
	if err != nil || strings.Join(got, ",") != m1+","+m2 {
		t.Fatalf("got %v, %v; want the devices of the two alerts of the last 24 h", got, err)
	}
	if f.bodies[0]["daysAgo"] != "2" {
		t.Errorf("daysAgo %v, want 2 (a day of margin)", f.bodies[0]["daysAgo"])
	}
}

func TestAlertListShortOfTotalIsAnError(t *testing.T) {
	f := &fakeAlerts{alerts: []string{alertJSON(1, m1, time.Hour), alertJSON(2, m2, time.Hour)}, total: 5}
	s := buildFake(t, f, func(c *Config) { c.AlertedWithin = source.Duration(time.Hour * 2) })
	if _, err := s.Parts(context.Background()); err == nil || !strings.Contains(err.Error(), "reported 5 rows, returned 2") {
		t.Fatalf("err = %v, want the short list refused", err)
	}
}

func TestMalformedAlertResponses(t *testing.T) {
	tests := []struct{ raw, want string }{
		{`<html>sign in</html>`, "sign-in page"},
		{`{"entities":"x"}`, "entities (string)"},
		{`{"entities":[1]}`, "record 0 is not a JSON object"},
		{`{"entities":[],"totalEntities":"5"}`, "totalEntities is a JSON string"},
		{`{"entities":[{"lastEventTime":"2026-06-10T00:00:00Z"}]}`, "alert 0 has no usable id"},
		{`{"entities":[{"alertId":"a"}]}`, "has none of the time fields"},
		{`{"entities":[{"alertId":"a","lastEventTime":5}]}`, "field lastEventTime is a JSON number, not a time"},
		{`{"entities":[{"alertId":"a","lastEventTime":"yesterday"}]}`, "field lastEventTime is not a time"},
		{`{"entities":[{"alertId":"a","lastEventTime":"2026-06-10T15:00:00Z","machineId":7}]}`, "field machineId is a JSON number"},
		{`{"entities":[{"alertId":"a","lastEventTime":"2026-06-10T15:00:00Z","machineId":"../../x"}]}`, "not a device id"},
		{`{"entities":[{"alertId":"a","lastEventTime":"2026-06-10T15:00:00Z","impactedEntities":"m"}]}`, "impactedEntities is a JSON string"},
		{`{"entities":[{"alertId":"a","lastEventTime":"2026-06-10T15:00:00Z","impactedEntities":{"machines":{}}}]}`, "impactedEntities.machines is a JSON object, not an array"},
	}
	for _, tt := range tests {
		f := &fakeAlerts{raw: tt.raw}
		s := buildFake(t, f, func(c *Config) { c.AlertedWithin = source.Duration(time.Hour) })
		_, err := s.Parts(context.Background())
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.raw, err, tt.want)
			continue
		}
		if strings.Contains(tt.raw, "{") && !errors.Is(err, srcutil.ErrShape) {
			t.Errorf("%s: %v is not a shape error", tt.raw, err)
		}
		if strings.Contains(err.Error(), "../../x") || strings.Contains(err.Error(), "yesterday") {
			t.Errorf("error repeats a value: %v", err)
		}
	}
}

func TestDecodeAlertsShapes(t *testing.T) {
	body := `{"entities":[
	 {"alertId":"a1","LastUpdated":"2026-06-10T15:00:00Z","timeGenerated":"2026-06-10T10:00:00Z","SenseMachineId":"` + m1 + `"},
	 {"AlertId":"a2","creationTime":"2026-06-10T15:00:00","ImpactedEntities":[{"Type":"User","userName":"x"},{"Type":"Machine","deviceId":"` + m2 + `"},"1.2.3.4"]},
	 {"id":"a3","startTimeUtc":"2026-06-10T15:00:00Z","impactedEntities":{"devices":[{"computerDnsName":"web01.contoso.com"}],"users":[{"userName":"x"}]}},
	 {"alertId":"a4","lastEventTime":"2026-06-10T15:00:00Z","impactedEntities":null,"machines":[{"MachineId":"` + m3 + `"},{"MachineId":"` + m3 + `"}]}
	],"totalEntities":4}`
	p, err := DecodeAlerts([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if p.Total != 4 || len(p.Alerts) != 4 {
		t.Fatalf("total %d, %d alerts", p.Total, len(p.Alerts))
	}
	want := []string{m1, m2, "", m3}
	for i, a := range p.Alerts {
		got := strings.Join(a.MachineIDs, ",")
		if got != want[i] {
			t.Errorf("alert %d devices %q, want %q", i, got, want[i])
		}
	}
	if !p.Alerts[0].Newest.Equal(time.Date(2026, 6, 10, 15, 0, 0, 0, time.UTC)) {
		t.Errorf("newest %s, want the latest of its times", p.Alerts[0].Newest)
	}
	if strings.Join(p.Alerts[2].DNSNames, ",") != "web01.contoso.com" {
		t.Errorf("alert 2 names %v", p.Alerts[2].DNSNames)
	}
}

func TestNewValidatesSelectors(t *testing.T) {
	f, _ := source.Lookup(Name)
	tests := []struct {
		name string
		mod  func(*Config)
		want string // "" = valid
	}{
		{"names alone", func(c *Config) { c.MachineNames = []string{"web01.contoso.com"} }, ""},
		{"groups alone", func(c *Config) { c.MachineGroups = []string{"Servers"} }, ""},
		{"alerts alone", func(c *Config) { c.AlertedWithin = source.Duration(24 * time.Hour) }, ""},
		{"ids and selectors", func(c *Config) { c.Machines = []string{m1}; c.MachineGroups = []string{"Servers"} }, ""},
		{"all with names", func(c *Config) { c.Machines = []string{"all"}; c.MachineNames = []string{"web01"} }, "[all] already selects every device"},
		{"all with alerts", func(c *Config) { c.Machines = []string{"ALL"}; c.AlertedWithin = source.Duration(time.Hour) }, "[all] already selects every device"},
		{"nothing", func(c *Config) {}, "select devices with machine_names, machine_groups or alerted_within"},
		{"dns name under machines", func(c *Config) { c.Machines = []string{"web01.contoso.com"} }, "list DNS names under machine_names"},
		{"empty name", func(c *Config) { c.MachineNames = []string{" "} }, "machine_names has an empty entry"},
		{"name all", func(c *Config) { c.MachineNames = []string{"all"} }, "use machines: [all]"},
		{"bad name", func(c *Config) { c.MachineNames = []string{"web 01"} }, "is not a DNS name"},
		{"name twice", func(c *Config) { c.MachineNames = []string{"a.b", "A.B"} }, "twice"},
		{"empty group", func(c *Config) { c.MachineGroups = []string{""} }, "machine_groups has an empty entry"},
		{"alerted_within too short", func(c *Config) { c.AlertedWithin = source.Duration(30 * time.Second) }, "alerted_within 30s is out of range"},
		{"alerted_within too long", func(c *Config) { c.AlertedWithin = source.Duration(181 * 24 * time.Hour) }, "is out of range"},
		{"alert page size", func(c *Config) { c.AlertedWithin = source.Duration(time.Hour); c.AlertPageSize = 0 }, "alert_page_size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewConfig()
			tt.mod(c)
			_, err := f.New(source.Deps{Portal: srctest.Portal(t, http.NotFoundHandler())}, c)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestConfigFileSelectors: the YAML keys, a duration like 24h or 1d, and
// an unknown selector refused by the strict decoder.
func TestConfigFileSelectors(t *testing.T) {
	tests := []struct{ yaml, want string }{
		{"machine_names: [web01.contoso.com]\nmachine_groups: [Servers]\nalerted_within: 24h\n", ""},
		{"alerted_within: 1d\n", ""},
		{"alerted_within: soon\n", "not a duration"},
		{"machine_name: [web01]\n", `"machine_name"`},
		{"alerted: 24h\n", `"alerted"`},
	}
	for _, tt := range tests {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(tt.yaml), &n); err != nil {
			t.Fatal(err)
		}
		c := NewConfig()
		err := config.DecodePlugin(n.Content[0], "sources.timeline", c)
		if err == nil {
			err = c.Validate()
		}
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%q refused: %v", tt.yaml, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%q: err = %v, want %q", tt.yaml, err, tt.want)
		}
	}
}

func FuzzDecodeAlerts(f *testing.F) {
	f.Add([]byte(`{"entities":[` + alertJSON(1, m1, time.Hour) + `],"totalEntities":1}`))
	f.Add([]byte(`{"entities":[{"alertId":"a","LastUpdated":"2026-06-10T15:00:00Z","ImpactedEntities":[{"deviceId":"` + m2 + `"},{"computerDnsName":"x.y"}]}]}`))
	f.Add([]byte(`{"entities":[{"alertId":"a","lastEventTime":"2026-06-10T15:00:00Z","impactedEntities":{"machines":[{"machineId":"../x"}]}}]}`))
	f.Add([]byte(`[{"id":1,"creationTime":"2026-06-10"}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodeAlerts(b)
		if err != nil {
			if len(p.Alerts) != 0 {
				t.Fatal("alerts with an error")
			}
			return
		}
		for _, a := range p.Alerts {
			if a.ID == "" {
				t.Fatalf("alert without id: %+v", a)
			}
			for _, id := range a.MachineIDs {
				if !machineIDRe.MatchString(id) {
					t.Fatalf("unsafe device id %q", id)
				}
			}
			for _, n := range a.DNSNames {
				if !dnsNameRe.MatchString(n) {
					t.Fatalf("unsafe name %q", n)
				}
			}
		}
	})
}
