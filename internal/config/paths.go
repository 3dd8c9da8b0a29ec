package config

// resolvePaths makes every relative path key of the file relative to the
// config file's folder (Dir), so a config works the same whatever the
// working directory of the process (a systemd unit, cron, a shell). The
// state file's default ("defenderharvester.db") is relative too, so it
// lands next to the config file; the defaults derived from the state file
// (session cache, device-code record) follow it. Without a config file
// (Dir empty) paths stay relative to the working directory.
func (c *Config) resolvePaths() {
	for _, p := range []*string{
		&c.StateFile,
		&c.Portal.CookieFile,
		&c.Portal.SessionCache,
		&c.Portal.Auth.ESTSFile,
		&c.Portal.Auth.RefreshTokenFile,
		&c.PublicAPI.ClientSecretFile,
		&c.PublicAPI.AccessTokenFile,
		&c.PublicAPI.Auth.CertificateFile,
		&c.PublicAPI.Auth.AuthRecordFile,
		&c.Emulator.CAFile,
		&c.Serve.LeaseDir,
		&c.Serve.Webhook.TLSCertFile,
		&c.Serve.Webhook.TLSKeyFile,
		&c.Detect.Lookups,
	} {
		*p = c.ResolvePath(*p)
	}
}
