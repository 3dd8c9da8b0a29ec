// Package alertservicesettings harvests which workloads' alerts are
// disabled in Defender XDR (snapshot source, table
// M365AlertServiceSettings).
package alertservicesettings

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/source/srcutil"
)

const (
	// Name is the source's config key.
	Name = "alertservicesettings"
	// Table is where its records land.
	Table = "M365AlertServiceSettings"
	// Path is the portal endpoint.
	Path = "/apiproxy/mtp/alertsApiService/workloads/disabled"
)

// Decode turns the object keyed by workload into one item per workload,
// raw {"Workload":"<key>","Details":<value as returned>}, keyed by the
// workload. An empty object (nothing disabled) gives no items.
func Decode(body []byte) ([]source.Item, error) {
	obj, err := srcutil.Object(Name, body)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot read the response: %s; expected a JSON object keyed by workload", Name, srcutil.DescribeShape(body))
	}
	names := make([]string, 0, len(obj))
	for k := range obj {
		names = append(names, k)
	}
	sort.Strings(names)
	keys := srcutil.NewKeys(Name)
	items := make([]source.Item, 0, len(names))
	for _, k := range names {
		if strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("%s: workload with an empty name", Name)
		}
		if err := keys.Add(k); err != nil {
			return nil, err
		}
		kj, err := json.Marshal(k)
		if err != nil {
			return nil, fmt.Errorf("%s: workload name: %w", Name, err)
		}
		raw := make([]byte, 0, len(kj)+len(obj[k])+24)
		raw = append(raw, `{"Workload":`...)
		raw = append(raw, kj...)
		raw = append(raw, `,"Details":`...)
		raw = append(raw, obj[k]...)
		raw = append(raw, '}')
		items = append(items, source.Item{Key: k, Raw: raw})
	}
	return items, nil
}

func init() {
	source.Register(srcutil.PortalSnapshotFactory(srcutil.PortalSnapshotSpec{
		Name: Name, Table: Table, Path: Path,
		Query:       url.Values{"includeDetails": {"true"}},
		Description: "Workloads whose alerts are disabled in Defender XDR, with reasons",
		Decode:      Decode,
	}))
}
