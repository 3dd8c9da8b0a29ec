package file

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/sink"
	"github.com/defenderharvester/defenderharvester/internal/sink/sinktest"
)

// readDir decodes every output file in dir; a torn line fails the test.
func readDir(t testing.TB, dir string) []record.Record {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []record.Record
	for _, e := range entries {
		m := fileRe.FindStringSubmatch(e.Name())
		if m == nil {
			t.Fatalf("unexpected file %s in output directory", e.Name())
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		recs, err := sinktest.DecodeLines(m[1], f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		out = append(out, recs...)
	}
	return out
}

func TestConformance(t *testing.T) {
	sinktest.Conformance(t, func(t *testing.T) (sink.Sink, func() []record.Record) {
		dir := filepath.Join(t.TempDir(), "out")
		f, ok := sink.Lookup(Name)
		if !ok {
			t.Fatal("file sink not registered")
		}
		cfg := f.NewConfig().(*Config)
		cfg.SetDir(dir)
		cfg.RotateBytes = 8 << 10 // exercise rotation under concurrency too
		s, err := f.New(sink.Deps{}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return s, func() []record.Record { return readDir(t, dir) }
	})
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func newSink(t *testing.T, cfg Config, now func() time.Time, log *slog.Logger) *Sink {
	t.Helper()
	s, err := New(sink.Deps{Now: now, Logger: log}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	return s
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	slices.Sort(out)
	return out
}

func TestFileNamesAndRotation(t *testing.T) {
	day1 := time.Date(2026, 3, 1, 23, 59, 0, 0, time.UTC)
	day2 := day1.Add(2 * time.Minute)
	recSize := func() int64 { // bytes of one line of the writes below (3-digit Seq)
		r := sinktest.Records("MdeMachineActions", 100, 1)[0]
		b, _ := r.AppendJSON(nil)
		return int64(len(b) + 1)
	}()
	type write struct {
		at time.Time
		n  int
	}
	tests := []struct {
		name   string
		daily  bool
		rotate int64
		writes []write
		want   []string
	}{
		{"one file per table and day", true, 1 << 20,
			[]write{{day1, 3}, {day1, 3}}, []string{"MdeMachineActions-20260301.jsonl"}},
		{"new file when the UTC day changes", true, 1 << 20,
			[]write{{day1, 3}, {day2, 3}}, []string{"MdeMachineActions-20260301.jsonl", "MdeMachineActions-20260302.jsonl"}},
		{"local time zones do not move the day", true, 1 << 20,
			[]write{{day1.In(time.FixedZone("east", 5*3600)), 1}}, []string{"MdeMachineActions-20260301.jsonl"}},
		{"numbered files after the size limit", true, 2 * recSize,
			[]write{{day1, 2}, {day1, 2}, {day1, 1}, {day1, 1}},
			[]string{"MdeMachineActions-20260301.1.jsonl", "MdeMachineActions-20260301.2.jsonl", "MdeMachineActions-20260301.jsonl"}},
		{"a batch larger than the limit is not split", true, recSize,
			[]write{{day1, 5}}, []string{"MdeMachineActions-20260301.jsonl"}},
		{"without daily rotation the file continues over midnight", false, 1 << 20,
			[]write{{day1, 3}, {day2, 3}}, []string{"MdeMachineActions-20260301.jsonl"}},
		{"without daily rotation a size rotation takes the write date", false, 3 * recSize,
			[]write{{day1, 3}, {day2, 3}}, []string{"MdeMachineActions-20260301.jsonl", "MdeMachineActions-20260302.jsonl"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			clk := &clock{}
			s := newSink(t, Config{Dir: dir, RotateBytes: tc.rotate, RotateDaily: tc.daily}, clk.Now, nil)
			var want []record.Record
			for i, w := range tc.writes {
				clk.Set(w.at)
				recs := sinktest.Records("MdeMachineActions", i*100, w.n)
				if err := s.Write(t.Context(), "MdeMachineActions", recs); err != nil {
					t.Fatal(err)
				}
				want = append(want, recs...)
			}
			if err := s.Shutdown(t.Context()); err != nil {
				t.Fatal(err)
			}
			if got := names(t, dir); !slices.Equal(got, tc.want) {
				t.Errorf("files = %v, want %v", got, tc.want)
			}
			sinktest.AssertSame(t, want, readDir(t, dir))
		})
	}
}

func TestRestartAppendsToTheSameFile(t *testing.T) {
	dir := t.TempDir()
	now := func() time.Time { return time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC) }
	first := sinktest.Records("MdeActionCenter", 0, 4)
	second := sinktest.Records("MdeActionCenter", 4, 4)
	for _, batch := range [][]record.Record{first, second} {
		s := newSink(t, *withDir(dir), now, nil)
		if err := s.Write(t.Context(), "MdeActionCenter", batch); err != nil {
			t.Fatal(err)
		}
		if err := s.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if got := names(t, dir); !slices.Equal(got, []string{"MdeActionCenter-20260301.jsonl"}) {
		t.Errorf("files = %v", got)
	}
	sinktest.AssertSame(t, append(first, second...), readDir(t, dir))
}

func withDir(dir string) *Config {
	c := DefaultConfig()
	c.SetDir(dir)
	return c
}

func TestTornTailIsCutOnStart(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    string
	}{
		{"partial last line", "{\"a\":1}\n{\"b\":", "{\"a\":1}\n"},
		{"only a partial line", "{\"b\":", ""},
		{"clean file untouched", "{\"a\":1}\n", "{\"a\":1}\n"},
		{"empty file untouched", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "MdeActionCenter-20260301.jsonl")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			newSink(t, *withDir(dir), time.Now, slog.New(slog.NewTextHandler(&logs, nil)))
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("after Start file = %q, want %q", got, tc.want)
			}
			if warned := strings.Contains(logs.String(), "partial last line"); warned != (tc.content != tc.want) {
				t.Errorf("warning logged = %v; log: %s", warned, logs.String())
			}
		})
	}
}

func TestTornTailIsCutWhenContinuingAFile(t *testing.T) {
	dir := t.TempDir()
	now := func() time.Time { return time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC) }
	s := newSink(t, *withDir(dir), now, nil)
	// A file that appears after Start (e.g. copied back from a backup)
	// with a torn tail is repaired before the first append.
	path := filepath.Join(dir, "MdeActionCenter-20260301.jsonl")
	good := sinktest.Records("MdeActionCenter", 0, 2)
	var content []byte
	for _, r := range good {
		content, _ = r.AppendJSON(content)
		content = append(content, '\n')
	}
	content = append(content, `{"TenantId":"x","Sour`...)
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	more := sinktest.Records("MdeActionCenter", 2, 3)
	if err := s.Write(t.Context(), "MdeActionCenter", more); err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	sinktest.AssertSame(t, append(good, more...), readDir(t, dir))
}

