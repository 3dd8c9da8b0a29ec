package libraryfiles

import (
	"net/http"
	"strings"
	"testing"

	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/source/srcutil/srctest"
)

const f1 = `{"fileName":"script1.ps1","sha256":"aa","description":null,"creationTime":"2019-10-24T10:54:23.2009016Z","lastUpdatedTime":"2019-10-24T10:54:23.2009016Z","createdBy":"admin","hasParameters":true,"parametersDescription":"test"}`
const f2 = `{"fileName":"memdump.exe","sha256":"bb","description":"Process memory dump","creationTime":"2019-10-24T10:54:23.2009016Z","lastUpdatedTime":"2019-10-24T10:54:23.2009016Z","createdBy":"admin","hasParameters":false}`
const octx = `"@odata.context":"https://api.security.microsoft.com/api/$metadata#LibraryFiles"`

func TestSnapshot(t *testing.T) {
	next := func(skip string) string {
		return `,"@odata.nextLink":"https://api.security.microsoft.com/api/libraryfiles?$skip=` + skip + `"`
	}
	tests := []struct {
		name     string
		pages    map[string]string // $skip → body
		wantKeys string
		wantErr  string
	}{
		{name: "one page", pages: map[string]string{"": `{` + octx + `,"value":[` + f1 + "," + f2 + `]}`}, wantKeys: "script1.ps1,memdump.exe"},
		{name: "follows nextLink", pages: map[string]string{"": `{` + octx + `,"value":[` + f1 + `]` + next("1") + `}`, "1": `{"value":[` + f2 + `]}`}, wantKeys: "script1.ps1,memdump.exe"},
		{name: "empty library", pages: map[string]string{"": `{` + octx + `,"value":[]}`}, wantKeys: ""},
		{name: "foreign nextLink refused", pages: map[string]string{"": `{"value":[` + f1 + `],"@odata.nextLink":"https://evil.example/api/libraryfiles?$skip=1"}`}, wantErr: "refusing continuation link"},
		{name: "repeated nextLink", pages: map[string]string{"": `{"value":[` + f1 + `]` + next("1") + `}`, "1": `{"value":[` + f2 + `]` + next("1") + `}`}, wantErr: "already returned"},
		{name: "nextLink not a string", pages: map[string]string{"": `{"value":[],"@odata.nextLink":5}`}, wantErr: "not a string"},
		{name: "bare array", pages: map[string]string{"": `[` + f1 + `]`}, wantKeys: "script1.ps1"},
		{name: "other envelope with a total", pages: map[string]string{"": `{"Count":2,"Items":[` + f1 + `,` + f2 + `]}`}, wantKeys: "script1.ps1,memdump.exe"},
		{name: "odata count over pages", pages: map[string]string{"": `{"@odata.count":2,"value":[` + f1 + `]` + next("1") + `}`, "1": `{"value":[` + f2 + `]}`}, wantKeys: "script1.ps1,memdump.exe"},
		{name: "stale low odata count", pages: map[string]string{"": `{"@odata.count":1,"value":[` + f1 + `,` + f2 + `]}`}, wantKeys: "script1.ps1,memdump.exe"},
		{name: "odata count above the files", pages: map[string]string{"": `{"@odata.count":3,"value":[` + f1 + `]` + next("1") + `}`, "1": `{"value":[` + f2 + `]}`}, wantErr: "libraryfiles: the service reported 3 rows, returned 2"},
		{name: "unknown envelope", pages: map[string]string{"": `{"files":[` + f1 + `]}`}, wantErr: "libraryfiles: cannot read the response: it has files (array); expected"},
		{name: "file without name", pages: map[string]string{"": `{"value":[{"sha256":"x"}]}`}, wantErr: "no fileName or FileName field"},
		{name: "401", pages: map[string]string{"": `401`}, wantErr: "Unauthorized"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != Path || r.Host != "api.security.microsoft.com" || r.Header.Get("Authorization") != "Bearer test-token" {
					t.Errorf("request %s %s auth %q", r.Host, r.URL.Path, r.Header.Get("Authorization"))
				}
				body := tt.pages[r.URL.Query().Get("$skip")]
				if body == "401" {
					w.WriteHeader(401)
					body = `{"error":{"code":"Unauthorized","message":"Missing role Library.Manage","target":"x"}}`
				}
				w.Write([]byte(body))
			})
			s := srctest.Build(t, Name, source.Deps{API: srctest.Public(t, h)}, nil).(source.SnapshotSource)
			items, ok := srctest.CheckSnapshot(t, s, tt.wantErr, nil)
			if !ok {
				return
			}
			if got := strings.Join(srctest.Keys(items), ","); got != tt.wantKeys {
				t.Errorf("keys = %s, want %s", got, tt.wantKeys)
			}
		})
	}
}

func TestNeedsPublicAPI(t *testing.T) {
	f, _ := source.Lookup(Name)
	if _, err := f.New(source.Deps{}, nil); err == nil || !strings.Contains(err.Error(), "app registration") {
		t.Errorf("err = %v", err)
	}
}

func FuzzDecodePage(f *testing.F) {
	for _, s := range []string{`{"value":[` + f1 + `],"@odata.nextLink":"https://api.security.microsoft.com/api/libraryfiles?$skip=1"}`, `{"value":[]}`, `{"value":[{"fileName":1}]}`, `{"@odata.nextLink":[]}`, `[{"FileName":"a"}]`, `{"@odata.count":4,"value":[]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodePage(b)
		if err != nil {
			if len(p.Items) != 0 || p.NextLink != "" {
				t.Fatal("page content with an error")
			}
			return
		}
		for _, it := range p.Items {
			if it.Key == "" {
				t.Fatal("empty key")
			}
		}
	})
}
