package auth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

func TestStaticCookiesApply(t *testing.T) {
	s, err := NewStaticCookies("abc.DEF-123_x", "tok%2Fen%3D%3D")
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "https://security.microsoft.com/apiproxy/x", nil)
	req.Header.Set("Cookie", "other=1")
	if err := s.Apply(req); err != nil {
		t.Fatal(err)
	}
	if got := req.Header.Get("X-XSRF-TOKEN"); got != "tok/en==" {
		t.Errorf("X-XSRF-TOKEN = %q, want URL-decoded tok/en==", got)
	}
	want := map[string]string{"other": "1", "sccauth": "abc.DEF-123_x", "XSRF-TOKEN": "tok%2Fen%3D%3D"}
	for name, v := range want {
		c, err := req.Cookie(name)
		if err != nil || c.Value != v {
			t.Errorf("cookie %s = %v %v, want %q", name, c, err, v)
		}
	}
}

func TestNewStaticCookiesRejects(t *testing.T) {
	tests := []struct{ name, scc, xsrf string }{
		{"empty sccauth", "", "x"},
		{"empty xsrf", "x", ""},
		{"CRLF", "a\r\nX-Evil: 1", "x"},
		{"semicolon", "a; other=b", "x"},
		{"space", "a b", "x"},
		{"bad escape", "a", "%zz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewStaticCookies(tt.scc, tt.xsrf)
			if err == nil {
				t.Fatal("accepted an invalid cookie value")
			}
			if tt.scc != "" && len(tt.scc) > 2 && strings.Contains(err.Error(), tt.scc) {
				t.Errorf("error leaks the cookie value: %v", err)
			}
		})
	}
}

func TestParseCookieHeader(t *testing.T) {
	tests := []struct {
		in             string
		scc, xsrf      string
		wantErr, noVal string
	}{
		{in: "sccauth=S1; XSRF-TOKEN=X1", scc: "S1", xsrf: "X1"},
		{in: "Cookie: a=b; sccauth=S2;XSRF-TOKEN=X%3D2; c=d", scc: "S2", xsrf: "X%3D2"},
		{in: "  xsrf-token=X3 ; SCCAUTH=S3  ", scc: "S3", xsrf: "X3"},
		{in: "sccauth=SECRETVALUE", wantErr: "XSRF-TOKEN", noVal: "SECRETVALUE"},
		{in: "XSRF-TOKEN=SECRETX", wantErr: "sccauth", noVal: "SECRETX"},
		{in: "sccauth=A\nXSRF-TOKEN=B", wantErr: "one line"},
		{in: "", wantErr: "sccauth or XSRF-TOKEN"},
	}
	for _, tt := range tests {
		scc, xsrf, err := ParseCookieHeader(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseCookieHeader(%q) err = %v, want mention of %q", tt.in, err, tt.wantErr)
			}
			if err != nil && tt.noVal != "" && strings.Contains(err.Error(), tt.noVal) {
				t.Errorf("error leaks a cookie value: %v", err)
			}
			continue
		}
		if err != nil || scc != tt.scc || xsrf != tt.xsrf {
			t.Errorf("ParseCookieHeader(%q) = %q, %q, %v; want %q, %q", tt.in, scc, xsrf, err, tt.scc, tt.xsrf)
		}
	}
}

func TestRedact(t *testing.T) {
	got := Redact("token a/b=c and a%2Fb%3Dc and a/b=c", "a/b=c", "")
	if strings.Contains(got, "a/b=c") || strings.Contains(got, "a%2Fb%3Dc") {
		t.Errorf("Redact left a secret: %q", got)
	}
	if !strings.HasPrefix(got, "token [redacted]") {
		t.Errorf("Redact changed the rest: %q", got)
	}
}

type fakeCred struct {
	calls  atomic.Int32
	expiry time.Time
	err    error
}

func (f *fakeCred) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	n := f.calls.Add(1)
	if f.err != nil {
		return azcore.AccessToken{}, f.err
	}
	return azcore.AccessToken{Token: "tok-" + o.Scopes[0] + "-" + string(rune('0'+n)), ExpiresOn: f.expiry}, nil
}

