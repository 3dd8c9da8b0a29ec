package sim

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ---- portal session (reference §4.1, §4.3; decision 15) ----

// xsrfKeep is how many recently issued XSRF tokens stay valid per
// session, so a client that refreshes while requests are in flight is not
// broken.
const xsrfKeep = 16

// maxSessions bounds the session table: a client looping on sign-in cannot
// make the emulator grow without end.
const maxSessions = 4096

// portalSession is one signed-in portal session (one sccauth cookie) with
// its own XSRF tokens.
type portalSession struct {
	upn     string
	expires time.Time
	xsrf    []string // newest last
}

// sessions holds every live portal session. The default session is the
// one Credentials returns (minted at New, renewed by RevokePortalSession).
type sessions struct {
	mu    sync.Mutex
	clock func() time.Time
	life  time.Duration
	upn   string // the default session's user
	def   string // the default session's sccauth
	m     map[string]*portalSession
}

func newToken(n int, enc *base64.Encoding) (string, error) {
	b, err := randomBytes(n)
	if err != nil {
		return "", err
	}
	return enc.EncodeToString(b), nil
}

func newSessions(clock func() time.Time, life time.Duration, upn string) (*sessions, error) {
	s := &sessions{clock: clock, life: life, upn: upn, m: map[string]*portalSession{}}
	if err := s.reset(); err != nil {
		return nil, err
	}
	return s, nil
}

// mint starts a new session for upn and returns its cookies.
func (s *sessions) mint(upn string) (scc, xsrf string, err error) {
	if scc, err = newToken(384, base64.RawURLEncoding); err != nil {
		return "", "", err
	}
	if xsrf, err = newXSRF(); err != nil {
		return "", "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked()
	s.m[scc] = &portalSession{upn: upn, expires: s.clock().Add(s.life), xsrf: []string{xsrf}}
	return scc, xsrf, nil
}

// pruneLocked drops expired sessions and, over the bound, the oldest ones.
func (s *sessions) pruneLocked() {
	now := s.clock()
	for k, v := range s.m {
		if !now.Before(v.expires) {
			delete(s.m, k)
		}
	}
	for len(s.m) >= maxSessions {
		var oldest string
		for k, v := range s.m {
			if k != s.def && (oldest == "" || v.expires.Before(s.m[oldest].expires)) {
				oldest = k
			}
		}
		if oldest == "" {
			return
		}
		delete(s.m, oldest)
	}
}

// reset ends the default session and mints a new one.
func (s *sessions) reset() error {
	scc, _, err := s.mint(s.upn)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, s.def)
	s.def = scc
	return nil
}

// current returns the default session's cookies (empty once it expired).
func (s *sessions) current() (scc, xsrf string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps, ok := s.m[s.def]
	if !ok {
		return s.def, ""
	}
	return s.def, ps.xsrf[len(ps.xsrf)-1]
}

