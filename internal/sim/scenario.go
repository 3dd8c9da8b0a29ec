package sim

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path"
	"sort"
	"strings"
	"time"
)

// ---- scenarios (README "Scenarios") ----
//
// The default scenario keeps the scheduled changes of Changes and the
// scripted story beats. "quiet" is a normal day: routine work by the
// regular operators (RegularOperators), no suspicious change at all.
// "abuse" is that quiet day plus a scripted attack from Options.AbuseAt:
// an attacker with a stolen admin session (one new user) and a new app
// registration, visible through the existing routes only.

// Options.Scenario values.
const (
	ScenarioDefault = ""
	ScenarioQuiet   = "quiet"
	ScenarioAbuse   = "abuse"
)

// Scenarios lists the valid values of Options.Scenario.
func Scenarios() []string { return []string{ScenarioDefault, ScenarioQuiet, ScenarioAbuse} }

// DefaultAbuseDelay is how long after Start the attack begins unless
// Options.AbuseAt says otherwise.
const DefaultAbuseDelay = 2 * time.Hour

// scenarioDefaults checks Scenario and AbuseAt and fills the default.
func (o *Options) scenarioDefaults() error {
	o.Scenario = strings.ToLower(strings.TrimSpace(o.Scenario))
	switch o.Scenario {
	case ScenarioDefault, ScenarioQuiet, ScenarioAbuse:
	default:
		return fmt.Errorf("sim: Scenario %q is unknown: use %q (the default), %q or %q", o.Scenario, ScenarioDefault, ScenarioQuiet, ScenarioAbuse)
	}
	if o.Scenario != ScenarioAbuse {
		if !o.AbuseAt.IsZero() {
			return fmt.Errorf("sim: AbuseAt is set but Scenario is %q: set Scenario %q, or leave AbuseAt zero", o.Scenario, ScenarioAbuse)
		}
		return nil
	}
	if o.AbuseAt.IsZero() {
		o.AbuseAt = o.Start.Add(DefaultAbuseDelay)
	}
	o.AbuseAt = o.AbuseAt.UTC().Truncate(time.Second)
	if lo := o.Start.Add(-o.History); o.AbuseAt.Before(lo) {
		return fmt.Errorf("sim: AbuseAt %s is before the data starts (%s = Start - History): use a later time, or a longer History", o.AbuseAt.Format(time.RFC3339), lo.Format(time.RFC3339))
	}
	if hi := o.Start.Add(maxHistory); o.AbuseAt.After(hi) {
		return fmt.Errorf("sim: AbuseAt %s is more than %s after Start: use an earlier time", o.AbuseAt.Format(time.RFC3339), maxHistory)
	}
	return nil
}

// happened reports whether a scheduled time (zero: never) has come at now.
func happened(at, now time.Time) bool { return !at.IsZero() && !now.Before(at) }

// Seed label of the abuse scenario's own streams (the baseline's streams
// are untouched, so the abuse tenant's baseline is the quiet tenant's).
const lblAbuse uint64 = 0xab05e

// Offsets of the attack's steps after AbuseAt.
const (
	abLibraryUpload  = 0
	abLibraryReplace = 5 * time.Minute
	abLRFirst        = 10 * time.Minute // first Live Response session
	abLRSpacing      = 2 * time.Minute  // between sessions (one device each)
	abLRCommandGap   = 20 * time.Second // between the commands of a session
	abLRCommandTime  = 10 * time.Second // each command's run time
	abAppRegistered  = 30 * time.Minute
	abIsolate        = 35 * time.Minute // and +30 s for the second device
	abHunting        = 40 * time.Minute
	abLRAPI          = 45 * time.Minute
	abRelease        = 50 * time.Minute
	abRuleDisabled   = 60 * time.Minute
	abRuleQuery      = 61 * time.Minute
	abTamperOff      = 70 * time.Minute
	abUnsigned       = 70 * time.Minute
	abExportAdded    = 80 * time.Minute
	abExportCats     = 82 * time.Minute
	abSuppression    = 90 * time.Minute
	abGroupRules     = 100 * time.Minute
	abNewApp         = 110 * time.Minute
	abSchema         = 120 * time.Minute

	abLRDevices      = 9   // devices with a Live Response session
	abAPIQueries     = 120 // API hunting queries of the new app
	abAPIQueryGap    = 30 * time.Second
	abPortalQueryGap = time.Minute
)

// Names the attack uses.
const (
	abuseScript        = "svc-healthcheck.ps1"
	abuseTool          = "tools.exe" // an existing library file, pushed to devices
	abuseAppName       = "DefenderHealthSync"
	abuseServersPrefix = "srv-web" // the Servers group's rule after the change
	abuseUserIP        = "198.51.100.77"
	abuseAppIP         = "198.51.100.78"
)

// AbuseStep is one step of the abuse scenario's attack (ground truth).
type AbuseStep struct {
	ID          string    `json:"id"`          // stable: "library-upload", "lr-run-many", …
	At          time.Time `json:"at"`          // the step's first record
	Dataset     string    `json:"dataset"`     // the harvester data set that shows it first
	AlsoIn      []string  `json:"also_in"`     // other data sets that show it
	Actor       string    `json:"actor"`       // attacker UPN, the new app's id, or "Microsoft"
	Description string    `json:"description"` // what it looks like in the API
}

