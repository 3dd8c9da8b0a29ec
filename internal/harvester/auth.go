package harvester

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/defenderharvester/defenderharvester/internal/auth"
	"github.com/defenderharvester/defenderharvester/internal/clock"
	"github.com/defenderharvester/defenderharvester/internal/config"
	"github.com/defenderharvester/defenderharvester/internal/httpx"
	"github.com/defenderharvester/defenderharvester/internal/mde"
)

// Scopes of the API families a token can be asked for.
const (
	ScopePublicAPI = "https://api.securitycenter.microsoft.com/.default"
	ScopeGraph     = "https://graph.microsoft.com/.default"
	ScopeManage    = "https://manage.office.com/.default"
	ScopeMonitor   = "https://monitor.azure.com//.default"
)

// Net is what every client of one run shares: the transport (production
// TLS, or every host dialled at the emulator), the per-attempt timeout and
// retry policy of the http.* keys, and the clock-skew meter fed by the
// servers' Date headers. Build it once per run (NewNet) and hand the same
// Net to every client, session and credential.
type Net struct {
	Transport http.RoundTripper
	// Policy carries http.timeout, http.max_attempts, http.backoff and
	// http.max_wait, the skew meter (Policy.Skew) and the logger.
	Policy httpx.Policy
	// emulated turns off azidentity's instance discovery (the emulator
	// is not a cloud MSAL knows).
	emulated bool
}

// NewNet builds the run's transport from cfg (its response-header timeout
// is http.timeout) and the Net around it. skew may be nil (no skew
// measurement); pass the same meter to everything of one run.
func NewNet(cfg *config.Config, skew *clock.SkewMeter, log *slog.Logger) (Net, error) {
	topts, err := transportOptions(cfg)
	if err != nil {
		return Net{}, err
	}
	rt, err := mde.NewTransport(topts)
	if err != nil {
		return Net{}, err
	}
	return NetFor(cfg, rt, skew, log), nil
}

// NetFor is NewNet over an existing transport.
func NetFor(cfg *config.Config, rt http.RoundTripper, skew *clock.SkewMeter, log *slog.Logger) Net {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return Net{
		Transport: rt,
		Policy: httpx.Policy{
			Timeout:     cfg.HTTP.Timeout.D(),
			MaxAttempts: cfg.HTTP.MaxAttempts,
			Backoff:     cfg.HTTP.Backoff.D(),
			MaxWait:     cfg.HTTP.MaxWait.D(),
			Skew:        skew,
			Logger:      log,
		},
		emulated: cfg.Emulator.Address != "",
	}
}

// transportOptions is the transport cfg asks for.
func transportOptions(cfg *config.Config) (mde.TransportOptions, error) {
	topts := mde.TransportOptions{ResponseHeaderTimeout: cfg.HTTP.Timeout.D()}
	if cfg.Emulator.Address != "" {
		topts.EmulatorAddress = cfg.Emulator.Address
		topts.Plaintext = cfg.Emulator.Plaintext
		if cfg.Emulator.CAFile != "" {
			pem, err := os.ReadFile(cfg.Emulator.CAFile)
			if err != nil {
				return topts, fmt.Errorf("emulator.ca_file: %w", err)
			}
			topts.EmulatorCAPEM = pem
		}
	}
	return topts, nil
}

// Client is the client every credential and session uses: the shared
// transport, http.timeout per request, and no redirect ever followed (a
// secret must never travel to a host the caller did not choose).
func (n Net) Client() *http.Client { return httpx.NewClient(n.Transport, n.Policy.Timeout) }

// ClientOptions are the options of the mde API clients: the transport,
// the http.* policy and the skew meter.
func (n Net) ClientOptions() mde.ClientOptions {
	return mde.ClientOptions{
		Transport:   n.Transport,
		Logger:      n.Policy.Logger,
		Timeout:     n.Policy.Timeout,
		MaxAttempts: n.Policy.MaxAttempts,
		BaseBackoff: n.Policy.Backoff,
		MaxWait:     n.Policy.MaxWait,
		Skew:        n.Policy.Skew,
		Observe:     n.Policy.Observe,
	}
}

// PortalClient is the portal proxy client of cfg over session; it checks
// the session's tenant against tenant_id (TenantContext).
func (n Net) PortalClient(cfg *config.Config, session auth.PortalSession) (*mde.PortalClient, error) {
	return mde.NewPortalClient(mde.PortalOptions{
		ClientOptions:     n.ClientOptions(),
		BaseURL:           cfg.Portal.BaseURL,
		Session:           session,
		TenantID:          cfg.TenantID,
		RequestsPerSecond: cfg.Portal.RatePerSecond,
	})
}

