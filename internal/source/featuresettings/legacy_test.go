package featuresettings

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"

	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/source"
)

// legacyPortal answers like mde.LegacyClient: the advanced features exist,
// the Live Response settings have no legacy host.
type legacyPortal struct{}

func (legacyPortal) Get(_ context.Context, path string, _ url.Values) ([]byte, error) {
	if path == LiveResponsePath {
		return nil, fmt.Errorf("portal GET %s: %w", path, mde.ErrNoLegacyHost)
	}
	return []byte(`{"EnableWdavAntiTampering":true}`), nil
}

func (legacyPortal) Post(context.Context, string, url.Values, any) ([]byte, error) {
	return nil, errors.New("unused")
}

// TestLegacyModeReportsLiveResponseNotServed: in legacy mode the Live
// Response settings are never served. The advanced features are emitted
// and the source says so with a PartialError marked NotServed, so the
// pipeline keeps the stored LiveResponse item instead of reporting it
// Removed. Fails on the code before (it skipped the part silently).
func TestLegacyModeReportsLiveResponseNotServed(t *testing.T) {
	f, _ := source.Lookup(Name)
	s, err := f.New(source.Deps{Portal: legacyPortal{}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	err = s.(source.SnapshotSource).Snapshot(t.Context(), func(_ context.Context, it source.Item) error {
		keys = append(keys, it.Key)
		return nil
	})
	if len(keys) != 1 || keys[0] != KeyAdvancedFeatures {
		t.Fatalf("keys %v; want only %s", keys, KeyAdvancedFeatures)
	}
	var pe *source.PartialError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v; want a *source.PartialError", err)
	}
	if !pe.NotServed || len(pe.Failed) != 1 || pe.Failed[0] != KeyLiveResponse || !pe.Owns(KeyLiveResponse) || pe.Owns(KeyAdvancedFeatures) {
		t.Errorf("PartialError %+v: want Failed [LiveResponse], NotServed", pe)
	}
	if !errors.Is(err, mde.ErrNoLegacyHost) {
		t.Errorf("err %v should wrap mde.ErrNoLegacyHost", err)
	}
}
