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

// Decode turns a response body into snapshot items keyed by MachineGroupId.
// A wrong envelope, a record without the key or a duplicate key fails the
// whole page.
func Decode(body []byte) ([]source.Item, error) {
	return srcutil.DecodeList(Name, body, srcutil.Envelope{Keys: []string{"items"}}, "MachineGroupId")
}

func init() {
	source.Register(srcutil.PortalSnapshotFactory(srcutil.PortalSnapshotSpec{
		Name: Name, Table: Table, Path: Path,
		Query:       url.Values{"addAadGroupNames": {"true"}, "addMachineGroupCount": {"false"}},
		Description: "Device groups (RBAC machine groups): membership rules and automation level",
		Decode:      Decode,
	}))
}
