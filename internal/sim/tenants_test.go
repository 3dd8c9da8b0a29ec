package sim

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// newTenantsEnv is the default test env serving n tenants.
func newTenantsEnv(t *testing.T, n int, mod func(*Options)) *env {
	return newEnv(t, func(o *Options) {
		o.Tenants = n
		if mod != nil {
			mod(o)
		}
	})
}

// as sends a portal request with tenant m's default session and extra
// headers.
func (e *env) as(m *Tenant, method, pathQuery string, hdr map[string]string) resp {
	e.t.Helper()
	c := m.Credentials()
	h := map[string]string{"Cookie": PortalCookieHeader(c.SccAuth, c.XSRFToken), "X-XSRF-TOKEN": c.XSRFToken}
	for k, v := range hdr {
		h[k] = v
	}
	return e.do(method, "security.microsoft.com", pathQuery, nil, h)
}

// tokenAt asks tenant segment tenant's token endpoint for a public-API
// token with the given app credentials; it returns the status and body.
func (e *env) tokenAt(tenant, clientID, secret string) (int, map[string]any) {
	e.t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret}, "scope": {audPublic + "/.default"}}
	r := e.do(http.MethodPost, "login.microsoftonline.com", "/"+tenant+"/oauth2/v2.0/token", []byte(form.Encode()),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	var body map[string]any
	r.json(e.t, &body)
	return r.status, body
}

func (e *env) tenantToken(m *Tenant) string {
	e.t.Helper()
	c := m.Credentials()
	st, body := e.tokenAt(c.TenantID, c.ClientID, c.ClientSecret)
	if st != http.StatusOK {
		e.t.Fatalf("token of %s: %d %v", m.Name(), st, body)
	}
	return body["access_token"].(string)
}

func idSet(t *testing.T, raw []json.RawMessage, key string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, r := range raw {
		var m map[string]any
		if err := json.Unmarshal(r, &m); err != nil {
			t.Fatal(err)
		}
		out[m[key].(string)] = true
	}
	return out
}

func overlap(a, b map[string]bool) []string {
	var out []string
	for k := range a {
		if b[k] {
			out = append(out, k)
		}
	}
	return out
}