// AbuseSteps lists the attack's steps, by time (nil unless the scenario
// is "abuse").
func (t *Tenant) AbuseSteps() []AbuseStep {
	if t.w.abuse == nil {
		return nil
	}
	out := make([]AbuseStep, len(t.w.abuse.steps))
	for i, s := range t.w.abuse.steps {
		s.AlsoIn = append([]string{}, s.AlsoIn...)
		out[i] = s
	}
	return out
}

// AbuseActors are the attacker's identities: the user (a UPN no baseline
// record names) and the new app registration's id ("", "" unless the
// scenario is "abuse").
func (t *Tenant) AbuseActors() (user, appID string) {
	if t.w.abuse == nil {
		return "", ""
	}
	return t.w.abuse.user, t.w.abuse.app.ID
}

// AbuseAppName is the display name of the attacker's app (Action Center's
// DecidedBy and the executed queries' InitiatedBy name an app by it).
func (t *Tenant) AbuseAppName() string {
	if t.w.abuse == nil {
		return ""
	}
	return t.w.abuse.app.Name
}

// RegularOperators are the identities that do routine work in the
// baseline (Live Response, isolations, hunting, rule maintenance): every
// user's UPN, and each long-standing API app's id and display name (the
// services name an app by its name in Action Center's DecidedBy and the
// executed queries' InitiatedBy, by its id in requestor and
// ApplicationId). The attacker's identities are never among them.
func (t *Tenant) RegularOperators() []string {
	var out []string
	for _, u := range t.w.users {
		out = append(out, u.UPN)
	}
	for _, a := range t.w.apps {
		if a.Appears.IsZero() {
			out = append(out, a.ID, a.Name)
		}
	}
	return out
}

// ---- what a normal day looks like ----

// sensitiveHuntingWords never appear in a routine hunting query (the
// attack's queries use them).
var sensitiveHuntingWords = []string{"password", "credential", "lsass", "token", "secret",
	"emailevents", "emailattachmentinfo", "alertinfo", "alertevidence", "tamper"}

func isSensitiveQuery(q string) bool {
	q = strings.ToLower(q)
	for _, w := range sensitiveHuntingWords {
		if strings.Contains(q, w) {
			return true
		}
	}
	return false
}

func routineQueries(in []string) []string {
	var out []string
	for _, q := range in {
		if !isSensitiveQuery(q) {
			out = append(out, q)
		}
	}
	return out
}

var (
	routinePortalQueries = routineQueries(portalQueries)
	routineAPIQueries    = routineQueries(apiQueries)
	// routineLRCommands are the portal Live Response commands of a normal
	// day: triage, no memory dump, no tool pushed.
	routineLRCommands = func() []string {
		var out []string
		for _, c := range portalLRCommands {
			if !strings.Contains(c, "memdump") && !strings.Contains(c, abuseTool) {
				out = append(out, c)
			}
		}
		return out
	}()
)

// scenarioRuleQuery replaces rule queries that would put a sensitive word
// into the executed-queries report on every run (the rule's runs are
// routine queries) in the quiet and abuse scenarios.
var scenarioRuleQuery = map[int]string{
	0: "DeviceEvents | where ActionType == 'OpenProcessApiCall' | where FileName in~ (ProtectedSystemProcesses) and InitiatingProcessSignatureStatus != 'Valid'",
}

func (w *world) lrCommands() []string {
	if w.scenario == ScenarioDefault {
		return portalLRCommands
	}
	return routineLRCommands
}

func (w *world) apiLRChoices() [][]lrCommand {
	if w.scenario == ScenarioDefault {
		return apiLR
	}
	return apiLR[1:] // no memory dump
}

// ---- scheduled setting changes of each scenario ----

func (w *world) tamperOffAt() time.Time {
	switch {
	case w.scenario == ScenarioDefault:
		return w.start.Add(ChangeTamperProtectionOff)
	case w.abuse != nil:
		return w.abuse.at.Add(abTamperOff)
	}
	return time.Time{}
}

func (w *world) unsignedOnAt() time.Time {
	switch {
	case w.scenario == ScenarioDefault:
		return w.start.Add(ChangeUnsignedScriptsOn)
	case w.abuse != nil:
		return w.abuse.at.Add(abUnsigned)
	}
	return time.Time{}
}

func (w *world) groupRulesChangedAt() time.Time {
	if w.abuse == nil {
		return time.Time{}
	}
	return w.abuse.at.Add(abGroupRules)
}

// groupAt is m's machine group at now: once the Servers group's rule
// names only abuseServersPrefix, the other servers fall to the ungrouped
// devices.
func (w *world) groupAt(m machine, now time.Time) int {
	if m.Group == 2 && happened(w.groupRulesChangedAt(), now) && !strings.HasPrefix(strings.ToLower(m.Name), abuseServersPrefix) {
		return 4
	}
	return m.Group
}

// callsOn counts the calls made on day (days since the epoch) up to now.
func callsOn(calls []time.Time, day int64, now time.Time) int {
	n := 0
	for _, c := range calls {
		if hourOf(c)/24 == day && !c.After(now) {
			n++
		}
	}
	return n
}

