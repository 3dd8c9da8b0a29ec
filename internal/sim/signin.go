package sim

import (
	"crypto/subtle"
	"fmt"
	"html"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// User sign-in: device code, refresh tokens, the ESTS-cookie → portal
// session flow (docs/REFERENCE.md §1.3, §4.1–§4.4) and the failure knobs
// doctor needs (Conditional Access, MFA, missing role, wrong region).

// First-party public clients (docs/REFERENCE.md §4.5, §1.4). All three
// are in the Microsoft "family of client ids" (FOCI).
const (
	clientAzureCLI        = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
	clientTeams           = "1fec8e78-bce4-4aaf-ab1b-5451cc387264"
	clientAzurePowerShell = "1950a258-227b-4e31-a9cf-717495945fc2"
)

var fociClients = map[string]bool{clientAzureCLI: true, clientTeams: true, clientAzurePowerShell: true}

const (
	deviceCodeLife  = 15 * time.Minute       // Entra's default expires_in (900)
	authCodeLife    = 5 * time.Minute        // authorization codes are short-lived
	refreshIdle     = 90 * 24 * time.Hour    // refresh tokens die after 90 days unused
	estsCookieLife  = 90 * 24 * time.Hour    // "stay signed in" cookie
	defaultSession  = 4 * time.Hour          // the portal's observed session cap (docs/REFERENCE.md §1.5)
	maxPending      = 4096                   // bound on codes and tokens kept
	userCodeLetters = "BCDFGHJKLMNPQRSTVWXZ" // no vowels: no words by accident
)

// signInUser is a user who can sign in. Analysts (the world's users) hold a
// Defender role; the extra reader holds none (portal 403).
type signInUser struct {
	upn, name, oid string
	defenderRole   bool
}

type deviceCode struct {
	device, user, client string
	scopes               []string
	expires              time.Time
	upn                  string // set when approved
	declined             bool
	polls                int
}

type refreshToken struct {
	upn, client string
	scopes      []string
	lastUsed    time.Time
	revoked     bool
}

type authCode struct {
	upn, redirect, idToken string
	expires                time.Time
	fields                 [][2]string // the portal form, for the App Control hop
}

type signinState struct {
	mu       sync.Mutex
	devices  map[string]*deviceCode // by device_code
	byUser   map[string]*deviceCode // by user_code
	refresh  map[string]*refreshToken
	ests     map[string]*estsCookie
	codes    map[string]*authCode // by code
	mcas     map[string]*authCode // App Control hop, by id_token
	caBlock  map[string]bool      // lower-case client ids and UPNs
	mfa      map[string]bool      // lower-case UPNs
	noRole   string
	analysts []string
}

type estsCookie struct {
	upn     string
	expires time.Time
}

func (t *Tenant) initSignIn() error {
	t.users = map[string]*signInUser{}
	st := &signinState{
		devices: map[string]*deviceCode{}, byUser: map[string]*deviceCode{}, refresh: map[string]*refreshToken{},
		ests: map[string]*estsCookie{}, codes: map[string]*authCode{}, mcas: map[string]*authCode{},
		caBlock: map[string]bool{}, mfa: map[string]bool{},
	}
	add := func(upn, name string, role bool) {
		t.users[strings.ToLower(upn)] = &signInUser{upn: upn, name: name, oid: guid(rngFor(t.w.seed, lblTenant, strLabel(upn))), defenderRole: role}
	}
	for _, u := range t.w.users {
		add(u.UPN, u.Name, true)
		st.analysts = append(st.analysts, u.UPN)
	}
	st.noRole = "reader.norole@" + t.w.domain
	add(st.noRole, "reader.norole", false)
	for _, s := range t.opts.ConditionalAccessBlock {
		st.caBlock[strings.ToLower(s)] = true
	}
	for _, s := range t.opts.MFARequired {
		st.mfa[strings.ToLower(s)] = true
	}
	t.si = st
	t.creds.UserUPN, t.creds.NoRoleUPN = st.analysts[0], st.noRole
	t.creds.ESTSAuthPersistent = t.MintESTSCookie(st.analysts[0])
	if t.creds.ESTSAuthPersistent == "" {
		return fmt.Errorf("sim: minting the ESTS cookie failed")
	}
	return nil
}

func (t *Tenant) signInUser(upn string) (*signInUser, bool) {
	u, ok := t.users[strings.ToLower(upn)]
	return u, ok
}

// MintESTSCookie returns a new ESTSAUTHPERSISTENT value for a user of the
// tenant ("" for an unknown user), as a browser sign-in with "stay signed
// in" would leave behind.
func (t *Tenant) MintESTSCookie(upn string) string {
	u, ok := t.signInUser(upn)
	if !ok {
		return ""
	}
	v, err := newToken(512, b64)
	if err != nil {
		return ""
	}
	t.si.mu.Lock()
	defer t.si.mu.Unlock()
	if len(t.si.ests) >= maxPending {
		now := t.clock()
		for k, c := range t.si.ests {
			if !now.Before(c.expires) {
				delete(t.si.ests, k)
			}
		}
	}
	t.si.ests[v] = &estsCookie{upn: u.upn, expires: t.clock().Add(estsCookieLife)}
	return v
}

// RevokeUserSessions ends everything a user signed in with: refresh tokens
// (then 400 AADSTS50173), ESTS cookies (then 50058) and portal sessions
// obtained through sign-in. The default session (Credentials) is left alone.
func (t *Tenant) RevokeUserSessions(upn string) error {
	u, ok := t.signInUser(upn)
	if !ok {
		return fmt.Errorf("sim: %q is not a user of this tenant: use Credentials().UserUPN or NoRoleUPN", upn)
	}
	t.si.mu.Lock()
	for _, r := range t.si.refresh {
		if r.upn == u.upn {
			r.revoked = true
		}
	}
	for k, c := range t.si.ests {
		if c.upn == u.upn {
			delete(t.si.ests, k)
		}
	}
	t.si.mu.Unlock()
	t.sess.mu.Lock()
	for k, s := range t.sess.m {
		if s.upn == u.upn && k != t.sess.def {
			delete(t.sess.m, k)
		}
	}
	t.sess.mu.Unlock()
	return nil
}

// SetConditionalAccessBlock blocks (or unblocks) a client id or a UPN by
// Conditional Access: AADSTS53003 at the token endpoint and on sign-in.
func (t *Tenant) SetConditionalAccessBlock(clientOrUPN string, blocked bool) {
	t.si.mu.Lock()
	defer t.si.mu.Unlock()
	t.si.caBlock[strings.ToLower(clientOrUPN)] = blocked
}

// SetMFARequired makes sign-ins of upn need MFA the client cannot satisfy
// (AADSTS50076).
func (t *Tenant) SetMFARequired(upn string, required bool) {
	t.si.mu.Lock()
	defer t.si.mu.Unlock()
	t.si.mfa[strings.ToLower(upn)] = required
}

// policyError returns the AADSTS code blocking client+upn (0: none).
func (t *Tenant) policyError(client, upn string) (int, string) {
	t.si.mu.Lock()
	defer t.si.mu.Unlock()
	switch {
	case t.si.caBlock[strings.ToLower(client)] || (upn != "" && t.si.caBlock[strings.ToLower(upn)]):
		return 53003, "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance."
	case upn != "" && t.si.mfa[strings.ToLower(upn)]:
		return 50076, "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '" + portalAppID + "'."
	}
	return 0, ""
}

// publicClient reports whether client may use user flows without a secret:
// the first-party FOCI clients, and the tenant's main app (public client
// flows allowed).
func (t *Tenant) publicClient(client string) bool {
	return fociClients[client] || client == t.creds.ClientID
}

// ---- scopes ----

type userScope struct {
	aud, group string
	granted    string // the response's scope
	refresh    bool   // offline_access asked
	openid     bool
	requested  []string
}

// resolveScopes maps a user-flow scope list to one resource.
func resolveScopes(raw string) (userScope, string) {
	var us userScope
	var resource string
	for _, sc := range strings.Fields(raw) {
		switch strings.ToLower(sc) {
		case "offline_access":
			us.refresh = true
			continue
		case "openid":
			us.openid = true
			continue
		case "profile", "email":
			continue
		}
		i := strings.LastIndex(sc, "/")
		if i <= 0 || i == len(sc)-1 {
			return us, fmt.Sprintf("The provided value for the input parameter 'scope' is not valid. The scope %s is not valid.", sc)
		}
		r := strings.TrimRight(sc[:i], "/")
		if resource != "" && !strings.EqualFold(resource, r) {
			return us, "The provided value for the input parameter 'scope' is not valid: scopes for more than one resource were requested; ask for one resource per token."
		}
		resource = r
		us.requested = append(us.requested, sc)
	}
	if resource == "" {
		return us, "The provided value for the input parameter 'scope' is not valid. Ask for a resource scope such as https://api.securitycenter.microsoft.com/.default."
	}
	res, ok := knownResources[strings.ToLower(resource)]
	if !ok {
		return us, fmt.Sprintf("The resource principal named %s was not found in the tenant.", resource)
	}
	us.aud, us.group = res[0], res[1]
	sep := "/"
	if strings.HasSuffix(res[0], "/") || strings.HasPrefix(res[0], "https://monitor.azure") {
		sep = "//"
	}
	us.granted = strings.Join(append([]string{res[0] + sep + "user_impersonation"}, us.requested...), " ")
	return us, ""
}

// delegated is what a user's token may do per resource group.
func delegated(u *signInUser, group string) string {
	if !u.defenderRole {
		return "user_impersonation"
	}
	if group == resPublic {
		return "Machine.Read Machine.LiveResponse Library.Manage AdvancedQuery.Read user_impersonation"
	}
	return "user_impersonation"
}

// issueUserTokens writes the user-flow success body (docs/REFERENCE.md §4.2).
func (t *Tenant) issueUserTokens(q *req, client string, u *signInUser, us userScope, rawScope string) {
	now := t.clock().UTC()
	life := t.opts.TokenLifetime
	r := rngFor(now.UnixNano(), strLabel(u.upn+client))
	c := claims{
		Aud: us.aud, Iss: t.issuer(), Iat: now.Unix(), Nbf: now.Unix(), Exp: now.Add(life).Unix(),
		AppID: client, AppIDAcr: "0", Idp: t.issuer(), Oid: u.oid, Sub: hexN(r, 22), Tid: t.w.tenantID,
		Uti: b64.EncodeToString([]byte(hexN(r, 16))), Ver: "1.0", Upn: u.upn, Name: u.name, Scp: delegated(u, us.group),
	}
	secs := int(life / time.Second)
	body := map[string]any{
		"token_type": "Bearer", "scope": us.granted, "expires_in": secs, "ext_expires_in": secs, "access_token": t.sign(c),
	}
	if us.refresh {
		rt, err := newToken(192, b64)
		if err != nil {
			t.aadError(q, http.StatusInternalServerError, "temporarily_unavailable", 50196, "The server is temporarily unavailable.")
			return
		}
		t.si.mu.Lock()
		if len(t.si.refresh) >= maxPending {
			for k, v := range t.si.refresh {
				if v.revoked || now.Sub(v.lastUsed) > refreshIdle {
					delete(t.si.refresh, k)
				}
			}
		}
		t.si.refresh["1."+rt] = &refreshToken{upn: u.upn, client: client, scopes: strings.Fields(rawScope), lastUsed: now}
		t.si.mu.Unlock()
		body["refresh_token"] = "1." + rt
	}
	if us.openid {
		body["id_token"] = t.idToken(client, u, now, "")
	}
	if q.r.PostForm.Get("client_info") == "1" {
		body["client_info"] = b64.EncodeToString(mustJSON(map[string]string{"uid": u.oid, "utid": t.w.tenantID}))
	}
	if fociClients[client] {
		body["foci"] = "1"
	}
	q.w.Header().Set("Cache-Control", "no-store, no-cache")
	q.json(http.StatusOK, body)
}

// idToken is a v2 OIDC id_token (unpadded base64url parts, HMAC-signed: no
// client checks its signature).
func (t *Tenant) idToken(client string, u *signInUser, now time.Time, nonce string) string {
	h := b64.EncodeToString([]byte(`{"typ":"JWT","alg":"HS256","kid":"sim-hmac-1"}`))
	p := map[string]any{
		"aud": client, "iss": "https://login.microsoftonline.com/" + t.w.tenantID + "/v2.0",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"name": u.name, "oid": u.oid, "preferred_username": u.upn, "sub": u.oid, "tid": t.w.tenantID, "ver": "2.0",
	}
	if nonce != "" {
		p["nonce"] = nonce
	}
	pl := b64.EncodeToString(mustJSON(p))
	return h + "." + pl + "." + b64.EncodeToString([]byte(hexN(rngFor(now.UnixNano(), strLabel(u.upn)), 32)))
}

// ---- device code (docs/REFERENCE.md §4.2) ----

func (t *Tenant) parseForm(q *req) bool {
	if mt, _, _ := mime.ParseMediaType(q.r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		t.aadError(q, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
		return false
	}
	q.r.Body = http.MaxBytesReader(q.w, q.r.Body, 1<<20)
	if err := q.r.ParseForm(); err != nil {
		t.aadError(q, http.StatusBadRequest, "invalid_request", 900144, "The request body could not be parsed as a form.")
		return false
	}
	return true
}

func (t *Tenant) deviceCodeEndpoint(q *req) {
	seg := strings.ToLower(q.vars["tenant"])
	if seg != "common" && seg != "organizations" && !t.knownTenant(seg) {
		t.aadError(q, http.StatusBadRequest, "invalid_request", 90002, fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", seg))
		return
	}
	if !t.parseForm(q) {
		return
	}
	f := q.r.PostForm
	client := strings.ToLower(f.Get("client_id"))
	switch {
	case client == "":
		t.aadError(q, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
		return
	case !t.publicClient(client):
		t.aadError(q, http.StatusBadRequest, "unauthorized_client", 700016, fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s', or it does not allow public client flows.", client, t.w.tenantID))
		return
	case f.Get("scope") == "":
		t.aadError(q, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'scope'.")
		return
	}
	if _, msg := resolveScopes(f.Get("scope")); msg != "" {
		t.aadError(q, http.StatusBadRequest, "invalid_scope", 70011, msg)
		return
	}
	dev, err := newToken(96, b64)
	if err != nil {
		t.aadError(q, http.StatusInternalServerError, "temporarily_unavailable", 50196, "The server is temporarily unavailable.")
		return
	}
	rb, err := randomBytes(9)
	if err != nil {
		t.aadError(q, http.StatusInternalServerError, "temporarily_unavailable", 50196, "The server is temporarily unavailable.")
		return
	}
	uc := make([]byte, 9)
	for i, b := range rb {
		uc[i] = userCodeLetters[int(b)%len(userCodeLetters)]
	}
	d := &deviceCode{device: dev, user: string(uc), client: client, scopes: strings.Fields(f.Get("scope")), expires: t.clock().Add(deviceCodeLife)}
	t.si.mu.Lock()
	if len(t.si.devices) >= maxPending {
		now := t.clock()
		for k, v := range t.si.devices {
			if !now.Before(v.expires) {
				delete(t.si.devices, k)
				delete(t.si.byUser, v.user)
			}
		}
	}
	if len(t.si.devices) >= maxPending {
		t.si.mu.Unlock()
		t.aadError(q, http.StatusTooManyRequests, "temporarily_unavailable", 50196, "Too many pending device codes; try again later.")
		return
	}
	t.si.devices[dev], t.si.byUser[d.user] = d, d
	t.si.mu.Unlock()
	q.json(http.StatusOK, map[string]any{
		"user_code": d.user, "device_code": dev, "verification_uri": "https://microsoft.com/devicelogin",
		"expires_in": int(deviceCodeLife / time.Second), "interval": 5,
		"message": "To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code " + d.user + " to authenticate.",
	})
}

// ApproveDeviceCode signs upn in on the verification page for userCode,
// as the user would in a browser.
func (t *Tenant) ApproveDeviceCode(userCode, upn string) error {
	u, ok := t.signInUser(upn)
	if !ok {
		return fmt.Errorf("sim: %q is not a user of this tenant: use Credentials().UserUPN", upn)
	}
	return t.decideDeviceCode(userCode, u.upn, false)
}

// DeclineDeviceCode refuses the sign-in for userCode (authorization_declined).
func (t *Tenant) DeclineDeviceCode(userCode string) error {
	return t.decideDeviceCode(userCode, "", true)
}

func (t *Tenant) decideDeviceCode(userCode, upn string, decline bool) error {
	key := strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(userCode), "-", ""))
	t.si.mu.Lock()
	defer t.si.mu.Unlock()
	d, ok := t.si.byUser[key]
	switch {
	case !ok:
		return fmt.Errorf("sim: no pending device code %q: start a device-code sign-in first", userCode)
	case !t.clock().Before(d.expires):
		return fmt.Errorf("sim: device code %q has expired: start a new sign-in", userCode)
	case d.upn != "" || d.declined:
		return fmt.Errorf("sim: device code %q was already approved or declined", userCode)
	}
	d.upn, d.declined = upn, decline
	return nil
}

func (t *Tenant) deviceCodeGrant(q *req, f url.Values) {
	dev, client := f.Get("device_code"), strings.ToLower(f.Get("client_id"))
	if dev == "" || client == "" {
		t.aadError(q, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameters: 'client_id' and 'device_code'.")
		return
	}
	t.si.mu.Lock()
	d, ok := t.si.devices[dev]
	if !ok || d.client != client {
		t.si.mu.Unlock()
		t.aadError(q, http.StatusBadRequest, "bad_verification_code", 70000, "The provided device code is not valid for this client.")
		return
	}
	now := t.clock()
	if !now.Before(d.expires) {
		delete(t.si.devices, dev)
		delete(t.si.byUser, d.user)
		t.si.mu.Unlock()
		t.aadError(q, http.StatusBadRequest, "expired_token", 70019, "Verification code expired.")
		return
	}
	if d.declined {
		delete(t.si.devices, dev)
		delete(t.si.byUser, d.user)
		t.si.mu.Unlock()
		t.aadError(q, http.StatusBadRequest, "authorization_declined", 70000, "The user declined the sign-in request.")
		return
	}
	if d.upn == "" && t.opts.AutoApproveDeviceCode && d.polls > 0 {
		d.upn = t.si.analysts[0]
	}
	if d.upn == "" {
		d.polls++
		t.si.mu.Unlock()
		t.aadError(q, http.StatusBadRequest, "authorization_pending", 70016, "OAuth 2.0 device flow error. Authorization is pending. Continue polling.")
		return
	}
	delete(t.si.devices, dev)
	delete(t.si.byUser, d.user)
	t.si.mu.Unlock()
	if code, msg := t.policyError(client, d.upn); code != 0 {
		t.aadError(q, http.StatusBadRequest, "invalid_grant", code, msg)
		return
	}
	raw := strings.Join(d.scopes, " ")
	if s := f.Get("scope"); s != "" {
		raw = s
	}
	us, msg := resolveScopes(raw)
	if msg != "" {
		t.aadError(q, http.StatusBadRequest, "invalid_scope", 70011, msg)
		return
	}
	u, _ := t.signInUser(d.upn)
	t.issueUserTokens(q, client, u, us, raw)
}

// ---- refresh token (docs/REFERENCE.md §4.2) ----

func (t *Tenant) refreshGrant(q *req, f url.Values) {
	rt, client := f.Get("refresh_token"), strings.ToLower(f.Get("client_id"))
	if rt == "" || client == "" {
		t.aadError(q, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameters: 'client_id' and 'refresh_token'.")
		return
	}
	if sec := f.Get("client_secret"); sec != "" {
		app, ok := t.apps[client]
		if !ok || subtle.ConstantTimeCompare([]byte(sec), []byte(app.secret)) != 1 {
			t.aadError(q, http.StatusBadRequest, "invalid_client", 7000215, "Invalid client secret provided.")
			return
		}
	} else if !t.publicClient(client) {
		t.aadError(q, http.StatusBadRequest, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
		return
	}
	now := t.clock()
	t.si.mu.Lock()
	r, ok := t.si.refresh[rt]
	var errCode int
	var errMsg string
	switch {
	case !ok:
		errCode, errMsg = 9002313, "Invalid request. Request is malformed or invalid."
	case r.revoked:
		errCode, errMsg = 50173, "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password."
	case now.Sub(r.lastUsed) > refreshIdle:
		errCode, errMsg = 700082, "The refresh token has expired due to inactivity. The token was issued on "+r.lastUsed.UTC().Format(time.RFC3339)+" and was inactive for 90.00:00:00."
	case r.client != client && !(fociClients[r.client] && fociClients[client]):
		errCode, errMsg = 70000, "The refresh token was issued to a different client."
	}
	if errCode != 0 {
		t.si.mu.Unlock()
		t.aadError(q, http.StatusBadRequest, "invalid_grant", errCode, errMsg)
		return
	}
	r.revoked = true // rotation: the answer carries the replacement
	upn, scopes := r.upn, r.scopes
	t.si.mu.Unlock()
	if code, msg := t.policyError(client, upn); code != 0 {
		t.aadError(q, http.StatusBadRequest, "invalid_grant", code, msg)
		return
	}
	raw := f.Get("scope")
	if raw == "" {
		raw = strings.Join(scopes, " ")
	}
	us, msg := resolveScopes(raw)
	if msg != "" {
		t.aadError(q, http.StatusBadRequest, "invalid_scope", 70011, msg)
		return
	}
	us.refresh = true // a refresh always returns the replacement token
	u, _ := t.signInUser(upn)
	t.issueUserTokens(q, client, u, us, raw)
}

// ---- ESTS sign-in → portal session (docs/REFERENCE.md §1.3) ----

// loginSeed answers GET /error: the page that seeds the login cookies.
func (t *Tenant) loginSeed(q *req) {
	for _, n := range []string{"buid", "fpc", "esctx", "x-ms-gateway-slice", "stsservicecookie"} {
		v, err := newToken(24, b64)
		if err != nil {
			t.aadError(q, http.StatusInternalServerError, "temporarily_unavailable", 50196, "The server is temporarily unavailable.")
			return
		}
		http.SetCookie(q.w, &http.Cookie{Name: n, Value: v, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteNoneMode})
	}
	writeHTML(q.w, http.StatusOK, signInPage("", ""))
}

// signInPage is Entra's converged sign-in page; with code, it is the
// error page a client must parse ("sErrorCode").
func signInPage(code, msg string) string {
	return `<!DOCTYPE html>
<html dir="ltr" class="" lang="en"><head><title>Sign in to your account</title>
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8"></head>
<body><form name="f1" id="i0281" method="post" action="https://login.microsoftonline.com/common/login">
<div id="loginHeader">Sign in</div><script type="text/javascript">//<![CDATA[
$Config={"sErrorCode":"` + code + `","strServiceExceptionMessage":` + string(mustJSON(msg)) + `,"pgid":"ConvergedSignIn","urlPost":"https://login.microsoftonline.com/common/login"};
//]]></script></form></body></html>`
}

func autoSubmitForm(action string, fields [][2]string) string {
	var b strings.Builder
	b.WriteString(`<html><head><title>Working...</title></head><body><form method="POST" name="hiddenform" action="` + html.EscapeString(action) + `">`)
	for _, f := range fields {
		b.WriteString(`<input type="hidden" name="` + f[0] + `" value="` + html.EscapeString(f[1]) + `" />`)
	}
	b.WriteString(`<noscript><p>Script is disabled. Click Submit to continue.</p><input type="submit" value="Submit" /></noscript></form><script language="javascript">document.forms[0].submit();</script></body></html>`)
	return b.String()
}

func isPortalURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.User != nil || u.Port() != "" {
		return false
	}
	h := strings.ToLower(u.Host)
	return (h == "security.microsoft.com" || h == "mto.security.microsoft.com") && (u.Path == "/" || u.Path == "")
}

// authorize is the silent sign-in of the portal app: an ESTS cookie gives
// the auto-submit form, anything else the sign-in page with its error code.
func (t *Tenant) authorize(q *req) {
	seg := strings.ToLower(q.vars["tenant"])
	if seg != "common" && seg != "organizations" && !t.knownTenant(seg) {
		writeHTML(q.w, http.StatusBadRequest, signInPage("90002", fmt.Sprintf("AADSTS90002: Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", seg)))
		return
	}
	qs := q.r.URL.Query()
	redirect := qs.Get("redirect_uri")
	switch {
	case !strings.EqualFold(qs.Get("client_id"), portalAppID):
		writeHTML(q.w, http.StatusBadRequest, signInPage("700016", "AADSTS700016: Application with identifier '"+qs.Get("client_id")+"' was not found in the directory."))
		return
	case !isPortalURL(redirect) || qs.Get("response_mode") != "form_post":
		writeHTML(q.w, http.StatusBadRequest, signInPage("50011", "AADSTS50011: The redirect URI specified in the request does not match the redirect URIs configured for the application."))
		return
	}
	var u *signInUser
	for _, n := range []string{"ESTSAUTHPERSISTENT", "ESTSAUTH"} {
		ck, err := q.r.Cookie(n)
		if err != nil {
			continue
		}
		t.si.mu.Lock()
		c, ok := t.si.ests[ck.Value]
		if ok && !t.clock().Before(c.expires) {
			delete(t.si.ests, ck.Value)
			ok = false
		}
		t.si.mu.Unlock()
		if ok {
			u, _ = t.signInUser(c.upn)
			break
		}
	}
	if u == nil && t.set != nil {
		// A user of another tenant of the emulator is not a member here.
		if o, upn := t.set.estsOwner(q.r); o != nil && o != t {
			writeHTML(q.w, http.StatusOK, signInPage("50020", fmt.Sprintf("AADSTS50020: User account '%s' from identity provider '%s' does not exist in tenant '%s' and cannot access the application '%s'(Microsoft 365 Security Center) in that tenant. The account needs to be added as an external user in the tenant first. Sign out and sign in again with a different Azure Active Directory user account.", upn, o.issuer(), t.w.orgName, portalAppID)))
			return
		}
	}
	if u == nil {
		writeHTML(q.w, http.StatusOK, signInPage("50058", "AADSTS50058: A silent sign-in request was sent but no user is signed in. Session information is not sufficient for single-sign-on."))
		return
	}
	if code, msg := t.policyError(portalAppID, u.upn); code != 0 {
		writeHTML(q.w, http.StatusOK, signInPage(fmt.Sprint(code), fmt.Sprintf("AADSTS%d: %s", code, msg)))
		return
	}
	code, err := newToken(256, b64)
	if err != nil {
		writeHTML(q.w, http.StatusInternalServerError, signInPage("50196", "AADSTS50196: The server is temporarily unavailable."))
		return
	}
	now := t.clock()
	ac := &authCode{upn: u.upn, redirect: redirect, idToken: t.idToken(portalAppID, u, now, qs.Get("nonce")), expires: now.Add(authCodeLife)}
	t.si.mu.Lock()
	if len(t.si.codes) >= maxPending {
		for k, v := range t.si.codes {
			if !now.Before(v.expires) {
				delete(t.si.codes, k)
				delete(t.si.mcas, v.idToken)
			}
		}
	}
	t.si.codes[code] = ac
	fields := [][2]string{{"code", code}, {"id_token", ac.idToken}, {"state", qs.Get("state")}, {"session_state", correlationID()}, {"correlation_id", correlationID()}}
	ac.fields = fields
	if t.opts.AppControl {
		t.si.mcas[ac.idToken] = ac
	}
	t.si.mu.Unlock()
	if t.opts.AppControl {
		// Defender for Cloud Apps App Control sits in between: the
		// browser first posts the id_token to the proxy, whose answer is
		// the real form (docs/REFERENCE.md §1.3 step 6).
		writeHTML(q.w, http.StatusOK, autoSubmitForm(fmt.Sprintf("https://%s.access.mcas.ms/aad_login", t.w.orgName), [][2]string{{"id_token", ac.idToken}, {"state", qs.Get("state")}}))
		return
	}
	writeHTML(q.w, http.StatusOK, autoSubmitForm(redirect, fields))
}

// mcasService is the Defender for Cloud Apps App Control proxy on
// <tenant>.access.mcas.ms: it takes the id_token and hands back the form.
func (t *Tenant) mcasService() service {
	s := service{family: FamilyEntra, fail: func(q *req, status int, _ string, msg string) {
		writeHTML(q.w, status, "<!DOCTYPE html><html><head><title>Microsoft Defender for Cloud Apps</title></head><body><p>"+html.EscapeString(msg)+"</p></body></html>")
	}}
	s.routes.add(http.MethodPost, "/aad_login", "", func(q *req) {
		q.r.Body = http.MaxBytesReader(q.w, q.r.Body, 64<<10)
		if err := q.r.ParseForm(); err != nil {
			q.svc.fail(q, http.StatusBadRequest, "", "The request could not be read.")
			return
		}
		tok := q.r.PostForm.Get("id_token")
		t.si.mu.Lock()
		ac, ok := t.si.mcas[tok]
		delete(t.si.mcas, tok)
		t.si.mu.Unlock()
		if tok == "" || !ok || !t.clock().Before(ac.expires) || !strings.HasPrefix(q.host, t.w.orgName+".") {
			q.svc.fail(q, http.StatusBadRequest, "", "Your session has expired or the sign-in could not be validated. Sign in again.")
			return
		}
		writeHTML(q.w, http.StatusOK, autoSubmitForm(ac.redirect, ac.fields))
	})
	return s
}

// portalSignIn takes the form Entra auto-submits: a valid, unused code
// for this portal host starts a session (sccauth + XSRF-TOKEN) and sends
// the browser to the landing page. Anything else starts sign-in again.
func (t *Tenant) portalSignIn(q *req) {
	q.r.Body = http.MaxBytesReader(q.w, q.r.Body, 64<<10)
	if mt, _, _ := mime.ParseMediaType(q.r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" || q.r.ParseForm() != nil {
		loginRedirect(q)
		return
	}
	f := q.r.PostForm
	code := f.Get("code")
	t.si.mu.Lock()
	ac, ok := t.si.codes[code]
	delete(t.si.codes, code) // single use, even when the rest is wrong
	if ok {
		delete(t.si.mcas, ac.idToken)
	}
	t.si.mu.Unlock()
	if code == "" || !ok || !t.clock().Before(ac.expires) || f.Get("id_token") != ac.idToken || f.Get("state") == "" {
		loginRedirect(q)
		return
	}
	if u, err := url.Parse(ac.redirect); err != nil || !strings.EqualFold(u.Host, q.host) {
		loginRedirect(q)
		return
	}
	scc, xsrf, err := t.sess.mint(ac.upn)
	if err != nil {
		portalFail(q, http.StatusInternalServerError, "", "An error has occurred.")
		return
	}
	http.SetCookie(q.w, &http.Cookie{Name: "sccauth", Value: scc, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteNoneMode})
	http.SetCookie(q.w, &http.Cookie{Name: "XSRF-TOKEN", Value: url.QueryEscape(xsrf), Path: "/", Secure: true, SameSite: http.SameSiteNoneMode})
	q.w.Header().Set("Location", "/")
	writeHTML(q.w, http.StatusFound, `<html><head><title>Object moved</title></head><body><h2>Object moved to <a href="/">here</a>.</h2></body></html>`)
}

// ---- legacy regions (decision: a host of another location answers 401) ----

// legacyGeo is the public-API geography (api-eu / api-us) of a location.
func legacyGeo(loc string) string {
	for _, p := range []string{"eus", "cus", "wus", "us"} {
		if strings.HasPrefix(loc, p) {
			return "us"
		}
	}
	return "eu"
}

// servesLocation reports whether the tenant's legacy location serves host.
func (t *Tenant) servesLocation(host string) bool {
	loc := t.opts.LegacyLocation
	if m := reLegacy.FindStringSubmatch(host); m != nil {
		alias := map[string]string{"weu": "eu", "weu3": "eu3", "eus": "us", "eus3": "us3"}[loc]
		return m[2] == loc || (m[1] == "wdatpprd" && alias != "" && m[2] == alias)
	}
	switch host {
	case "api-eu.securitycenter.windows.com":
		return legacyGeo(loc) == "eu"
	case "api-us.securitycenter.windows.com":
		return legacyGeo(loc) == "us"
	}
	return true
}
