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

// KeyFields name a destination's key, first present wins.
var KeyFields = []string{"id", "Id"}

// Decode turns a response body — OData {value:[…]} as captured, or any
// other list envelope (see srcutil.ReadList) — into snapshot items keyed by
// KeyFields. A wrong envelope, a record without the key, a duplicate key or
// a total above the records fails the whole page.
func Decode(body []byte) ([]source.Item, error) {
	return srcutil.SnapshotList(Name, body, srcutil.ListShape{}, KeyFields...)
}

func init() {
	source.Register(srcutil.PortalSnapshotFactory(srcutil.PortalSnapshotSpec{
		Name: Name, Table: Table, Path: Path,
		Description: "Streaming API (data export) destinations and exported categories",
		Decode:      Decode,
	}))
}
