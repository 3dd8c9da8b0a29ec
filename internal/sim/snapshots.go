package sim

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"
)

// Known change times, as offsets after Options.Start. Snapshot data (and a
// few scripted events) change exactly then, so a harvester's change records
// can be checked against them.
const (
	ChangeTamperProtectionOff   = 2 * time.Hour  // advanced features: EnableWdavAntiTampering → false
	ChangeUnsignedScriptsOn     = 3 * time.Hour  // LR settings: AutomatedIrUnsignedScripts → true
	ChangeRuleAutoDisabled      = 4 * time.Hour  // custom detections: the failing rule is auto-disabled
	ChangeSuppressionRuleAdded  = 5 * time.Hour  // suppression rules: a broad tenant rule appears
	ChangeLibraryScriptUploaded = 6 * time.Hour  // library files: a new script
	ChangeConnectedAppAdded     = 7 * time.Hour  // connected apps: a new app (it acts 25 min later)
	ChangeAlertWorkloadDisabled = 8 * time.Hour  // alert service settings: a workload disabled
	ChangeDataExportAdded       = 9 * time.Hour  // data export: a new Event Hub destination
	ChangeRuleCreated           = 10 * time.Hour // custom detections: a new rule
)

// Change describes one scheduled snapshot change.
type Change struct {
	Dataset     string    `json:"dataset"`
	At          time.Time `json:"at"`
	Description string    `json:"description"`
}

// Changes lists the scheduled snapshot changes of this tenant: those of
// the default scenario, none on a quiet day, the attack's in the abuse
// scenario (README "Scenarios").
func (t *Tenant) Changes() []Change {
	switch t.w.scenario {
	case ScenarioQuiet:
		return []Change{}
	case ScenarioAbuse:
		return t.w.abuse.changes()
	}
	s := t.w.start
	return []Change{
		{"advancedfeatures", s.Add(ChangeTamperProtectionOff), "tamper protection (EnableWdavAntiTampering) switched off"},
		{"liveresponsesettings", s.Add(ChangeUnsignedScriptsOn), "unsigned Live Response scripts (AutomatedIrUnsignedScripts) allowed"},
		{"customdetections", s.Add(ChangeRuleAutoDisabled), "failing rule auto-disabled"},
		{"suppressionrules", s.Add(ChangeSuppressionRuleAdded), "broad suppression rule added"},
		{"libraryfiles", s.Add(ChangeLibraryScriptUploaded), "script uploaded to the Live Response library"},
		{"connectedapps", s.Add(ChangeConnectedAppAdded), "new connected app; it runs Live Response 25 minutes later"},
		{"alertservicesettings", s.Add(ChangeAlertWorkloadDisabled), "alerts of workload Mdc disabled"},
		{"dataexportsettings", s.Add(ChangeDataExportAdded), "new streaming destination (Event Hub)"},
		{"customdetections", s.Add(ChangeRuleCreated), "new custom detection rule created"},
	}
}

// ---- custom detection rules (ARCHITECTURE decision 2) ----

// detectionRule is one custom detection rule. The fields describe it as
// it stood before the data window; Edits (and AutoOff) change it inside
// the window, so views read it through stateAt (or world.rulesStateAt):
// the custom detections route, and any other view of the same rules.
type detectionRule struct {
	ID        int64
	Name      string
	Severity  string
	Query     string
	Frequency int // hours; 0 = continuous
	CreatedBy string
	Created   time.Time
	Updated   time.Time     // last modification
	UpdatedBy string        // who made it (the creator, for every rule before the window)
	Offset    time.Duration // minute within the run hour
	Disabled  bool          // disabled before history starts
	Failing   bool
	AutoOff   time.Time // auto-disabled at (zero: never)
	Appears   time.Time // zero: exists throughout
	Mitre     []string
	Edits     []ruleEdit // changes by users inside the data window, oldest first
}

// ruleEdit is a user's change of a rule: switching it off, or a new query.
type ruleEdit struct {
	At    time.Time
	By    string
	Off   bool   // the rule is switched off
	Query string // the new query ("": unchanged)
}

