package state

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func TestSourcesListsEverySourceAndPart(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "s.db"))
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Commit(tenant, "actioncenter", Commit{Seen: []SeenID{{"a", h(1)}, {"b", h(2)}}, Cursor: h(5), Cover: Range{h(0), h(5)}}))
	must(s.SetGoal(tenant, "actioncenter", h(-24)))
	if _, err := s.RecordOutcome(tenant, "actioncenter", h(6), "boom"); err != nil {
		t.Fatal(err)
	}
	must(s.Commit(tenant, "timeline/dev1", Commit{Cursor: h(3), Cover: Range{h(1), h(3)}}))
	if _, err := s.RecordFailure(tenant, "timeline/dev2", "device gone", h(9)); err != nil {
		t.Fatal(err)
	}
	must(s.ReplaceSnapshot(tenant, "suppressionrules", h(4), map[string]SnapshotEntry{"r1": {Hash: "x", Raw: json.RawMessage(`{}`)}}))
	if _, err := s.RecordOutcome(tenant, "suppressionrules", h(4), ""); err != nil {
		t.Fatal(err)
	}

	got, err := s.Sources()
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, st := range got {
		keys = append(keys, st.Source)
	}
	if want := []string{"actioncenter", "suppressionrules", "timeline/dev1", "timeline/dev2"}; !reflect.DeepEqual(keys, want) {
		t.Fatalf("Sources() keys %v, want %v", keys, want)
	}
	ac := got[0]
	if ac.Tenant != tenant || !ac.Cursor.Equal(h(5)) || !ac.HasCursor || ac.SeenIDs != 2 || len(ac.Covered) != 1 ||
		!ac.Goal.Equal(h(-24)) || ac.Failures != 1 || ac.LastError != "boom" || !ac.LastRun.Equal(h(6)) || !ac.LastSuccess.IsZero() {
		t.Errorf("actioncenter = %+v", ac)
	}
	if sr := got[1]; sr.SnapshotItems != 1 || !sr.SnapshotAt.Equal(h(4)) || !sr.LastSuccess.Equal(h(4)) || sr.Failures != 0 {
		t.Errorf("suppressionrules = %+v", sr)
	}
	if d2 := got[3]; d2.Name() != "timeline" || d2.Part() != "dev2" || d2.Failures != 1 || !d2.RetryAt.Equal(h(9)) || d2.HasCursor {
		t.Errorf("timeline/dev2 = %+v", d2)
	}
	// A success clears the failures and keeps both times.
	if _, err := s.RecordOutcome(tenant, "actioncenter", h(7), ""); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Progress(tenant, "actioncenter"); p.Failures != 0 || p.LastError != "" || !p.LastRun.Equal(h(7)) || !p.LastSuccess.Equal(h(7)) {
		t.Errorf("after a success: %+v", p)
	}
}

func TestResetSourceRemovesTheSourceAndItsPartsOnly(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "s.db"))
	for _, key := range []string{"timeline", "timeline/dev1", "timeline/dev2", "timeline-b", "timeline.c", "timelines", "actioncenter"} {
		if err := s.Commit(tenant, key, Commit{Cursor: h(3), Seen: []SeenID{{"x", h(2)}}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Commit("other-tenant", "timeline/dev1", Commit{Cursor: h(3)}); err != nil {
		t.Fatal(err)
	}
	if err := s.SpoolPut("files", "T", spoolRecs(2, "T"), 0); err != nil {
		t.Fatal(err)
	}
	removed, err := s.ResetSource(tenant, "timeline")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"timeline", "timeline/dev1", "timeline/dev2"}; !reflect.DeepEqual(removed, want) {
		t.Fatalf("removed %v, want %v", removed, want)
	}
	left, _ := s.Sources()
	var keys []string
	for _, st := range left {
		keys = append(keys, st.Tenant+":"+st.Source)
	}
	want := []string{tenant + ":actioncenter", tenant + ":timeline-b", tenant + ":timeline.c", tenant + ":timelines", "other-tenant:timeline/dev1"}
	if !reflect.DeepEqual(keys, want) {
		t.Fatalf("left %v, want %v", keys, want)
	}
	if _, ok, _ := s.Cursor(tenant, "timeline/dev1"); ok {
		t.Error("a part's cursor survived the reset")
	}
	if infos, _ := s.Spools(); len(infos) != 1 || infos[0].Records != 2 {
		t.Errorf("the reset touched the spool: %+v", infos)
	}
	// Nothing stored: nothing removed, no error; the source works again.
	if removed, err := s.ResetSource(tenant, "timeline"); err != nil || len(removed) != 0 {
		t.Errorf("second reset: %v, %v", removed, err)
	}
	if err := s.Commit(tenant, "timeline/dev1", Commit{Cursor: h(1)}); err != nil {
		t.Fatal(err)
	}
	if c, ok, _ := s.Cursor(tenant, "timeline/dev1"); !ok || !c.Equal(h(1)) {
		t.Errorf("cursor after reset and commit: %v %v (it must start over)", c, ok)
	}
	if _, err := s.ResetSource(tenant, ""); err == nil {
		t.Error("an empty source name was accepted")
	}
}

func TestSpoolPurge(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "s.db"))
	if err := s.SpoolPut("splunk", "A", spoolRecs(3, "A"), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.SpoolPut("splunk", "B", spoolRecs(2, "B"), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.SpoolPut("files", "A", spoolRecs(1, "A"), 0); err != nil {
		t.Fatal(err)
	}
	recs, batches, err := s.SpoolPurge("splunk")
	if err != nil || recs != 5 || batches != 2 {
		t.Fatalf("purge = %d records, %d batches, %v", recs, batches, err)
	}
	infos, _ := s.Spools()
	if len(infos) != 1 || infos[0].Output != "files" {
		t.Fatalf("after purge: %+v", infos)
	}
	if _, ok, err := s.SpoolNext("splunk", 0); ok || err != nil {
		t.Fatalf("purged spool still has a batch: %v %v", ok, err)
	}
	// A purged output spools again from scratch (its byte count too).
	if err := s.SpoolPut("splunk", "A", spoolRecs(1, "A"), 0); err != nil {
		t.Fatal(err)
	}
	if recs, _, err := s.SpoolPurge("nothing-here"); recs != 0 || err != nil {
		t.Errorf("purging an empty spool: %d %v", recs, err)
	}
}

func TestToolsOnACorruptEntrySayCorrupt(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "s.db"))
	if err := s.Commit(tenant, "src", Commit{Cursor: h(1)}); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSources).Bucket(sourceKey(tenant, "src")).Put(keyLastRun, []byte("x"))
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sources(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Sources on a corrupt last-run time: %v", err)
	}
	if removed, err := s.ResetSource(tenant, "src"); err != nil || len(removed) != 1 {
		t.Errorf("a corrupt source cannot be reset: %v %v", removed, err)
	}
}
