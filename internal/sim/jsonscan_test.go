package sim

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

var jsonScanSeeds = []string{
	`{}`, `[]`, `[1,2]`, `[1,]`, `{"a":1,}`, `{"a" : [true,false,null] , "b":{}}`, `"\u00e9\ud800"`, `"\x"`, `"\u12g4"`,
	"\"a\tb\"", "\"\xff\xfe\"", `-0`, `-`, `01`, `1.`, `1.5e`, `1e+5`, `1E-05`, `.5`, `-.5`, `tru`, `nul`, `true1`,
	`{"a":1}}`, `[[[]]]`, `{"a"}`, `{"a":}`, `{1:2}`, " \r\n\t[ 1 ]\n", "[1]\v", `"`, `"\`, `"\u00"`,
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	strings.Repeat(`{"a":`, 9999) + "[]" + strings.Repeat("}", 9999),
	strings.Repeat(`{"a":`, 10000) + "[]" + strings.Repeat("}", 10000),
}

func scanValid(b []byte) bool {
	i := skipJSONSpace(b, 0)
	e := scanJSONValue(b, i, 1)
	return e >= 0 && skipJSONSpace(b, e) == len(b)
}

func TestScanJSONLikeEncodingJSON(t *testing.T) {
	for _, s := range jsonScanSeeds {
		if got, want := scanValid([]byte(s)), json.Valid([]byte(s)); got != want {
			t.Errorf("%.60q: scan %v, encoding/json %v", s, got, want)
		}
	}
}

func FuzzScanJSON(f *testing.F) {
	for _, s := range jsonScanSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := scanValid(b), json.Valid(b); got != want {
			t.Fatalf("%q: scan %v, encoding/json %v", b, got, want)
		}
	})
}

var ingestSeeds = []string{
	`[{"TimeGenerated":"2026-01-01T00:00:00Z","RecordId":"a"}]`,
	`[{"TimeGenerated":"2026-01-01T00:00:00Z","RecordId":"a"},{"TimeGenerated":"2026-01-02T00:00:00Z","recordid":"b","RecordId":7}]`,
	`[{"TimeGenerated":"2026-01-01T00:00:00Z","timegenerated":"2026-02-01T00:00:00Z"},{"TimeGenerated":"2026-01-01T00:00:00Z","TIMEGENERATED":null}]`,
	`[{"TimeGenerated":"2026-01-01T00:00:00Z","timeGenerated":5},{"TimeGenerated":"2026-01-03T00:00:00Z"}]`,
	`[{"Time\u0047enerated":"2026-01-01T00:00:00Z","Record\u0049d":"\u00e9x"}, {"TimeGenerated":"2026-01-01T00:00:00","RecordId":"` + "\xff\u00e9" + `"}]`,
	`[{"TimeGenerated":"2026-01-01"}, {"TimeGenerated":"x"}]`, `[{"TimeGenerated":null}]`, `[{"TimeGenerated":7}]`,
	`[]`, ` [ ] `, `[1]`, `[{}]`, `[{},]`, `[{}`, `{"TimeGenerated":"2026-01-01T00:00:00Z"}`, `[{"TimeGenerated":"2026-01-01T00:00:00Z"}] x`,
	"\v[{\"TimeGenerated\":\"2026-01-01T00:00:00Z\"}]\u00a0", `[{"TimeGenerated":"0001-01-01T00:00:00Z"},{"TimeGenerated":"2026-01-01T00:00:00Z"}]`,
	`[{"RecordId":null,"TimeGenerated":" 2026-01-01T00:00:00Z "}]`,
}

func FuzzIngestScanLikeStd(f *testing.F) {
	for _, s := range ingestSeeds {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, body []byte, declared bool) {
		st := Stream{Name: "Custom-T"}
		if declared {
			st.Columns = []Column{{"TimeGenerated", "datetime"}}
		}
		got, err := parseIngest(body, st, true)
		recs, werr := parseIngestBodyStd(body, st)
		if (err == nil) != (werr == nil) || err != nil && err.Error() != werr.Error() {
			t.Fatalf("%q: error %v, std %v", body, err, werr)
		}
		if err != nil {
			return
		}
		ids := make([]string, len(recs))
		for i, r := range recs {
			ids[i] = recordID(r)
		}
		if len(got.recs) != len(recs) {
			t.Fatalf("%q: %d records, std %d", body, len(got.recs), len(recs))
		}
		for i := range recs {
			if !bytes.Equal(got.recs[i], recs[i]) {
				t.Fatalf("%q: record %d %q, std %q", body, i, got.recs[i], recs[i])
			}
		}
		if len(ids) > 0 && !reflect.DeepEqual(got.ids, ids) {
			t.Fatalf("%q: ids %q, std %q", body, got.ids, ids)
		}
		if span := timeSpan(recs); got.span != span {
			t.Fatalf("%q: span %s, std %s", body, got.span, span)
		}
	})
}

// TestIngestScanLikeStd runs the seeds, and checks they take the single pass.
func TestIngestScanLikeStd(t *testing.T) {
	for _, s := range ingestSeeds[:6] {
		if _, ok := scanIngestBody(bytes.TrimSpace([]byte(s)), false, true); !ok {
			t.Errorf("%s: not taken by the single pass", s)
		}
	}
}

var hecSeeds = []string{
	`{"event":"a"}{"event":{"RecordId":"x"},"fields":{"a":["b"]}}`,
	`{"time":1773144000.123,"host":"h","source":"s","sourcetype":"st","index":"main","event":{"recordid":"a","RecordId":"b","x":[1,{"RecordId":"c"}]}}`,
	`{"event":{"RecordId":"x"},"event":"y"} {"event":"z","event":{"Record\u0049d":"\u00e9"}}`,
	`{"event":{"RecordId":7},"time":"12.5"}{"event":{"RecordId":null},"time":1e999}`,
	`{"event":"a","Event":null,"sourcetype":null,"index":""}`, `{"event":"a","time":-0.5e3,"index":"other"}`,
	`[{"event":"a"}]`, `{"event":"a","fields":{"a":[{}]},"time":"12.5","index":"main"}`, `{"event":null}  {"x":1}`,
	`{"event":"a"}` + "\v", `{"event":"a"} 1`, `{"event":"a"}{"event":`, `  `, ``, `{"event":"a","host":5}`, `{"event":" \u0020"}`,
}

func FuzzHECScanLikeStd(f *testing.F) {
	for _, s := range hecSeeds {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, switches bool) {
		rules := hecRules{indexes: []string{"main", "other"}}
		if switches {
			rules.noIndex = map[string]bool{"other": true}
			rules.invalidID = map[string]bool{"x": true, "": true}
		}
		evs, bad := parseHECEnvelopes(body, rules)
		wevs, wbad := parseHECEnvelopesStd(body, rules)
		if !reflect.DeepEqual(bad, wbad) {
			t.Fatalf("%q: error %+v, std %+v", body, bad, wbad)
		}
		if len(evs) != len(wevs) {
			t.Fatalf("%q: %d events, std %d", body, len(evs), len(wevs))
		}
		for i := range evs {
			e, w := evs[i], wevs[i]
			if e.sourcetype != w.sourcetype || !bytes.Equal(e.event, w.event) || e.id != w.id || e.id != recordID(w.event) {
				t.Fatalf("%q: event %d %+v, std %+v", body, i, e, w)
			}
		}
	})
}

// TestHECScanTaken checks that well-formed batches take the single pass.
func TestHECScanTaken(t *testing.T) {
	for _, s := range append(hecSeeds[:3:3], hecSeeds[4:6]...) {
		if _, ok := scanHECEnvelopes([]byte(s), hecRules{indexes: []string{"main", "other"}}); !ok {
			t.Errorf("%s: not taken by the single pass", s)
		}
	}
}
