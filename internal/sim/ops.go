package sim

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// maxOpSpan bounds how long after its start an operation can still change
// (last status update). Queries by update time scan this far back.
const maxOpSpan = 3 * time.Hour

// Machine action statuses (public API, D.3).
const (
	stPending    = "Pending"
	stInProgress = "InProgress"
	stSucceeded  = "Succeeded"
	stFailed     = "Failed"
	stTimeOut    = "TimeOut"
	stCancelled  = "Cancelled"
)

type maState struct {
	At      time.Time
	Status  string
	Visible time.Time // when the service shows it (At plus the ingestion lag)
}

type lrParam struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

type lrCommand struct {
	Type   string // PutFile | RunScript | GetFile
	Params []lrParam
	Start  time.Time // zero: never started
	End    time.Time
	Failed bool
}

func (c lrCommand) raw() string {
	get := func(k string) string {
		for _, p := range c.Params {
			if p.Key == k {
				return p.Value
			}
		}
		return ""
	}
	switch c.Type {
	case "RunScript":
		s := "run " + get("ScriptName")
		if a := get("Args"); a != "" {
			s += " " + a
		}
		return s
	case "GetFile":
		return `getfile "` + get("Path") + `"`
	default:
		return "putfile " + get("FileName")
	}
}

// machineAction is one response action with its whole life cycle; what a
// client sees depends on the data clock (see view).
type machineAction struct {
	ID               string
	Type             string
	Title            string
	Requestor        string
	RequestorComment string
	MachineID        string
	DNS              string
	States           []maState // ascending; States[0] is creation (Pending)
	Scope            *string
	RequestSource    string
	RelatedFile      *relatedFileInfo
	Commands         []lrCommand
	CancelRequestor  string
	CancelComment    string
	ErrorHResult     int
	DecidedBy        string // Action Center attribution (app name or UPN)
	Portal           bool
}

type relatedFileInfo struct {
	FileIdentifier     string `json:"fileIdentifier"`
	FileIdentifierType string `json:"fileIdentifierType"`
}

func (a *machineAction) created() time.Time { return a.States[0].At }

// state returns the index of the latest state visible at now, or -1. With
// ingestion lag a later state can show before an earlier one: the store
// then holds the later write, as a service's store would.
func (a *machineAction) state(now time.Time) int {
	i := -1
	for j, s := range a.States {
		if !s.visibleAt().After(now) {
			i = j
		}
	}
	return i
}

func (s maState) visibleAt() time.Time {
	if s.Visible.IsZero() {
		return s.At
	}
	return s.Visible
}

// maCommandJSON and maRecord reproduce the documented field order (D.3).
type maCommandJSON struct {
	Index         int       `json:"index"`
	StartTime     *string   `json:"startTime"`
	EndTime       *string   `json:"endTime"`
	CommandStatus string    `json:"commandStatus"`
	Errors        []string  `json:"errors"`
	Command       maCommand `json:"command"`
}

type maCommand struct {
	Type   string    `json:"type"`
	Params []lrParam `json:"params"`
}

type maRecord struct {
	ID                      string           `json:"id"`
	Type                    string           `json:"type"`
	Title                   string           `json:"title"`
	Requestor               string           `json:"requestor"`
	RequestorComment        string           `json:"requestorComment"`
	Status                  string           `json:"status"`
	MachineID               string           `json:"machineId"`
	ComputerDNSName         string           `json:"computerDnsName"`
	CreationDateTimeUtc     string           `json:"creationDateTimeUtc"`
	LastUpdateDateTimeUtc   string           `json:"lastUpdateDateTimeUtc"`
	CancellationRequestor   *string          `json:"cancellationRequestor"`
	CancellationComment     *string          `json:"cancellationComment"`
	CancellationDateTimeUtc *string          `json:"cancellationDateTimeUtc"`
	ErrorHResult            int              `json:"errorHResult"`
	Scope                   *string          `json:"scope"`
	ExternalID              *string          `json:"externalId"`
	RequestSource           string           `json:"requestSource"`
	RelatedFileInfo         *relatedFileInfo `json:"relatedFileInfo"`
	Commands                []maCommandJSON  `json:"commands"`
	TroubleshootInfo        any              `json:"troubleshootInfo"`

	created, updated time.Time
}

