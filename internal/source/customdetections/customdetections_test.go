package customdetections

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/source/srcutil/srctest"
)

func rule(id int) string {
	return fmt.Sprintf(`{"Id":%d,"Name":"Rule %d","Severity":"High","IsEnabled":true,"CreatedBy":"a@contoso.com","CreationTime":"2026-01-01T00:00:00Z","LastUpdatedBy":"a@contoso.com","LastUpdateTime":"2026-01-02T00:00:00Z","QueryText":"DeviceProcessEvents | take 1","Frequency":1,"LastRunTime":"2026-04-01T00:00:00Z","LastRunStatus":"Failed","LastRunFailureReason":"Query timeout","IsAutoDisabled":false,"MitreTechniques":["T1059"]}`, id, id)
}

func rules(ids ...int) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = rule(id)
	}
	return "[" + strings.Join(s, ",") + "]"
}

func TestSnapshotPaging(t *testing.T) {
	tests := []struct {
		name     string
		pages    map[string]string // pageIndex → body
		wantKeys string
		wantReqs int
		wantErr  string
	}{
		{name: "three pages, last short", pages: map[string]string{"1": rules(1, 2), "2": rules(3, 4), "3": rules(5)}, wantKeys: "1,2,3,4,5", wantReqs: 3},
		{name: "exact multiple ends on empty page", pages: map[string]string{"1": rules(1, 2), "2": `[]`}, wantKeys: "1,2", wantReqs: 2},
		{name: "Rules wrapper", pages: map[string]string{"1": `{"Rules":` + rules(9) + `}`}, wantKeys: "9", wantReqs: 1},
		{name: "Results wrapper", pages: map[string]string{"1": `{"Results":` + rules(8) + `}`}, wantKeys: "8", wantReqs: 1},
		{name: "server ignores pageIndex", pages: map[string]string{"1": rules(1, 2), "2": rules(1, 2)}, wantErr: `key "1" appears twice`},
		{name: "wrong envelope", pages: map[string]string{"1": `{"Results":"x"}`}, wantErr: "field Results is not an array"},
		{name: "failure on page 2 emits nothing", pages: map[string]string{"1": rules(1, 2), "2": `{"value":[]}`}, wantErr: "page 2"},
		{name: "rule without id", pages: map[string]string{"1": `[{"Name":"x"}]`}, wantErr: "no Id or id field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reqs := 0
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				reqs++
				q := r.URL.Query()
				if r.URL.Path != Path || q.Get("pageSize") != "2" || q.Get("sortOrder") != "Ascending" || q.Get("isUnifiedRulesListEnabled") != "true" {
					t.Errorf("request %s?%s", r.URL.Path, r.URL.RawQuery)
				}
				if q.Get("pageIndex") != strconv.Itoa(reqs) {
					t.Errorf("pageIndex = %s on request %d", q.Get("pageIndex"), reqs)
				}
				body, ok := tt.pages[q.Get("pageIndex")]
				if !ok {
					body = `[]`
				}
				w.Write([]byte(body))
			})
			s := srctest.Build(t, Name, source.Deps{Portal: srctest.Portal(t, h)}, func(c any) { c.(*Config).PageSize = 2 }).(source.SnapshotSource)
			items, ok := srctest.CheckSnapshot(t, s, tt.wantErr, nil)
			if !ok {
				return
			}
			if got := strings.Join(srctest.Keys(items), ","); got != tt.wantKeys {
				t.Errorf("keys = %s, want %s", got, tt.wantKeys)
			}
			if reqs != tt.wantReqs {
				t.Errorf("requests = %d, want %d", reqs, tt.wantReqs)
			}
		})
	}
}

func TestConfigValidation(t *testing.T) {
	f, _ := source.Lookup(Name)
	if got := f.NewConfig().(*Config).PageSize; got != 10000 {
		t.Errorf("default page size %d", got)
	}
	if _, err := f.New(source.Deps{}, &Config{PageSize: 20000}); err == nil || !strings.Contains(err.Error(), "page_size") {
		t.Errorf("err = %v", err)
	}
}

func FuzzDecodePage(f *testing.F) {
	for _, s := range []string{rules(1, 2), `{"Rules":[]}`, `{"Results":"x"}`, `[{"id":"a"},{"Id":"a"}]`, `[null]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		items, err := DecodePage(b)
		srctest.CheckSnapshotDecode(t, items, err)
	})
}
