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
	return srcutil.DecodeList(Name, body, srcutil.Envelope{Keys: []string{"value"}}, "id")
}

func init() {
	source.Register(srcutil.PortalSnapshotFactory(srcutil.PortalSnapshotSpec{
		Name: Name, Table: Table, Path: Path,
		Description: "Streaming API (data export) destinations and exported categories",
		Decode:      Decode,
	}))
}
