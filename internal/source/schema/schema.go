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

// KeyFields name a table's key, first present wins.
var KeyFields = []string{"Name", "name"}

// Shape: {Tables:[…]} as one tool reads it (Graph's schema uses tables);
// the other list envelopes are accepted too.
var Shape = srcutil.ListShape{Keys: []string{"Tables", "tables"}}

// Decode turns a response body into snapshot items keyed by KeyFields.
// A wrong envelope, a record without the key, a duplicate key or a total
// above the records fails the whole page.
func Decode(body []byte) ([]source.Item, error) {
	return srcutil.SnapshotList(Name, body, Shape, KeyFields...)
}

func init() {
	source.Register(srcutil.PortalSnapshotFactory(srcutil.PortalSnapshotSpec{
		Schedule: "24h", // the hunting schema changes a few times a month
		Name:     Name, Table: Table, Path: Path,
		Description: "Advanced hunting schema reference: one item per table",
		Decode:      Decode,
	}))
}
