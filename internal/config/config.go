// Package config turns the YAML config file, environment variables and
// command-line flags into one validated Config. Every error names the key
// that is wrong and says what to do about it.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/defenderharvester/defenderharvester/internal/auth"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
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
	LogLevel        string        `yaml:"log_level"`
	HTTP            HTTP          `yaml:"http"`
	Portal          Portal        `yaml:"portal"`
	PublicAPI       PublicAPI     `yaml:"public_api"`
	Emulator        Emulator      `yaml:"emulator"`
	Outputs         PluginConfigs `yaml:"outputs"`
	Sources         PluginConfigs `yaml:"sources"`

	// Secrets resolved from files or the environment; never from YAML
	// literals the user might commit, never from plain flags.
	Secrets Secrets `yaml:"-"`
	// Dir is the folder of the config file ("" without one): relative
	// paths in the config resolve against it (ResolvePath).
	Dir string `yaml:"-"`
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
}

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

// PluginConfigs is a map of plugin name → its raw YAML settings. Each
// plugin decodes its own part strictly into the struct it declares.
type PluginConfigs map[string]*yaml.Node

// UnmarshalYAML keeps each plugin's section as a node, decoded later by
// the plugin into its own settings struct.
func (p *PluginConfigs) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: expected a map of plugin names to their settings", n.Line)
	}
	if *p == nil {
		*p = PluginConfigs{}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		(*p)[n.Content[i].Value] = n.Content[i+1]
	}
	return nil
}

// Duration is a time.Duration written as "15m", "24h", "7d".
type Duration time.Duration

// UnmarshalYAML accepts Go durations plus a "d" (days) suffix.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration back in the form it is read.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

var daysRe = regexp.MustCompile(`^(\d+)d$`)

// ParseDuration parses "90m", "36h", "7d".
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if m := daysRe.FindStringSubmatch(s); m != nil {
		var n int
		fmt.Sscanf(m[1], "%d", &n)
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration: write it like 15m, 24h or 7d", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative: durations must be positive", s)
	}
	return d, nil
}

// Default returns the configuration used when no file is given.
func Default() *Config {
	return &Config{
		StateFile:       "defenderharvester.db",
		InitialLookback: Duration(24 * time.Hour),
		Concurrency:     4,
		SpoolMaxBytes:   1 << 30,
		LogLevel:        "info",
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
// and validates the result. getenv is os.Getenv in production.
func Load(path string, getenv func(string) string) (*Config, error) {
	cfg := Default()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: cannot read %s: %w", path, err)
		}
		if err := Decode(data, cfg); err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
		cfg.Dir = filepath.Dir(abs)
	}
	if err := cfg.resolveEnv(getenv); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Decode parses YAML strictly into cfg: an unknown key is an error naming
// it and listing the known ones.
func Decode(data []byte, cfg *Config) error {
	return decodeStrict(data, cfg, "")
}

// DecodePlugin decodes one plugin's settings (a node from Outputs or
// Sources) strictly into target. section is e.g. "sources.timeline".
// The key "enabled" is handled by the caller and skipped here.
func DecodePlugin(n *yaml.Node, section string, target any) error {
	if n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("%s (line %d): expected a map of settings", section, n.Line)
	}
	if target == nil {
		if hasKeysOtherThan(n, "enabled") {
			return fmt.Errorf("%s: this plugin takes no settings (only \"enabled\")", section)
		}
		return nil
	}
	clean := withoutKey(n, "enabled")
	if err := checkKeys(clean, reflect.TypeOf(target), section); err != nil {
		return err
	}
	if err := clean.Decode(target); err != nil {
		return fmt.Errorf("%s: %w", section, err)
	}
	return nil
}

// checkKeys rejects keys the target struct does not declare, with the
// line in the user's file and the keys that would have been accepted.
func checkKeys(n *yaml.Node, t reflect.Type, section string) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct || n.Kind != yaml.MappingNode {
		return nil
	}
	fields := yamlFields(t)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		ft, ok := fields[k.Value]
		if !ok {
			return fmt.Errorf("%s: unknown key %q (line %d); known keys: %s", section, k.Value, k.Line, strings.Join(structKeys(t), ", "))
		}
		if err := checkKeys(n.Content[i+1], ft, section+"."+k.Value); err != nil {
			return err
		}
	}
	return nil
}

