package srcutil

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// The scanner must agree with encoding/json: same documents accepted, same
// keys (unescaped, last duplicate wins), same value bytes.

func TestScanObject(t *testing.T) {
	tests := []struct {
		name, in string
		want     map[string]string // nil: invalid
	}{
		{"empty", `{}`, map[string]string{}},
		{"whitespace", " \t\r\n{ \"a\" :\n1 ,\t\"b\":\r\"x\" } \n", map[string]string{"a": `1`, "b": `"x"`}},
		{"escaped keys", `{"a\"b":1,"c\\d":2,"\u00e9t\u00E9":3,"tab\t":4,"\ud83d\ude00":5,"\/":6}`,
			map[string]string{`a"b`: `1`, `c\d`: `2`, "été": `3`, "tab\t": `4`, "😀": `5`, "/": `6`}},
		{"lone surrogate key", `{"\ud800":1}`, map[string]string{"\uFFFD": `1`}},
		{"invalid utf-8 key", "{\"a\xffb\":1}", map[string]string{"a\uFFFDb": `1`}},
		{"nested", `{"o":{"p":[1,{"q":[]}],"r":{}},"a":[[],[{}]]}`,
			map[string]string{"o": `{"p":[1,{"q":[]}],"r":{}}`, "a": `[[],[{}]]`}},
		{"strings with syntax", `{"s":"{[}]\",:\\","t":"\\\"}"}`, map[string]string{"s": `"{[}]\",:\\"`, "t": `"\\\"}"`}},
		{"literals and numbers", `{"t":true,"f":false,"n":null,"i":-0,"e":1.5E+10,"z":0.0e-0}`,
			map[string]string{"t": `true`, "f": `false`, "n": `null`, "i": `-0`, "e": `1.5E+10`, "z": `0.0e-0`}},
		{"duplicate keys last wins", `{"a":1,"a":{"x":2}}`, map[string]string{"a": `{"x":2}`}},
		{"long plain string", `{"k":"` + strings.Repeat("abcdefgh", 20) + `"}`, map[string]string{"k": `"` + strings.Repeat("abcdefgh", 20) + `"`}},
		{"trailing garbage", `{"a":1}x`, nil},
		{"two objects", `{}{}`, nil},
		{"trailing comma", `{"a":1,}`, nil},
		{"missing colon", `{"a" 1}`, nil},
		{"missing comma", `{"a":1 "b":2}`, nil},
		{"unterminated string", `{"a":"b}`, nil},
		{"unterminated object", `{"a":{"b":1}`, nil},
		{"unterminated array", `{"a":[1,2}`, nil},
		{"bad escape", `{"a":"\x"}`, nil},
		{"short unicode escape", `{"a":"\u12"}`, nil},
		{"control char in string", "{\"a\":\"x\ny\"}", nil},
		{"leading zero", `{"a":01}`, nil},
		{"bare minus", `{"a":-}`, nil},
		{"dot without digits", `{"a":1.}`, nil},
		{"exponent without digits", `{"a":1e+}`, nil},
		{"bad literal", `{"a":tru}`, nil},
		{"literal with tail", `{"a":nullx}`, nil},
		{"single quotes", `{'a':1}`, nil},
		{"non-string key", `{1:1}`, nil},
		{"array top level", `[1]`, nil},
		{"empty input", ``, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := scanMap([]byte(tt.in))
			if valid := json.Valid([]byte(tt.in)) && tt.in[strings.IndexAny(tt.in, "{[")] == '{'; valid != (tt.want != nil) {
				t.Fatalf("bad test: json.Valid=%v", valid)
			}
			if tt.want == nil {
				if err == nil {
					t.Fatalf("scanMap(%q) = %v, want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("scanMap(%q): %v", tt.in, err)
			}
			gotS := map[string]string{}
			for k, v := range got {
				gotS[k] = string(v)
			}
			if !reflect.DeepEqual(gotS, tt.want) {
				t.Errorf("scanMap(%q) = %q, want %q", tt.in, gotS, tt.want)
			}
			checkLikeStdlib(t, []byte(tt.in))
		})
	}
}

func TestScanArray(t *testing.T) {
	tests := []struct {
		in   string
		want []string // nil: invalid
	}{
		{`[]`, []string{}},
		{" [ ] ", []string{}},
		{`[{"a":"]"} , [1,[2]],"x\"]",null, -1e5 ]`, []string{`{"a":"]"}`, `[1,[2]]`, `"x\"]"`, `null`, `-1e5`}},
		{`[1,]`, nil},
		{`[,1]`, nil},
		{`[1 2]`, nil},
		{`[1]]`, nil},
		{`[{"a":1]`, nil},
		{`["a]`, nil},
		{`{}`, nil},
	}
	for _, tt := range tests {
		got, err := scanElems([]byte(tt.in))
		if tt.want == nil {
			if err == nil {
				t.Errorf("scanElems(%q) = %q, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got == nil || len(got) != len(tt.want) {
			t.Errorf("scanElems(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			continue
		}
		for i := range got {
			if string(got[i]) != tt.want[i] {
				t.Errorf("scanElems(%q)[%d] = %s, want %s", tt.in, i, got[i], tt.want[i])
			}
		}
		checkLikeStdlib(t, []byte(tt.in))
	}
}

// TestScanDepth checks encoding/json's nesting limit holds here too, and
// that deep input neither panics nor overflows.
func TestScanDepth(t *testing.T) {
	for _, depth := range []int{maxDepth, maxDepth + 1, 100000} {
		in := []byte(`{"a":` + strings.Repeat("[", depth-1) + strings.Repeat("]", depth-1) + `}`)
		_, err := scanMap(in)
		if (err == nil) != json.Valid(in) {
			t.Errorf("depth %d: scanMap err %v, json.Valid %v", depth, err, json.Valid(in))
		}
	}
}

// TestValuesDoNotAlias checks that appending to a returned value cannot
// overwrite the page the value came from.
func TestValuesDoNotAlias(t *testing.T) {
	page := []byte(`{"a":[{"x":1},{"y":2}],"b":2}`)
	obj, err := Object("src", page)
	if err != nil {
		t.Fatal(err)
	}
	_ = append(obj["a"], 'X')
	recs, err := Items("src", page, Envelope{Keys: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	_ = append(recs[0], 'X')
	if string(page) != `{"a":[{"x":1},{"y":2}],"b":2}` {
		t.Errorf("page changed to %s", page)
	}
}

// checkLikeStdlib compares the scanner with encoding/json on a document
// json.Valid accepts: same members, keys as decoded, values byte for byte.
func checkLikeStdlib(t *testing.T, in []byte) {
	t.Helper()
	switch bytes.TrimLeft(in, " \t\r\n")[0] {
	case '{':
		var want map[string]json.RawMessage
		if err := json.Unmarshal(in, &want); err != nil {
			t.Fatalf("json.Unmarshal(%q): %v", in, err)
		}
		got, err := scanMap(in)
		if err != nil {
			t.Fatalf("scanMap(%q): %v; encoding/json accepts it", in, err)
		}
		if len(got) != len(want) {
			t.Fatalf("scanMap(%q) has %d keys, encoding/json %d", in, len(got), len(want))
		}
		for k, w := range want {
			if g, ok := got[k]; !ok || !bytes.Equal(g, w) {
				t.Fatalf("scanMap(%q)[%q] = %q (present %v), encoding/json %q", in, k, g, ok, w)
			}
		}
	case '[':
		var want []json.RawMessage
		if err := json.Unmarshal(in, &want); err != nil {
			t.Fatalf("json.Unmarshal(%q): %v", in, err)
		}
		got, err := scanElems(in)
		if err != nil {
			t.Fatalf("scanElems(%q): %v; encoding/json accepts it", in, err)
		}
		if len(got) != len(want) {
			t.Fatalf("scanElems(%q) has %d elements, encoding/json %d", in, len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("scanElems(%q)[%d] = %q, encoding/json %q", in, i, got[i], want[i])
			}
		}
	}
}

func FuzzScanObject(f *testing.F) {
	for _, s := range []string{
		`{}`, `[]`, ` {"a" : [1, {"b":"}\""}], "a\u0041":null } `, `{"a":1,"a":2}`,
		`{"\ud800x":true,"\\":false}`, "{\"\xff\":1}", `[{"ReportId":1,"ActionTime":"2026-04-25T01:00:00Z"}]`,
		`{"a":-0.5e-7,"b":[[[]]]}`, `{"a":1}x`, `{"a":"\u12"}`, `[1,]`, `{"a":01}`, `{"s":"abcdefgh\u0000ijklmnop\"qr"}`,
		string(timelinePage(2)),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		m, errM := scanMap(in)
		a, errA := scanElems(in)
		valid := json.Valid(in)
		top := bytes.TrimLeft(in, " \t\r\n")
		isObj := valid && len(top) > 0 && top[0] == '{'
		isArr := valid && len(top) > 0 && top[0] == '['
		if (errM == nil) != isObj {
			t.Fatalf("scanMap(%q) err = %v, json.Valid %v", in, errM, valid)
		}
		if (errA == nil) != isArr {
			t.Fatalf("scanElems(%q) err = %v, json.Valid %v", in, errA, valid)
		}
		if errM == nil && m == nil || errA == nil && a == nil {
			t.Fatalf("nil result without error for %q", in)
		}
		if valid {
			checkLikeStdlib(t, in)
		}
		// The exported decoders keep their contract on any input.
		if obj, err := Object("src", in); err == nil {
			if obj == nil {
				t.Fatal("Object: nil map without error")
			}
		} else if !strings.HasPrefix(err.Error(), "src: ") {
			t.Fatalf("Object error does not name the source: %v", err)
		}
		if recs, err := Items("src", in, Envelope{Bare: true, Keys: []string{"Items"}}); err == nil {
			for i, r := range recs {
				if _, err := Fields("src", r); err != nil {
					t.Fatalf("record %d of an accepted page fails Fields: %v", i, err)
				}
			}
		}
	})
}

// refItems is Items as it was with encoding/json alone; FuzzItems holds the
// scanner-based Items to it, results and error texts alike.
func refItems(src string, body []byte, env Envelope) ([]json.RawMessage, error) {
	b := bytes.TrimSpace(body)
	if len(b) == 0 {
		return nil, errors.New(src + ": empty response body")
	}
	var arr []json.RawMessage
	switch b[0] {
	case '[':
		if !env.Bare {
			return nil, fmt.Errorf("%s: expected an object with %s, got a JSON array", src, keyList(env.Keys))
		}
		if err := json.Unmarshal(b, &arr); err != nil {
			return nil, fmt.Errorf("%s: response is not a valid JSON array: %w", src, err)
		}
	case '{':
		obj, err := refObject(src, b)
		if err != nil {
			return nil, err
		}
		var found string
		for _, k := range env.Keys {
			if v, ok := obj[k]; ok {
				found = k
				t := bytes.TrimSpace(v)
				if len(t) == 0 || t[0] != '[' {
					return nil, fmt.Errorf("%s: field %s is not an array", src, k)
				}
				if err := json.Unmarshal(t, &arr); err != nil {
					return nil, fmt.Errorf("%s: field %s: %w", src, k, err)
				}
				break
			}
		}
		if found == "" {
			if len(env.Keys) == 0 {
				return nil, fmt.Errorf("%s: expected a JSON array, got an object", src)
			}
			return nil, fmt.Errorf("%s: response has no %s field: the API's shape changed or this is not the expected endpoint", src, keyList(env.Keys))
		}
	default:
		return nil, fmt.Errorf("%s: response is not a JSON array or object (starts with %q)", src, string(b[:1]))
	}
	for i, it := range arr {
		if t := bytes.TrimSpace(it); len(t) == 0 || t[0] != '{' {
			return nil, fmt.Errorf("%s: record %d is not a JSON object", src, i)
		}
	}
	return arr, nil
}

func refObject(src string, b []byte) (map[string]json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return nil, fmt.Errorf("%s: response is not a valid JSON object: %w", src, err)
	}
	if obj == nil {
		return nil, fmt.Errorf("%s: expected a JSON object, got null", src)
	}
	return obj, nil
}

func FuzzItems(f *testing.F) {
	for _, s := range []string{
		`[{"a":1}, {"b":2}]`, ` {"Rules":[{"a":1}]}`, `{"Results":[]}`, `{"Results":"x"}`, `{"value":[]}`,
		`[1]`, `[null]`, `<html>`, ``, `[{"a":1}`, `{"Items":[{"a":1}],"Items":[]}`, `{"Items":[{"a":"\u12"}]}`,
		`{"Items":[{"a":1}] x`, "\f[{}]\v", `null`,
	} {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, body []byte, bare bool) {
		env := Envelope{Bare: bare, Keys: []string{"Items", "Results"}}
		got, err := Items("src", body, env)
		want, wantErr := refItems("src", body, env)
		if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
			t.Fatalf("Items(%q) err = %v, encoding/json gives %v", body, err, wantErr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Items(%q) = %q, encoding/json gives %q", body, got, want)
		}
		gotObj, err := Object("src", body)
		if b := bytes.TrimSpace(body); len(b) > 0 && b[0] == '{' {
			wantObj, wantErr := refObject("src", b)
			if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
				t.Fatalf("Object(%q) err = %v, encoding/json gives %v", body, err, wantErr)
			}
			if !reflect.DeepEqual(gotObj, wantObj) {
				t.Fatalf("Object(%q) = %q, encoding/json gives %q", body, gotObj, wantObj)
			}
		}
	})
}

// FuzzScanPick holds scanPick to scanMap: the same verdict on the input,
// and exactly scanMap's members among those asked for (escaped keys,
// repeated keys: the last wins, as in encoding/json).
func FuzzScanPick(f *testing.F) {
	for _, s := range []string{
		`{"ReportId":1,"ActionTime":"x","Other":[1,2]}`, `{"Report\u0049d":2}`, `{"ReportId":1,"ReportId":3}`,
		`{"a":}`, `{}`, `{"ActionTime":{"nested":"ReportId"}}`, `[1]`, `{"ReportId":"\ud800"}`,
	} {
		f.Add([]byte(s))
	}
	want := []string{"ReportId", "ActionTime", "missing"}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := scanPick(b, want)
		all, allErr := scanMap(b)
		if (err == nil) != (allErr == nil) {
			t.Fatalf("scanPick(%q) err = %v, scanMap err = %v", b, err, allErr)
		}
		if err != nil {
			return
		}
		exp := map[string]json.RawMessage{}
		for _, k := range want {
			if v, ok := all[k]; ok {
				exp[k] = v
			}
		}
		if !reflect.DeepEqual(got, exp) {
			t.Fatalf("scanPick(%q) = %q, want %q", b, got, exp)
		}
	})
}