// view renders the action as the public API shows it at now. ok is false
// when the action does not exist yet.
func (a *machineAction) view(now time.Time) (maRecord, bool) {
	si := a.state(now)
	if si < 0 {
		return maRecord{}, false
	}
	st := a.States[si]
	rec := maRecord{
		ID: a.ID, Type: a.Type, Title: a.Title, Requestor: a.Requestor,
		RequestorComment: a.RequestorComment, Status: st.Status,
		MachineID: a.MachineID, ComputerDNSName: a.DNS,
		CreationDateTimeUtc:   fmt7Z(a.created()),
		LastUpdateDateTimeUtc: fmt7Z(st.At),
		ErrorHResult:          0,
		Scope:                 a.Scope,
		RequestSource:         a.RequestSource,
		RelatedFileInfo:       a.RelatedFile,
		Commands:              []maCommandJSON{},
		created:               a.created(),
		updated:               st.At,
	}
	if st.Status == stCancelled {
		r, c, d := a.CancelRequestor, a.CancelComment, fmt7Z(st.At)
		rec.CancellationRequestor, rec.CancellationComment, rec.CancellationDateTimeUtc = &r, &c, &d
	}
	if st.Status == stFailed {
		rec.ErrorHResult = a.ErrorHResult
	}
	// Under ingestion lag the commands cannot be further along than the
	// next state, which is not visible yet.
	cmdNow := now
	if si+1 < len(a.States) && a.States[si+1].At.Before(cmdNow) {
		cmdNow = a.States[si+1].At
	}
	for i, c := range a.Commands {
		cj := maCommandJSON{Index: i, CommandStatus: "Created", Errors: []string{}, Command: maCommand{Type: c.Type, Params: c.Params}}
		if !c.Start.IsZero() && !c.Start.After(cmdNow) {
			s := fmt7Z(c.Start)
			cj.StartTime = &s
			if !c.End.After(cmdNow) {
				e := fmt7Z(c.End)
				cj.EndTime = &e
				cj.CommandStatus = "Completed"
				if c.Failed {
					cj.CommandStatus = "Failed"
					cj.Errors = []string{"The command failed on the device: access is denied."}
				}
			}
		}
		rec.Commands = append(rec.Commands, cj)
	}
	return rec, true
}

// acRecord is one Action Center history row, in the fixture's field order.
type acRecord struct {
	InvestigationID   *int64           `json:"InvestigationId"`
	ActionID          string           `json:"ActionId"`
	StartTime         string           `json:"StartTime"`
	EndTime           *string          `json:"EndTime"`
	ActionType        string           `json:"ActionType"`
	ActionDecision    *string          `json:"ActionDecision"`
	DecidedBy         string           `json:"DecidedBy"`
	Comment           *string          `json:"Comment"`
	RelatedEntities   []map[string]any `json:"RelatedEntities"`
	AdditionalFields  map[string]any   `json:"AdditionalFields"`
	EntityType        string           `json:"EntityType"`
	EventTime         string           `json:"EventTime"`
	ActionStatus      string           `json:"ActionStatus"`
	ActionSource      string           `json:"ActionSource"`
	Product           string           `json:"Product"`
	MachineID         string           `json:"MachineId"`
	ComputerName      string           `json:"ComputerName"`
	UserPrincipalName *string          `json:"UserPrincipalName"`
	eventTime         time.Time
	visible           time.Time // eventTime plus the ingestion lag
}

// tlSeed is a timeline event caused by an operation (response action,
// Live Response command) on a machine.
type tlSeed struct {
	MachineID   string
	At          time.Time
	ActionType  string
	Description string
	UPN         string
}

