package tables_test

import (
	"bytes"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/defenderharvester/defenderharvester/internal/source"
	_ "github.com/defenderharvester/defenderharvester/internal/source/all"
	"github.com/defenderharvester/defenderharvester/internal/tables"
)

var updateDocs = flag.Bool("update-docs", false, "rewrite docs/tables.md")

func TestEverySourceTableIsDescribed(t *testing.T) {
	facts := source.All()
	if len(facts) == 0 {
		t.Fatal("no source registered")
	}
	seen := map[string]bool{}
	for _, f := range facts {
		// Table and the others it writes (Item.Table).
		for _, name := range append([]string{f.Table}, f.Tables...) {
			tb, ok := tables.Lookup(name)
			if !ok {
				t.Errorf("source %s writes table %s, which internal/tables does not describe", f.Name, name)
				continue
			}
			seen[name] = true
			if tb.Source != f.Name {
				t.Errorf("table %s: source %q, want %q", name, tb.Source, f.Name)
			}
			if tb.Snapshot != (f.Kind == source.Snapshot) {
				t.Errorf("table %s: Snapshot=%v but source %s is %s", name, tb.Snapshot, f.Name, f.Kind)
			}
		}
	}
	for _, tb := range tables.All() {
		if !seen[tb.Name] && tb.Source != tables.WriterPipeline && tb.Source != tables.WriterDetect {
			t.Errorf("table %s is described but no source writes it", tb.Name)
		}
	}
}

func TestColumnsFollowLogAnalyticsRules(t *testing.T) {
	types := map[string]bool{"string": true, "int": true, "long": true, "real": true, "boolean": true, "datetime": true, "dynamic": true}
	for _, tb := range tables.All() {
		if len(tb.Name)+3 > 63 || !tables.ValidColumnName(tb.Name) {
			t.Errorf("table name %q is not a valid custom table name", tb.Name)
		}
		names := map[string]bool{}
		inputs := map[string]bool{}
		std := []string{"DefenderTenantId", "SourceName", "HarvestedAt", "RecordId", "TimeGenerated"}
		if tb.Snapshot {
			std = append(std, "ChangeType", "ChangedFields", "SnapshotKey")
		}
		for i, s := range std {
			if i >= len(tb.Columns) || tb.Columns[i].Name != s {
				t.Errorf("%s: column %d is not the standard %s", tb.Name, i, s)
			}
		}
		for _, c := range tb.Columns {
			if !tables.ValidColumnName(c.Name) {
				t.Errorf("%s.%s: invalid or reserved Log Analytics column name", tb.Name, c.Name)
			}
			if !types[c.Type] {
				t.Errorf("%s.%s: unknown type %q", tb.Name, c.Name, c.Type)
			}
			if strings.TrimSpace(c.Description) == "" {
				t.Errorf("%s.%s: no description", tb.Name, c.Name)
			}
			if names[strings.ToLower(c.Name)] {
				t.Errorf("%s.%s: duplicate column (case-insensitive)", tb.Name, c.Name)
			}
			names[strings.ToLower(c.Name)] = true
			if inputs[c.InputName()] {
				t.Errorf("%s: field %s described twice", tb.Name, c.InputName())
			}
			inputs[c.InputName()] = true
			if tables.IsReserved(c.InputName()) && c.Field == "" {
				t.Errorf("%s: reserved field %s is not renamed", tb.Name, c.InputName())
			}
		}
		if len(tb.Columns) > 500 {
			t.Errorf("%s: %d columns, Log Analytics allows 500", tb.Name, len(tb.Columns))
		}
		if tb.Columns[4].Type != "datetime" {
			t.Errorf("%s: TimeGenerated must be datetime", tb.Name)
		}
	}
}

func TestTransformRenamesReservedFields(t *testing.T) {
	tests := []struct {
		table, want string
	}{
		{"MdeExecutedQueries", "source | project-rename DefenderTenantId = ['TenantId']"},
		{"MdeMachineActionsApi", "source | project-rename DefenderTenantId = ['TenantId'], ActionId = ['id'], ActionType = ['type'], ActionTitle = ['title']"},
		{"M365DataExportSettings", "source | project-rename DefenderTenantId = ['TenantId'], SettingId = ['id']"},
	}
	for _, tt := range tests {
		tb, ok := tables.Lookup(tt.table)
		if !ok {
			t.Fatalf("Lookup(%s) failed", tt.table)
		}
		if got := tb.TransformKQL(); got != tt.want {
			t.Errorf("%s transform:\n got %s\nwant %s", tt.table, got, tt.want)
		}
		if n := len(tb.TransformKQL()); n > 15360 {
			t.Errorf("%s transform is %d chars, DCR limit 15360", tt.table, n)
		}
	}
	if _, ok := tables.Lookup("NoSuchTable"); ok {
		t.Error("Lookup of an unknown table succeeded")
	}
}

func TestLookupReturnsACopy(t *testing.T) {
	a, _ := tables.Lookup("MdeTimeline")
	a.Columns[0].Name = "Changed"
	b, _ := tables.Lookup("MdeTimeline")
	if b.Columns[0].Name == "Changed" {
		t.Fatal("Lookup exposes the shared table data")
	}
}

// TestDocsTablesMD fails when docs/tables.md is stale; run
// `go generate ./internal/tables` to rewrite it.
func TestDocsTablesMD(t *testing.T) {
	const path = "../../docs/tables.md"
	want := tables.Markdown()
	if *updateDocs {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v; run go generate ./internal/tables", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("docs/tables.md is stale: run go generate ./internal/tables")
	}
}
