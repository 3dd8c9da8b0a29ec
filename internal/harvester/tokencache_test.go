package harvester

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/auth"
	"github.com/defenderharvester/defenderharvester/internal/config"
	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/sim"
	"github.com/defenderharvester/defenderharvester/internal/sim/simtest"
)

// emulatedAppConfig is a client_secret config for the emulated tenant
// whose session cache (and so token cache) is path.
func emulatedAppConfig(t *testing.T, ten *sim.Tenant, srv *sim.Server, ca, path string) *config.Config {
	t.Helper()
	cred := ten.Credentials()
	cfg := config.Default()
	cfg.TenantID = cred.TenantID
	cfg.Emulator.Address, cfg.Emulator.CAFile = srv.Addr(), ca
	cfg.PublicAPI.Auth.Method, cfg.PublicAPI.Auth.ClientID = config.MethodClientSecret, cred.ClientID
	cfg.Secrets.ClientSecret = cred.ClientSecret
	cfg.Portal.SessionCache = path
	return cfg
}

// harvestOnce is one `run` process as far as the public API goes: a new
// Net, credential and client, one machine-actions request.
func harvestOnce(t *testing.T, cfg *config.Config, log *slog.Logger) error {
	t.Helper()
	n, err := NewNet(cfg, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	tokens, _, err := n.Credential(cfg, cfg.TenantID, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := mde.NewPublicAPIClient(mde.PublicOptions{ClientOptions: n.ClientOptions(), Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Get(context.Background(), "/api/machineactions", nil)
	return err
}

// TestEntraTokenCachedAcrossRuns: against the emulator's Entra endpoint,
// a second run (new objects, same cache file) makes no token request; a
// cached token the API refuses is dropped and replaced once; a changed
// secret never reuses the old token; token_cache: false signs in every
// run; a corrupt cache file is ignored with a warning.
func TestEntraTokenCachedAcrossRuns(t *testing.T) {
	ten, srv, ca := simtest.Start(t, sim.Options{Seed: 5, Machines: 2}, "")
	path := filepath.Join(t.TempDir(), "state", "defenderharvester-session.json")
	cfg := emulatedAppConfig(t, ten, srv, ca, path)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	entra := func() int { return ten.RequestCount(sim.FamilyEntra) }

	if err := harvestOnce(t, cfg, log); err != nil {
		t.Fatal(err)
	}
	first := entra()
	if first == 0 {
		t.Fatal("the first run made no Entra request")
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token cache %s: %v (mode %v), want a 0600 file", path, err, fi.Mode().Perm())
	}
	if err := harvestOnce(t, cfg, log); err != nil {
		t.Fatal(err)
	}
	if n := entra() - first; n != 0 {
		t.Fatalf("the second run made %d Entra requests, want 0 (cached token)", n)
	}

	// The API refuses the cached token (revoked, signing key rolled):
	// dropped, one new token, the request succeeds, the file holds the
	// new token.
	cache, err := auth.OpenSessionCache(path)
	if err != nil {
		t.Fatal(err)
	}
	key := auth.TokenKey(config.MethodClientSecret, cfg.TenantID, cfg.PublicAPI.Auth.ClientID, ScopePublicAPI, cfg.Secrets.ClientSecret)
	bad := "eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJ4In0.Zm9yZ2Vk"
	if err := cache.SaveToken(key, auth.CachedToken{Token: auth.Secret(bad), ExpiresAt: time.Now().Add(time.Hour)}, time.Now()); err != nil {
		t.Fatal(err)
	}
	before := entra()
	if err := harvestOnce(t, cfg, log); err != nil {
		t.Fatalf("a refused cached token failed the run: %v", err)
	}
	if entra() == before {
		t.Fatal("no new token after the API refused the cached one")
	}
	if got, ok, _ := cache.LoadToken(key); !ok || got.Token.Reveal() == bad {
		t.Fatal("the refused token is still cached")
	}
	before = entra()
	if err := harvestOnce(t, cfg, log); err != nil || entra() != before {
		t.Fatalf("the replacement token was not reused (%d Entra requests, %v)", entra()-before, err)
	}

	// A changed secret: the cached token is not used, Entra is asked
	// (and refuses the wrong secret).
	wrong := *cfg
	wrong.Secrets.ClientSecret = "not-the-secret"
	before = entra()
	if err := harvestOnce(t, &wrong, log); err == nil {
		t.Fatal("a changed (wrong) secret reused the old secret's token")
	}
	if entra() == before {
		t.Fatal("a changed secret made no token request")
	}

	// token_cache: false signs in every run.
	off := *cfg
	no := false
	off.PublicAPI.Auth.TokenCache = &no
	before = entra()
	if err := harvestOnce(t, &off, log); err != nil || entra() == before {
		t.Fatalf("token_cache false: %d Entra requests (%v), want a sign-in", entra()-before, err)
	}

	// A corrupt file never fails the run; it is reported once, without
	// its content.
	if err := os.WriteFile(path, []byte("{\"tokens\": GARBAGE-SECRET"), 0o600); err != nil {
		t.Fatal(err)
	}
	logs.Reset()
	if err := harvestOnce(t, cfg, log); err != nil {
		t.Fatalf("a corrupt token cache failed the run: %v", err)
	}
	if !strings.Contains(logs.String(), "token cache") || strings.Contains(logs.String(), "GARBAGE") {
		t.Fatalf("want a warning naming the token cache and none of its content, got:\n%s", logs.String())
	}
	if b, _ := os.ReadFile(path); strings.Contains(string(b), ten.Credentials().ClientSecret) {
		t.Fatal("the cache file holds the client secret")
	}
}
