package state

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"errors"
)

func h(n int) time.Time {
	return time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Hour)
}

func TestCoveredRangesMerge(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "s.db"))
	steps := []struct {
		add  Range
		want []Range
	}{
		{Range{h(10), h(12)}, []Range{{h(10), h(12)}}},
		{Range{h(14), h(16)}, []Range{{h(10), h(12)}, {h(14), h(16)}}},
		{Range{h(12), h(13)}, []Range{{h(10), h(13)}, {h(14), h(16)}}},             // touching joins
		{Range{h(1), h(2)}, []Range{{h(1), h(2)}, {h(10), h(13)}, {h(14), h(16)}}}, // before all
		{Range{h(11), h(15)}, []Range{{h(1), h(2)}, {h(10), h(16)}}},               // bridges two
		{Range{h(20), h(21)}, []Range{{h(1), h(2)}, {h(10), h(16)}, {h(20), h(21)}}},
		{Range{h(0), h(30)}, []Range{{h(0), h(30)}}}, // swallows everything
		{Range{h(5), h(5)}, []Range{{h(0), h(30)}}},  // empty: no change
	}
	for i, st := range steps {
		if err := s.Commit("t", "src", Commit{Cover: st.add}); err != nil {
			t.Fatal(err)
		}
		p, err := s.Progress("t", "src")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(p.Covered, st.want) {
			t.Fatalf("step %d: covered %v, want %v", i, p.Covered, st.want)
		}
	}
}

func TestUncovered(t *testing.T) {
	cov := []Range{{h(2), h(4)}, {h(6), h(8)}}
	cases := []struct {
		r    Range
		want []Range
	}{
		{Range{h(0), h(10)}, []Range{{h(0), h(2)}, {h(4), h(6)}, {h(8), h(10)}}},
		{Range{h(2), h(4)}, nil},
		{Range{h(3), h(7)}, []Range{{h(4), h(6)}}},
		{Range{h(9), h(10)}, []Range{{h(9), h(10)}}},
		{Range{h(0), h(1)}, []Range{{h(0), h(1)}}},
	}
	for _, c := range cases {
		if got := Uncovered(c.r, cov); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Uncovered(%v) = %v, want %v", c.r, got, c.want)
		}
	}
}

func TestGoalAndFailures(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s := open(t, path)
	if err := s.SetGoal("t", "src", h(10)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetGoal("t", "src", h(20)); err != nil { // later: the earlier goal stays
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		n, err := s.RecordFailure("t", "src/dev1", strings.Repeat("x", 2000), h(i))
		if err != nil || n != i {
			t.Fatalf("failure %d: n=%d err=%v", i, n, err)
		}
	}
	s.Close()
	s = open(t, path) // survives reopening
	p, _ := s.Progress("t", "src")
	if !p.Goal.Equal(h(10)) {
		t.Fatalf("goal %v, want %v", p.Goal, h(10))
	}
	d, _ := s.Progress("t", "src/dev1")
	if d.Failures != 3 || !d.RetryAt.Equal(h(3)) || len(d.LastError) > maxLastError+4 {
		t.Fatalf("failures %+v", d)
	}
	if err := s.ClearFailures("t", "src/dev1"); err != nil {
		t.Fatal(err)
	}
	if d, _ := s.Progress("t", "src/dev1"); d.Failures != 0 || !d.RetryAt.IsZero() || d.LastError != "" {
		t.Fatalf("after clearing: %+v", d)
	}
}

func TestEmptyStateFileIsRefusedNotReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path, Options{})
	if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "0 bytes") || !strings.Contains(err.Error(), "--reset-state") {
		t.Fatalf("Open of a 0-byte file: %v", err)
	}
	if st, _ := os.Stat(path); st.Size() != 0 {
		t.Fatal("the empty file was formatted as a new store")
	}
	moved, ok, err := Quarantine(path, h(0))
	if err != nil || !ok {
		t.Fatalf("Quarantine: %v %v", ok, err)
	}
	if _, err := os.Stat(moved); err != nil {
		t.Fatalf("moved file: %v", err)
	}
	s := open(t, path) // a new store
	s.Close()
}

func TestQuarantineLeavesAHealthyFileAlone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s := open(t, path)
	if err := s.Commit("t", "src", Commit{Cursor: h(1)}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, ok, err := Quarantine(path, h(0)); ok || err != nil {
		t.Fatalf("healthy file quarantined: %v %v", ok, err)
	}
	s = open(t, path)
	if c, ok, _ := s.Cursor("t", "src"); !ok || !c.Equal(h(1)) {
		t.Fatal("state lost")
	}
}

