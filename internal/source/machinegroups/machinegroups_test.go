package machinegroups

import (
	"net/url"
	"testing"

	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/source/srcutil/srctest"
)

const g1 = `{"MachineGroupId":15,"Name":"Servers","Description":"","AutoRemediationLevel":1,"Priority":1,"LastUpdated":"2025-02-18T12:09:03.3766667Z","IsUnassignedMachineGroup":false,"MachineCount":0,"GroupRules":[{"OperatorType":3,"Property":1,"PropertyValue":"contoso"}]}`
const gUnassigned = `{"MachineGroupId":1,"Name":"Ungrouped devices (default)","Priority":2147483647,"IsUnassignedMachineGroup":true,"GroupRules":[]}`

func TestSnapshot(t *testing.T) {
	q := url.Values{"addAadGroupNames": {"true"}, "addMachineGroupCount": {"false"}}
	srctest.RunSnapshot(t, Name, Path, q, true, []srctest.SnapshotCase{
		{Name: "groups", Body: `{"items":[` + g1 + "," + gUnassigned + `],"containsAadGroupNames":true,"containsMachineGroupCount":false}`, WantKeys: []string{"15", "1"}},
		{Name: "empty", Body: `{"items":[]}`},
		{Name: "items missing", Body: `{"containsAadGroupNames":true}`, WantErr: "cannot read the response: it has containsAadGroupNames (boolean); expected"},
		{Name: "items not array", Body: `{"items":"x"}`, WantErr: "it has items (string)"},
		{Name: "group without id", Body: `{"items":[{"Name":"x"}]}`, WantErr: "no MachineGroupId or machineGroupId field"},
		{Name: "duplicate", Body: `{"items":[` + g1 + "," + g1 + `]}`, WantErr: "appears twice"},
		{Name: "session expired", Status: 401, Body: ``, WantIs: mde.ErrSessionExpired},
	})
	srctest.RunSnapshot(t, Name, Path, q, true, srctest.ListCases(Name, [2]string{g1, gUnassigned}, []string{"15", "1"}))
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"items":[` + g1 + `]}`, `{"items":null}`, `{"items":[{"MachineGroupId":{}}]}`, `[]`, `{}`, `{"Count":1,"value":[{"machineGroupId":2}]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		items, err := Decode(body)
		srctest.CheckSnapshotDecode(t, items, err)
	})
}
