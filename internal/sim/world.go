package sim

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// machine is one onboarded device.
type machine struct {
	ID        string // 40-hex SenseMachineId
	Name      string // short host name
	DNS       string // FQDN
	OS        string
	Group     int // MachineGroupId
	RiskScore string
	Health    string
	FirstSeen time.Time
	Server    bool
	Domain    string
}

type user struct {
	UPN  string
	Name string
	SID  string
}

// apiApp is an Entra application that calls the Defender API.
type apiApp struct {
	ID      string
	Name    string
	Appears time.Time // zero: exists from the start of history
	Actor   bool      // performs response actions
	Queries bool      // runs advanced hunting queries
	// Calls, when set, are the times of every API call the app makes
	// (a scripted app: its connected-apps statistics count them).
	Calls []time.Time
}

// world is the static part of the tenant: who and what exists. Everything
// that happens over time is generated from it lazily, per time bucket.
type world struct {
	seed      int64
	start     time.Time
	dataFrom  time.Time // oldest event data
	tlFrom    time.Time // oldest timeline data
	tenantID  string
	domain    string
	orgName   string
	machines  []machine
	byID      map[string]int
	users     []user
	apps      []apiApp
	rules     []detectionRule
	tlPerHour int
	lag       time.Duration // Options.IngestionLag
	// scenario is Options.Scenario; abuse is the scripted attack (nil
	// unless the scenario is "abuse").
	scenario string
	abuse    *abusePlan
}

var (
	orgNames   = []string{"contoso", "fabrikam", "woodgrove", "northwind", "tailspin", "adatum"}
	firstNames = []string{"alex", "megan", "diego", "isaiah", "lidia", "nestor", "patti", "pradeep", "lynne", "johanna", "grady", "adele", "henrietta", "miriam"}
	lastNames  = []string{"wilber", "bowen", "siciliani", "langer", "holloway", "wilke", "fernandez", "gupta", "robbins", "lauer", "archie", "vance", "mueller", "graham"}
	wsPrefixes = []string{"WS-FIN", "WS-HR", "WS-ENG", "WS-SALES", "LT-EXEC", "LT-DEV"}
	srvNames   = []string{"SRV-DC01", "SRV-DC02", "SRV-SQL01", "SRV-FILE01", "SRV-WEB01", "SRV-APP02", "SRV-JUMP01", "SRV-EXCH01"}
	wsOS       = []string{"Windows11", "Windows11", "Windows10", "macOS", "Linux"}
	srvOS      = []string{"WindowsServer2022", "WindowsServer2019", "WindowsServer2022", "Linux"}
)

