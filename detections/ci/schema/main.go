// Command schema prints the Log Analytics schema of every table the
// harvester writes (internal/tables) as JSON, for the detection-pack CI
// harness (detections/ci/run): the KQL of each rule is analysed against
// these tables, and the harness maps test records onto their columns.
//
//	go run ./detections/ci/schema > schema.json
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/defenderharvester/defenderharvester/internal/tables"
)

type column struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Field string `json:"field,omitempty"` // the harvester's field name, when renamed on ingestion
}

type table struct {
	Name      string   `json:"name"`      // without _CL
	Workspace string   `json:"workspace"` // Log Analytics name: Name + "_CL"
	Columns   []column `json:"columns"`
}

func main() {
	var out []table
	for _, t := range tables.All() {
		tt := table{Name: t.Name, Workspace: t.Name + "_CL"}
		for _, c := range t.Columns {
			col := column{Name: c.Name, Type: c.Type}
			if c.InputName() != c.Name {
				col.Field = c.InputName()
			}
			tt.Columns = append(tt.Columns, col)
		}
		out = append(out, tt)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, "schema:", err)
		os.Exit(1)
	}
}
