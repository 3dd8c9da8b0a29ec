package sim

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// ---- several tenants (README "Several tenants") ----
//
// One emulator can serve several tenants. Each is a whole Tenant (its own
// world, apps, secrets, token key, users and portal sessions); they share
// the handler, the CA, the clocks, the knobs and the receivers. A request
// goes to the tenant its credential names, as on the real services, where
// the credential decides the tenant: the tenant segment of an Entra URL,
// the tid of a bearer token, the portal session a cookie belongs to.

// tenantSet is every tenant one emulator serves; all[0] is the first.
type tenantSet struct {
	all    []*Tenant
	byID   map[string]*Tenant // lower-case tenant GUID
	byName map[string]*Tenant // GUID, <org>.onmicrosoft.com, <org>.com
	byOrg  map[string]*Tenant // organisation (App Control host <org>.access.mcas.ms)
}

// lblMember seeds the derivation of a later tenant's seed.
const lblMember uint64 = 0x7e4a47

// memberSeed is the seed of tenant k (k ≥ 1) of an emulator seeded seed.
func memberSeed(seed int64, k int) int64 {
	return int64(mix(mix(uint64(seed)^0x6d75_6c74_6974_656e) ^ mix(lblMember+uint64(k))))
}

// index builds the lookup maps; two tenants may not share a name.
func (s *tenantSet) index() error {
	s.byID, s.byName, s.byOrg = map[string]*Tenant{}, map[string]*Tenant{}, map[string]*Tenant{}
	for _, t := range s.all {
		for _, n := range t.names() {
			if o, dup := s.byName[n]; dup {
				return fmt.Errorf("sim: tenants %d and %d are both named %s: pick another Seed or TenantID", o.index+1, t.index+1, n)
			}
			s.byName[n] = t
		}
		s.byID[t.w.tenantID] = t
		s.byOrg[t.w.orgName] = t
	}
	return nil
}

// names are the names Entra accepts for the tenant in a URL.
func (t *Tenant) names() []string {
	return []string{t.w.tenantID, t.w.orgName + ".onmicrosoft.com", t.w.domain}
}

// named is the tenant a URL segment or tenant hint names (nil: none).
func (s *tenantSet) named(seg string) *Tenant {
	return s.byName[strings.ToLower(strings.TrimSpace(seg))]
}

// pick is the tenant that serves r: the one its credential names, else a
// tenant hint's, else the first (whose answer is then the refusal any
// tenant would give: 401, 302 to sign-in, 90002…).
func (s *tenantSet) pick(w http.ResponseWriter, r *http.Request, host string) *Tenant {
	first := s.all[0]
	if len(s.all) == 1 {
		return first
	}
	switch {
	case host == "login.microsoftonline.com":
		seg, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		if t := s.named(seg); t != nil {
			return t
		}
		// organizations/common: the home tenant of the signed-in user.
		if t, _ := s.estsOwner(r); t != nil {
			return t
		}
	case host == "security.microsoft.com" || host == "mto.security.microsoft.com":
		if r.Header.Get("Authorization") != "" {
			// The portal judges a bearer token before any cookie.
			if t := s.byToken(r); t != nil {
				return t
			}
			return first
		}
		if ck, err := r.Cookie("sccauth"); err == nil && ck.Value != "" {
			for _, t := range s.all {
				if t.sess.has(ck.Value) {
					return t
				}
			}
		}
		if r.Method == http.MethodPost && r.URL.Path == "/" {
			if t := s.codeOwner(w, r); t != nil {
				return t
			}
		}
		// No credential names a tenant: a hint does (sign-in to ?tid=…).
		for _, h := range tenantHints(r) {
			if t := s.named(h); t != nil {
				return t
			}
		}
	case rePublic.MatchString(host) || host == "api.securitycenter.microsoft.com" ||
		host == "api-eu.securitycenter.windows.com" || host == "api-us.securitycenter.windows.com" || reLegacy.MatchString(host) ||
		host == ManageHost:
		if t := s.byToken(r); t != nil {
			return t
		}
	case reMCAS.MatchString(host):
		if t := s.byOrg[strings.TrimSuffix(host, ".access.mcas.ms")]; t != nil {
			return t
		}
	}
	// The receivers (Logs Ingestion, HEC) belong to the first tenant.
	return first
}

