package detect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/tables"
)

// SentinelRule is the rule as a Microsoft Sentinel scheduled analytics
// rule in the YAML format of the Azure-Sentinel repository.
func (r *Rule) SentinelRule() string {
	var b strings.Builder
	fmt.Fprintf(&b, "id: %s\n", r.GUID)
	fmt.Fprintf(&b, "name: %s\n", yamlString(r.ID+" "+r.Title))
	fmt.Fprintf(&b, "description: |\n  %s\n", strings.ReplaceAll(strings.TrimSpace(r.Description), "\n", "\n  "))
	fmt.Fprintf(&b, "severity: %s\n", r.Severity)
	b.WriteString("requiredDataConnectors: []\n")
	fmt.Fprintf(&b, "queryFrequency: %s\n", kqlSpan(r.Frequency.D()))
	fmt.Fprintf(&b, "queryPeriod: %s\n", kqlSpan(r.Lookback()))
	b.WriteString("triggerOperator: gt\ntriggerThreshold: 0\n")
	b.WriteString("tactics:\n")
	for _, t := range r.Tactics {
		fmt.Fprintf(&b, "  - %s\n", t)
	}
	b.WriteString("relevantTechniques:\n")
	for _, t := range r.Techniques {
		fmt.Fprintf(&b, "  - %s\n", t)
	}
	b.WriteString("query: |\n")
	for _, line := range strings.Split(strings.TrimRight(r.KQL(), "\n"), "\n") {
		fmt.Fprintf(&b, "  %s\n", line)
	}
	if col := r.accountColumn(); col != "" {
		fmt.Fprintf(&b, "entityMappings:\n  - entityType: Account\n    fieldMappings:\n      - identifier: FullName\n        columnName: %s\n", col)
	}
	b.WriteString("version: 1.0.0\nkind: Scheduled\n")
	return b.String()
}

// accountColumn is the result column naming the actor, when the query
// keeps one.
func (r *Rule) accountColumn() string {
	if r.Actor == "" {
		return ""
	}
	if r.Threshold == nil {
		return kqlName(r.Actor)
	}
	for _, f := range r.Threshold.By {
		if f == r.Actor {
			return kqlName(f)
		}
	}
	return ""
}

// isoSpan is a duration as ISO 8601 (PT1H, P1D).
func isoSpan(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("P%dD", d/(24*time.Hour))
	}
	if d%time.Hour == 0 {
		return fmt.Sprintf("PT%dH", d/time.Hour)
	}
	return fmt.Sprintf("PT%dM", d/time.Minute)
}

