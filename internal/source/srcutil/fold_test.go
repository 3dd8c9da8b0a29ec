package srcutil

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/source/srcutil/srctest"
)

func TestSnapshotList(t *testing.T) {
	tests := []struct {
		body     string
		wantKeys []string
		wantErr  string
	}{
		{`{"value":[{"id":"a"},{"id":2}]}`, []string{"a", "2"}, ""},
		{`{"value":[]}`, []string{}, ""},
		{`[{"id":"a"}]`, []string{"a"}, ""},
		{`{"Count":1,"Items":[{"id":"a"}]}`, []string{"a"}, ""},
		{`{"Count":1,"Items":[{"id":"a"},{"id":"b"}]}`, []string{"a", "b"}, ""}, // a stale total
		{`{"Count":3,"Items":[{"id":"a"},{"id":"b"}]}`, nil, "src: the service reported 3 rows, returned 2"},
		{`{"value":[{"name":"a"}]}`, nil, "record 0: src: record has no id field"},
		{`{"value":[{"id":"a"},{"id":"a"}]}`, nil, `src: key "a" appears twice`},
	}
	for _, tt := range tests {
		items, err := SnapshotList("src", []byte(tt.body), ListShape{}, "id")
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || items != nil {
				t.Errorf("SnapshotList(%s) = %v, %v; want error %q", tt.body, items, err, tt.wantErr)
			}
			continue
		}
		if got := srctest.Keys(items); err != nil || !reflect.DeepEqual(got, tt.wantKeys) {
			t.Errorf("SnapshotList(%s) keys = %q, %v; want %q", tt.body, got, err, tt.wantKeys)
		}
	}
}

// A factory made from a spec reads its path and query once and emits only
// a fully decoded page.
func TestPortalSnapshotFactory(t *testing.T) {
	decode := func(b []byte) ([]source.Item, error) {
		return SnapshotList("demo", b, ListShape{}, "Id")
	}
	f := PortalSnapshotFactory(PortalSnapshotSpec{
		Name: "demo", Table: "DemoTable", Path: "/apiproxy/demo", Description: "demo",
		Query: url.Values{"x": {"1"}}, Decode: decode,
	})
	if f.Kind != source.Snapshot || f.API != "portal" || !f.DefaultEnabled || f.NewConfig != nil {
		t.Errorf("factory %+v", f)
	}
	if _, err := f.New(source.Deps{}, nil); err == nil || !strings.Contains(err.Error(), "demo: needs the portal") {
		t.Errorf("without portal: err = %v", err)
	}
	tests := []struct {
		body     string
		wantKeys string
		wantErr  string
	}{
		{`[{"Id":1},{"Id":2}]`, "1,2", ""},
		{`[{"Id":1},{"Id":1}]`, "", "appears twice"},
	}
	for _, tt := range tests {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/apiproxy/demo" || r.URL.RawQuery != "x=1" {
				t.Errorf("request %s?%s", r.URL.Path, r.URL.RawQuery)
			}
			w.Write([]byte(tt.body))
		})
		s, err := f.New(source.Deps{Portal: srctest.Portal(t, h)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if s.Name() != "demo" || s.Table() != "DemoTable" || s.Kind() != source.Snapshot {
			t.Errorf("source %s %s %v", s.Name(), s.Table(), s.Kind())
		}
		items, ok := srctest.CheckSnapshot(t, s.(source.SnapshotSource), tt.wantErr, nil)
		if ok && strings.Join(srctest.Keys(items), ",") != tt.wantKeys {
			t.Errorf("keys %q, want %s", srctest.Keys(items), tt.wantKeys)
		}
	}
}