// byToken reads the tid claim of a bearer token without verifying it: the
// tenant it names verifies it (a forged tid fails that tenant's signature).
func (s *tenantSet) byToken(r *http.Request) *Tenant {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || len(tok) > 16<<10 {
		return nil
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil
	}
	payload, err := b64.DecodeString(parts[1])
	if err != nil {
		return nil
	}
	var c struct {
		Tid string `json:"tid"`
	}
	if json.Unmarshal(payload, &c) != nil {
		return nil
	}
	return s.byID[strings.ToLower(c.Tid)]
}

// estsOwner is the tenant of a live ESTS cookie on the request, with the
// cookie's user.
func (s *tenantSet) estsOwner(r *http.Request) (*Tenant, string) {
	for _, n := range []string{"ESTSAUTHPERSISTENT", "ESTSAUTH"} {
		ck, err := r.Cookie(n)
		if err != nil || ck.Value == "" {
			continue
		}
		for _, t := range s.all {
			if upn := t.estsUser(ck.Value); upn != "" {
				return t, upn
			}
		}
	}
	return nil, ""
}

// estsUser is the user of a live ESTS cookie of this tenant ("": none).
func (t *Tenant) estsUser(v string) string {
	t.si.mu.Lock()
	defer t.si.mu.Unlock()
	c, ok := t.si.ests[v]
	if !ok || !t.clock().Before(c.expires) {
		return ""
	}
	return c.upn
}

// codeOwner is the tenant that issued the authorization code of a
// sign-in form post (the body is parsed here, within the limit the
// sign-in applies; the sign-in then reads the parsed form).
func (s *tenantSet) codeOwner(w http.ResponseWriter, r *http.Request) *Tenant {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		return nil
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if r.ParseForm() != nil {
		return nil
	}
	code := r.PostForm.Get("code")
	if code == "" {
		return nil
	}
	for _, t := range s.all {
		t.si.mu.Lock()
		_, ok := t.si.codes[code]
		t.si.mu.Unlock()
		if ok {
			return t
		}
	}
	return nil
}

// tenantHints are the tenants a portal request names besides its
// credential (docs/REFERENCE.md §1.2): headers x-tid and tenant-id, query
// parameters tid, tenantId and tenantIds (comma-separated; empty and
// "undefined", which clients send, name none).
func tenantHints(r *http.Request) []string {
	var out []string
	add := func(v string) {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" && !strings.EqualFold(p, "undefined") {
				out = append(out, p)
			}
		}
	}
	for _, h := range []string{"x-tid", "tenant-id"} {
		for _, v := range r.Header.Values(h) {
			add(v)
		}
	}
	for k, vs := range r.URL.Query() {
		switch strings.ToLower(k) {
		case "tid", "tenantid", "tenantids":
			for _, v := range vs {
				add(v)
			}
		}
	}
	return out
}

// foreignHint is the first tenant hint of q that does not name this
// tenant ("": none).
func (t *Tenant) foreignHint(q *req) string {
	for _, h := range tenantHints(q.r) {
		if !t.knownTenant(h) {
			return h
		}
	}
	return ""
}

// tenantContextPath is the portal's "who am I" route: it answers the
// session's tenant whatever the request's hints name.
const tenantContextPath = "/apiproxy/mtp/sccManagement/mgmt/TenantContext"

// refuseForeignHint answers a portal request whose credential belongs to
// this tenant but which names another: the landing page starts a sign-in
// to the named tenant (302), data routes answer 403 — a session reads its
// own tenant only (decision, README "Several tenants": the reference does
// not say what the portal answers). TenantContext is exempt: it tells a
// client which tenant the session belongs to. It reports whether it
// answered.
func (t *Tenant) refuseForeignHint(q *req) bool {
	h := t.foreignHint(q)
	switch {
	case h == "":
		return false
	case q.r.URL.Path == "/":
		loginRedirectTo(q, h)
		return true
	case strings.EqualFold(strings.TrimSuffix(q.r.URL.Path, "/"), tenantContextPath):
		return false
	}
	portalFail(q, http.StatusForbidden, "", fmt.Sprintf("Access is denied: the request names tenant '%s', but the session does not belong to it. Sign in to that tenant.", h))
	return true
}

