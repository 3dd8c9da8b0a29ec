package srctest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/defenderharvester/defenderharvester/internal/source"
)

// SnapshotCase is one canned answer and what the source must make of it.
type SnapshotCase struct {
	Name        string
	Status      int    // default 200
	ContentType string // default application/json
	Body        string
	WantKeys    []string // emitted keys, in order
	WantErr     string   // substring of the error; nothing may be emitted
	WantIs      error    // optional errors.Is target
	NotIn       string   // a value the error must not repeat (shape errors name keys and types only)
}

// RunSnapshot serves each case at wantPath (checking the query) and runs
// the registered source name against it. rawCheck verifies every item's Raw
// is an unmodified slice of the body.
func RunSnapshot(t *testing.T, name, wantPath string, wantQuery url.Values, rawCheck bool, cases []SnapshotCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != wantPath {
					t.Errorf("path = %s, want %s", r.URL.Path, wantPath)
				}
				if wantQuery != nil && !reflect.DeepEqual(r.URL.Query(), wantQuery) {
					t.Errorf("query = %v, want %v", r.URL.Query(), wantQuery)
				}
				ct := tc.ContentType
				if ct == "" {
					ct = "application/json"
				}
				w.Header().Set("Content-Type", ct)
				if tc.Status != 0 {
					w.WriteHeader(tc.Status)
				}
				w.Write([]byte(tc.Body))
			})
			deps := source.Deps{Portal: Portal(t, h), API: Public(t, h)}
			src := Build(t, name, deps, nil).(source.SnapshotSource)
			if tc.NotIn != "" {
				err := src.Snapshot(t.Context(), func(context.Context, source.Item) error { return nil })
				if err != nil && strings.Contains(err.Error(), tc.NotIn) {
					t.Errorf("the error repeats a value from the response: %v", err)
				}
			}
			items, ok := CheckSnapshot(t, src, tc.WantErr, tc.WantIs)
			if !ok {
				return
			}
			if got := Keys(items); !reflect.DeepEqual(got, tc.WantKeys) && !(len(got) == 0 && len(tc.WantKeys) == 0) {
				t.Errorf("keys = %q, want %q", got, tc.WantKeys)
			}
			for _, it := range items {
				if !it.Time.IsZero() || it.ID != "" {
					t.Errorf("snapshot item %s has Time/ID set", it.Key)
				}
				if rawCheck && !bytes.Contains([]byte(tc.Body), it.Raw) {
					t.Errorf("item %s raw JSON is not an unmodified part of the page: %s", it.Key, it.Raw)
				}
			}
		})
	}
}

// listKeys mirrors srcutil.ListKeys (srctest cannot import srcutil: its
// tests import srctest).
var listKeys = []string{"Results", "Items", "items", "value"}

// ListCases are the cases every list decoder must pass, for two records
// recs with keys keys: the records bare, under each of extra and the
// common list members, with and without a total; a stale (low) total is
// accepted; a total above the records fails; an unknown envelope fails
// with its keys and JSON types, never a value.
func ListCases(src string, recs [2]string, keys []string, extra ...string) []SnapshotCase {
	arr := "[" + recs[0] + "," + recs[1] + "]"
	cases := []SnapshotCase{{Name: "bare array", Body: arr, WantKeys: keys}}
	for _, k := range append(append([]string(nil), extra...), listKeys...) {
		cases = append(cases,
			SnapshotCase{Name: "under " + k, Body: fmt.Sprintf(`{%q:%s}`, k, arr), WantKeys: keys},
			SnapshotCase{Name: "under " + k + " with Count", Body: fmt.Sprintf(`{"Count":2,%q:%s}`, k, arr), WantKeys: keys})
	}
	const canary = "CANARY-d41d8cd98f00"
	return append(cases,
		SnapshotCase{Name: "OData count", Body: `{"@odata.count":2,"value":` + arr + `}`, WantKeys: keys},
		SnapshotCase{Name: "stale low Count", Body: `{"Count":1,"Results":` + arr + `}`, WantKeys: keys},
		SnapshotCase{Name: "Count above the records", Body: `{"Count":3,"Results":` + arr + `}`,
			WantErr: src + ": the service reported 3 rows, returned 2"},
		SnapshotCase{Name: "unknown envelope", Body: `{"Data":[` + recs[0] + `],"Owner":"` + canary + `"}`,
			WantErr: src + ": cannot read the response: it has Data (array), Owner (string); expected ", NotIn: canary},
	)
}
