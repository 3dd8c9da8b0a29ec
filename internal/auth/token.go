package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	o     AzureCredentialOptions

	mu      sync.Mutex
	token   string
	expires time.Time
	// stale: an API rejected a token azcore handed out; its in-memory
	// cache would hand it out again, so the credential is rebuilt.
	stale bool
	// warned: the cache file's problem was logged once already.
	warned bool
}

// AzureCredentialOptions make the token outlive the process: it is kept
// in Cache (the 0600 session cache file) under Key, so the next run —
// a new process — reuses it instead of signing in again.
type AzureCredentialOptions struct {
	// Cache, when not nil, keeps the token between runs.
	Cache *SessionCache
	// Key is TokenKey(method, tenant, client id, scope, secret).
	Key string
	// Renew builds a fresh credential after an API rejected a token
	// (azcore would return the same token from its in-memory cache); nil
	// keeps the one credential.
	Renew func() (azcore.TokenCredential, error)
	// Logger gets the warnings about an unusable cache file (never a
	// value from it).
	Logger *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
}

// Invalidator is a TokenSource that can drop a token an API rejected
// (HTTP 401), so the next Token call obtains a new one.
type Invalidator interface {
	Invalidate(token string)
}

// NewAzureCredential adapts an azcore credential to TokenSource, caching
// the token until five minutes before it expires.
func NewAzureCredential(cred azcore.TokenCredential, scope string) TokenSource {
	return NewCachedAzureCredential(cred, scope, AzureCredentialOptions{})
}

// NewCachedAzureCredential is NewAzureCredential whose token is also kept
// in o.Cache between runs (reused while more than five minutes are left).
// A cache that cannot be read or written is logged and ignored: the run
// signs in as it would without one.
func NewCachedAzureCredential(cred azcore.TokenCredential, scope string, o AzureCredentialOptions) TokenSource {
	if scope == "" {
		scope = DefaultPublicAPIScope
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Key == "" {
		o.Cache = nil
	}
	return &azureCredential{cred: cred, scope: scope, now: o.Now, o: o}
}

// maxTokenLife bounds a cached token's remaining life: Entra tokens live
// at most a day, so a later expiry means a clock that was set back or an
// edited file; such an entry is not trusted.
const maxTokenLife = 25 * time.Hour

func (a *azureCredential) Token(ctx context.Context) (string, error) {
	a.mu.Lock() // a.cred too: Renew replaces it
	defer a.mu.Unlock()
	if a.cred == nil {
		return "", errors.New("auth: no Azure credential configured")
	}
	now := a.now()
	if a.token != "" && now.Before(a.expires.Add(-refreshMargin)) {
		return a.token, nil
	}
	if t, ok := a.loadCached(now); ok {
		a.token, a.expires = t.Token.Reveal(), t.ExpiresAt
		a.o.Logger.Debug("reusing the cached Entra token", "scope", a.scope, "expires", t.ExpiresAt)
		return a.token, nil
	}
	if a.stale && a.o.Renew != nil {
		cred, err := a.o.Renew()
		if err != nil {
			return "", fmt.Errorf("auth: renewing the credential for %s: %w", a.scope, err)
		}
		a.cred = cred
	}
	a.stale = false
	tok, err := a.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{a.scope}})
	if err != nil {
		return "", fmt.Errorf("auth: getting a token for %s: %w (check tenant id, client id, secret and that the app has the Defender API permissions with admin consent)", a.scope, err)
	}
	if tok.Token == "" {
		return "", fmt.Errorf("auth: the identity platform returned an empty token for %s", a.scope)
	}
	a.token, a.expires = tok.Token, tok.ExpiresOn
	if a.o.Cache != nil && a.now().Before(a.expires.Add(-refreshMargin)) {
		if err := a.o.Cache.SaveToken(a.o.Key, CachedToken{Token: Secret(tok.Token), ObtainedAt: now, ExpiresAt: tok.ExpiresOn}, now); err != nil {
			a.warn("could not save the Entra token to the cache; the next run signs in again", err)
		}
	}
	return a.token, nil
}

// loadCached returns the cache file's token when it has more than the
// margin left.
func (a *azureCredential) loadCached(now time.Time) (CachedToken, bool) {
	if a.o.Cache == nil {
		return CachedToken{}, false
	}
	t, ok, err := a.o.Cache.LoadToken(a.o.Key)
	if err != nil {
		a.warn("ignoring the token cache", err)
		return CachedToken{}, false
	}
	if !ok || !now.Before(t.ExpiresAt.Add(-refreshMargin)) || t.ExpiresAt.After(now.Add(maxTokenLife)) {
		return CachedToken{}, false
	}
	if !safeHeaderToken(t.Token.Reveal()) {
		return CachedToken{}, false
	}
	return t, true
}

func (a *azureCredential) warn(msg string, err error) {
	if a.warned {
		return
	}
	a.warned = true
	a.o.Logger.Warn(msg, "path", a.o.Cache.Path(), "err", err)
}

// Invalidate drops token (an API answered 401 to it) from memory and
// from the cache file, unless a newer token replaced it meanwhile; the
// next Token call obtains a new one from Entra.
func (a *azureCredential) Invalidate(token string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if token == "" || token != a.token {
		return
	}
	a.token, a.expires, a.stale = "", time.Time{}, true
	if a.o.Cache != nil {
		if err := a.o.Cache.DeleteToken(a.o.Key, Secret(token)); err != nil {
			a.o.Logger.Warn("could not remove the rejected token from the cache", "path", a.o.Cache.Path(), "err", err)
		}
	}
	a.o.Logger.Info("the API rejected the Entra token; obtaining a new one", "scope", a.scope)
}

// safeHeaderToken: a cached value must be a plausible bearer token (a
// damaged file must not put control characters in a header).
func safeHeaderToken(s string) bool {
	if s == "" || len(s) > 64<<10 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
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
