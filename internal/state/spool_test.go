package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/record"
)

func spoolRecs(n int, table string) []record.Record {
	out := make([]record.Record, n)
	for i := range out {
		out[i] = record.Record{Tenant: "t", Source: "s", Table: table, ID: record.StableID("x", string(rune('a'+i))),
			Time: time.Unix(int64(1000+i), 0).UTC(), HarvestedAt: time.Unix(5000, 0).UTC(), Raw: json.RawMessage(`{"n":1}`),
			Extra: []record.Field{{Key: "ChangeType", Value: json.RawMessage(`"Added"`)}}}
	}
	return out
}

func TestSpoolRoundTripSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SpoolPut("splunk", "TableA", spoolRecs(3, "TableA"), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.SpoolPut("splunk", "TableB", spoolRecs(2, "TableB"), 0); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	infos, err := s.Spools()
	if err != nil || len(infos) != 1 || infos[0].Batches != 2 || infos[0].Records != 5 || infos[0].Bytes == 0 {
		t.Fatalf("spools after reopen = %+v, %v", infos, err)
	}
	b, ok, err := s.SpoolNext("splunk", 0)
	if err != nil || !ok || b.Table != "TableA" || len(b.Records) != 3 {
		t.Fatalf("first batch = %+v %v %v", b, ok, err)
	}
	want := spoolRecs(3, "TableA")[1]
	got := b.Records[1]
	if got.ID != want.ID || !got.Time.Equal(want.Time) || string(got.Raw) != string(want.Raw) || got.Table != "TableA" || len(got.Extra) != 1 || string(got.Extra[0].Value) != `"Added"` {
		t.Fatalf("record changed in the spool: %+v", got)
	}
	if err := s.SpoolDelete("splunk", b.Seq); err != nil {
		t.Fatal(err)
	}
	b2, ok, err := s.SpoolNext("splunk", 0)
	if err != nil || !ok || b2.Table != "TableB" {
		t.Fatalf("after delete, next = %+v %v %v", b2, ok, err)
	}
	if err := s.SpoolDelete("splunk", b2.Seq); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.SpoolNext("splunk", 0); ok {
		t.Fatal("spool not empty after deleting every batch")
	}
	if infos, _ := s.Spools(); len(infos) != 0 {
		t.Fatalf("empty spool still reported: %+v", infos)
	}
	if _, ok, err := s.SpoolNext("never-used", 0); ok || err != nil {
		t.Fatalf("unknown output: %v %v", ok, err)
	}
}

func TestSpoolLimit(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "state.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.SpoolPut("sentinel", "T", spoolRecs(10, "T"), 2000); err != nil {
		t.Fatal(err)
	}
	err = s.SpoolPut("sentinel", "T", spoolRecs(10, "T"), 2000)
	if !errors.Is(err, ErrSpoolFull) {
		t.Fatalf("want ErrSpoolFull, got %v", err)
	}
	if infos, _ := s.Spools(); infos[0].Batches != 1 {
		t.Fatalf("a refused batch was stored: %+v", infos)
	}
	b, _, _ := s.SpoolNext("sentinel", 0)
	if err := s.SpoolDelete("sentinel", b.Seq); err != nil {
		t.Fatal(err)
	}
	if err := s.SpoolPut("sentinel", "T", spoolRecs(10, "T"), 2000); err != nil {
		t.Fatalf("space freed by a delivered batch was not reused: %v", err)
	}
}

// A spool that once held a large backlog does not keep the file at that
// size: the next open finds it mostly free and compacts it, keeping the
// content.
func TestSparseFileIsCompactedOnOpen(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 40 MB")
	}
	path := filepath.Join(t.TempDir(), "state.db")
	s := open(t, path)
	raw := json.RawMessage(`{"pad":"` + strings.Repeat("x", 4000) + `"}`)
	for b := range 10 {
		recs := make([]record.Record, 1000)
		for i := range recs {
			recs[i] = record.Record{Tenant: tenant, Source: "timeline", Table: "MdeTimeline", ID: fmt.Sprintf("%d-%d", b, i), Time: t0, Raw: raw}
		}
		must(t, s.SpoolPut("splunk", "MdeTimeline", recs, 1<<30))
	}
	must(t, s.Commit(tenant, "timeline", Commit{Cursor: t0}))
	if _, _, err := s.SpoolPurge("splunk"); err != nil {
		t.Fatal(err)
	}
	must(t, s.Close())
	before, _ := os.Stat(path)
	if before.Size() < compactMinBytes {
		t.Fatalf("the file is only %d bytes; the test needs a sparse file of at least %d", before.Size(), compactMinBytes)
	}
	s = open(t, path)
	after, _ := os.Stat(path)
	if after.Size() > 4<<20 {
		t.Errorf("file is %d bytes after reopening (was %d); the free pages should be gone", after.Size(), before.Size())
	}
	if c, ok, err := s.Cursor(tenant, "timeline"); err != nil || !ok || !c.Equal(t0) {
		t.Errorf("cursor after compaction = %v, %v, %v; want it kept", c, ok, err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("compacted file mode %v, want 0600", st.Mode().Perm())
	}
	if _, err := os.Stat(path + ".compact"); !os.IsNotExist(err) {
		t.Errorf("the compaction's temporary file was left behind: %v", err)
	}
}
