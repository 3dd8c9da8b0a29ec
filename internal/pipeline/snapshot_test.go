package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/source"
)

// fakeSnapshot serves whatever state the test sets.
type fakeSnapshot struct {
	mu    sync.Mutex
	items []source.Item
	err   error
}

func (f *fakeSnapshot) Name() string      { return "customdetections" }
func (f *fakeSnapshot) Table() string     { return "MdeCustomDetectionState" }
func (f *fakeSnapshot) Kind() source.Kind { return source.Snapshot }
func (f *fakeSnapshot) set(err error, kv ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
	f.items = nil
	for i := 0; i < len(kv); i += 2 {
		f.items = append(f.items, source.Item{Key: kv[i], Raw: json.RawMessage(kv[i+1])})
	}
}
func (f *fakeSnapshot) Snapshot(ctx context.Context, emit source.Emit) error {
	f.mu.Lock()
	items, err := f.items, f.err
	f.mu.Unlock()
	for _, it := range items {
		if e := emit(ctx, it); e != nil {
			return e
		}
	}
	return err // a failure after emitting some items: partial snapshot
}

// ofTable keeps the records of table.
func ofTable(recs []record.Record, table string) []record.Record {
	var out []record.Record
	for _, r := range recs {
		if r.Table == table {
			out = append(out, r)
		}
	}
	return out
}

type change struct {
	Key, Type, Fields, Raw string
}

func changesOf(t *testing.T, recs []record.Record) []change {
	t.Helper()
	var out []change
	for _, r := range recs {
		c := change{Raw: string(r.Raw)}
		for _, f := range r.Extra {
			var s string
			switch f.Key {
			case "ChangeType":
				json.Unmarshal(f.Value, &s)
				c.Type = s
			case "SnapshotKey":
				json.Unmarshal(f.Value, &s)
				c.Key = s
			case "ChangedFields":
				c.Fields = string(f.Value)
			}
		}
		if len(r.ID) != 32 {
			t.Errorf("record of %s/%s has no stable id: %q", c.Key, c.Type, r.ID)
		}
		out = append(out, c)
	}
	return out
}