func TestPermissions(t *testing.T) {
	tests := []struct {
		mode string
		want os.FileMode
	}{{"", 0o600}, {"0600", 0o600}, {"0640", 0o640}}
	for _, tc := range tests {
		t.Run(tc.mode, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "nested", "out")
			cfg := withDir(dir)
			cfg.FileMode = tc.mode
			s := newSink(t, *cfg, time.Now, nil)
			if err := s.Write(t.Context(), "T", sinktest.Records("T", 0, 1)); err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o700 {
				t.Errorf("directory mode %v, want 0700", st.Mode().Perm())
			}
			files, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
			if len(files) != 1 {
				t.Fatalf("files: %v", files)
			}
			fst, err := os.Stat(files[0])
			if err != nil {
				t.Fatal(err)
			}
			if fst.Mode().Perm()&^tc.want != 0 {
				t.Errorf("file mode %v, want at most %v", fst.Mode().Perm(), tc.want)
			}
		})
	}
}

func TestRejects(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"empty dir", Config{Dir: " ", RotateBytes: 1}},
		{"zero rotation", Config{Dir: "x", RotateBytes: 0}},
		{"world readable mode", Config{Dir: "x", RotateBytes: 1, FileMode: "0644"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(sink.Deps{}, tc.cfg); err == nil {
				t.Fatal("invalid config accepted")
			}
		})
	}
	dir := t.TempDir()
	s := newSink(t, *withDir(dir), time.Now, nil)
	for _, table := range []string{"../etc/passwd", "", "a/b", ".hidden", "x.y"} {
		if err := s.Write(t.Context(), table, sinktest.Records("T", 0, 1)); err == nil {
			t.Errorf("table %q accepted as a file name", table)
		}
	}
	if got := names(t, dir); len(got) != 0 {
		t.Errorf("files written for rejected tables: %v", got)
	}
	unstarted, _ := New(sink.Deps{}, *withDir(t.TempDir()))
	if err := unstarted.Write(t.Context(), "T", sinktest.Records("T", 0, 1)); err == nil {
		t.Error("Write before Start reported success")
	}
}