type opsBucket struct {
	actions []*machineAction // public-API visible actions created in this hour
	ac      []*acRecord      // Action Center rows of operations started in this hour
	tl      []tlSeed
}

var (
	portalLRCommands = []string{
		"processes",
		"connections",
		"scheduledtasks",
		"run memdump.ps1 -ProcessName lsass",
		"run collect-triage.ps1",
		`getfile "C:\Users\%s\Downloads\invoice_2024.zip"`,
		`getfile "C:\Users\%s\AppData\Roaming\Microsoft\Windows\Recent\notes.lnk"`,
		"putfile tools.exe",
		"putfile collect-triage.ps1",
		`remediate file "C:\Users\Public\payload.dll"`,
		`analyze file "C:\Users\Public\payload.dll"`,
		`findfile payload.dll`,
		`registry "HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Run"`,
		`dir C:\Users\%s\AppData\Local\Temp`,
		"library",
	}
	responseTypes = []string{"Isolate", "Unisolate", "RunAntiVirusScan", "CollectInvestigationPackage", "StopAndQuarantineFile", "RestrictCodeExecution", "UnrestrictCodeExecution"}
	acTypeOf      = map[string]string{
		"Isolate":                     "IsolateResponse",
		"Unisolate":                   "UnIsolateResponse",
		"RunAntiVirusScan":            "AntivirusScanResponse",
		"CollectInvestigationPackage": "CollectInvestigationPackageResponse",
		"StopAndQuarantineFile":       "StopAndQuarantineFileResponse",
		"RestrictCodeExecution":       "RestrictCodeExecutionResponse",
		"UnrestrictCodeExecution":     "UnrestrictCodeExecutionResponse",
		"LiveResponse":                "LiveResponseCommand",
	}
	tlTypeOf = map[string]string{
		"Isolate":                     "MachineIsolated",
		"Unisolate":                   "MachineReleasedFromIsolation",
		"RunAntiVirusScan":            "AntivirusScanStarted",
		"CollectInvestigationPackage": "InvestigationPackageCollected",
		"StopAndQuarantineFile":       "FileQuarantined",
		"RestrictCodeExecution":       "AppExecutionRestricted",
		"UnrestrictCodeExecution":     "AppExecutionRestrictionRemoved",
	}
	comments = []string{"Suspicious activity reported by user", "Incident 4312 containment", "Automated playbook response", "Routine triage", "Alert: possible credential theft", "Post-remediation release", "Malware alert follow-up"}
	apiLR    = [][]lrCommand{
		{{Type: "RunScript", Params: []lrParam{{"ScriptName", "minidump.ps1"}, {"Args", "OfficeClickToRun"}}}, {Type: "GetFile", Params: []lrParam{{"Path", `C:\windows\TEMP\OfficeClickToRun.dmp.zip`}}}},
		{{Type: "PutFile", Params: []lrParam{{"FileName", "collect-triage.ps1"}}}, {Type: "RunScript", Params: []lrParam{{"ScriptName", "collect-triage.ps1"}}}},
		{{Type: "GetFile", Params: []lrParam{{"Path", `C:\Windows\System32\winevt\Logs\Security.evtx`}}}},
	}
)

