package sim

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

func TestEntraTokenErrors(t *testing.T) {
	e := newEnv(t, nil)
	c := e.ten.Credentials()
	form := func(kv ...string) []byte {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return []byte(v.Encode())
	}
	const scope = "https://api.securitycenter.microsoft.com/.default"
	tests := []struct {
		name, tenant string
		body         []byte
		basic        [2]string
		status       int
		errCode      string
		aadsts       int
	}{
		{"ok", c.TenantID, form("grant_type", "client_credentials", "client_id", c.ClientID, "client_secret", c.ClientSecret, "scope", scope), [2]string{}, 200, "", 0},
		{"ok basic auth", c.TenantID, form("grant_type", "client_credentials", "scope", scope), [2]string{c.ClientID, c.ClientSecret}, 200, "", 0},
		{"ok old WindowsDefenderATP scope", c.TenantID, form("grant_type", "client_credentials", "client_id", c.ClientID, "client_secret", c.ClientSecret, "scope", "https://securitycenter.onmicrosoft.com/windowsatpservice/.default"), [2]string{}, 200, "", 0},
		{"wrong secret", c.TenantID, form("grant_type", "client_credentials", "client_id", c.ClientID, "client_secret", "nope", "scope", scope), [2]string{}, 400, "invalid_client", 7000215},
		{"no secret", c.TenantID, form("grant_type", "client_credentials", "client_id", c.ClientID, "scope", scope), [2]string{}, 400, "invalid_client", 7000218},
		{"unknown app", c.TenantID, form("grant_type", "client_credentials", "client_id", "00000000-0000-4000-8000-000000000001", "client_secret", "x", "scope", scope), [2]string{}, 400, "unauthorized_client", 700016},
		{"scope without .default", c.TenantID, form("grant_type", "client_credentials", "client_id", c.ClientID, "client_secret", c.ClientSecret, "scope", "https://api.securitycenter.microsoft.com/Machine.Read.All"), [2]string{}, 400, "invalid_scope", 70011},
		{"two resources", c.TenantID, form("grant_type", "client_credentials", "client_id", c.ClientID, "client_secret", c.ClientSecret, "scope", scope+" https://graph.microsoft.com/.default"), [2]string{}, 400, "invalid_scope", 70011},
		{"unknown resource", c.TenantID, form("grant_type", "client_credentials", "client_id", c.ClientID, "client_secret", c.ClientSecret, "scope", "https://example.com/.default"), [2]string{}, 400, "invalid_resource", 500011},
		{"unsupported grant", c.TenantID, form("grant_type", "password", "client_id", c.ClientID), [2]string{}, 400, "unsupported_grant_type", 70003},
		{"no grant", c.TenantID, form("client_id", c.ClientID), [2]string{}, 400, "invalid_request", 900144},
		{"unknown tenant", "11111111-1111-4111-8111-111111111111", form("grant_type", "client_credentials", "client_id", c.ClientID, "client_secret", c.ClientSecret, "scope", scope), [2]string{}, 400, "invalid_request", 90002},
		{"common tenant", "common", form("grant_type", "client_credentials", "client_id", c.ClientID, "client_secret", c.ClientSecret, "scope", scope), [2]string{}, 400, "invalid_request", 50059},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
			if tc.basic[0] != "" {
				h["Authorization"] = "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(tc.basic[0])+":"+url.QueryEscape(tc.basic[1])))
			}
			r := e.do("POST", "login.microsoftonline.com", "/"+tc.tenant+"/oauth2/v2.0/token", tc.body, h)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			var body map[string]any
			r.json(t, &body)
			if tc.status == 200 {
				if body["token_type"] != "Bearer" || body["expires_in"] != float64(3599) || body["ext_expires_in"] == nil {
					t.Fatalf("token response %v", body)
				}
				tok := body["access_token"].(string)
				parts := strings.Split(tok, ".")
				if len(parts) != 3 || strings.Contains(tok, "=") {
					t.Fatalf("token is not an unpadded JWT: %q", tok)
				}
				var cl map[string]any
				p, _ := base64.RawURLEncoding.DecodeString(parts[1])
				json.Unmarshal(p, &cl)
				for _, k := range []string{"aud", "iss", "tid", "appid", "iat", "nbf", "exp"} {
					if cl[k] == nil {
						t.Fatalf("token lacks claim %s: %v", k, cl)
					}
				}
				return
			}
			desc, _ := body["error_description"].(string)
			codes, _ := body["error_codes"].([]any)
			if body["error"] != tc.errCode || len(codes) != 1 || codes[0] != float64(tc.aadsts) ||
				!strings.HasPrefix(desc, "AADSTS"+itoa(tc.aadsts)+": ") || !strings.Contains(desc, "\r\nTrace ID: ") ||
				!strings.Contains(desc, "\r\nCorrelation ID: ") || !strings.Contains(desc, "\r\nTimestamp: ") ||
				body["trace_id"] == nil || body["correlation_id"] == nil || body["timestamp"] == nil || body["error_uri"] == nil {
				t.Fatalf("error body %s", r.body)
			}
			if strings.Contains(string(r.body), c.ClientSecret) {
				t.Fatal("error body echoes the client secret")
			}
		})
	}
	if r := e.do("GET", "login.microsoftonline.com", "/"+c.TenantID+"/oauth2/v2.0/token", nil, nil); r.status != 405 || !strings.Contains(string(r.body), "AADSTS") {
		t.Fatalf("GET token endpoint: %d %s", r.status, r.body)
	}
}

