package srcutil

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/source"
)

// canary is a value no error may repeat: errors about shapes name keys and
// types only, since values are tenant data.
const canary = "CANARY-7f3a-secret-value"

func TestReadListVariants(t *testing.T) {
	recs := `[{"id":"a"},{"id":"b"}]`
	tests := []struct {
		name, body string
		shape      ListShape
		n          int
		total      int64
		under      string
	}{
		{"bare array", recs, ListShape{}, 2, -1, ""},
		{"Results with Count", `{"Count":2,"Results":` + recs + `}`, ListShape{}, 2, 2, "Results"},
		{"Results without Count", `{"Results":` + recs + `}`, ListShape{}, 2, -1, "Results"},
		{"Items", `{"Items":` + recs + `,"Prev":""}`, ListShape{}, 2, -1, "Items"},
		{"items", `{"items":` + recs + `,"containsAadGroupNames":true}`, ListShape{}, 2, -1, "items"},
		{"OData value with count", `{"@odata.context":"x","@odata.count":5,"value":` + recs + `}`, ListShape{}, 2, 5, "value"},
		{"count lower-case", `{"count":7,"value":[]}`, ListShape{}, 0, 7, "value"},
		{"TotalCount", `{"TotalCount":2,"Items":` + recs + `}`, ListShape{}, 2, 2, "Items"},
		{"null Count is no total", `{"Count":null,"Results":[]}`, ListShape{}, 0, -1, "Results"},
		{"source key", `{"Rules":` + recs + `}`, ListShape{Keys: []string{"Rules"}}, 2, -1, "Rules"},
		{"non-array candidate beside the list", `{"Items":null,"value":` + recs + `}`, ListShape{}, 2, -1, "value"},
		{"single record", `{"id":"a","Name":"x"}`, ListShape{Single: []string{"id"}}, 1, -1, ""},
		{"empty array", `[]`, ListShape{}, 0, -1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := ReadList("src", []byte(tt.body), tt.shape)
			if err != nil {
				t.Fatal(err)
			}
			if len(l.Records) != tt.n || l.Total != tt.total || l.Under != tt.under {
				t.Errorf("records %d total %d under %q, want %d %d %q", len(l.Records), l.Total, l.Under, tt.n, tt.total, tt.under)
			}
			for _, r := range l.Records {
				if !bytes.Contains([]byte(tt.body), r) || !json.Valid(r) {
					t.Errorf("record %s is not an unchanged slice of the body", r)
				}
			}
		})
	}
}

// TestReadListUnknownShape: what cannot be read fails with the keys and
// JSON types seen and what was expected — and never a value.
func TestReadListUnknownShape(t *testing.T) {
	c := `"` + canary + `"`
	tests := []struct {
		name, body string
		shape      ListShape
		want       []string
	}{
		{"unknown envelope", `{"Count":3,"Data":[{"x":` + c + `}],"Note":` + c + `}`, ListShape{},
			[]string{"src: cannot read the response: it has Count (number), Data (array), Note (string); expected a JSON array or an object with an array under Results, Items, items or value"}},
		{"list under a non-array", `{"Results":` + c + `}`, ListShape{}, []string{"it has Results (string)"}},
		{"list is null", `{"value":null}`, ListShape{}, []string{"it has value (null)"}},
		{"source keys listed first", `{"x":1}`, ListShape{Keys: []string{"Rules"}}, []string{"under Rules, Results, Items, items or value"}},
		{"single record without its key", `{"Name":` + c + `}`, ListShape{Single: []string{"Id", "id"}, Record: "app"},
			[]string{"it has Name (string)", "or one app object with Id or id"}},
		{"two candidate arrays", `{"Results":[],"value":[{"a":` + c + `}]}`, ListShape{}, []string{"arrays under both Results and value"}},
		{"scalar", c, ListShape{}, []string{"it is a JSON string"}},
		{"number", `12345`, ListShape{}, []string{"it is a JSON number"}},
		{"html", `<html><body>` + canary + `</body></html>`, ListShape{}, []string{"not JSON but markup"}},
		{"broken JSON", `{"Results":[{"a":` + c + `}]`, ListShape{}, []string{"it is not valid JSON"}},
		{"empty", ` `, ListShape{}, []string{"it is empty"}},
		{"record not an object", `[{"a":1},` + c + `]`, ListShape{}, []string{"record 1 is not a JSON object (it is a JSON string)"}},
		{"record null", `{"value":[null]}`, ListShape{}, []string{"record 0 is not a JSON object (it is a JSON null)"}},
		{"total a string", `{"Count":` + c + `,"Results":[]}`, ListShape{}, []string{"its total Count is a JSON string, not a non-negative integer"}},
		{"total negative", `{"Count":-1,"Results":[]}`, ListShape{}, []string{"total Count is a JSON number that is negative or not whole"}},
		{"total fraction", `{"Count":1.5,"Results":[]}`, ListShape{}, []string{"not a non-negative integer"}},
		{"odd key quoted", `{"` + canary + ` with spaces":1}`, ListShape{}, []string{`it has "` + canary}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := ReadList("src", []byte(tt.body), tt.shape)
			if err == nil {
				t.Fatalf("no error; read %d records", len(l.Records))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v\nwant it to contain %q", err, w)
				}
			}
			// A key is shape, not value: only the odd-key case may name it.
			if tt.name != "odd key quoted" && strings.Contains(err.Error(), canary) {
				t.Errorf("error leaks a value: %v", err)
			}
			if l.Records != nil {
				t.Error("records returned with an error")
			}
		})
	}
}

