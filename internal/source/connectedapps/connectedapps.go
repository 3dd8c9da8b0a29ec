// Package connectedapps harvests the apps that call the Defender API and
// their daily call counts (snapshot source, table MdeConnectedAppStats).
package connectedapps

import (
	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/source/srcutil"
)

const (
	// Name is the source's config key.
	Name = "connectedapps"
	// Table is where its records land.
	Table = "MdeConnectedAppStats"
	// Path is the portal endpoint.
	Path = "/apiproxy/mtp/responseApiPortal/apps/all"
)

// KeyFields name an app's key, first present wins.
var KeyFields = []string{"Id", "id"}

// Shape: a JSON array of apps, any list envelope, or — as one capture
// showed — a single app object.
var Shape = srcutil.ListShape{Single: KeyFields, Record: "app"}

// Decode turns a response body into snapshot items keyed by KeyFields. A
// wrong envelope, a record without the key, a duplicate key or a total
// above the records fails the whole page.
func Decode(body []byte) ([]source.Item, error) {
	return srcutil.SnapshotList(Name, body, Shape, KeyFields...)
}

func init() {
	source.Register(srcutil.PortalSnapshotFactory(srcutil.PortalSnapshotSpec{
		Name: Name, Table: Table, Path: Path,
		Description: "Connected API apps and their per-day Defender API call counts",
		Decode:      Decode,
	}))
}
