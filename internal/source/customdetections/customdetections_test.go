package customdetections

import (
	"context"
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
		{name: "short first page is checked for a clamp", pages: map[string]string{"1": rules(1)}, wantKeys: "1", wantReqs: 2},
		{name: "exact multiple ends on empty page", pages: map[string]string{"1": rules(1, 2), "2": `[]`}, wantKeys: "1,2", wantReqs: 2},
		{name: "Rules wrapper", pages: map[string]string{"1": `{"Rules":` + rules(8, 9) + `}`}, wantKeys: "8,9", wantReqs: 2},
		{name: "Results wrapper", pages: map[string]string{"1": `{"Results":` + rules(7, 8) + `}`}, wantKeys: "7,8", wantReqs: 2},
		{name: "a total ends a short page", pages: map[string]string{"1": `{"Count":1,"Results":` + rules(8) + `}`}, wantKeys: "8", wantReqs: 1},
		{name: "server ignores pageIndex", pages: map[string]string{"1": rules(1, 2), "2": rules(1, 2)}, wantErr: "page 2 repeats page 1"},
		{name: "rules repeated on a later page", pages: map[string]string{"1": rules(1, 2), "2": rules(3, 4), "3": rules(5, 1)}, wantErr: `key "1" appears twice`},
		{name: "wrong envelope", pages: map[string]string{"1": `{"Results":"x"}`}, wantErr: "cannot read the response: it has Results (string)"},
		{name: "failure on page 2 emits nothing", pages: map[string]string{"1": rules(1, 2), "2": `{"Data":[]}`}, wantErr: "page 2"},
		{name: "rule without id", pages: map[string]string{"1": `[{"Name":"x"}]`}, wantErr: "no Id, id, RuleId or ruleId field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reqs := 0
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				reqs++
				q := r.URL.Query()
				if r.URL.Path != Path || q.Get("pageSize") == "" || q.Get("sortOrder") != "Ascending" || q.Get("isUnifiedRulesListEnabled") != "true" {
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
	c := f.NewConfig().(*Config)
	if c.PageSize != 10000 || c.Validate() != nil {
		t.Errorf("defaults %+v: %v", c, c.Validate())
	}
	for _, size := range []int{0, 20000} {
		c := &Config{PageSize: size}
		want := fmt.Sprintf("page_size %d must be between 1 and 10000", size)
		if err := c.Validate(); err == nil || err.Error() != want {
			t.Errorf("Validate(%d) = %v, want %q", size, err, want)
		}
		if _, err := f.New(source.Deps{}, c); err == nil || err.Error() != Name+": "+want {
			t.Errorf("New(%d) = %v: New must run Validate", size, err)
		}
	}
	if _, err := f.New(source.Deps{Portal: srctest.Portal(t, http.NotFoundHandler())}, nil); err != nil {
		t.Errorf("nil config must mean the defaults: %v", err)
	}
}

func ruleRows(n int) []string {
	rows := make([]string, n)
	for i := range rows {
		rows[i] = rule(i + 1)
	}
	return rows
}

func snapshotOf(t *testing.T, h http.Handler, size int) ([]source.Item, error) {
	t.Helper()
	s := srctest.Build(t, Name, source.Deps{Portal: srctest.Portal(t, h)}, func(c any) { c.(*Config).PageSize = size }).(source.SnapshotSource)
	var c srctest.Collector
	err := s.Snapshot(context.Background(), c.Emit)
	return c.Items, err
}

// TestClampedPages: the rules list is a bare array without a total; a
// service that clamps the page size below page_size must not truncate the
// snapshot (which would report the missing rules as Removed). The first
// page's size is taken as the clamp. Fails on the code before (it stopped
// at the first short page and emitted 3 of 10 rules).
func TestClampedPages(t *testing.T) {
	tests := []struct {
		name     string
		list     *srctest.PagedList
		wantReqs string
	}{
		{"bare array, offsets in served size", &srctest.PagedList{Clamp: 3}, "1/10000,2/3,3/3,4/3"},
		{"bare array, offsets in asked size", &srctest.PagedList{Clamp: 3, OffsetByAsked: true}, "1/10000,2/3,3/3,4/3"},
		{"Rules wrapper", &srctest.PagedList{Clamp: 4, Envelope: "Rules"}, "1/10000,2/4,3/4"},
		{"with a Count", &srctest.PagedList{Clamp: 4, Envelope: "Results", TotalKey: "Count"}, "1/10000,2/4,3/4"},
		{"with a stale low Count", &srctest.PagedList{Clamp: 4, Envelope: "Results", TotalKey: "Count", TotalDelta: -9}, "1/10000,2/4,3/4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.list.Rows = ruleRows(10)
			items, err := snapshotOf(t, tt.list, 10000)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(srctest.Keys(items), ","); got != "1,2,3,4,5,6,7,8,9,10" {
				t.Errorf("keys %s (requests %s)", got, tt.list.Requests())
			}
			if got := tt.list.Requests(); got != tt.wantReqs {
				t.Errorf("requests %s, want %s", got, tt.wantReqs)
			}
		})
	}
}

// TestCountAboveRowsFails: a total the pages never reach fails the
// snapshot and emits nothing. Fails on the code before (it did not read
// totals and emitted the rules it got).
func TestCountAboveRowsFails(t *testing.T) {
	list := &srctest.PagedList{Rows: ruleRows(5), Clamp: 2, Envelope: "Results", TotalKey: "Count", TotalDelta: 2}
	items, err := snapshotOf(t, list, 100)
	if err == nil || !strings.Contains(err.Error(), "customdetections: the service reported 7 rows, returned 5") || len(items) != 0 {
		t.Errorf("err = %v, %d items emitted (requests %s)", err, len(items), list.Requests())
	}
}

// TestEnvelopes: every list envelope is read; an unknown one fails with
// its keys and types, never a value. The variants beyond a bare array,
// Rules and Results fail on the code before.
func TestEnvelopes(t *testing.T) {
	for _, body := range []string{
		rules(1, 2), `{"Rules":` + rules(1, 2) + `}`, `{"Results":` + rules(1, 2) + `}`, `{"Items":` + rules(1, 2) + `}`,
		`{"items":` + rules(1, 2) + `}`, `{"value":` + rules(1, 2) + `}`, `{"Count":2,"Results":` + rules(1, 2) + `}`,
		`[{"id":1},{"ruleId":2}]`,
	} {
		p, err := DecodePage([]byte(body))
		if err != nil || strings.Join(srctest.Keys(p.Items), ",") != "1,2" {
			t.Errorf("DecodePage(%.50s…) = %v, %v", body, srctest.Keys(p.Items), err)
		}
	}
	const canary = "CANARY-rules-0932"
	_, err := DecodePage([]byte(`{"RuleList":[{"Id":1,"Name":"` + canary + `"}],"Tenant":"` + canary + `"}`))
	want := "customdetections: cannot read the response: it has RuleList (array), Tenant (string); expected a JSON array or an object with an array under Rules, Results, Items, items or value"
	if err == nil || err.Error() != want || strings.Contains(err.Error(), canary) {
		t.Errorf("err = %v\nwant %s", err, want)
	}
}

func FuzzDecodePage(f *testing.F) {
	for _, s := range []string{rules(1, 2), `{"Rules":[]}`, `{"Results":"x"}`, `[{"id":"a"},{"Id":"a"}]`, `[null]`,
		`{"Count":3,"value":[{"ruleId":7}]}`, `{"Items":[],"items":[]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodePage(b)
		srctest.CheckSnapshotDecode(t, p.Items, err)
		if err == nil && p.Total < -1 {
			t.Fatalf("total %d", p.Total)
		}
	})
}
