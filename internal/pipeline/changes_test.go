package pipeline

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/source"
)

func TestDiffFields(t *testing.T) {
	cases := []struct {
		name, old, cur string
		want           string // Path:Before>After, joined by " | "
	}{
		{"a setting switched off", `{"EnableWdavAntiTampering":true,"Other":1}`, `{"Other":1,"EnableWdavAntiTampering":false}`,
			`EnableWdavAntiTampering:true>false`},
		{"nested objects give dotted paths", `{"eventHubProperties":{"eventHubResourceId":"a","name":"x"}}`, `{"eventHubProperties":{"eventHubResourceId":"b","name":"x"}}`,
			`eventHubProperties.eventHubResourceId:"a">"b"`},
		{"a field added and one removed", `{"a":1}`, `{"b":2}`, `a:1> | b:>2`},
		{"arrays of named objects compare by name", `{"Columns":[{"Name":"A","Type":"string"},{"Name":"B","Type":"int"}]}`,
			`{"Columns":[{"Name":"B","Type":"long"},{"Name":"A","Type":"string"},{"Name":"C","Type":"bool"}]}`,
			`Columns[Name=B].Type:"int">"long" | Columns[Name=C]:>{"Name":"C","Type":"bool"}`},
		{"a category disabled in an export", `{"logs":[{"category":"AdvancedHunting-DeviceEvents","enabled":true},{"category":"AdvancedHunting-AlertInfo","enabled":true}]}`,
			`{"logs":[{"category":"AdvancedHunting-DeviceEvents","enabled":true},{"category":"AdvancedHunting-AlertInfo","enabled":false}]}`,
			`logs[category=AdvancedHunting-AlertInfo].enabled:true>false`},
		{"same-length arrays by position", `{"GroupRules":[{"Value":"srv-*"},{"Value":"dc-*"}]}`, `{"GroupRules":[{"Value":"srv-*"},{"Value":"x-*"}]}`,
			`GroupRules[1].Value:"dc-*">"x-*"`},
		{"arrays of other lengths whole", `{"Tags":["a"]}`, `{"Tags":["a","b"]}`, `Tags:["a"]>["a","b"]`},
		{"big numbers stay exact", `{"Id":9007199254740993,"N":1}`, `{"Id":9007199254740993,"N":9007199254740995}`, `N:1>9007199254740995`},
		{"not objects", `[3]`, `{"Id":3}`, `Value:[3]>{"Id":3}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var parts []string
			for _, c := range DiffFields(json.RawMessage(tc.old), json.RawMessage(tc.cur)) {
				parts = append(parts, fmt.Sprintf("%s:%s>%s", c.Path, c.Before, c.After))
			}
			if got := strings.Join(parts, " | "); got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
	// Too many changes: the changed top-level fields, whole.
	var a, b strings.Builder
	a.WriteString(`{"Big":{`)
	b.WriteString(`{"Big":{`)
	for i := range maxDiffChanges + 1 {
		if i > 0 {
			a.WriteByte(',')
			b.WriteByte(',')
		}
		fmt.Fprintf(&a, `"k%d":%d`, i, i)
		fmt.Fprintf(&b, `"k%d":%d`, i, i+1)
	}
	a.WriteString(`},"Same":1}`)
	b.WriteString(`},"Same":1}`)
	if got := DiffFields(json.RawMessage(a.String()), json.RawMessage(b.String())); len(got) != 1 || got[0].Path != "Big" {
		t.Fatalf("a change of %d fields: %d entries (first %q), want the one top-level field whole", maxDiffChanges+1, len(got), got[0].Path)
	}
}

// attributedSnapshot is a snapshot source whose items name their editor.
type attributedSnapshot struct{ fakeSnapshot }

func (*attributedSnapshot) Attribution() source.Attribution {
	return source.Attribution{EditedBy: []string{"LastUpdatedBy"}, EditedAt: []string{"LastUpdateTime"},
		CreatedBy: []string{"CreatedBy"}, CreatedAt: []string{"CreationTime"}}
}

// TestChangeRecordsSayWhatWhoAndWhen: a modified item's change record
// carries each field's before and after, the interval it happened in and
// — when the item's edit time moved — who and when; the combined table
// has one row per changed field (per item when added or removed).
func TestChangeRecordsSayWhatWhoAndWhen(t *testing.T) {
	store, _ := newStore(t)
	clk := &clock{t: t0}
	src := &attributedSnapshot{}
	mem := newMemSink()
	step := func(kv ...string) {
		t.Helper()
		p := newPipeline(t, Options{Store: store, Sinks: sinks{mem}.s(), Now: clk.Now})
		src.set(nil, kv...)
		if res := run1(t, p, src, RunOptions{}); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	step("7", `{"Id":7,"IsEnabled":true,"QueryText":"q1","LastUpdatedBy":"bob@contoso.com","LastUpdateTime":"2026-03-01T09:00:00Z"}`)
	clk.Set(t0.Add(time.Hour))
	// Disabled by alice at 12:34, and its query changed; rule 8 appears;
	// rule 7's auto-disable flag changes later without an edit time.
	step("7", `{"Id":7,"IsEnabled":false,"QueryText":"q2","LastUpdatedBy":"alice@contoso.com","LastUpdateTime":"2026-03-01T12:34:00Z"}`,
		"8", `{"Id":8,"IsEnabled":true,"CreatedBy":"carol@contoso.com","CreationTime":"2026-03-01T12:40:00"}`)
	clk.Set(t0.Add(2 * time.Hour))
	step("7", `{"Id":7,"IsEnabled":false,"QueryText":"q2","LastUpdatedBy":"alice@contoso.com","LastUpdateTime":"2026-03-01T12:34:00Z","IsAutoDisabled":true}`,
		"8", `{"Id":8,"IsEnabled":true,"CreatedBy":"carol@contoso.com","CreationTime":"2026-03-01T12:40:00"}`)

	extras := func(r record.Record) map[string]string {
		m := map[string]string{}
		for _, f := range r.Extra {
			m[f.Key] = string(f.Value)
		}
		return m
	}
	var modified, added, auto map[string]string
	for _, r := range ofTable(mem.all(), "MdeCustomDetectionState") {
		e := extras(r)
		switch {
		case e["ChangeType"] == `"Modified"` && strings.Contains(e["Changes"], "IsAutoDisabled"):
			auto = e
		case e["ChangeType"] == `"Modified"`:
			modified = e
		case e["ChangeType"] == `"Added"`:
			added = e
		}
	}
	if modified == nil || added == nil || auto == nil {
		t.Fatalf("missing change records: modified %v added %v auto %v", modified, added, auto)
	}
	wantChanges := `[{"Path":"IsEnabled","Before":true,"After":false},{"Path":"LastUpdateTime","Before":"2026-03-01T09:00:00Z","After":"2026-03-01T12:34:00Z"},{"Path":"LastUpdatedBy","Before":"bob@contoso.com","After":"alice@contoso.com"},{"Path":"QueryText","Before":"q1","After":"q2"}]`
	if modified["Changes"] != wantChanges {
		t.Errorf("Changes = %s\nwant      %s", modified["Changes"], wantChanges)
	}
	for k, want := range map[string]string{
		"ChangedBy": `"alice@contoso.com"`, "ChangedAt": `"2026-03-01T12:34:00Z"`,
		"PreviousSnapshotTime": `"2026-03-01T12:00:00Z"`, "SnapshotTime": `"2026-03-01T13:00:00Z"`,
	} {
		if modified[k] != want {
			t.Errorf("modified %s = %s, want %s", k, modified[k], want)
		}
	}
	if added["ChangedBy"] != `"carol@contoso.com"` || added["ChangedAt"] != `"2026-03-01T12:40:00Z"` {
		t.Errorf("added: ChangedBy %s ChangedAt %s; want carol and 12:40 (a time without zone is UTC)", added["ChangedBy"], added["ChangedAt"])
	}
	if _, ok := auto["ChangedBy"]; ok {
		t.Errorf("a change without a new edit time was attributed to %s (the editor of an earlier change)", auto["ChangedBy"])
	}

	// The combined table: one row per changed field, text values.
	var rows []combinedRow
	for _, r := range ofTable(mem.all(), ConfigurationChangesTable) {
		var row combinedRow
		if err := json.Unmarshal(r.Raw, &row); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, row)
	}
	var disabled *combinedRow
	paths := map[string]int{}
	for i, row := range rows {
		paths[row.ChangeType+" "+row.FieldPath]++
		if row.FieldPath == "IsEnabled" {
			disabled = &rows[i]
		}
	}
	if len(rows) != 6 || paths["Modified IsEnabled"] != 1 || paths["Added "] != 1 || paths["Modified IsAutoDisabled"] != 1 || paths["Initial "] != 0 {
		t.Fatalf("combined rows by change and path: %v (want 4 for rule 7's edit, 1 for rule 8 added, 1 for the auto-disable; none for the first snapshot)", paths)
	}
	if disabled.Before != "true" || disabled.After != "false" || disabled.DataSet != "MdeCustomDetectionState" || disabled.SnapshotKey != "7" ||
		disabled.ChangedBy != "alice@contoso.com" || disabled.ChangeRecordId == "" || !strings.Contains(string(disabled.Item), `"IsEnabled":false`) {
		t.Errorf("the combined row of the disable: %+v", *disabled)
	}
}

func FuzzDiffFields(f *testing.F) {
	f.Add(`{"a":1,"b":[{"Name":"x","v":1}]}`, `{"a":2,"b":[{"Name":"x","v":2},{"Name":"y"}]}`)
	f.Add(`[1,2]`, `[1,3]`)
	f.Add(`{"a":{"b":{"c":1}}}`, `not json`)
	f.Fuzz(func(t *testing.T, old, cur string) {
		changes := DiffFields(json.RawMessage(old), json.RawMessage(cur))
		if old == cur && json.Valid([]byte(old)) && len(changes) != 0 {
			t.Fatalf("an unchanged value has changes: %v", changes)
		}
		for _, c := range changes {
			if c.Path == "" || (c.Before != nil && !json.Valid(c.Before)) || (c.After != nil && !json.Valid(c.After)) {
				t.Fatalf("bad change %+v", c)
			}
		}
	})
}
