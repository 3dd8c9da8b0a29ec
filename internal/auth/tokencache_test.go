package auth

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// countingCred is an Entra stand-in: every GetToken is a token request.
type countingCred struct {
	mu   sync.Mutex
	n    int
	life time.Duration
	now  func() time.Time
}

func (c *countingCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return azcore.AccessToken{Token: fmt.Sprintf("eyJ.token-%d.sig", c.n), ExpiresOn: c.now().Add(c.life)}, nil
}

func (c *countingCred) requests() int { c.mu.Lock(); defer c.mu.Unlock(); return c.n }

// run is one harvester process: a new cache object and a new token source
// over the same file, as a cron run would build them.
func runOnce(t *testing.T, path string, cred *countingCred, secret string, now func() time.Time, log *slog.Logger) (TokenSource, string) {
	t.Helper()
	cache, err := OpenSessionCache(path)
	if err != nil {
		t.Fatal(err)
	}
	ts := NewCachedAzureCredential(cred, DefaultPublicAPIScope, AzureCredentialOptions{
		Cache: cache, Key: TokenKey("client_secret", "tenant-a", "client-a", DefaultPublicAPIScope, secret),
		Now: now, Logger: log,
	})
	tok, err := ts.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ts, tok
}

func TestTokenCacheAcrossRuns(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	path := filepath.Join(dir, "session.json")
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	cred := &countingCred{life: time.Hour, now: clock}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	_, t1 := runOnce(t, path, cred, "secret-1", clock, log)
	if cred.requests() != 1 {
		t.Fatalf("first run: %d token requests, want 1", cred.requests())
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("cache file mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	if di, _ := os.Stat(dir); di.Mode().Perm() != 0o700 {
		t.Errorf("cache dir mode %v, want 0700", di.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), "secret-1") {
		t.Fatal("the cache file holds the client secret itself")
	}

	t.Run("second run reuses the token", func(t *testing.T) {
		now = now.Add(30 * time.Minute)
		_, t2 := runOnce(t, path, cred, "secret-1", clock, log)
		if cred.requests() != 1 || t2 != t1 {
			t.Fatalf("second run: %d token requests (token reused: %v), want 1", cred.requests(), t2 == t1)
		}
	})
	t.Run("less than the margin left: a new token", func(t *testing.T) {
		now = now.Add(26 * time.Minute) // 4 minutes left
		_, t3 := runOnce(t, path, cred, "secret-1", clock, log)
		if cred.requests() != 2 || t3 == t1 {
			t.Fatalf("near expiry: %d token requests, want 2", cred.requests())
		}
		t1 = t3
	})
	t.Run("changed secret: a new token", func(t *testing.T) {
		_, t4 := runOnce(t, path, cred, "secret-2", clock, log)
		if cred.requests() != 3 || t4 == t1 {
			t.Fatalf("changed secret: %d token requests, want 3", cred.requests())
		}
		// Both entries are kept: switching back reuses the first.
		if _, t5 := runOnce(t, path, cred, "secret-1", clock, log); t5 != t1 || cred.requests() != 3 {
			t.Fatalf("the first secret's token was lost (%d requests)", cred.requests())
		}
	})
	t.Run("rejected token: invalidated and replaced", func(t *testing.T) {
		ts, tok := runOnce(t, path, cred, "secret-1", clock, log)
		ts.(Invalidator).Invalidate(tok)
		tok2, err := ts.Token(context.Background())
		if err != nil || tok2 == tok || cred.requests() != 4 {
			t.Fatalf("after Invalidate: %d requests, new token %v (%v)", cred.requests(), tok2 != tok, err)
		}
		// The next run gets the replacement from the file.
		if _, t6 := runOnce(t, path, cred, "secret-1", clock, log); t6 != tok2 || cred.requests() != 4 {
			t.Fatalf("the next run did not reuse the replacement (%d requests)", cred.requests())
		}
		// Invalidating a token that was already replaced keeps the new one.
		ts.(Invalidator).Invalidate(tok)
		if tok3, _ := ts.Token(context.Background()); tok3 != tok2 || cred.requests() != 4 {
			t.Fatal("a stale invalidation dropped the current token")
		}
	})
	if strings.Contains(logs.String(), "token-") {
		t.Fatalf("a token reached the log:\n%s", logs.String())
	}
}

// TestTokenCacheRenewsCredentialAfterRejection: azcore credentials cache
// tokens in memory; after a 401 the source builds a fresh one, else the
// rejected token would come back.
func TestTokenCacheRenewsCredentialAfterRejection(t *testing.T) {
	now := time.Now()
	sticky := &countingCred{life: time.Hour, now: func() time.Time { return now }}
	renewed := 0
	ts := NewCachedAzureCredential(stickyCred{sticky}, "", AzureCredentialOptions{
		Renew: func() (azcore.TokenCredential, error) { renewed++; return sticky, nil },
	})
	tok, _ := ts.Token(context.Background())
	ts.(Invalidator).Invalidate(tok)
	tok2, err := ts.Token(context.Background())
	if err != nil || renewed != 1 || tok2 == tok {
		t.Fatalf("renewed %d times, new token %v, err %v", renewed, tok2 != tok, err)
	}
}

// stickyCred always returns its first token (azcore's in-memory cache).
type stickyCred struct{ c *countingCred }

func (s stickyCred) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if s.c.n == 0 {
		s.c.n++
	}
	return azcore.AccessToken{Token: "eyJ.token-1.sig", ExpiresOn: s.c.now().Add(time.Hour)}, nil
}

