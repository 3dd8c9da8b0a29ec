package sim

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Paged routes, the keys of Options.PageClamp. Each names one list the
// services page, on every host that serves it (portal proxy and legacy).
const (
	RouteActionCenter   = "actioncenter"   // Action Center history-actions (pageIndex/pageSize, Count)
	RouteRules          = "rules"          // custom detection rules (pageIndex/pageSize, bare array)
	RouteMachines       = "machines"       // device list ndr/machines (pageIndex/pageSize, bare array)
	RouteTimeline       = "timeline"       // device timeline (pageSize, Prev keyset links)
	RouteMachineActions = "machineactions" // public API machine actions ($top/$skip, @odata.nextLink)
	RouteLibraryFiles   = "libraryfiles"   // public API library files ($top/$skip, @odata.nextLink)
	RouteAlerts         = "alerts"         // portal alert queue alertsApiService/alerts (pageNumber/pageSize in the body, totalEntities)
)

// PagedRoutes lists the routes a page clamp can apply to.
func PagedRoutes() []string {
	return []string{RouteActionCenter, RouteRules, RouteMachines, RouteTimeline, RouteMachineActions, RouteLibraryFiles, RouteAlerts}
}

const maxClamp = 100000

func validateClamps(m map[string]int) error {
	known := PagedRoutes()
	for k, v := range m {
		ok := false
		for _, r := range known {
			ok = ok || k == r
		}
		if !ok {
			return fmt.Errorf("PageClamp: unknown route %q: use one of %s", k, strings.Join(known, ", "))
		}
		if v < 1 || v > maxClamp {
			return fmt.Errorf("PageClamp: %s=%d is out of range: use 1 to %d rows (leave the route out for no clamp)", k, v, maxClamp)
		}
	}
	return nil
}

// clamp returns the page size a route actually serves for a request that
// asked for size rows: the smaller of the two when the route is clamped.
// This is what a service does that caps pageSize server-side: offsets
// (pageIndex) are computed with the clamped size, totals are unchanged.
func (t *Tenant) clamp(route string, size int) int {
	if c, ok := t.opts.PageClamp[route]; ok && c < size {
		return c
	}
	return size
}

// clamper is clamp bound to one route.
func (t *Tenant) clamper(route string) func(int) int {
	return func(size int) int { return t.clamp(route, size) }
}

// ParsePageClamp reads "actioncenter=37,timeline=53" (route=max rows per
// page), or "all=N" for every paged route; entries are comma-separated and
// a later one wins. Errors name the item and the fix.
func ParsePageClamp(spec string) (map[string]int, error) {
	out := map[string]int{}
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		k, v, ok := strings.Cut(item, "=")
		if !ok {
			return nil, fmt.Errorf("page clamp %q: write route=rows, e.g. actioncenter=37", item)
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 1 || n > maxClamp {
			return nil, fmt.Errorf("page clamp %q: rows must be a whole number from 1 to %d", item, maxClamp)
		}
		k = strings.ToLower(strings.TrimSpace(k))
		if k == "all" {
			for _, r := range PagedRoutes() {
				out[r] = n
			}
			continue
		}
		out[k] = n
		if err := validateClamps(map[string]int{k: n}); err != nil {
			return nil, fmt.Errorf("page clamp %q: unknown route: use all or one of %s", item, strings.Join(PagedRoutes(), ", "))
		}
	}
	return out, nil
}

// formatClamps renders a clamp map as ParsePageClamp reads it.
func formatClamps(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + strconv.Itoa(m[k])
	}
	return strings.Join(parts, ",")
}
