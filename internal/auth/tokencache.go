package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
)

// CachedToken is an Entra access token as the cache keeps it.
type CachedToken struct {
	Token      Secret
	ObtainedAt time.Time
	ExpiresAt  time.Time
}

// TokenKey names one cached access token: the sign-in method, tenant,
// client and scope, and a fingerprint of the configured secret (client
// secret, certificate file content), so a changed secret never reuses a
// token obtained with the old one. The fingerprint is a domain-separated
// SHA-256 prefix: it identifies the secret without revealing it.
func TokenKey(method, tenant, clientID, scope, secret string) string {
	fp := ""
	if secret != "" {
		h := sha256.Sum256([]byte("defenderharvester-token-key\x00" + secret))
		fp = hex.EncodeToString(h[:16])
	}
	low := func(s string) string { return strings.ToLower(strings.TrimSpace(s)) }
	return strings.Join([]string{low(method), low(tenant), low(clientID), strings.TrimSpace(scope), fp}, "|")
}

// LoadToken returns the cached token of key; ok is false when there is
// none.
func (c *SessionCache) LoadToken(key string) (CachedToken, bool, error) {
	if c == nil {
		return CachedToken{}, false, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	f, err := c.read()
	if err != nil {
		return CachedToken{}, false, err
	}
	t, ok := f.Tokens[key]
	if !ok || t.AccessToken == "" {
		return CachedToken{}, false, nil
	}
	return CachedToken{Token: Secret(t.AccessToken), ObtainedAt: t.ObtainedAt, ExpiresAt: t.ExpiresAt}, true, nil
}

// SaveToken stores t under key; other entries (sessions, other tokens,
// also those another process wrote meanwhile) are kept. Tokens that
// expired are dropped on the way.
func (c *SessionCache) SaveToken(key string, t CachedToken, now time.Time) error {
	if c == nil {
		return nil
	}
	return c.update(func(f *cacheFile) bool {
		for k, old := range f.Tokens {
			if !now.Before(old.ExpiresAt) {
				delete(f.Tokens, k)
			}
		}
		f.Tokens[key] = cacheToken{AccessToken: t.Token.Reveal(), ObtainedAt: t.ObtainedAt.UTC(), ExpiresAt: t.ExpiresAt.UTC()}
		return true
	})
}

// DeleteToken forgets key's token if it is still tok (an API rejected
// it); a newer token stored meanwhile is kept.
func (c *SessionCache) DeleteToken(key string, tok Secret) error {
	if c == nil {
		return nil
	}
	return c.update(func(f *cacheFile) bool {
		old, ok := f.Tokens[key]
		if !ok || old.AccessToken != tok.Reveal() {
			return false
		}
		delete(f.Tokens, key)
		return true
	})
}