// Enabled reads the optional "enabled" key of a plugin section (default true).
func Enabled(n *yaml.Node) (bool, error) {
	if n == nil || n.Kind != yaml.MappingNode {
		return true, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "enabled" {
			var b bool
			if err := n.Content[i+1].Decode(&b); err != nil {
				return false, fmt.Errorf("line %d: \"enabled\" must be true or false", n.Content[i+1].Line)
			}
			return b, nil
		}
	}
	return true, nil
}

func hasKeysOtherThan(n *yaml.Node, key string) bool {
	if n.Kind != yaml.MappingNode {
		return n.Kind != 0 && !(n.Kind == yaml.ScalarNode && n.Tag == "!!null")
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value != key {
			return true
		}
	}
	return false
}

func withoutKey(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return n
	}
	out := *n
	out.Content = nil
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			continue
		}
		out.Content = append(out.Content, n.Content[i], n.Content[i+1])
	}
	return &out
}

var lineRe = regexp.MustCompile(`line (\d+)`)

func atoi(s string) int {
	n := 0
	fmt.Sscanf(s, "%d", &n)
	return n
}

// keyPathAtLine finds the dotted key whose value sits on line, so an error
// from a value decoder can name the key.
func keyPathAtLine(data []byte, line int) string {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil {
		return ""
	}
	var walk func(n *yaml.Node, prefix string) string
	walk = func(n *yaml.Node, prefix string) string {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				if p := walk(c, prefix); p != "" {
					return p
				}
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				path := k.Value
				if prefix != "" {
					path = prefix + "." + k.Value
				}
				if v.Line == line && v.Kind == yaml.ScalarNode {
					return path
				}
				if p := walk(v, path); p != "" {
					return p
				}
			}
		}
		return ""
	}
	return walk(&doc, "")
}

var unknownFieldRe = regexp.MustCompile(`line (\d+): field (\S+) not found in type (\S+)`)