// ---- the attack ----

// abusePlan is the scripted attack, fixed by the seed and AbuseAt when the
// world is built; the generators pick its records by time bucket.
type abusePlan struct {
	at       time.Time
	user     string // the attacker's UPN
	app      apiApp // the new app registration
	sessions []abuseSession
	actions  []abuseAction
	hunting  []abuseQuery
	audit    []abuseAudit
	steps    []AbuseStep

	scriptSHA, replacedSHA string
	foreignTenant          string
	foreignSub             string
}

type abuseSession struct {
	m     machine
	id    string // session_id
	start time.Time
	cmds  []string
	ids   []string // ActionId of each command
}

// cmdAt is when command j of the session starts.
func (s abuseSession) cmdAt(j int) time.Time { return s.start.Add(time.Duration(j) * abLRCommandGap) }

type abuseAction struct {
	id, typ, comment string
	at               time.Time
	m                machine
	scope            string
	cmds             []lrCommand
}

type abuseQuery struct {
	at       time.Time
	source   string
	by       string
	appID    string
	text     string
	rowCount int
}

type abuseAudit struct {
	ct   int
	at   time.Time
	make func(t *Tenant, r *rand.Rand, at time.Time) map[string]any
}

// Queries of the attacker: credential material, mailboxes and the
// defenders' own tables and rules.
var (
	abusePortalQueries = []string{
		`DeviceProcessEvents | where ProcessCommandLine has "password" | project Timestamp, DeviceName, AccountName, ProcessCommandLine`,
		`DeviceEvents | where FileName =~ "lsass.exe" or InitiatingProcessCommandLine has "lsass" | take 100`,
		`EmailEvents | where Subject has_any ("password", "invoice", "wire transfer") | project Timestamp, SenderFromAddress, RecipientEmailAddress, Subject`,
		`EmailAttachmentInfo | where FileName endswith ".kdbx" or FileName has "credential" | take 100`,
		`AlertInfo | where Timestamp > ago(1d) | join kind=inner AlertEvidence on AlertId | where DeviceName has "srv-"`,
		`AlertInfo | where DetectionSource == "Custom detection" | summarize count() by Title`,
		`DeviceEvents | where ActionType has "Tamper" | summarize count() by DeviceName`,
		`AlertEvidence | where ProcessCommandLine has "` + abuseScript + `"`,
	}
	abuseAPIQueries = []string{
		`DeviceInfo | summarize arg_max(Timestamp, *) by DeviceId | project DeviceName, OSPlatform, PublicIP`,
		`DeviceProcessEvents | where ProcessCommandLine has_any ("password", "secret", "token") | take 1000`,
		`DeviceLogonEvents | where AccountName has "admin" | summarize count() by AccountName, DeviceName`,
		`DeviceEvents | where FileName =~ "lsass.exe" | take 500`,
		`EmailEvents | where Timestamp > ago(7d) | project SenderFromAddress, RecipientEmailAddress, Subject | take 5000`,
		`EmailAttachmentInfo | where FileType in ("pdf", "xlsx", "docx") | take 5000`,
		`AlertInfo | where Timestamp > ago(7d) | project AlertId, Title, Severity`,
		`AlertEvidence | where Timestamp > ago(1d) | take 1000`,
		`DeviceEvents | where ActionType has "Tamper"`,
		`DeviceNetworkEvents | where RemotePort in (22, 3389, 5985) | summarize count() by RemoteIP`,
	}
)