// lookup finds the live session of an sccauth value.
func (s *sessions) lookup(scc string) (*portalSession, bool) {
	if scc == "" {
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ps, ok := s.m[scc]
	if !ok {
		return nil, false
	}
	if !s.clock().Before(ps.expires) {
		delete(s.m, scc)
		return nil, false
	}
	return ps, true
}

// rotate issues a new XSRF token for the session scc.
func (s *sessions) rotate(scc string) (string, error) {
	x, err := newXSRF()
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ps, ok := s.m[scc]
	if !ok {
		return "", fmt.Errorf("sim: the portal session ended")
	}
	ps.xsrf = append(ps.xsrf, x)
	if len(ps.xsrf) > xsrfKeep {
		ps.xsrf = ps.xsrf[len(ps.xsrf)-xsrfKeep:]
	}
	return x, nil
}

// validXSRF reports whether v is one of the session's recent XSRF tokens.
func (s *sessions) validXSRF(ps *portalSession, v string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ok := false
	for _, x := range ps.xsrf {
		if v != "" && subtle.ConstantTimeCompare([]byte(v), []byte(x)) == 1 {
			ok = true
		}
	}
	return ok
}

// newXSRF is standard base64 ending in "=", so its cookie form is
// URL-encoded and differs from the header form, as on the real portal.
func newXSRF() (string, error) {
	for {
		x, err := newToken(64, base64.StdEncoding)
		if err != nil {
			return "", err
		}
		if strings.ContainsAny(x, "+/") {
			return x + "==", nil
		}
	}
}

// RevokePortalSession ends the default portal session: its sccauth and
// XSRF tokens stop working (302 / 401) and Credentials returns new ones,
// as after a fresh sign-in. Sessions signed in through Entra are not
// touched (see RevokeUserSessions).
func (t *Tenant) RevokePortalSession() error { return t.sess.reset() }

// ---- portal service ----

// portalFail writes the ASP.NET Web API error shape the MDE backends use.
func portalFail(q *req, status int, _ string, msg string) {
	q.json(status, map[string]string{"Message": msg})
}

// loginRedirect answers a request without a live session the way the
// portal does: 302 to Entra's authorize endpoint for the portal app,
// response_mode=form_post back to the portal URL. The tenant is the tid
// query parameter when given (reference §4.1), else "organizations".
func loginRedirect(q *req) {
	tenant := "organizations"
	if tid, ok := param(q, "tid"); ok && tid != "" {
		tenant = url.PathEscape(tid)
	}
	back := "https://" + q.host + "/"
	if tid, ok := param(q, "tid"); ok && tid != "" && q.r.URL.Path == "/" {
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
		return true // the landing page only needs the session cookie
	}
	if !t.sess.validXSRF(ps, q.r.Header.Get("X-XSRF-TOKEN")) {
		portalFail(q, http.StatusUnauthorized, "", "Authorization has been denied for this request: missing or invalid anti-forgery token.")
		return false
	}
	return t.portalRole(q)
}

// portalRole answers 403 for a signed-in user without a Defender role
// (reference §4.4: 403 is a permission problem, not an expired session).
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
	add(http.MethodGet, "/apiproxy/mtp/wdatpApi/dataexportsettings", "", t.hDataExport)
	add(http.MethodGet, "/apiproxy/mtp/liveResponseApi/get_properties", "", t.hLRProperties)
	add(http.MethodGet, "/apiproxy/mtp/liveResponseApi/library/get_files", "", t.hLibraryPortal)
	add(http.MethodGet, "/apiproxy/mtp/ndr/machines", "", t.hMachines)
	add(http.MethodGet, "/apiproxy/mtp/sccManagement/mgmt/TenantContext", "", t.hTenantContext)
	add(http.MethodGet, "/apiproxy/mtp/responseApiPortal/requests/latest", "", t.hRequestsLatest)
	return s
}

// ---- legacy regional hosts (reference §1.2, §1.3) ----

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

// ---- query helpers ----

// param reads a query parameter case-insensitively (ASP.NET binding).
func param(q *req, name string) (string, bool) {
	for k, v := range q.r.URL.Query() {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0], true
		}
	}
	return "", false
}

