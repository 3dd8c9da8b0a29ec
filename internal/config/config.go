// Package config turns the YAML config file, environment variables and
// command-line flags into one validated Config. Every error names the key
// that is wrong and says what to do about it.
//
// Files: config.go (the keys, defaults, Load), duration.go (the one
// Duration type), decode.go (strict YAML decoding that names keys),
// paths.go (relative paths resolve against the config file's folder),
// secrets.go (secrets from the environment and 0600 files),
// validate.go, warnings.go (risky settings, for doctor) and plugin.go
// (the sections of sources and outputs).
package config

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/defenderharvester/defenderharvester/internal/auth"
)

// Environment variables that carry secrets, so they never need to be on
// the command line.
const (
	EnvConfig        = "DH_CONFIG"         // path of the config file
	EnvPortalCookie  = "DH_PORTAL_COOKIE"  // "sccauth=…; XSRF-TOKEN=…" as copied from the browser
	EnvPortalSccAuth = "DH_PORTAL_SCCAUTH" // the sccauth cookie alone
	EnvPortalXSRF    = "DH_PORTAL_XSRF"    // the XSRF-TOKEN cookie alone
	EnvClientSecret  = "DH_CLIENT_SECRET"  // public-API app client secret
	EnvAccessToken   = "DH_ACCESS_TOKEN"   // bring-your-own bearer token for the public API
	EnvTenantID      = "DH_TENANT_ID"      // tenant id (GUID)
	EnvClientID      = "DH_CLIENT_ID"      // public-API app (client) id
	EnvPortalESTS    = "DH_PORTAL_ESTS"    // the ESTSAUTHPERSISTENT cookie (portal.auth.method: ests)
	// EnvPortalRefreshToken is the refresh token of the experimental
	// portal.auth.method: bearer.
	EnvPortalRefreshToken = "DH_PORTAL_REFRESH_TOKEN"
)

// Portal ways in (portal.auth.method).
const (
	PortalCookies = "cookies" // sccauth + XSRF-TOKEN copied from a browser (default)
	PortalESTS    = "ests"    // bootstrap the session from an ESTSAUTHPERSISTENT cookie
	PortalBearer  = "bearer"  // EXPERIMENTAL: refresh token → bearer for the portal app
)

// Portal modes (portal.mode).
const (
	ModeProxy  = "proxy"  // security.microsoft.com/apiproxy (default)
	ModeLegacy = "legacy" // the original's regional *.securitycenter.windows.com hosts (closed in 2025)
)

// Public API credential kinds (public_api.auth.method): the Entra ones
// are auth.NewCredential's, plus a bring-your-own token.
const (
	MethodClientSecret     = auth.MethodClientSecret
	MethodCertificate      = auth.MethodCertificate
	MethodManagedIdentity  = auth.MethodManagedIdentity
	MethodWorkloadIdentity = auth.MethodWorkloadIdentity
	MethodAzureCLI         = auth.MethodAzureCLI
	MethodDeviceCode       = auth.MethodDeviceCode
	MethodToken            = "token"
)

// PublicMethods lists every public_api.auth.method, for help texts.
var PublicMethods = []string{MethodClientSecret, MethodCertificate, MethodManagedIdentity, MethodWorkloadIdentity, MethodAzureCLI, MethodDeviceCode, MethodToken}