// Several tenants: the first is the single tenant of the same seed, the
// others have their own ids, names, domains, apps, secrets and sessions,
// the same for the same seed.
func TestTenantsAreDistinctAndStable(t *testing.T) {
	one := newEnv(t, nil)
	e := newTenantsEnv(t, 3, nil)
	ts := e.ten.Tenants()
	if len(ts) != 3 || len(one.ten.Tenants()) != 1 {
		t.Fatalf("Tenants() = %d entries (one-tenant emulator: %d)", len(ts), len(one.ten.Tenants()))
	}
	if ts[0].ID != one.ten.TenantID() || ts[0].ClientID != one.ten.Credentials().ClientID || ts[0].Domain != "tailspin.com" ||
		strings.Join(e.ten.MachineIDs(), ",") != strings.Join(one.ten.MachineIDs(), ",") {
		t.Fatalf("the first of three tenants differs from the single tenant of the same seed: %v", ts[0])
	}
	seen := map[string]string{}
	for i, ti := range ts {
		if ti.Index != i || ti.Name != TenantName(i) || e.ten.Tenant(i).Name() != ti.Name || e.ten.Tenant(i).Index() != i {
			t.Fatalf("tenant %d: %+v", i, ti)
		}
		if !isGUID(ti.ID) || ti.ClientSecret == "" || ti.SccAuth == "" || ti.XSRFToken == "" || ti.ESTSAuthPersistent == "" ||
			ti.PortalCookie != PortalCookieHeader(ti.SccAuth, ti.XSRFToken) || !strings.HasSuffix(ti.UserUPN, "@"+ti.Domain) {
			t.Fatalf("tenant %d is incomplete: %+v", i, ti)
		}
		for what, v := range map[string]string{"id": ti.ID, "domain": ti.Domain, "client id": ti.ClientID, "secret": ti.ClientSecret, "sccauth": ti.SccAuth, "user": ti.UserUPN} {
			if prev, dup := seen[v]; dup {
				t.Fatalf("tenant %d shares its %s with %s", i, what, prev)
			}
			seen[v] = ti.Name + "'s " + what
		}
		if s := ti.String(); strings.Contains(s, ti.ClientSecret) || strings.Contains(s, ti.SccAuth) {
			t.Fatal("TenantInfo.String shows a secret")
		}
		if b, _ := json.Marshal(ti); strings.Contains(string(b), ti.ClientSecret) || strings.Contains(string(b), ti.SccAuth) || strings.Contains(string(b), ti.XSRFToken) {
			t.Fatal("TenantInfo's JSON holds a secret")
		}
	}
	if e.ten.Tenant(3) != nil || e.ten.Tenant(-1) != nil || e.ten.Tenant(2).Tenant(0) != e.ten {
		t.Fatal("Tenant(k) out of range or from a later tenant")
	}
	in := e.ten.Tenant(1).Info(nil)
	if in.TenantID != ts[1].ID || in.ClientID != ts[1].ClientID || len(in.Tenants) != 3 || in.Sentinel.Endpoint != e.ten.Info(nil).Sentinel.Endpoint || in.Sentinel.DCRImmutableID != e.ten.Info(nil).Sentinel.DCRImmutableID ||
		in.Splunk.Token != e.ten.Credentials().HECToken || len(one.ten.Info(nil).Tenants) != 0 {
		t.Fatalf("Info of tenant 2: %+v", in)
	}
	again := newTenantsEnv(t, 3, nil)
	for i, ti := range again.ten.Tenants() {
		if ti.ID != ts[i].ID || ti.Domain != ts[i].Domain || ti.ClientID != ts[i].ClientID || ti.Seed != ts[i].Seed ||
			strings.Join(again.ten.Tenant(i).MachineIDs(), ",") != strings.Join(e.ten.Tenant(i).MachineIDs(), ",") {
			t.Fatalf("tenant %d differs between two emulators of the same seed", i)
		}
		if ti.ClientSecret == ts[i].ClientSecret {
			t.Fatalf("tenant %d's secret comes from the seed", i)
		}
	}
	for _, n := range []int{-1, MaxTenants + 1} {
		if _, err := New(Options{Tenants: n}); err == nil || !strings.Contains(err.Error(), "Tenants") {
			t.Errorf("Tenants %d: err = %v", n, err)
		}
	}
}