// intParam parses an integer parameter; bad input is a 400 written here.
func intParam(q *req, name string, def, min int) (int, bool) {
	s, ok := param(q, name)
	if !ok || s == "" {
		return def, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < min {
		q.svc.fail(q, http.StatusBadRequest, "BadRequest", fmt.Sprintf("The value '%s' is not valid for %s: use an integer of at least %d.", s, name, min))
		return 0, false
	}
	return n, true
}

func timeParam(q *req, name string) (time.Time, bool, bool) {
	s, ok := param(q, name)
	if !ok || s == "" {
		return time.Time{}, false, true
	}
	tm, err := parseTimeParam(s)
	if err != nil {
		q.svc.fail(q, http.StatusBadRequest, "BadRequest", fmt.Sprintf("The value '%s' is not valid for %s: use an ISO-8601 UTC date-time such as 2025-11-18T10:00:00.000Z.", s, name))
		return time.Time{}, false, false
	}
	return tm, true, true
}

func sortOrderParam(q *req, def string) (desc bool, ok bool) {
	s, present := param(q, "sortOrder")
	if !present || s == "" {
		s = def
	}
	switch strings.ToLower(s) {
	case "ascending":
		return false, true
	case "descending":
		return true, true
	}
	q.svc.fail(q, http.StatusBadRequest, "BadRequest", fmt.Sprintf("The value '%s' is not valid for sortOrder: use Ascending or Descending.", s))
	return false, false
}

func page[T any](xs []T, index, size int) []T {
	lo := (index - 1) * size
	if lo >= len(xs) || lo < 0 {
		return []T{}
	}
	hi := lo + size
	if hi > len(xs) {
		hi = len(xs)
	}
	return xs[lo:hi]
}

// ---- Action Center history (decision 1) ----

var acSortFields = map[string]func(*acRecord) string{
	"eventtime":       func(r *acRecord) string { return r.EventTime },
	"investigationid": func(r *acRecord) string { return fmt.Sprintf("%020d", derefInt(r.InvestigationID)) },
	"bulkid":          func(r *acRecord) string { return r.ActionID },
	"actiontype":      func(r *acRecord) string { return r.ActionType },
	"entitytype":      func(r *acRecord) string { return r.EntityType },
	"computername":    func(r *acRecord) string { return r.ComputerName },
	"actiondecision":  func(r *acRecord) string { return derefStr(r.ActionDecision) },
	"decidedby":       func(r *acRecord) string { return r.DecidedBy },
	"actionsource":    func(r *acRecord) string { return r.ActionSource },
	"actionstatus":    func(r *acRecord) string { return r.ActionStatus },
}

func derefInt(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

func derefStr(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

const (
	acDefaultPage = 30
	acMaxPage     = 1000
)

func (t *Tenant) hActionCenter(q *req) {
	idx, ok := intParam(q, "pageIndex", 1, 1)
	if !ok {
		return
	}
	size, ok := intParam(q, "pageSize", acDefaultPage, 1)
	if !ok {
		return
	}
	if size > acMaxPage {
		size = acMaxPage
	}
	field := "eventtime"
	if s, ok := param(q, "sortByField"); ok && s != "" {
		field = strings.ToLower(s)
	}
	key, known := acSortFields[field]
	if !known {
		portalFail(q, http.StatusBadRequest, "", fmt.Sprintf("The value '%s' is not valid for sortByField.", field))
		return
	}
	desc, ok := sortOrderParam(q, "Descending")
	if !ok {
		return
	}
	from, hasFrom, ok := timeParam(q, "fromDate")
	if !ok {
		return
	}
	to, hasTo, ok := timeParam(q, "toDate")
	if !ok {
		return
	}
	if !hasTo {
		to = q.now
	}
	if !hasFrom {
		from = t.retentionFrom(q.now)
	}
	if to.Before(from) {
		portalFail(q, http.StatusBadRequest, "", "fromDate must not be later than toDate.")
		return
	}
	rows := t.acRows(q.now, from, to)
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := key(rows[i]), key(rows[j])
		if a == b {
			a, b = rows[i].EventTime+rows[i].ActionID+rows[i].ActionStatus, rows[j].EventTime+rows[j].ActionID+rows[j].ActionStatus
		}
		if desc {
			return a > b
		}
		return a < b
	})
	q.json(http.StatusOK, struct {
		Count   int         `json:"Count"`
		Results []*acRecord `json:"Results"`
	}{len(rows), page(rows, idx, size)})
}

// ---- custom detection rules (decision 2) ----

func (t *Tenant) hRules(q *req) {
	idx, ok := intParam(q, "pageIndex", 1, 1)
	if !ok {
		return
	}
	size, ok := intParam(q, "pageSize", 30, 1)
	if !ok {
		return
	}
	if size > 10000 {
		size = 10000
	}
	desc, ok := sortOrderParam(q, "Ascending")
	if !ok {
		return
	}
	rules := t.w.rulesAt(q.now)
	sort.SliceStable(rules, func(i, j int) bool {
		if desc {
			return rules[i].ID > rules[j].ID
		}
		return rules[i].ID < rules[j].ID
	})
	q.json(http.StatusOK, page(rules, idx, size))
}

// ---- executed queries report (decision 3) ----

func (t *Tenant) hReports(q *req) {
	body, err := q.readBody(1 << 20)
	if err != nil {
		portalFail(q, http.StatusRequestEntityTooLarge, "", "The request body is too large.")
		return
	}
	var in struct {
		StartTime *string `json:"startTime"`
		EndTime   *string `json:"endTime"`
	}
	if err := json.Unmarshal(body, &in); err != nil || in.StartTime == nil || in.EndTime == nil {
		portalFail(q, http.StatusBadRequest, "", `The request body must be JSON {"startTime":"<ISO-8601>","endTime":"<ISO-8601>"}.`)
		return
	}
	from, err1 := parseTimeParam(*in.StartTime)
	to, err2 := parseTimeParam(*in.EndTime)
	switch {
	case err1 != nil || err2 != nil:
		portalFail(q, http.StatusBadRequest, "", "startTime and endTime must be ISO-8601 date-times.")
		return
	case !to.After(from):
		portalFail(q, http.StatusBadRequest, "", "endTime must be later than startTime.")
		return
	case to.Sub(from) > 30*24*time.Hour:
		portalFail(q, http.StatusBadRequest, "", "The time range must not exceed 30 days.")
		return
	}
	qs := t.executedQueries(q.now, from, to)
	out := make([]*queryRecord, len(qs))
	for i, r := range qs {
		out[len(qs)-1-i] = r // newest first
	}
	q.json(http.StatusOK, struct {
		Count   int            `json:"Count"`
		Results []*queryRecord `json:"Results"`
	}{len(out), out})
}

func (t *Tenant) hSchema(q *req) { q.json(http.StatusOK, huntingSchema()) }

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
	q.json(http.StatusOK, t.w.machineGroups(counts))
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
			LastUpdatedTime: fmt7Z(f.Created), HasParameters: f.HasParams}
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

