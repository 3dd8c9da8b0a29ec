package harvester

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/auth"
	"github.com/defenderharvester/defenderharvester/internal/config"
	"github.com/defenderharvester/defenderharvester/internal/mde"
)

// LoginPortal builds the portal session cfg describes, forces one renewal
// (the ESTS bootstrap, or a portal-root visit for copied cookies) and
// reads the tenant context. That data call proves the session, which
// writes it to portal.session_cache; a session of another tenant than
// tenant_id is refused and never cached. The session is also stored
// under the tenant id the portal reports, so runs that name tenant_id
// find it.
func LoginPortal(ctx context.Context, cfg *config.Config, log *slog.Logger) (mde.TenantContext, time.Time, error) {
	n, err := NewNet(cfg, nil, log)
	if err != nil {
		return mde.TenantContext{}, time.Time{}, err
	}
	session, err := n.PortalSession(cfg, cfg.TenantID)
	if err != nil {
		return mde.TenantContext{}, time.Time{}, err
	}
	if r, ok := session.(auth.Refresher); ok {
		if err := r.Refresh(ctx); err != nil {
			return mde.TenantContext{}, time.Time{}, err
		}
	}
	pc, err := n.PortalClient(cfg, session)
	if err != nil {
		return mde.TenantContext{}, time.Time{}, err
	}
	tc, err := pc.TenantContext(ctx)
	if err != nil {
		return tc, time.Time{}, err
	}
	cache, err := auth.OpenSessionCache(cfg.Portal.SessionCache)
	if err != nil {
		return tc, time.Time{}, fmt.Errorf("portal.session_cache: %w", err)
	}
	s, ok, err := cache.Load(cfg.TenantID)
	if err != nil {
		return tc, time.Time{}, fmt.Errorf("portal.session_cache: %w", err)
	}
	if !ok {
		return tc, time.Time{}, errors.New("the session works but was not written to portal.session_cache: check that the cache file's directory is writable")
	}
	if cfg.TenantID == "" && tc.TenantID != "" {
		if err := cache.Save(tc.TenantID, s); err != nil {
			return tc, time.Time{}, fmt.Errorf("portal.session_cache: %w", err)
		}
	}
	return tc, s.ExpiresAt, nil
}

// LoginDeviceCode runs the device code flow of public_api.auth (method
// device_code) and asks for a token for scope, which stores the
// authentication record (and fills the persistent cache when enabled).
func LoginDeviceCode(ctx context.Context, cfg *config.Config, scope string, prompt func(string), log *slog.Logger) error {
	n, err := NewNet(cfg, nil, log)
	if err != nil {
		return err
	}
	_, get, err := n.Credential(cfg, cfg.PublicAPI.Auth.TenantID, prompt)
	if err != nil {
		return err
	}
	if _, err := get(ctx, scope); err != nil {
		return err
	}
	log.Debug("device code sign-in done", "scope", scope)
	return nil
}

// DefaultAuthRecordFile is where the device-code authentication record is
// kept when public_api.auth.auth_record_file is not set: next to the state
// file.
func DefaultAuthRecordFile(cfg *config.Config) string {
	return filepath.Join(filepath.Dir(cfg.StateFile), "defenderharvester-auth-record.json")
}
