package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Session is a portal session as the cache keeps it.
type Session struct {
	SccAuth    Secret
	XSRF       Secret
	ObtainedAt time.Time
	ExpiresAt  time.Time // zero: unknown, reused until the portal rejects it
	// RefreshToken is the rotating refresh token of a PortalBearer; empty
	// for cookie sessions.
	RefreshToken Secret
	// Seed fingerprints the configured secret the session grew from, so a
	// newly configured cookie or token wins over an older cached session.
	Seed string
}

// SessionCache keeps one portal session per tenant in a JSON file that only
// its owner may read (0600, in a 0700 directory), so a restarted harvester
// reuses a session instead of signing in again. Values are never logged.
type SessionCache struct {
	path string
	mu   sync.Mutex
}

// cacheFile is the on-disk form; it holds the real values. Version 1
// files without "tokens" (written before the Entra token cache) read as
// they are; a version that only knows "sessions" ignores "tokens".
type cacheFile struct {
	Version  int                     `json:"version"`
	Sessions map[string]cacheSession `json:"sessions"`
	// Tokens are Entra access tokens by TokenKey (tenant, client, scope
	// and a fingerprint of the configured secret or certificate).
	Tokens map[string]cacheToken `json:"tokens,omitempty"`
}

type cacheToken struct {
	AccessToken string    `json:"access_token"`
	ObtainedAt  time.Time `json:"obtained_at"`
	ExpiresAt   time.Time `json:"expires_at"`
}

