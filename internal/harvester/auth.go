package harvester

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/defenderharvester/defenderharvester/internal/auth"
	"github.com/defenderharvester/defenderharvester/internal/config"
	"github.com/defenderharvester/defenderharvester/internal/mde"
)

// Scopes of the API families a token can be asked for.
const (
	ScopePublicAPI = "https://api.securitycenter.microsoft.com/.default"
	ScopeGraph     = "https://graph.microsoft.com/.default"
	ScopeManage    = "https://manage.office.com/.default"
	ScopeMonitor   = "https://monitor.azure.com//.default"
)

// refuseRedirect keeps authenticated requests from following a redirect:
// a secret must never travel to a host the caller did not choose.
func refuseRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// HTTPClient is the client every credential and session uses: the shared
// transport (the emulator's under test) and no redirects followed.
func HTTPClient(rt http.RoundTripper) *http.Client {
	return &http.Client{Transport: rt, CheckRedirect: refuseRedirect}
}

// NewTransport builds the transport for cfg: production TLS, or every
// host dialled at the emulator when emulator.address is set.
func NewTransport(cfg *config.Config) (http.RoundTripper, error) {
	return newTransport(cfg)
}

// PortalSession builds the portal session of cfg's way in
// (portal.auth.method). tenant may be empty (then the portal's default
// tenant is used and the cache key is "default").
func PortalSession(cfg *config.Config, rt http.RoundTripper, tenant string, log *slog.Logger) (auth.PortalSession, error) {
	client := HTTPClient(rt)
	cache, err := auth.OpenSessionCache(cfg.Portal.SessionCache)
	if err != nil {
		return nil, fmt.Errorf("portal.session_cache: %w", err)
	}
	switch cfg.Portal.Auth.Method {
	case config.PortalESTS:
		if cfg.Secrets.ESTS == "" {
			return nil, fmt.Errorf("portal.auth.method is ests but there is no ESTSAUTHPERSISTENT cookie: set %s or portal.auth.ests_file", config.EnvPortalESTS)
		}
		return auth.NewESTSSession(auth.ESTSSessionOptions{
			ESTSAuthPersistent: cfg.Secrets.ESTS,
			TenantID:           tenant,
			PortalURL:          cfg.Portal.BaseURL,
			LoginURL:           loginURL(cfg),
			Client:             client,
			Cache:              cache,
			Logger:             log,
		})
	case config.PortalBearer:
		if cfg.Secrets.RefreshToken == "" {
			return nil, fmt.Errorf("portal.auth.method is bearer but there is no refresh token: set %s or portal.auth.refresh_token_file", config.EnvPortalRefreshToken)
		}
		log.Warn("portal.auth.method bearer is experimental: the portal may refuse bearer tokens for some data sets; prefer cookies or ests")
		return auth.NewPortalBearer(auth.PortalBearerOptions{
			RefreshToken: cfg.Secrets.RefreshToken,
			ClientID:     cfg.Portal.Auth.ClientID,
			TenantID:     tenant,
			LoginURL:     loginURL(cfg),
			Client:       client,
			Cache:        cache,
			Logger:       log,
		})
	}
	sccauth, xsrf := cfg.Secrets.SccAuth, cfg.Secrets.XSRF
	if cfg.Secrets.PortalCookie != "" {
		sccauth, xsrf, err = auth.ParseCookieHeader(cfg.Secrets.PortalCookie)
		if err != nil {
			return nil, fmt.Errorf("portal cookie: %w", err)
		}
	}
	if sccauth == "" {
		// A session stored by `login portal` (or a previous run) will do.
		s, ok, err := cache.Load(tenant)
		if err != nil {
			return nil, fmt.Errorf("portal.session_cache: %w", err)
		}
		if !ok || s.SccAuth == "" {
			return nil, fmt.Errorf("the portal session is not configured: put the browser's cookies (sccauth and XSRF-TOKEN) in %s or a 0600 file named by portal.cookie_file, run `defenderharvester login portal`, or use portal.auth.method: ests", config.EnvPortalCookie)
		}
		sccauth, xsrf = s.SccAuth.Reveal(), s.XSRF.Reveal()
	}
	return auth.NewCookieSession(auth.CookieSessionOptions{
		SccAuth:   sccauth,
		XSRF:      xsrf,
		PortalURL: cfg.Portal.BaseURL,
		TenantID:  tenant,
		Client:    client,
		Cache:     cache,
		Logger:    log,
	})
}