func TestEntraDiscovery(t *testing.T) {
	e := newEnv(t, nil)
	tid := e.ten.TenantID()
	r := e.do("GET", "login.microsoftonline.com", "/"+tid+"/v2.0/.well-known/openid-configuration", nil, nil)
	var cfg map[string]any
	r.json(t, &cfg)
	if cfg["issuer"] != "https://login.microsoftonline.com/"+tid+"/v2.0" ||
		cfg["token_endpoint"] != "https://login.microsoftonline.com/"+tid+"/oauth2/v2.0/token" ||
		cfg["device_authorization_endpoint"] == nil || cfg["authorization_endpoint"] == nil || cfg["jwks_uri"] == nil {
		t.Fatalf("openid configuration: %s", r.body)
	}
	r = e.do("GET", "login.microsoftonline.com", "/common/discovery/instance?api-version=1.1&authorization_endpoint="+url.QueryEscape("https://login.microsoftonline.com/"+tid+"/oauth2/v2.0/authorize"), nil, nil)
	var inst map[string]any
	r.json(t, &inst)
	if inst["tenant_discovery_endpoint"] != "https://login.microsoftonline.com/"+tid+"/v2.0/.well-known/openid-configuration" || inst["metadata"] == nil {
		t.Fatalf("instance discovery: %s", r.body)
	}
	if r := e.do("GET", "login.microsoftonline.com", "/nosuchtenant.example/v2.0/.well-known/openid-configuration", nil, nil); r.status != 400 {
		t.Fatalf("unknown tenant discovery: %d", r.status)
	}
}

// tlsClient dials the emulator for every host and trusts only its CA, as
// the harvester's emulator transport does.
func tlsClient(t *testing.T, ten *Tenant, addr string) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ten.CACertPEM()) {
		t.Fatal("CA PEM does not parse")
	}
	d := &net.Dialer{}
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
	}}
}

func TestTLSServer(t *testing.T) {
	e := newEnv(t, nil)
	srv, err := e.ten.Serve("127.0.0.1:0", true)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if !strings.HasPrefix(srv.URL(), "https://127.0.0.1:") {
		t.Fatalf("URL %q", srv.URL())
	}
	cl := tlsClient(t, e.ten, srv.Addr())
	c := e.ten.Credentials()
	for _, host := range []string{"security.microsoft.com", "mto.security.microsoft.com", "login.microsoftonline.com", "api.security.microsoft.com", "eu.api.security.microsoft.com", "api.securitycenter.microsoft.com", "wdatpprd-weu.securitycenter.windows.com", "localhost"} {
		t.Run(host, func(t *testing.T) {
			req, _ := http.NewRequest("GET", "https://"+host+"/apiproxy/mtp/settings/GetAdvancedFeaturesSetting", nil)
			req.Header.Set("Cookie", "sccauth="+c.SccAuth)
			req.Header.Set("X-XSRF-TOKEN", c.XSRFToken)
			res, err := cl.Do(req)
			if err != nil {
				t.Fatalf("TLS to %s: %v", host, err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			want := map[string]int{"security.microsoft.com": 200, "mto.security.microsoft.com": 200, "localhost": 421}[host]
			if want == 0 {
				want = 404 // the other services do not have this path
			}
			if res.StatusCode != want {
				t.Fatalf("%s: status %d, want %d", host, res.StatusCode, want)
			}
		})
	}
	// A client that does not trust the CA fails the handshake.
	plain := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, srv.Addr())
	}}}
	if _, err := plain.Get("https://security.microsoft.com/"); err == nil {
		t.Fatal("a client without the emulator CA completed the TLS handshake")
	}
	info := e.ten.Info(srv)
	b, _ := json.Marshal(info)
	var m map[string]any
	json.Unmarshal(b, &m)
	for _, k := range []string{"address", "tls", "ca_pem", "tenant_id", "client_id", "client_secret", "sccauth", "xsrf_token", "hosts", "base_urls"} {
		if m[k] == nil {
			t.Fatalf("Info lacks %s", k)
		}
	}
}

// A real azidentity ClientSecretCredential gets a token from the emulated
// Entra and the public API accepts it.
func TestAzidentityClientSecretCredential(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Clock = nil }) // azidentity caches by the real clock
	srv, err := e.ten.Serve("127.0.0.1:0", true)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cl := tlsClient(t, e.ten, srv.Addr())
	c := e.ten.Credentials()
	cred, err := azidentity.NewClientSecretCredential(c.TenantID, c.ClientID, c.ClientSecret, &azidentity.ClientSecretCredentialOptions{
		DisableInstanceDiscovery: true,
		ClientOptions:            policy.ClientOptions{Transport: cl},
	})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://api.securitycenter.microsoft.com/.default"}})
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	req, _ := http.NewRequest("GET", "https://api.security.microsoft.com/api/machineactions?$top=5", nil)
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	res, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var p maPageT
	if err := json.NewDecoder(res.Body).Decode(&p); err != nil || res.StatusCode != 200 || len(p.Value) != 5 {
		t.Fatalf("machineactions with azidentity token: %d %v %d rows", res.StatusCode, err, len(p.Value))
	}
	// A wrong secret surfaces as an authentication error.
	bad, _ := azidentity.NewClientSecretCredential(c.TenantID, c.ClientID, "wrong", &azidentity.ClientSecretCredentialOptions{
		DisableInstanceDiscovery: true, ClientOptions: policy.ClientOptions{Transport: cl},
	})
	if _, err := bad.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://api.securitycenter.microsoft.com/.default"}}); err == nil || !strings.Contains(err.Error(), "7000215") {
		t.Fatalf("wrong secret: %v", err)
	}
}
