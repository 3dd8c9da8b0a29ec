package detections

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/defenderharvester/defenderharvester/internal/detect"
	"github.com/defenderharvester/defenderharvester/internal/tables"
)

func rules(t *testing.T) []*detect.Rule {
	t.Helper()
	rs, err := Rules()
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// TestPackIsGenerated: every generated form is what the rules give now
// (edit rule.yaml, then go generate ./detections).
func TestPackIsGenerated(t *testing.T) {
	for p, want := range detect.Generated(rules(t)) {
		got, err := os.ReadFile(p)
		if err != nil || string(got) != want {
			t.Errorf("%s is stale or missing: run go generate ./detections", p)
		}
	}
}

// TestRulesUseOnlyWhatTheHarvesterWrites: every column a rule refers to
// is a column of its table in internal/tables (Load checks each field;
// this lists them so a rename of a column shows up here too), and every
// KQL query reads only <table>_CL tables the harvester writes.
func TestRulesUseOnlyWhatTheHarvesterWrites(t *testing.T) {
	tableRe := regexp.MustCompile(`\b([A-Za-z0-9]+)_CL\b`)
	for _, r := range rules(t) {
		tb, ok := tables.Lookup(r.Table)
		if !ok {
			t.Fatalf("%s: table %s", r.ID, r.Table)
		}
		cols := map[string]bool{}
		for _, c := range tb.Columns {
			cols[c.Name] = true
		}
		for _, c := range r.Columns() {
			if !cols[c] {
				t.Errorf("%s: column %s is not in %s", r.ID, c, r.Table)
			}
		}
		for _, m := range tableRe.FindAllStringSubmatch(r.KQL(), -1) {
			if _, ok := tables.Lookup(m[1]); !ok {
				t.Errorf("%s: its KQL reads %s_CL, which the harvester does not write", r.ID, m[1])
			}
		}
		if !strings.Contains(r.SPL(), `sourcetype="`+r.Table+`"`) {
			t.Errorf("%s: its SPL does not read sourcetype %s", r.ID, r.Table)
		}
	}
}

// TestARMTemplate: the template every rule deploys with has the shape
// Azure accepts (schema, parameters used are declared, every resource has
// type, apiVersion, name and properties), one scheduled rule per rule
// with its query, and a watchlist for every allow-list a query reads.
func TestARMTemplate(t *testing.T) {
	b, err := os.ReadFile("sentinel/azuredeploy.json")
	if err != nil {
		t.Fatal(err)
	}
	var tpl map[string]any
	if err := json.Unmarshal(b, &tpl); err != nil {
		t.Fatal(err)
	}
	if tpl["$schema"] != "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#" || tpl["contentVersion"] != "1.0.0.0" {
		t.Fatalf("schema %v content version %v", tpl["$schema"], tpl["contentVersion"])
	}
	params := tpl["parameters"].(map[string]any)
	for _, m := range regexp.MustCompile(`parameters\('([A-Za-z]+)'\)`).FindAllStringSubmatch(string(b), -1) {
		if _, ok := params[m[1]]; !ok {
			t.Errorf("the template uses parameter %s, which it does not declare", m[1])
		}
	}
	rulesBy := map[string]*detect.Rule{}
	lookups := map[string]bool{}
	for _, r := range rules(t) {
		rulesBy[r.GUID] = r
		for _, l := range r.Lookups() {
			lookups[l] = true
		}
	}
	alerts, watchlists := 0, map[string]bool{}
	for _, x := range tpl["resources"].([]any) {
		res := x.(map[string]any)
		for _, k := range []string{"type", "apiVersion", "name", "properties", "scope"} {
			if res[k] == nil {
				t.Fatalf("resource without %s: %v", k, res)
			}
		}
		p := res["properties"].(map[string]any)
		switch res["type"] {
		case "Microsoft.SecurityInsights/alertRules":
			alerts++
			r := rulesBy[res["name"].(string)]
			if r == nil || res["kind"] != "Scheduled" || p["query"] != r.KQL() || p["severity"] != r.Severity {
				t.Errorf("alert rule %v does not match a rule of the pack", res["name"])
				continue
			}
			for _, k := range []string{"queryFrequency", "queryPeriod"} {
				if !regexp.MustCompile(`^P(T\d+[HM]|\d+D)$`).MatchString(p[k].(string)) {
					t.Errorf("%s: %s %v is not an ISO 8601 duration", r.ID, k, p[k])
				}
			}
			for _, tech := range p["techniques"].([]any) {
				if !regexp.MustCompile(`^T\d{4}$`).MatchString(tech.(string)) {
					t.Errorf("%s: technique %v (the API takes T1234 without sub-technique)", r.ID, tech)
				}
			}
		case "Microsoft.SecurityInsights/watchlists":
			watchlists[res["name"].(string)] = true
			if p["itemsSearchKey"] != "SearchKey" || !strings.HasPrefix(p["rawContent"].(string), "SearchKey") {
				t.Errorf("watchlist %v: search key %v", res["name"], p["itemsSearchKey"])
			}
		default:
			t.Errorf("unexpected resource type %v", res["type"])
		}
	}
	if alerts != len(rulesBy) {
		t.Errorf("%d alert rules for %d rules", alerts, len(rulesBy))
	}
	for l := range lookups {
		if !watchlists[l] {
			t.Errorf("allow-list %s is read by a rule but not deployed as a watchlist", l)
		}
	}
}

// TestSplunkAppLayout: the app has the files Splunk needs, every .conf
// parses as stanzas of key = value (continuation lines ending in \),
// every rule is a scheduled search with its SPL, every sourcetype the
// harvester writes has a props stanza extracting TimeGenerated, and every
// lookup a search reads has its file and transform.
func TestSplunkAppLayout(t *testing.T) {
	dir := "splunk/defenderharvester_detections"
	confs := map[string]map[string]map[string]string{}
	for _, name := range []string{"app", "savedsearches", "props", "macros", "transforms"} {
		confs[name] = readConf(t, filepath.Join(dir, "default", name+".conf"))
	}
	if confs["app"]["package"]["id"] != "defenderharvester_detections" || confs["app"]["launcher"]["version"] == "" {
		t.Errorf("app.conf: package id %q, version %q", confs["app"]["package"]["id"], confs["app"]["launcher"]["version"])
	}
	if _, err := os.Stat(filepath.Join(dir, "metadata", "default.meta")); err != nil {
		t.Error(err)
	}
	if !strings.HasPrefix(confs["macros"][detect.SplunkIndexMacro]["definition"], "index=") {
		t.Errorf("macros.conf does not define %s", detect.SplunkIndexMacro)
	}
	for _, r := range rules(t) {
		st, ok := confs["savedsearches"][r.ID+" "+r.Title]
		if !ok {
			t.Errorf("savedsearches.conf has no stanza for %s", r.ID)
			continue
		}
		if st["search"] != strings.ReplaceAll(r.SPL(), "\n", " ") || st["enableSched"] != "1" || st["cron_schedule"] == "" || !strings.HasPrefix(st["dispatch.earliest_time"], "-") {
			t.Errorf("%s: saved search %v", r.ID, st)
		}
		for _, l := range r.Lookups() {
			if confs["transforms"][l]["filename"] != l+".csv" {
				t.Errorf("%s reads lookup %s, which transforms.conf does not define", r.ID, l)
			}
			if b, err := os.ReadFile(filepath.Join(dir, "lookups", l+".csv")); err != nil || !strings.HasPrefix(string(b), "SearchKey") {
				t.Errorf("lookup file of %s: %v", l, err)
			}
		}
	}
	for _, tb := range tables.All() {
		if p := confs["props"][tb.Name]; p["KV_MODE"] != "json" || !strings.Contains(p["TIME_PREFIX"], "TimeGenerated") {
			t.Errorf("props.conf [%s]: %v", tb.Name, p)
		}
	}
}

// readConf parses a Splunk .conf file strictly enough to catch a broken
// one: comments, [stanza] headers, key = value lines, \ continuations.
func readConf(t *testing.T, p string) map[string]map[string]string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]map[string]string{}
	cur := ""
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var pending string
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if pending != "" {
			line = pending + "\n" + line
			pending = ""
		}
		if strings.HasSuffix(line, `\`) {
			pending = strings.TrimSuffix(line, `\`)
			continue
		}
		trim := strings.TrimSpace(line)
		switch {
		case trim == "" || strings.HasPrefix(trim, "#"):
		case strings.HasPrefix(trim, "[") && strings.HasSuffix(trim, "]"):
			cur = trim[1 : len(trim)-1]
			if _, dup := out[cur]; dup {
				t.Fatalf("%s line %d: stanza [%s] twice", p, n, cur)
			}
			out[cur] = map[string]string{}
		default:
			k, v, ok := strings.Cut(trim, "=")
			if !ok || out[cur] == nil {
				t.Fatalf("%s line %d: not a key = value line inside a stanza", p, n)
			}
			out[cur][strings.TrimSpace(k)] = strings.ReplaceAll(strings.TrimSpace(v), " \n", " ")
		}
	}
	if pending != "" {
		t.Fatalf("%s: a continuation line ends the file", p)
	}
	return out
}

// TestTestdataAgreesWithTheNativeEvaluator: every rule has a test set
// (testdata/, built by go run ./detections/gen -testdata from the
// emulated abuse scenario), and the rows expected.json promises — what the
// CI harness checks the KQL against — are what the native evaluator finds
// there: the KQL, the native rule and the test set cannot drift apart.
func TestTestdataAgreesWithTheNativeEvaluator(t *testing.T) {
	for _, r := range rules(t) {
		dir := filepath.Join(r.Dir(), "testdata")
		b, err := os.ReadFile(filepath.Join(dir, "expected.json"))
		if err != nil {
			t.Errorf("%s has no test set: run go run ./detections/gen -testdata (%v)", r.ID, err)
			continue
		}
		var exp struct {
			KQLRows *int `json:"kql_rows"`
		}
		if err := json.Unmarshal(b, &exp); err != nil || exp.KQLRows == nil || *exp.KQLRows == 0 {
			t.Errorf("%s: expected.json has no positive kql_rows (%v)", r.ID, err)
			continue
		}
		lists, err := detect.LoadLookups(filepath.Join(dir, "lookups"))
		if err != nil {
			t.Fatal(err)
		}
		ev := detect.NewEvaluator([]*detect.Rule{r}, lists)
		st, err := detect.ReadDir(dir, nil, ev.Add)
		if err == nil && st.Records == 0 {
			// The test set is <Table>.jsonl, not the files output's
			// <Table>-<day>.jsonl: read it directly.
			err = readJSONL(filepath.Join(dir, r.Table+".jsonl"), r.Table, ev.Add)
		}
		if err != nil {
			t.Fatal(err)
		}
		if n := len(ev.Findings()); n != *exp.KQLRows {
			t.Errorf("%s: the native evaluator finds %d rows in its test set, expected.json says %d: regenerate the test set", r.ID, n, *exp.KQLRows)
		}
	}
}

func readJSONL(p, table string, fn func(detect.Record)) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		fn(detect.Record{Table: table, Fields: m})
	}
	return sc.Err()
}