func TestPages(t *testing.T) {
	p := NewPages("src")
	if err := p.Add([]source.Item{{Key: "a"}, {Key: "b"}}); err != nil {
		t.Fatal(err)
	}
	if err := p.Add([]source.Item{{Key: "c"}}); err != nil {
		t.Fatal(err)
	}
	if err := p.Add([]source.Item{{Key: "a"}}); err == nil || !strings.Contains(err.Error(), `src: key "a" appears twice`) {
		t.Errorf("repeat across pages: err = %v", err)
	}
	var c srctest.Collector
	if err := p.Emit(context.Background(), c.Emit); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Keys(), ","); got != "a,b,c" {
		t.Errorf("emitted %s, want a,b,c in page order", got)
	}
}

func TestEventFields(t *testing.T) {
	e := EventFields{
		ID: []string{"id"}, Time: []string{"at", "time"},
		StableID: func(id, ts string, f map[string]json.RawMessage) string {
			return id + "|" + ts + "|" + OptText(f, "status")
		},
	}
	recs := []json.RawMessage{
		json.RawMessage(`{"id":"a","at":"2026-04-25T01:00:00Z","status":"Done"}`),
		json.RawMessage(`{"id":7,"time":"2026-04-25T02:00:00.0000000"}`),
	}
	items, err := e.Items("src", recs)
	if err != nil || len(items) != 2 {
		t.Fatalf("items %+v, %v", items, err)
	}
	if items[0].ID != "a|2026-04-25T01:00:00Z|Done" || items[1].ID != "7|2026-04-25T02:00:00.0000000|" {
		t.Errorf("ids %q %q: StableID must get the raw id and time text", items[0].ID, items[1].ID)
	}
	if want := time.Date(2026, 4, 25, 2, 0, 0, 0, time.UTC); !items[1].Time.Equal(want) || items[1].Time.Location() != time.UTC {
		t.Errorf("time %v, want %v UTC", items[1].Time, want)
	}
	if string(items[0].Raw) != string(recs[0]) {
		t.Errorf("raw changed: %s", items[0].Raw)
	}
	bad := map[string][]json.RawMessage{
		"record 1: src: record has no id field":         {recs[0], json.RawMessage(`{"at":"2026-04-25T01:00:00Z"}`)},
		"record 0: src: record has no at or time field": {json.RawMessage(`{"id":"a"}`)},
		"record 0: src: expected a JSON object":         {json.RawMessage(`[1]`)},
		`record 0: src: record field at: time "soon"`:   {json.RawMessage(`{"id":"a","at":"soon"}`)},
	}
	for want, recs := range bad {
		if items, err := e.Items("src", recs); err == nil || !strings.HasPrefix(err.Error(), want) || items != nil {
			t.Errorf("Items err = %v, want %q", err, want)
		}
	}
}

func TestNextLink(t *testing.T) {
	tests := []struct{ body, want, wantErr string }{
		{`{"value":[],"@odata.nextLink":"https://x/api?$skip=1"}`, "https://x/api?$skip=1", ""},
		{`{"value":[]}`, "", ""},
		{`{"@odata.nextLink":null}`, "", ""},
		{`{"@odata.nextLink":5}`, "", "src: field @odata.nextLink is not a string"},
		{`[]`, "", "src: "},
	}
	for _, tt := range tests {
		got, err := NextLink("src", []byte(tt.body))
		if got != tt.want || (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("NextLink(%s) = %q, %v", tt.body, got, err)
		}
	}
}

func TestIntRangeAndCursors(t *testing.T) {
	if err := IntRange("src", "page_size", 1000, 1, 1000); err != nil {
		t.Error(err)
	}
	if err := IntRange("src", "page_size", 0, 1, 1000); err == nil || err.Error() != "src: page_size 0 must be between 1 and 1000" {
		t.Errorf("err = %v", err)
	}
	c := Cursors{}
	if c.Follow("a") != nil || c.Follow("b") != nil {
		t.Fatal("fresh cursors refused")
	}
	if err := c.Follow("a"); !errors.Is(err, ErrRepeatedLink) {
		t.Errorf("repeated cursor: err = %v", err)
	}
}