// ARMTemplate deploys every rule as a scheduled analytics rule, and every
// allow-list the rules read as an empty watchlist (a query naming a
// missing watchlist fails), into a Sentinel workspace.
func ARMTemplate(rules []*Rule) ([]byte, error) {
	type obj = map[string]any
	scope := "[format('Microsoft.OperationalInsights/workspaces/{0}', parameters('workspaceName'))]"
	var res []any
	lookups := map[string]bool{}
	for _, r := range rules {
		for _, l := range r.Lookups() {
			lookups[l] = true
		}
		props := obj{
			"displayName": r.ID + " " + r.Title, "description": strings.TrimSpace(r.Description), "severity": r.Severity,
			"enabled": "[parameters('enableRules')]", "query": r.KQL(),
			"queryFrequency": isoSpan(r.Frequency.D()), "queryPeriod": isoSpan(r.Lookback()),
			"triggerOperator": "GreaterThan", "triggerThreshold": 0,
			"suppressionDuration": "PT1H", "suppressionEnabled": false,
			"tactics": r.Tactics, "techniques": baseTechniques(r.Techniques),
			"incidentConfiguration": obj{"createIncident": true, "groupingConfiguration": obj{
				"enabled": true, "reopenClosedIncident": false, "lookbackDuration": "PT5H", "matchingMethod": "AllEntities",
			}},
		}
		if col := r.accountColumn(); col != "" {
			props["entityMappings"] = []any{obj{"entityType": "Account", "fieldMappings": []any{obj{"identifier": "FullName", "columnName": col}}}}
		}
		res = append(res, obj{
			"type": "Microsoft.SecurityInsights/alertRules", "apiVersion": "2023-02-01", "scope": scope,
			"name": r.GUID, "kind": "Scheduled", "properties": props,
			"dependsOn": watchlistDeps(r.Lookups()),
		})
	}
	names := make([]string, 0, len(lookups))
	for l := range lookups {
		names = append(names, l)
	}
	sort.Strings(names)
	for _, l := range names {
		res = append(res, obj{
			"type": "Microsoft.SecurityInsights/watchlists", "apiVersion": "2023-02-01", "scope": scope, "name": l,
			"properties": obj{
				"displayName": l, "provider": "defenderharvester", "source": "Local file", "itemsSearchKey": "SearchKey",
				"contentType": "text/csv", "numberOfLinesToSkip": 0, "rawContent": "SearchKey\r\n",
				"description": "Allow-list of the defenderharvester detection pack: add one value per line (SearchKey).",
			},
		})
	}
	tpl := obj{
		"$schema":        "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
		"contentVersion": "1.0.0.0",
		"parameters": obj{
			"workspaceName": obj{"type": "string", "metadata": obj{"description": "The Log Analytics workspace with Microsoft Sentinel that holds the harvester's tables (sentinel-setup)."}},
			"enableRules":   obj{"type": "bool", "defaultValue": true, "metadata": obj{"description": "Create the rules enabled."}},
		},
		"resources": res,
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(tpl); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func watchlistDeps(lookups []string) []any {
	out := []any{}
	for _, l := range lookups {
		out = append(out, fmt.Sprintf("[extensionResourceId(resourceId('Microsoft.OperationalInsights/workspaces', parameters('workspaceName')), 'Microsoft.SecurityInsights/watchlists', '%s')]", l))
	}
	return out
}

// baseTechniques are the techniques without sub-technique (the alert
// rule API takes T1234 only), deduplicated.
func baseTechniques(ts []string) []string {
	var out []string
	for _, t := range ts {
		b, _, _ := strings.Cut(t, ".")
		if !containsStr(out, b) {
			out = append(out, b)
		}
	}
	return out
}

func containsStr(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// SplunkApp is the Splunk app's files by path under its folder: app.conf,
// savedsearches.conf (one scheduled alert per rule), macros.conf (the
// index), props.conf (timestamps of every sourcetype the harvester
// writes), transforms.conf and the allow-list lookups, and the metadata.
func SplunkApp(rules []*Rule) map[string]string {
	files := map[string]string{}
	files["default/app.conf"] = `# defenderharvester detection pack for Splunk (generated by go generate ./detections)
[install]
is_configured = false
build = 1

[ui]
is_visible = false
label = defenderharvester detections

[launcher]
author = defenderharvester
description = Alerts on abuse of Microsoft Defender for Endpoint's most powerful capabilities, over the events defenderharvester sends through HEC.
version = 1.0.0

[package]
id = defenderharvester_detections
check_for_updates = false
`
	files["default/macros.conf"] = "# The index the harvester's Splunk output writes to (outputs.splunk.index): change it here.\n[" + SplunkIndexMacro + "]\ndefinition = index=defender\niseval = 0\n"
	var props strings.Builder
	props.WriteString("# One stanza per sourcetype the harvester writes (outputs.splunk: the table name unless sourcetypes says otherwise).\n# Events are the output's JSON lines; _time is TimeGenerated (the HEC envelope carries it too).\n")
	for _, t := range tables.All() {
		fmt.Fprintf(&props, "\n[%s]\nKV_MODE = json\nSHOULD_LINEMERGE = false\nTRUNCATE = 0\nTIME_PREFIX = \"TimeGenerated\":\\s*\"\nTIME_FORMAT = %%Y-%%m-%%dT%%H:%%M:%%S.%%9N%%Z\nMAX_TIMESTAMP_LOOKAHEAD = 40\n", t.Name)
	}
	files["default/props.conf"] = props.String()
	var ss, tr strings.Builder
	ss.WriteString("# One scheduled alert per rule of the defenderharvester detection pack (generated by go generate ./detections).\n")
	lookups := map[string]bool{}
	for _, r := range rules {
		search := strings.ReplaceAll(r.SPL(), "\n", " \\\n")
		fmt.Fprintf(&ss, "\n[%s %s]\n", r.ID, r.Title)
		fmt.Fprintf(&ss, "description = %s\n", strings.ReplaceAll(strings.TrimSpace(r.Description), "\n", " "))
		fmt.Fprintf(&ss, "search = %s\n", search)
		fmt.Fprintf(&ss, "dispatch.earliest_time = -%s\ndispatch.latest_time = now\n", splunkSpan(r.Lookback()))
		fmt.Fprintf(&ss, "cron_schedule = %s\nenableSched = 1\nis_scheduled = 1\n", cronFor(r.Frequency.D()))
		ss.WriteString("alert_type = number of events\nalert_comparator = greater than\nalert_threshold = 0\nalert.track = 1\nalert.suppress = 0\ncounttype = number of events\n")
		fmt.Fprintf(&ss, "alert.severity = %d\n", splunkSeverity(r.Severity))
		fmt.Fprintf(&ss, "action.correlationsearch.annotations = {\"mitre_attack\": [%s]}\n", quotedList(r.Techniques))
		for _, l := range r.Lookups() {
			lookups[l] = true
		}
	}
	files["default/savedsearches.conf"] = ss.String()
	tr.WriteString("# Allow-lists of the detection pack: one value per line under the SearchKey header.\n")
	for _, l := range sortedSet(lookups) {
		fmt.Fprintf(&tr, "\n[%s]\nfilename = %s.csv\ncase_sensitive_match = false\n", l, l)
		files["lookups/"+l+".csv"] = "SearchKey\n"
	}
	files["default/transforms.conf"] = tr.String()
	files["metadata/default.meta"] = "# Share the searches, macros and lookups with every app.\n[]\naccess = read : [ * ], write : [ admin, sc_admin ]\nexport = system\n"
	return files
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func quotedList(vs []string) string {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = `"` + v + `"`
	}
	return strings.Join(q, ", ")
}

func splunkSpan(d time.Duration) string {
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return fmt.Sprintf("%dm", d/time.Minute)
}

// cronFor runs a search every d (minutes or hours).
func cronFor(d time.Duration) string {
	switch {
	case d >= 24*time.Hour:
		return "7 3 * * *"
	case d >= time.Hour:
		return fmt.Sprintf("7 */%d * * *", d/time.Hour)
	default:
		return fmt.Sprintf("*/%d * * * *", max(d/time.Minute, 1))
	}
}

func splunkSeverity(s string) int {
	switch s {
	case "High":
		return 5
	case "Medium":
		return 4
	case "Low":
		return 3
	}
	return 2
}

// WritePack writes every generated form of the rules under dir (the
// detections folder): per rule rule.kql, rule.spl, sentinel.yaml and
// sigma.yml; sentinel/azuredeploy.json; splunk/defenderharvester_detections/.
func WritePack(dir string, rules []*Rule) error {
	write := func(p, body string) error {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		return os.WriteFile(full, []byte(body), 0o644)
	}
	for p, body := range Generated(rules) {
		if err := write(p, body); err != nil {
			return err
		}
	}
	return nil
}

// Generated is every generated file of the pack by path under the
// detections folder.
func Generated(rules []*Rule) map[string]string {
	out := map[string]string{}
	for _, r := range rules {
		out[r.ID+"/rule.kql"] = r.KQL()
		out[r.ID+"/rule.spl"] = r.SPL() + "\n"
		out[r.ID+"/sentinel.yaml"] = r.SentinelRule()
		if s := r.Sigma(); s != "" {
			out[r.ID+"/sigma.yml"] = s
		}
	}
	arm, err := ARMTemplate(rules)
	if err == nil {
		out["sentinel/azuredeploy.json"] = string(arm)
	}
	for p, body := range SplunkApp(rules) {
		out["splunk/defenderharvester_detections/"+p] = body
	}
	out["README.md"] = Readme(rules)
	return out
}