// newAbusePlan scripts the attack of w from at.
func newAbusePlan(w *world, at time.Time) *abusePlan {
	r := rngFor(w.seed, lblAbuse, 1)
	p := &abusePlan{at: at, user: "attacker.admin@" + w.domain}
	p.app = apiApp{ID: guid(r), Name: abuseAppName, Appears: at.Add(abNewApp)}
	p.scriptSHA, p.replacedSHA = hexN(r, 64), hexN(r, 64)
	p.foreignTenant, p.foreignSub = guid(r), guid(r)

	// Devices: a seeded order; the memory dump runs on a server.
	perm := r.Perm(len(w.machines))
	n := min(abLRDevices, len(perm))
	devs := append([]int(nil), perm[:n]...)
	md := min(5, n-1)
	for _, i := range perm {
		if w.machines[i].Server {
			j := indexOf(devs, i)
			if j < 0 {
				devs[md] = i
			} else {
				devs[j], devs[md] = devs[md], devs[j]
			}
			break
		}
	}
	extra := make([]string, n)
	extra[md] = "run memdump.ps1 -ProcessName lsass"
	for i, c := range []string{
		`getfile "C:\Windows\System32\config\SAM"`,
		`getfile "C:\Users\%s\AppData\Local\Google\Chrome\User Data\Default\Login Data"`,
		`getfile "C:\Users\%s\AppData\Local\Microsoft\Edge\User Data\Default\Login Data"`,
		"putfile " + abuseTool,
		"putfile " + abuseTool,
	} {
		if i < n && extra[i] == "" {
			extra[i] = c
		}
	}
	for i, mi := range devs {
		m := w.machines[mi]
		if strings.Contains(extra[i], "%s") {
			extra[i] = fmt.Sprintf(extra[i], w.users[int(strLabel(m.ID)%uint64(len(w.users)))].Name)
		}
		s := abuseSession{m: m, id: "CLR" + hexN(r, 8), start: at.Add(abLRFirst + time.Duration(i)*abLRSpacing),
			cmds: []string{"run " + abuseScript, "processes"}}
		if extra[i] != "" {
			s.cmds = append(s.cmds, extra[i])
		}
		for range s.cmds {
			s.ids = append(s.ids, guid(r))
		}
		p.sessions = append(p.sessions, s)
	}

	// API actions of the new app.
	iso := []machine{w.machines[perm[n%len(perm)]], w.machines[perm[(n+1)%len(perm)]]}
	p.actions = []abuseAction{
		{id: guid(r), typ: "Isolate", comment: "Scheduled maintenance", at: at.Add(abIsolate), m: iso[0], scope: "Full"},
		{id: guid(r), typ: "Isolate", comment: "Scheduled maintenance", at: at.Add(abIsolate + 30*time.Second), m: iso[1], scope: "Full"},
		{id: guid(r), typ: "LiveResponse", comment: "Health check", at: at.Add(abLRAPI), m: p.sessions[0].m, cmds: []lrCommand{
			{Type: "RunScript", Params: []lrParam{{"ScriptName", abuseScript}}},
			{Type: "GetFile", Params: []lrParam{{"Path", `C:\Windows\Temp\hc-out.zip`}}},
		}},
		{id: guid(r), typ: "Unisolate", comment: "Maintenance done", at: at.Add(abRelease), m: iso[0]},
	}
	for _, a := range p.actions {
		p.app.Calls = append(p.app.Calls, a.at)
	}

	// Hunting: the attacker in the portal, the new app through the API.
	for i, q := range abusePortalQueries {
		p.hunting = append(p.hunting, abuseQuery{at: at.Add(abHunting + time.Duration(i)*abPortalQueryGap), source: "Portal", by: p.user, text: q, rowCount: 10 + r.IntN(2000)})
	}
	for i := range abAPIQueries {
		t := at.Add(abHunting + time.Duration(i)*abAPIQueryGap + time.Duration(i%7)*time.Second)
		p.hunting = append(p.hunting, abuseQuery{at: t, source: "Api", by: p.app.Name, appID: p.app.ID,
			text: abuseAPIQueries[i%len(abuseAPIQueries)], rowCount: 100 + r.IntN(10000)})
		p.app.Calls = append(p.app.Calls, t)
	}
	sort.Slice(p.app.Calls, func(i, j int) bool { return p.app.Calls[i].Before(p.app.Calls[j]) })

	// Custom detections: the rule that sees credential dumping is switched
	// off, the one that sees Live Response scripts is blinded.
	off, edited := &w.rules[0], &w.rules[1]
	off.Edits = append(off.Edits, ruleEdit{At: at.Add(abRuleDisabled), By: p.user, Off: true})
	newQuery := edited.Query + ` | where ProcessCommandLine !has "` + strings.TrimSuffix(abuseScript, path.Ext(abuseScript)) + `"`
	edited.Edits = append(edited.Edits, ruleEdit{At: at.Add(abRuleQuery), By: p.user, Query: newQuery})

	p.planAudit(w, off, edited, newQuery)
	p.planSteps(w, off, edited, iso)
	return p
}

func indexOf(xs []int, x int) int {
	for i, y := range xs {
		if y == x {
			return i
		}
	}
	return -1
}

// firstCmd is the time of the first session command that starts with
// prefix (zero: none).
func (p *abusePlan) firstCmd(prefix string) (time.Time, int) {
	n, first := 0, time.Time{}
	for _, s := range p.sessions {
		for j, c := range s.cmds {
			if strings.HasPrefix(c, prefix) {
				if n == 0 {
					first = s.cmdAt(j)
				}
				n++
			}
		}
	}
	return first, n
}