// A tenant's portal session reads that tenant's data only: devices,
// Action Center rows and the tenant context; another tenant's device is
// unknown to it.
func TestTenantPortalIsolation(t *testing.T) {
	e := newTenantsEnv(t, 3, nil)
	from, to := testStart.Add(-48*time.Hour), testStart.Add(12*time.Hour)
	acPath := "/apiproxy/mtp/actionCenter/actioncenterui/history-actions/?type=history&useMtpApi=true&pageSize=1000&fromDate=" +
		from.Format(time.RFC3339) + "&toDate=" + to.Format(time.RFC3339)
	devices, actions := make([]map[string]bool, 3), make([]map[string]bool, 3)
	for i := range 3 {
		m := e.ten.Tenant(i)
		r := e.as(m, "GET", "/apiproxy/mtp/ndr/machines?pageSize=1000", nil)
		var ms []map[string]any
		r.json(t, &ms)
		devices[i] = map[string]bool{}
		for _, d := range ms {
			devices[i][d["MachineId"].(string)] = true
			if !strings.HasSuffix(d["ComputerDnsName"].(string), "."+m.Tenants()[i].Domain) {
				t.Fatalf("%s serves device %v", m.Name(), d["ComputerDnsName"])
			}
		}
		if len(devices[i]) != len(m.MachineIDs()) {
			t.Fatalf("%s: %d devices served, %d in its world", m.Name(), len(devices[i]), len(m.MachineIDs()))
		}
		for _, id := range m.MachineIDs() {
			if !devices[i][id] {
				t.Fatalf("%s did not serve its device %s", m.Name(), id)
			}
		}
		r = e.as(m, "GET", acPath, nil)
		var ac struct {
			Count   int
			Results []json.RawMessage
		}
		r.json(t, &ac)
		truth, err := m.Events("actioncenter", from, to.Add(time.Second))
		if err != nil || len(ac.Results) == 0 {
			t.Fatalf("%s: %d Action Center rows, %v", m.Name(), len(ac.Results), err)
		}
		actions[i] = idSet(t, ac.Results, "ActionId")
		own := idSet(t, truth, "ActionId")
		for id := range actions[i] {
			if !own[id] {
				t.Fatalf("%s served Action Center row %s that is not in its ground truth", m.Name(), id)
			}
		}
		r = e.as(m, "GET", tenantContext, nil)
		var tc struct{ AuthInfo struct{ TenantId string } }
		r.json(t, &tc)
		if tc.AuthInfo.TenantId != m.TenantID() {
			t.Fatalf("TenantContext with %s's session names %q", m.Name(), tc.AuthInfo.TenantId)
		}
	}
	for i := range 3 {
		for j := i + 1; j < 3; j++ {
			if o := overlap(devices[i], devices[j]); len(o) > 0 {
				t.Fatalf("tenants %d and %d share devices %v", i+1, j+1, o)
			}
			if o := overlap(actions[i], actions[j]); len(o) > 0 {
				t.Fatalf("tenants %d and %d share Action Center rows %v", i+1, j+1, o)
			}
		}
	}
	// A's session cannot reach B's device, and B's XSRF does not go with A's cookie.
	a, b := e.ten, e.ten.Tenant(1)
	if r := e.as(a, "GET", "/apiproxy/mtp/mdeTimelineExperience/machines/"+b.MachineIDs()[0]+"/events/?pageSize=10", nil); r.status != http.StatusNotFound {
		t.Fatalf("tenant-1's session on tenant-2's device: %d %s", r.status, truncate(r.body))
	}
	ca, cb := a.Credentials(), b.Credentials()
	r := e.do("GET", "security.microsoft.com", "/apiproxy/mtp/ndr/machines", nil, map[string]string{"Cookie": "sccauth=" + ca.SccAuth, "X-XSRF-TOKEN": cb.XSRFToken})
	if r.status != http.StatusUnauthorized {
		t.Fatalf("tenant-1's cookie with tenant-2's XSRF token: %d", r.status)
	}
	if a.RequestCount(FamilyPortal) != 5 || b.RequestCount(FamilyPortal) != 3 || e.ten.Tenant(2).RequestCount(FamilyPortal) != 3 {
		t.Fatalf("portal requests counted per tenant: %d, %d, %d", a.RequestCount(FamilyPortal), b.RequestCount(FamilyPortal), e.ten.Tenant(2).RequestCount(FamilyPortal))
	}
}

