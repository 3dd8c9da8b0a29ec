package sim

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// A real azidentity DeviceCodeCredential signs in (auto-approved) and a
// second GetToken, after the short-lived access token is stale, goes
// through MSAL's silent refresh-token path.
func TestAzidentityDeviceCodeAndRefresh(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Clock = nil; o.AutoApproveDeviceCode = true; o.TokenLifetime = time.Minute })
	srv, err := e.ten.Serve("127.0.0.1:0", true)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cl := tlsClient(t, e.ten, srv.Addr())
	var prompt string
	cred, err := azidentity.NewDeviceCodeCredential(&azidentity.DeviceCodeCredentialOptions{
		TenantID: e.ten.TenantID(), DisableInstanceDiscovery: true, ClientOptions: policy.ClientOptions{Transport: cl},
		UserPrompt: func(_ context.Context, m azidentity.DeviceCodeMessage) error { prompt = m.Message; return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	scope := policy.TokenRequestOptions{Scopes: []string{"https://api.securitycenter.microsoft.com/.default"}}
	tok1, err := cred.GetToken(context.Background(), scope)
	if err != nil {
		t.Fatalf("device code GetToken: %v", err)
	}
	if !strings.Contains(prompt, "https://microsoft.com/devicelogin") {
		t.Fatalf("prompt %q", prompt)
	}
	entra := e.ten.RequestCount(FamilyEntra)
	tok2, err := cred.GetToken(context.Background(), scope)
	if err != nil {
		t.Fatalf("silent refresh: %v", err)
	}
	if tok2.Token == tok1.Token || e.ten.RequestCount(FamilyEntra) == entra {
		t.Fatal("second GetToken did not refresh at the token endpoint")
	}
	req, _ := http.NewRequest("GET", "https://api.security.microsoft.com/api/machineactions?$top=2", nil)
	req.Header.Set("Authorization", "Bearer "+tok2.Token)
	res, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("public API with the analyst's token: %d", res.StatusCode)
	}
}

type tokBody struct {
	Error        string `json:"error"`
	Desc         string `json:"error_description"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token"`
	ClientInfo   string `json:"client_info"`
	Foci         string `json:"foci"`
	Scope        string `json:"scope"`
	DeviceCode   string `json:"device_code"`
	UserCode     string `json:"user_code"`
}

func (e *env) form(path string, f url.Values) (int, tokBody) {
	e.t.Helper()
	r := e.do(http.MethodPost, "login.microsoftonline.com", "/"+e.ten.TenantID()+path, []byte(f.Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	var b tokBody
	r.json(e.t, &b)
	return r.status, b
}

func (e *env) startDevice(client string) tokBody {
	e.t.Helper()
	st, b := e.form("/oauth2/v2.0/devicecode", url.Values{"client_id": {client}, "scope": {"80ccca67-54bd-44ab-8625-4b79c4dc7775/.default openid offline_access profile"}})
	if st != 200 || b.DeviceCode == "" || len(b.UserCode) != 9 {
		e.t.Fatalf("devicecode: %d %+v", st, b)
	}
	return b
}

func (e *env) poll(grant, client, dev string) (int, tokBody) {
	return e.form("/oauth2/v2.0/token", url.Values{"grant_type": {grant}, "client_id": {client}, "device_code": {dev}, "client_info": {"1"}})
}

func TestDeviceCodeFlow(t *testing.T) {
	const long = "urn:ietf:params:oauth:grant-type:device_code"
	tests := []struct {
		name    string
		grant   string
		setup   func(e *env, d tokBody)
		status  int
		errCode string
		aadsts  string
	}{
		{"pending", long, func(*env, tokBody) {}, 400, "authorization_pending", "AADSTS70016"},
		{"approved, long grant", long, func(e *env, d tokBody) { e.approve(d.UserCode, e.ten.Credentials().UserUPN) }, 200, "", ""},
		{"approved, MSAL short grant", "device_code", func(e *env, d tokBody) { e.approve(d.UserCode, e.ten.Credentials().UserUPN) }, 200, "", ""},
		{"declined", long, func(e *env, d tokBody) { _ = e.ten.DeclineDeviceCode(d.UserCode) }, 400, "authorization_declined", ""},
		{"expired", long, func(e *env, d tokBody) { e.wall.Add(16 * time.Minute) }, 400, "expired_token", "AADSTS70019"},
		{"conditional access", long, func(e *env, d tokBody) {
			e.ten.SetConditionalAccessBlock(clientAzureCLI, true)
			e.approve(d.UserCode, e.ten.Credentials().UserUPN)
		}, 400, "invalid_grant", "AADSTS53003"},
		{"mfa required", long, func(e *env, d tokBody) {
			u := e.ten.Credentials().UserUPN
			e.ten.SetMFARequired(u, true)
			e.approve(d.UserCode, u)
		}, 400, "invalid_grant", "AADSTS50076"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			d := e.startDevice(clientAzureCLI)
			tc.setup(e, d)
			st, b := e.poll(tc.grant, clientAzureCLI, d.DeviceCode)
			if st != tc.status || b.Error != tc.errCode || !strings.HasPrefix(b.Desc, tc.aadsts) {
				t.Fatalf("got %d %q %q, want %d %q %s", st, b.Error, b.Desc, tc.status, tc.errCode, tc.aadsts)
			}
			if st != 200 {
				return
			}
			if b.RefreshToken == "" || b.Foci != "1" || strings.Contains(b.ClientInfo, "=") || strings.Count(b.IDToken, ".") != 2 || strings.Contains(b.IDToken, "=") {
				t.Fatalf("success body lacks user-flow fields: %+v", b)
			}
			// The code is single use.
			if st, b := e.poll(tc.grant, clientAzureCLI, d.DeviceCode); st != 400 || b.Error != "bad_verification_code" {
				t.Fatalf("second redemption: %d %q", st, b.Error)
			}
		})
	}
}

func (e *env) approve(code, upn string) {
	e.t.Helper()
	if err := e.ten.ApproveDeviceCode(code, upn); err != nil {
		e.t.Fatal(err)
	}
}

func TestDeviceCodeStrictness(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct {
		name string
		f    url.Values
		want string
	}{
		{"unknown client", url.Values{"client_id": {"00000000-0000-0000-0000-000000000001"}, "scope": {"https://graph.microsoft.com/.default"}}, "AADSTS700016"},
		{"no scope", url.Values{"client_id": {clientAzureCLI}}, "AADSTS900144"},
		{"unknown resource", url.Values{"client_id": {clientAzureCLI}, "scope": {"https://evil.example/.default"}}, "AADSTS70011"},
		{"two resources", url.Values{"client_id": {clientAzureCLI}, "scope": {"https://graph.microsoft.com/.default https://manage.office.com/.default"}}, "AADSTS70011"},
	} {
		if st, b := e.form("/oauth2/v2.0/devicecode", tc.f); st != 400 || !strings.HasPrefix(b.Desc, tc.want) {
			t.Errorf("%s: %d %q, want 400 %s", tc.name, st, b.Desc, tc.want)
		}
	}
	if err := e.ten.ApproveDeviceCode("NOSUCHCOD", e.ten.Credentials().UserUPN); err == nil {
		t.Error("approving an unknown code succeeded")
	}
	d := e.startDevice(clientTeams)
	if err := e.ten.ApproveDeviceCode(d.UserCode, "nobody@example.com"); err == nil {
		t.Error("approving for an unknown user succeeded")
	}
	if st, b := e.poll("device_code", clientAzureCLI, d.DeviceCode); st != 400 || b.Error != "bad_verification_code" {
		t.Errorf("redeeming another client's code: %d %q", st, b.Error)
	}
	// A wrong tenant at the authority.
	r := e.do(http.MethodPost, "login.microsoftonline.com", "/nosuchtenant.onmicrosoft.com/oauth2/v2.0/devicecode",
		[]byte(url.Values{"client_id": {clientAzureCLI}, "scope": {"https://graph.microsoft.com/.default"}}.Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if r.status != 400 || !contains(string(r.body), "AADSTS90002") {
		t.Errorf("unknown tenant: %d %s", r.status, r.body)
	}
}

func TestRefreshToken(t *testing.T) {
	signIn := func(e *env) tokBody {
		d := e.startDevice(clientAzureCLI)
		e.approve(d.UserCode, e.ten.Credentials().UserUPN)
		st, b := e.poll("device_code", clientAzureCLI, d.DeviceCode)
		if st != 200 {
			t.Fatalf("sign-in: %d %+v", st, b)
		}
		return b
	}
	refresh := func(e *env, client, rt string) (int, tokBody) {
		return e.form("/oauth2/v2.0/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {client}, "refresh_token": {rt}, "scope": {"https://api.securitycenter.microsoft.com/.default offline_access"}})
	}
	tests := []struct {
		name   string
		run    func(e *env, rt string) (int, tokBody)
		status int
		want   string
	}{
		{"rotates", func(e *env, rt string) (int, tokBody) {
			st, b := refresh(e, clientAzureCLI, rt)
			if st != 200 || b.RefreshToken == "" || b.RefreshToken == rt {
				t.Fatalf("refresh: %d %+v", st, b)
			}
			return refresh(e, clientAzureCLI, b.RefreshToken)
		}, 200, ""},
		{"old token after rotation", func(e *env, rt string) (int, tokBody) {
			refresh(e, clientAzureCLI, rt)
			return refresh(e, clientAzureCLI, rt)
		}, 400, "AADSTS50173"},
		{"revoked", func(e *env, rt string) (int, tokBody) {
			_ = e.ten.RevokeUserSessions(e.ten.Credentials().UserUPN)
			return refresh(e, clientAzureCLI, rt)
		}, 400, "AADSTS50173"},
		{"idle 91 days", func(e *env, rt string) (int, tokBody) {
			e.wall.Add(91 * 24 * time.Hour)
			return refresh(e, clientAzureCLI, rt)
		}, 400, "AADSTS700082"},
		{"FOCI sibling", func(e *env, rt string) (int, tokBody) { return refresh(e, clientTeams, rt) }, 200, ""},
		{"non-family client", func(e *env, rt string) (int, tokBody) { return refresh(e, e.ten.Credentials().ClientID, rt) }, 400, "AADSTS70000"},
		{"garbage", func(e *env, rt string) (int, tokBody) { return refresh(e, clientAzureCLI, "nonsense") }, 400, "AADSTS9002313"},
		{"blocked user", func(e *env, rt string) (int, tokBody) {
			e.ten.SetConditionalAccessBlock(e.ten.Credentials().UserUPN, true)
			return refresh(e, clientAzureCLI, rt)
		}, 400, "AADSTS53003"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			st, b := tc.run(e, signIn(e).RefreshToken)
			if st != tc.status || !strings.HasPrefix(b.Desc, tc.want) || (st == 400 && b.Error != "invalid_grant") {
				t.Fatalf("got %d %q %q, want %d %s", st, b.Error, b.Desc, tc.status, tc.want)
			}
		})
	}
}

// Client credentials honour a Conditional Access block of the app.
func TestClientCredentialsConditionalAccess(t *testing.T) {
	e := newEnv(t, nil)
	c := e.ten.Credentials()
	e.ten.SetConditionalAccessBlock(c.ClientID, true)
	st, b := e.form("/oauth2/v2.0/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {c.ClientID}, "client_secret": {c.ClientSecret}, "scope": {"https://api.securitycenter.microsoft.com/.default"}})
	if st != 400 || !strings.HasPrefix(b.Desc, "AADSTS53003") {
		t.Fatalf("blocked app: %d %q", st, b.Desc)
	}
}

var reHidden = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)" />`)
var reAction = regexp.MustCompile(`action="([^"]+)"`)

func parseForm(t *testing.T, body []byte) (string, url.Values) {
	t.Helper()
	m := reAction.FindSubmatch(body)
	if m == nil {
		t.Fatalf("no form in %s", truncate(body))
	}
	f := url.Values{}
	for _, h := range reHidden.FindAllSubmatch(body, -1) {
		f.Set(string(h[1]), strings.ReplaceAll(string(h[2]), "&amp;", "&"))
	}
	return strings.ReplaceAll(string(m[1]), "&amp;", "&"), f
}

// signInESTS walks docs/REFERENCE.md §1.3 by hand, never following redirects.
// It returns the sccauth cookie, the XSRF header value, and the last
// answer when the walk stopped early.
func (e *env) signInESTS(ests, tid string) (scc, xsrf string, stop resp) {
	e.t.Helper()
	if r := e.do("GET", "login.microsoftonline.com", "/error", nil, nil); r.status != 200 || len(r.header.Values("Set-Cookie")) == 0 {
		e.t.Fatalf("seed page: %d", r.status)
	}
	path := "/"
	if tid != "" {
		path += "?tid=" + tid
	}
	r := e.do("GET", "security.microsoft.com", path, nil, nil)
	if r.status != 302 {
		e.t.Fatalf("portal root without session: %d", r.status)
	}
	loc, err := url.Parse(r.header.Get("Location"))
	if err != nil || loc.Host != "login.microsoftonline.com" || loc.Query().Get("client_id") != portalAppID || loc.Query().Get("response_mode") != "form_post" {
		e.t.Fatalf("redirect %q", r.header.Get("Location"))
	}
	hdr := map[string]string{}
	if ests != "" {
		hdr["Cookie"] = "ESTSAUTHPERSISTENT=" + ests
	}
	r = e.do("GET", loc.Host, loc.RequestURI(), nil, hdr)
	if r.status != 200 || !contains(string(r.body), `name="code"`) && !contains(string(r.body), "access.mcas.ms") {
		return "", "", r
	}
	action, f := parseForm(e.t, r.body)
	if au, _ := url.Parse(action); strings.HasSuffix(au.Host, ".access.mcas.ms") {
		r = e.do("POST", au.Host, au.RequestURI(), []byte(f.Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
		if r.status != 200 {
			return "", "", r
		}
		action, f = parseForm(e.t, r.body)
	}
	for _, k := range []string{"code", "id_token", "state", "session_state", "correlation_id"} {
		if f.Get(k) == "" {
			e.t.Fatalf("auto-submit form lacks %s", k)
		}
	}
	au, _ := url.Parse(action)
	r = e.do("POST", au.Host, au.RequestURI(), []byte(f.Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if r.status != 302 || r.header.Get("Location") != "/" {
		return "", "", r
	}
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		switch c.Name {
		case "sccauth":
			if !c.HttpOnly || !c.Secure {
				e.t.Fatal("sccauth cookie is not Secure+HttpOnly")
			}
			scc = c.Value
		case "XSRF-TOKEN":
			xsrf, _ = url.QueryUnescape(c.Value)
		}
	}
	if scc == "" || xsrf == "" {
		e.t.Fatalf("sign-in set no session cookies: %v", r.header)
	}
	return scc, xsrf, r
}

func (e *env) portalAs(scc, xsrf, path string) resp {
	return e.do("GET", "security.microsoft.com", path, nil, map[string]string{"Cookie": "sccauth=" + scc, "X-XSRF-TOKEN": xsrf})
}

const tenantContext = "/apiproxy/mtp/sccManagement/mgmt/TenantContext?realTime=true"

func TestESTSSignIn(t *testing.T) {
	tests := []struct {
		name   string
		mod    func(*Options)
		cookie func(e *env) string
		tid    func(e *env) string
		page   string // sErrorCode expected on the sign-in page; "" = success
		data   int    // status of a portal data call on success
	}{
		{"analyst", nil, func(e *env) string { return e.ten.Credentials().ESTSAuthPersistent }, nil, "", 200},
		{"analyst with tid", nil, func(e *env) string { return e.ten.Credentials().ESTSAuthPersistent }, func(e *env) string { return e.ten.TenantID() }, "", 200},
		{"App Control hop", func(o *Options) { o.AppControl = true }, func(e *env) string { return e.ten.Credentials().ESTSAuthPersistent }, nil, "", 200},
		{"reader without Defender role", nil, func(e *env) string { return e.ten.MintESTSCookie(e.ten.Credentials().NoRoleUPN) }, nil, "", 403},
		{"no cookie", nil, func(*env) string { return "" }, nil, "50058", 0},
		{"unknown cookie", nil, func(*env) string { return "forged" }, nil, "50058", 0},
		{"revoked user", nil, func(e *env) string {
			c := e.ten.Credentials()
			_ = e.ten.RevokeUserSessions(c.UserUPN)
			return c.ESTSAuthPersistent
		}, nil, "50058", 0},
		{"conditional access", func(o *Options) { o.ConditionalAccessBlock = []string{portalAppID} }, func(e *env) string { return e.ten.Credentials().ESTSAuthPersistent }, nil, "53003", 0},
		{"unknown tenant", nil, func(e *env) string { return e.ten.Credentials().ESTSAuthPersistent }, func(*env) string { return "11111111-2222-3333-4444-555555555555" }, "90002", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.mod)
			tid := ""
			if tc.tid != nil {
				tid = tc.tid(e)
			}
			scc, xsrf, r := e.signInESTS(tc.cookie(e), tid)
			if tc.page != "" {
				if scc != "" || !contains(string(r.body), `"sErrorCode":"`+tc.page+`"`) {
					t.Fatalf("want sign-in page %s, got %d %s", tc.page, r.status, truncate(r.body))
				}
				return
			}
			if scc == "" {
				t.Fatalf("sign-in failed: %d %s", r.status, truncate(r.body))
			}
			if r := e.portalAs(scc, xsrf, tenantContext); r.status != tc.data {
				t.Fatalf("portal data: %d %s, want %d", r.status, truncate(r.body), tc.data)
			}
		})
	}
}

func TestPortalSessionsAndExpiry(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.SessionLifetime = time.Hour })
	ests := e.ten.Credentials().ESTSAuthPersistent
	s1, x1, _ := e.signInESTS(ests, "")
	s2, x2, _ := e.signInESTS(ests, "")
	if s1 == s2 || x1 == x2 {
		t.Fatal("two sign-ins share a session")
	}
	for _, c := range []struct {
		scc, xsrf string
		want      int
	}{{s1, x1, 200}, {s2, x2, 200}, {s1, x2, 401}, {e.ten.Credentials().SccAuth, e.ten.Credentials().XSRFToken, 200}} {
		if r := e.portalAs(c.scc, c.xsrf, tenantContext); r.status != c.want {
			t.Errorf("session pair: %d, want %d", r.status, c.want)
		}
	}
	// Past the lifetime every session, the default one too, is gone.
	e.wall.Add(61 * time.Minute)
	for _, scc := range []string{s1, e.ten.Credentials().SccAuth} {
		if r := e.portalAs(scc, x1, tenantContext); r.status != 302 {
			t.Errorf("expired session: %d, want 302", r.status)
		}
		if r := e.do("GET", "security.microsoft.com", "/", nil, map[string]string{"Cookie": "sccauth=" + scc}); r.status != 302 {
			t.Errorf("expired session at the root: %d, want 302", r.status)
		}
	}
	// The ESTS cookie survives: sign in again.
	if s3, x3, _ := e.signInESTS(ests, ""); e.portalAs(s3, x3, tenantContext).status != 200 {
		t.Error("re-bootstrap after expiry failed")
	}
}

func TestPortalSignInPostStrictness(t *testing.T) {
	e := newEnv(t, nil)
	ests := e.ten.Credentials().ESTSAuthPersistent
	getForm := func() url.Values {
		r := e.do("GET", "login.microsoftonline.com", "/"+e.ten.TenantID()+"/oauth2/v2.0/authorize?client_id="+portalAppID+"&response_mode=form_post&redirect_uri="+url.QueryEscape("https://security.microsoft.com/")+"&state=s1", nil, map[string]string{"Cookie": "ESTSAUTHPERSISTENT=" + ests})
		_, f := parseForm(t, r.body)
		return f
	}
	post := func(f url.Values) int {
		return e.do("POST", "security.microsoft.com", "/", []byte(f.Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded"}).status
	}
	f := getForm()
	bad := url.Values{}
	for k, v := range f {
		bad[k] = v
	}
	bad.Set("id_token", "x.y.z")
	if st := post(bad); st != 302 {
		t.Errorf("wrong id_token: %d", st)
	}
	if st := post(f); st != 302 { // the code was burnt by the bad attempt
		t.Errorf("reused code: %d", st)
	}
	f = getForm()
	resp := e.do("POST", "security.microsoft.com", "/", []byte(f.Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if resp.status != 302 || !contains(strings.Join(resp.header.Values("Set-Cookie"), ";"), "sccauth=") {
		t.Errorf("valid form: %d", resp.status)
	}
	// The authorize endpoint refuses other clients and foreign redirect URIs.
	for _, q := range []string{
		"client_id=" + clientAzureCLI + "&response_mode=form_post&redirect_uri=" + url.QueryEscape("https://security.microsoft.com/"),
		"client_id=" + portalAppID + "&response_mode=form_post&redirect_uri=" + url.QueryEscape("https://evil.example/"),
	} {
		r := e.do("GET", "login.microsoftonline.com", "/common/oauth2/v2.0/authorize?"+q, nil, map[string]string{"Cookie": "ESTSAUTHPERSISTENT=" + ests})
		if r.status != 400 || contains(string(r.body), `name="code"`) {
			t.Errorf("authorize %s: %d", q, r.status)
		}
	}
}

// A user token for the portal app (bearer mode, docs/REFERENCE.md §1.4) obeys
// the user's role.
func TestPortalBearerUserRole(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct {
		upn  string
		want int
	}{{e.ten.Credentials().UserUPN, 200}, {e.ten.Credentials().NoRoleUPN, 403}} {
		d := e.startDevice(clientTeams)
		e.approve(d.UserCode, tc.upn)
		_, b := e.poll("device_code", clientTeams, d.DeviceCode)
		r := e.do("GET", "security.microsoft.com", tenantContext, nil, map[string]string{"Authorization": "Bearer " + b.AccessToken})
		if r.status != tc.want {
			t.Errorf("%s: %d, want %d", tc.upn, r.status, tc.want)
		}
	}
}