func (w *world) genOps(h int64) *opsBucket {
	b := &opsBucket{}
	hs := hourStart(h)
	if !hs.Add(time.Hour).After(w.dataFrom) {
		return b
	}
	r := rngFor(w.seed, lblOps, uint64(h))
	at := func() time.Time { return hs.Add(tick100ns(r, 50*time.Minute)) }

	if r.Float64() < 0.30 {
		w.portalLRSession(b, r, at(), pick(r, w.users), w.randomMachine(r), nil)
	}
	if r.Float64() < 0.25 {
		u := pick(r, w.users)
		w.responseAction(b, r, at(), pick(r, responseTypes), u.UPN, u.UPN, true)
	}
	if apps := w.actorApps(hs); len(apps) > 0 && r.Float64() < 0.45 {
		a := pick(r, apps)
		typ := pick(r, append([]string{"LiveResponse"}, responseTypes...))
		w.responseAction(b, r, at(), typ, a.ID, a.Name, false)
	}
	if r.Float64() < 0.10 {
		w.airAction(b, r, at())
	}

	// Scripted story beats, so a short demo shows the interesting records
	// (default scenario; the abuse scenario scripts its own).
	if t := w.start.Add(90 * time.Minute); w.scenario == ScenarioDefault && hourOf(t) == h && !t.Before(w.dataFrom) {
		sr := rngFor(w.seed, lblOps, uint64(h), 1)
		w.portalLRSession(b, sr, t, w.users[0], w.randomServer(sr), []string{
			"processes", "putfile tools.exe", "run memdump.ps1 -ProcessName lsass", `getfile "C:\Windows\Temp\lsass.dmp"`,
		})
	}
	if t := w.start.Add(ChangeConnectedAppAdded + 25*time.Minute); w.scenario == ScenarioDefault && hourOf(t) == h {
		sr := rngFor(w.seed, lblOps, uint64(h), 2)
		app := w.apps[len(w.apps)-1]
		a := w.responseActionWith(b, sr, t, "LiveResponse", app.ID, app.Name, false, []lrCommand{
			{Type: "RunScript", Params: []lrParam{{"ScriptName", "export-browser-creds.ps1"}}},
			{Type: "GetFile", Params: []lrParam{{"Path", `C:\Users\Public\creds.zip`}}},
		})
		a.RequestorComment = "test"
	}
	if w.abuse != nil {
		w.abuse.ops(w, b, h)
	}
	w.setVisibility(b)
	return b
}

func (w *world) portalLRSession(b *opsBucket, r *rand.Rand, t time.Time, u user, m machine, script []string) {
	n := 3 + r.IntN(4)
	if script != nil {
		n = len(script)
	}
	session := "CLR" + hexN(r, 8)
	upn := u.UPN
	for i := 0; i < n; i++ {
		cmd := pick(r, w.lrCommands())
		if script != nil {
			cmd = script[i]
		}
		if strings.Contains(cmd, "%s") {
			cmd = fmt.Sprintf(cmd, pick(r, w.users).Name)
		}
		end := t.Add(5*time.Second + tick100ns(r, 2*time.Minute))
		final := "Completed"
		if r.Float64() < 0.1 {
			final = "Failed"
		}
		id := guid(r)
		add := func(status string, et time.Time, ended bool) {
			rec := &acRecord{
				ActionID: id, StartTime: fmtAC(t), ActionType: "LiveResponseCommand",
				DecidedBy: upn, RelatedEntities: []map[string]any{{"EntityType": "Machine"}},
				AdditionalFields: map[string]any{"raw_command": cmd, "session_id": session},
				EntityType:       "Machine", EventTime: fmtAC(et), ActionStatus: status,
				ActionSource: "LiveResponse", Product: "MDE", MachineID: m.ID, ComputerName: m.Name,
				UserPrincipalName: &upn, eventTime: et,
			}
			if ended {
				e := fmtAC(et)
				rec.EndTime = &e
			}
			b.ac = append(b.ac, rec)
		}
		add("Pending", t, false)
		add(final, end, true)
		b.tl = append(b.tl, tlSeed{MachineID: m.ID, At: t, ActionType: "LiveResponseCommand",
			Description: fmt.Sprintf("Live response command %q run by %s", cmd, upn), UPN: upn})
		t = end.Add(20*time.Second + tick100ns(r, 4*time.Minute))
	}
}