// A request that names another tenant than its session's is refused:
// 403 on data routes, a sign-in to that tenant on the landing page;
// TenantContext still answers the session's tenant. The same holds with
// one tenant (a hint naming a tenant the emulator does not have).
func TestTenantHintOfAnotherTenantIsRefused(t *testing.T) {
	e := newTenantsEnv(t, 2, nil)
	a, b := e.ten, e.ten.Tenant(1)
	ac := "/apiproxy/mtp/actionCenter/actioncenterui/history-actions/?type=history&pageSize=5"
	for _, tc := range []struct {
		name string
		path string
		hdr  map[string]string
		want int
	}{
		{"own x-tid and tenant-id", ac, map[string]string{"x-tid": a.TenantID(), "tenant-id": strings.ToUpper(a.TenantID())}, 200},
		{"own tenantIds, empty and undefined", ac + "&tenantIds=" + a.TenantID() + ",undefined,", nil, 200},
		{"x-tid of another tenant", ac, map[string]string{"x-tid": b.TenantID()}, 403},
		{"tenant-id of another tenant", ac, map[string]string{"x-tid": a.TenantID(), "tenant-id": b.TenantID()}, 403},
		{"tenantIds naming another tenant", ac + "&TenantIds=" + a.TenantID() + "," + b.TenantID(), nil, 403},
		{"tid of another tenant's domain", ac + "&tid=" + b.Tenants()[1].Domain, nil, 403},
		{"x-tid of no tenant", "/apiproxy/mtp/ndr/machines", map[string]string{"x-tid": "00000000-1111-2222-3333-444444444444"}, 403},
		{"TenantContext answers the session's tenant", tenantContext, map[string]string{"x-tid": b.TenantID()}, 200},
	} {
		r := e.as(a, "GET", tc.path, tc.hdr)
		if r.status != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, r.status, truncate(r.body), tc.want)
			continue
		}
		if tc.want == 403 && (!contains(string(r.body), `"Message":"Access is denied`) || contains(string(r.body), `"Results"`)) {
			t.Errorf("%s: body %s", tc.name, truncate(r.body))
		}
		if tc.path == tenantContext && !contains(string(r.body), a.TenantID()) {
			t.Errorf("TenantContext with tenant-1's session and a tenant-2 hint: %s", truncate(r.body))
		}
	}
	// The landing page with another tenant's tid starts a sign-in there
	// and rotates nothing; with its own tid it serves the page.
	r := e.as(a, "GET", "/?tid="+b.TenantID(), nil)
	loc, _ := url.Parse(r.header.Get("Location"))
	if r.status != http.StatusFound || loc == nil || loc.Host != "login.microsoftonline.com" || !strings.HasPrefix(loc.Path, "/"+b.TenantID()+"/") || r.header.Get("Set-Cookie") != "" {
		t.Fatalf("landing page, tenant-1's session, tid of tenant-2: %d %q", r.status, r.header.Get("Location"))
	}
	if r := e.as(a, "GET", "/?tid="+a.TenantID(), nil); r.status != http.StatusOK || !contains(r.header.Get("Set-Cookie"), "XSRF-TOKEN=") {
		t.Fatalf("landing page with its own tid: %d", r.status)
	}
	// A user bearer token of tenant-1 naming tenant-2 is refused the same way.
	now := e.wall.Now()
	bearer := "Bearer " + a.sign(claims{Aud: audPortal, Iss: a.issuer(), Tid: a.TenantID(), Iat: now.Unix(), Nbf: now.Unix(),
		Exp: now.Add(time.Hour).Unix(), AppID: clientTeams, Upn: a.Credentials().UserUPN, Ver: "1.0"})
	for _, tc := range []struct {
		hint string
		want int
	}{{a.TenantID(), 200}, {b.TenantID(), 403}} {
		r := e.do("GET", "security.microsoft.com", ac, nil, map[string]string{"Authorization": bearer, "x-tid": tc.hint})
		if r.status != tc.want {
			t.Fatalf("tenant-1's user token with x-tid %s: %d, want %d", tc.hint, r.status, tc.want)
		}
	}
	one := newEnv(t, nil)
	if r := one.as(one.ten, "GET", ac, map[string]string{"x-tid": b.TenantID()}); r.status != http.StatusForbidden {
		t.Fatalf("one tenant, x-tid of another: %d", r.status)
	}
	if r := one.as(one.ten, "GET", ac, map[string]string{"x-tid": one.ten.TenantID()}); r.status != http.StatusOK {
		t.Fatalf("one tenant, its own x-tid: %d", r.status)
	}
}

// Entra: the tenant in the token URL decides. An app (and its secret)
// belongs to one tenant: at another tenant's endpoint its id is unknown
// (AADSTS700016) and another app's secret is wrong (7000215); tokens
// carry the tenant of the URL they were issued at.
func TestTenantEntraIsolation(t *testing.T) {
	e := newTenantsEnv(t, 2, nil)
	a, b := e.ten.Credentials(), e.ten.Tenant(1).Credentials()
	aadCode := func(body map[string]any) float64 {
		codes, _ := body["error_codes"].([]any)
		if len(codes) != 1 {
			return 0
		}
		return codes[0].(float64)
	}
	st, body := e.tokenAt(b.TenantID, a.ClientID, a.ClientSecret)
	if st != 400 || body["error"] != "unauthorized_client" || aadCode(body) != 700016 ||
		!contains(body["error_description"].(string), "AADSTS700016: Application with identifier '"+a.ClientID+"' was not found in the directory '"+b.TenantID+"'") {
		t.Fatalf("tenant-1's app at tenant-2: %d %v", st, body)
	}
	st, body = e.tokenAt(b.TenantID, b.ClientID, a.ClientSecret)
	if st != 400 || body["error"] != "invalid_client" || aadCode(body) != 7000215 {
		t.Fatalf("tenant-1's secret for tenant-2's app: %d %v", st, body)
	}
	if contains(body["error_description"].(string), a.ClientSecret) {
		t.Fatal("the error repeats the secret")
	}
	dom := e.ten.Tenants()[1].Domain
	st, body = e.tokenAt(strings.TrimSuffix(dom, ".com")+".onmicrosoft.com", b.ClientID, b.ClientSecret)
	if st != 200 {
		t.Fatalf("tenant-2 by its onmicrosoft name: %d %v", st, body)
	}
	for _, m := range []*Tenant{e.ten, e.ten.Tenant(1)} {
		c, err := m.verify(e.tenantToken(m))
		if err != nil || c.Tid != m.TenantID() || c.Iss != "https://sts.windows.net/"+m.TenantID()+"/" {
			t.Fatalf("%s's token: %+v %v", m.Name(), c, err)
		}
		if _, err := e.ten.Tenant(1 - m.Index()).verify(e.tenantToken(m)); err == nil {
			t.Fatalf("%s's token verifies at the other tenant", m.Name())
		}
	}
	// The discovery document of each tenant names that tenant.
	r := e.do("GET", "login.microsoftonline.com", "/"+b.TenantID+"/v2.0/.well-known/openid-configuration", nil, nil)
	if r.status != 200 || !contains(string(r.body), `"issuer":"https://login.microsoftonline.com/`+b.TenantID+`/v2.0"`) {
		t.Fatalf("tenant-2's discovery: %d %s", r.status, truncate(r.body))
	}
}