func (p *abusePlan) planSteps(w *world, off, edited *detectionRule, iso []machine) {
	at, user, app := p.at, p.user, p.app.ID
	var lrEnd time.Time
	for _, s := range p.sessions {
		lrEnd = maxTime(lrEnd, s.cmdAt(len(s.cmds)-1).Add(abLRCommandTime))
	}
	getfile, nGet := p.firstCmd("getfile")
	putfile, nPut := p.firstCmd("putfile")
	memdump, _ := p.firstCmd("run memdump.ps1")
	lr := []string{"auditlog", "timeline"}
	ma := []string{"actioncenter", "auditlog", "timeline"}
	p.steps = []AbuseStep{
		{"library-upload", at.Add(abLibraryUpload), "libraryfiles", nil, user,
			fmt.Sprintf("new library file %s: createdBy %s, creationTime = lastUpdatedTime = the step time", abuseScript, user)},
		{"library-replace", at.Add(abLibraryReplace), "libraryfiles", nil, user,
			"collect-triage.ps1 replaced: same fileName, creationTime and createdBy; new sha256, lastUpdatedTime = the step time"},
		{"lr-run-many", p.sessions[0].start, "actioncenter", lr, user,
			fmt.Sprintf("portal Live Response sessions on %d devices, one every %s until %s: LiveResponseCommand rows (ActionSource LiveResponse, DecidedBy = UserPrincipalName = %s) with raw_command \"run %s\" and \"processes\"; Unified Audit Log RunLiveResponseSession per device (UserId %s)",
				len(p.sessions), abLRSpacing, lrEnd.Format(time.RFC3339), user, abuseScript, user)},
		{"getfile", getfile, "actioncenter", lr, user,
			fmt.Sprintf("getfile of sensitive files (SAM, browser Login Data) on %d devices; audit LiveResponseGetFile", nGet)},
		{"putfile", putfile, "actioncenter", lr, user, fmt.Sprintf("putfile %s on %d devices", abuseTool, nPut)},
		{"memdump", memdump, "actioncenter", lr, user, "run memdump.ps1 -ProcessName lsass on a server (LSASS memory dump)"},
		{"app-registered", at.Add(abAppRegistered), "auditlog", nil, user,
			fmt.Sprintf("Audit.AzureActiveDirectory: \"Add application.\" and \"Consent to application.\" (RecordType 8) for %s (%s)", p.app.Name, app)},
		{"isolate", at.Add(abIsolate), "machineactions", ma, app,
			fmt.Sprintf("Isolate (scope Full) of %s and %s, requestor %s (DecidedBy %s); audit IsolateDevice", iso[0].Name, iso[1].Name, app, p.app.Name)},
		{"hunting-sensitive", at.Add(abHunting), "executedqueries", nil, user,
			fmt.Sprintf("%d portal queries (QuerySource Portal, InitiatedBy %s) over credentials, lsass, EmailEvents, EmailAttachmentInfo, AlertInfo, AlertEvidence, custom detections and Tamper events", len(abusePortalQueries), user)},
		{"hunting-spike", at.Add(abHunting), "executedqueries", nil, app,
			fmt.Sprintf("%d API queries (QuerySource Api, InitiatedBy %s, ApplicationId %s), one every %s, many of them sensitive", abAPIQueries, p.app.Name, app, abAPIQueryGap)},
		{"lr-api", at.Add(abLRAPI), "machineactions", ma, app,
			fmt.Sprintf("LiveResponse machine action on %s: commands RunScript %s, GetFile; audit RunLiveResponseApi", p.sessions[0].m.Name, abuseScript)},
		{"release", at.Add(abRelease), "machineactions", ma, app, fmt.Sprintf("Unisolate of %s; audit ReleaseFromIsolation", iso[0].Name)},
		{"rule-disabled", at.Add(abRuleDisabled), "customdetections", []string{"auditlog"}, user,
			fmt.Sprintf("rule %d %q: IsEnabled false, LastUpdatedBy %s, LastUpdateTime = the step time; audit ChangeCustomDetectionRuleStatus (RecordType 113)", off.ID, off.Name, user)},
		{"rule-query-changed", at.Add(abRuleQuery), "customdetections", []string{"auditlog", "executedqueries"}, user,
			fmt.Sprintf("rule %d %q: QueryText excludes the attacker's script, LastUpdatedBy %s; audit EditCustomDetection (RecordType 113)", edited.ID, edited.Name, user)},
		{"tamper-off", at.Add(abTamperOff), "featuresettings", []string{"auditlog"}, user,
			"advanced features EnableWdavAntiTampering true → false; audit SetAdvancedFeatures (RecordType 111)"},
		{"unsigned-scripts", at.Add(abUnsigned), "featuresettings", []string{"auditlog"}, user,
			"Live Response settings AutomatedIrUnsignedScripts false → true; audit SetAdvancedFeatures (RecordType 111)"},
		{"export-added", at.Add(abExportAdded), "dataexportsettings", nil, user,
			fmt.Sprintf("new streaming destination to an Event Hub in a foreign tenant (designatedTenantId %s)", p.foreignTenant)},
		{"export-categories-removed", at.Add(abExportCats), "dataexportsettings", nil, user,
			"the Sentinel destination's DeviceProcessEvents and Alert categories disabled, DeviceFileEvents removed"},
		{"suppression-broad", at.Add(abSuppression), "suppressionrules", nil, user,
			"suppression rule 4102 (CreatedBy attacker, IsEnabled, no scope condition: tenant-wide) hides every alert raised from a Live Response process (ParentProcessName SenseIR.exe), AlertTitle \"Suspicious Live Response activity\""},
		{"group-rules-changed", at.Add(abGroupRules), "machinegroups", nil, user,
			fmt.Sprintf("group 2 \"Servers\" (Tier 0/1): GroupRules srv- → %s, LastUpdated = the step time; the other servers become ungrouped (device list RbacGroupId 4)", abuseServersPrefix)},
		{"new-app", at.Add(abNewApp), "connectedapps", nil, app,
			fmt.Sprintf("new connected app %s (%s) with its API calls counted on the day in MonthlyStatistics", p.app.Name, app)},
		{"schema-new-table", at.Add(abSchema), "schema", nil, "Microsoft",
			"informational: the hunting schema gains table CloudProcessEvents and column DeviceProcessEvents.ProcessRemoteSessionIP"},
	}
	sort.SliceStable(p.steps, func(i, j int) bool { return p.steps[i].At.Before(p.steps[j].At) })
}

