package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// DefaultPublicAPIScope is the token scope of the public Defender API; the
// same audience serves api.security.microsoft.com and the older host.
const DefaultPublicAPIScope = "https://api.securitycenter.microsoft.com/.default"

// TokenSource yields a bearer token for one audience.
type TokenSource interface {
	Token(ctx context.Context) (string, error)
}

type staticToken string

func (s staticToken) Token(context.Context) (string, error) {
	if s == "" {
		return "", errors.New("auth: the configured access token is empty")
	}
	return string(s), nil
}

// NewStaticToken returns a source that always yields tok (bring your own
// token; it is not refreshed).
func NewStaticToken(tok string) TokenSource { return staticToken(strings.TrimSpace(tok)) }

// refreshMargin is how long before expiry a cached token is replaced, so a
// token never expires in the middle of a slow request.
const refreshMargin = 5 * time.Minute

type azureCredential struct {
	cred  azcore.TokenCredential
	scope string
	now   func() time.Time

	mu      sync.Mutex
	token   string
	expires time.Time
}

// NewAzureCredential adapts an azcore credential to TokenSource, caching
// the token until five minutes before it expires.
func NewAzureCredential(cred azcore.TokenCredential, scope string) TokenSource {
	if scope == "" {
		scope = DefaultPublicAPIScope
	}
	return &azureCredential{cred: cred, scope: scope, now: time.Now}
}

func (a *azureCredential) Token(ctx context.Context) (string, error) {
	if a.cred == nil {
		return "", errors.New("auth: no Azure credential configured")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token != "" && a.now().Before(a.expires.Add(-refreshMargin)) {
		return a.token, nil
	}
	tok, err := a.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{a.scope}})
	if err != nil {
		return "", fmt.Errorf("auth: getting a token for %s: %w (check tenant id, client id, secret and that the app has the Defender API permissions with admin consent)", a.scope, err)
	}
	if tok.Token == "" {
		return "", fmt.Errorf("auth: the identity platform returned an empty token for %s", a.scope)
	}
	a.token, a.expires = tok.Token, tok.ExpiresOn
	return a.token, nil
}

// ClientSecretOptions configure app-only (client credentials) sign-in.
type ClientSecretOptions struct {
	TenantID string
	ClientID string
	Secret   string
	// AuthorityHost defaults to the public cloud
	// (https://login.microsoftonline.com/).
	AuthorityHost string
	// Transport carries the token requests (e.g. to the emulator).
	Transport *http.Client
	// DisableInstanceDiscovery must be set for authorities MSAL does not
	// know (the emulator), or it asks the real cloud first.
	DisableInstanceDiscovery bool
	// Scope defaults to DefaultPublicAPIScope.
	Scope string
}

// NewClientSecret builds a token source from an app registration's client
// secret via azidentity.
func NewClientSecret(o ClientSecretOptions) (TokenSource, error) {
	var missing []string
	if strings.TrimSpace(o.TenantID) == "" {
		missing = append(missing, "tenant id")
	}
	if strings.TrimSpace(o.ClientID) == "" {
		missing = append(missing, "client id")
	}
	if o.Secret == "" {
		missing = append(missing, "client secret")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("auth: client-secret sign-in needs %s: set them in the config (the secret preferably via a secret file)", strings.Join(missing, ", "))
	}
	opts := &azidentity.ClientSecretCredentialOptions{DisableInstanceDiscovery: o.DisableInstanceDiscovery}
	opts.Cloud = cloud.AzurePublic
	if o.AuthorityHost != "" {
		if !strings.HasPrefix(o.AuthorityHost, "https://") {
			return nil, fmt.Errorf("auth: authority host %q must be an https URL", o.AuthorityHost)
		}
		opts.Cloud.ActiveDirectoryAuthorityHost = o.AuthorityHost
	}
	if o.Transport != nil {
		opts.Transport = o.Transport
	}
	cred, err := azidentity.NewClientSecretCredential(strings.TrimSpace(o.TenantID), strings.TrimSpace(o.ClientID), o.Secret, opts)
	if err != nil {
		return nil, fmt.Errorf("auth: client-secret credential: %s", Redact(err.Error(), o.Secret))
	}
	return NewAzureCredential(cred, o.Scope), nil
}

// ReadSecretFile reads a secret (client secret, cookie) from a file that
// only its owner may read, and trims surrounding whitespace.
func ReadSecretFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("auth: secret file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("auth: secret file %s is not a regular file", path)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("auth: secret file %s is readable by group or others (mode %04o): run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("auth: reading secret file: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("auth: secret file %s is empty", path)
	}
	return s, nil
}