// The public API serves the machine actions of the token's tenant only; a
// token whose tid was changed to another tenant's fails that tenant's
// signature check.
func TestTenantPublicAPIIsolation(t *testing.T) {
	e := newTenantsEnv(t, 2, nil)
	from, to := testStart.Add(-30*24*time.Hour), testStart.Add(13*time.Hour)
	sets := make([]map[string]bool, 2)
	for i := range 2 {
		m := e.ten.Tenant(i)
		r := e.public("/api/machineactions", e.tenantToken(m))
		var page struct{ Value []json.RawMessage }
		r.json(t, &page)
		if r.status != 200 || len(page.Value) == 0 {
			t.Fatalf("%s's machine actions: %d, %d rows", m.Name(), r.status, len(page.Value))
		}
		truth, err := m.Events("machineactions", from, to)
		if err != nil {
			t.Fatal(err)
		}
		sets[i] = idSet(t, page.Value, "id")
		if want := idSet(t, truth, "id"); len(want) != len(sets[i]) || len(overlap(want, sets[i])) != len(want) {
			t.Fatalf("%s: served %d machine actions, ground truth %d", m.Name(), len(sets[i]), len(want))
		}
		for _, raw := range page.Value {
			var a struct{ MachineID string }
			json.Unmarshal(raw, &a)
			if _, ok := m.w.machine(a.MachineID); !ok {
				t.Fatalf("%s served an action on device %s of another tenant", m.Name(), a.MachineID)
			}
		}
	}
	if o := overlap(sets[0], sets[1]); len(o) > 0 {
		t.Fatalf("the tenants share machine actions %v", o)
	}
	tokA := e.tenantToken(e.ten)
	var bID string
	for id := range sets[1] {
		bID = id
		break
	}
	if r := e.public("/api/machineactions/"+bID, tokA); r.status != http.StatusNotFound {
		t.Fatalf("tenant-1's token for tenant-2's action: %d", r.status)
	}
	// Forge: tenant-1's token with tenant-2's tid.
	parts := strings.Split(tokA, ".")
	payload, _ := b64.DecodeString(parts[1])
	forged := strings.Join([]string{parts[0], b64.EncodeToString([]byte(strings.ReplaceAll(string(payload), e.ten.TenantID(), e.ten.Tenant(1).TenantID()))), parts[2]}, ".")
	if r := e.public("/api/machineactions", forged); r.status != http.StatusUnauthorized || !contains(string(r.body), "signature") {
		t.Fatalf("forged tid: %d %s", r.status, truncate(r.body))
	}
	if n := e.ten.Tenant(1).RequestCount(FamilyPublic); n != 2 {
		t.Fatalf("tenant-2 counted %d public requests, want 2 (its listing and the forged token)", n)
	}
}