func TestSnapshotChanges(t *testing.T) {
	store, _ := newStore(t)
	clk := &clock{t: t0}
	src := &fakeSnapshot{}
	steps := []struct {
		name    string
		err     error
		kv      []string
		want    []change
		wantErr string
	}{
		{"first snapshot is Initial", nil,
			[]string{"1", `{"Id":1,"IsEnabled":true,"Name":"a"}`, "2", `{"Id":2,"Name":"b"}`},
			[]change{{"1", Initial, "", `{"Id":1,"IsEnabled":true,"Name":"a"}`}, {"2", Initial, "", `{"Id":2,"Name":"b"}`}}, ""},
		{"unchanged gives nothing, whitespace and key order included", nil,
			[]string{"2", `{ "Name":"b", "Id":2 }`, "1", `{"Id":1,"IsEnabled":true,"Name":"a"}`},
			nil, ""},
		{"added, modified, removed", nil,
			[]string{"1", `{"Id":1,"IsEnabled":false,"Name":"a","Extra":[1]}`, "3", `{"Id":3}`},
			[]change{
				{"1", Modified, `["Extra","IsEnabled"]`, `{"Id":1,"IsEnabled":false,"Name":"a","Extra":[1]}`},
				{"3", Added, "", `{"Id":3}`},
				{"2", Removed, "", `{ "Name":"b", "Id":2 }`},
			}, ""},
		{"a failed snapshot emits and stores nothing", errors.New("page 2 failed"),
			[]string{"1", `{"Id":1}`},
			nil, "page 2 failed"},
		{"duplicate keys are refused", nil,
			[]string{"1", `{"Id":1}`, "1", `{"Id":1,"Copy":true}`},
			nil, `key "1" twice`},
		{"after the failures the stored state is still step 3", nil,
			[]string{"1", `{"Id":1,"IsEnabled":false,"Name":"a","Extra":[1]}`, "3", `{"Id":3}`},
			nil, ""},
		{"non-object values", nil,
			[]string{"1", `{"Id":1,"IsEnabled":false,"Name":"a","Extra":[1]}`, "3", `[3]`},
			[]change{{"3", Modified, `["Value"]`, `[3]`}}, ""},
		{"empty snapshot removes everything", nil, nil,
			[]change{{"1", Removed, "", `{"Id":1,"IsEnabled":false,"Name":"a","Extra":[1]}`}, {"3", Removed, "", `[3]`}}, ""},
		{"after an empty snapshot new items are Added, not Initial", nil,
			[]string{"9", `{}`},
			[]change{{"9", Added, "", `{}`}}, ""},
	}
	for i, st := range steps {
		mem := newMemSink()
		p := newPipeline(t, Options{Store: store, Sinks: sinks{mem}.s(), Now: clk.Now, BatchSize: 2})
		clk.Set(t0.Add(time.Duration(i) * time.Hour))
		src.set(st.err, st.kv...)
		res := run1(t, p, src, RunOptions{})
		if st.wantErr != "" {
			if res.Err == nil || !strings.Contains(res.Err.Error(), st.wantErr) || !strings.Contains(res.Err.Error(), "customdetections") {
				t.Errorf("%s: err = %v, want one naming the source and %q", st.name, res.Err, st.wantErr)
			}
		} else if res.Err != nil {
			t.Errorf("%s: %v", st.name, res.Err)
		}
		got := changesOf(t, ofTable(mem.all(), "MdeCustomDetectionState"))
		if !slices.Equal(got, st.want) {
			t.Errorf("%s:\n got %v\nwant %v", st.name, got, st.want)
		}
		for _, r := range mem.all() {
			if !r.Time.Equal(clk.Now()) || (r.Table != "MdeCustomDetectionState" && r.Table != ConfigurationChangesTable) || r.Tenant != tenant {
				t.Errorf("%s: record fields %v %s %s", st.name, r.Time, r.Table, r.Tenant)
			}
		}
		if res.New != len(mem.all()) || mem.maxBatch > 2 {
			t.Errorf("%s: New=%d of %d records, maxBatch=%d", st.name, res.New, len(mem.all()), mem.maxBatch)
		}
	}
}

func TestSnapshotSinkFailureRepeatsTheSameChanges(t *testing.T) {
	store, _ := newStore(t)
	clk := &clock{t: t0}
	src := &fakeSnapshot{}
	src.set(nil, "1", `{"Id":1}`, "2", `{"Id":2}`, "3", `{"Id":3}`)
	failing := newMemSink()
	failing.after = func(call int) error { // first batch stored, then the output breaks
		if call >= 2 {
			return errors.New("HEC 503")
		}
		return nil
	}
	p := newPipeline(t, Options{Store: store, Sinks: sinks{failing}.s(), Now: clk.Now, BatchSize: 2})
	if res := run1(t, p, src, RunOptions{}); res.Err == nil {
		t.Fatal("output failure not reported")
	}
	clk.Set(t0.Add(time.Hour))
	healthy := newMemSink()
	p = newPipeline(t, Options{Store: store, Sinks: sinks{healthy}.s(), Now: clk.Now})
	res := run1(t, p, src, RunOptions{})
	if res.Err != nil || res.Changes[Initial] != 3 {
		t.Fatalf("rerun: %v %v", res.Changes, res.Err)
	}
	// Downstream can drop the repeats: the record ids are the same.
	first := failing.ids()
	for id := range first {
		if healthy.ids()[id] != 1 {
			t.Errorf("rerun changed the id of an already delivered change %s", id)
		}
	}
	if res := run1(t, p, src, RunOptions{}); res.New != 0 {
		t.Errorf("snapshot not stored after a successful delivery: %d new", res.New)
	}
}