// Validate carries every check New makes, so the config loader reports a
// bad value before any work; messages name the key without the section.
func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"defaults", *DefaultConfig(), nil},
		{"group-readable", Config{Dir: "x", RotateBytes: 1, FileMode: "0640"}, nil},
		{"everything wrong", Config{Dir: " ", RotateBytes: -5, FileMode: "0644"}, []string{"dir is empty", "rotate_bytes is -5", `file_mode "0644"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err == nil) != (tc.want == nil) {
				t.Fatalf("Validate() = %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if err != nil && strings.Contains(err.Error(), "outputs.") {
				t.Errorf("error %q names the section; the loader adds it", err)
			}
		})
	}
	c := Config{Dir: "out"}
	c.ResolvePaths(func(p string) string { return filepath.Join("/etc/dh", p) })
	if c.Dir != "/etc/dh/out" {
		t.Errorf("dir resolved to %q", c.Dir)
	}
}

func FuzzLastLineEnd(f *testing.F) {
	for _, s := range []string{"", "\n", "a", "a\nb", "a\n", strings.Repeat("x", 70000) + "\n" + strings.Repeat("y", 70000)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := lastLineEnd(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		want := int64(bytes.LastIndexByte(b, '\n') + 1)
		if got != want {
			t.Fatalf("lastLineEnd = %d, want %d", got, want)
		}
		// Asking for more than the reader holds must fail, not invent data.
		if _, err := lastLineEnd(bytes.NewReader(b), int64(len(b))+1); err == nil {
			t.Fatal("short read not reported")
		}
	})
}

func BenchmarkWrite1KBRecords(b *testing.B) {
	dir := b.TempDir()
	s, err := New(sink.Deps{}, Config{Dir: dir, RotateBytes: 1 << 30, RotateDaily: true})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Start(b.Context()); err != nil {
		b.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	recs := sinktest.Records("MdeTimeline", 0, 500)
	pad := strings.Repeat("p", 900)
	for i := range recs {
		recs[i].Raw = []byte(`{"Seq":` + string(rune('0'+i%10)) + `,"Pad":"` + pad + `"}`)
	}
	b.ReportAllocs()
	b.SetBytes(int64(500 * 1024))
	for b.Loop() {
		if err := s.Write(b.Context(), "MdeTimeline", recs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkWriteTimeline writes pipeline-sized batches (4 MiB) of ~1 KB
// timeline events, one fsync per batch.
//
//	go test -run x -bench WriteTimeline -benchmem ./internal/sink/file/
func BenchmarkWriteTimeline(b *testing.B) {
	s, err := New(sink.Deps{}, Config{Dir: b.TempDir(), RotateBytes: 1 << 30, RotateDaily: true})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Start(b.Context()); err != nil {
		b.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	recs := sinktest.TimelineRecords(sinktest.TimelineBatch, 1, 10*time.Minute)
	var size int
	for i := range recs {
		line, _ := recs[i].AppendJSON(nil)
		size += len(line) + 1
	}
	b.ReportAllocs()
	b.SetBytes(int64(size))
	cpu0 := sinktest.CPUTime()
	for b.Loop() {
		if err := s.Write(b.Context(), "MdeTimeline", recs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(sinktest.CPUTime()-cpu0)/float64(max(int64(b.N*len(recs)), 1)), "cpu-ns/event")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "fsyncs/s")
}