// responseAction creates a machine action (it appears in the public API and
// in Action Center).
func (w *world) responseAction(b *opsBucket, r *rand.Rand, t time.Time, typ, requestor, decidedBy string, portal bool) {
	var cmds []lrCommand
	if typ == "LiveResponse" {
		if portal {
			typ = "Isolate" // portal Live Response is a session, not a machine action
		} else {
			cmds = append([]lrCommand(nil), pick(r, w.apiLRChoices())...)
		}
	}
	w.responseActionWith(b, r, t, typ, requestor, decidedBy, portal, cmds)
}

func (w *world) responseActionWith(b *opsBucket, r *rand.Rand, t time.Time, typ, requestor, decidedBy string, portal bool, cmds []lrCommand) *machineAction {
	m := w.randomMachine(r)
	if typ == "LiveResponse" {
		m = w.randomServer(r)
	}
	a := &machineAction{
		ID: guid(r), Type: typ, Requestor: requestor, DecidedBy: decidedBy,
		RequestorComment: pick(r, comments), MachineID: m.ID, DNS: m.DNS,
		RequestSource: "PublicApi", Portal: portal,
	}
	if portal {
		a.RequestSource = "Portal"
	}
	switch typ {
	case "Isolate":
		s := pick(r, []string{"Full", "Selective"})
		a.Scope = &s
	case "RunAntiVirusScan":
		s := pick(r, []string{"Quick", "Full"})
		a.Scope = &s
	case "StopAndQuarantineFile":
		a.RelatedFile = &relatedFileInfo{FileIdentifier: hexN(r, 40), FileIdentifierType: "Sha1"}
	}
	a.Title = fmt.Sprintf("%s on %s by %s", typ, m.Name, decidedBy)
	a.States = []maState{{At: t, Status: stPending}}
	roll := r.Float64()
	if roll < 0.05 {
		a.States = append(a.States, maState{At: t.Add(time.Minute + tick100ns(r, 20*time.Minute)), Status: stCancelled})
		a.CancelRequestor = "Automation"
		a.CancelComment = "Machine action was canceled by automation"
	} else {
		ip := t.Add(30*time.Second + tick100ns(r, 8*time.Minute))
		end := ip.Add(time.Minute + tick100ns(r, 90*time.Minute))
		final := stSucceeded
		switch {
		case roll < 0.15:
			final = stFailed
			a.ErrorHResult = -2147024891
		case roll < 0.19:
			final = stTimeOut
		}
		a.States = append(a.States, maState{At: ip, Status: stInProgress}, maState{At: end, Status: final})
		// Commands run one after another between InProgress and the end.
		if n := len(cmds); n > 0 {
			slot := end.Sub(ip) / time.Duration(n)
			for i := range cmds {
				if final == stTimeOut && i == n-1 {
					break // the last command never ran
				}
				cmds[i].Start = ip.Add(slot * time.Duration(i)).Add(tick100ns(r, slot/4))
				cmds[i].End = cmds[i].Start.Add(slot / 2)
				if final == stFailed && i == n-1 {
					cmds[i].Failed = true
				}
			}
		}
	}
	a.Commands = cmds
	b.actions = append(b.actions, a)
	w.acRowsFor(b, a, m)
	return a
}

var acFinal = map[string]string{stSucceeded: "Completed", stFailed: "Failed", stTimeOut: "TimeOut", stCancelled: "Cancelled"}