// A page overwritten with garbage (a bad disk block, a torn copy) must give
// a one-line damaged-file error on every operation, never a panic.
func TestDamagedPageIsAnErrorNotAPanic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s := open(t, path)
	var seen []SeenID
	for i := 0; i < 3000; i++ {
		seen = append(seen, SeenID{ID: strings.Repeat("i", 40) + time.Duration(i).String(), Time: h(i % 48)})
	}
	if err := s.Commit("t", "src", Commit{Seen: seen, Cursor: h(50), Cover: Range{h(0), h(50)}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	page := int64(os.Getpagesize())
	junk := []byte(strings.Repeat("\xde\xad\xbe\xef", int(page/4)))
	for off := 2 * page; off < st.Size(); off += page { // keep the two meta pages
		if _, err := f.WriteAt(junk, off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()

	s2, err := Open(path, Options{LockTimeout: 50 * time.Millisecond})
	if err != nil {
		if !errors.Is(err, ErrDamaged) {
			t.Fatalf("Open: %v, want a damaged-file error", err)
		}
	} else {
		defer s2.Close()
		calls := map[string]func() error{
			"Progress":  func() error { _, err := s2.Progress("t", "src"); return err },
			"SeenAmong": func() error { _, err := s2.SeenAmong("t", "src", []string{"x"}); return err },
			"Sources":   func() error { _, err := s2.Sources(); return err },
			"Commit":    func() error { return s2.Commit("t", "src", Commit{Cursor: h(60)}) },
			"Check":     s2.Check,
		}
		for name, call := range calls {
			err := call()
			t.Logf("%s: %v", name, err)
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("%s on a damaged file: %v, want a damaged/corrupt error", name, err)
			}
			if err != nil && strings.Contains(err.Error(), "goroutine") {
				t.Errorf("%s: error carries a stack dump", name)
			}
		}
		if err := s2.Close(); err != nil {
			t.Logf("close: %v", err)
		}
	}
	moved, ok, err := Quarantine(path, h(0))
	if err != nil || !ok || moved == "" {
		t.Fatalf("Quarantine of a damaged file: %q %v %v", moved, ok, err)
	}
}

// Whichever single page is damaged, every operation either works or says
// the file is damaged — never a panic, never a silent fresh start.
func TestAnySingleDamagedPage(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	s := open(t, good)
	var seen []SeenID
	for i := 0; i < 2000; i++ {
		seen = append(seen, SeenID{ID: strings.Repeat("k", 30) + time.Duration(i).String(), Time: h(i % 48)})
	}
	if err := s.Commit("t", "src", Commit{Seen: seen, Cursor: h(50), Cover: Range{h(0), h(50)}}); err != nil {
		t.Fatal(err)
	}
	if err := s.ReplaceSnapshot("t", "snap", h(1), map[string]SnapshotEntry{"a": {Hash: "x", Raw: []byte(`{"a":1}`)}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	orig, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	page := os.Getpagesize()
	damagedSeen := 0
	for p := 2; p*page < len(orig); p++ {
		b := append([]byte(nil), orig...)
		for i := p * page; i < (p+1)*page && i < len(b); i++ {
			b[i] ^= 0xA5
		}
		path := filepath.Join(dir, "bad.db")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := Open(path, Options{LockTimeout: 50 * time.Millisecond})
		if err != nil {
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("page %d: Open: %v", p, err)
			}
			// Opened again in the same process (serve retries a
			// tenant): still "damaged", never "in use" because of the
			// lock a panicking open left behind.
			if _, err := Open(path, Options{LockTimeout: 50 * time.Millisecond}); !errors.Is(err, ErrDamaged) {
				t.Fatalf("page %d: second Open: %v, want a damaged-file error again", p, err)
			}
			damagedSeen++
			os.Remove(path)
			continue
		}
		for _, call := range []func() error{
			func() error { _, err := st.Progress("t", "src"); return err },
			func() error { _, err := st.SeenAmong("t", "src", []string{seen[7].ID}); return err },
			func() error { _, _, _, err := st.Snapshot("t", "snap"); return err },
			func() error { _, err := st.Sources(); return err },
			func() error { return st.Commit("t", "src", Commit{Seen: seen[:50], Cursor: h(60)}) },
		} {
			if err := call(); err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("page %d: %v, want a damaged/corrupt error", p, err)
				}
				damagedSeen++
			}
		}
		st.Close()
		os.Remove(path)
	}
	if damagedSeen == 0 {
		t.Fatal("no damaged page was ever noticed: the test corrupts nothing that is read")
	}
}
