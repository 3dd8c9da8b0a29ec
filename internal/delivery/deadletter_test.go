package delivery

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/record"
)

func TestFileDeadLetter(t *testing.T) {
	now := time.Date(2026, 5, 4, 23, 30, 0, 0, time.FixedZone("x", -2*3600)) // 2026-05-05 in UTC
	tests := []struct {
		name    string
		sink    string
		rec     record.Record
		reason  error
		wantRaw bool // the payload was not JSON and is kept as text
	}{
		{"valid record", "sentinel", recs(1, 10)[0], errors.New("400 Invalid data format"), false},
		{"unencodable record kept as text", "sentinel", record.Record{ID: "bad", Raw: json.RawMessage(`{"a":`)}, errors.New("cannot be encoded"), true},
	}
	dir := filepath.Join(t.TempDir(), "dl")
	dl := NewFileDeadLetter(dir, func() time.Time { return now })
	for _, tc := range tests {
		if err := dl.Put(context.Background(), tc.sink, "MdeActions", &tc.rec, tc.reason); err != nil {
			t.Fatalf("%s: Put: %v", tc.name, err)
		}
	}
	name := filepath.Join(dir, "sentinel-deadletter-20260505.jsonl")
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatalf("dead-letter file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", fi.Mode().Perm())
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	i := 0
	for ; sc.Scan(); i++ {
		if i >= len(tests) {
			t.Fatalf("extra line %s", sc.Text())
		}
		tc := tests[i]
		var line struct {
			Sink, Table, Reason, DeadLetteredAt string
			Record                              map[string]any
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("line %d is not JSON: %v: %s", i, err, sc.Text())
		}
		if line.Sink != tc.sink || line.Table != "MdeActions" || line.Reason != tc.reason.Error() ||
			line.DeadLetteredAt != "2026-05-05T01:30:00Z" || line.Record["RecordId"] != tc.rec.ID {
			t.Errorf("%s: line %+v", tc.name, line)
		}
		if _, ok := line.Record["RawText"]; ok != tc.wantRaw {
			t.Errorf("%s: RawText present %v, want %v", tc.name, ok, tc.wantRaw)
		}
	}
	if i != len(tests) {
		t.Errorf("%d lines, want %d", i, len(tests))
	}
}

// A sink name cannot steer the file out of the dead-letter directory.
func TestFileDeadLetterSanitisesName(t *testing.T) {
	dir := t.TempDir()
	dl := NewFileDeadLetter(dir, nil)
	r := recs(1, 1)[0]
	if err := dl.Put(context.Background(), "../../etc/x", "T", &r, errors.New("r")); err != nil {
		t.Fatal(err)
	}
	m, _ := filepath.Glob(filepath.Join(dir, "*-deadletter-*.jsonl"))
	if len(m) != 1 {
		t.Fatalf("files in dir: %v", m)
	}
}

func TestFileDeadLetterUnwritableDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	dl := NewFileDeadLetter(filepath.Join(file, "sub"), nil)
	r := recs(1, 1)[0]
	if err := dl.Put(context.Background(), "s", "T", &r, errors.New("r")); err == nil {
		t.Fatal("Put into a path below a regular file succeeded")
	}
}

// TestDeadLetterLineRebuildsTheSameLine: a dead-lettered record read
// back and encoded again gives the very line that was dead-lettered, so
// a retry sends what the first attempt sent.
func TestDeadLetterLineRebuildsTheSameLine(t *testing.T) {
	at := time.Date(2026, 5, 5, 1, 2, 3, 456789000, time.UTC)
	base := record.Record{Tenant: "t1", Source: "actioncenter", ID: "id-1", Time: at, HarvestedAt: at.Add(time.Minute)}
	cases := []struct {
		name string
		raw  string
		ext  []record.Field
	}{
		{"object with extras", `{"a":1.50,"b":"x<y>&z","c":{"d":[1,2]},"e\u003c":null}`, []record.Field{{Key: "ChangeType", Value: json.RawMessage(`"Added"`)}, {Key: "SnapshotKey", Value: json.RawMessage(`"k"`)}}},
		{"empty object", `{}`, nil},
		{"not an object", `[1,2,3]`, nil},
		{"multi-line payload", "{\n  \"a\": 1\n}", nil},
	}
	dir := t.TempDir()
	dl := NewFileDeadLetter(dir, func() time.Time { return at })
	for _, tc := range cases {
		r := base
		r.Raw, r.Extra = json.RawMessage(tc.raw), tc.ext
		if err := dl.Put(context.Background(), "splunk-east", "MdeActions", &r, errors.New("refused")); err != nil {
			t.Fatal(err)
		}
	}
	bad := record.Record{ID: "bad", Raw: json.RawMessage(`{"a":`)}
	if err := dl.Put(context.Background(), "splunk-east", "MdeActions", &bad, errors.New("cannot be encoded")); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(DeadLetterGlob(dir, "splunk-east"))
	if len(files) != 1 {
		t.Fatalf("files %v", files)
	}
	f, err := os.Open(files[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for i := 0; sc.Scan(); i++ {
		line, err := ParseDeadLetterLine(sc.Bytes())
		if err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		got, err := line.Rebuild()
		if i == len(cases) {
			if !errors.Is(err, ErrNotResendable) {
				t.Errorf("the text form of an unencodable record was rebuilt: %+v, %v", got, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", cases[i].name, err)
		}
		if got.Tenant != "t1" || got.Source != "actioncenter" || got.ID != "id-1" || got.Table != "MdeActions" ||
			!got.Time.Equal(at) || !got.HarvestedAt.Equal(at.Add(time.Minute)) {
			t.Errorf("%s: standard fields %+v", cases[i].name, got)
		}
		again, err := got.AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		if string(again) != string(line.Record) {
			t.Errorf("%s: rebuilt line differs\n got %s\nwant %s", cases[i].name, again, line.Record)
		}
	}
	if _, err := ParseDeadLetterLine([]byte(`{"Sink":"x"}`)); err == nil {
		t.Error("a line without Table and Record was accepted")
	}
}
