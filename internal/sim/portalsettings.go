package sim

import (
	"net/http"
	"strings"
)

// ---- snapshot routes ----

func (t *Tenant) hAdvancedFeatures(q *req) { q.json(http.StatusOK, t.w.advancedFeatures(q.now)) }
func (t *Tenant) hLRProperties(q *req)     { q.json(http.StatusOK, t.w.lrSettings(q.now)) }
func (t *Tenant) hSuppression(q *req)      { q.json(http.StatusOK, t.w.suppressionRules(q.now)) }
func (t *Tenant) hConnectedApps(q *req)    { q.json(http.StatusOK, t.w.connectedApps(q.now)) }
func (t *Tenant) hAlertService(q *req)     { q.json(http.StatusOK, t.w.alertServiceSettings(q.now)) }

func (t *Tenant) hMachineGroups(q *req) {
	counts := false
	if s, ok := param(q, "addMachineGroupCount"); ok {
		counts = strings.EqualFold(s, "true")
	}
	q.json(http.StatusOK, t.w.machineGroups(counts, q.now))
}

func (t *Tenant) hDataExport(q *req) {
	host := "security.microsoft.com"
	if q.svc.family == FamilyLegacy {
		host = q.host
	}
	q.json(http.StatusOK, t.w.dataExportSettings(q.now, host))
}

func (t *Tenant) hLibraryPortal(q *req) {
	type file struct {
		FileName              string  `json:"file_name"`
		Sha256                string  `json:"sha256"`
		Description           *string `json:"description"`
		CreationTime          string  `json:"creation_time"`
		CreatedBy             string  `json:"created_by"`
		LastUpdatedTime       string  `json:"last_updated_time"`
		HasParameters         bool    `json:"has_parameters"`
		ParametersDescription *string `json:"parameters_description"`
	}
	out := []file{}
	for _, f := range t.w.libraryFiles(q.now) {
		x := file{FileName: f.Name, Sha256: f.SHA256, CreationTime: fmt7Z(f.Created), CreatedBy: f.CreatedBy,
			LastUpdatedTime: fmt7Z(f.lastUpdated()), HasParameters: f.HasParams}
		if f.Description != "" {
			d := f.Description
			x.Description = &d
		}
		if f.ParamsDesc != "" {
			p := f.ParamsDesc
			x.ParametersDescription = &p
		}
		out = append(out, x)
	}
	q.json(http.StatusOK, out)
}
