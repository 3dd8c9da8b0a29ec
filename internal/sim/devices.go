package sim

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
)

// ---- device list (decision 12) ----

var riskRank = map[string]int{"None": 0, "Low": 1, "Medium": 2, "High": 3}

type ndrMachine struct {
	MachineID       string `json:"MachineId"`
	SenseMachineID  string `json:"SenseMachineId"`
	ComputerDNSName string `json:"ComputerDnsName"`
	OsPlatform      string `json:"OsPlatform"`
	LastSeen        string `json:"LastSeen"`
	FirstSeen       string `json:"FirstSeen"`
	HealthStatus    string `json:"HealthStatus"`
	RiskScore       string `json:"RiskScore"`
	Domain          string `json:"Domain"`
	// RbacGroupId/RbacGroupName: the device's machine group. The
	// reference's field list of this route has no group; the public
	// API's machine entity carries it as rbacGroupId/rbacGroupName, so
	// the emulator serves the portal's PascalCase spelling (inference).
	RbacGroupID   int    `json:"RbacGroupId"`
	RbacGroupName string `json:"RbacGroupName"`
	lastSeen      time.Time
}

func (t *Tenant) lastSeen(m machine, now time.Time) time.Time {
	off := time.Duration(strLabel(m.ID)%3600) * time.Second
	if m.Health == "Inactive" {
		return t.w.start.Add(-10*24*time.Hour - off)
	}
	ls := now.Truncate(time.Hour).Add(-off)
	if ls.Before(m.FirstSeen) {
		ls = m.FirstSeen
	}
	return ls
}

func (t *Tenant) hMachines(q *req) {
	idx, size, ok := t.pageParams(q, RouteMachines, 25, 1000)
	if !ok {
		return
	}
	days, ok := intParam(q, "lookingBackIndays", 180, 1)
	if !ok {
		return
	}
	desc, ok := sortOrderParam(q, "Descending")
	if !ok {
		return
	}
	field := "riskscore"
	if s, ok := param(q, "sortByField"); ok && s != "" {
		field = strings.ToLower(s)
	}
	prefix, _ := param(q, "machineSearchPrefix")
	var ms []ndrMachine
	for _, m := range t.w.machines {
		if prefix != "" && !strings.HasPrefix(strings.ToLower(m.DNS), strings.ToLower(prefix)) {
			continue
		}
		ls := t.lastSeen(m, q.now)
		if ls.Before(q.now.Add(-time.Duration(days) * 24 * time.Hour)) {
			continue
		}
		ms = append(ms, ndrMachine{MachineID: m.ID, SenseMachineID: m.ID, ComputerDNSName: m.DNS, OsPlatform: m.OS,
			LastSeen: fmt7Z(ls), FirstSeen: fmt7Z(m.FirstSeen), HealthStatus: m.Health, RiskScore: m.RiskScore, Domain: m.Domain,
			RbacGroupID: t.w.groupAt(m, q.now), RbacGroupName: groupName(t.w.groupAt(m, q.now)), lastSeen: ls})
	}
	var less func(a, b ndrMachine) int
	switch field {
	case "riskscore":
		less = func(a, b ndrMachine) int { return riskRank[a.RiskScore] - riskRank[b.RiskScore] }
	case "lastseen":
		less = func(a, b ndrMachine) int { return a.lastSeen.Compare(b.lastSeen) }
	case "computerdnsname":
		less = func(a, b ndrMachine) int { return strings.Compare(a.ComputerDNSName, b.ComputerDNSName) }
	default:
		portalFail(q, http.StatusBadRequest, "", fmt.Sprintf("The value '%s' is not valid for sortByField.", field))
		return
	}
	sort.SliceStable(ms, func(i, j int) bool {
		c := less(ms[i], ms[j])
		if c == 0 {
			return ms[i].MachineID < ms[j].MachineID // stable paging
		}
		if desc {
			return c > 0
		}
		return c < 0
	})
	q.json(http.StatusOK, page(ms, idx, size))
}

// ---- tenant context (decision 13) ----

func (t *Tenant) hTenantContext(q *req) {
	q.json(http.StatusOK, map[string]any{
		"AuthInfo":           map[string]any{"TenantId": t.w.tenantID, "UserName": t.w.users[0].UPN, "AadUserId": guid(rngFor(t.w.seed, lblTenant, 9))},
		"EnvironmentName":    "Prod",
		"OrgId":              t.w.tenantID,
		"GeoRegion":          "EU",
		"DataCenter":         "WEU",
		"IsMdatpActive":      true,
		"IsSentinelActive":   false,
		"IsMdiActive":        true,
		"ActiveMtpWorkloads": []string{"Mdatp", "Mdi", "Oatp", "Mcas"},
		"Features":           map[string]bool{"AutoIRLibraryApi": true, "HuntingSccProxyMigration": true, "HuntingQueryExecutorSccProxyMigration": true, "UseNewHuntingReportsProvider": true, "ResponseActionCenterNewPipeline": true},
	})
}

// ---- per-device response requests (docs/REFERENCE.md §1.7) ----

var requestTypeOf = map[string]string{
	"Isolate": "IsolationResponse", "Unisolate": "IsolationResponse", "RunAntiVirusScan": "ScanResponse",
	"CollectInvestigationPackage": "ForensicsResponse", "StopAndQuarantineFile": "StopAndQuarantineFileResponse",
	"RestrictCodeExecution": "RestrictExecutionResponse", "UnrestrictCodeExecution": "RestrictExecutionResponse",
	"LiveResponse": "LiveResponse",
}

func (t *Tenant) hRequestsLatest(q *req) {
	id, _ := param(q, "machineId")
	m, ok := t.w.machine(id)
	if !ok {
		portalFail(q, http.StatusBadRequest, "", "machineId must name a known device (40-hex SenseMachineId).")
		return
	}
	latest := map[string]maRecord{}
	for _, a := range t.machineActions(q.now, t.retentionFrom(q.now), q.now) {
		if a.MachineID == m.ID {
			latest[requestTypeOf[a.Type]] = a // ascending by creation: the last wins
		}
	}
	type request struct {
		RequestGUID        string `json:"RequestGuid"`
		MachineID          string `json:"MachineId"`
		RequestStatus      string `json:"RequestStatus"`
		Type               string `json:"Type"`
		RequestorComment   string `json:"RequestorComment"`
		Requestor          string `json:"Requestor"`
		CreationDateTime   string `json:"CreationDateTimeUtc"`
		LastUpdateDateTime string `json:"LastUpdateDateTimeUtc"`
		OsPlatform         string `json:"OsPlatform"`
		SenseClientVersion string `json:"SenseClientVersion"`
	}
	out := []request{}
	for typ, a := range latest {
		out = append(out, request{a.ID, m.ID, a.Status, typ, a.RequestorComment, a.Requestor, a.CreationDateTimeUtc, a.LastUpdateDateTimeUtc, m.OS, "10.8760.26100.1000"})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Type < out[j].Type })
	q.json(http.StatusOK, out)
}