// PortalSession builds the portal session of cfg's way in
// (portal.auth.method). tenant may be empty (then the portal's default
// tenant is used and the cache key is "default"). Its upkeep requests
// (portal-root visits, sign-in hops, token exchanges) follow n's policy,
// and it is written to portal.session_cache only once a data call proved
// it.
func (n Net) PortalSession(cfg *config.Config, tenant string) (auth.PortalSession, error) {
	client, log := n.Client(), n.Policy.Logger
	session, err := n.portalSession(cfg, tenant, client, log)
	if err != nil {
		if _, ok := fixOf(err); !ok {
			err = withFix(err, fixPortalSetup)
		}
	}
	return session, err
}

func (n Net) portalSession(cfg *config.Config, tenant string, client *http.Client, log *slog.Logger) (auth.PortalSession, error) {
	cache, err := auth.OpenSessionCache(cfg.Portal.SessionCache)
	if err != nil {
		return nil, withFix(fmt.Errorf("portal.session_cache: %w", err), fixSessionCache)
	}
	switch cfg.Portal.Auth.Method {
	case config.PortalESTS:
		if cfg.Secrets.ESTS == "" {
			return nil, withFix(fmt.Errorf("portal.auth.method is ests but there is no ESTSAUTHPERSISTENT cookie: set %s or portal.auth.ests_file", config.EnvPortalESTS), fixNoESTS)
		}
		return auth.NewESTSSession(auth.ESTSSessionOptions{
			ESTSAuthPersistent: cfg.Secrets.ESTS,
			TenantID:           tenant,
			PortalURL:          cfg.Portal.BaseURL,
			LoginURL:           loginURL(cfg),
			Client:             client,
			Policy:             n.Policy,
			Cache:              cache,
			Logger:             log,
		})
	case config.PortalBearer:
		if cfg.Secrets.RefreshToken == "" {
			return nil, withFix(fmt.Errorf("portal.auth.method is bearer but there is no refresh token: set %s or portal.auth.refresh_token_file", config.EnvPortalRefreshToken), fixNoRefresh)
		}
		log.Warn("portal.auth.method bearer is experimental: the portal may refuse bearer tokens for some data sets; prefer cookies or ests")
		return auth.NewPortalBearer(auth.PortalBearerOptions{
			RefreshToken: cfg.Secrets.RefreshToken,
			ClientID:     cfg.Portal.Auth.ClientID,
			TenantID:     tenant,
			LoginURL:     loginURL(cfg),
			Client:       client,
			Policy:       n.Policy,
			Cache:        cache,
			Logger:       log,
		})
	}
	sccauth, xsrf := cfg.Secrets.SccAuth, cfg.Secrets.XSRF
	if cfg.Secrets.PortalCookie != "" {
		sccauth, xsrf, err = auth.ParseCookieHeader(cfg.Secrets.PortalCookie)
		if err != nil {
			return nil, withFix(fmt.Errorf("portal cookie: %w", err), fixBadCookie)
		}
	}
	if sccauth == "" {
		// A session stored by `login portal` (or a previous run) will do.
		s, ok, err := cache.Load(tenant)
		if err != nil {
			return nil, withFix(fmt.Errorf("portal.session_cache: %w", err), fixSessionCache)
		}
		if !ok || s.SccAuth == "" {
			return nil, withFix(fmt.Errorf("the portal session is not configured: put the browser's cookies (sccauth and XSRF-TOKEN) in %s or a 0600 file named by portal.cookie_file, run `defenderharvester login portal`, or use portal.auth.method: ests", config.EnvPortalCookie), fixNoSession)
		}
		sccauth, xsrf = s.SccAuth.Reveal(), s.XSRF.Reveal()
	}
	return auth.NewCookieSession(auth.CookieSessionOptions{
		SccAuth:   sccauth,
		XSRF:      xsrf,
		PortalURL: cfg.Portal.BaseURL,
		TenantID:  tenant,
		Client:    client,
		Policy:    n.Policy,
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

// Credential builds the Entra credential of public_api.auth for tenant:
// a token source for the public API, and a function asking for any other
// scope. For method token both yield the static token. Every token
// request (device-code polls included) follows n's per-attempt timeout
// and retry policy.
func (n Net) Credential(cfg *config.Config, tenant string, prompt func(string)) (auth.TokenSource, func(ctx context.Context, scope string) (string, error), error) {
	source, err := n.tokenSources(cfg, tenant, prompt)
	if err != nil {
		return nil, nil, err
	}
	get := func(ctx context.Context, scope string) (string, error) { return source(scope).Token(ctx) }
	return source(ScopePublicAPI), get, nil
}

// tokenSources is Credential as one token source per scope (the same one
// for a scope each time: it may be told about a rejected token).
func (n Net) tokenSources(cfg *config.Config, tenant string, prompt func(string)) (func(scope string) auth.TokenSource, error) {
	source, err := n.credential(cfg, tenant, prompt)
	if err != nil {
		if _, ok := fixOf(err); !ok {
			err = withFix(err, publicMethodFix(cfg.PublicAPI.Auth.Method))
		}
	}
	return source, err
}

func (n Net) credential(cfg *config.Config, tenant string, prompt func(string)) (func(scope string) auth.TokenSource, error) {
	a := cfg.PublicAPI.Auth
	if a.TenantID != "" {
		tenant = a.TenantID
	}
	switch a.Method {
	case "":
		if cfg.PublicAPI.ClientID != "" {
			return nil, withFix(fmt.Errorf("public_api.client_id is set but there is no client secret: set %s or public_api.client_secret_file, or choose public_api.auth.method", config.EnvClientSecret),
				"Set "+config.EnvClientSecret+" or public_api.client_secret_file (a 0600 file holding the app's secret), or choose another public_api.auth.method "+readme+".")
		}
		return nil, fmt.Errorf("the public Defender API needs credentials: set public_api.auth.method (%s), or public_api.client_id with %s, or a token in %s",
			joinMethods(), config.EnvClientSecret, config.EnvAccessToken)
	case config.MethodToken:
		tok := auth.NewStaticToken(cfg.Secrets.AccessToken)
		return func(string) auth.TokenSource { return tok }, nil
	}
	if tenant == "" && a.Method != config.MethodManagedIdentity && a.Method != config.MethodAzureCLI && a.Method != config.MethodWorkloadIdentity {
		return nil, withFix(errors.New("tenant_id is not set: the Entra credential needs it (tenant_id or DH_TENANT_ID)"), fixTenantID)
	}
	co := auth.CredentialOptions{
		Method:                   a.Method,
		TenantID:                 tenant,
		ClientID:                 a.ClientID,
		Secret:                   cfg.Secrets.ClientSecret,
		CertificateFile:          a.CertificateFile,
		AuthorityHost:            cfg.PublicAPI.AuthorityHost,
		Client:                   n.Client(),
		Policy:                   n.Policy,
		DisableInstanceDiscovery: n.emulated,
		DeviceCodePrompt:         prompt,
		AuthRecordFile:           a.AuthRecordFile,
		PersistentCache:          a.PersistentCache,
	}
	cred, err := auth.NewCredential(co)
	if err != nil {
		return nil, fmt.Errorf("public_api.auth (%s): %w", a.Method, err)
	}
	cache, secret := n.tokenCache(cfg, a.Method)
	renew := func() (azcore.TokenCredential, error) { return auth.NewCredential(co) }
	var (
		mu      sync.Mutex
		byScope = map[string]auth.TokenSource{}
	)
	source := func(scope string) auth.TokenSource {
		mu.Lock()
		defer mu.Unlock()
		if ts, ok := byScope[scope]; ok {
			return ts
		}
		o := auth.AzureCredentialOptions{Renew: renew, Logger: n.Policy.Logger}
		if cache != nil {
			o.Cache, o.Key = cache, auth.TokenKey(a.Method, tenant, a.ClientID, scope, secret)
		}
		ts := auth.NewCachedAzureCredential(cred, scope, o)
		byScope[scope] = ts
		return ts
	}
	return source, nil
}

// tokenCache is the file that keeps the Entra access tokens of an app
// credential (client_secret, certificate) between runs —
// portal.session_cache — and the secret material whose fingerprint keys
// them. nil when public_api.auth.token_cache is false, for the other
// methods (their tokens belong to a user, a host identity or a platform
// that caches them itself), or when the file is unusable: that is
// logged, and the run signs in as it would without a cache.
func (n Net) tokenCache(cfg *config.Config, method string) (*auth.SessionCache, string) {
	a := cfg.PublicAPI.Auth
	if !a.TokenCacheOn() || cfg.Portal.SessionCache == "" {
		return nil, ""
	}
	var secret string
	switch method {
	case config.MethodClientSecret:
		secret = cfg.Secrets.ClientSecret
	case config.MethodCertificate:
		pem, err := auth.ReadSecretFile(a.CertificateFile)
		if err != nil {
			return nil, ""
		}
		secret = pem
	default:
		return nil, ""
	}
	if secret == "" {
		return nil, ""
	}
	cache, err := auth.OpenSessionCache(cfg.Portal.SessionCache)
	if err != nil {
		if n.Policy.Logger != nil {
			n.Policy.Logger.Warn("ignoring the Entra token cache: every run signs in again until it is repaired or deleted", "err", err)
		}
		return nil, ""
	}
	return cache, secret
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

// LegacyTokens is the public_api credential asked for the legacy scope;
// a bring-your-own token is used as it is (the original's -accesstoken).
func (n Net) LegacyTokens(cfg *config.Config, tenant string) (auth.TokenSource, error) {
	if cfg.PublicAPI.Auth.Method == config.MethodToken {
		return auth.NewStaticToken(cfg.Secrets.AccessToken), nil
	}
	source, err := n.tokenSources(cfg, tenant, nil)
	if err != nil {
		return nil, err
	}
	return source(mde.LegacyScope), nil
}
