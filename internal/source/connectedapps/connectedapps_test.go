package connectedapps

import (
	"testing"

	"github.com/defenderharvester/defenderharvester/internal/source/srcutil/srctest"
)

const app1 = `{"Id":"0b4b1b1e-1111-4c2d-9e1f-000000000001","DisplayName":"MDE-Alex-App","Enabled":true,"LatestConnectivity":"2026-04-25T21:13:34.0467247Z","ApplicationSettingsLink":"https://portal.azure.com/#blade/x","MonthlyStatistics":[0,3,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,12]}`
const app2 = `{"Id":"0b4b1b1e-1111-4c2d-9e1f-000000000002","DisplayName":"SOAR","Enabled":false,"MonthlyStatistics":[]}`

func TestSnapshot(t *testing.T) {
	srctest.RunSnapshot(t, Name, Path, nil, true, []srctest.SnapshotCase{
		{Name: "array", Body: "[" + app1 + "," + app2 + "]", WantKeys: []string{"0b4b1b1e-1111-4c2d-9e1f-000000000001", "0b4b1b1e-1111-4c2d-9e1f-000000000002"}},
		{Name: "single object", Body: app2, WantKeys: []string{"0b4b1b1e-1111-4c2d-9e1f-000000000002"}},
		{Name: "no apps", Body: `[]`},
		{Name: "object without Id", Body: `{"Results":"x"}`, WantErr: "cannot read the response: it has Results (string); expected a JSON array or an object with an array under Results, Items, items or value, or one app object with Id or id"},
		{Name: "duplicate", Body: "[" + app1 + "," + app1 + "]", WantErr: "appears twice"},
		{Name: "scalar", Body: `true`, WantErr: "cannot read the response: it is a JSON boolean"},
	})
	srctest.RunSnapshot(t, Name, Path, nil, true, srctest.ListCases(Name, [2]string{app1, app2}, []string{"0b4b1b1e-1111-4c2d-9e1f-000000000001", "0b4b1b1e-1111-4c2d-9e1f-000000000002"}))
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{"[" + app1 + "]", app2, `{}`, `[{"Id":1},{"id":1}]`, `null`, `{"Count":1,"value":[{"id":"a"}]}`, `{"id":"a","Results":[]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		items, err := Decode(body)
		srctest.CheckSnapshotDecode(t, items, err)
	})
}
