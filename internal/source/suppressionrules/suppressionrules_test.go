package suppressionrules

import (
	"testing"

	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/source/srcutil/srctest"
)

const rule1 = `{"Id":1000000013,"RuleTitle":"Auto-Resolve - x","CreatedBy":"Microsoft","CreationTime":"2025-10-10T00:00:00Z","UpdateTime":"2026-03-17T15:16:57.0278211Z","Scope":2,"IsEnabled":true,"Action":2,"RuleConditions":"{\"logicalOperator\":\"AND\",\"conditions\":[],\"conditionType\":\"Complex\"}","IsReadOnly":true,"ScopeConditions":"[[]]","DeserializedScopeConditions":[[]]}`
const rule2 = `{"Id":7,"RuleTitle":"Silence PsExec on jump hosts","CreatedBy":"admin@contoso.com","Scope":1,"IsEnabled":true,"Action":1,"RuleConditions":"{}","ScopeConditions":"[[]]"}`

func TestSnapshot(t *testing.T) {
	srctest.RunSnapshot(t, Name, Path, nil, true, []srctest.SnapshotCase{
		{Name: "two rules", Body: "[" + rule1 + ",\n " + rule2 + "]", WantKeys: []string{"1000000013", "7"}},
		{Name: "no rules", Body: `[]`},
		{Name: "lower-case id", Body: `[{"id":"abc"}]`, WantKeys: []string{"abc"}},
		{Name: "object without a list", Body: `{"Rule":` + rule2 + `}`, WantErr: "cannot read the response: it has Rule (object); expected"},
		{Name: "rule without Id", Body: `[{"RuleTitle":"x"}]`, WantErr: "no Id or id field"},
		{Name: "duplicate Id", Body: "[" + rule2 + "," + rule2 + "]", WantErr: "appears twice"},
		{Name: "record is a string", Body: `["x"]`, WantErr: "not a JSON object"},
		{Name: "sign-in page", Body: `<html><body>Sign in</body></html>`, ContentType: "text/html", WantIs: mde.ErrSessionExpired},
		{Name: "forbidden", Status: 403, Body: `{}`, WantIs: mde.ErrForbidden, WantErr: "Defender role"},
	})
	srctest.RunSnapshot(t, Name, Path, nil, true, srctest.ListCases(Name, [2]string{rule1, rule2}, []string{"1000000013", "7"}))
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{"[" + rule1 + "," + rule2 + "]", `[]`, `[{"Id":null}]`, `{"Results":"x"}`, `[1]`, `<html>`, `{"Count":9,"value":[{"id":1}]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		items, err := Decode(body)
		srctest.CheckSnapshotDecode(t, items, err)
	})
}
