package srcutil

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// timelinePage builds a device-timeline page like the portal's: n events of
// roughly 1 KB each with nested objects and arrays, plus Prev/Next links.
func timelinePage(n int) []byte {
	var sb strings.Builder
	sb.WriteString(`{"Items":[`)
	for i := range n {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"ReportId":%d,"ActionTime":"2026-04-25T21:13:%02d.0467247Z","ActionTimeIsoString":"2026-04-25T21:13:%02d.0467247Z",`, 1000000+i, i%60, i%60)
		sb.WriteString(`"ActionType":"ProcessCreated","MachineId":"4f1c2d3e4b5a69788796a5b4c3d2e1f0a9b8c7d6","Computer":"desk-0042.contoso.local",`)
		sb.WriteString(`"InitiatingProcess":{"ImageFile":{"FileName":"powershell.exe","FolderPath":"C:\\Windows\\System32\\WindowsPowerShell\\v1.0","Sha1":"6cbce4a295c163791b60fc23d285e6d84f28ee4c","Sha256":"de96a6e69944335375dc1ac238336066889d9ffc7d73628ef4fe1b1b160ab32c"},"CommandLine":"powershell.exe -NoProfile -Command \"Get-Process | Where-Object { $_.CPU -gt 10 }\"","ProcessId":4242,"Account":{"Name":"alice","Domain":"CONTOSO","Sid":"S-1-5-21-1004336348-1177238915-682003330-512"}},`)
		sb.WriteString(`"Process":{"ImageFile":{"FileName":"conhost.exe","FolderPath":"C:\\Windows\\System32"},"CommandLine":"\\??\\C:\\Windows\\system32\\conhost.exe 0xffffffff -ForceV1","ProcessId":4243,"IntegrityLevel":"High","TokenElevation":"Full"},`)
		sb.WriteString(`"Categories":["Process","Execution"],"IsCyberData":true,"IsHidden":false,"Severity":null,"Score":0.75,"Description":"PowerShell started a console host {x} [y] \u00e9\u20ac"}`)
	}
	sb.WriteString(`],"Prev":"https://security.microsoft.com/apiproxy/mtp/timeline?prev=abc","Next":"https://security.microsoft.com/apiproxy/mtp/timeline?next=def","PartialResponseReasons":[]}`)
	return []byte(sb.String())
}

// BenchmarkDecodeTimelinePage runs what the timeline source does with one
// page: Object for the links, Items for the records, EventFields for ids.
func BenchmarkDecodeTimelinePage(b *testing.B) {
	const n = 1000
	page := timelinePage(n)
	e := EventFields{
		ID: []string{"ReportId"}, Time: []string{"ActionTimeIsoString", "ActionTime"},
		StableID: func(id, ts string, _ map[string]json.RawMessage) string { return id + "|" + ts },
	}
	b.SetBytes(int64(len(page)))
	b.ReportAllocs()
	for b.Loop() {
		obj, err := Object("timeline", page)
		if err != nil || len(obj) != 4 {
			b.Fatalf("Object: %d keys, %v", len(obj), err)
		}
		recs, err := Items("timeline", page, Envelope{Keys: []string{"Items"}})
		if err != nil {
			b.Fatal(err)
		}
		items, err := e.Items("timeline", recs)
		if err != nil || len(items) != n {
			b.Fatalf("items %d, %v", len(items), err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "items/s")
}