// ---- what tests and simulate read ----

// TenantInfo is what a client needs to harvest one tenant of the emulator.
// Secrets are left out of JSON, String and logs: read the fields.
type TenantInfo struct {
	Index    int    `json:"index"`     // 0 is the first tenant
	Name     string `json:"name"`      // "tenant-1", "tenant-2", …: stable
	ID       string `json:"tenant_id"` // GUID
	Domain   string `json:"domain"`    // the organisation's domain (UPNs, device FQDNs)
	Seed     int64  `json:"seed"`      // the seed its data derives from
	ClientID string `json:"client_id"` // the app: public API, legacy hosts, Logs Ingestion
	// ClientSecret is the app's secret; it works at this tenant's token
	// endpoint only.
	ClientSecret string `json:"-"`
	// PortalCookie is the portal session as a browser's Cookie header
	// holds it: "sccauth=…; XSRF-TOKEN=<URL-encoded>". SccAuth and
	// XSRFToken (URL-decoded: the X-XSRF-TOKEN header form) are its parts.
	PortalCookie string `json:"-"`
	SccAuth      string `json:"-"`
	XSRFToken    string `json:"-"`
	// UserUPN is the tenant's analyst (the default session's user);
	// ESTSAuthPersistent is that user's ESTS cookie.
	UserUPN            string `json:"user_upn"`
	ESTSAuthPersistent string `json:"-"`
}

// String keeps secrets out of logs and error messages.
func (i TenantInfo) String() string {
	return fmt.Sprintf("TenantInfo{Name:%s ID:%s ClientID:%s secrets:redacted}", i.Name, i.ID, i.ClientID)
}

// LogValue keeps secrets out of structured logs.
func (i TenantInfo) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", i.Name), slog.String("tenant_id", i.ID), slog.String("client_id", i.ClientID))
}

// PortalCookieHeader renders a portal session as the browser's Cookie
// header holds it; the XSRF-TOKEN cookie is URL-encoded (the header form
// is not).
func PortalCookieHeader(sccauth, xsrfHeaderForm string) string {
	return "sccauth=" + sccauth + "; XSRF-TOKEN=" + url.QueryEscape(xsrfHeaderForm)
}

// TenantName is the stable name of tenant index: "tenant-1" for the first.
func TenantName(index int) string { return fmt.Sprintf("tenant-%d", index+1) }

// Name is this tenant's stable name ("tenant-1" for the first).
func (t *Tenant) Name() string { return TenantName(t.index) }

// Index is this tenant's place among the emulator's tenants (0: the first).
func (t *Tenant) Index() int { return t.index }

// info describes this tenant.
func (t *Tenant) info() TenantInfo {
	c := t.Credentials()
	return TenantInfo{
		Index: t.index, Name: t.Name(), ID: c.TenantID, Domain: t.w.domain, Seed: t.opts.Seed,
		ClientID: c.ClientID, ClientSecret: c.ClientSecret,
		PortalCookie: PortalCookieHeader(c.SccAuth, c.XSRFToken), SccAuth: c.SccAuth, XSRFToken: c.XSRFToken,
		UserUPN: c.UserUPN, ESTSAuthPersistent: c.ESTSAuthPersistent,
	}
}

// Tenants describes every tenant the emulator serves, the first first
// (one entry without Options.Tenants). The portal cookies are the current
// default sessions (see RevokePortalSession).
func (t *Tenant) Tenants() []TenantInfo {
	out := make([]TenantInfo, len(t.set.all))
	for i, m := range t.set.all {
		out[i] = m.info()
	}
	return out
}

// Tenant returns tenant index (0: the first) of the emulator, nil when
// there is none. Every method works on it as on the first: Credentials,
// MachineIDs, Events, RequestCount (its own requests), Inject (faults for
// its requests only), RevokePortalSession, sign-in knobs…; Handler and
// Serve serve all tenants, and the receiver methods act on the receivers
// all tenants share.
func (t *Tenant) Tenant(index int) *Tenant {
	if index < 0 || index >= len(t.set.all) {
		return nil
	}
	return t.set.all[index]
}
