package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ---- alert queue: POST /apiproxy/mtp/alertsApiService/alerts ----
//
// The request body is the portal's (XDRInternals Get-XdrAlert):
// {"sortByField":"LastEventTime","order":"desc","daysAgo":"7",
// "shouldReturnAlertsLinkedBy":false,"pageNumber":1,"pageSize":60}
// with optional "severity", "status" (arrays) and "IncidentIds". The
// answer is {"entities":[…],"totalEntities":N}; alerts carry alertId,
// alertDisplayName, severity, status, incidentId, startTimeUtc,
// endTimeUtc, timeGenerated and impactedEntities (XI). Where the devices
// of an alert sit inside impactedEntities is not public: the emulator
// puts them under impactedEntities.machines (machineId, senseMachineId,
// computerDnsName) — an inference, which is why the harvester reads
// several shapes.

const (
	// alertsMaxPageSize is the most alerts one page holds; a larger
	// pageSize is served in pages of this size (totals stay complete).
	// It is deliberately below the harvester's default alert page size.
	alertsMaxPageSize = 50
	alertsDefPageSize = 30
	// alertsMaxDays is the longest daysAgo the queue accepts.
	alertsMaxDays = 180
	lblAlerts     = 0xa1e7
)

var (
	alertTitles = []string{
		"Suspicious PowerShell command line", "Possible credential dumping via LSASS access",
		"Suspicious scheduled task creation", "Ransomware behavior detected in the file system",
		"Suspicious remote service installation", "Anomalous account lookups",
		"Suspicious process injection observed", "Malware was detected in a file",
	}
	alertSeverities = []string{"Informational", "Low", "Medium", "High"}
	alertStatuses   = []string{"New", "InProgress", "Resolved"}
	alertSortFields = []string{"LastEventTime", "FirstEventTime", "TimeGenerated", "Severity"}
	alertBodyKeys   = []string{"sortByField", "order", "daysAgo", "shouldReturnAlertsLinkedBy", "pageNumber", "pageSize", "severity", "status", "IncidentIds"}
)

type alertMachine struct {
	MachineID       string `json:"machineId"`
	SenseMachineID  string `json:"senseMachineId"`
	ComputerDNSName string `json:"computerDnsName"`
	RbacGroupName   string `json:"rbacGroupName"`
}

type alertUser struct {
	UserName   string `json:"userName"`
	DomainName string `json:"domainName"`
}

type alertRecord struct {
	AlertID          string `json:"alertId"`
	AlertDisplayName string `json:"alertDisplayName"`
	ProviderName     string `json:"providerName"`
	DetectionSource  string `json:"detectionSource"`
	Severity         string `json:"severity"`
	Status           string `json:"status"`
	IncidentID       int64  `json:"incidentId"`
	FirstEventTime   string `json:"firstEventTime"`
	LastEventTime    string `json:"lastEventTime"`
	StartTimeUtc     string `json:"startTimeUtc"`
	EndTimeUtc       string `json:"endTimeUtc"`
	TimeGenerated    string `json:"timeGenerated"`
	LastUpdated      string `json:"lastUpdated"`
	ImpactedEntities struct {
		Machines []alertMachine `json:"machines"`
		Users    []alertUser    `json:"users"`
	} `json:"impactedEntities"`
	first, last, generated time.Time
}

// alertProne reports whether device i raises alerts: every third device,
// so a selection by alerts is a strict subset of the devices.
func alertProne(i int) bool { return i%3 == 0 }

