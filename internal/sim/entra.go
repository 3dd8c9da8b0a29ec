package sim

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Well-known resources (docs/REFERENCE.md §4.5, §3.1).
const (
	portalAppID    = "80ccca67-54bd-44ab-8625-4b79c4dc7775" // Microsoft 365 Security Center
	wdatpAppID     = "fc780465-2017-40d4-a0c5-307022471b92" // WindowsDefenderATP
	audPublic      = "https://api.securitycenter.microsoft.com"
	audPublicNew   = "https://api.security.microsoft.com"
	audWdatpLegacy = "https://securitycenter.onmicrosoft.com/windowsatpservice"
	audMTP         = "https://securitycenter.microsoft.com/mtp"
	audPortal      = "https://security.microsoft.com"
	audMonitor     = "https://monitor.azure.com"
)

// Resource groups decide which roles a token carries and who accepts it.
const (
	resPublic = "public"
	resLegacy = "legacy"
	resPortal = "portal"
	resOther  = "other"
	resManage = "manage" // Office 365 Management APIs
)

// knownResources maps lower-cased resource identifiers to (canonical
// audience, group). Graph tokens carry the app's resGraph roles (graph.go).
var knownResources = map[string][2]string{
	strings.ToLower(audPublic):      {audPublic, resPublic},
	strings.ToLower(audPublicNew):   {audPublicNew, resPublic},
	strings.ToLower(audWdatpLegacy): {audWdatpLegacy, resPublic},
	wdatpAppID:                      {wdatpAppID, resPublic},
	strings.ToLower(audMTP):         {audMTP, resLegacy},
	portalAppID:                     {portalAppID, resPortal},
	audPortal:                       {audPortal, resPortal},
	audGraph:                        {audGraph, resGraph},
	graphAppID:                      {graphAppID, resGraph},
	AuditResource:                   {AuditResource, resManage},
	// Logs Ingestion (docs/REFERENCE.md §5.2): the SDK asks for
	// "https://monitor.azure.com//.default"; the trailing slashes are trimmed.
	audMonitor:                 {audMonitor, resOther},
	"https://monitor.azure.us": {"https://monitor.azure.us", resOther},
	"https://monitor.azure.cn": {"https://monitor.azure.cn", resOther},
}

type entraApp struct {
	id, name, secret string
	roles            map[string][]string // resource group → app roles
}

func (t *Tenant) initApps() error {
	r := rngFor(t.w.seed, lblTenant, 8)
	mainID, restrictedID := guid(r), guid(r)
	mainSecret, err := randomSecret()
	if err != nil {
		return err
	}
	restrictedSecret, err := randomSecret()
	if err != nil {
		return err
	}
	t.apps = map[string]*entraApp{
		mainID: {id: mainID, name: "DefenderHarvester", secret: mainSecret, roles: map[string][]string{
			resPublic: {"Machine.Read.All", "Library.Manage"},
			resManage: {AuditRole, "ServiceHealth.Read"},
			resGraph:  {GraphRole},
		}},
		restrictedID: {id: restrictedID, name: "Reader-NoPermissions", secret: restrictedSecret, roles: map[string][]string{}},
	}
	t.creds = Credentials{
		TenantID: t.w.tenantID, ClientID: mainID, ClientSecret: mainSecret,
		RestrictedClientID: restrictedID, RestrictedClientSecret: restrictedSecret,
		LegacyClientID: mainID, LegacyClientSecret: mainSecret,
	}
	return nil
}

// ---- tokens ----

type claims struct {
	Aud      string   `json:"aud"`
	Iss      string   `json:"iss"`
	Iat      int64    `json:"iat"`
	Nbf      int64    `json:"nbf"`
	Exp      int64    `json:"exp"`
	AppID    string   `json:"appid"`
	AppIDAcr string   `json:"appidacr"`
	Idp      string   `json:"idp"`
	Oid      string   `json:"oid"`
	Roles    []string `json:"roles,omitempty"`
	Sub      string   `json:"sub"`
	Tid      string   `json:"tid"`
	Uti      string   `json:"uti"`
	Ver      string   `json:"ver"`
	// User tokens (delegated): who signed in and what they may do.
	Upn  string `json:"upn,omitempty"`
	Name string `json:"name,omitempty"`
	Scp  string `json:"scp,omitempty"`
}

