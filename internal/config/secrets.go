package config

import (
	"fmt"
	"path/filepath"

	"github.com/defenderharvester/defenderharvester/internal/auth"
)

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
		v, err := auth.ReadSecretFile(c.Portal.CookieFile)
		if err != nil {
			return fmt.Errorf("portal.cookie_file: %w", err)
		}
		c.Secrets.PortalCookie = v
	}
	if c.PublicAPI.ClientSecretFile != "" && c.Secrets.ClientSecret == "" {
		v, err := auth.ReadSecretFile(c.PublicAPI.ClientSecretFile)
		if err != nil {
			return fmt.Errorf("public_api.client_secret_file: %w", err)
		}
		c.Secrets.ClientSecret = v
	}
	if c.PublicAPI.AccessTokenFile != "" && c.Secrets.AccessToken == "" {
		v, err := auth.ReadSecretFile(c.PublicAPI.AccessTokenFile)
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
			v, err := auth.ReadSecretFile(a.ESTSFile)
			if err != nil {
				return fmt.Errorf("portal.auth.ests_file: %w", err)
			}
			c.Secrets.ESTS = v
		}
	case PortalBearer:
		c.Secrets.RefreshToken = getenv(EnvPortalRefreshToken)
		if c.Secrets.RefreshToken == "" && a.RefreshTokenFile != "" {
			v, err := auth.ReadSecretFile(a.RefreshTokenFile)
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
		if err := auth.CheckPrivateFile(a.CertificateFile); err != nil {
			return fmt.Errorf("public_api.auth.certificate_file: %w", err)
		}
	}
	return nil
}
