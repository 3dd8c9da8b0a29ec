// Package machinegroups harvests device groups from `{items:[…]}` (snapshot source, table MdeMachineGroups).
package machinegroups

import (
	"net/url"

	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/source/srcutil"
)

const (
	// Name is the source's config key.
	Name = "machinegroups"
	// Table is where its records land.
	Table = "MdeMachineGroups"
	// Path is the portal endpoint.
	Path = "/apiproxy/mtp/rbacManagementApi/rbac/machine_groups"
)

// KeyFields name a group's key, first present wins.
var KeyFields = []string{"MachineGroupId", "machineGroupId"}

// Decode turns a response body — {items:[…]} as captured, or any other
// list envelope (see srcutil.ReadList) — into snapshot items keyed by
// KeyFields. A wrong envelope, a record without the key, a duplicate key or
// a total above the records fails the whole page.
func Decode(body []byte) ([]source.Item, error) {
	return srcutil.SnapshotList(Name, body, srcutil.ListShape{}, KeyFields...)
}

func init() {
	source.Register(srcutil.PortalSnapshotFactory(srcutil.PortalSnapshotSpec{
		Name: Name, Table: Table, Path: Path,
		Query:       url.Values{"addAadGroupNames": {"true"}, "addMachineGroupCount": {"false"}},
		Description: "Device groups (RBAC machine groups): membership rules and automation level",
		Decode:      Decode,
		Attribution: source.Attribution{EditedAt: []string{"LastUpdated"}},
	}))
}