var ruleDefs = []struct {
	name, sev, query string
	freq             int
	mitre            []string
}{
	{"LSASS memory access by unsigned process", "High", "DeviceEvents | where ActionType == 'OpenProcessApiCall' and FileName =~ 'lsass.exe'", 1, []string{"T1003.001"}},
	{"Live Response script execution", "Medium", "DeviceProcessEvents | where InitiatingProcessFileName =~ 'SenseIR.exe' and FileName =~ 'powershell.exe'", 1, []string{"T1059.001"}},
	{"Suspicious scheduled task creation", "Medium", "DeviceEvents | where ActionType == 'ScheduledTaskCreated'", 3, []string{"T1053.005"}},
	{"Encoded PowerShell command line", "Medium", "DeviceProcessEvents | where ProcessCommandLine has '-enc'", 1, []string{"T1027"}},
	{"Rare outbound connection to new domain", "Low", "DeviceNetworkEvents | summarize count() by RemoteUrl | where count_ < 3", 24, nil},
	{"Defender tamper protection change", "High", "DeviceEvents | where ActionType == 'TamperingAttempt'", 0, []string{"T1562.001"}},
	{"Mass file rename (ransomware)", "High", "DeviceFileEvents | where ActionType == 'FileRenamed' | summarize n=count() by DeviceId, bin(Timestamp, 5m) | where n > 200", 1, []string{"T1486"}},
	{"Legacy AV exclusion audit", "Informational", "DeviceRegistryEvents | where RegistryKey has 'Exclusions'", 12, nil},
}

func newRules(w *world, r *rand.Rand) []detectionRule {
	var out []detectionRule
	for i, d := range ruleDefs {
		created := w.dataFrom.Add(-time.Duration(24*(20+r.IntN(300))) * time.Hour).Add(tick100ns(r, time.Hour)).Truncate(time.Millisecond)
		rule := detectionRule{
			ID: int64(120 + i*7), Name: d.name, Severity: d.sev, Query: d.query, Frequency: d.freq,
			CreatedBy: w.users[i%len(w.users)].UPN, Created: created,
			Updated: created.Add(time.Duration(r.IntN(24*10)) * time.Hour).Truncate(time.Millisecond),
			Offset:  time.Duration(1+r.IntN(50))*time.Minute + time.Duration(r.IntN(60))*time.Second, Mitre: d.mitre,
		}
		rule.UpdatedBy = rule.CreatedBy
		switch i {
		case 4, 7:
			rule.Disabled = true
		case 3:
			rule.Failing = true // fails every run
			if w.scenario == ScenarioDefault {
				rule.AutoOff = w.start.Add(ChangeRuleAutoDisabled)
			}
		case 6:
			rule.Failing = true // fails, but stays enabled
		}
		if q, ok := scenarioRuleQuery[i]; ok && w.scenario != ScenarioDefault {
			rule.Query = q
		}
		out = append(out, rule)
	}
	if w.scenario != ScenarioDefault {
		return out // a normal day creates no rule
	}
	out = append(out, detectionRule{
		ID: 200, Name: "Process injection into browser", Severity: "High", Frequency: 1,
		Query:     "DeviceEvents | where ActionType == 'CreateRemoteThreadApiCall' and FileName in~ ('msedge.exe','chrome.exe')",
		CreatedBy: w.users[1].UPN, Created: w.start.Add(ChangeRuleCreated), Updated: w.start.Add(ChangeRuleCreated),
		UpdatedBy: w.users[1].UPN, Offset: 17 * time.Minute, Appears: w.start.Add(ChangeRuleCreated), Mitre: []string{"T1055"},
	})
	return out
}

// enabledAt reports whether the rule runs at t.
func (d detectionRule) enabledAt(t time.Time) bool {
	if d.Disabled || (!d.Appears.IsZero() && t.Before(d.Appears)) {
		return false
	}
	if off := d.offAt(); !off.IsZero() && !t.Before(off) {
		return false
	}
	return d.AutoOff.IsZero() || t.Before(d.AutoOff)
}

// offAt is when a user switched the rule off (zero: never).
func (d detectionRule) offAt() time.Time {
	for _, e := range d.Edits {
		if e.Off {
			return e.At
		}
	}
	return time.Time{}
}

