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
	recs, err := srcutil.Items(Name, body, srcutil.Envelope{Keys: []string{"items"}})
	if err != nil {
		return nil, err
	}
	return srcutil.SnapshotItems(Name, recs, srcutil.NewKeys(Name), "MachineGroupId")
}

func init() {
	source.Register(source.Factory{
		Name: Name, Table: Table, Kind: source.Snapshot, API: "portal", DefaultEnabled: true,
		Description: "Device groups (RBAC machine groups): membership rules and automation level",
		New: func(deps source.Deps, _ any) (source.Source, error) {
			if err := srcutil.NeedPortal(Name, deps); err != nil {
				return nil, err
			}
			return &srcutil.PortalSnapshot{
				Meta: srcutil.NewMeta(Name, Table, source.Snapshot), Portal: deps.Portal,
				Path: Path, Query: url.Values{"addAadGroupNames": {"true"}, "addMachineGroupCount": {"false"}}, Decode: Decode,
			}, nil
		},
	})
}