func TestDescribeShape(t *testing.T) {
	tests := map[string]string{
		`{}`:                     "it is an empty JSON object",
		`[]`:                     "it is an empty JSON array",
		`[{"a":1},{"b":2},3]`:    "it is a JSON array of 3 (number, object)",
		`true`:                   "it is a JSON boolean",
		`null`:                   "it is a JSON null",
		`{"a":{},"b":[],"c":""}`: "it has a (object), b (array), c (string)",
	}
	for body, want := range tests {
		if got := DescribeShape([]byte(body)); got != want {
			t.Errorf("DescribeShape(%s) = %q, want %q", body, got, want)
		}
	}
	var sb strings.Builder
	sb.WriteString("{")
	for i := range 25 {
		if i > 0 {
			sb.WriteString(",")
		}
		sb.WriteString(`"k` + string(rune('a'+i)) + `":1`)
	}
	sb.WriteString("}")
	if got := DescribeShape([]byte(sb.String())); !strings.HasSuffix(got, "and 5 more keys") {
		t.Errorf("many keys: %s", got)
	}
	if got := DescribeObject(map[string]json.RawMessage{"b": json.RawMessage(`"` + canary + `"`), "a": json.RawMessage(`1`)}); got != "it has a (number), b (string)" {
		t.Errorf("DescribeObject = %q", got)
	}
}

func TestLinkOf(t *testing.T) {
	obj := map[string]json.RawMessage{"n": json.RawMessage(`"x"`), "z": json.RawMessage(`null`), "bad": json.RawMessage(`{"a":"` + canary + `"}`)}
	if s, err := LinkOf("src", obj, "n"); s != "x" || err != nil {
		t.Errorf("n: %q %v", s, err)
	}
	for _, k := range []string{"z", "missing"} {
		if s, err := LinkOf("src", obj, k); s != "" || err != nil {
			t.Errorf("%s: %q %v", k, s, err)
		}
	}
	if _, err := LinkOf("src", obj, "bad"); err == nil || !strings.Contains(err.Error(), "field bad is a JSON object, not a string") || strings.Contains(err.Error(), canary) {
		t.Errorf("bad: %v", err)
	}
	if s, err := LinkOf("src", nil, "n"); s != "" || err != nil {
		t.Errorf("nil object: %q %v", s, err)
	}
}

func TestWindowingCheckValues(t *testing.T) {
	day := source.Duration(24 * time.Hour)
	tests := []struct {
		w     Windowing
		limit time.Duration
		want  string
	}{
		{Windowing{Overlap: day, MaxWindow: day}, 30 * 24 * time.Hour, ""},
		{Windowing{}, 0, ""},
		{Windowing{MaxWindow: 31 * day}, 30 * 24 * time.Hour, "max_window 744h0m0s must be between 1s and 720h0m0s (the API's limit)"},
		{Windowing{}, time.Hour, "max_window 0s must be between 1s and 1h0m0s (the API's limit)"},
		{Windowing{Overlap: -1}, 0, "overlap -1ns must not be negative"},
		{Windowing{Delay: source.Duration(-time.Minute)}, 0, "delay -1m0s must not be negative"},
	}
	for _, tt := range tests {
		err := tt.w.CheckValues(tt.limit)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || err.Error() != tt.want) {
			t.Errorf("CheckValues(%+v, %v) = %v, want %q", tt.w, tt.limit, err, tt.want)
		}
	}
	if err := (Windowing{}).Check("src", time.Hour); err == nil || !strings.HasPrefix(err.Error(), "src: max_window") {
		t.Errorf("Check: %v", err)
	}
	if err := CheckInt("page_size", 0, 1, 9); err == nil || err.Error() != "page_size 0 must be between 1 and 9" {
		t.Errorf("CheckInt: %v", err)
	}
}

// FuzzReadList: any input gives either records that are JSON objects
// sliced from the body, or an error that repeats no string value of the
// body longer than a key could be.
func FuzzReadList(f *testing.F) {
	for _, s := range []string{
		`[{"a":1}]`, `{"Count":2,"Results":[{"a":1}]}`, `{"value":[],"@odata.count":0}`, `{"Items":"x"}`,
		`{"Rules":[{}],"items":[{}]}`, `{"Id":1}`, `{"Count":-1,"value":[]}`, `<html>`, `"x"`, `[1]`, ``,
		`{"Count":1e3,"Results":[]}`, `{"Results":[{"a":1}],"Results":null}`,
	} {
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, single bool) {
		shape := ListShape{Keys: []string{"Rules"}}
		if single {
			shape.Single = []string{"Id"}
		}
		l, err := ReadList("src", body, shape)
		if err != nil {
			if l.Records != nil || !strings.HasPrefix(err.Error(), "src: ") {
				t.Fatalf("error %v with records %d", err, len(l.Records))
			}
			return
		}
		if l.Total < -1 {
			t.Fatalf("total %d", l.Total)
		}
		for _, r := range l.Records {
			if JSONType(r) != "object" || !json.Valid(r) || !bytes.Contains(body, r) {
				t.Fatalf("bad record %q", r)
			}
		}
	})
}