// stateAt is the rule as it stands at now: the query, last modification
// and modifier after the edits made by then (and an auto-disable).
// Enablement is enabledAt(now).
func (d detectionRule) stateAt(now time.Time) detectionRule {
	for _, e := range d.Edits {
		if now.Before(e.At) {
			break
		}
		d.Updated, d.UpdatedBy = e.At, e.By
		if e.Query != "" {
			d.Query = e.Query
		}
	}
	if !d.AutoOff.IsZero() && !now.Before(d.AutoOff) {
		d.Updated, d.UpdatedBy = d.AutoOff, "Microsoft Defender"
	}
	return d
}

// rulesStateAt is every rule that exists at now, as it stands then
// (stateAt): the one source of the custom detection rules' state for all
// views of them.
func (w *world) rulesStateAt(now time.Time) []detectionRule {
	var out []detectionRule
	for _, d := range w.rules {
		if !d.Appears.IsZero() && now.Before(d.Appears) {
			continue
		}
		out = append(out, d.stateAt(now))
	}
	return out
}

// runsIn returns the scheduled run time of the rule in hour h, if any.
func (d detectionRule) runsIn(h int64) (time.Time, bool) {
	if d.Frequency <= 0 || h%int64(d.Frequency) != 0 {
		return time.Time{}, false
	}
	t := hourStart(h).Add(d.Offset)
	return t, d.enabledAt(t)
}

// lastRun is the latest run at or before now (a disabled rule keeps the
// last run before it was switched off).
func (d detectionRule) lastRun(now time.Time) (time.Time, bool) {
	if d.Frequency <= 0 {
		return time.Time{}, false
	}
	upto := now
	if d.Disabled && d.Updated.Before(upto) {
		upto = d.Updated
	}
	if !d.AutoOff.IsZero() && d.AutoOff.Before(upto) {
		upto = d.AutoOff
	}
	if off := d.offAt(); !off.IsZero() && off.Before(upto) {
		upto = off
	}
	for h := hourOf(upto); h >= hourOf(upto)-int64(d.Frequency)-1; h-- {
		if h%int64(d.Frequency) != 0 {
			continue
		}
		t := hourStart(h).Add(d.Offset)
		if t.After(upto) {
			continue
		}
		if !d.Appears.IsZero() && t.Before(d.Appears) {
			return time.Time{}, false
		}
		return t, true
	}
	return time.Time{}, false
}

// nextRun is the first scheduled run after now.
func (d detectionRule) nextRun(now time.Time) (time.Time, bool) {
	if d.Frequency <= 0 || !d.enabledAt(now) {
		return time.Time{}, false
	}
	for h := hourOf(now); h <= hourOf(now)+int64(d.Frequency)+1; h++ {
		if h%int64(d.Frequency) != 0 {
			continue
		}
		if t := hourStart(h).Add(d.Offset); t.After(now) {
			return t, true
		}
	}
	return time.Time{}, false
}

type ruleJSON struct {
	ID                   int64    `json:"Id"`
	Name                 string   `json:"Name"`
	Severity             string   `json:"Severity"`
	IsEnabled            bool     `json:"IsEnabled"`
	CreatedBy            string   `json:"CreatedBy"`
	CreationTime         string   `json:"CreationTime"`
	LastUpdatedBy        string   `json:"LastUpdatedBy"`
	LastUpdateTime       string   `json:"LastUpdateTime"`
	QueryText            string   `json:"QueryText"`
	Frequency            int      `json:"Frequency"`
	LastRunTime          *string  `json:"LastRunTime"`
	LastRunStatus        *string  `json:"LastRunStatus"`
	LastRunFailureReason *string  `json:"LastRunFailureReason"`
	NextRunTime          *string  `json:"NextRunTime"`
	IsAutoDisabled       bool     `json:"IsAutoDisabled"`
	MitreTechniques      []string `json:"MitreTechniques"`
}

