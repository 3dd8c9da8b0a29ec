package detect

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"go.yaml.in/yaml/v3"
)

const baseRule = `id: DH-900
guid: 00000000-0000-4000-8000-000000000900
title: Test rule
description: A rule for tests.
severity: High
tactics: [DefenseEvasion]
techniques: [T1562.001]
table: MdeMachineActions
actor: DecidedBy
show: [ComputerName, AdditionalFields.raw_command]
false_positives: [none]
tuning: none
needs: [actioncenter]
`

func mustRule(t *testing.T, extra string) *Rule {
	t.Helper()
	r, err := Parse([]byte(baseRule + extra))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestParseRefuses(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"unknown key", baseRule + "where: {field: ActionType, equals: X}\nsevertiy: Low\n", "severtiy"},
		{"unknown column", baseRule + "where: {field: ActionTyp, equals: X}\n", `column "ActionTyp" does not exist`},
		{"path into a string column", baseRule + "where: {field: ActionType.x, equals: X}\n", "only dynamic columns have paths"},
		{"two tests on a leaf", baseRule + "where: {field: ActionType, equals: X, in: [Y]}\n", "exactly one of"},
		{"leaf and group", baseRule + "where: {field: ActionType, equals: X, all: [{field: ActionType, equals: Y}]}\n", "exactly one of all, any or a field test"},
		{"wildcard value", baseRule + "where: {field: ActionType, contains: ['a*b']}\n", "Splunk wildcard"},
		{"unknown table", strings.Replace(baseRule, "MdeMachineActions", "MdeNope", 1) + "where: {field: ActionType, equals: X}\n", `table "MdeNope"`},
		{"bad severity", strings.Replace(baseRule, "High", "Critical", 1) + "where: {field: ActionType, equals: X}\n", "severity"},
		{"threshold of one", baseRule + "where: {field: ActionType, equals: X}\nthreshold: {by: [DecidedBy], within: 1h, at_least: 1}\n", "at_least 2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse([]byte(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
		})
	}
	_, err := Load(fstest.MapFS{"DH-901/rule.yaml": {Data: []byte(baseRule + "where: {field: ActionType, equals: X}\n")}})
	if err == nil || !strings.Contains(err.Error(), "named after the rule id") {
		t.Fatalf("a rule in another folder: %v", err)
	}
}

func rec(table, id, at string, fields string) Record {
	dec := json.NewDecoder(strings.NewReader(fields))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		panic(err)
	}
	m["RecordId"], m["TimeGenerated"] = id, at
	return Record{Table: table, Fields: m}
}

