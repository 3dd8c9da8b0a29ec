package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

const tenant = "00000000-0000-0000-0000-00000000000a"

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func open(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path, Options{LockTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestOpenModeAndLock(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "state.db")
	s := open(t, path)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("new state file mode %v, want 0600", st.Mode().Perm())
	}

	_, err = Open(path, Options{LockTimeout: 20 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "in use by another defenderharvester process") || !strings.Contains(err.Error(), path) {
		t.Fatalf("second Open: %v, want a clear in-use error naming the file", err)
	}
	if !errors.Is(err, ErrInUse) {
		t.Errorf("second Open: %v does not match ErrInUse", err)
	}
	s.Close()

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	s2, err := Open(path, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("reopen after the lock was released: %v", err)
	}
	s2.Close()
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("loose mode not repaired: %v", st.Mode().Perm())
	}
	if !strings.Contains(logs.String(), "0600") {
		t.Errorf("no warning about the repaired mode; log: %s", logs.String())
	}
}

func TestOpenRejects(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	os.WriteFile(garbage, bytes.Repeat([]byte("not a database "), 1000), 0o600)

	newer := filepath.Join(dir, "newer.db")
	s := open(t, newer)
	s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyVersion, []byte{0, 0, 0, 0, 0, 0, 0, 99})
	})
	s.Close()

	tests := []struct{ name, path, want string }{
		{"empty path", "", "state_file"},
		{"directory", dir, "not a regular file"},
		{"not a bbolt file", garbage, "move it away"},
		{"newer format", newer, "newer defenderharvester"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(tc.path, Options{LockTimeout: 20 * time.Millisecond})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestCursorOnlyMovesForwardAndPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := open(t, path)
	if _, ok, err := s.Cursor(tenant, "actioncenter"); ok || err != nil {
		t.Fatalf("fresh store has a cursor: ok=%v err=%v", ok, err)
	}
	steps := []struct {
		commit, want time.Time
	}{
		{t0, t0},
		{t0.Add(time.Hour), t0.Add(time.Hour)},
		{t0.Add(-time.Hour), t0.Add(time.Hour)}, // backfill must not move it back
		{time.Time{}, t0.Add(time.Hour)},        // zero leaves it alone
	}
	for i, st := range steps {
		if err := s.Commit(tenant, "actioncenter", Commit{Cursor: st.commit}); err != nil {
			t.Fatal(err)
		}
		got, ok, err := s.Cursor(tenant, "actioncenter")
		if err != nil || !ok || !got.Equal(st.want) {
			t.Errorf("step %d: cursor %v ok=%v err=%v, want %v", i, got, ok, err, st.want)
		}
	}
	// Other tenants and sources are separate.
	if _, ok, _ := s.Cursor("other", "actioncenter"); ok {
		t.Error("cursor leaked to another tenant")
	}
	s.Close()
	s = open(t, path)
	if got, _, _ := s.Cursor(tenant, "actioncenter"); !got.Equal(t0.Add(time.Hour)) {
		t.Errorf("cursor after reopen %v", got)
	}
}

func TestSeenIDsAndPruning(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "state.db"))
	err := s.Commit(tenant, "timeline", Commit{Seen: []SeenID{
		{"old", t0.Add(-72 * time.Hour)},
		{"mid", t0.Add(-30 * time.Hour)},
		{"new", t0},
		{"moved", t0.Add(-72 * time.Hour)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	// "moved" was seen again with a recent time: it must survive pruning.
	if err := s.Commit(tenant, "timeline", Commit{Seen: []SeenID{{"moved", t0}}}); err != nil {
		t.Fatal(err)
	}
	all := []string{"old", "mid", "new", "moved", "never"}
	got, err := s.SeenAmong(tenant, "timeline", all)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got["never"] {
		t.Errorf("seen = %v", got)
	}
	// Only covered time is pruned: "old" lies in a covered range.
	if err := s.Commit(tenant, "timeline", Commit{Cursor: t0, Cover: Range{t0.Add(-100 * time.Hour), t0}, PruneBefore: t0.Add(-48 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.SeenAmong(tenant, "timeline", all)
	want := map[string]bool{"mid": true, "new": true, "moved": true}
	if len(got) != len(want) {
		t.Errorf("after pruning seen = %v, want %v", got, want)
	}
	for id := range want {
		if !got[id] {
			t.Errorf("after pruning %q was forgotten", id)
		}
	}
	infos, err := s.Sources()
	if err != nil || len(infos) != 1 || infos[0].SeenIDs != 3 || infos[0].Source != "timeline" || !infos[0].Cursor.Equal(t0) {
		t.Errorf("Sources() = %+v, %v", infos, err)
	}
}

// An id of unfinished work (time in no covered range) is kept however
// old, so an interrupted window that is read again drops what it already
// delivered; an id that no run will read again is not even stored.
func TestSeenIDsKeptOnlyWhileReadAgain(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "state.db"))
	h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
	// [h(-10), h(-5)) is covered; h(-7) inside it, h(-3) after it.
	must(t, s.Commit(tenant, "tl", Commit{Cover: Range{h(-10), h(-5)}}))
	must(t, s.Commit(tenant, "tl", Commit{Cursor: h(0), PruneBefore: h(-2), Seen: []SeenID{
		{"covered-old", h(-7)}, {"unfinished", h(-3)}, {"band", h(-1)},
	}}))
	got, err := s.SeenAmong(tenant, "tl", []string{"covered-old", "unfinished", "band"})
	must(t, err)
	if got["covered-old"] || !got["unfinished"] || !got["band"] {
		t.Fatalf("seen = %v, want unfinished and band only", got)
	}
	// The unfinished range completes: its id goes at the next prune.
	must(t, s.Commit(tenant, "tl", Commit{Cover: Range{h(-5), h(0)}, PruneBefore: h(-2)}))
	got, _ = s.SeenAmong(tenant, "tl", []string{"unfinished", "band"})
	if got["unfinished"] || !got["band"] {
		t.Fatalf("after the range completed, seen = %v, want band only", got)
	}
}

// A backfill of many records through the state file: the file ends the
// size of the re-read band, not of the backfill (issue 9: flat memory).
func TestBackfillKeepsTheFileSmall(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := open(t, path)
	batches, per := 100, 2000 // 200,000 ids over 100 hours
	if raceEnabled {
		per = 400
	}
	start := t0.Add(-time.Duration(batches) * time.Hour)
	for b := range batches {
		from := start.Add(time.Duration(b) * time.Hour)
		seen := make([]SeenID, per)
		for i := range seen {
			seen[i] = SeenID{ID: fmt.Sprintf("timeline-event-%08d-%08d-aaaaaaaaaaaaaaaa", b, i), Time: from.Add(time.Duration(i) * time.Hour / time.Duration(per))}
		}
		to := from.Add(time.Hour)
		must(t, s.CommitAll(tenant, []KeyedCommit{
			{Source: "timeline/dev", Commit: Commit{Seen: seen, Cursor: to, Cover: Range{start, to}, PruneBefore: to.Add(-2 * time.Hour)}},
		}))
	}
	infos, err := s.Sources()
	must(t, err)
	if len(infos) != 1 || infos[0].SeenIDs > 2*per {
		t.Fatalf("remembered ids = %+v, want at most the last two hours (%d)", infos, 2*per)
	}
	st, err := os.Stat(path)
	must(t, err)
	// 200,000 ids would take ~30 MB; the band of 4,000 well under 4 MB.
	if st.Size() > 4<<20 {
		t.Errorf("state file is %d bytes after a backfill of %d ids; it should hold only the re-read band", st.Size(), batches*per)
	}
}

func TestSnapshots(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := open(t, path)
	if _, _, ok, err := s.Snapshot(tenant, "customdetections"); ok || err != nil {
		t.Fatalf("fresh store has a snapshot: %v %v", ok, err)
	}
	first := map[string]SnapshotEntry{
		"1": {Hash: "h1", Raw: json.RawMessage(`{"Id":1}`)},
		"2": {Hash: "h2", Raw: json.RawMessage(`{"Id":2}`)},
	}
	if err := s.ReplaceSnapshot(tenant, "customdetections", t0, first); err != nil {
		t.Fatal(err)
	}
	second := map[string]SnapshotEntry{"3": {Hash: "h3", Raw: json.RawMessage(`[3]`)}}
	if err := s.ReplaceSnapshot(tenant, "customdetections", t0.Add(time.Hour), second); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, path)
	got, at, ok, err := s.Snapshot(tenant, "customdetections")
	if err != nil || !ok || !at.Equal(t0.Add(time.Hour)) {
		t.Fatalf("Snapshot: ok=%v at=%v err=%v", ok, at, err)
	}
	if len(got) != 1 || got["3"].Hash != "h3" || string(got["3"].Raw) != `[3]` {
		t.Errorf("snapshot not replaced: %+v", got)
	}
	// An empty snapshot is still a snapshot: the next items are Added, not Initial.
	if err := s.ReplaceSnapshot(tenant, "customdetections", t0, nil); err != nil {
		t.Fatal(err)
	}
	got, _, ok, err = s.Snapshot(tenant, "customdetections")
	if err != nil || !ok || len(got) != 0 {
		t.Errorf("empty snapshot: %v %v %v", got, ok, err)
	}
	if err := s.ReplaceSnapshot(tenant, "customdetections", t0, map[string]SnapshotEntry{"": {Raw: json.RawMessage(`1`)}}); err == nil {
		t.Error("empty snapshot key accepted")
	}
}

// corruptions put bad bytes where the store keeps its values.
var corruptions = []struct {
	name  string
	apply func(src *bolt.Bucket) error
}{
	{"cursor", func(b *bolt.Bucket) error { return b.Put(keyCursor, []byte("xyz")) }},
	{"snapshot time", func(b *bolt.Bucket) error { return b.Put(keySnapAt, []byte{1}) }},
	{"snapshot entry", func(b *bolt.Bucket) error {
		b.Put(keySnapAt, encTime(t0))
		sb, _ := b.CreateBucketIfNotExists(bucketSnap)
		return sb.Put([]byte("k"), []byte{0xff, 0xff, 0xff})
	}},
	{"seen list is a value", func(b *bolt.Bucket) error {
		b.DeleteBucket(bucketSeen)
		return b.Put(bucketSeen, []byte("x"))
	}},
	{"seen time", func(b *bolt.Bucket) error {
		sb, _ := b.CreateBucketIfNotExists(bucketSeen)
		return sb.Put([]byte("a"), []byte{1, 2})
	}},
}

func TestCorruptionNamesTheSource(t *testing.T) {
	for _, tc := range corruptions {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t, filepath.Join(t.TempDir(), "state.db"))
			if err := s.Commit(tenant, "machineactions", Commit{Cursor: t0}); err != nil {
				t.Fatal(err)
			}
			if err := s.db.Update(func(tx *bolt.Tx) error {
				return tc.apply(tx.Bucket(bucketSources).Bucket(sourceKey(tenant, "machineactions")))
			}); err != nil {
				t.Fatal(err)
			}
			var failures int
			for _, err := range exercise(s) {
				if err == nil {
					continue
				}
				failures++
				if !strings.Contains(err.Error(), "machineactions") {
					t.Errorf("error does not name the source: %v", err)
				}
			}
			if failures == 0 {
				t.Error("corruption went unnoticed by every reader")
			}
		})
	}
}

