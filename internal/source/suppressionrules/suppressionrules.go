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
	return srcutil.DecodeList(Name, body, srcutil.Envelope{Bare: true}, "Id", "id")
}

func init() {
	source.Register(srcutil.PortalSnapshotFactory(srcutil.PortalSnapshotSpec{
		Name: Name, Table: Table, Path: Path,
		Description: "Alert suppression (tuning) rules: who silences which alerts",
		Decode:      Decode,
	}))
}