// ---- device list (decision 12) ----

var riskRank = map[string]int{"None": 0, "Low": 1, "Medium": 2, "High": 3}

type ndrMachine struct {
	MachineID       string `json:"MachineId"`
	SenseMachineID  string `json:"SenseMachineId"`
	ComputerDNSName string `json:"ComputerDnsName"`
	OsPlatform      string `json:"OsPlatform"`
	LastSeen        string `json:"LastSeen"`
	FirstSeen       string `json:"FirstSeen"`
	HealthStatus    string `json:"HealthStatus"`
	RiskScore       string `json:"RiskScore"`
	Domain          string `json:"Domain"`
	lastSeen        time.Time
}

func (t *Tenant) lastSeen(m machine, now time.Time) time.Time {
	off := time.Duration(strLabel(m.ID)%3600) * time.Second
	if m.Health == "Inactive" {
		return t.w.start.Add(-10*24*time.Hour - off)
	}
	ls := now.Truncate(time.Hour).Add(-off)
	if ls.Before(m.FirstSeen) {
		ls = m.FirstSeen
	}
	return ls
}

func (t *Tenant) hMachines(q *req) {
	idx, ok := intParam(q, "pageIndex", 1, 1)
	if !ok {
		return
	}
	size, ok := intParam(q, "pageSize", 25, 1)
	if !ok {
		return
	}
	if size > 1000 {
		size = 1000
	}
	days, ok := intParam(q, "lookingBackIndays", 180, 1)
	if !ok {
		return
	}
	desc, ok := sortOrderParam(q, "Descending")
	if !ok {
		return
	}
	field := "riskscore"
	if s, ok := param(q, "sortByField"); ok && s != "" {
		field = strings.ToLower(s)
	}
	prefix, _ := param(q, "machineSearchPrefix")
	var ms []ndrMachine
	for _, m := range t.w.machines {
		if prefix != "" && !strings.HasPrefix(strings.ToLower(m.DNS), strings.ToLower(prefix)) {
			continue
		}
		ls := t.lastSeen(m, q.now)
		if ls.Before(q.now.Add(-time.Duration(days) * 24 * time.Hour)) {
			continue
		}
		ms = append(ms, ndrMachine{MachineID: m.ID, SenseMachineID: m.ID, ComputerDNSName: m.DNS, OsPlatform: m.OS,
			LastSeen: fmt7Z(ls), FirstSeen: fmt7Z(m.FirstSeen), HealthStatus: m.Health, RiskScore: m.RiskScore, Domain: m.Domain, lastSeen: ls})
	}
	var less func(a, b ndrMachine) int
	switch field {
	case "riskscore":
		less = func(a, b ndrMachine) int { return riskRank[a.RiskScore] - riskRank[b.RiskScore] }
	case "lastseen":
		less = func(a, b ndrMachine) int { return a.lastSeen.Compare(b.lastSeen) }
	case "computerdnsname":
		less = func(a, b ndrMachine) int { return strings.Compare(a.ComputerDNSName, b.ComputerDNSName) }
	default:
		portalFail(q, http.StatusBadRequest, "", fmt.Sprintf("The value '%s' is not valid for sortByField.", field))
		return
	}
	sort.SliceStable(ms, func(i, j int) bool {
		c := less(ms[i], ms[j])
		if c == 0 {
			return ms[i].MachineID < ms[j].MachineID // stable paging
		}
		if desc {
			return c > 0
		}
		return c < 0
	})
	q.json(http.StatusOK, page(ms, idx, size))
}