// Config is the whole validated configuration.
type Config struct {
	TenantID        string        `yaml:"tenant_id"`
	StateFile       string        `yaml:"state_file"`
	InitialLookback Duration      `yaml:"initial_lookback"`
	Concurrency     int           `yaml:"concurrency"`
	SpoolMaxBytes   int64         `yaml:"spool_max_bytes"`
	RunTimeout      Duration      `yaml:"run_timeout"` // overall deadline of one run
	SpoolAfter      Duration      `yaml:"spool_after"` // how long a batch waits on a slow output before it is spooled for it
	LogLevel        string        `yaml:"log_level"`
	LogFormat       string        `yaml:"log_format"` // text (default) or json
	HTTP            HTTP          `yaml:"http"`
	Portal          Portal        `yaml:"portal"`
	PublicAPI       PublicAPI     `yaml:"public_api"`
	Emulator        Emulator      `yaml:"emulator"`
	Outputs         PluginConfigs `yaml:"outputs"`
	Sources         PluginConfigs `yaml:"sources"`
	Serve           Serve         `yaml:"serve"`
	Detect          Detect        `yaml:"detect"`
	// Tenants, when present, makes this a multi-tenant config: each entry
	// is a tenant's own settings over the top-level ones (TenantConfigs).
	Tenants TenantNodes `yaml:"tenants"`

	// Secrets resolved from files or the environment; never from YAML
	// literals the user might commit, never from plain flags.
	Secrets Secrets `yaml:"-"`
	// Dir is the folder of the config file ("" without one): relative
	// paths in the config resolve against it (ResolvePath).
	Dir string `yaml:"-"`
	// Name is the tenant's name in a multi-tenant config ("" otherwise).
	Name string `yaml:"-"`

	// doc is the file's YAML and getenv the environment it was loaded
	// with: the tenants' configs are derived from them.
	doc    *yaml.Node
	getenv func(string) string
}

// HTTP tunes every API client: per-attempt timeout and the retry policy
// for 429, 5xx, timeouts and connection resets.
type HTTP struct {
	Timeout     Duration `yaml:"timeout"`
	MaxAttempts int      `yaml:"max_attempts"`
	Backoff     Duration `yaml:"backoff"`
	MaxWait     Duration `yaml:"max_wait"`
}

// Portal configures the portal service API (security.microsoft.com/apiproxy).
type Portal struct {
	BaseURL       string     `yaml:"base_url"`
	CookieFile    string     `yaml:"cookie_file"`
	RatePerSecond float64    `yaml:"rate_per_second"`
	Auth          PortalAuth `yaml:"auth"`
	// SessionCache is the 0600 file where the portal session is kept
	// between runs; default: next to the state file.
	SessionCache string `yaml:"session_cache"`
	// Mode proxy (default) or legacy; legacy needs Location and takes its
	// bearer tokens from the public_api credential.
	Mode     string `yaml:"mode"`
	Location string `yaml:"location"`
}

// PortalAuth says how the portal session is obtained.
type PortalAuth struct {
	Method           string `yaml:"method"`
	ESTSFile         string `yaml:"ests_file"`
	RefreshTokenFile string `yaml:"refresh_token_file"`
	ClientID         string `yaml:"client_id"` // bearer only: the client the refresh token was issued to
}

// PublicAPI configures the public Defender API (api.security.microsoft.com).
type PublicAPI struct {
	BaseURL          string     `yaml:"base_url"`
	ClientID         string     `yaml:"client_id"`
	ClientSecretFile string     `yaml:"client_secret_file"`
	AccessTokenFile  string     `yaml:"access_token_file"`
	AuthorityHost    string     `yaml:"authority_host"`
	Auth             PublicAuth `yaml:"auth"`
}

// PublicAuth chooses the Entra credential for the public API (and for the
// legacy portal hosts). Empty Method means: token when one is given, else
// client_secret when client_id and a secret are given.
type PublicAuth struct {
	Method          string `yaml:"method"`
	TenantID        string `yaml:"tenant_id"` // default: tenant_id
	ClientID        string `yaml:"client_id"` // default: public_api.client_id
	CertificateFile string `yaml:"certificate_file"`
	AuthRecordFile  string `yaml:"auth_record_file"`
	PersistentCache bool   `yaml:"persistent_cache"`
	// TokenCache (default on) keeps the client_secret / certificate
	// access token in portal.session_cache between runs, so a run does
	// not sign in to Entra while the last token has more than five
	// minutes left. false: a new token every run.
	TokenCache *bool `yaml:"token_cache"`
}