// changes are the attack's snapshot changes, for Changes.
func (p *abusePlan) changes() []Change {
	name := map[string]string{"tamper-off": "advancedfeatures", "unsigned-scripts": "liveresponsesettings"}
	out := []Change{}
	for _, s := range p.steps {
		switch s.Dataset {
		case "libraryfiles", "customdetections", "featuresettings", "dataexportsettings", "suppressionrules", "machinegroups", "connectedapps", "schema":
			ds := s.Dataset
			if n, ok := name[s.ID]; ok {
				ds = n
			}
			out = append(out, Change{ds, s.At, "abuse " + s.ID + ": " + s.Description})
		}
	}
	return out
}

// ---- the attack's records in each data set ----

// ops adds the attack's operations that start in hour h.
func (p *abusePlan) ops(w *world, b *opsBucket, h int64) {
	for _, s := range p.sessions {
		if hourOf(s.start) != h {
			continue
		}
		upn := p.user
		for j, cmd := range s.cmds {
			t := s.cmdAt(j)
			end := t.Add(abLRCommandTime)
			for k, st := range []string{"Pending", "Completed"} {
				et := t
				rec := &acRecord{
					ActionID: s.ids[j], StartTime: fmtAC(t), ActionType: "LiveResponseCommand",
					DecidedBy: upn, RelatedEntities: []map[string]any{{"EntityType": "Machine"}},
					AdditionalFields: map[string]any{"raw_command": cmd, "session_id": s.id},
					EntityType:       "Machine", ActionStatus: st,
					ActionSource: "LiveResponse", Product: "MDE", MachineID: s.m.ID, ComputerName: s.m.Name,
					UserPrincipalName: &upn,
				}
				if k == 1 {
					et = end
					e := fmtAC(end)
					rec.EndTime = &e
				}
				rec.EventTime, rec.eventTime = fmtAC(et), et
				b.ac = append(b.ac, rec)
			}
			b.tl = append(b.tl, tlSeed{MachineID: s.m.ID, At: t, ActionType: "LiveResponseCommand",
				Description: fmt.Sprintf("Live response command %q run by %s", cmd, upn), UPN: upn})
		}
	}
	for _, x := range p.actions {
		if hourOf(x.at) != h {
			continue
		}
		a := &machineAction{
			ID: x.id, Type: x.typ, Requestor: p.app.ID, DecidedBy: p.app.Name, RequestorComment: x.comment,
			MachineID: x.m.ID, DNS: x.m.DNS, RequestSource: "PublicApi",
			Title: fmt.Sprintf("%s on %s by %s", x.typ, x.m.Name, p.app.Name),
		}
		if x.scope != "" {
			s := x.scope
			a.Scope = &s
		}
		ip, end := x.at.Add(30*time.Second), x.at.Add(2*time.Minute)
		if len(x.cmds) > 0 {
			end = x.at.Add(3 * time.Minute)
			a.Commands = append([]lrCommand(nil), x.cmds...)
			slot := end.Sub(ip) / time.Duration(len(a.Commands))
			for i := range a.Commands {
				a.Commands[i].Start = ip.Add(slot*time.Duration(i) + 5*time.Second)
				a.Commands[i].End = a.Commands[i].Start.Add(slot / 2)
			}
		}
		a.States = []maState{{At: x.at, Status: stPending}, {At: ip, Status: stInProgress}, {At: end, Status: stSucceeded}}
		b.actions = append(b.actions, a)
		w.acRowsFor(b, a, x.m)
	}
}

// queries are the attack's executed queries of hour h.
func (p *abusePlan) queries(w *world, h int64) []*queryRecord {
	var out []*queryRecord
	for i, q := range p.hunting {
		if hourOf(q.at) != h {
			continue
		}
		r := rngFor(w.seed, lblAbuse, 20, uint64(i))
		d := 400 + r.IntN(20000)
		cpu := d * (1 + r.IntN(3)) / 2
		usage := "Low"
		switch {
		case cpu > 20000:
			usage = "High"
		case cpu > 4000:
			usage = "Medium"
		}
		rec := &queryRecord{QueryID: guid(r), Timestamp: fmt7Z(q.at), QuerySource: q.source, InitiatedBy: q.by,
			QueryText: q.text, DurationMs: d, CpuTimeMs: cpu, ResourceUsage: usage, State: "Completed", RowCount: q.rowCount, at: q.at}
		if q.appID != "" {
			id := q.appID
			rec.ApplicationID = &id
		}
		out = append(out, rec)
	}
	return out
}

func (p *abusePlan) library(now time.Time, files []libraryFile) []libraryFile {
	if t := p.at.Add(abLibraryReplace); happened(t, now) {
		for i := range files {
			if files[i].Name == "collect-triage.ps1" {
				files[i].SHA256, files[i].Updated = p.replacedSHA, t
			}
		}
	}
	if t := p.at.Add(abLibraryUpload); happened(t, now) {
		files = append(files, libraryFile{abuseScript, p.scriptSHA, "Endpoint health check", p.user, "", t, false, t})
	}
	return files
}

