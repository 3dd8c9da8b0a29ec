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

// Decode checks one settings body is a JSON object and makes it an item;
// anything else fails with the shape it saw (never its values).
func Decode(key string, body []byte) (source.Item, error) {
	if _, err := srcutil.Object(Name+" "+key, body); err != nil {
		return source.Item{}, fmt.Errorf("%s %s: cannot read the response: %s; expected a JSON object of settings", Name, key, srcutil.DescribeShape(body))
	}
	return source.Item{Key: key, Raw: body}, nil
}

type src struct {
	srcutil.Meta
	portal mde.Portal
}

// part is one endpoint of the snapshot; its key is the part's name.
type part struct {
	key, path string
	q         url.Values
}

var parts = []part{
	{KeyAdvancedFeatures, AdvancedFeaturesPath, nil},
	{KeyLiveResponse, LiveResponsePath, url.Values{"useV2Api": {"true"}, "useV3Api": {"true"}}},
}

// Snapshot reads every part and emits the items of those it read. When a
// part fails it returns *source.PartialError naming it, so the pipeline
// keeps that part's stored item (no Removed record) and reports the
// source failed. A part the mode never serves (Live Response settings in
// legacy mode, mde.ErrNoLegacyHost) is a PartialError with NotServed:
// kept as stored, not a failure. When no part was read, the error is a
// plain one.
func (s *src) Snapshot(ctx context.Context, emit source.Emit) error {
	var items []source.Item
	var failed, notServed []string
	var errs []error
	for _, p := range parts {
		body, err := s.portal.Get(ctx, p.path, p.q)
		if p.key == KeyLiveResponse && errors.Is(err, mde.ErrNoLegacyHost) {
			// The legacy regional hosts never served the Live Response
			// settings.
			notServed = append(notServed, p.key)
			errs = append(errs, fmt.Errorf("%s %s: not served in legacy mode: %w", Name, p.key, err))
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("%s %s: %w", Name, p.key, err)
			}
			failed = append(failed, p.key)
			errs = append(errs, fmt.Errorf("%s %s: %w", Name, p.key, err))
			continue
		}
		it, err := Decode(p.key, body)
		if err != nil {
			failed = append(failed, p.key)
			errs = append(errs, err)
			continue
		}
		items = append(items, it)
	}
	if len(items) == 0 {
		return errors.Join(errs...)
	}
	if err := srcutil.EmitAll(ctx, emit, items); err != nil {
		return err
	}
	switch {
	case len(failed) > 0:
		// A real failure outranks parts the mode does not serve: the
		// source failed, and neither kind of part may read as removed.
		return &source.PartialError{Failed: append(failed, notServed...), Err: errors.Join(errs...)}
	case len(notServed) > 0:
		return &source.PartialError{Failed: notServed, Err: errors.Join(errs...), NotServed: true}
	}
	return nil
}

func init() {
	source.Register(source.Factory{
		Schedule: "1h", // settings change rarely; hourly is soon enough to alert
		Name:     Name, Table: Table, Kind: source.Snapshot, API: "portal", DefaultEnabled: true,
		Description: "Advanced feature toggles (tamper protection, EDR block mode, …) and Live Response settings",
		New: func(deps source.Deps, _ any) (source.Source, error) {
			if err := srcutil.NeedPortal(Name, deps); err != nil {
				return nil, err
			}
			return &src{Meta: srcutil.NewMeta(Name, Table, source.Snapshot), portal: deps.Portal}, nil
		},
	})
}
