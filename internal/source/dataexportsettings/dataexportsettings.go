// Package dataexportsettings harvests streaming API export settings, an OData `{value:[…]}` collection (snapshot source, table M365DataExportSettings).
package dataexportsettings

import (
	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/source/srcutil"
)

const (
	// Name is the source's config key.
	Name = "dataexportsettings"
	// Table is where its records land.
	Table = "M365DataExportSettings"
	// Path is the portal endpoint.
	Path = "/apiproxy/mtp/wdatpApi/dataexportsettings"
)

// Decode turns a response body into snapshot items keyed by id.
// A wrong envelope, a record without the key or a duplicate key fails the
// whole page.
func Decode(body []byte) ([]source.Item, error) {
	recs, err := srcutil.Items(Name, body, srcutil.Envelope{Keys: []string{"value"}})
	if err != nil {
		return nil, err
	}
	return srcutil.SnapshotItems(Name, recs, srcutil.NewKeys(Name), "id")
}

func init() {
	source.Register(source.Factory{
		Name: Name, Table: Table, Kind: source.Snapshot, API: "portal", DefaultEnabled: true,
		Description: "Streaming API (data export) destinations and exported categories",
		New: func(deps source.Deps, _ any) (source.Source, error) {
			if err := srcutil.NeedPortal(Name, deps); err != nil {
				return nil, err
			}
			return &srcutil.PortalSnapshot{
				Meta: srcutil.NewMeta(Name, Table, source.Snapshot), Portal: deps.Portal,
				Path: Path, Query: nil, Decode: Decode,
			}, nil
		},
	})
}