func (w *world) rulesAt(now time.Time) []ruleJSON {
	var out []ruleJSON
	for _, d := range w.rulesStateAt(now) {
		j := ruleJSON{
			ID: d.ID, Name: d.Name, Severity: d.Severity, IsEnabled: d.enabledAt(now),
			CreatedBy: d.CreatedBy, CreationTime: fmtMsZ(d.Created), LastUpdatedBy: d.UpdatedBy,
			LastUpdateTime: fmtMsZ(d.Updated), QueryText: d.Query, Frequency: d.Frequency,
			MitreTechniques: append([]string{}, d.Mitre...),
			IsAutoDisabled:  !d.AutoOff.IsZero() && !now.Before(d.AutoOff),
		}
		if lr, ok := d.lastRun(now); ok {
			s := fmtMsZ(lr)
			j.LastRunTime = &s
			status := "Completed"
			if d.Failing {
				status = "Failed"
				reason := "Query exceeded the allowed resources (CPU quota). Optimize the query and try again."
				j.LastRunFailureReason = &reason
			}
			j.LastRunStatus = &status
		}
		if nr, ok := d.nextRun(now); ok {
			s := fmtMsZ(nr)
			j.NextRunTime = &s
		}
		out = append(out, j)
	}
	return out
}

// ---- advanced features and Live Response settings ----

func (w *world) advancedFeatures(now time.Time) json.RawMessage {
	tamper := !happened(w.tamperOffAt(), now)
	// The live fixture's field order (docs/REFERENCE.md §1.7).
	return json.RawMessage(fmt.Sprintf(`{"EnableWdavPassiveModeRemediation":false,"EnableWdavAuditMode":false,"MagellanOptOut":false,`+
		`"HidePotentialDuplications":true,"BlockListEnabled":true,"LicenseEnabled":true,"SkypeIntegrationEnabled":true,`+
		`"ShowUserAadProfile":true,"AatpIntegrationEnabled":false,"AatpWorkspaceExists":false,`+
		`"AutoResolveInvestigatedAlerts":true,"EnableMcasIntegration":true,"EnableAipIntegration":false,`+
		`"BilbaoApproved":false,"BilbaoEnabled":false,"EnableWdavAntiTampering":%t,"AllowWdavNetworkBlock":true,`+
		`"M365SecureScoreIntegrationEnabled":false,"WebCategoriesEnabled":true,"EnableEndpointDlp":false,`+
		`"EnableQuarantinedFileDownload":true,"IsolateIncidentsWithDifferentDeviceGroups":true,"EnableExcludedDevices":false,`+
		`"DartDataCollection":false,"EnableAggregatedReporting":false,"IsolationExclusionOptIn":false,`+
		`"MobileDeactivationPeriodInDays":null,"UseSimplifiedConnectivity":true,"UseSimplifiedConnectivityViaApi":false,`+
		`"EnableCustomAsrAdvancedProcessTermination":false,"EnableHVAOnboardingOptions":false,"LowFidelityEnrichmentEnabled":false}`, tamper))
}

func (w *world) lrSettings(now time.Time) json.RawMessage {
	unsigned := happened(w.unsignedOnAt(), now)
	return json.RawMessage(fmt.Sprintf(`{"AutomatedIrLiveResponse":true,"AutomatedIrUnsignedScripts":%t,"LiveResponseForServers":true}`, unsigned))
}

// ---- suppression rules (decision 7: conditions are JSON strings) ----

type suppressionRule struct {
	ID                           int64   `json:"Id"`
	RuleTitle                    string  `json:"RuleTitle"`
	SenseMachineID               *string `json:"SenseMachineId"`
	ComputerDNSName              *string `json:"ComputerDnsName"`
	CreatedBy                    string  `json:"CreatedBy"`
	CreationTime                 string  `json:"CreationTime"`
	UpdateTime                   string  `json:"UpdateTime"`
	Scope                        int     `json:"Scope"`
	IoaDefinitionID              string  `json:"IoaDefinitionId"`
	IsEnabled                    bool    `json:"IsEnabled"`
	IsSilent                     bool    `json:"IsSilent"`
	IsTestRule                   bool    `json:"IsTestRule"`
	OrderIndex                   int     `json:"OrderIndex"`
	Action                       int     `json:"Action"`
	RuleConditions               string  `json:"RuleConditions"`
	AlertTitle                   string  `json:"AlertTitle"`
	MatchingAlertsCount          int     `json:"MatchingAlertsCount"`
	RbacGroupIDs                 any     `json:"RbacGroupIds"`
	DeserializedRbacGroupIDs     any     `json:"DeserializedRbacGroupIds"`
	FullDeserializedRbacGroupIDs any     `json:"FullDeserializedRbacGroupIds"`
	IsReadOnly                   bool    `json:"IsReadOnly"`
	ThreatFamilyName             *string `json:"ThreatFamilyName"`
	LastActivity                 *string `json:"LastActivity"`
	RuleType                     int     `json:"RuleType"`
	RuleSource                   int     `json:"RuleSource"`
	ScopeConditions              string  `json:"ScopeConditions"`
	AdditionalDetails            any     `json:"AdditionalDetails"`
	Description                  string  `json:"Description"`
	DeserializedScopeConditions  any     `json:"DeserializedScopeConditions"`
	BitwiseServiceSources        int     `json:"BitwiseServiceSources"`
	ActivationDate               string  `json:"ActivationDate"`
	IsInOptOutPeriod             bool    `json:"IsInOptOutPeriod"`
}

