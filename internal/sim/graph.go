package sim

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Microsoft Graph (graph.microsoft.com): the custom detection rules of
// security/rules/detectionRules (shared reference portal-apis §8.4), built
// from the same rules as the portal's custom detections (snapshots.go).
const (
	// GraphHost is Microsoft Graph's host.
	GraphHost = "graph.microsoft.com"
	// FamilyGraph counts and targets (faults) Microsoft Graph.
	FamilyGraph = "graph"
	// GraphRole is the application permission the rules need.
	GraphRole = "CustomDetection.Read.All"
	// GraphPageCap is the most rules one page holds, whatever $top asks:
	// small, so a list of the seeded rules spans several pages.
	GraphPageCap = 3

	audGraph   = "https://graph.microsoft.com"
	graphAppID = "00000003-0000-0000-c000-000000000000" // Microsoft Graph's application id
	resGraph   = "graph"
	// graphRuleModifier is who the portal names as the last editor of an
	// auto-disabled rule (world.rulesAt).
	graphRuleModifier = "Microsoft Defender"
	lblGraph          = 0x6a0f
)

// graphRoles are the permissions that read the rules, least privileged
// first.
var graphRoles = []string{GraphRole, "CustomDetection.ReadWrite.All"}

func (t *Tenant) graphService() service {
	s := service{family: FamilyGraph, fail: graphFail, auth: t.graphAuth}
	for _, v := range []string{"beta", "v1.0"} {
		s.routes.add(http.MethodGet, "/"+v+"/security/rules/detectionRules", "", t.hDetectionRules)
	}
	return s
}

// graphFail writes Graph's error envelope: {"error":{"code","message",
// "innerError":{"date","request-id","client-request-id"}}}. A path Graph
// does not know is a 400 naming the segment, as Graph answers.
func graphFail(q *req, status int, code, msg string) {
	switch {
	case status == http.StatusNotFound && code == "NotFound":
		status, code = http.StatusBadRequest, "BadRequest"
		segs := strings.Split(strings.Trim(q.r.URL.Path, "/"), "/")
		if v := segs[0]; v != "beta" && v != "v1.0" {
			msg = fmt.Sprintf("Invalid version: %s", v)
		} else {
			msg = fmt.Sprintf("Resource not found for the segment '%s'.", segs[len(segs)-1])
		}
	case status == http.StatusMethodNotAllowed:
		code = "Request_BadRequest"
	}
	id := correlationID()
	q.json(status, map[string]any{"error": map[string]any{"code": code, "message": msg,
		"innerError": map[string]string{"date": time.Now().UTC().Format("2006-01-02T15:04:05"), "request-id": id, "client-request-id": id}}})
}

