package auth

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
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

// ReadSecretFile reads a secret (client secret, cookie, refresh token)
// from a file that only its owner may read, and trims surrounding
// whitespace. It is the one secret-file reader: config and the outputs
// call it too. Errors name the file, never its content.
func ReadSecretFile(path string) (string, error) {
	if err := CheckPrivateFile(path); err != nil {
		return "", err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("cannot read secret file %s: %w", path, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("secret file %s is empty: put the secret in it (and nothing else)", path)
	}
	return s, nil
}

// CheckPrivateFile refuses a secret file (or a key file) that does not
// exist, is not a regular file, or that group or others may read.
func CheckPrivateFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("cannot read secret file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("secret file %s is not a regular file", path)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("secret file %s is readable by group or others (mode %04o): run `chmod 600 %s`", path, fi.Mode().Perm(), path)
	}
	return nil
}
