package srctest

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/source"
)

// CheckSnapshot runs s once. With wantErr or wantIs set, the run must fail
// that way (wantErr a substring, wantIs an errors.Is target) and emit
// nothing, since a partial snapshot would read as removals; ok is then
// false. Otherwise the run must succeed and the emitted items are returned.
func CheckSnapshot(t *testing.T, s source.SnapshotSource, wantErr string, wantIs error) (items []source.Item, ok bool) {
	t.Helper()
	var c Collector
	err := s.Snapshot(context.Background(), c.Emit)
	if wantErr != "" || wantIs != nil {
		if err == nil {
			t.Fatalf("no error; emitted %v", c.Keys())
		}
		if !strings.Contains(err.Error(), wantErr) {
			t.Errorf("err = %v, want it to mention %q", err, wantErr)
		}
		if wantIs != nil && !errors.Is(err, wantIs) {
			t.Errorf("err = %v, want errors.Is %v", err, wantIs)
		}
		if len(c.Items) != 0 {
			t.Errorf("partial snapshot emitted: %d items before failing", len(c.Items))
		}
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return c.Items, true
}

// CheckSnapshotDecode is the invariant of a snapshot decoder, for fuzz
// targets: an error comes without items; otherwise every item has a
// unique non-empty key, valid raw JSON and no event id or time.
func CheckSnapshotDecode(t *testing.T, items []source.Item, err error) {
	t.Helper()
	if err != nil {
		if len(items) != 0 {
			t.Fatal("items returned with an error")
		}
		return
	}
	seen := map[string]bool{}
	for _, it := range items {
		if it.Key == "" || seen[it.Key] {
			t.Fatalf("empty or repeated key %q", it.Key)
		}
		seen[it.Key] = true
		if !json.Valid(it.Raw) || it.ID != "" || !it.Time.IsZero() {
			t.Fatalf("bad snapshot item %+v", it)
		}
	}
}

// CheckEventItems is the invariant of a decoded event page, for fuzz
// targets: every item has an id, valid raw JSON and a non-zero UTC time.
func CheckEventItems(t *testing.T, items []source.Item) {
	t.Helper()
	for _, it := range items {
		if it.ID == "" || it.Time.IsZero() || it.Time.Location() != time.UTC || !json.Valid(it.Raw) {
			t.Fatalf("bad event item %+v", it)
		}
	}
}