// alerts returns the tenant's alerts whose last event is in [from, now],
// deterministic per seed: each hour holds 0–2 alerts, most on an
// alert-prone device, some (identity alerts) on none.
func (t *Tenant) alerts(now, from time.Time) []alertRecord {
	var prone []int
	for i := range t.w.machines {
		if alertProne(i) {
			prone = append(prone, i)
		}
	}
	if from.Before(t.w.dataFrom) {
		from = t.w.dataFrom
	}
	var out []alertRecord
	// An alert's events span at most 2 h, so start two hours earlier.
	for h := from.Truncate(time.Hour).Add(-2 * time.Hour); !h.After(now); h = h.Add(time.Hour) {
		hour := uint64(h.Unix() / 3600)
		r := rngFor(t.w.seed, lblAlerts, hour)
		n := r.IntN(3)
		for k := range n {
			first := h.Add(tick100ns(r, time.Hour))
			last := first.Add(tick100ns(r, 2*time.Hour))
			gen := last.Add(time.Duration(1+r.IntN(10)) * time.Minute)
			a := alertRecord{
				AlertID:          fmt.Sprintf("da%s_%d", hexN(r, 30), k),
				AlertDisplayName: pick(r, alertTitles),
				ProviderName:     "Microsoft Defender for Endpoint",
				DetectionSource:  "EDR",
				Severity:         pick(r, alertSeverities),
				Status:           pick(r, alertStatuses),
				IncidentID:       int64(1000 + hour%100000),
				first:            first, last: last, generated: gen,
			}
			a.FirstEventTime, a.LastEventTime = fmt7Z(first), fmt7Z(last)
			a.StartTimeUtc, a.EndTimeUtc = a.FirstEventTime, a.LastEventTime
			a.TimeGenerated, a.LastUpdated = fmt7Z(gen), fmt7Z(gen)
			u := pick(r, t.w.users)
			name, _, _ := strings.Cut(u.UPN, "@")
			a.ImpactedEntities.Users = []alertUser{{UserName: name, DomainName: t.w.domain}}
			a.ImpactedEntities.Machines = []alertMachine{}
			if len(prone) > 0 && r.IntN(6) != 0 {
				// Most alerts name one device, some two.
				for range 1 + r.IntN(4)/3 {
					m := t.w.machines[prone[r.IntN(len(prone))]]
					a.ImpactedEntities.Machines = append(a.ImpactedEntities.Machines, alertMachine{m.ID, m.ID, m.DNS, groupName(t.w.groupAt(m, gen))})
				}
			} else {
				a.DetectionSource, a.ProviderName = "AAD", "Microsoft Entra ID Protection"
			}
			if gen.After(now) || last.Before(from) {
				continue // not raised yet, or outside the range asked
			}
			out = append(out, a)
		}
	}
	return out
}

// groupName is the name of machine group id (the groups of machineGroups).
func groupName(id int) string {
	switch id {
	case 1:
		return "Workstations"
	case 2:
		return "Servers"
	case 3:
		return "Executives"
	}
	return "Ungrouped devices (default)"
}

