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

func TestLegacyModeReadsTheAdvancedFeaturesAlone(t *testing.T) {
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
	if err != nil || len(keys) != 1 || keys[0] != KeyAdvancedFeatures {
		t.Fatalf("keys %v, err %v; want only %s", keys, err, KeyAdvancedFeatures)
	}
}