func (p *abusePlan) dataExport(w *world, now time.Time, values []map[string]any) []map[string]any {
	if happened(p.at.Add(abExportCats), now) {
		values[0]["logs"] = []map[string]any{
			{"category": "AdvancedHunting-DeviceProcessEvents", "enabled": false},
			{"category": "AdvancedHunting-DeviceNetworkEvents", "enabled": true},
			{"category": "Alert", "enabled": false},
		}
	}
	if happened(p.at.Add(abExportAdded), now) {
		var logs []map[string]any
		for _, c := range []string{"AdvancedHunting-DeviceInfo", "AdvancedHunting-DeviceProcessEvents", "AdvancedHunting-DeviceNetworkEvents",
			"AdvancedHunting-DeviceFileEvents", "AdvancedHunting-DeviceRegistryEvents", "AdvancedHunting-DeviceLogonEvents",
			"AdvancedHunting-DeviceEvents", "AdvancedHunting-EmailEvents", "AdvancedHunting-EmailAttachmentInfo", "Alert"} {
			logs = append(logs, map[string]any{"category": c, "enabled": true})
		}
		values = append(values, map[string]any{
			"id": "EventHubExport-telemetry-sync", "designatedTenantId": p.foreignTenant,
			"eventHubProperties": map[string]any{
				"eventHubResourceId": "/subscriptions/" + p.foreignSub + "/resourceGroups/rg-sync/providers/Microsoft.EventHub/namespaces/evh-telemetry-sync",
				"name":               "mde-stream",
			},
			"storageAccountProperties": nil, "workspaceProperties": nil,
			"logs": logs,
		})
	}
	return values
}

// abuseSchemaTables is the hunting schema after the informational change:
// a new table and a new column.
func abuseSchemaTables() []schemaTable {
	out := make([]schemaTable, 0, len(schemaTables)+1)
	for _, t := range schemaTables {
		t.cols = append([][3]string(nil), t.cols...)
		if t.name == "DeviceProcessEvents" {
			t.cols = append(t.cols, [3]string{"ProcessRemoteSessionIP", "string", "IP address of the remote device from which the process was created"})
		}
		out = append(out, t)
	}
	return append(out, schemaTable{"CloudProcessEvents", "Process events of cloud workloads such as containers", [][3]string{
		{"Timestamp", "datetime", "Date and time when the event was recorded"},
		{"AzureResourceId", "string", "Unique identifier of the Azure resource"},
		{"ProcessCommandLine", "string", "Command line used to create the new process"},
	}})
}

// ---- the attack in the unified audit log ----

// auditSlot is the ten-minute publication slot of a record time.
func auditSlot(t time.Time) int64 { return t.Unix() / 600 }

// slotPublished is when the blob of a slot's records becomes available:
// 13 minutes after the slot starts (after its last record).
func slotPublished(slot int64) time.Time {
	return time.Unix(slot*600, 0).UTC().Add(13 * time.Minute)
}

