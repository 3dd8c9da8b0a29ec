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
	return srcutil.DecodeList(Name, body, srcutil.Envelope{Keys: []string{"Tables"}}, "Name")
}

func init() {
	source.Register(srcutil.PortalSnapshotFactory(srcutil.PortalSnapshotSpec{
		Name: Name, Table: Table, Path: Path,
		Description: "Advanced hunting schema reference: one item per table",
		Decode:      Decode,
	}))
}
