package state

import (
	"encoding/json"
	"errors"
	"path/filepath"
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
