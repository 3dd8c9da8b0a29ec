// Package schema harvests the advanced hunting schema `{Tables:[…]}`, one item per table (snapshot source, table MdeSchemaReference).
package schema

import (
	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/source/srcutil"
)

const (
	// Name is the source's config key.
	Name = "schema"
	// Table is where its records land.
	Table = "MdeSchemaReference"
	// Path is the portal endpoint.
	Path = "/apiproxy/mtp/huntingService/schema"
)

// Decode turns a response body into snapshot items keyed by Name.
// A wrong envelope, a record without the key or a duplicate key fails the
// whole page.
func Decode(body []byte) ([]source.Item, error) {
	recs, err := srcutil.Items(Name, body, srcutil.Envelope{Keys: []string{"Tables"}})
	if err != nil {
		return nil, err
	}
	return srcutil.SnapshotItems(Name, recs, srcutil.NewKeys(Name), "Name")
}

func init() {
	source.Register(source.Factory{
		Name: Name, Table: Table, Kind: source.Snapshot, API: "portal", DefaultEnabled: true,
		Description: "Advanced hunting schema reference: one item per table",
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