func (t *Tenant) hAlerts(q *req) {
	body, err := q.readBody(1 << 16)
	if err != nil {
		portalFail(q, http.StatusRequestEntityTooLarge, "", "The request body is too large.")
		return
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil || raw == nil {
		portalFail(q, http.StatusBadRequest, "", `The request body must be a JSON object such as {"sortByField":"LastEventTime","order":"desc","daysAgo":"7","pageNumber":1,"pageSize":30}.`)
		return
	}
	// ASP.NET binds members case-insensitively; unknown ones are refused.
	in := map[string]json.RawMessage{}
	for k, v := range raw {
		known := ""
		for _, n := range alertBodyKeys {
			if strings.EqualFold(k, n) {
				known = n
			}
		}
		if known == "" {
			portalFail(q, http.StatusBadRequest, "", fmt.Sprintf("The request member '%s' is not known: use %s.", k, strings.Join(alertBodyKeys, ", ")))
			return
		}
		in[known] = v
	}
	bad := func(msg string) { portalFail(q, http.StatusBadRequest, "", msg) }
	num := func(name string, def, lo, hi int) (int, bool) {
		v, ok := in[name]
		if !ok {
			return def, true
		}
		v = bytes.TrimSpace(v)
		s := string(v)
		if len(v) > 0 && v[0] == '"' {
			_ = json.Unmarshal(v, &s)
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < lo || n > hi {
			bad(fmt.Sprintf("The value '%s' is not valid for %s: use a whole number from %d to %d.", clipValue(string(v)), name, lo, hi))
			return 0, false
		}
		return n, true
	}
	str := func(name, def string, allowed []string) (string, bool) {
		v, ok := in[name]
		if !ok {
			return def, true
		}
		var s string
		if json.Unmarshal(v, &s) == nil {
			for _, a := range allowed {
				if strings.EqualFold(s, a) {
					return a, true
				}
			}
		}
		bad(fmt.Sprintf("The value '%s' is not valid for %s: use one of %s.", clipValue(string(v)), name, strings.Join(allowed, ", ")))
		return "", false
	}
	set := func(name string, allowed []string) (map[string]bool, bool) {
		v, ok := in[name]
		if !ok || string(bytes.TrimSpace(v)) == "null" {
			return nil, true
		}
		var ss []string
		if json.Unmarshal(v, &ss) != nil {
			bad(fmt.Sprintf("%s must be an array of %s.", name, strings.Join(allowed, ", ")))
			return nil, false
		}
		out := map[string]bool{}
		for _, s := range ss {
			found := false
			for _, a := range allowed {
				if strings.EqualFold(s, a) {
					out[a], found = true, true
				}
			}
			if !found {
				bad(fmt.Sprintf("The value '%s' is not valid for %s: use %s.", clipValue(s), name, strings.Join(allowed, ", ")))
				return nil, false
			}
		}
		return out, true
	}
	field, ok := str("sortByField", "LastEventTime", alertSortFields)
	if !ok {
		return
	}
	order, ok := str("order", "desc", []string{"desc", "asc"})
	if !ok {
		return
	}
	days, ok := num("daysAgo", 7, 1, alertsMaxDays)
	if !ok {
		return
	}
	pageNumber, ok := num("pageNumber", 1, 1, 1<<20)
	if !ok {
		return
	}
	size, ok := num("pageSize", alertsDefPageSize, 1, 10000)
	if !ok {
		return
	}
	if v, present := in["shouldReturnAlertsLinkedBy"]; present {
		var b bool
		if json.Unmarshal(v, &b) != nil {
			bad("shouldReturnAlertsLinkedBy must be true or false.")
			return
		}
	}
	sev, ok := set("severity", alertSeverities)
	if !ok {
		return
	}
	st, ok := set("status", alertStatuses)
	if !ok {
		return
	}
	var incidents map[int64]bool
	if v, present := in["IncidentIds"]; present && string(bytes.TrimSpace(v)) != "null" {
		var ids []int64
		if json.Unmarshal(v, &ids) != nil {
			bad("IncidentIds must be an array of incident numbers.")
			return
		}
		incidents = map[int64]bool{}
		for _, id := range ids {
			incidents[id] = true
		}
	}
	size = t.clamp(RouteAlerts, min(size, alertsMaxPageSize))

	var all []alertRecord
	for _, a := range t.alerts(q.now, q.now.Add(-time.Duration(days)*24*time.Hour)) {
		if (sev != nil && !sev[a.Severity]) || (st != nil && !st[a.Status]) || (incidents != nil && !incidents[a.IncidentID]) {
			continue
		}
		all = append(all, a)
	}
	sevRank := map[string]int{"Informational": 0, "Low": 1, "Medium": 2, "High": 3}
	key := func(a alertRecord) int64 {
		switch field {
		case "FirstEventTime":
			return a.first.UnixNano()
		case "TimeGenerated":
			return a.generated.UnixNano()
		case "Severity":
			return int64(sevRank[a.Severity])
		}
		return a.last.UnixNano()
	}
	sort.SliceStable(all, func(i, j int) bool {
		ki, kj := key(all[i]), key(all[j])
		if ki == kj {
			return all[i].AlertID < all[j].AlertID // stable paging
		}
		if order == "desc" {
			return ki > kj
		}
		return ki < kj
	})
	q.json(http.StatusOK, struct {
		Entities      []alertRecord `json:"entities"`
		TotalEntities int           `json:"totalEntities"`
	}{page(all, pageNumber, size), len(all)})
}

// clipValue keeps error messages short.
func clipValue(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
