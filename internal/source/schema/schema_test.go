package schema

import (
	"testing"

	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/source/srcutil/srctest"
)

const tProc = `{"Name":"DeviceProcessEvents","Description":"Process creation","Columns":[{"Name":"Timestamp","Type":"DateTime","Description":"Event time"},{"Name":"FileName","Type":"String","Description":""}]}`
const tAlert = `{"Name":"AlertInfo","Description":"Alerts","Columns":[]}`

func TestSnapshot(t *testing.T) {
	srctest.RunSnapshot(t, Name, Path, nil, true, []srctest.SnapshotCase{
		{Name: "tables", Body: `{"Tables":[` + tProc + "," + tAlert + `]}`, WantKeys: []string{"DeviceProcessEvents", "AlertInfo"}},
		{Name: "Graph-like lower case", Body: `{"tables":[{"name":"x","columns":[]}]}`, WantKeys: []string{"x"}},
		{Name: "Tables missing", Body: `{"Functions":[]}`, WantErr: "cannot read the response: it has Functions (array); expected a JSON array or an object with an array under Tables, tables, Results, Items, items or value"},
		{Name: "table without name", Body: `{"Tables":[{"Columns":[]}]}`, WantErr: "no Name or name field"},
		{Name: "empty name", Body: `{"Tables":[{"Name":""}]}`, WantErr: "not a non-empty string"},
		{Name: "duplicate table", Body: `{"Tables":[` + tAlert + "," + tAlert + `]}`, WantErr: "appears twice"},
		{Name: "html", Body: "<!DOCTYPE html><html>", WantIs: mde.ErrSessionExpired},
	})
	srctest.RunSnapshot(t, Name, Path, nil, true, srctest.ListCases(Name, [2]string{tProc, tAlert}, []string{"DeviceProcessEvents", "AlertInfo"}, "Tables", "tables"))
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"Tables":[` + tProc + `]}`, `{"Tables":[null]}`, `{"Tables":[{"Name":true}]}`, `"x"`, `{"tables":[{"name":"a"}],"Tables":[]}`, `[{"name":"x"}]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		items, err := Decode(body)
		srctest.CheckSnapshotDecode(t, items, err)
	})
}