// loginURL is the Entra host of the configured authority.
func loginURL(cfg *config.Config) string {
	return trimSlash(cfg.PublicAPI.AuthorityHost)
}

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}

// Credential builds the Entra credential of public_api.auth for tenant.
// It returns nil and no error for method token (the caller uses the
// static token instead).
func Credential(cfg *config.Config, rt http.RoundTripper, tenant string, prompt func(string)) (auth.TokenSource, func(ctx context.Context, scope string) (string, error), error) {
	a := cfg.PublicAPI.Auth
	if a.TenantID != "" {
		tenant = a.TenantID
	}
	switch a.Method {
	case "":
		if cfg.PublicAPI.ClientID != "" {
			return nil, nil, fmt.Errorf("public_api.client_id is set but there is no client secret: set %s or public_api.client_secret_file, or choose public_api.auth.method", config.EnvClientSecret)
		}
		return nil, nil, fmt.Errorf("the public Defender API needs credentials: set public_api.auth.method (%s), or public_api.client_id with %s, or a token in %s",
			joinMethods(), config.EnvClientSecret, config.EnvAccessToken)
	case config.MethodToken:
		tok := auth.NewStaticToken(cfg.Secrets.AccessToken)
		return tok, func(ctx context.Context, _ string) (string, error) { return tok.Token(ctx) }, nil
	}
	if tenant == "" && a.Method != config.MethodManagedIdentity && a.Method != config.MethodAzureCLI && a.Method != config.MethodWorkloadIdentity {
		return nil, nil, errors.New("tenant_id is not set: the Entra credential needs it (tenant_id or DH_TENANT_ID)")
	}
	cred, err := auth.NewCredential(auth.CredentialOptions{
		Method:                   a.Method,
		TenantID:                 tenant,
		ClientID:                 a.ClientID,
		Secret:                   cfg.Secrets.ClientSecret,
		CertificateFile:          a.CertificateFile,
		AuthorityHost:            cfg.PublicAPI.AuthorityHost,
		Client:                   HTTPClient(rt),
		DisableInstanceDiscovery: cfg.Emulator.Address != "",
		DeviceCodePrompt:         prompt,
		AuthRecordFile:           a.AuthRecordFile,
		PersistentCache:          a.PersistentCache,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("public_api.auth (%s): %w", a.Method, err)
	}
	get := func(ctx context.Context, scope string) (string, error) {
		return auth.NewAzureCredential(cred, scope).Token(ctx)
	}
	return auth.NewAzureCredential(cred, ScopePublicAPI), get, nil
}

func joinMethods() string {
	s := ""
	for i, m := range config.PublicMethods {
		if i > 0 {
			s += ", "
		}
		s += m
	}
	return s
}

// legacyTokens is the public_api credential asked for the legacy scope;
// a bring-your-own token is used as it is (the original's -accesstoken).
func legacyTokens(cfg *config.Config, rt http.RoundTripper, tenant string) (auth.TokenSource, error) {
	if cfg.PublicAPI.Auth.Method == config.MethodToken {
		return auth.NewStaticToken(cfg.Secrets.AccessToken), nil
	}
	_, get, err := Credential(cfg, rt, tenant, nil)
	if err != nil {
		return nil, err
	}
	return tokenFunc(func(ctx context.Context) (string, error) { return get(ctx, mde.LegacyScope) }), nil
}

type tokenFunc func(ctx context.Context) (string, error)

func (f tokenFunc) Token(ctx context.Context) (string, error) { return f(ctx) }