func TestContentHashAndChangedFields(t *testing.T) {
	tests := []struct {
		a, b    string
		same    bool
		changed []string
	}{
		{`{"a":1,"b":[1, 2]}`, ` {"b":[1,2],"a":1}`, true, []string{}},
		{`{"a":1}`, `{"a":1.0}`, false, []string{"a"}},
		{`{"a":1}`, `{"b":1}`, false, []string{"a", "b"}},
		{`{"a":{"x":1,"y":2}}`, `{"a":{"y":2,"x":1}}`, false, []string{"a"}},
		{`[1]`, `[ 1 ]`, true, []string{"Value"}},
		{`{"a":1}`, `[1]`, false, []string{"Value"}},
	}
	for _, tc := range tests {
		if got := ContentHash(json.RawMessage(tc.a)) == ContentHash(json.RawMessage(tc.b)); got != tc.same {
			t.Errorf("hash(%s)==hash(%s) is %v", tc.a, tc.b, got)
		}
		if got := ChangedFields(json.RawMessage(tc.a), json.RawMessage(tc.b)); !slices.Equal(got, tc.changed) {
			t.Errorf("ChangedFields(%s, %s) = %v, want %v", tc.a, tc.b, got, tc.changed)
		}
	}
}

func FuzzSnapshotDiff(f *testing.F) {
	for _, s := range [][2]string{{`{"a":1}`, `{"a":2}`}, {`[]`, `{}`}, {`{"a":{"b":[1,2]}}`, `{"a":{"b":[1,2]},"c":null}`}, {`"x"`, `{`}, {`{"a":1,"a":2}`, `{"a":2}`}} {
		f.Add([]byte(s[0]), []byte(s[1]))
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		ha, hb := ContentHash(a), ContentHash(b)
		cf := ChangedFields(a, b)
		if !slices.IsSorted(cf) {
			t.Fatalf("ChangedFields not sorted: %v", cf)
		}
		if !json.Valid(a) {
			return
		}
		if self := ChangedFields(a, a); len(self) != 0 && !slices.Equal(self, []string{"Value"}) {
			t.Fatalf("an item differs from itself: %v", self)
		}
		if json.Valid(b) {
			if _, obj := topLevel(a); obj {
				if _, obj := topLevel(b); obj && (ha == hb) != (len(cf) == 0) {
					t.Fatalf("hash equality %v disagrees with changed fields %v", ha == hb, cf)
				}
			}
		}
		if ha != ContentHash(a) {
			t.Fatal("hash not deterministic")
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(a, &m) == nil {
			// The changed-field names are real keys or "Value".
			for _, k := range cf {
				var mb map[string]json.RawMessage
				json.Unmarshal(b, &mb)
				if _, inA := m[k]; !inA && mb[k] == nil && k != "Value" {
					t.Fatalf("invented field %q", k)
				}
			}
		}
	})
}

// TestRepeatedChangesGetNewIDs: a setting switched off, on and off again
// gives two switch-off records that downstream dedup must not merge.
func TestRepeatedChangesGetNewIDs(t *testing.T) {
	store, _ := newStore(t)
	clk := &clock{t: t0}
	src := &fakeSnapshot{}
	mem := newMemSink()
	var ids []string
	for i, v := range []string{`{"Tamper":true}`, `{"Tamper":false}`, `{"Tamper":true}`, `{"Tamper":false}`} {
		clk.Set(t0.Add(time.Duration(i) * time.Hour))
		p := newPipeline(t, Options{Store: store, Sinks: sinks{mem}.s(), Now: clk.Now})
		src.set(nil, "AdvancedFeatures", v)
		if res := run1(t, p, src, RunOptions{}); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	for _, r := range ofTable(mem.all(), "MdeCustomDetectionState") {
		ids = append(ids, r.ID)
	}
	if len(ids) != 4 {
		t.Fatalf("%d change records, want 4 (initial + three switches)", len(ids))
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("two different changes share RecordId %s: %v", id, ids)
		}
		seen[id] = true
	}
}
