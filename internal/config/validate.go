package config

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
)

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
	if c.RunTimeout <= 0 {
		add("run_timeout", "must be positive, e.g. 1h: the longest one run may take before it stops cleanly")
	}
	if c.SpoolAfter <= 0 {
		add("spool_after", "must be positive, e.g. 15s: how long one batch may wait on a slow output before it is spooled for that output")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		add("log_level", "%q is not one of debug, info, warn, error", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		add("log_format", "%q is not one of text, json", c.LogFormat)
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
