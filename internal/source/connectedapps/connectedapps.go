// Package connectedapps harvests the apps that call the Defender API and
// their daily call counts (snapshot source, table MdeConnectedAppStats).
package connectedapps

import (
	"bytes"
	"encoding/json"

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

// Decode accepts a JSON array of apps or, as one capture showed, a single
// app object; items are keyed by Id.
func Decode(body []byte) ([]source.Item, error) {
	var recs []json.RawMessage
	if b := bytes.TrimSpace(body); len(b) > 0 && b[0] == '{' {
		if _, err := srcutil.Object(Name, b); err != nil {
			return nil, err
		}
		recs = []json.RawMessage{b}
	} else {
		var err error
		if recs, err = srcutil.Items(Name, body, srcutil.Envelope{Bare: true}); err != nil {
			return nil, err
		}
	}
	return srcutil.SnapshotItems(Name, recs, srcutil.NewKeys(Name), "Id", "id")
}

func init() {
	source.Register(srcutil.PortalSnapshotFactory(srcutil.PortalSnapshotSpec{
		Name: Name, Table: Table, Path: Path,
		Description: "Connected API apps and their per-day Defender API call counts",
		Decode:      Decode,
	}))
}
