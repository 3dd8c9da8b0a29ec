// Package featuresettings harvests the tenant's advanced feature toggles
// and Live Response settings (snapshot source, table
// MdeAdvancedFeatureSettings).
package featuresettings

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/source/srcutil"
)

const (
	// Name is the source's config key.
	Name = "featuresettings"
	// Table is where its records land.
	Table = "MdeAdvancedFeatureSettings"
	// AdvancedFeaturesPath returns the flat object of feature toggles.
	AdvancedFeaturesPath = "/apiproxy/mtp/settings/GetAdvancedFeaturesSetting"
	// LiveResponsePath returns the Live Response settings.
	LiveResponsePath = "/apiproxy/mtp/liveResponseApi/get_properties"
)

// Item keys in the snapshot.
const (
	KeyAdvancedFeatures = "AdvancedFeatures"
	KeyLiveResponse     = "LiveResponse"
)

// Decode checks one settings body is a JSON object and makes it an item.
func Decode(key string, body []byte) (source.Item, error) {
	if _, err := srcutil.Object(Name+" "+key, body); err != nil {
		return source.Item{}, err
	}
	return source.Item{Key: key, Raw: body}, nil
}

type src struct {
	srcutil.Meta
	portal mde.Portal
}

// Snapshot reads both settings pages and emits them only if both worked.
func (s *src) Snapshot(ctx context.Context, emit source.Emit) error {
	reqs := []struct {
		key, path string
		q         url.Values
	}{
		{KeyAdvancedFeatures, AdvancedFeaturesPath, nil},
		{KeyLiveResponse, LiveResponsePath, url.Values{"useV2Api": {"true"}, "useV3Api": {"true"}}},
	}
	items := make([]source.Item, 0, len(reqs))
	for _, r := range reqs {
		body, err := s.portal.Get(ctx, r.path, r.q)
		if r.key == KeyLiveResponse && errors.Is(err, mde.ErrNoLegacyHost) {
			// The legacy regional hosts never served the Live Response
			// settings; in legacy mode the snapshot is the advanced
			// features alone.
			continue
		}
		if err != nil {
			return fmt.Errorf("%s %s: %w", Name, r.key, err)
		}
		it, err := Decode(r.key, body)
		if err != nil {
			return err
		}
		items = append(items, it)
	}
	return srcutil.EmitAll(ctx, emit, items)
}

func init() {
	source.Register(source.Factory{
		Name: Name, Table: Table, Kind: source.Snapshot, API: "portal", DefaultEnabled: true,
		Description: "Advanced feature toggles (tamper protection, EDR block mode, …) and Live Response settings",
		New: func(deps source.Deps, _ any) (source.Source, error) {
			if err := srcutil.NeedPortal(Name, deps); err != nil {
				return nil, err
			}
			return &src{Meta: srcutil.NewMeta(Name, Table, source.Snapshot), portal: deps.Portal}, nil
		},
	})
}