func TestEvaluate(t *testing.T) {
	lr := mustRule(t, `where:
  all:
    - field: ActionType
      equals: livereSPONSEcommand
    - any:
        - field: AdditionalFields.raw_command
          startswith: ["run "]
        - field: AdditionalFields.raw_command
          contains: [LSASS]
    - field: ActionStatus
      not: true
      equals: Pending
    - field: DecidedBy
      not_in_lookup: DH_Ops
`)
	recs := []Record{
		rec("MdeMachineActions", "r1", "2026-11-30T10:00:00Z", `{"ActionType":"LiveResponseCommand","ActionStatus":"Completed","DecidedBy":"eve@x.com","ComputerName":"pc1","AdditionalFields":{"raw_command":"run evil.ps1"}}`),
		rec("MdeMachineActions", "r1", "2026-11-30T10:00:00Z", `{"ActionType":"LiveResponseCommand","ActionStatus":"Completed","DecidedBy":"eve@x.com","ComputerName":"pc1","AdditionalFields":{"raw_command":"run evil.ps1"}}`), // delivered twice
		rec("MdeMachineActions", "r2", "2026-11-30T10:01:00Z", `{"ActionType":"LiveResponseCommand","ActionStatus":"Completed","DecidedBy":"Bob@X.com","ComputerName":"pc2","AdditionalFields":{"raw_command":"run ok.ps1"}}`),   // allow-listed
		rec("MdeMachineActions", "r3", "2026-11-30T10:02:00Z", `{"ActionType":"LiveResponseCommand","ActionStatus":"Pending","DecidedBy":"eve@x.com","ComputerName":"pc3","AdditionalFields":{"raw_command":"run evil.ps1"}}`),   // pending
		rec("MdeMachineActions", "r4", "2026-11-30T10:03:00Z", `{"ActionType":"LiveResponseCommand","ActionStatus":"Failed","DecidedBy":"eve@x.com","ComputerName":"pc4","AdditionalFields":{"raw_command":"memdump lsass"}}`),
		rec("MdeMachineActions", "r5", "2026-11-30T10:04:00Z", `{"ActionType":"LiveResponseCommand","ActionStatus":"Failed","DecidedBy":"eve@x.com","ComputerName":"pc5","AdditionalFields":{"raw_command":"processes"}}`),
		rec("MdeMachineActions", "r6", "2026-11-30T10:05:00Z", `{"ActionType":"LiveResponseCommand","ActionStatus":"Failed","DecidedBy":"eve@x.com","ComputerName":"pc6"}`), // no command
		rec("MdeTimeline", "r7", "2026-11-30T10:06:00Z", `{"ActionType":"LiveResponseCommand","AdditionalFields":{"raw_command":"run x"}}`),                                 // other table
	}
	lists := Lookups{}
	lists.Add("DH_Ops", " bob@x.com ")
	ev := NewEvaluator([]*Rule{lr}, lists)
	for _, r := range recs {
		ev.Add(r)
	}
	var got []string
	for _, f := range ev.Findings() {
		got = append(got, f.RecordIDs[0]+":"+f.Actor+":"+f.Evidence[0]["AdditionalFields.raw_command"])
	}
	if want := "r1:eve@x.com:run evil.ps1 r4:eve@x.com:memdump lsass"; strings.Join(got, " ") != want {
		t.Fatalf("findings %v, want %s", got, want)
	}

	// A threshold: distinct devices per operator per hour bin, aligned
	// to the epoch (10:59 and 11:01 are different bins).
	many := mustRule(t, `where: {field: ActionType, equals: LiveResponseCommand}
threshold: {by: [DecidedBy], within: 1h, distinct: MachineId, at_least: 3}
`)
	ev = NewEvaluator([]*Rule{many}, nil)
	for i, at := range []string{"10:00", "10:10", "10:20", "10:30", "10:59", "11:01", "11:02"} {
		m := []string{"a", "b", "a", "c", "c", "d", "e"}[i]
		ev.Add(rec("MdeMachineActions", "t"+at, "2026-11-30T"+at+":00Z", `{"ActionType":"LiveResponseCommand","DecidedBy":"eve","MachineId":"`+m+`"}`))
	}
	fs := ev.Findings()
	if len(fs) != 1 || fs[0].Distinct != 3 || fs[0].Count != 5 || fs[0].Group["DecidedBy"] != "eve" ||
		!fs[0].FirstSeen.Equal(time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)) || !fs[0].LastSeen.Equal(time.Date(2026, 11, 30, 10, 59, 0, 0, time.UTC)) {
		t.Fatalf("threshold findings: %+v", fs)
	}
}

func TestValuesReadAsText(t *testing.T) {
	cases := []struct {
		json string
		want string
	}{
		{`{"v":false}`, "false"}, {`{"v":12345678901234567890}`, "12345678901234567890"}, {`{"v":null}`, ""},
		{`{"v":["a",1]}`, `["a",1]`}, {`{"v":{"b":"<x>"}}`, `{"b":"<x>"}`}, {`{}`, ""},
	}
	for _, tc := range cases {
		r := rec("T", "x", "2026-11-30T10:00:00Z", tc.json)
		if got := text(lookup(r.Fields, []string{"v"})); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.json, got, tc.want)
		}
	}
}