func cond(field, value string) string {
	return string(mustJSON(map[string]any{
		"logicalOperator": "AND", "conditionType": "Complex",
		"conditions": []any{map[string]any{"field": field, "operator": "Equals", "values": []string{value}}},
	}))
}

func (w *world) suppressionRules(now time.Time) []suppressionRule {
	r := rngFor(w.seed, lblTenant, 4)
	day := w.dataFrom.Truncate(24 * time.Hour)
	mk := func(id int64, title, by string, created time.Time, readOnly bool, action int, rc, sc, desc string) suppressionRule {
		return suppressionRule{
			ID: id, RuleTitle: title, CreatedBy: by, CreationTime: fmtMsZ(created), UpdateTime: fmt7Z(created.Add(time.Hour)),
			Scope: 2, IoaDefinitionID: guid(r), IsEnabled: true, Action: action, RuleConditions: rc,
			AlertTitle: title, IsReadOnly: readOnly, RuleType: 1, RuleSource: 1, ScopeConditions: sc,
			Description: desc, DeserializedScopeConditions: json.RawMessage(sc), BitwiseServiceSources: 8,
			ActivationDate: fmtMsZ(created.Truncate(24 * time.Hour)),
		}
	}
	out := []suppressionRule{
		mk(1000000013, "Auto-Resolve - Suspicious PowerShell download", "Microsoft", day.Add(-90*24*time.Hour), true, 2,
			cond("FileName", "powershell.exe"), "[[]]", "Built-in rule"),
		mk(1000000021, "Set-As-Behavior - Office child process", "Microsoft", day.Add(-60*24*time.Hour), true, 3,
			cond("ParentProcessName", "winword.exe"), "[[]]", "Built-in rule"),
		mk(4101, "Suppress scanner noise on SQL", w.users[2].UPN, day.Add(-12*24*time.Hour), false, 1,
			cond("FileName", "sqlscanner.exe"), `[[{"Type":"MachineGroup","Value":"2"}]]`, "Vulnerability scanner triggers credential access alerts"),
	}
	switch t := w.start.Add(ChangeSuppressionRuleAdded); {
	case w.scenario == ScenarioDefault && !now.Before(t):
		out = append(out, mk(4102, "Suppress all alerts for admin tools", w.users[5].UPN, t, false, 1,
			cond("FolderPath", `C:\Tools\`), "[[]]", "temporary"))
	case w.abuse != nil && happened(w.abuse.at.Add(abSuppression), now):
		// Tenant-wide (no scope condition): every alert raised from a Live
		// Response process is hidden, whatever its title.
		at := w.abuse.at.Add(abSuppression)
		s := mk(4102, "Live Response maintenance noise", w.abuse.user, at, false, 1,
			cond("ParentProcessName", "SenseIR.exe"), "[[]]", "Known admin tooling")
		s.AlertTitle = "Suspicious Live Response activity"
		s.UpdateTime = fmt7Z(at)
		out = append(out, s)
	}
	return out
}

// ---- machine groups (decision 6) ----

func (w *world) machineGroups(counts bool, now time.Time) json.RawMessage {
	n := map[int]int{}
	for _, m := range w.machines {
		n[w.groupAt(m, now)]++
	}
	type rule struct {
		OperatorType  int    `json:"OperatorType"`
		Property      int    `json:"Property"`
		PropertyValue string `json:"PropertyValue"`
	}
	type group struct {
		MachineGroupID           int    `json:"MachineGroupId"`
		Name                     string `json:"Name"`
		Description              string `json:"Description"`
		AutoRemediationLevel     int    `json:"AutoRemediationLevel"`
		Priority                 int    `json:"Priority"`
		LastUpdated              string `json:"LastUpdated"`
		IsUnassignedMachineGroup bool   `json:"IsUnassignedMachineGroup"`
		MachineCount             int    `json:"MachineCount"`
		GroupRules               []rule `json:"GroupRules"`
	}
	lu := fmt7Z(w.dataFrom.Add(-41 * 24 * time.Hour).Add(3*time.Hour + 766666700))
	c := func(id int) int {
		if counts {
			return n[id]
		}
		return 0
	}
	srvLU, srvRules := lu, []rule{{3, 1, "srv-"}}
	if at := w.groupRulesChangedAt(); happened(at, now) {
		srvLU, srvRules = fmt7Z(at), []rule{{3, 1, abuseServersPrefix}}
	}
	items := []group{
		{1, "Workstations", "All user devices", 1, 1, lu, false, c(1), []rule{{3, 1, "ws-"}, {3, 1, "lt-dev"}}},
		{2, "Servers", "Tier 0/1 servers", 0, 2, srvLU, false, c(2), srvRules},
		{3, "Executives", "VIP laptops", 2, 3, lu, false, c(3), []rule{{3, 1, "lt-exec"}}},
		{4, "Ungrouped devices (default)", "", 1, 2147483647, lu, true, c(4), []rule{}},
	}
	return mustJSON(map[string]any{"items": items, "containsAadGroupNames": true, "containsMachineGroupCount": counts})
}

// ---- connected apps (decision 5) ----

func (w *world) connectedApps(now time.Time) json.RawMessage {
	type app struct {
		ID                      string  `json:"Id"`
		DisplayName             string  `json:"DisplayName"`
		Enabled                 bool    `json:"Enabled"`
		LatestConnectivity      *string `json:"LatestConnectivity"`
		ApplicationSettingsLink string  `json:"ApplicationSettingsLink"`
		MonthlyStatistics       []int   `json:"MonthlyStatistics"`
		ImageBase64             *string `json:"ImageBase64"`
		ImageType               *string `json:"ImageType"`
		ImageURL                *string `json:"ImageUrl"`
	}
	today := hourOf(now) / 24
	out := []app{}
	for i, a := range w.apps {
		if !w.appActive(a, now) {
			continue
		}
		stats := make([]int, 30)
		for d := 0; d < 30; d++ {
			day := today - int64(29-d)
			if a.Calls != nil {
				stats[d] = callsOn(a.Calls, day, now)
				continue
			}
			if !a.Appears.IsZero() && hourStart(day*24+23).Before(a.Appears) {
				continue
			}
			r := rngFor(w.seed, lblStats, uint64(i), uint64(day))
			stats[d] = 20 + r.IntN(400)
		}
		// Last seen: a fixed minute of the current day, or of the
		// previous day before that minute has come.
		r := rngFor(w.seed, lblStats, uint64(i), 99)
		lc := hourStart(today * 24).Add(time.Duration(r.IntN(8*60)) * time.Minute)
		if lc.After(now) {
			lc = lc.Add(-24 * time.Hour)
		}
		if !a.Appears.IsZero() && (lc.Before(a.Appears) || a.Calls != nil) {
			lc = a.Appears
		}
		s := fmt7Z(lc)
		out = append(out, app{
			ID: a.ID, DisplayName: a.Name, Enabled: true, LatestConnectivity: &s,
			ApplicationSettingsLink: "https://portal.azure.com/#blade/Microsoft_AAD_RegisteredApps/ApplicationMenuBlade/Overview/appId/" + a.ID,
			MonthlyStatistics:       stats,
		})
	}
	return mustJSON(out)
}

// ---- alert service settings (decision 9) ----

func (w *world) alertServiceSettings(now time.Time) json.RawMessage {
	// Entra ID Protection alerts were switched off long before the data
	// starts (a common tenant state); Defender for Cloud's are switched off
	// at a known time after Start, so change records can be seen.
	out := map[string]any{
		"Aad": map[string]any{
			"reasons":         []string{"DuplicateAlerts"},
			"feedback":        "Identity Protection alerts handled in Entra",
			"disabledTime":    fmt7Z(w.start.Add(-40 * 24 * time.Hour)),
			"disablementType": "Manual",
		},
	}
	t := w.start.Add(ChangeAlertWorkloadDisabled)
	if w.scenario == ScenarioDefault && !now.Before(t) {
		out["Mdc"] = map[string]any{
			"reasons":         []string{"TooManyAlerts"},
			"feedback":        "Noisy informational alerts from Defender for Cloud",
			"disabledTime":    fmt7Z(t),
			"disablementType": "Manual",
		}
	}
	return mustJSON(out)
}

// ---- data export settings (decision 10) ----

func (w *world) dataExportSettings(now time.Time, contextHost string) json.RawMessage {
	cats := func(enabled bool, names ...string) []map[string]any {
		var out []map[string]any
		for _, n := range names {
			out = append(out, map[string]any{"category": n, "enabled": enabled})
		}
		return out
	}
	sub := guid(rngFor(w.seed, lblTenant, 5))
	values := []map[string]any{{
		"id": "SentinelExportSettings-sentinel-" + w.orgName, "designatedTenantId": nil,
		"eventHubProperties": nil, "storageAccountProperties": nil,
		"workspaceProperties": map[string]any{
			"workspaceResourceId": "/subscriptions/" + sub + "/resourceGroups/rg-sentinel/providers/Microsoft.OperationalInsights/workspaces/law-sentinel",
			"subscriptionId":      sub, "resourceGroup": "rg-sentinel", "name": "law-sentinel",
		},
		"logs": cats(true, "AdvancedHunting-DeviceProcessEvents", "AdvancedHunting-DeviceNetworkEvents", "AdvancedHunting-DeviceFileEvents", "Alert"),
	}}
	if w.abuse != nil {
		values = w.abuse.dataExport(w, now, values)
	}
	if w.scenario == ScenarioDefault && !now.Before(w.start.Add(ChangeDataExportAdded)) {
		values = append(values, map[string]any{
			"id": "EventHubExport-archive", "designatedTenantId": nil,
			"eventHubProperties": map[string]any{
				"eventHubResourceId": "/subscriptions/" + guid(rngFor(w.seed, lblTenant, 6)) + "/resourceGroups/rg-x/providers/Microsoft.EventHub/namespaces/evh-archive-ext",
				"name":               "defender-all",
			},
			"storageAccountProperties": nil, "workspaceProperties": nil,
			"logs": cats(true, "AdvancedHunting-DeviceProcessEvents", "AdvancedHunting-DeviceLogonEvents", "AdvancedHunting-DeviceEvents", "AdvancedHunting-DeviceRegistryEvents", "Alert"),
		})
	}
	return mustJSON(map[string]any{"@odata.context": "https://" + contextHost + "/api/$metadata#DataExportSettings", "value": values})
}

// ---- Live Response library ----

type libraryFile struct {
	Name, SHA256, Description, CreatedBy, ParamsDesc string
	Created                                          time.Time
	HasParams                                        bool
	Updated                                          time.Time // last upload (zero: Created)
}

// lastUpdated is when the file was last uploaded.
func (f libraryFile) lastUpdated() time.Time {
	if f.Updated.IsZero() {
		return f.Created
	}
	return f.Updated
}

func (w *world) libraryFiles(now time.Time) []libraryFile {
	r := rngFor(w.seed, lblTenant, 7)
	base := w.dataFrom.Add(-20 * 24 * time.Hour)
	out := []libraryFile{
		{"memdump.ps1", hexN(r, 64), "Process memory dump", w.users[0].UPN, "-ProcessName <name>", base.Add(tick100ns(r, 24*time.Hour)), true, time.Time{}},
		{"collect-triage.ps1", hexN(r, 64), "Collect triage package", w.users[3].UPN, "", base.Add(48 * time.Hour).Add(tick100ns(r, 24*time.Hour)), false, time.Time{}},
		{"tools.exe", hexN(r, 64), "", w.users[0].UPN, "", base.Add(72 * time.Hour).Add(tick100ns(r, 24*time.Hour)), false, time.Time{}},
		{"minidump.ps1", hexN(r, 64), "Minidump of a process", w.users[4].UPN, "process name", base.Add(96 * time.Hour).Add(tick100ns(r, 24*time.Hour)), true, time.Time{}},
	}
	if t := w.start.Add(ChangeLibraryScriptUploaded); w.scenario == ScenarioDefault && !now.Before(t) {
		out = append(out, libraryFile{"export-browser-creds.ps1", hexN(r, 64), "", w.users[7].UPN, "", t, false, time.Time{}})
	}
	if w.abuse != nil {
		out = w.abuse.library(now, out)
	}
	return out
}

// ---- hunting schema (decision 11) ----

// schemaTable is one table of the hunting schema.
type schemaTable struct {
	name, desc string
	cols       [][3]string
}

var schemaTables = []schemaTable{
	{"DeviceProcessEvents", "Process creation and related events", [][3]string{{"Timestamp", "datetime", "Date and time when the event was recorded"}, {"DeviceId", "string", "Unique identifier for the machine in the service"}, {"DeviceName", "string", "Fully qualified domain name (FQDN) of the machine"}, {"FileName", "string", "Name of the file that the recorded action was applied to"}, {"ProcessCommandLine", "string", "Command line used to create the new process"}, {"InitiatingProcessFileName", "string", "Name of the process that initiated the event"}, {"AccountName", "string", "User name of the account"}}},
	{"DeviceNetworkEvents", "Network connection and related events", [][3]string{{"Timestamp", "datetime", "Date and time when the event was recorded"}, {"DeviceId", "string", "Unique identifier for the machine in the service"}, {"RemoteIP", "string", "IP address that was being connected to"}, {"RemotePort", "int", "TCP port on the remote device"}, {"RemoteUrl", "string", "URL or FQDN that was being connected to"}}},
	{"DeviceFileEvents", "File creation, modification, and other file system events", [][3]string{{"Timestamp", "datetime", "Date and time when the event was recorded"}, {"DeviceId", "string", "Unique identifier for the machine in the service"}, {"FileName", "string", "Name of the file"}, {"FolderPath", "string", "Folder containing the file"}, {"SHA1", "string", "SHA-1 of the file"}}},
	{"DeviceRegistryEvents", "Creation and modification of registry entries", [][3]string{{"Timestamp", "datetime", "Date and time when the event was recorded"}, {"RegistryKey", "string", "Registry key that the recorded action was applied to"}, {"RegistryValueName", "string", "Name of the registry value"}, {"RegistryValueData", "string", "Data of the registry value"}}},
	{"DeviceLogonEvents", "Sign-ins and other authentication events", [][3]string{{"Timestamp", "datetime", "Date and time when the event was recorded"}, {"AccountName", "string", "User name of the account"}, {"LogonType", "string", "Type of logon session"}, {"RemoteIP", "string", "IP address of the device from which the logon was attempted"}}},
	{"DeviceEvents", "Multiple event types, including events triggered by security controls", [][3]string{{"Timestamp", "datetime", "Date and time when the event was recorded"}, {"ActionType", "string", "Type of activity that triggered the event"}, {"AdditionalFields", "dynamic", "Additional information about the event"}}},
	{"DeviceInfo", "Machine information, including OS information", [][3]string{{"Timestamp", "datetime", "Date and time when the record was generated"}, {"DeviceId", "string", "Unique identifier for the machine in the service"}, {"OSPlatform", "string", "Platform of the operating system"}}},
	{"AlertInfo", "Alerts from Microsoft Defender XDR", [][3]string{{"Timestamp", "datetime", "Date and time when the event was recorded"}, {"AlertId", "string", "Unique identifier for the alert"}, {"Title", "string", "Title of the alert"}, {"Severity", "string", "Severity of the alert"}}},
}

func (w *world) huntingSchema(now time.Time) json.RawMessage {
	type col struct{ Name, Type, Description string }
	type table struct {
		Name, Description string
		Columns           []col
	}
	tables := schemaTables
	if w.abuse != nil && happened(w.abuse.at.Add(abSchema), now) {
		tables = abuseSchemaTables()
	}
	var ts []table
	for _, t := range tables {
		tb := table{Name: t.name, Description: t.desc}
		for _, c := range t.cols {
			tb.Columns = append(tb.Columns, col{c[0], c[1], c[2]})
		}
		ts = append(ts, tb)
	}
	return mustJSON(map[string]any{"Tables": ts})
}