// TokenCacheOn says whether the Entra access token is kept between runs
// (public_api.auth.token_cache, default true).
func (a PublicAuth) TokenCacheOn() bool { return a.TokenCache == nil || *a.TokenCache }

// Emulator points every API host at the emulated tenant (see
// docs/ARCHITECTURE.md, "Reaching the emulator").
type Emulator struct {
	Address   string `yaml:"address"`
	CAFile    string `yaml:"ca_file"`
	Plaintext bool   `yaml:"plaintext"`
}

// Secrets holds credentials read from files or the environment.
type Secrets struct {
	PortalCookie string // raw cookie header
	SccAuth      string
	XSRF         string
	ClientSecret string
	AccessToken  string
	ESTS         string // ESTSAUTHPERSISTENT
	RefreshToken string // experimental portal bearer
}

// PluginConfigs is a map of plugin (or output instance) name → its raw
// YAML settings. Each plugin decodes its own part strictly into the
// struct it declares.
type PluginConfigs map[string]*yaml.Node

// UnmarshalYAML keeps each plugin's section as a node, decoded later by
// the plugin into its own settings struct. Outputs may also be a list of
// named instances ({name, type, …}), so two of one type can coexist.
func (p *PluginConfigs) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if *p == nil {
		*p = PluginConfigs{}
	}
	if n.Kind == yaml.SequenceNode {
		return p.fromList(n)
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: expected a map of plugin names to their settings (or, for outputs, a list of {name, type, …})", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		(*p)[n.Content[i].Value] = n.Content[i+1]
	}
	return nil
}

// Defaults of the run-level deadlines.
const (
	DefaultRunTimeout = time.Hour
	DefaultSpoolAfter = 15 * time.Second
)

// Default returns the configuration used when no file is given.
func Default() *Config {
	return &Config{
		StateFile:       "defenderharvester.db",
		InitialLookback: Duration(24 * time.Hour),
		Concurrency:     4,
		SpoolMaxBytes:   1 << 30,
		RunTimeout:      Duration(DefaultRunTimeout),
		SpoolAfter:      Duration(DefaultSpoolAfter),
		LogLevel:        "info",
		LogFormat:       "text",
		Serve:           defaultServe(),
		HTTP: HTTP{
			Timeout:     Duration(60 * time.Second),
			MaxAttempts: 5,
			Backoff:     Duration(time.Second),
			MaxWait:     Duration(2 * time.Minute),
		},
		Portal: Portal{
			BaseURL:       "https://security.microsoft.com",
			RatePerSecond: 5,
		},
		PublicAPI: PublicAPI{
			BaseURL:       "https://api.security.microsoft.com",
			AuthorityHost: "https://login.microsoftonline.com/",
		},
		Outputs: PluginConfigs{},
		Sources: PluginConfigs{},
	}
}

// Load reads path (if not empty) over the defaults, then the environment,
// and validates the result. Relative paths in the file (and the defaults
// derived from them, such as the state file) resolve against the file's
// folder; without a file, against the working directory. getenv is
// os.Getenv in production.
func Load(path string, getenv func(string) string) (*Config, error) {
	cfg := Default()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: cannot read %s: %w", path, err)
		}
		doc, err := decodeFile(data, cfg, "", getenv)
		if err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
		cfg.Dir, cfg.doc, cfg.getenv = filepath.Dir(abs), doc, getenv
	}
	cfg.resolvePaths()
	if cfg.MultiTenant() {
		// The top level is every tenant's template, not a tenant: its
		// secrets are each tenant's own (TenantConfigs).
		if cfg.TenantID != "" {
			return nil, fmt.Errorf("config %s: tenant_id: a config with tenants sets tenant_id per tenant, not at the top level", path)
		}
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
		if _, err := cfg.TenantConfigs(); err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
		return cfg, nil
	}
	if err := cfg.resolveEnv(getenv); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}
