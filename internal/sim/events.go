package sim

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// ---- executed hunting queries (decision 3) ----

type queryRecord struct {
	QueryID       string  `json:"QueryId"`
	Timestamp     string  `json:"Timestamp"`
	QuerySource   string  `json:"QuerySource"`
	InitiatedBy   string  `json:"InitiatedBy"`
	ApplicationID *string `json:"ApplicationId"`
	QueryText     string  `json:"QueryText"`
	DurationMs    int     `json:"DurationMs"`
	CpuTimeMs     int     `json:"CpuTimeMs"`
	ResourceUsage string  `json:"ResourceUsage"`
	State         string  `json:"State"`
	RowCount      int     `json:"RowCount"`

	at      time.Time
	visible time.Time // at plus the ingestion lag
}

var portalQueries = []string{
	"DeviceProcessEvents | where Timestamp > ago(1d) | where FileName =~ 'rundll32.exe' | take 100",
	"DeviceNetworkEvents | where RemotePort == 3389 | summarize count() by DeviceName",
	"DeviceLogonEvents | where LogonType == 'RemoteInteractive' | project Timestamp, DeviceName, AccountName",
	"DeviceEvents | where ActionType startswith 'Asr' | summarize count() by ActionType",
	"AlertInfo | where Severity == 'High' | take 50",
	"DeviceFileEvents | where FolderPath has @'\\Temp\\' and FileName endswith '.ps1'",
	"DeviceRegistryEvents | where RegistryKey has 'Run' | take 200",
}

var apiQueries = []string{
	"DeviceInfo | summarize arg_max(Timestamp, *) by DeviceId",
	"DeviceProcessEvents | where Timestamp > ago(1h) | where ProcessCommandLine has 'mimikatz'",
	"DeviceNetworkEvents | where Timestamp > ago(1h) | summarize count() by RemoteUrl | top 100 by count_",
}

func (w *world) genQueries(h int64) []*queryRecord {
	hs := hourStart(h)
	if !hs.Add(time.Hour).After(w.dataFrom) {
		return nil
	}
	r := rngFor(w.seed, lblQueries, uint64(h))
	var out []*queryRecord
	usage := func(cpu int) string {
		switch {
		case cpu > 20000:
			return "High"
		case cpu > 4000:
			return "Medium"
		}
		return "Low"
	}
	add := func(at time.Time, src, by string, app *string, q string, failed bool) {
		d := 200 + r.IntN(30000)
		cpu := d * (1 + r.IntN(3)) / 2
		st := "Completed"
		rows := r.IntN(5000)
		if failed {
			st, rows = "Failed", 0
		} else if r.Float64() < 0.03 {
			st, rows = "Throttled", 0
		}
		out = append(out, &queryRecord{
			QueryID: guid(r), Timestamp: fmt7Z(at), QuerySource: src, InitiatedBy: by, ApplicationID: app,
			QueryText: q, DurationMs: d, CpuTimeMs: cpu, ResourceUsage: usage(cpu), State: st, RowCount: rows, at: at,
		})
	}
	pq, aq := portalQueries, apiQueries
	if w.scenario != ScenarioDefault {
		pq, aq = routinePortalQueries, routineAPIQueries
	}
	for n := r.IntN(4); n > 0; n-- {
		add(hs.Add(tick100ns(r, time.Hour)), "Portal", pick(r, w.users).UPN, nil, pick(r, pq), r.Float64() < 0.05)
	}
	for _, a := range w.queryApps(hs) {
		if r.Float64() < 0.6 {
			id := a.ID
			add(hs.Add(tick100ns(r, time.Hour)), "Api", a.Name, &id, pick(r, aq), false)
		}
	}
	for _, d := range w.rules {
		if t, ok := d.runsIn(h); ok {
			add(t, "CustomDetection", d.CreatedBy, nil, d.stateAt(t).Query, d.Failing)
		}
	}
	if w.abuse != nil {
		out = append(out, w.abuse.queries(w, h)...)
	}
	out = filterQueries(out, w.dataFrom)
	sort.SliceStable(out, func(i, j int) bool { return out[i].at.Before(out[j].at) })
	for _, q := range out {
		q.visible = q.at.Add(w.lagFor(lblLagQuery, q.QueryID, 0))
	}
	return out
}

