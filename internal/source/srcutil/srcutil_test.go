package srcutil

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/source"
)

func TestItems(t *testing.T) {
	env := Envelope{Bare: true, Keys: []string{"Rules", "Results"}}
	tests := []struct {
		body    string
		env     Envelope
		n       int
		wantErr string
	}{
		{`[{"a":1}, {"b":2}]`, env, 2, ""},
		{` {"Rules":[{"a":1}]}`, env, 1, ""},
		{`{"Results":[]}`, env, 0, ""},
		{`{"Results":"x"}`, env, 0, "src: field Results is not an array"},
		{`{"value":[]}`, env, 0, "src: response has no Rules or Results field"},
		{`[{"a":1}]`, Envelope{Keys: []string{"items"}}, 0, "expected an object with items"},
		{`{"a":1}`, Envelope{Bare: true}, 0, "expected a JSON array, got an object"},
		{`[1]`, env, 0, "record 0 is not a JSON object"},
		{`[null]`, env, 0, "record 0 is not a JSON object"},
		{`<html>`, env, 0, "not a JSON array or object"},
		{``, env, 0, "empty response body"},
		{`[{"a":1}`, env, 0, "not a valid JSON array"},
	}
	for _, tt := range tests {
		got, err := Items("src", []byte(tt.body), tt.env)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Items(%s) err = %v, want %q", tt.body, err, tt.wantErr)
			}
			continue
		}
		if err != nil || len(got) != tt.n {
			t.Errorf("Items(%s) = %d, %v; want %d", tt.body, len(got), err, tt.n)
		}
	}
}

func TestTextAndTime(t *testing.T) {
	rec := map[string]json.RawMessage{
		"Id": json.RawMessage(`1000000013`), "s": json.RawMessage(`"abc"`), "empty": json.RawMessage(`""`),
		"obj": json.RawMessage(`{}`), "t": json.RawMessage(`"2026-04-25T21:13:34.0467247"`), "bad": json.RawMessage(`"soon"`),
	}
	if v, err := Text("x", rec, "missing", "Id"); err != nil || v != "1000000013" {
		t.Errorf("Text number = %q, %v", v, err)
	}
	if v, err := Text("x", rec, "s"); err != nil || v != "abc" {
		t.Errorf("Text string = %q, %v", v, err)
	}
	for _, f := range []string{"empty", "obj"} {
		if _, err := Text("x", rec, f); err == nil || !strings.Contains(err.Error(), "x: record field "+f) {
			t.Errorf("Text(%s) err = %v", f, err)
		}
	}
	if _, err := Text("x", rec, "a", "b"); err == nil || err.Error() != "x: record has no a or b field" {
		t.Errorf("missing err = %v", err)
	}
	raw, tm, err := Time("x", rec, "t")
	if err != nil || raw != "2026-04-25T21:13:34.0467247" || tm.Location() != time.UTC || tm.Hour() != 21 {
		t.Errorf("Time = %q %v %v", raw, tm, err)
	}
	if _, _, err := Time("x", rec, "bad"); err == nil || !strings.Contains(err.Error(), "record field bad") {
		t.Errorf("bad time err = %v", err)
	}
}

func TestChunks(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	got := Chunks(source.Window{From: t0, To: t0.Add(50 * time.Hour)}, 24*time.Hour)
	if len(got) != 3 || !got[0].To.Equal(t0.Add(24*time.Hour)) || !got[2].From.Equal(t0.Add(48*time.Hour)) || !got[2].To.Equal(t0.Add(50*time.Hour)) {
		t.Errorf("chunks %v", got)
	}
	if Chunks(source.Window{From: t0, To: t0}, time.Hour) != nil {
		t.Error("empty window gave chunks")
	}
	if got := Chunks(source.Window{From: t0, To: t0.Add(time.Hour)}, 0); len(got) != 1 {
		t.Errorf("no limit gave %v", got)
	}
}

func TestKeys(t *testing.T) {
	k := NewKeys("src")
	if err := k.Add("1"); err != nil {
		t.Fatal(err)
	}
	if err := k.Add("1"); err == nil || !strings.Contains(err.Error(), `src: key "1" appears twice`) {
		t.Errorf("dup err = %v", err)
	}
}