func decodeStrict(data []byte, target any, section string) error {
	if len(bytes.TrimSpace(data)) == 0 || strings.TrimSpace(string(data)) == "{}" || strings.TrimSpace(string(data)) == "null" {
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(target)
	if err == nil || errors.Is(err, io.EOF) {
		return nil
	}
	prefix := ""
	if section != "" {
		prefix = section + ": "
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs := make([]string, 0, len(te.Errors))
		for _, e := range te.Errors {
			if m := unknownFieldRe.FindStringSubmatch(e); m != nil {
				msgs = append(msgs, fmt.Sprintf("unknown key %q (line %s); known keys: %s",
					m[2], m[1], strings.Join(keysOfType(target, m[3]), ", ")))
				continue
			}
			msgs = append(msgs, e)
		}
		return fmt.Errorf("%s%s", prefix, strings.Join(msgs, "; "))
	}
	msg := err.Error()
	if m := lineRe.FindStringSubmatch(msg); m != nil && section == "" {
		if path := keyPathAtLine(data, atoi(m[1])); path != "" {
			return fmt.Errorf("%s: %s", path, msg)
		}
	}
	return fmt.Errorf("%sinvalid YAML: %w", prefix, err)
}

// resolveEnv fills secrets and identifiers from the environment and the
// files the config names. Secrets are never read from plain YAML values.
func (c *Config) resolveEnv(getenv func(string) string) error {
	if v := getenv(EnvTenantID); v != "" {
		c.TenantID = v
	}
	if v := getenv(EnvClientID); v != "" {
		c.PublicAPI.ClientID = v
	}
	c.Secrets.PortalCookie = getenv(EnvPortalCookie)
	c.Secrets.SccAuth = getenv(EnvPortalSccAuth)
	c.Secrets.XSRF = getenv(EnvPortalXSRF)
	c.Secrets.ClientSecret = getenv(EnvClientSecret)
	c.Secrets.AccessToken = getenv(EnvAccessToken)
	if c.Portal.CookieFile != "" && c.Secrets.PortalCookie == "" && c.Secrets.SccAuth == "" {
		v, err := ReadSecretFile(c.Portal.CookieFile)
		if err != nil {
			return fmt.Errorf("portal.cookie_file: %w", err)
		}
		c.Secrets.PortalCookie = v
	}
	if c.PublicAPI.ClientSecretFile != "" && c.Secrets.ClientSecret == "" {
		v, err := ReadSecretFile(c.PublicAPI.ClientSecretFile)
		if err != nil {
			return fmt.Errorf("public_api.client_secret_file: %w", err)
		}
		c.Secrets.ClientSecret = v
	}
	if c.PublicAPI.AccessTokenFile != "" && c.Secrets.AccessToken == "" {
		v, err := ReadSecretFile(c.PublicAPI.AccessTokenFile)
		if err != nil {
			return fmt.Errorf("public_api.access_token_file: %w", err)
		}
		c.Secrets.AccessToken = v
	}
	if err := c.resolvePortalAuth(getenv); err != nil {
		return err
	}
	return c.resolvePublicAuth()
}

// resolvePortalAuth reads the secret of the chosen portal way in and fills
// the defaults that depend on other keys.
func (c *Config) resolvePortalAuth(getenv func(string) string) error {
	a := &c.Portal.Auth
	if a.Method == "" {
		a.Method = PortalCookies
	}
	if c.Portal.Mode == "" {
		c.Portal.Mode = ModeProxy
	}
	if c.Portal.SessionCache == "" {
		c.Portal.SessionCache = filepath.Join(filepath.Dir(c.StateFile), "defenderharvester-session.json")
	}
	switch a.Method {
	case PortalESTS:
		c.Secrets.ESTS = getenv(EnvPortalESTS)
		if c.Secrets.ESTS == "" && a.ESTSFile != "" {
			v, err := ReadSecretFile(a.ESTSFile)
			if err != nil {
				return fmt.Errorf("portal.auth.ests_file: %w", err)
			}
			c.Secrets.ESTS = v
		}
	case PortalBearer:
		c.Secrets.RefreshToken = getenv(EnvPortalRefreshToken)
		if c.Secrets.RefreshToken == "" && a.RefreshTokenFile != "" {
			v, err := ReadSecretFile(a.RefreshTokenFile)
			if err != nil {
				return fmt.Errorf("portal.auth.refresh_token_file: %w", err)
			}
			c.Secrets.RefreshToken = v
		}
	}
	return nil
}

// resolvePublicAuth picks the public-API method when none is named, the
// way earlier versions did (a token wins over an app secret).
func (c *Config) resolvePublicAuth() error {
	a := &c.PublicAPI.Auth
	if a.ClientID == "" {
		a.ClientID = c.PublicAPI.ClientID
	}
	if a.TenantID == "" {
		a.TenantID = c.TenantID
	}
	if a.Method == "" {
		switch {
		case c.Secrets.AccessToken != "":
			a.Method = MethodToken
		case a.ClientID != "":
			a.Method = MethodClientSecret
		}
	}
	if a.Method == MethodDeviceCode && a.AuthRecordFile == "" {
		a.AuthRecordFile = filepath.Join(filepath.Dir(c.StateFile), "defenderharvester-auth-record.json")
	}
	if a.Method == MethodCertificate && a.CertificateFile != "" {
		// The certificate file holds the private key: same rule as any secret file.
		if err := checkPrivate(a.CertificateFile); err != nil {
			return fmt.Errorf("public_api.auth.certificate_file: %w", err)
		}
	}
	return nil
}

// ReadSecretFile reads a secret from a file that only its owner can read.
func ReadSecretFile(path string) (string, error) {
	if err := checkPrivate(path); err != nil {
		return "", err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("cannot read secret file: %w", err)
	}
	v := strings.TrimSpace(string(data))
	if v == "" {
		return "", fmt.Errorf("secret file %s is empty", path)
	}
	return v, nil
}

// checkPrivate refuses a secret file that group or others can read.
func checkPrivate(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("cannot read secret file: %w", err)
	}
	if st.IsDir() {
		return fmt.Errorf("%s is a directory, not a secret file", path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("secret file %s is readable by others (mode %04o): run `chmod 600 %s`", path, st.Mode().Perm(), path)
	}
	return nil
}

var guidRe = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// Validate checks every value and names the key of the first problems.
func (c *Config) Validate() error {
	var errs []string
	add := func(key, format string, a ...any) {
		errs = append(errs, key+": "+fmt.Sprintf(format, a...))
	}
	if c.TenantID != "" && !guidRe.MatchString(c.TenantID) {
		add("tenant_id", "%q is not a tenant GUID (like 72f988bf-86f1-41af-91ab-2d7cd011db47); leave it empty to read it from the portal", c.TenantID)
	}
	if strings.TrimSpace(c.StateFile) == "" {
		add("state_file", "must name a file, e.g. defenderharvester.db")
	}
	if c.InitialLookback <= 0 {
		add("initial_lookback", "must be positive, e.g. 24h")
	}
	if c.Concurrency < 1 || c.Concurrency > 64 {
		add("concurrency", "%d is out of range: use 1 to 64", c.Concurrency)
	}
	if c.SpoolMaxBytes < 1<<20 {
		add("spool_max_bytes", "%d is too small: use at least 1048576 (1 MiB); the default is 1073741824 (1 GiB)", c.SpoolMaxBytes)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		add("log_level", "%q is not one of debug, info, warn, error", c.LogLevel)
	}
	if c.HTTP.Timeout <= 0 {
		add("http.timeout", "must be positive, e.g. 60s")
	}
	if c.HTTP.MaxAttempts < 1 || c.HTTP.MaxAttempts > 50 {
		add("http.max_attempts", "%d is out of range: use 1 (no retries) to 50", c.HTTP.MaxAttempts)
	}
	if c.HTTP.Backoff <= 0 {
		add("http.backoff", "must be positive, e.g. 1s")
	}
	if c.HTTP.MaxWait < c.HTTP.Backoff {
		add("http.max_wait", "must be at least http.backoff")
	}
	checkURL := func(key, v string) {
		u, err := url.Parse(v)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
			add(key, "%q must be an https URL without user info, e.g. https://security.microsoft.com", v)
		}
	}
	checkURL("portal.base_url", c.Portal.BaseURL)
	checkURL("public_api.base_url", c.PublicAPI.BaseURL)
	checkURL("public_api.authority_host", c.PublicAPI.AuthorityHost)
	if c.Portal.RatePerSecond <= 0 || c.Portal.RatePerSecond > 100 {
		add("portal.rate_per_second", "%v is out of range: use a value between 0.1 and 100", c.Portal.RatePerSecond)
	}
	c.validateAuth(add)
	if c.Emulator.Plaintext && c.Emulator.Address == "" {
		add("emulator.plaintext", "only makes sense with emulator.address")
	}
	if c.Emulator.Address != "" && !c.Emulator.Plaintext && c.Emulator.CAFile == "" {
		add("emulator.ca_file", "the emulator's CA certificate is needed to verify its TLS (simulate --ca-out FILE writes it)")
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return fmt.Errorf("invalid configuration:\n  %s", strings.Join(errs, "\n  "))
	}
	return nil
}

