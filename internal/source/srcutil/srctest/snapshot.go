package srctest

import (
	"bytes"
	"net/http"
	"net/url"
	"reflect"
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
