package tables

import (
	"bytes"
	"fmt"
	"strings"
)

// Markdown renders docs/tables.md.
func Markdown() []byte {
	var b bytes.Buffer
	b.WriteString("# Tables\n\n")
	b.WriteString("<!-- Generated from internal/tables by `go generate ./internal/tables`; do not edit. -->\n\n")
	b.WriteString("Every table the harvester writes. File and Splunk outputs carry the field names of the\n")
	b.WriteString("\"Field\" column; in Microsoft Sentinel / Log Analytics each table is `<Table>_CL` and fields\n")
	b.WriteString("whose names Log Analytics reserves (")
	for i, r := range Reserved {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "`%s`", r)
	}
	b.WriteString(", case-insensitively)\nare renamed by the data collection rule's transform (`defenderharvester sentinel-setup`).\n\n")
	for _, t := range All() {
		kind := "event"
		if t.Snapshot {
			kind = "snapshot"
		}
		fmt.Fprintf(&b, "## %s\n\n%s\n\nSource `%s` (%s). Log Analytics table `%s_CL`.", t.Name, t.Description, t.Source, kind, t.Name)
		if rs := t.Renames(); len(rs) > 0 {
			b.WriteString(" Renamed on ingestion: ")
			for i, r := range rs {
				if i > 0 {
					b.WriteString(", ")
				}
				fmt.Fprintf(&b, "`%s` → `%s`", r.From, r.To)
			}
			b.WriteString(".")
		}
		b.WriteString("\n\n| Column | Field | Type | Description |\n|---|---|---|---|\n")
		for _, c := range t.Columns {
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", c.Name, c.InputName(), c.Type, strings.ReplaceAll(c.Description, "|", "\\|"))
		}
		b.WriteString("\n")
	}
	return b.Bytes()
}
