package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func testRecord(raw string) Record {
	return Record{
		Tenant:      "11111111-2222-3333-4444-555555555555",
		Source:      "actioncenter",
		Table:       "MdeActionCenter",
		ID:          "abc123",
		Time:        time.Date(2026, 1, 2, 3, 4, 5, 123456700, time.FixedZone("x", 3600)),
		HarvestedAt: time.Date(2026, 1, 2, 4, 0, 0, 0, time.UTC),
		Raw:         json.RawMessage(raw),
	}
}

const stdPrefix = `{"TenantId":"11111111-2222-3333-4444-555555555555","SourceName":"actioncenter",` +
	`"HarvestedAt":"2026-01-02T04:00:00Z","RecordId":"abc123","TimeGenerated":"2026-01-02T02:04:05.1234567Z"`

func TestAppendJSON(t *testing.T) {
	tests := []struct {
		name  string
		raw   string
		extra []Field
		want  string
	}{
		{"object keeps payload bytes", `{"B":1.50,"A":"x\u00e9"}`, nil, stdPrefix + `,"B":1.50,"A":"x\u00e9"}`},
		{"empty object", `{}`, nil, stdPrefix + `}`},
		{"empty object with spaces", " \n{ \t}\n ", nil, stdPrefix + `}`},
		{"empty object with spaces on one line", " { \t} ", nil, stdPrefix + `}`},
		{"spaces on one line are kept as sent", ` {"A" : 1} `, nil, stdPrefix + `,"A" : 1}`},
		{"pretty printed object becomes one line", "{\n  \"A\": [1, 2],\n  \"B\": {\"c\": null}\n}\n", nil, stdPrefix + `,"A":[1,2],"B":{"c":null}}`},
		{"array goes to Value", `[1, {"a":2}]`, nil, stdPrefix + `,"Value":[1, {"a":2}]}`},
		{"scalar goes to Value", `"text"`, nil, stdPrefix + `,"Value":"text"}`},
		{"null goes to Value", `null`, nil, stdPrefix + `,"Value":null}`},
		{"extras before payload", `{"Id":7}`, []Field{{"ChangeType", json.RawMessage(`"Added"`)}, {"ChangedFields", json.RawMessage(`[ "a", "b" ]`)}},
			stdPrefix + `,"ChangeType":"Added","ChangedFields":[ "a", "b" ],"Id":7}`},
		{"extras with empty payload", `{}`, []Field{{"SnapshotKey", json.RawMessage(`"k"`)}}, stdPrefix + `,"SnapshotKey":"k"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := testRecord(tc.raw)
			r.Extra = tc.extra
			got, err := r.AppendJSON([]byte("prefix|"))
			if err != nil {
				t.Fatalf("AppendJSON: %v", err)
			}
			if !bytes.HasPrefix(got, []byte("prefix|")) {
				t.Fatalf("dst prefix lost: %q", got)
			}
			got = got[len("prefix|"):]
			if string(got) != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
			if !json.Valid(got) || bytes.ContainsAny(got, "\n\r") {
				t.Errorf("not one valid JSON line: %q", got)
			}
		})
	}
}

func TestAppendJSONInvalid(t *testing.T) {
	tests := []struct {
		name  string
		raw   string
		extra []Field
	}{
		{"empty payload", ``, nil},
		{"truncated object", `{"a":`, nil},
		{"two values", `{} {}`, nil},
		{"garbage", `nope`, nil},
		{"bad extra", `{}`, []Field{{"X", json.RawMessage(`{`)}}},
		{"empty extra", `{}`, []Field{{"X", nil}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := testRecord(tc.raw)
			r.Extra = tc.extra
			dst := []byte("keep")
			got, err := r.AppendJSON(dst)
			if !errors.Is(err, ErrInvalidJSON) {
				t.Fatalf("err = %v, want ErrInvalidJSON", err)
			}
			if string(got) != "keep" {
				t.Errorf("dst changed on error: %q", got)
			}
		})
	}
}

func TestAppendJSONEscapesStandardFields(t *testing.T) {
	r := testRecord(`{}`)
	r.ID = "q\"uo\\te\n\x01\xff<é>"
	r.Extra = []Field{{"we\"ird", json.RawMessage(`1`)}}
	out, err := r.AppendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("invalid JSON %q: %v", out, err)
	}
	if m["RecordId"] != "q\"uo\\te\n\x01\uFFFD<é>" {
		t.Errorf("RecordId = %q", m["RecordId"])
	}
	if m["we\"ird"] != 1.0 {
		t.Errorf("extra key lost: %v", m)
	}
}

func FuzzAppendJSON(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1}`, ` { "a" : [ 1 , 2 ] } `, `[]`, `null`, `"s"`, `{"a":"\u2028"}`, `{`, ``, `1 2`, "{\"a\":\n1}"} {
		f.Add([]byte(s), "id\x00", "Key")
	}
	f.Fuzz(func(t *testing.T, raw []byte, id, extraKey string) {
		r := testRecord("")
		r.Raw = raw
		r.ID = id
		r.Extra = []Field{{extraKey, json.RawMessage(`true`)}}
		out, err := r.AppendJSON([]byte("x"))
		if !json.Valid(raw) {
			if err == nil {
				t.Fatalf("invalid payload %q accepted: %q", raw, out)
			}
			if string(out) != "x" {
				t.Fatalf("dst changed on error: %q", out)
			}
			return
		}
		if err != nil {
			t.Fatalf("valid payload %q rejected: %v", raw, err)
		}
		r.RawValid = true
		if trusted, err := r.AppendJSON([]byte("x")); err != nil || string(trusted) != string(out) {
			t.Fatalf("payload %q marked valid gives %q (%v), checked gives %q", raw, trusted, err, out)
		}
		line := out[1:]
		if !json.Valid(line) || bytes.ContainsAny(line, "\n\r") {
			t.Fatalf("output is not one valid JSON line: %q", line)
		}
		var got map[string]json.RawMessage
		if err := json.Unmarshal(line, &got); err != nil {
			t.Fatalf("output is not an object: %v", err)
		}
		for _, k := range []string{"TenantId", "SourceName", "HarvestedAt", "RecordId", "TimeGenerated"} {
			if _, ok := got[k]; !ok {
				t.Fatalf("standard field %s missing: %s", k, line)
			}
		}
		var payload map[string]json.RawMessage
		if json.Unmarshal(raw, &payload) == nil && strings.TrimSpace(string(raw))[0] == '{' {
			for k := range payload {
				if _, ok := got[k]; !ok {
					t.Fatalf("payload key %q missing from %s", k, line)
				}
			}
		} else if _, ok := got["Value"]; !ok {
			t.Fatalf("non-object payload not in Value: %s", line)
		}
	})
}

func TestAppendJSONValidPayloadIsNotScannedAgain(t *testing.T) {
	// A payload marked valid gives exactly the line a checked one gives,
	// line breaks compacted away included.
	for _, raw := range []string{`{}`, `{ }`, ` {"a":1} `, "{\n  \"a\": [1,\r\n 2],\n  \"s\": \"x \\\" \\\\ \\n y\"\n}\n",
		"[\n1]", `"s"`, `null`, "\t{\"k\" : \"v\"}", "{\n}"} {
		checked := testRecord(raw)
		want, err := checked.AppendJSON(nil)
		if err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		trusted := testRecord(raw)
		trusted.RawValid = true
		got, err := trusted.AppendJSON(nil)
		if err != nil || string(got) != string(want) {
			t.Errorf("%q: marked valid gives %q (%v), checked gives %q", raw, got, err, want)
		}
	}
	// Extra fields are checked even when the payload is marked valid.
	r := testRecord(`{}`)
	r.RawValid = true
	r.Extra = []Field{{"X", json.RawMessage(`{`)}}
	if _, err := r.AppendJSON(nil); !errors.Is(err, ErrInvalidJSON) {
		t.Errorf("invalid extra field with a valid payload: err = %v", err)
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	raw := []byte(`{"ActionId":"6b2c8f7e-1d2a-4c3b-9e8f-0a1b2c3d4e5f","ActionType":"LiveResponseCommand","ActionStatus":"Completed",` +
		`"EventTime":"2026-01-02T03:04:05.1234567","UserPrincipalName":"analyst@contoso.com","ComputerName":"ws-0042.contoso.com",` +
		`"AdditionalFields":{"raw_command":"getfile C:\\Users\\bob\\Documents\\secret.docx","session_id":12345},` +
		`"Comment":"collected for case 4711","MachineId":"a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"}`)
	for _, valid := range []bool{false, true} {
		name := "checked"
		if valid {
			name = "RawValid"
		}
		b.Run(name, func(b *testing.B) {
			r := testRecord(string(raw))
			r.RawValid = valid
			buf := make([]byte, 0, 4096)
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				buf, err = r.AppendJSON(buf[:0])
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