func TestAzureCredentialCaches(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := &fakeCred{expiry: now.Add(time.Hour)}
	ts := NewAzureCredential(f, "s").(*azureCredential)
	ts.now = func() time.Time { return now }
	for i := 0; i < 3; i++ {
		if tok, err := ts.Token(context.Background()); err != nil || tok != "tok-s-1" {
			t.Fatalf("Token = %q, %v", tok, err)
		}
	}
	if f.calls.Load() != 1 {
		t.Fatalf("credential called %d times, want 1 (cached)", f.calls.Load())
	}
	now = now.Add(56 * time.Minute) // inside the 5-minute margin
	if tok, _ := ts.Token(context.Background()); tok != "tok-s-2" {
		t.Errorf("token not refreshed near expiry: %q", tok)
	}
}

func TestAzureCredentialError(t *testing.T) {
	ts := NewAzureCredential(&fakeCred{err: errors.New("AADSTS7000215 invalid client secret")}, "")
	_, err := ts.Token(context.Background())
	if err == nil || !strings.Contains(err.Error(), DefaultPublicAPIScope) {
		t.Fatalf("err = %v, want scope named", err)
	}
}

func TestStaticToken(t *testing.T) {
	if tok, err := NewStaticToken(" abc \n").Token(context.Background()); err != nil || tok != "abc" {
		t.Errorf("Token = %q, %v", tok, err)
	}
	if _, err := NewStaticToken("").Token(context.Background()); err == nil {
		t.Error("empty static token accepted")
	}
}

// TestClientSecretAgainstFakeAuthority runs the real azidentity flow against
// a loopback TLS authority, checking the request it makes.
func TestClientSecretAgainstFakeAuthority(t *testing.T) {
	var gotSecret, gotScope atomic.Value
	var srv *httptest.Server
	srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/v2.0/.well-known/openid-configuration"):
			json.NewEncoder(w).Encode(map[string]string{
				"issuer":                 srv.URL + "/tenant1/v2.0",
				"authorization_endpoint": srv.URL + "/tenant1/oauth2/v2.0/authorize",
				"token_endpoint":         srv.URL + "/tenant1/oauth2/v2.0/token",
			})
		case strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token"):
			r.ParseForm()
			gotSecret.Store(r.PostForm.Get("client_secret"))
			gotScope.Store(r.PostForm.Get("scope"))
			json.NewEncoder(w).Encode(map[string]any{"token_type": "Bearer", "expires_in": 3599, "access_token": "header.payload.sig"})
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	cred, err := NewCredential(CredentialOptions{
		Method: MethodClientSecret, TenantID: "tenant1", ClientID: "client1", Secret: "s3cret",
		AuthorityHost: srv.URL, Client: srv.Client(), DisableInstanceDiscovery: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := NewAzureCredential(cred, "").Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if tok != "header.payload.sig" {
		t.Errorf("token = %q", tok)
	}
	scope, _ := gotScope.Load().(string)
	if gotSecret.Load() != "s3cret" || !strings.Contains(" "+scope+" ", " "+DefaultPublicAPIScope+" ") {
		t.Errorf("token request secret/scope = %v/%v", gotSecret.Load(), gotScope.Load())
	}
}

func TestNewClientSecretValidates(t *testing.T) {
	_, err := NewCredential(CredentialOptions{Method: MethodClientSecret, ClientID: "c"})
	if err == nil || !strings.Contains(err.Error(), "tenant id") || !strings.Contains(err.Error(), "client secret") {
		t.Errorf("err = %v, want missing tenant id and client secret named", err)
	}
	_, err = NewCredential(CredentialOptions{Method: MethodClientSecret, TenantID: "t", ClientID: "c", Secret: "s", AuthorityHost: "http://x"})
	if err == nil {
		t.Error("plain-http authority accepted")
	}
}

func TestReadSecretFile(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("POSIX permissions")
	}
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
		return p
	}
	ok := write("ok", "  secret-value\n", 0o600)
	if s, err := ReadSecretFile(ok); err != nil || s != "secret-value" {
		t.Errorf("ReadSecretFile = %q, %v", s, err)
	}
	tests := []struct{ path, want string }{
		{write("group", "x", 0o640), "chmod 600"},
		{write("world", "x", 0o604), "chmod 600"},
		{write("empty", " \n", 0o600), "empty"},
		{filepath.Join(dir, "missing"), "no such file"},
		{dir, "not a regular file"},
	}
	for _, tt := range tests {
		_, err := ReadSecretFile(tt.path)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ReadSecretFile(%s) err = %v, want %q", tt.path, err, tt.want)
		}
	}
}