func (t *Tenant) issuer() string { return "https://sts.windows.net/" + t.w.tenantID + "/" }

var b64 = base64.RawURLEncoding

func (t *Tenant) sign(c claims) string {
	h := b64.EncodeToString([]byte(`{"typ":"JWT","alg":"HS256","kid":"sim-hmac-1"}`))
	p := b64.EncodeToString(mustJSON(c))
	m := hmac.New(sha256.New, t.hmacKey)
	m.Write([]byte(h + "." + p))
	return h + "." + p + "." + b64.EncodeToString(m.Sum(nil))
}

// Token verification failures; messages are safe to show (no token text).
var (
	errTokenMalformed = errors.New("the access token is malformed")
	errTokenSignature = errors.New("the access token signature is invalid")
	errTokenExpired   = errors.New("the access token has expired")
	errTokenNotYet    = errors.New("the access token is not yet valid")
	errTokenIssuer    = errors.New("the access token was issued for another tenant")
)

// verify checks a bearer token minted by this tenant against the wall clock.
func (t *Tenant) verify(tok string) (*claims, error) {
	if len(tok) > 16<<10 {
		return nil, errTokenMalformed
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, errTokenMalformed
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		return nil, errTokenMalformed
	}
	m := hmac.New(sha256.New, t.hmacKey)
	m.Write([]byte(parts[0] + "." + parts[1]))
	if !hmac.Equal(sig, m.Sum(nil)) {
		return nil, errTokenSignature
	}
	payload, err := b64.DecodeString(parts[1])
	if err != nil {
		return nil, errTokenMalformed
	}
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, errTokenMalformed
	}
	now := t.clock().Unix()
	switch {
	case c.Iss != t.issuer() || c.Tid != t.w.tenantID:
		return nil, errTokenIssuer
	case now >= c.Exp:
		return nil, errTokenExpired
	case now < c.Nbf:
		return nil, errTokenNotYet
	}
	return &c, nil
}

// bearer extracts and verifies the Authorization header. present is false
// when the request carries no bearer token at all.
func (t *Tenant) bearer(r *http.Request) (c *claims, present bool, err error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, false, nil
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return nil, true, errTokenMalformed
	}
	c, err = t.verify(strings.TrimSpace(tok))
	return c, true, err
}

func audIn(c *claims, auds ...string) bool {
	for _, a := range auds {
		if strings.EqualFold(c.Aud, a) {
			return true
		}
	}
	return false
}

func hasRole(c *claims, roles ...string) bool {
	for _, have := range c.Roles {
		for _, want := range roles {
			if have == want {
				return true
			}
		}
	}
	return false
}

// ---- the Entra service ----

func (t *Tenant) entraService() service {
	s := service{family: FamilyEntra, fail: t.entraFail}
	s.routes.add(http.MethodGet, "/{tenant}/v2.0/.well-known/openid-configuration", "", t.openIDConfig)
	s.routes.add(http.MethodGet, "/common/discovery/instance", "", t.instanceDiscovery)
	s.routes.add(http.MethodPost, "/{tenant}/oauth2/v2.0/token", "", t.tokenEndpoint)
	s.routes.add(http.MethodGet, "/{tenant}/discovery/v2.0/keys", "", func(q *req) {
		q.json(http.StatusOK, json.RawMessage(`{"keys":[]}`)) // HMAC keys are never published
	})
	s.routes.add(http.MethodGet, "/{tenant}/oauth2/v2.0/authorize", "", t.authorize)
	s.routes.add(http.MethodPost, "/{tenant}/oauth2/v2.0/devicecode", "", t.deviceCodeEndpoint)
	s.routes.add(http.MethodGet, "/error", "", t.loginSeed)
	return s
}

// entraFail writes the AADSTS error envelope (docs/REFERENCE.md §4.3).
func (t *Tenant) entraFail(q *req, status int, code, msg string) {
	errCode, aad := "invalid_request", 900561
	switch status {
	case http.StatusNotFound:
		aad, msg = 90027, "The requested endpoint was not found: "+q.r.URL.Path
	case http.StatusMethodNotAllowed:
		aad, msg = 900561, "The endpoint only accepts "+allowed(q.svc.routes, q.r.URL.Path)+" requests. Received a "+q.r.Method+" request."
	case http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusInternalServerError:
		errCode, aad = "temporarily_unavailable", 50196
	}
	t.aadError(q, status, errCode, aad, msg)
}