// acRowsFor adds the Action Center rows of a machine action: one row per
// status the portal shows, so a status change is a new row with a later
// EventTime.
func (w *world) acRowsFor(b *opsBucket, a *machineAction, m machine) {
	source := "PublicApi"
	var upn *string
	if a.Portal {
		source = "Portal"
		u := a.Requestor
		upn = &u
	}
	comment := a.RequestorComment
	base := func(id string, start time.Time) *acRecord {
		return &acRecord{
			ActionID: id, StartTime: fmtAC(start), ActionType: acTypeOf[a.Type],
			DecidedBy: a.DecidedBy, Comment: &comment,
			RelatedEntities: []map[string]any{{"EntityType": "Unknown"}}, AdditionalFields: map[string]any{},
			EntityType: "Unknown", ActionSource: source, Product: "MDE",
			MachineID: m.ID, ComputerName: m.Name, UserPrincipalName: upn,
		}
	}
	setTime := func(rec *acRecord, status string, et time.Time, ended bool) {
		rec.ActionStatus, rec.EventTime, rec.eventTime = status, fmtAC(et), et
		if ended {
			e := fmtAC(et)
			rec.EndTime = &e
		}
		b.ac = append(b.ac, rec)
	}
	last := a.States[len(a.States)-1]
	if a.Type != "LiveResponse" {
		setTime(base(a.ID, a.created()), "Pending", a.created(), false)
		setTime(base(a.ID, a.created()), acFinal[last.Status], last.At, true)
		if len(a.States) > 2 {
			b.tl = append(b.tl, tlSeed{MachineID: m.ID, At: a.States[1].At, ActionType: tlTypeOf[a.Type],
				Description: fmt.Sprintf("%s requested by %s", a.Type, a.DecidedBy), UPN: a.Requestor})
		}
		return
	}
	for i, c := range a.Commands {
		id := fmt.Sprintf("%s-%d", a.ID[:24], i)
		mk := func() *acRecord {
			rec := base(id, a.created())
			rec.ActionType = "LiveResponseCommand"
			rec.EntityType = "Machine"
			rec.RelatedEntities = []map[string]any{{"EntityType": "Machine"}}
			rec.AdditionalFields = map[string]any{"raw_command": c.raw(), "machine_action_id": a.ID}
			return rec
		}
		if c.Start.IsZero() {
			if last.Status == stCancelled || last.Status == stTimeOut {
				setTime(mk(), acFinal[last.Status], last.At, true)
			}
			continue
		}
		rec := mk()
		rec.StartTime = fmtAC(c.Start)
		setTime(rec, "Pending", c.Start, false)
		rec = mk()
		rec.StartTime = fmtAC(c.Start)
		st := "Completed"
		if c.Failed {
			st = "Failed"
		}
		setTime(rec, st, c.End, true)
		b.tl = append(b.tl, tlSeed{MachineID: m.ID, At: c.Start, ActionType: "LiveResponseCommand",
			Description: fmt.Sprintf("Live response command %q run by %s", c.raw(), a.DecidedBy)})
	}
}

// airAction is an automated-investigation remediation: Action Center only.
func (w *world) airAction(b *opsBucket, r *rand.Rand, t time.Time) {
	m := w.randomMachine(r)
	inv := int64(1000 + r.IntN(900000))
	id := guid(r)
	sha := hexN(r, 40)
	file := pick(r, []string{"invoice.exe", "update_helper.dll", "setup_x64.msi", "report.js"})
	dec := "Approved"
	end := t.Add(2*time.Minute + tick100ns(r, 30*time.Minute))
	mk := func(status string, et time.Time, ended bool) {
		rec := &acRecord{
			InvestigationID: &inv, ActionID: id, StartTime: fmtAC(t), ActionType: "QuarantineFile",
			ActionDecision: &dec, DecidedBy: "Automation",
			RelatedEntities:  []map[string]any{{"EntityType": "File", "FileName": file, "Sha1": sha}},
			AdditionalFields: map[string]any{}, EntityType: "File", EventTime: fmtAC(et), ActionStatus: status,
			ActionSource: "AutomatedInvestigation", Product: "MDE", MachineID: m.ID, ComputerName: m.Name, eventTime: et,
		}
		if ended {
			e := fmtAC(et)
			rec.EndTime = &e
		}
		b.ac = append(b.ac, rec)
	}
	mk("Pending", t, false)
	mk("Completed", end, true)
	b.tl = append(b.tl, tlSeed{MachineID: m.ID, At: end, ActionType: "FileQuarantined",
		Description: fmt.Sprintf("%s was quarantined by automated investigation %d", file, inv)})
}
