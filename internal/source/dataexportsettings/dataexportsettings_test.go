package dataexportsettings

import (
	"testing"

	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/source/srcutil/srctest"
)

const s1 = `{"id":"SentinelExportSettings-ws1","designatedTenantId":null,"eventHubProperties":null,"storageAccountProperties":null,"workspaceProperties":{"workspaceResourceId":"/subscriptions/s/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/ws1","subscriptionId":"s","resourceGroup":"rg","name":"ws1"},"logs":[{"category":"AdvancedHunting-DeviceProcessEvents","enabled":false},{"category":"Alert","enabled":true}]}`
const s2 = `{"id":"EventHub-exfil","eventHubProperties":{"eventHubResourceId":"/subscriptions/x/eh","name":"eh"},"logs":[{"category":"AdvancedHunting-DeviceEvents","enabled":true}]}`

func TestSnapshot(t *testing.T) {
	ctx := `"@odata.context":"https://security.microsoft.com/api/$metadata#DataExportSettings"`
	srctest.RunSnapshot(t, Name, Path, nil, true, []srctest.SnapshotCase{
		{Name: "two destinations", Body: `{` + ctx + `,"value":[` + s1 + "," + s2 + `]}`, WantKeys: []string{"SentinelExportSettings-ws1", "EventHub-exfil"}},
		{Name: "none", Body: `{` + ctx + `,"value":[]}`},
		{Name: "value missing", Body: `{` + ctx + `}`, WantErr: "cannot read the response: it has @odata.context (string); expected"},
		{Name: "value null", Body: `{"value":null}`, WantErr: "it has value (null)"},
		{Name: "setting without id", Body: `{"value":[{"logs":[]}]}`, WantErr: "no id or Id field"},
		{Name: "not found", Status: 404, Body: `{"error":{"code":"NotFound","message":"x"}}`, WantIs: mde.ErrNotFound},
	})
	srctest.RunSnapshot(t, Name, Path, nil, true, srctest.ListCases(Name, [2]string{s1, s2}, []string{"SentinelExportSettings-ws1", "EventHub-exfil"}))
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"value":[` + s1 + `]}`, `{"value":{}}`, `{"value":[{"id":1},{"id":"1"}]}`, `null`, `{"Count":2,"Items":[{"Id":"a"}]}`, `[{"id":"x"}]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		items, err := Decode(body)
		srctest.CheckSnapshotDecode(t, items, err)
	})
}