func (t *Tenant) aadError(q *req, status int, code string, aad int, msg string) {
	trace, corr := correlationID(), correlationID()
	ts := t.clock().UTC().Format("2006-01-02 15:04:05Z")
	body := map[string]any{
		"error": code,
		"error_description": fmt.Sprintf("AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s",
			aad, msg, trace, corr, ts),
		"error_codes":    []int{aad},
		"timestamp":      ts,
		"trace_id":       trace,
		"correlation_id": corr,
		"error_uri":      "https://login.microsoftonline.com/error?code=" + fmt.Sprint(aad),
	}
	q.json(status, body)
}

// knownTenant resolves the tenant path segment.
func (t *Tenant) knownTenant(seg string) bool {
	seg = strings.ToLower(seg)
	return seg == t.w.tenantID || seg == t.w.orgName+".onmicrosoft.com" || seg == t.w.domain
}

func (t *Tenant) openIDConfig(q *req) {
	seg := strings.ToLower(q.vars["tenant"])
	tid := t.w.tenantID
	switch {
	case seg == "common" || seg == "organizations":
		tid = "{tenantid}"
	case !t.knownTenant(seg):
		t.aadError(q, http.StatusBadRequest, "invalid_tenant", 90002, fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", seg))
		return
	}
	pathTenant := tid
	if tid == "{tenantid}" {
		pathTenant = seg
	}
	base := "https://login.microsoftonline.com/" + pathTenant
	q.json(http.StatusOK, map[string]any{
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"issuer":                                "https://login.microsoftonline.com/" + tid + "/v2.0",
		"request_uri_parameter_supported":       false,
		"userinfo_endpoint":                     "https://graph.microsoft.com/oidc/userinfo",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"device_authorization_endpoint":         base + "/oauth2/v2.0/devicecode",
		"http_logout_supported":                 true,
		"frontchannel_logout_supported":         true,
		"end_session_endpoint":                  base + "/oauth2/v2.0/logout",
		"claims_supported":                      []string{"sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"},
		"kerberos_endpoint":                     base + "/kerberos",
		"tenant_region_scope":                   "EU",
		"cloud_instance_name":                   "microsoftonline.com",
		"cloud_graph_host_name":                 "graph.windows.net",
		"msgraph_host":                          "graph.microsoft.com",
		"rbac_url":                              "https://pas.windows.net",
	})
}

func (t *Tenant) instanceDiscovery(q *req) {
	tenant := "common"
	if ae := q.r.URL.Query().Get("authorization_endpoint"); ae != "" {
		u, err := url.Parse(ae)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			t.aadError(q, http.StatusBadRequest, "invalid_instance", 50049, "Unknown or invalid instance.")
			return
		}
		if seg := strings.Split(strings.TrimPrefix(u.Path, "/"), "/"); len(seg) > 0 && seg[0] != "" {
			tenant = seg[0]
		}
	}
	q.json(http.StatusOK, map[string]any{
		"tenant_discovery_endpoint": "https://login.microsoftonline.com/" + tenant + "/v2.0/.well-known/openid-configuration",
		"api-version":               "1.1",
		"metadata": []map[string]any{{
			"preferred_network": "login.microsoftonline.com",
			"preferred_cache":   "login.windows.net",
			"aliases":           []string{"login.microsoftonline.com", "login.windows.net", "login.microsoft.com", "sts.windows.net"},
		}},
	})
}