func filterQueries(in []*queryRecord, from time.Time) []*queryRecord {
	out := in[:0]
	for _, q := range in {
		if !q.at.Before(from) {
			out = append(out, q)
		}
	}
	return out
}

// ---- device timeline (decision 4) ----

type tlEvent struct {
	at      time.Time
	visible time.Time // at plus the ingestion lag
	rid     int64
	raw     json.RawMessage
}

type tlKey struct {
	machine string
	hour    int64
}

// imageFile and tlMachine are maps in the JSON; structs with the keys in
// sorted order encode to the same bytes, faster.
type imageFile struct {
	FileName   string `json:"FileName"`
	FolderPath string `json:"FolderPath"`
}

type tlMachine struct {
	ComputerDNSName string `json:"ComputerDnsName"`
	MachineID       string `json:"MachineId"`
	OsPlatform      string `json:"OsPlatform"`
}

type procInfo struct {
	ImageFile   imageFile `json:"ImageFile"`
	CommandLine string    `json:"CommandLine"`
	ProcessID   int       `json:"ProcessId"`
	Sha1        string    `json:"Sha1"`
}

type tlUser struct {
	UserName   string `json:"UserName"`
	DomainName string `json:"DomainName"`
	Sid        string `json:"Sid"`
}

type tlJSON struct {
	ActionTime          string         `json:"ActionTime"`
	ActionTimeIsoString string         `json:"ActionTimeIsoString"`
	ActionType          string         `json:"ActionType"`
	AlertIds            []string       `json:"AlertIds"`
	Description         string         `json:"Description"`
	InitiatingProcess   *procInfo      `json:"InitiatingProcess"`
	IsCyberData         bool           `json:"IsCyberData"`
	Machine             tlMachine      `json:"Machine"`
	Process             *procInfo      `json:"Process"`
	ReportID            int64          `json:"ReportId"`
	SourceProvider      string         `json:"SourceProvider"`
	Tags                []string       `json:"Tags"`
	TypedDetails        map[string]any `json:"TypedDetails"`
	User                *tlUser        `json:"User"`
}

var (
	procNames = []string{"powershell.exe", "cmd.exe", "msedge.exe", "svchost.exe", "explorer.exe", "outlook.exe", "teams.exe", "python.exe", "winword.exe", "rundll32.exe"}
	tlKinds   = []string{"ProcessCreated", "ConnectionSuccess", "FileCreated", "RegistryValueSet", "LogonSuccess"}
	remotes   = []string{"13.107.42.14", "52.96.165.18", "20.190.151.7", "104.18.32.12", "185.199.108.133", "10.0.4.21"}
)

