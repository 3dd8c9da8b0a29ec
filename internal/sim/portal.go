package sim

import (
	"net/http"
	"net/url"
	"strings"
)

// ---- portal service ----

// portalFail writes the ASP.NET Web API error shape the MDE backends use.
func portalFail(q *req, status int, _ string, msg string) {
	q.json(status, map[string]string{"Message": msg})
}

// loginRedirect answers a request without a live session the way the
// portal does: 302 to Entra's authorize endpoint for the portal app,
// response_mode=form_post back to the portal URL. The tenant is the tid
// query parameter when given (docs/REFERENCE.md §1.2), else "organizations".
func loginRedirect(q *req) {
	tid, _ := param(q, "tid")
	loginRedirectTo(q, tid)
}

// loginRedirectTo starts a sign-in to tenant tid ("": organizations).
func loginRedirectTo(q *req, tid string) {
	tenant := "organizations"
	if tid != "" {
		tenant = url.PathEscape(tid)
	}
	back := "https://" + q.host + "/"
	if tid != "" && q.r.URL.Path == "/" {
		back += "?tid=" + url.QueryEscape(tid)
	}
	loc := "https://login.microsoftonline.com/" + tenant + "/oauth2/v2.0/authorize?client_id=" + portalAppID +
		"&response_type=code%20id_token&scope=openid%20profile&response_mode=form_post" +
		"&redirect_uri=" + url.QueryEscape(back) + "&state=" + correlationID() + "&nonce=" + correlationID()
	q.w.Header().Set("Location", loc)
	writeHTML(q.w, http.StatusFound, `<html><head><title>Object moved</title></head><body>`+"\r\n"+
		`<h2>Object moved to <a href="`+strings.ReplaceAll(loc, "&", "&amp;")+`">here</a>.</h2>`+"\r\n"+`</body></html>`)
}

func (t *Tenant) portalAuth(q *req) bool {
	if q.r.Method == http.MethodPost && q.r.URL.Path == "/" {
		return true // the sign-in form post carries its own proof (the code)
	}
	c, present, err := t.bearer(q.r)
	if present {
		switch {
		case err != nil:
			portalFail(q, http.StatusUnauthorized, "", "Authorization has been denied for this request: "+err.Error()+".")
			return false
		case !audIn(c, portalAppID, audPortal):
			portalFail(q, http.StatusUnauthorized, "", "Authorization has been denied for this request: the token audience is not the portal.")
			return false
		}
		q.claims = c
		if t.refuseForeignHint(q) {
			return false
		}
		if c.Upn != "" {
			q.upn = c.Upn
			return q.r.URL.Path == "/" || t.portalRole(q)
		}
		return true
	}
	var ps *portalSession
	ok := false
	if ck, err := q.r.Cookie("sccauth"); err == nil {
		ps, ok = t.sess.lookup(ck.Value)
		q.scc = ck.Value
	}
	if !ok {
		loginRedirect(q)
		return false
	}
	q.upn = ps.upn
	if q.r.URL.Path == "/" {
		// The landing page only needs the session cookie; one that names
		// another tenant starts a sign-in there.
		return !t.refuseForeignHint(q)
	}
	if !t.sess.validXSRF(ps, q.r.Header.Get("X-XSRF-TOKEN")) {
		portalFail(q, http.StatusUnauthorized, "", "Authorization has been denied for this request: missing or invalid anti-forgery token.")
		return false
	}
	return !t.refuseForeignHint(q) && t.portalRole(q)
}

// portalRole answers 403 for a signed-in user without a Defender role
// (docs/REFERENCE.md §1.5: 403 is a permission problem, not an expired session).
func (t *Tenant) portalRole(q *req) bool {
	if u, ok := t.signInUser(q.upn); ok && u.defenderRole {
		return true
	}
	portalFail(q, http.StatusForbidden, "", "Access is denied: the signed-in user has no Microsoft Defender role that grants this data.")
	return false
}

func (t *Tenant) portalRoot(q *req) {
	if q.scc != "" {
		x, err := t.sess.rotate(q.scc)
		if err != nil {
			loginRedirect(q)
			return
		}
		http.SetCookie(q.w, &http.Cookie{Name: "XSRF-TOKEN", Value: url.QueryEscape(x), Path: "/", Secure: true, SameSite: http.SameSiteNoneMode})
	}
	writeHTML(q.w, http.StatusOK, `<!DOCTYPE html><html><head><title>Microsoft Defender</title></head><body><div id="root"></div></body></html>`)
}

func (t *Tenant) portalService() service {
	s := service{family: FamilyPortal, auth: t.portalAuth, fail: portalFail}
	add := s.routes.add
	add(http.MethodGet, "/", "", t.portalRoot)
	add(http.MethodPost, "/", "", t.portalSignIn)
	for _, p := range []string{"/apiproxy/mtp/actionCenter/actioncenterui/history-actions/", "/apiproxy/mtp/actionCenter/actioncenterui/history-actions"} {
		add(http.MethodGet, p, "", t.hActionCenter)
	}
	for _, pre := range []string{"/apiproxy/mtp/huntingService", "/apiproxy/hunting/huntingService"} {
		add(http.MethodGet, pre+"/rules/unified", "", t.hRules)
		add(http.MethodPost, pre+"/reports", "", t.hReports)
		add(http.MethodGet, pre+"/schema", "", t.hSchema)
	}
	add(http.MethodGet, "/apiproxy/mtp/mdeTimelineExperience/machines/{id}/events/", FamilyTimeline, t.hTimeline)
	add(http.MethodGet, "/apiproxy/mtp/mdeTimelineExperience/machines/{id}/events", FamilyTimeline, t.hTimeline)
	add(http.MethodGet, "/apiproxy/mtp/settings/GetAdvancedFeaturesSetting", "", t.hAdvancedFeatures)
	add(http.MethodGet, "/apiproxy/mtp/suppressionRulesService/suppressionRules", "", t.hSuppression)
	add(http.MethodGet, "/apiproxy/mtp/rbacManagementApi/rbac/machine_groups", "", t.hMachineGroups)
	add(http.MethodGet, "/apiproxy/mtp/responseApiPortal/apps/all", "", t.hConnectedApps)
	add(http.MethodGet, "/apiproxy/mtp/alertsApiService/workloads/disabled", "", t.hAlertService)
	add(http.MethodPost, "/apiproxy/mtp/alertsApiService/alerts", "", t.hAlerts)
	add(http.MethodGet, "/apiproxy/mtp/wdatpApi/dataexportsettings", "", t.hDataExport)
	add(http.MethodGet, "/apiproxy/mtp/liveResponseApi/get_properties", "", t.hLRProperties)
	add(http.MethodGet, "/apiproxy/mtp/liveResponseApi/library/get_files", "", t.hLibraryPortal)
	add(http.MethodGet, "/apiproxy/mtp/ndr/machines", "", t.hMachines)
	add(http.MethodGet, tenantContextPath, "", t.hTenantContext)
	add(http.MethodGet, "/apiproxy/mtp/responseApiPortal/requests/latest", "", t.hRequestsLatest)
	return s
}