// TestForms: the generated KQL, SPL and Sigma say the same as the rule.
func TestForms(t *testing.T) {
	r := mustRule(t, `where:
  all:
    - field: ActionType
      in: [LiveResponseCommand]
    - field: AdditionalFields.raw_command
      contains: [lsass]
    - field: DecidedBy
      not_in_lookup: DH_Ops
`)
	kql := r.KQL()
	for _, w := range []string{"MdeMachineActions_CL", `ActionType in~ ("LiveResponseCommand")`, `tostring(AdditionalFields["raw_command"]) contains "lsass"`,
		`let DH_Ops = _GetWatchlist("DH_Ops") | project SearchKey;`, `DecidedBy !in~ (DH_Ops)`, "| project TimeGenerated, ComputerName, AdditionalFields_raw_command"} {
		if !strings.Contains(kql, w) {
			t.Errorf("KQL lacks %s:\n%s", w, kql)
		}
	}
	spl := r.SPL()
	for _, w := range []string{"`defenderharvester_index` sourcetype=\"MdeMachineActions\"", `ActionType IN ("LiveResponseCommand")`,
		`AdditionalFields.raw_command="*lsass*"`, "NOT [| inputlookup DH_Ops.csv | rename SearchKey AS DecidedBy | fields DecidedBy]"} {
		if !strings.Contains(spl, w) {
			t.Errorf("SPL lacks %s:\n%s", w, spl)
		}
	}
	dec := yaml.NewDecoder(strings.NewReader(r.Sigma()))
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	det := doc["detection"].(map[string]any)
	if doc["id"] != r.GUID || doc["logsource"].(map[string]any)["service"] != "MdeMachineActions" || det["condition"] != "(selection_1 and selection_2)" {
		t.Fatalf("sigma: %v", doc)
	}
	if !strings.Contains(doc["description"].(string), "DH_Ops") {
		t.Errorf("the Sigma form does not say it left the allow-list out: %v", doc["description"])
	}
	if err := dec.Decode(&doc); !errors.Is(err, io.EOF) {
		t.Errorf("a rule without threshold has a second Sigma document: %v", err)
	}
}

func TestReadDirSkipsTornLines(t *testing.T) {
	dir := t.TempDir()
	body := `{"RecordId":"a","TimeGenerated":"2026-11-30T10:00:00Z"}` + "\n" + `{"RecordId":"b","Time`
	if err := os.WriteFile(filepath.Join(dir, "MdeMachineActions-20261130.jsonl"), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o600)
	var ids []string
	st, err := ReadDir(dir, nil, func(r Record) { ids = append(ids, r.ID()) })
	if err != nil || st.Records != 1 || st.Skipped != 1 || len(ids) != 1 || !strings.Contains(st.Problems[0], "line 2") {
		t.Fatalf("stats %+v err %v ids %v", st, err, ids)
	}
	if _, err := ReadDir(filepath.Join(dir, "nope"), nil, func(Record) {}); err == nil {
		t.Fatal("a missing folder read as empty")
	}
}

func TestLoadLookups(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "DH_Ops.csv"), []byte("\ufeffName,SearchKey\n# comment\nAlice,ALICE@x.com\nBob,\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "Bad.csv"), []byte("Name\nx\n"), 0o600)
	_, err := LoadLookups(dir)
	if err == nil || !strings.Contains(err.Error(), "SearchKey") {
		t.Fatalf("a list without SearchKey: %v", err)
	}
	os.Remove(filepath.Join(dir, "Bad.csv"))
	l, err := LoadLookups(dir)
	if err != nil || !l["DH_Ops"]["alice@x.com"] || len(l["DH_Ops"]) != 1 {
		t.Fatalf("lists %v err %v", l, err)
	}
}

// FuzzParse: any text either parses into a rule whose forms can be
// generated, or is refused with an error; nothing panics.
func FuzzParse(f *testing.F) {
	f.Add(baseRule + "where: {field: ActionType, equals: X}\n")
	f.Add(baseRule + "where: {all: [{field: AdditionalFields.a, contains: [b]}, {any: [{field: DecidedBy, not_in_lookup: DH_x}]}]}\nthreshold: {by: [DecidedBy], within: 1h, at_least: 2}\n")
	f.Add("id: [")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse([]byte(s))
		if err != nil {
			return
		}
		_, _, _ = r.KQL(), r.SPL(), r.Sigma()
		ev := NewEvaluator([]*Rule{r}, nil)
		ev.Add(rec(r.Table, "x", "2026-11-30T10:00:00Z", `{"a":{"b":[1,{"c":true}]}}`))
		_ = ev.Findings()
	})
}
