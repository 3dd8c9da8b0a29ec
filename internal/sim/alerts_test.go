package sim

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

type alertsPage struct {
	Entities []struct {
		AlertID          string `json:"alertId"`
		LastEventTime    string `json:"lastEventTime"`
		Severity         string `json:"severity"`
		ImpactedEntities struct {
			Machines []struct {
				MachineID       string `json:"machineId"`
				ComputerDNSName string `json:"computerDnsName"`
			} `json:"machines"`
		} `json:"impactedEntities"`
	} `json:"entities"`
	TotalEntities int `json:"totalEntities"`
}

const alertsPath = "/apiproxy/mtp/alertsApiService/alerts"

func TestAlertsRejectsBadBodies(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		body, want string
	}{
		{`[]`, "must be a JSON object"},
		{`not json`, "must be a JSON object"},
		{`{"pageSize":0}`, "not valid for pageSize"},
		{`{"pageNumber":-1}`, "not valid for pageNumber"},
		{`{"pageNumber":"x"}`, "not valid for pageNumber"},
		{`{"daysAgo":"0"}`, "not valid for daysAgo"},
		{`{"daysAgo":181}`, "not valid for daysAgo"},
		{`{"order":"up"}`, "not valid for order"},
		{`{"sortByField":"Title"}`, "not valid for sortByField"},
		{`{"severity":["Critical"]}`, "not valid for severity"},
		{`{"status":"New"}`, "status must be an array"},
		{`{"fromDate":"2026-01-01"}`, "'fromDate' is not known"},
		{`{"shouldReturnAlertsLinkedBy":"no"}`, "true or false"},
		{`{"IncidentIds":["a"]}`, "IncidentIds must be"},
	}
	for _, tt := range tests {
		r := e.portal(http.MethodPost, alertsPath, []byte(tt.body))
		if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), tt.want) {
			t.Errorf("body %s: %d %s, want 400 %q", tt.body, r.status, r.body, tt.want)
		}
	}
	if r := e.portal(http.MethodGet, alertsPath, nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", r.status)
	}
}

// TestAlertsPagingAndCap: pages are capped at alertsMaxPageSize whatever
// pageSize asks, the total stays complete and the pages tile the list.
func TestAlertsPagingAndCap(t *testing.T) {
	e := newEnv(t, nil)
	var all alertsPage
	e.portal(http.MethodPost, alertsPath, []byte(`{"daysAgo":"30","pageSize":10000}`)).json(t, &all)
	if all.TotalEntities <= alertsMaxPageSize || len(all.Entities) != alertsMaxPageSize {
		t.Fatalf("total %d, first page %d rows: want more than %d alerts and a capped page", all.TotalEntities, len(all.Entities), alertsMaxPageSize)
	}
	seen := map[string]bool{}
	var prev time.Time
	for n := 1; ; n++ {
		var p alertsPage
		body, _ := json.Marshal(map[string]any{"sortByField": "LastEventTime", "order": "desc", "daysAgo": "30", "shouldReturnAlertsLinkedBy": false, "pageNumber": n, "pageSize": 40})
		r := e.portal(http.MethodPost, alertsPath, body)
		if r.status != http.StatusOK {
			t.Fatalf("page %d: %d %s", n, r.status, r.body)
		}
		r.json(t, &p)
		if len(p.Entities) == 0 {
			break
		}
		for _, a := range p.Entities {
			if seen[a.AlertID] {
				t.Fatalf("alert %s twice", a.AlertID)
			}
			seen[a.AlertID] = true
			at, err := time.Parse(time.RFC3339Nano, a.LastEventTime)
			if err != nil {
				t.Fatal(err)
			}
			if !prev.IsZero() && at.After(prev) {
				t.Fatalf("not newest first: %s after %s", at, prev)
			}
			prev = at
		}
	}
	if len(seen) != all.TotalEntities {
		t.Errorf("paged %d alerts, total %d", len(seen), all.TotalEntities)
	}
}

// TestAlertsOnASubsetOfDevices: recent alerts name only alert-prone
// devices, by id and DNS name; some alerts name none.
func TestAlertsOnASubsetOfDevices(t *testing.T) {
	e := newEnv(t, nil)
	var p alertsPage
	e.portal(http.MethodPost, alertsPath, []byte(`{"daysAgo":"1","pageSize":50}`)).json(t, &p)
	if p.TotalEntities == 0 {
		t.Fatal("no alerts in the last day")
	}
	prone := map[string]string{}
	for i, m := range e.ten.w.machines {
		if alertProne(i) {
			prone[m.ID] = m.DNS
		}
	}
	without := 0
	for _, a := range p.Entities {
		if len(a.ImpactedEntities.Machines) == 0 {
			without++
		}
		for _, m := range a.ImpactedEntities.Machines {
			if dns, ok := prone[m.MachineID]; !ok || dns != m.ComputerDNSName {
				t.Errorf("alert %s names a device outside the alert-prone subset or with the wrong name", a.AlertID)
			}
		}
	}
	if without == len(p.Entities) {
		t.Error("no alert names a device")
	}
	// Deterministic: the same request gives the same answer.
	r1 := e.portal(http.MethodPost, alertsPath, []byte(`{"daysAgo":"3"}`))
	r2 := e.portal(http.MethodPost, alertsPath, []byte(`{"DAYSAGO":3}`))
	if string(r1.body) != string(r2.body) {
		t.Error("same request, different alerts")
	}
}

func TestAlertsPerTenant(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Tenants = 2 })
	a := e.ten.Tenant(0).alerts(e.data.Now(), e.data.Now().Add(-48*time.Hour))
	b := e.ten.Tenant(1).alerts(e.data.Now(), e.data.Now().Add(-48*time.Hour))
	if len(a) == 0 || len(b) == 0 {
		t.Fatal("a tenant without alerts")
	}
	ids := map[string]bool{}
	for _, m := range e.ten.Tenant(1).w.machines {
		ids[m.ID] = true
	}
	for _, x := range a {
		for _, m := range x.ImpactedEntities.Machines {
			if ids[m.MachineID] {
				t.Fatal("tenant 1's alert names tenant 2's device")
			}
		}
	}
}

func TestDeviceListCarriesGroup(t *testing.T) {
	e := newEnv(t, nil)
	var ms []map[string]any
	e.portal(http.MethodGet, "/apiproxy/mtp/ndr/machines?pageSize=100", nil).json(t, &ms)
	groups := map[string]bool{}
	for _, m := range ms {
		if m["ComputerDnsName"] == "" {
			t.Error("device without ComputerDnsName")
		}
		g, _ := m["RbacGroupName"].(string)
		groups[g] = true
		if _, ok := m["RbacGroupId"].(float64); !ok {
			t.Error("device without RbacGroupId")
		}
	}
	if !groups["Servers"] || !groups["Workstations"] {
		t.Errorf("groups %v, want Servers and Workstations", groups)
	}
}
