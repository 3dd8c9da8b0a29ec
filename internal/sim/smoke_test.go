package sim

import (
	"fmt"
	"os"
	"testing"
)

func TestSmokeDump(t *testing.T) {
	if os.Getenv("SIMDUMP") == "" {
		t.Skip()
	}
	e := newEnv(t, nil)
	for _, p := range []string{
		"/apiproxy/mtp/actionCenter/actioncenterui/history-actions/?pageSize=3&sortOrder=Descending",
		"/apiproxy/mtp/huntingService/rules/unified?pageIndex=1&pageSize=3",
		"/apiproxy/mtp/mdeTimelineExperience/machines/" + e.ten.MachineIDs()[0] + "/events/?pageSize=2&fromDate=2026-03-10T00:00:00Z&toDate=2026-03-10T20:00:00Z",
		"/apiproxy/mtp/ndr/machines?pageSize=2",
		"/apiproxy/mtp/rbacManagementApi/rbac/machine_groups",
		"/apiproxy/mtp/responseApiPortal/apps/all",
		"/apiproxy/mtp/alertsApiService/workloads/disabled",
		"/apiproxy/mtp/suppressionRulesService/suppressionRules",
		"/apiproxy/mtp/liveResponseApi/library/get_files?useV3Api=true",
		"/apiproxy/nope",
	} {
		r := e.portal("GET", p, nil)
		fmt.Printf("== %s\n%d %s\n", p, r.status, truncate(r.body))
	}
	r := e.portal("POST", "/apiproxy/hunting/huntingService/reports", []byte(`{"startTime":"2026-03-10T10:00:00Z","endTime":"2026-03-10T13:00:00Z"}`))
	fmt.Printf("== reports\n%d %s\n", r.status, truncate(r.body))
	tok := e.publicToken()
	r = e.public("/api/machineactions?$top=2", tok)
	fmt.Printf("== ma\n%d %s\n", r.status, truncate(r.body))
	r = e.public("/api/machineactions?$filter=lastUpdateDateTimeUtc ge 2024-01-01T00:00:00Z", tok)
	fmt.Printf("== ma bad\n%d %s\n", r.status, truncate(r.body))
	r = e.public("/api/libraryfiles", tok)
	fmt.Printf("== lib\n%d %s\n", r.status, truncate(r.body))
}