// newWorld builds the world of tenant index (0: the first) from o.Seed.
// The organisation of a later tenant carries its number (fabrikam2,
// contoso3, …), so no two tenants share a domain, a UPN or a host name.
func newWorld(o Options, index int) *world {
	r := rngFor(o.Seed, lblTenant)
	w := &world{
		seed:      o.Seed,
		start:     o.Start,
		dataFrom:  o.Start.Add(-o.History),
		tlFrom:    o.Start.Add(-o.TimelineHistory),
		orgName:   pick(r, orgNames),
		tlPerHour: o.TimelineEventsPerMachineHour,
		lag:       o.IngestionLag,
		byID:      map[string]int{},
		scenario:  o.Scenario,
	}
	w.tenantID = guid(r)
	if o.TenantID != "" {
		w.tenantID = o.TenantID
	}
	if index > 0 {
		w.orgName += fmt.Sprint(index + 1)
	}
	w.domain = w.orgName + ".com"

	// Users: a dozen analysts and admins.
	seen := map[string]bool{}
	for len(w.users) < 12 {
		f, l := pick(r, firstNames), pick(r, lastNames)
		upn := f + "." + l + "@" + w.domain
		if seen[upn] {
			continue
		}
		seen[upn] = true
		w.users = append(w.users, user{
			UPN:  upn,
			Name: f + "." + l,
			SID:  fmt.Sprintf("S-1-5-21-%d-%d-%d-%d", 1000000000+r.IntN(99999999), 1000000000+r.IntN(99999999), 1000000000+r.IntN(99999999), 1100+len(w.users)),
		})
	}

	// Machines: mostly workstations, a handful of servers.
	mr := rngFor(o.Seed, lblMachines)
	names := map[string]bool{}
	for i := 0; len(w.machines) < o.Machines; i++ {
		var m machine
		if i%5 == 4 {
			base := srvNames[(i/5)%len(srvNames)]
			m.Name = base
			if names[m.Name] {
				m.Name = fmt.Sprintf("%s-%02d", base, i)
			}
			m.OS = pick(mr, srvOS)
			m.Server = true
			m.Group = 2
		} else {
			m.Name = fmt.Sprintf("%s-%03d", pick(mr, wsPrefixes), 10+mr.IntN(900))
			m.OS = pick(mr, wsOS)
			m.Group = 1
			if strings.HasPrefix(m.Name, "LT-EXEC") {
				m.Group = 3
			}
		}
		if names[m.Name] {
			// i is unique, so the suffixed name is too (keeps large
			// Machines values from looping).
			m.Name = fmt.Sprintf("%s-%d", m.Name, i)
		}
		names[m.Name] = true
		m.ID = hexN(mr, 40)
		m.Domain = w.domain
		m.DNS = strings.ToLower(m.Name) + "." + w.domain
		m.RiskScore = pick(mr, []string{"None", "Low", "Low", "Medium", "High"})
		m.Health = pick(mr, []string{"Active", "Active", "Active", "Inactive", "ImpairedCommunication"})
		m.FirstSeen = w.dataFrom.Add(-time.Duration(24+mr.IntN(24*300)) * time.Hour).Add(tick100ns(mr, time.Hour))
		w.byID[m.ID] = len(w.machines)
		w.machines = append(w.machines, m)
	}

	// API apps. The first three act on machines; the last one appears later
	// and is the "new connected app" a detection should catch.
	ar := rngFor(o.Seed, lblTenant, 2)
	w.apps = []apiApp{
		{ID: guid(ar), Name: "MDE-SOAR-Connector", Actor: true, Queries: true},
		{ID: guid(ar), Name: "Sentinel-Playbook-Isolate", Actor: true},
		{ID: guid(ar), Name: "VulnMgmt-Integration", Queries: true},
		{ID: guid(ar), Name: "IR-Automation-Test", Actor: true, Appears: o.Start.Add(ChangeConnectedAppAdded)},
	}
	if w.scenario != ScenarioDefault {
		// A normal day has no new connected app.
		w.apps = w.apps[:3]
	}
	w.rules = newRules(w, rngFor(o.Seed, lblTenant, 3))
	if w.scenario == ScenarioAbuse {
		w.abuse = newAbusePlan(w, o.AbuseAt)
		w.apps = append(w.apps, w.abuse.app) // acts only as scripted
	}
	return w
}

func (w *world) machine(id string) (machine, bool) {
	i, ok := w.byID[strings.ToLower(id)]
	if !ok {
		return machine{}, false
	}
	return w.machines[i], true
}

func (w *world) appActive(a apiApp, t time.Time) bool {
	return a.Appears.IsZero() || !t.Before(a.Appears)
}

// actorApps returns the apps allowed to act at t.
func (w *world) actorApps(t time.Time) []apiApp {
	var out []apiApp
	for _, a := range w.apps {
		if a.Actor && w.appActive(a, t) {
			out = append(out, a)
		}
	}
	return out
}

func (w *world) queryApps(t time.Time) []apiApp {
	var out []apiApp
	for _, a := range w.apps {
		if a.Queries && w.appActive(a, t) {
			out = append(out, a)
		}
	}
	return out
}

func (w *world) randomMachine(r *rand.Rand) machine { return w.machines[r.IntN(len(w.machines))] }

func (w *world) randomServer(r *rand.Rand) machine {
	var s []machine
	for _, m := range w.machines {
		if m.Server {
			s = append(s, m)
		}
	}
	if len(s) == 0 {
		return w.randomMachine(r)
	}
	return pick(r, s)
}
