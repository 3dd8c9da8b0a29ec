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

// KeyFields name a rule's key, first present wins.
var KeyFields = []string{"Id", "id"}

// Decode turns a response body — a bare array as captured, or any list
// envelope (see srcutil.ReadList) — into snapshot items keyed by
// KeyFields. A wrong envelope, a record without the key, a duplicate key or
// a total above the records fails the whole page.
func Decode(body []byte) ([]source.Item, error) {
	return srcutil.SnapshotList(Name, body, srcutil.ListShape{}, KeyFields...)
}

func init() {
	source.Register(srcutil.PortalSnapshotFactory(srcutil.PortalSnapshotSpec{
		Name: Name, Table: Table, Path: Path,
		Description: "Alert suppression (tuning) rules: who silences which alerts",
		Decode:      Decode,
		// No field names the last editor: an edit has a time only.
		Attribution: source.Attribution{EditedAt: []string{"UpdateTime"}, CreatedBy: []string{"CreatedBy"}, CreatedAt: []string{"CreationTime"}},
	}))
}