// Sign-in: each tenant's user signs in to their own tenant through the
// shared hosts; a user's ESTS cookie at another tenant's authorize gets
// AADSTS50020; organizations signs the user in to their home tenant.
func TestTenantSignIn(t *testing.T) {
	e := newTenantsEnv(t, 3, func(o *Options) { o.AppControl = true })
	for i := range 3 {
		m := e.ten.Tenant(i)
		for _, tid := range []string{m.TenantID(), ""} {
			scc, xsrf, stop := e.signInESTS(m.Credentials().ESTSAuthPersistent, tid)
			if scc == "" {
				t.Fatalf("%s sign-in (tid %q) stopped: %d %s", m.Name(), tid, stop.status, truncate(stop.body))
			}
			var tc struct{ AuthInfo struct{ TenantId string } }
			e.portalAs(scc, xsrf, tenantContext).json(t, &tc)
			if tc.AuthInfo.TenantId != m.TenantID() {
				t.Fatalf("%s signed in (tid %q) to %q", m.Name(), tid, tc.AuthInfo.TenantId)
			}
			var ms []map[string]any
			e.portalAs(scc, xsrf, "/apiproxy/mtp/ndr/machines?pageSize=1000").json(t, &ms)
			if len(ms) != len(m.MachineIDs()) || ms[0]["MachineId"] == nil || !strings.HasSuffix(ms[0]["ComputerDnsName"].(string), m.Tenants()[i].Domain) {
				t.Fatalf("%s's signed-in session reads %d devices", m.Name(), len(ms))
			}
		}
	}
	a, b := e.ten, e.ten.Tenant(1)
	scc, _, stop := e.signInESTS(a.Credentials().ESTSAuthPersistent, b.TenantID())
	if scc != "" || stop.status != 200 || !contains(string(stop.body), `"sErrorCode":"50020"`) ||
		!contains(string(stop.body), "AADSTS50020: User account '"+a.Credentials().UserUPN+"' from identity provider 'https://sts.windows.net/"+a.TenantID()+"/' does not exist in tenant") {
		t.Fatalf("tenant-1's user signing in to tenant-2: %d %s", stop.status, truncate(stop.body))
	}
	// Device code: tenant-2's app is a public client at tenant-2 only.
	f := url.Values{"client_id": {b.Credentials().ClientID}, "scope": {audPublic + "/.default"}}
	for _, tc := range []struct {
		m    *Tenant
		want int
	}{{a, 400}, {b, 200}} {
		r := e.do(http.MethodPost, "login.microsoftonline.com", "/"+tc.m.TenantID()+"/oauth2/v2.0/devicecode", []byte(f.Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
		if r.status != tc.want || tc.want == 400 && !contains(string(r.body), "AADSTS700016") {
			t.Fatalf("tenant-2's app starting a device code at %s: %d %s", tc.m.Name(), r.status, truncate(r.body))
		}
	}
}

// Knobs apply to every tenant; an injected fault to the tenant it was
// injected on; the receivers are shared.
func TestTenantKnobsAndFaults(t *testing.T) {
	e := newTenantsEnv(t, 2, func(o *Options) { o.PageClamp = map[string]int{RouteMachines: 3} })
	a, b := e.ten, e.ten.Tenant(1)
	for _, m := range []*Tenant{a, b} {
		var ms []json.RawMessage
		e.as(m, "GET", "/apiproxy/mtp/ndr/machines?pageSize=100", nil).json(t, &ms)
		if len(ms) != 3 {
			t.Fatalf("%s: the page clamp serves %d devices, want 3", m.Name(), len(ms))
		}
	}
	b.Inject(FaultRule{Family: FamilyPortal, Kind: Fault503, Count: 1})
	if r := e.as(a, "GET", tenantContext, nil); r.status != 200 {
		t.Fatalf("tenant-1 got tenant-2's fault: %d", r.status)
	}
	if r := e.as(b, "GET", tenantContext, nil); r.status != 503 {
		t.Fatalf("tenant-2's injected fault: %d", r.status)
	}
	if b.FaultsFired()[Fault503] != 1 || a.FaultsFired()[Fault503] != 0 {
		t.Fatalf("faults fired: tenant-1 %v, tenant-2 %v", a.FaultsFired(), b.FaultsFired())
	}
	b.SetReceiverBusy(ReceiverSplunk, true)
	if r := e.do("GET", hecHost, "/services/collector/health", nil, nil); r.status != 503 {
		t.Fatalf("the receivers are not shared: health %d", r.status)
	}
	if err := b.RevokePortalSession(); err != nil {
		t.Fatal(err)
	}
	if r := e.as(a, "GET", tenantContext, nil); r.status != 200 {
		t.Fatalf("revoking tenant-2's session ended tenant-1's: %d", r.status)
	}
}
