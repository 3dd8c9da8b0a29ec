package sim

import "net/http"

// ---- legacy regional hosts (docs/REFERENCE.md §2.2, §2.3) ----

func (t *Tenant) legacyService(kind string) service {
	s := service{family: FamilyLegacy, fail: portalFail}
	if kind == "api" {
		s.fail = publicFail
	}
	s.auth = func(q *req) bool {
		c, present, err := t.bearer(q.r)
		auds := []string{audMTP}
		if kind == "api" {
			auds = append(auds, audPublic, audPublicNew, audWdatpLegacy, wdatpAppID)
		}
		switch {
		case !present:
			s.fail(q, http.StatusUnauthorized, "Unauthorized", "Authorization has been denied for this request: no bearer token.")
			return false
		case err != nil:
			s.fail(q, http.StatusUnauthorized, "Unauthorized", "Authorization has been denied for this request: "+err.Error()+".")
			return false
		case !audIn(c, auds...):
			s.fail(q, http.StatusUnauthorized, "Unauthorized", "Authorization has been denied for this request: the token audience is not accepted by this service.")
			return false
		case !t.servesLocation(q.host):
			// Decision: another region's host does not know the tenant.
			s.fail(q, http.StatusUnauthorized, "Unauthorized", "Authorization has been denied for this request: tenant "+c.Tid+" is not provisioned in this region ("+q.host+").")
			return false
		}
		q.claims = c
		return true
	}
	add := s.routes.add
	switch kind {
	case "wdatpprd":
		add(http.MethodGet, "/api/detection/experience/timeline/machines/{id}/events/", FamilyTimeline, t.hTimeline)
		add(http.MethodGet, "/api/detection/experience/timeline/machines/{id}/events", FamilyTimeline, t.hTimeline)
		add(http.MethodGet, "/api/settings/GetAdvancedFeaturesSetting", "", t.hAdvancedFeatures)
		add(http.MethodGet, "/api/ine/suppressionrulesservice/suppressionRules", "", t.hSuppression)
		add(http.MethodGet, "/rbac/machine_groups", "", t.hMachineGroups)
		add(http.MethodGet, "/api/cloud/portal/apps/all", "", t.hConnectedApps)
	case "m365d-autoir-ac-prd":
		add(http.MethodGet, "/api/autoir/actioncenterui/history-actions/", "", t.hActionCenter)
		add(http.MethodGet, "/api/autoir/actioncenterui/history-actions", "", t.hActionCenter)
	case "m365d-hunting-api-prd":
		add(http.MethodGet, "/api/ine/huntingservice/rules", "", t.hRules)
		add(http.MethodGet, "/api/ine/huntingservice/schema", "", t.hSchema)
		add(http.MethodPost, "/api/ine/huntingservice/reports", "", t.hReports)
	case "m365duseprd":
		add(http.MethodGet, "/api/ine/alertsapiservice/workloads/disabled", "", t.hAlertService)
	case "api":
		add(http.MethodGet, "/api/dataexportsettings", "", t.hDataExport)
		add(http.MethodGet, "/api/machineactions", "", t.limited(t.hMachineActions))
		add(http.MethodGet, "/api/machineactions/{id}", "", t.limited(t.hMachineAction))
	}
	return s
}
