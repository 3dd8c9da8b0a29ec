// Package suppressionrules harvests suppression (alert tuning) rules, a bare JSON array; RuleConditions and ScopeConditions stay the JSON strings the portal returns (snapshot source, table MdeSuppressionRules).
package suppressionrules

import (
	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/source/srcutil"
)

const (
	// Name is the source's config key.
	Name = "suppressionrules"
	// Table is where its records land.
	Table = "MdeSuppressionRules"
	// Path is the portal endpoint.
	Path = "/apiproxy/mtp/suppressionRulesService/suppressionRules"
)

// Decode turns a response body into snapshot items keyed by Id.
// A wrong envelope, a record without the key or a duplicate key fails the
// whole page.
func Decode(body []byte) ([]source.Item, error) {
	recs, err := srcutil.Items(Name, body, srcutil.Envelope{Bare: true})
	if err != nil {
		return nil, err
	}
	return srcutil.SnapshotItems(Name, recs, srcutil.NewKeys(Name), "Id", "id")
}

func init() {
	source.Register(source.Factory{
		Name: Name, Table: Table, Kind: source.Snapshot, API: "portal", DefaultEnabled: true,
		Description: "Alert suppression (tuning) rules: who silences which alerts",
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
