package e2e

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/defenderharvester/defenderharvester/internal/sim"
	"github.com/defenderharvester/defenderharvester/internal/source/actioncenter"
	"github.com/defenderharvester/defenderharvester/internal/source/alertservicesettings"
	"github.com/defenderharvester/defenderharvester/internal/source/connectedapps"
	"github.com/defenderharvester/defenderharvester/internal/source/customdetections"
	"github.com/defenderharvester/defenderharvester/internal/source/dataexportsettings"
	"github.com/defenderharvester/defenderharvester/internal/source/executedqueries"
	"github.com/defenderharvester/defenderharvester/internal/source/featuresettings"
	"github.com/defenderharvester/defenderharvester/internal/source/libraryfiles"
	"github.com/defenderharvester/defenderharvester/internal/source/machineactions"
	"github.com/defenderharvester/defenderharvester/internal/source/machinegroups"
	"github.com/defenderharvester/defenderharvester/internal/source/schema"
	"github.com/defenderharvester/defenderharvester/internal/source/suppressionrules"
	"github.com/defenderharvester/defenderharvester/internal/source/timeline"
)

// logSince returns the request-log lines written after *mark and moves
// the mark to the end.
func logSince(l *lockedBuffer, mark *int) []string {
	all := l.String()
	s := strings.TrimSpace(all[*mark:])
	*mark = len(all)
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// noopRoute is what one route may cost on a run that finds nothing new.
type noopRoute struct {
	bucket string // the source, or "run" for the per-run portal upkeep
	host   string
	match  func(path string) bool
	max    func(machines int) int
}

func exact(p string) func(string) bool { return func(s string) bool { return s == p } }
func prefixed(p string) func(string) bool {
	return func(s string) bool { return strings.HasPrefix(s, p) }
}
func upTo(n int) func(int) int { return func(int) int { return n } }

const (
	portalHost = "security.microsoft.com"
	publicHost = "api.security.microsoft.com"
)

// noopRoutes: every default source asks its data once. The exceptions,
// each forced by the API:
var noopRoutes = []noopRoute{
	// Event sources: one request reads the (empty) window since the
	// cursor; none of these lists can be asked "anything new?" cheaper.
	{"actioncenter", portalHost, exact(actioncenter.Path), upTo(1)},
	{"executedqueries", portalHost, exact(executedqueries.Path), upTo(1)},
	{"machineactions", publicHost, exact(machineactions.Path), upTo(1)},
	// Snapshot sources: one request each, the whole (small) state.
	{"alertservicesettings", portalHost, exact(alertservicesettings.Path), upTo(1)},
	{"connectedapps", portalHost, exact(connectedapps.Path), upTo(1)},
	{"dataexportsettings", portalHost, exact(dataexportsettings.Path), upTo(1)},
	{"machinegroups", portalHost, exact(machinegroups.Path), upTo(1)},
	{"schema", portalHost, exact(schema.Path), upTo(1)},
	{"suppressionrules", portalHost, exact(suppressionrules.Path), upTo(1)},
	{"libraryfiles", publicHost, exact(libraryfiles.Path), upTo(1)},
	// featuresettings is two settings documents with no combined
	// endpoint: advanced features and the Live Response properties.
	{"featuresettings", portalHost, exact(featuresettings.AdvancedFeaturesPath), upTo(1)},
	{"featuresettings", portalHost, exact(featuresettings.LiveResponsePath), upTo(1)},
	// customdetections: the rules list is a bare array with no total and
	// the service may clamp pageSize silently, so a first page shorter
	// than asked is probed with a second request before the snapshot is
	// trusted as complete (srcutil.Pager); the probe is empty.
	{"customdetections", portalHost, exact(customdetections.Path), upTo(2)},
	// timeline: the device timeline has no cross-device query, so one
	// request per device; the device list is paged like the rules (no
	// total: a short first page is probed once).
	{"timeline", portalHost, prefixed(timeline.Base + "/machines/"), func(m int) int { return m }},
	{"timeline", portalHost, exact(timeline.MachinesPath), upTo(2)},
	// Per run, not per source: the tenant check of the portal session
	// (TenantContext) plus up to two more while the clock-skew meter
	// lacks its three Date headers, and the cached session's XSRF
	// renewal (portal root).
	{"run", portalHost, exact("/apiproxy/mtp/sccManagement/mgmt/TenantContext"), upTo(3)},
	{"run", portalHost, exact("/"), upTo(1)},
}

// TestNoOpIncrementalRun: a run right after a backfill, with nothing new
// in the tenant, costs at most one request per source (the exceptions
// above say why) and no Entra token request: the public API's token
// comes from the token cache the backfill filled.
func TestNoOpIncrementalRun(t *testing.T) {
	var (
		log  lockedBuffer
		mark int
	)
	f := newFixture(t, sim.Options{Seed: 7, RequestLog: &log})
	cfg := f.writeConfig("noop", "")
	if code, out, errs := f.runCLI("run", "--config", cfg); code != 0 {
		t.Fatalf("backfill: exit %d\n%s\n%s", code, out, errs)
	}
	if len(logSince(&log, &mark)) == 0 {
		t.Fatal("the emulator's request log is empty: the count below would prove nothing")
	}
	entraBefore := f.tenant.RequestCount(sim.FamilyEntra)
	if code, out, errs := f.runCLI("run", "--config", cfg); code != 0 {
		t.Fatalf("no-op run: exit %d\n%s\n%s", code, out, errs)
	}
	lines := logSince(&log, &mark)
	if n := f.tenant.RequestCount(sim.FamilyEntra) - entraBefore; n != 0 {
		t.Errorf("the no-op run made %d Entra requests, want 0 (the token is cached)", n)
	}

	machines := len(f.tenant.MachineIDs())
	perRoute := make([]int, len(noopRoutes))
	perSource := map[string]int{}
	for _, ln := range lines {
		// time method host path query=… status=… …
		fs := strings.Fields(ln)
		if len(fs) < 4 {
			t.Fatalf("request log line %q has no host and path", ln)
		}
		host, path := fs[2], fs[3]
		if strings.HasPrefix(host, "login.") {
			t.Errorf("Entra request on the no-op run: %s %s", host, path)
			continue
		}
		found := false
		for i, r := range noopRoutes {
			if host == r.host && r.match(path) {
				perRoute[i]++
				perSource[r.bucket]++
				found = true
				break
			}
		}
		if !found {
			t.Errorf("request to %s %s belongs to no known source: add it to noopRoutes with its bound", host, path)
		}
	}
	for i, r := range noopRoutes {
		if limit := r.max(machines); perRoute[i] > limit {
			t.Errorf("%s: %d requests to its route on a no-op run, want at most %d", r.bucket, perRoute[i], limit)
		}
	}
	for _, r := range noopRoutes {
		if r.bucket != "run" && perSource[r.bucket] == 0 {
			t.Errorf("%s made no request: it did not run, so its count proves nothing", r.bucket)
		}
	}
	var names []string
	for s := range perSource {
		names = append(names, s)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, s := range names {
		fmt.Fprintf(&b, " %s=%d", s, perSource[s])
	}
	t.Logf("no-op run, requests per source (%d devices):%s", machines, b.String())
}