// exercise calls every operation on source "machineactions".
func exercise(s *Store) []error {
	_, _, err1 := s.Cursor(tenant, "machineactions")
	_, err2 := s.SeenAmong(tenant, "machineactions", []string{"a", "b"})
	_, _, _, err3 := s.Snapshot(tenant, "machineactions")
	err4 := s.Commit(tenant, "machineactions", Commit{Seen: []SeenID{{"a", t0}}, Cursor: t0.Add(time.Hour), PruneBefore: t0})
	_, err5 := s.Sources()
	if err5 != nil && !errors.Is(err5, ErrCorrupt) {
		err5 = errors.New("machineactions: " + err5.Error())
	}
	return []error{err1, err2, err3, err4, err5}
}

func FuzzCorruptValues(f *testing.F) {
	f.Add([]byte("cursor"), []byte{1, 2, 3})
	f.Add([]byte("snapAt"), encTime(t0))
	f.Add([]byte("snap"), []byte{})
	f.Add([]byte("seen"), []byte{0})
	f.Add([]byte("seenByTime"), []byte("12345678"))
	path := filepath.Join(f.TempDir(), "state.db")
	s, err := Open(path, Options{})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	f.Fuzz(func(t *testing.T, key, value []byte) {
		if len(key) == 0 || len(key) > 512 {
			return
		}
		err := s.db.Update(func(tx *bolt.Tx) error {
			root := tx.Bucket(bucketSources)
			root.DeleteBucket(sourceKey(tenant, "machineactions"))
			b, err := root.CreateBucket(sourceKey(tenant, "machineactions"))
			if err != nil {
				return err
			}
			for _, sub := range [][]byte{bucketSeen, bucketByTime, bucketSnap} {
				sb, _ := b.CreateBucket(sub)
				sb.Put([]byte("k"), value)
				if len(value) > 0 {
					sb.Put(value, value) // odd keys too, e.g. short time-index keys
				}
			}
			if b.Bucket(key) != nil {
				b.DeleteBucket(key)
			}
			if len(value) == 0 {
				value = []byte{0}
			}
			return b.Put(key, value)
		})
		if err != nil {
			return // bbolt refused the setup itself
		}
		for _, err := range exercise(s) {
			if err != nil && !strings.Contains(err.Error(), "machineactions") {
				t.Fatalf("error does not name the source: %v", err)
			}
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
