package config

import "fmt"

// Warnings lists the settings of a valid config that are risky to run
// with unattended, one sentence each naming the key; doctor shows them as
// problems. Secrets are never part of a warning.
func (c *Config) Warnings() []string {
	var w []string
	if c.Emulator.Address != "" {
		w = append(w, fmt.Sprintf("emulator.address is set: every API call goes to the emulator at %s, not to Microsoft; remove the emulator block to harvest a real tenant", c.Emulator.Address))
	}
	if c.Emulator.Plaintext {
		w = append(w, "emulator.plaintext is on: API calls, credentials included, travel unencrypted (plain HTTP); use it only on loopback for tests")
	}
	if c.Portal.Auth.Method == PortalBearer {
		w = append(w, "portal.auth.method is bearer, which is experimental: the portal may refuse bearer tokens for some data sets; prefer cookies or ests")
	}
	if c.Portal.Mode == ModeLegacy {
		w = append(w, "portal.mode is legacy: Microsoft closed the regional *.securitycenter.windows.com hosts to user tokens in 2025; expect 401/403 and prefer the portal proxy")
	}
	if c.HTTP.MaxAttempts == 1 {
		w = append(w, "http.max_attempts is 1: a single 429, 5xx, timeout or connection reset fails the data set; 5 is the default")
	}
	if c.RunTimeout > 0 && c.HTTP.Timeout >= c.RunTimeout {
		w = append(w, fmt.Sprintf("http.timeout (%s) is not shorter than run_timeout (%s): one slow request can use up the whole run", c.HTTP.Timeout, c.RunTimeout))
	}
	if c.RunTimeout > 0 && c.SpoolAfter >= c.RunTimeout {
		w = append(w, fmt.Sprintf("spool_after (%s) is not shorter than run_timeout (%s): a slow output would hold every output until the run's deadline", c.SpoolAfter, c.RunTimeout))
	}
	if c.PublicAPI.Auth.PersistentCache {
		w = append(w, "public_api.auth.persistent_cache is on: on Linux the token cache is the kernel keyring, which is lost at reboot; headless services should use an app credential")
	}
	return w
}