type cacheSession struct {
	SccAuth      string    `json:"sccauth,omitempty"`
	XSRF         string    `json:"xsrf,omitempty"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	ObtainedAt   time.Time `json:"obtained_at"`
	ExpiresAt    time.Time `json:"expires_at,omitzero"`
	Seed         string    `json:"seed,omitempty"`
}

// OpenSessionCache prepares the cache at path; an empty path returns a nil
// cache (every method of a nil *SessionCache is a no-op).
//
// It prepares the cache at path. The directory is created
// 0700; an existing file or directory that others can read is tightened
// (the file is a secret store; a looser mode is repaired, not trusted
// silently). A path that is not a regular file is refused.
func OpenSessionCache(path string) (*SessionCache, error) {
	if strings.TrimSpace(path) == "" {
		return nil, nil // no cache configured: a nil *SessionCache keeps nothing
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("auth: creating the session cache directory %s: %w", dir, err)
	}
	if runtime.GOOS != "windows" {
		if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm()&0o077 != 0 && dir != os.TempDir() {
			// Only tighten a directory we own exclusively for the cache;
			// a shared parent (e.g. the state dir) is left alone but the
			// file itself stays 0600.
			if filepath.Base(dir) != "." && isCacheOnlyDir(dir, path) {
				if err := os.Chmod(dir, 0o700); err != nil {
					return nil, fmt.Errorf("auth: session cache directory %s is open to others and cannot be tightened: %w (run chmod 700 %s)", dir, err, dir)
				}
			}
		}
	}
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("auth: session cache %s: %w", path, err)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("auth: session cache %s is not a regular file (a symlink or directory): remove it or choose another path", path)
	case runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0:
		if err := os.Chmod(path, 0o600); err != nil {
			return nil, fmt.Errorf("auth: session cache %s is readable by others and cannot be tightened: %w (run chmod 600 %s)", path, err, path)
		}
	}
	c := &SessionCache{path: path}
	if _, err := c.read(); err != nil {
		return nil, err
	}
	return c, nil
}

// isCacheOnlyDir reports whether dir holds nothing but the cache file (and
// its temp files), so tightening it cannot surprise another owner.
func isCacheOnlyDir(dir, path string) bool {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	base := filepath.Base(path)
	for _, e := range ents {
		if n := e.Name(); n != base && n != base+".lock" && !strings.HasPrefix(n, base+".tmp") {
			return false
		}
	}
	return true
}

// Path is where the cache lives.
func (c *SessionCache) Path() string {
	if c == nil {
		return ""
	}
	return c.path
}

// Load returns the cached session of tenant; ok is false when there is none.
func (c *SessionCache) Load(tenant string) (Session, bool, error) {
	if c == nil {
		return Session{}, false, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	f, err := c.read()
	if err != nil {
		return Session{}, false, err
	}
	s, ok := f.Sessions[cacheKey(tenant)]
	if !ok {
		return Session{}, false, nil
	}
	return Session{SccAuth: Secret(s.SccAuth), XSRF: Secret(s.XSRF), RefreshToken: Secret(s.RefreshToken),
		ObtainedAt: s.ObtainedAt, ExpiresAt: s.ExpiresAt, Seed: s.Seed}, true, nil
}

// Save stores s as tenant's session, replacing any older one.
func (c *SessionCache) Save(tenant string, s Session) error {
	if c == nil {
		return nil
	}
	return c.update(func(f *cacheFile) bool {
		f.Sessions[cacheKey(tenant)] = cacheSession{SccAuth: s.SccAuth.Reveal(), XSRF: s.XSRF.Reveal(),
			RefreshToken: s.RefreshToken.Reveal(), ObtainedAt: s.ObtainedAt.UTC(), ExpiresAt: s.ExpiresAt.UTC(), Seed: s.Seed}
		return true
	})
}

// Delete forgets tenant's session (after the portal rejected it).
func (c *SessionCache) Delete(tenant string) error {
	if c == nil {
		return nil
	}
	return c.update(func(f *cacheFile) bool {
		if _, ok := f.Sessions[cacheKey(tenant)]; !ok {
			return false
		}
		delete(f.Sessions, cacheKey(tenant))
		return true
	})
}

// update is a read-modify-write of the file under the process mutex and
// an exclusive lock on the sibling lock file, so two processes sharing
// the cache (two tenants, a run and a login) never drop each other's
// entries; the file itself is replaced atomically. change reports
// whether anything changed (nothing is written otherwise).
func (c *SessionCache) update(change func(f *cacheFile) bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	unlock, err := lockFile(c.path + ".lock")
	if err != nil {
		return fmt.Errorf("auth: locking session cache %s: %w", c.path, err)
	}
	defer unlock()
	f, err := c.read()
	if err != nil {
		return err
	}
	if !change(f) {
		return nil
	}
	return c.write(f)
}

func cacheKey(tenant string) string {
	t := strings.ToLower(strings.TrimSpace(tenant))
	if t == "" {
		return "default"
	}
	return t
}

func (c *SessionCache) read() (*cacheFile, error) {
	f := &cacheFile{Version: 1, Sessions: map[string]cacheSession{}, Tokens: map[string]cacheToken{}}
	b, err := os.ReadFile(c.path)
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return nil, fmt.Errorf("auth: reading session cache %s: %w", c.path, err)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return f, nil
	}
	if err := json.Unmarshal(b, f); err != nil {
		// Never echo the content: it holds secrets.
		return nil, fmt.Errorf("auth: session cache %s is not valid JSON: delete it (the harvester signs in again)", c.path)
	}
	if f.Sessions == nil {
		f.Sessions = map[string]cacheSession{}
	}
	if f.Tokens == nil {
		f.Tokens = map[string]cacheToken{}
	}
	return f, nil
}

// write replaces the file atomically, created 0600 before any secret is in it.
func (c *SessionCache) write(f *cacheFile) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("auth: encoding session cache: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(c.path), filepath.Base(c.path)+".tmp*")
	if err != nil {
		return fmt.Errorf("auth: writing session cache: %w", err)
	}
	name := tmp.Name()
	defer os.Remove(name)
	if err := tmp.Chmod(0o600); err != nil && runtime.GOOS != "windows" {
		tmp.Close()
		return fmt.Errorf("auth: session cache: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("auth: writing session cache: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("auth: writing session cache: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("auth: writing session cache: %w", err)
	}
	if err := os.Rename(name, c.path); err != nil {
		return fmt.Errorf("auth: replacing session cache %s: %w", c.path, err)
	}
	return nil
}