// genTimeline builds one machine-hour of timeline events, newest first.
// Operation events (Live Response, isolation, ...) are merged in from the
// operation buckets that can reach into this hour.
func (t *Tenant) genTimeline(k tlKey) []tlEvent {
	w := t.w
	hs := hourStart(k.hour)
	m, ok := w.machine(k.machine)
	if !ok || !hs.Add(time.Hour).After(w.tlFrom) {
		return nil
	}
	r := rngFor(w.seed, lblTimeline, strLabel(m.ID), uint64(k.hour))
	type draft struct {
		at time.Time
		j  tlJSON
	}
	var ds []draft
	user := w.users[int(strLabel(m.ID)%uint64(len(w.users)))]
	u := &tlUser{UserName: user.Name, DomainName: strings.ToUpper(w.orgName), Sid: user.SID}
	proc := func(name string) *procInfo {
		return &procInfo{
			ImageFile:   imageFile{FileName: name, FolderPath: `C:\Windows\System32\` + name},
			CommandLine: name + " " + pick(r, []string{"", "-NoProfile", "/c whoami", "--type=renderer", "-k netsvcs"}),
			ProcessID:   1000 + r.IntN(30000), Sha1: hexN(r, 40),
		}
	}
	n := w.tlPerHour
	if n > 0 {
		n = n/2 + r.IntN(n+1)
	}
	for i := 0; i < n; i++ {
		at := hs.Add(tick100ns(r, time.Hour))
		kind := pick(r, tlKinds)
		j := tlJSON{ActionType: kind, InitiatingProcess: proc(pick(r, procNames)), User: u}
		switch kind {
		case "ProcessCreated":
			p := proc(pick(r, procNames))
			j.Process = p
			j.Description = fmt.Sprintf("%s created process %s", j.InitiatingProcess.ImageFile.FileName, p.ImageFile.FileName)
		case "ConnectionSuccess":
			ip := pick(r, remotes)
			port := pick(r, []int{443, 80, 445, 3389, 5985})
			j.TypedDetails = map[string]any{"RemoteIP": ip, "RemotePort": port}
			j.Description = fmt.Sprintf("%s established connection with %s:%d", j.InitiatingProcess.ImageFile.FileName, ip, port)
		case "FileCreated":
			f := pick(r, []string{"report.docx", "setup.msi", "data.zip", "script.ps1", "invoice.pdf"})
			j.TypedDetails = map[string]any{"FileName": f, "FolderPath": `C:\Users\` + user.Name + `\Downloads`}
			j.Description = fmt.Sprintf("%s created file %s", j.InitiatingProcess.ImageFile.FileName, f)
		case "RegistryValueSet":
			j.TypedDetails = map[string]any{"RegistryKey": `HKEY_CURRENT_USER\Software\Microsoft\Windows\CurrentVersion\Run`, "RegistryValueName": "Updater"}
			j.Description = fmt.Sprintf("%s set registry value Updater", j.InitiatingProcess.ImageFile.FileName)
		case "LogonSuccess":
			lt := pick(r, []string{"Interactive", "RemoteInteractive", "Network", "Unlock"})
			j.TypedDetails = map[string]any{"LogonType": lt}
			j.Description = fmt.Sprintf("%s\\%s logged on (%s)", strings.ToUpper(w.orgName), user.Name, lt)
		}
		ds = append(ds, draft{at, j})
	}
	for oh := k.hour - int64(maxOpSpan/time.Hour); oh <= k.hour; oh++ {
		for _, s := range t.ops(oh).tl {
			if s.MachineID != m.ID || hourOf(s.At) != k.hour || s.At.Before(w.tlFrom) {
				continue
			}
			j := tlJSON{ActionType: s.ActionType, Description: s.Description, Tags: []string{"ResponseAction"},
				InitiatingProcess: &procInfo{ImageFile: imageFile{FileName: "SenseIR.exe", FolderPath: `C:\Program Files\Windows Defender Advanced Threat Protection\SenseIR.exe`}, CommandLine: `"SenseIR.exe" "OnlineSenseIR"`, ProcessID: 4400 + int(oh%1000)}}
			if s.UPN != "" {
				name, _, _ := strings.Cut(s.UPN, "@")
				j.User = &tlUser{UserName: name, DomainName: strings.ToUpper(w.orgName)}
			}
			ds = append(ds, draft{s.At, j})
		}
	}
	ds2 := ds[:0]
	for _, d := range ds {
		if !d.at.Before(w.tlFrom) {
			ds2 = append(ds2, d)
		}
	}
	ds = ds2
	// Sort indices (a draft is large): the same stable order.
	order := make([]int, len(ds))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(i, j int) bool { return ds[order[i]].at.Before(ds[order[j]].at) })
	out := make([]tlEvent, len(ds))
	for i, oi := range order {
		d := ds[oi]
		rid := k.hour*10000 + int64(i)
		d.j.ActionTime = fmt7Z(d.at)
		d.j.ActionTimeIsoString = fmt7Z(d.at)
		d.j.ReportID = rid
		d.j.SourceProvider = "MDE"
		d.j.Machine = tlMachine{MachineID: m.ID, ComputerDNSName: m.DNS, OsPlatform: m.OS}
		if d.j.AlertIds == nil {
			d.j.AlertIds = []string{}
		}
		if d.j.Tags == nil {
			d.j.Tags = []string{}
		}
		// Newest first.
		vis := d.at.Add(w.lagFor(lblLagTimeline, m.ID, rid))
		out[len(ds)-1-i] = tlEvent{at: d.at, visible: vis, rid: rid, raw: mustJSON(d.j)}
	}
	return out
}