// ---- tenant context (decision 13) ----

func (t *Tenant) hTenantContext(q *req) {
	q.json(http.StatusOK, map[string]any{
		"AuthInfo":           map[string]any{"TenantId": t.w.tenantID, "UserName": t.w.users[0].UPN, "AadUserId": guid(rngFor(t.w.seed, lblTenant, 9))},
		"EnvironmentName":    "Prod",
		"OrgId":              t.w.tenantID,
		"GeoRegion":          "EU",
		"DataCenter":         "WEU",
		"IsMdatpActive":      true,
		"IsSentinelActive":   false,
		"IsMdiActive":        true,
		"ActiveMtpWorkloads": []string{"Mdatp", "Mdi", "Oatp", "Mcas"},
		"Features":           map[string]bool{"AutoIRLibraryApi": true, "HuntingSccProxyMigration": true, "HuntingQueryExecutorSccProxyMigration": true, "UseNewHuntingReportsProvider": true, "ResponseActionCenterNewPipeline": true},
	})
}

// ---- per-device response requests (reference §3.2) ----

var requestTypeOf = map[string]string{
	"Isolate": "IsolationResponse", "Unisolate": "IsolationResponse", "RunAntiVirusScan": "ScanResponse",
	"CollectInvestigationPackage": "ForensicsResponse", "StopAndQuarantineFile": "StopAndQuarantineFileResponse",
	"RestrictCodeExecution": "RestrictExecutionResponse", "UnrestrictCodeExecution": "RestrictExecutionResponse",
	"LiveResponse": "LiveResponse",
}

func (t *Tenant) hRequestsLatest(q *req) {
	id, _ := param(q, "machineId")
	m, ok := t.w.machine(id)
	if !ok {
		portalFail(q, http.StatusBadRequest, "", "machineId must name a known device (40-hex SenseMachineId).")
		return
	}
	latest := map[string]maRecord{}
	for _, a := range t.machineActions(q.now, t.retentionFrom(q.now), q.now) {
		if a.MachineID == m.ID {
			latest[requestTypeOf[a.Type]] = a // ascending by creation: the last wins
		}
	}
	type request struct {
		RequestGUID        string `json:"RequestGuid"`
		MachineID          string `json:"MachineId"`
		RequestStatus      string `json:"RequestStatus"`
		Type               string `json:"Type"`
		RequestorComment   string `json:"RequestorComment"`
		Requestor          string `json:"Requestor"`
		CreationDateTime   string `json:"CreationDateTimeUtc"`
		LastUpdateDateTime string `json:"LastUpdateDateTimeUtc"`
		OsPlatform         string `json:"OsPlatform"`
		SenseClientVersion string `json:"SenseClientVersion"`
	}
	out := []request{}
	for typ, a := range latest {
		out = append(out, request{a.ID, m.ID, a.Status, typ, a.RequestorComment, a.Requestor, a.CreationDateTimeUtc, a.LastUpdateDateTimeUtc, m.OS, "10.8760.26100.1000"})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Type < out[j].Type })
	q.json(http.StatusOK, out)
}