var locationRe = regexp.MustCompile(`^(wdatpprd-)?[a-z]{2,8}[0-9]{0,2}$`)

// validateAuth checks the portal and public-API ways in. Missing secrets of
// an explicitly chosen method are errors here; the implicit defaults are
// reported per data set at run time, so portal-only users need no app.
func (c *Config) validateAuth(add func(key, format string, a ...any)) {
	p := c.Portal
	switch p.Auth.Method {
	case "", PortalCookies:
	case PortalESTS:
		if c.Secrets.ESTS == "" {
			add("portal.auth.method", "ests needs the ESTSAUTHPERSISTENT cookie: set %s or portal.auth.ests_file (a 0600 file)", EnvPortalESTS)
		}
	case PortalBearer:
		if c.Secrets.RefreshToken == "" {
			add("portal.auth.method", "bearer (experimental) needs a refresh token: set %s or portal.auth.refresh_token_file (a 0600 file)", EnvPortalRefreshToken)
		}
	default:
		add("portal.auth.method", "%q is not one of cookies, ests, bearer", p.Auth.Method)
	}
	if p.Auth.Method != PortalBearer {
		if p.Auth.RefreshTokenFile != "" {
			add("portal.auth.refresh_token_file", "only used with portal.auth.method: bearer")
		}
		if p.Auth.ClientID != "" {
			add("portal.auth.client_id", "only used with portal.auth.method: bearer")
		}
	} else if p.Auth.ClientID != "" && !guidRe.MatchString(p.Auth.ClientID) {
		add("portal.auth.client_id", "%q is not an application (client) GUID", p.Auth.ClientID)
	}
	if p.Auth.Method != PortalESTS && p.Auth.ESTSFile != "" {
		add("portal.auth.ests_file", "only used with portal.auth.method: ests")
	}
	switch p.Mode {
	case "", ModeProxy:
		if p.Location != "" {
			add("portal.location", "only used with portal.mode: legacy (the portal proxy serves every region)")
		}
	case ModeLegacy:
		if !locationRe.MatchString(p.Location) {
			add("portal.location", "%q is not a legacy region such as weu, weu3, eus or eus3 (the original's -location)", p.Location)
		}
		if c.PublicAPI.Auth.Method == "" {
			add("portal.mode", "legacy takes its bearer tokens from the public_api credential: set public_api.auth.method (or %s)", EnvAccessToken)
		}
	default:
		add("portal.mode", "%q is not one of proxy, legacy", p.Mode)
	}

	a := c.PublicAPI.Auth
	if a.TenantID != "" && !guidRe.MatchString(a.TenantID) {
		add("public_api.auth.tenant_id", "%q is not a tenant GUID", a.TenantID)
	}
	if a.ClientID != "" && !guidRe.MatchString(a.ClientID) {
		add("public_api.auth.client_id", "%q is not an application (client) GUID (Entra admin center → App registrations → Overview)", a.ClientID)
	}
	switch a.Method {
	case "":
	case MethodToken:
		if c.Secrets.AccessToken == "" {
			add("public_api.auth.method", "token needs a bearer token: set %s or public_api.access_token_file (a 0600 file)", EnvAccessToken)
		}
	case MethodClientSecret:
		if a.ClientID == "" {
			add("public_api.auth.client_id", "client_secret needs the app's client id (or %s)", EnvClientID)
		}
		if c.Secrets.ClientSecret == "" {
			add("public_api.auth.method", "client_secret needs the app's secret: set %s or public_api.client_secret_file (a 0600 file)", EnvClientSecret)
		}
	case MethodCertificate:
		if a.ClientID == "" {
			add("public_api.auth.client_id", "certificate needs the app's client id (or %s)", EnvClientID)
		}
		if a.CertificateFile == "" {
			add("public_api.auth.certificate_file", "certificate needs a 0600 PEM file holding the certificate and its private key")
		}
	case MethodManagedIdentity, MethodWorkloadIdentity, MethodAzureCLI, MethodDeviceCode:
	default:
		add("public_api.auth.method", "%q is not one of %s", a.Method, strings.Join(PublicMethods, ", "))
	}
	if a.CertificateFile != "" && a.Method != MethodCertificate {
		add("public_api.auth.certificate_file", "only used with public_api.auth.method: certificate")
	}
	if c.PublicAPI.ClientSecretFile != "" && a.Method != "" && a.Method != MethodClientSecret {
		add("public_api.client_secret_file", "only used with public_api.auth.method: client_secret (the method is %s)", a.Method)
	}
	if a.AuthRecordFile != "" && a.Method != MethodDeviceCode {
		add("public_api.auth.auth_record_file", "only used with public_api.auth.method: device_code")
	}
	if a.PersistentCache && !slices.Contains([]string{MethodDeviceCode, MethodClientSecret, MethodCertificate}, a.Method) {
		add("public_api.auth.persistent_cache", "only used with device_code, client_secret or certificate")
	}
}