// graphAuth accepts a token of this tenant for Microsoft Graph (audience
// https://graph.microsoft.com or Graph's application id); what a route
// needs beyond that (roles, scopes) the route checks.
func (t *Tenant) graphAuth(q *req) bool {
	c, present, err := t.bearer(q.r)
	switch {
	case !present:
		graphFail(q, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token is empty.")
		return false
	case err == errTokenExpired:
		graphFail(q, http.StatusUnauthorized, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")
		return false
	case err == errTokenIssuer:
		graphFail(q, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure. Invalid issuer.")
		return false
	case err != nil:
		graphFail(q, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure.")
		return false
	case !audIn(c, audGraph, graphAppID):
		graphFail(q, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
		return false
	}
	q.claims = c
	return true
}

// needGraphRole checks an app token's roles (or a user token's delegated
// scopes) for one of roles, answering 403 as Graph does otherwise.
func needGraphRole(q *req, roles ...string) bool {
	c := q.claims
	if c.Upn != "" {
		for _, have := range strings.Fields(c.Scp) {
			for _, want := range roles {
				if have == want {
					return true
				}
			}
		}
		graphFail(q, http.StatusForbidden, "Forbidden", fmt.Sprintf("Missing scope permissions on the request. API requires one of '%s'. Scopes on the request '%s'.", strings.Join(roles, ", "), c.Scp))
		return false
	}
	if hasRole(c, roles...) {
		return true
	}
	graphFail(q, http.StatusForbidden, "Forbidden", fmt.Sprintf("Missing role permissions on the request. API requires one of '%s'. Roles on the request '%s'.", strings.Join(roles, ", "), strings.Join(c.Roles, ", ")))
	return false
}

// ---- the rules, as Graph shows them ----

type graphRule struct {
	ODataType            string               `json:"@odata.type"`
	ID                   string               `json:"id"`
	DisplayName          string               `json:"displayName"`
	IsEnabled            bool                 `json:"isEnabled"`
	CreatedBy            string               `json:"createdBy"`
	CreatedDateTime      string               `json:"createdDateTime"`
	LastModifiedDateTime string               `json:"lastModifiedDateTime"`
	LastModifiedBy       string               `json:"lastModifiedBy"`
	DetectorID           string               `json:"detectorId"`
	QueryCondition       graphQueryCondition  `json:"queryCondition"`
	Schedule             graphSchedule        `json:"schedule"`
	LastRunDetails       graphRunDetails      `json:"lastRunDetails"`
	DetectionAction      graphDetectionAction `json:"detectionAction"`
}

type graphQueryCondition struct {
	QueryText            string  `json:"queryText"`
	LastModifiedDateTime *string `json:"lastModifiedDateTime"` // deprecated; null
}

type graphSchedule struct {
	Period          string  `json:"period"`
	NextRunDateTime *string `json:"nextRunDateTime"`
}

type graphRunDetails struct {
	LastRunDateTime *string `json:"lastRunDateTime"`
	Status          *string `json:"status"`
	FailureReason   *string `json:"failureReason"`
	ErrorCode       *string `json:"errorCode"`
}

type graphDetectionAction struct {
	AlertTemplate       graphAlertTemplate `json:"alertTemplate"`
	OrganizationalScope any                `json:"organizationalScope"`
	ResponseActions     []any              `json:"responseActions"`
}

type graphAlertTemplate struct {
	Title              string              `json:"title"`
	Description        string              `json:"description"`
	Severity           string              `json:"severity"`
	Category           string              `json:"category"`
	RecommendedActions *string             `json:"recommendedActions"`
	MitreTechniques    []string            `json:"mitreTechniques"`
	ImpactedAssets     []map[string]string `json:"impactedAssets"`
}

// graphCategory is the alert category of a rule's first MITRE technique.
var graphCategory = map[string]string{
	"T1003": "CredentialAccess", "T1059": "Execution", "T1053": "Persistence", "T1027": "DefenseEvasion",
	"T1562": "DefenseEvasion", "T1486": "Impact", "T1055": "DefenseEvasion",
}

// graphFailureReason is the failure of the failing rules' runs (the
// portal says the query exceeded its CPU quota).
const graphFailureReason = "The query was preempted after using too much CPU or memory. Optimize the query and try again."

// graphRulesAt is every rule that exists at now, as Graph shows it, by
// ascending id. It reads the rules the portal's custom detections are
// built from, in their state at now (world.rulesStateAt: the edits made
// by then, the last editor and edit time — the creator, a user who
// edited the rule, or "Microsoft Defender" at an auto-disable).
func (t *Tenant) graphRulesAt(now time.Time) []graphRule {
	var out []graphRule
	for _, d := range t.w.rulesStateAt(now) {
		g := graphRule{
			ODataType: "#microsoft.graph.security.detectionRule",
			ID:        strconv.FormatInt(d.ID, 10), DisplayName: d.Name, IsEnabled: d.enabledAt(now),
			CreatedBy: d.CreatedBy, CreatedDateTime: fmt7Z(d.Created),
			LastModifiedBy: d.UpdatedBy, LastModifiedDateTime: fmt7Z(d.Updated),
			DetectorID:     guid(rngFor(t.w.seed, lblGraph, uint64(d.ID))),
			QueryCondition: graphQueryCondition{QueryText: d.Query},
			Schedule:       graphSchedule{Period: "0"},
		}
		if d.Frequency > 0 {
			g.Schedule.Period = strconv.Itoa(d.Frequency) + "H"
		}
		if nr, ok := d.nextRun(now); ok {
			s := fmt7Z(nr)
			g.Schedule.NextRunDateTime = &s
		}
		if lr, ok := d.lastRun(now); ok {
			s, status := fmt7Z(lr), "completed"
			if d.Failing {
				status = "failed"
				reason, code := graphFailureReason, "queryLimitsExceeded"
				g.LastRunDetails.FailureReason, g.LastRunDetails.ErrorCode = &reason, &code
			}
			g.LastRunDetails.LastRunDateTime, g.LastRunDetails.Status = &s, &status
		}
		category := "SuspiciousActivity"
		if len(d.Mitre) > 0 {
			if c, ok := graphCategory[strings.SplitN(d.Mitre[0], ".", 2)[0]]; ok {
				category = c
			}
		}
		g.DetectionAction = graphDetectionAction{
			AlertTemplate: graphAlertTemplate{
				Title: d.Name, Description: "Custom detection: " + d.Name, Severity: strings.ToLower(d.Severity),
				Category: category, MitreTechniques: append([]string{}, d.Mitre...),
				ImpactedAssets: []map[string]string{{"@odata.type": "#microsoft.graph.security.impactedDeviceAsset", "identifier": "deviceId"}},
			},
			ResponseActions: []any{},
		}
		out = append(out, g)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, _ := strconv.ParseInt(out[i].ID, 10, 64)
		b, _ := strconv.ParseInt(out[j].ID, 10, 64)
		return a < b
	})
	return out
}

// ---- GET /{beta|v1.0}/security/rules/detectionRules ----

// graphSkipToken is the opaque continuation of a list: the offset of the
// next page's first rule.
func graphSkipToken(off int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("detectionRules:" + strconv.Itoa(off)))
}

func parseGraphSkipToken(s string) (int, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return 0, false
	}
	n, ok := strings.CutPrefix(string(b), "detectionRules:")
	if !ok {
		return 0, false
	}
	off, err := strconv.Atoi(n)
	return off, err == nil && off >= 0 && strconv.Itoa(off) == n
}

// hDetectionRules serves the rules server-paged: at most GraphPageCap per
// page ($top, when smaller, is the page size), @odata.nextLink carrying
// $top, $count and a $skiptoken while rules remain; $count=true adds
// @odata.count.
func (t *Tenant) hDetectionRules(q *req) {
	if !needGraphRole(q, graphRoles...) {
		return
	}
	v := q.r.URL.Query()
	for k, vals := range v {
		switch k {
		case "$top", "$count", "$skiptoken":
			if len(vals) > 1 {
				graphFail(q, http.StatusBadRequest, "BadRequest", fmt.Sprintf("The query specified in the URI is not valid. Query option '%s' was specified more than once, but it must be specified at most once.", strings.TrimPrefix(k, "$")))
				return
			}
		default:
			if strings.HasPrefix(k, "$") {
				graphFail(q, http.StatusBadRequest, "BadRequest", fmt.Sprintf("The query option '%s' is not supported by this emulated endpoint.", k))
				return
			}
		}
	}
	size := GraphPageCap
	if v.Has("$top") {
		n, err := strconv.Atoi(v.Get("$top"))
		if err != nil || n < 1 {
			graphFail(q, http.StatusBadRequest, "BadRequest", fmt.Sprintf("Invalid value '%s' for $top query option found. The $top query option requires a positive integer value.", v.Get("$top")))
			return
		}
		size = min(n, GraphPageCap)
	}
	count := false
	if v.Has("$count") {
		switch strings.ToLower(v.Get("$count")) {
		case "true":
			count = true
		case "false":
		default:
			graphFail(q, http.StatusBadRequest, "BadRequest", fmt.Sprintf("'%s' is not a valid count option.", v.Get("$count")))
			return
		}
	}
	rules := t.graphRulesAt(q.now)
	off := 0
	if v.Has("$skiptoken") {
		var ok bool
		if off, ok = parseGraphSkipToken(v.Get("$skiptoken")); !ok || off > len(rules) {
			graphFail(q, http.StatusBadRequest, "BadRequest", "The skip token is not valid.")
			return
		}
	}
	end := min(off+size, len(rules))
	page := rules[off:end]
	version := strings.ToLower(strings.Split(strings.TrimPrefix(q.r.URL.Path, "/"), "/")[0])
	var out struct {
		Context  string      `json:"@odata.context"`
		Count    *int        `json:"@odata.count,omitempty"`
		NextLink string      `json:"@odata.nextLink,omitempty"`
		Value    []graphRule `json:"value"`
	}
	out.Context = "https://" + GraphHost + "/" + version + "/$metadata#security/rules/detectionRules"
	out.Value = append([]graphRule{}, page...)
	if count {
		n := len(rules)
		out.Count = &n
	}
	if end < len(rules) {
		var parts []string
		if v.Has("$top") {
			parts = append(parts, "$top="+v.Get("$top"))
		}
		if v.Has("$count") {
			parts = append(parts, "$count="+v.Get("$count"))
		}
		parts = append(parts, "$skiptoken="+graphSkipToken(end))
		out.NextLink = "https://" + GraphHost + q.r.URL.Path + "?" + strings.Join(parts, "&")
	}
	q.json(http.StatusOK, out)
}
