package alertservicesettings

import (
	"encoding/json"
	"net/url"
	"testing"

	"github.com/defenderharvester/defenderharvester/internal/source/srcutil/srctest"
)

const body = `{"Mdc":{"reasons":[],"feedback":null,"disabledTime":"2026-03-01T10:00:00Z","disablementType":"Manual"},"Aad":{"reasons":["TooNoisy"],"feedback":"we use Sentinel","disabledTime":"2026-03-02T10:00:00Z","disablementType":"Manual"}}`

func TestSnapshot(t *testing.T) {
	srctest.RunSnapshot(t, Name, Path, url.Values{"includeDetails": {"true"}}, false, []srctest.SnapshotCase{
		{Name: "two workloads", Body: body, WantKeys: []string{"Aad", "Mdc"}},
		{Name: "nothing disabled", Body: `{}`},
		{Name: "array", Body: `[{"Workload":"CANARY-aad-77"}]`, WantErr: "alertservicesettings: cannot read the response: it is a JSON array of 1 (object); expected a JSON object keyed by workload", NotIn: "CANARY-aad-77"},
		{Name: "string", Body: `"CANARY-aad-77"`, WantErr: "it is a JSON string", NotIn: "CANARY-aad-77"},
		{Name: "html", Body: `<html>`, WantErr: "sign in again"},
	})
}

func TestDecodeWrapsDetailsUntouched(t *testing.T) {
	items, err := Decode([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Workload string
		Details  json.RawMessage
	}
	if err := json.Unmarshal(items[0].Raw, &got); err != nil {
		t.Fatalf("raw is not JSON: %s", items[0].Raw)
	}
	want := `{"reasons":["TooNoisy"],"feedback":"we use Sentinel","disabledTime":"2026-03-02T10:00:00Z","disablementType":"Manual"}`
	if got.Workload != "Aad" || string(got.Details) != want {
		t.Errorf("item = %s", items[0].Raw)
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{body, `{}`, `{"":1}`, `{"a\"b":null}`, `[1]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		items, err := Decode(b)
		if err != nil {
			return
		}
		for _, it := range items {
			var v struct {
				Workload string
				Details  json.RawMessage
			}
			if err := json.Unmarshal(it.Raw, &v); err != nil || v.Workload != it.Key {
				t.Fatalf("item raw %q invalid for key %q: %v", it.Raw, it.Key, err)
			}
		}
	})
}