// TestTokenCacheIgnoresBadFiles: a damaged cache file, an entry with a
// broken value or an impossible expiry never fails a run nor is used; the
// problem is logged without any of the file's content.
func TestTokenCacheIgnoresBadFiles(t *testing.T) {
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	path := filepath.Join(t.TempDir(), "session.json")
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	cred := &countingCred{life: time.Hour, now: clock}
	cache, err := OpenSessionCache(path)
	if err != nil {
		t.Fatal(err)
	}
	// Damaged after the run opened it (another process, a full disk).
	if err := os.WriteFile(path, []byte(`{"version":1,"tokens":{"x":SECRETJUNK`), 0o600); err != nil {
		t.Fatal(err)
	}
	ts := NewCachedAzureCredential(cred, "", AzureCredentialOptions{Cache: cache, Key: "k", Now: clock, Logger: log})
	if _, err := ts.Token(context.Background()); err != nil || cred.requests() != 1 {
		t.Fatalf("a corrupt cache failed the token (%v) or was used (%d requests)", err, cred.requests())
	}
	if !strings.Contains(logs.String(), "ignoring the token cache") || strings.Contains(logs.String(), "SECRETJUNK") {
		t.Fatalf("want one warning without the file's content, got:\n%s", logs.String())
	}
	// Impossible entries are not used.
	os.Remove(path)
	for _, bad := range []CachedToken{
		{Token: "has space", ExpiresAt: now.Add(time.Hour)},
		{Token: "far-future", ExpiresAt: now.Add(72 * time.Hour)},
		{Token: "expired", ExpiresAt: now.Add(-time.Minute)},
	} {
		if err := cache.SaveToken("k", bad, now.Add(-2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		before := cred.requests()
		ts := NewCachedAzureCredential(cred, "", AzureCredentialOptions{Cache: cache, Key: "k", Now: clock})
		if tok, err := ts.Token(context.Background()); err != nil || tok == bad.Token.Reveal() || cred.requests() != before+1 {
			t.Fatalf("entry %q was used (token %q, err %v)", bad.Token.Reveal(), tok, err)
		}
	}
}

// TestTokenCacheKeepsOtherEntries: two processes (two tenants) sharing the
// file, writing at once, never drop each other's tokens or sessions; and
// a file of the version without tokens reads and keeps its sessions.
func TestTokenCacheKeepsOtherEntries(t *testing.T) {
	path := filepath.Join(t.TempDir(), "session.json")
	old := `{"version":1,"sessions":{"tenant-a":{"sccauth":"S","xsrf":"X","obtained_at":"2026-11-20T10:00:00Z"}}}`
	if err := os.WriteFile(path, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	c0, err := OpenSessionCache(path)
	if err != nil {
		t.Fatalf("an old cache file does not open: %v", err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("a 0644 cache was not tightened: %v", fi.Mode().Perm())
	}
	if s, ok, err := c0.Load("tenant-a"); err != nil || !ok || s.SccAuth != "S" {
		t.Fatalf("old session not read: %v %v", ok, err)
	}
	now := time.Now()
	var wg sync.WaitGroup
	for p := 0; p < 4; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := OpenSessionCache(path) // one object per "process"
			if err != nil {
				t.Error(err)
				return
			}
			for i := 0; i < 10; i++ {
				if err := c.SaveToken(fmt.Sprintf("p%d-%d", p, i), CachedToken{Token: "t", ExpiresAt: now.Add(time.Hour)}, now); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	c, _ := OpenSessionCache(path)
	for p := 0; p < 4; p++ {
		for i := 0; i < 10; i++ {
			if _, ok, _ := c.LoadToken(fmt.Sprintf("p%d-%d", p, i)); !ok {
				t.Errorf("token p%d-%d was lost by a concurrent writer", p, i)
			}
		}
	}
	if s, ok, _ := c.Load("tenant-a"); !ok || s.SccAuth != "S" {
		t.Error("the portal session was lost when tokens were added")
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temp file %s left behind", e.Name())
		}
	}
}

func TestTokenKeyHidesTheSecret(t *testing.T) {
	k1 := TokenKey("client_secret", "T", "C", DefaultPublicAPIScope, "hunter2-secret")
	k2 := TokenKey("client_secret", "t", "c", DefaultPublicAPIScope, "hunter2-secret-new")
	if strings.Contains(k1, "hunter2") || k1 == k2 {
		t.Fatalf("keys %q / %q: the secret shows or a changed secret maps to the same key", k1, k2)
	}
	if TokenKey("client_secret", "T", "C", "s", "x") != TokenKey("client_secret", "t", "c", "s", "x") {
		t.Error("tenant and client ids are not case-insensitive in the key")
	}
}