// tokenEndpoint implements the client-credentials grant. Other grants
// (device code, refresh token) plug in at the grant switch.
func (t *Tenant) tokenEndpoint(q *req) {
	seg := strings.ToLower(q.vars["tenant"])
	if seg == "common" || seg == "organizations" || seg == "consumers" {
		t.aadError(q, http.StatusBadRequest, "invalid_request", 50059, "No tenant-identifying information found in either the request or implied by any provided credentials.")
		return
	}
	if !t.knownTenant(seg) {
		t.aadError(q, http.StatusBadRequest, "invalid_request", 90002, fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", seg))
		return
	}
	if mt, _, _ := mime.ParseMediaType(q.r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		t.aadError(q, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
		return
	}
	q.r.Body = http.MaxBytesReader(q.w, q.r.Body, 1<<20)
	if err := q.r.ParseForm(); err != nil {
		t.aadError(q, http.StatusBadRequest, "invalid_request", 900144, "The request body could not be parsed as a form.")
		return
	}
	f := q.r.PostForm
	grant := f.Get("grant_type")
	switch grant {
	case "":
		t.aadError(q, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
	case "client_credentials":
		t.clientCredentials(q, f)
	case "urn:ietf:params:oauth:grant-type:device_code", "device_code":
		// MSAL Go sends the short form (docs/REFERENCE.md §4.2).
		t.deviceCodeGrant(q, f)
	case "refresh_token":
		t.refreshGrant(q, f)
	default:
		t.aadError(q, http.StatusBadRequest, "unsupported_grant_type", 70003, fmt.Sprintf("The app requested an unsupported grant type '%s'.", grant))
	}
}

func (t *Tenant) clientCredentials(q *req, f url.Values) {
	clientID, secret := f.Get("client_id"), f.Get("client_secret")
	if u, p, ok := q.r.BasicAuth(); ok {
		// RFC 6749 §2.3.1: Basic credentials are form-encoded first.
		if du, err := url.QueryUnescape(u); err == nil {
			u = du
		}
		if dp, err := url.QueryUnescape(p); err == nil {
			p = dp
		}
		if clientID != "" && clientID != u {
			t.aadError(q, http.StatusBadRequest, "invalid_request", 90014, "The client_id in the request body does not match the one in the Authorization header.")
			return
		}
		clientID, secret = u, p
	}
	if clientID == "" {
		t.aadError(q, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
		return
	}
	app, ok := t.apps[strings.ToLower(clientID)]
	if !ok {
		t.aadError(q, http.StatusBadRequest, "unauthorized_client", 700016, fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", clientID, t.w.tenantID))
		return
	}
	if secret == "" {
		t.aadError(q, http.StatusBadRequest, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
		return
	}
	if subtle.ConstantTimeCompare([]byte(secret), []byte(app.secret)) != 1 {
		t.aadError(q, http.StatusBadRequest, "invalid_client", 7000215, fmt.Sprintf("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", app.id))
		return
	}
	if code, msg := t.policyError(app.id, ""); code != 0 {
		t.aadError(q, http.StatusBadRequest, "invalid_grant", code, msg)
		return
	}
	// OIDC scopes are accepted and ignored: MSAL adds "openid
	// offline_access profile" to every request, client credentials too.
	var scopes []string
	for _, sc := range strings.Fields(f.Get("scope")) {
		switch strings.ToLower(sc) {
		case "openid", "offline_access", "profile", "email":
		default:
			scopes = append(scopes, sc)
		}
	}
	if len(scopes) != 1 || !strings.HasSuffix(scopes[0], "/.default") {
		t.aadError(q, http.StatusBadRequest, "invalid_scope", 70011, fmt.Sprintf("The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope %s is not valid. The client credentials flow needs exactly one scope of the form <resource>/.default.", strings.Join(scopes, " ")))
		return
	}
	resource := strings.TrimRight(strings.TrimSuffix(scopes[0], "/.default"), "/")
	res, ok := knownResources[strings.ToLower(resource)]
	if !ok {
		t.aadError(q, http.StatusBadRequest, "invalid_resource", 500011, fmt.Sprintf("The resource principal named %s was not found in the tenant named %s. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.", resource, t.w.tenantID))
		return
	}
	now := t.clock().UTC()
	life := t.opts.TokenLifetime
	r := rngFor(now.UnixNano(), strLabel(app.id))
	c := claims{
		Aud: res[0], Iss: t.issuer(), Iat: now.Unix(), Nbf: now.Unix(), Exp: now.Add(life).Unix(),
		AppID: app.id, AppIDAcr: "1", Idp: t.issuer(), Oid: app.id, Sub: app.id, Tid: t.w.tenantID,
		Uti: b64.EncodeToString([]byte(hexN(r, 16))), Ver: "1.0",
		Roles: append([]string(nil), app.roles[res[1]]...),
	}
	if res[1] == resManage && !t.auditRoleGranted() {
		c.Roles = nil
	}
	secs := int(life / time.Second)
	q.w.Header().Set("Cache-Control", "no-store, no-cache")
	q.json(http.StatusOK, map[string]any{
		"token_type": "Bearer", "expires_in": secs, "ext_expires_in": secs, "access_token": t.sign(c),
	})
}