func (p *abusePlan) planAudit(w *world, off, edited *detectionRule, newQuery string) {
	add := func(ct int, at time.Time, f func(t *Tenant, r *rand.Rand, at time.Time) map[string]any) {
		p.audit = append(p.audit, abuseAudit{ct, at, f})
	}
	device := func(op string, byApp bool, m machine, extra map[string]any) func(t *Tenant, r *rand.Rand, at time.Time) map[string]any {
		return func(t *Tenant, r *rand.Rand, at time.Time) map[string]any {
			rt := 110
			user, ut, ip := p.user, 0, abuseUserIP
			if byApp {
				user, ut, ip = p.app.ID, 5, abuseAppIP
			}
			rec := t.auditCommon(r, at, rt, DefenderWorkload, op, user, ut)
			rec["ClientIP"] = ip
			rec["ObjectId"], rec["DeviceId"], rec["DeviceName"] = m.ID, m.ID, m.DNS
			for k, v := range extra {
				rec[k] = v
			}
			return rec
		}
	}
	getFile := func(file string, r *rand.Rand) map[string]any {
		return map[string]any{"FileName": file, "FileSHA256": hexN(r, 64), "FileSize": 4096 + r.IntN(4<<20)}
	}
	fr := rngFor(w.seed, lblAbuse, 40)
	for _, s := range p.sessions {
		add(ctGeneral, s.start, device("RunLiveResponseSession", false, s.m, nil))
		for j, c := range s.cmds {
			if f, ok := strings.CutPrefix(c, "getfile "); ok {
				f = strings.Trim(f, `"`)
				add(ctGeneral, s.cmdAt(j), device("LiveResponseGetFile", false, s.m, getFile(f[strings.LastIndexByte(f, '\\')+1:], fr)))
			}
		}
	}
	for _, a := range p.actions {
		switch a.typ {
		case "Isolate":
			add(ctGeneral, a.at, device("IsolateDevice", true, a.m, map[string]any{"ActionComment": a.comment}))
		case "Unisolate":
			add(ctGeneral, a.at, device("ReleaseFromIsolation", true, a.m, map[string]any{"ActionComment": a.comment}))
		case "LiveResponse":
			add(ctGeneral, a.at, device("RunLiveResponseApi", true, a.m, map[string]any{"ActionComment": a.comment,
				"CommandsString": `RunScript ` + abuseScript + `; GetFile C:\Windows\Temp\hc-out.zip`}))
			add(ctGeneral, a.at.Add(2*time.Minute), device("LiveResponseGetFile", true, a.m, getFile("hc-out.zip", fr)))
		}
	}
	// The app registration (Entra directory audit).
	for i, op := range []string{"Add application.", "Consent to application."} {
		add(ctAAD, p.at.Add(abAppRegistered+time.Duration(i)*time.Minute), func(t *Tenant, r *rand.Rand, at time.Time) map[string]any {
			rec := t.auditCommon(r, at, 8, "AzureActiveDirectory", op, p.user, 0)
			rec["AzureActiveDirectoryEventType"] = 1
			rec["ClientIP"] = nil
			rec["ObjectId"] = p.app.ID
			rec["Actor"] = []map[string]any{{"ID": p.user, "Type": 5}}
			rec["Target"] = []map[string]any{{"ID": p.app.ID, "Type": 2}, {"ID": p.app.Name, "Type": 1}}
			rec["ActorContextId"] = t.w.tenantID
			rec["TargetContextId"] = t.w.tenantID
			rec["ExtendedProperties"] = []map[string]string{{"Name": "additionalDetails", "Value": `{"AppId":"` + p.app.ID + `"}`}}
			return rec
		})
	}
	// Custom detections (RecordType 113 MS365DCustomDetection). Decision:
	// the reference names the record type only; workload, operation and
	// property names follow public community queries over these records
	// (Workload Microsoft365Defender; ChangeCustomDetectionRuleStatus,
	// EditCustomDetection; RuleId, RuleName, Query, IsEnabled).
	rule := func(op string, d *detectionRule, enabled bool, query string) func(t *Tenant, r *rand.Rand, at time.Time) map[string]any {
		return func(t *Tenant, r *rand.Rand, at time.Time) map[string]any {
			rec := t.auditCommon(r, at, 113, "Microsoft365Defender", op, p.user, 0)
			rec["ClientIP"] = abuseUserIP
			rec["ObjectId"] = fmt.Sprint(d.ID)
			rec["RuleId"] = fmt.Sprint(d.ID)
			rec["RuleName"] = d.Name
			rec["AlertTitle"] = d.Name
			rec["AlertSeverity"] = d.Severity
			rec["RuleFrequency"] = d.Frequency
			rec["MitreTechniques"] = append([]string{}, d.Mitre...)
			rec["IsEnabled"] = enabled
			rec["Query"] = query
			return rec
		}
	}
	add(ctGeneral, p.at.Add(abRuleDisabled), rule("ChangeCustomDetectionRuleStatus", off, false, off.Query))
	add(ctGeneral, p.at.Add(abRuleQuery), rule("EditCustomDetection", edited, true, newQuery))
	// Settings (RecordType 111 MSDEGeneralSettings, SetAdvancedFeatures).
	// Decision: the reference says the setting name is in the record's
	// properties; the emulator names it in ObjectId and SettingName, the
	// new value in SettingValue.
	for _, s := range []struct {
		at    time.Duration
		name  string
		value bool
	}{{abTamperOff, "EnableWdavAntiTampering", false}, {abUnsigned, "AutomatedIrUnsignedScripts", true}} {
		add(ctGeneral, p.at.Add(s.at), func(t *Tenant, r *rand.Rand, at time.Time) map[string]any {
			rec := t.auditCommon(r, at, 111, DefenderWorkload, "SetAdvancedFeatures", p.user, 0)
			rec["ClientIP"] = abuseUserIP
			rec["ObjectId"], rec["SettingName"], rec["SettingValue"] = s.name, s.name, s.value
			return rec
		})
	}
	sort.SliceStable(p.audit, func(i, j int) bool { return p.audit[i].at.Before(p.audit[j].at) })
}

// auditBlobs are the blobs of content type ct that publish the attack's
// records and become available in hour h: one per ten-minute slot.
func (p *abusePlan) auditBlobs(ct int, h int64) []auditBlob {
	var slots []int64
	count := map[int64]int{}
	for _, a := range p.audit {
		if a.ct != ct {
			continue
		}
		s := auditSlot(a.at)
		if count[s] == 0 {
			slots = append(slots, s)
		}
		count[s]++
	}
	var out []auditBlob
	for i, s := range slots {
		created := slotPublished(s)
		if hourOf(created) != h {
			continue
		}
		out = append(out, auditBlob{ct: ct, hour: h, k: 50 + i%50, created: created, n: count[s], abuse: true, slot: s})
	}
	return out
}

// abuseAuditRecords are the records a scenario blob publishes.
func (t *Tenant) abuseAuditRecords(ct int, slot int64) []json.RawMessage {
	out := []json.RawMessage{}
	for i, a := range t.w.abuse.audit {
		if a.ct == ct && auditSlot(a.at) == slot {
			out = append(out, mustJSON(a.make(t, rngFor(t.w.seed, lblAbuse, 30, uint64(i)), a.at)))
		}
	}
	return out
}
