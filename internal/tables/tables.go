// Package tables is the one machine-readable description of every table
// the harvester writes: the standard fields, each payload's top-level
// fields with Log Analytics types, and the renames that reserved Log
// Analytics column names need. The Sentinel setup template, the DCR
// transform and docs/tables.md are all generated from it, so they agree.
package tables

//go:generate go test -run TestDocsTablesMD -update-docs .

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Log Analytics column types.
const (
	String   = "string"
	Int      = "int"
	Long     = "long"
	Real     = "real"
	Boolean  = "boolean"
	DateTime = "datetime"
	Dynamic  = "dynamic"
)

// Column is one column of a table.
type Column struct {
	Name        string // column name in Log Analytics
	Type        string // one of the type constants
	Description string
	// Field is the harvester's JSON field name when it differs from Name
	// (a reserved Log Analytics name renamed by the DCR transform).
	Field string
}

// InputName is the field name the harvester sends (the DCR stream column).
func (c Column) InputName() string {
	if c.Field != "" {
		return c.Field
	}
	return c.Name
}

// Table describes one harvester table.
type Table struct {
	Name        string // e.g. "MdeMachineActions" (Log Analytics: Name + "_CL")
	Source      string // the source that writes it
	Snapshot    bool   // snapshot tables carry ChangeType, ChangedFields, SnapshotKey
	Description string
	Columns     []Column // standard columns first, then the payload's
}

// Rename is one reserved field renamed on ingestion.
type Rename struct{ From, To string }

// Renames lists the fields the DCR transform renames, in column order.
func (t Table) Renames() []Rename {
	var out []Rename
	for _, c := range t.Columns {
		if c.Field != "" && c.Field != c.Name {
			out = append(out, Rename{From: c.Field, To: c.Name})
		}
	}
	return out
}

// TransformKQL is the DCR transform: "source" when nothing is renamed,
// else a project-rename of the reserved fields.
func (t Table) TransformKQL() string {
	rs := t.Renames()
	if len(rs) == 0 {
		return "source"
	}
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%s = ['%s']", r.To, r.From)
	}
	return "source | project-rename " + strings.Join(parts, ", ")
}

// Reserved are column names Log Analytics refuses in custom tables
// (compared case-insensitively).
var Reserved = []string{"TenantId", "id", "Type", "Title", "_ResourceId", "_SubscriptionId", "UniqueId"}

// IsReserved reports whether name is a reserved Log Analytics column name.
func IsReserved(name string) bool {
	for _, r := range Reserved {
		if strings.EqualFold(r, name) {
			return true
		}
	}
	return false
}

var columnRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,44}$`)

// ValidColumnName reports whether name satisfies Log Analytics' rules:
// starts with a letter, at most 45 letters, digits or underscores, not
// reserved.
func ValidColumnName(name string) bool { return columnRe.MatchString(name) && !IsReserved(name) }

// Lookup returns the description of table.
func Lookup(table string) (Table, bool) {
	for _, t := range all {
		if t.Name == table {
			return clone(t), true
		}
	}
	return Table{}, false
}

// All returns every table, sorted by name.
func All() []Table {
	out := make([]Table, len(all))
	for i, t := range all {
		out[i] = clone(t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func clone(t Table) Table {
	t.Columns = append([]Column(nil), t.Columns...)
	return t
}

// standard returns the columns every record carries (record.AppendJSON).
func standard(snapshot bool) []Column {
	cols := []Column{
		{Name: "DefenderTenantId", Field: "TenantId", Type: String, Description: "Microsoft Entra tenant id (GUID) the record was harvested from; sent as TenantId, which Log Analytics reserves."},
		{Name: "SourceName", Type: String, Description: "Harvester source that produced the record."},
		{Name: "HarvestedAt", Type: DateTime, Description: "When the harvester read the record (UTC)."},
		{Name: "RecordId", Type: String, Description: "Stable record id, the same across runs and hosts: deduplicate on it."},
		{Name: "TimeGenerated", Type: DateTime, Description: "Event time; for snapshot records the time the change was observed."},
	}
	if snapshot {
		cols = append(cols,
			Column{Name: "ChangeType", Type: String, Description: "Snapshot change: Initial (first snapshot), Added, Modified or Removed."},
			Column{Name: "ChangedFields", Type: Dynamic, Description: "Top-level payload fields that changed (Modified only)."},
			Column{Name: "SnapshotKey", Type: String, Description: "Key of the item within the snapshot."},
			Column{Name: "Changes", Type: Dynamic, Description: "Modified only: each changed value as {Path, Before, After}; Path is dotted for nested objects, [i] for array positions, [Name=x] for named array elements; Before or After is missing when the value was added or removed."},
			Column{Name: "PreviousSnapshotTime", Type: DateTime, Description: "The snapshot before this one: the change happened after it (absent on Initial)."},
			Column{Name: "SnapshotTime", Type: DateTime, Description: "The snapshot that saw the change: it happened at or before it."},
			Column{Name: "ChangedBy", Type: String, Description: "Who made the change, when the item records its editor (creator for Added); absent otherwise."},
			Column{Name: "ChangedAt", Type: DateTime, Description: "When the change was made, when the item records its edit time; absent otherwise."},
		)
	}
	return cols
}

// c is shorthand for a payload column.
func c(name, typ, desc string) Column { return Column{Name: name, Type: typ, Description: desc} }

// renamed is a payload column whose field name is reserved.
func renamed(field, name, typ, desc string) Column {
	return Column{Name: name, Field: field, Type: typ, Description: desc + " (field " + field + ", renamed: reserved in Log Analytics)."}
}

func table(name, source string, snapshot bool, desc string, payload ...Column) Table {
	return Table{Name: name, Source: source, Snapshot: snapshot, Description: desc, Columns: append(standard(snapshot), payload...)}
}
