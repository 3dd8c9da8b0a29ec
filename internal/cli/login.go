package cli

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/auth"
	"github.com/defenderharvester/defenderharvester/internal/config"
	"github.com/defenderharvester/defenderharvester/internal/harvester"
)

func init() {
	register(command{name: "login", summary: "sign in once: store a portal session (cookies or ESTS cookie) or a device-code sign-in", run: runLogin})
}

const loginSynopsis = `login portal [--config FILE] [--cookie-file FILE | --ests-file FILE]
       defenderharvester login device-code [--config FILE] [--scope api|graph|manage|monitor]`

func runLogin(ctx context.Context, env *Env, args []string) int {
	if len(args) == 0 || (args[0] != "portal" && args[0] != "device-code") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			fmt.Fprintf(env.Stdout, "Usage: defenderharvester %s\n", loginSynopsis)
			return exitOK
		}
		if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
			msg := fmt.Sprintf("defenderharvester login: unknown subcommand %q", args[0])
			if s := suggest(args[0], []string{"portal", "device-code"}); s != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", s)
			}
			fmt.Fprintln(env.Stderr, msg+"; see 'defenderharvester login -h'")
			return exitUsage
		}
		fmt.Fprintf(env.Stderr, "Usage: defenderharvester %s\n", loginSynopsis)
		return exitUsage
	}
	if args[0] == "portal" {
		return loginPortal(ctx, env, args[1:])
	}
	return loginDeviceCode(ctx, env, args[1:])
}

// loginPortal validates a portal session (from copied cookies or an ESTS
// cookie) by reading the tenant context, and keeps it in the session cache
// so later runs need no secret in their environment.
func loginPortal(ctx context.Context, env *Env, args []string) int {
	fs := newFlagSet(env, "login portal", "login portal [--config FILE] [--cookie-file FILE | --ests-file FILE]")
	cfgPath := fs.String("config", "", "config file (YAML); default $"+config.EnvConfig)
	cookieFile := fs.String("cookie-file", "", "0600 file with the browser's cookie header (sccauth=…; XSRF-TOKEN=…); default $"+config.EnvPortalCookie)
	estsFile := fs.String("ests-file", "", "0600 file with the ESTSAUTHPERSISTENT cookie value; default $"+config.EnvPortalESTS)
	debug := fs.Bool("debug", false, "debug logging")
	if code, ok := parseFlags(fs, env, args); !ok {
		return code
	}
	if *cookieFile != "" && *estsFile != "" {
		fmt.Fprintln(env.Stderr, "defenderharvester login portal: --cookie-file and --ests-file cannot be used together: pick one way in")
		return exitUsage
	}
	cfg, err := loadConfig(env, *cfgPath)
	if err != nil {
		fmt.Fprintln(env.Stderr, "defenderharvester login portal:", err)
		return exitUsage
	}
	switch {
	case *cookieFile != "":
		v, err := auth.ReadSecretFile(*cookieFile)
		if err != nil {
			fmt.Fprintln(env.Stderr, "defenderharvester login portal: --cookie-file:", err)
			return exitUsage
		}
		cfg.Portal.Auth.Method = config.PortalCookies
		cfg.Secrets.PortalCookie, cfg.Secrets.SccAuth, cfg.Secrets.XSRF = v, "", ""
	case *estsFile != "":
		v, err := auth.ReadSecretFile(*estsFile)
		if err != nil {
			fmt.Fprintln(env.Stderr, "defenderharvester login portal: --ests-file:", err)
			return exitUsage
		}
		cfg.Portal.Auth.Method = config.PortalESTS
		cfg.Secrets.ESTS = v
	case cfg.Portal.Auth.Method == config.PortalCookies && cfg.Secrets.PortalCookie == "" && cfg.Secrets.SccAuth == "":
		if v := env.Getenv(config.EnvPortalESTS); v != "" {
			cfg.Portal.Auth.Method = config.PortalESTS
			cfg.Secrets.ESTS = v
		} else {
			fmt.Fprintf(env.Stderr, "defenderharvester login portal: give the session: --cookie-file FILE (sccauth=…; XSRF-TOKEN=…), --ests-file FILE (ESTSAUTHPERSISTENT), or set %s / %s\n", config.EnvPortalCookie, config.EnvPortalESTS)
			return exitUsage
		}
	}
	if cfg.Portal.Mode == config.ModeLegacy {
		fmt.Fprintln(env.Stderr, "defenderharvester login portal: portal.mode is legacy, which uses bearer tokens, not a portal session; use 'login device-code' or set portal.mode: proxy")
		return exitUsage
	}
	log := newLogger(env, cfg.LogLevel, *debug)
	tc, expires, err := harvester.LoginPortal(ctx, cfg, log)
	if err != nil {
		p, f := harvester.Explain(err, "portal")
		fmt.Fprintf(env.Stderr, "defenderharvester login portal: %s\n  fix: %s\n", p, f)
		return exitFailed
	}
	fmt.Fprintf(env.Stdout, "portal session valid for tenant %s", tc.TenantID)
	if tc.GeoRegion != "" {
		fmt.Fprintf(env.Stdout, " (region %s)", tc.GeoRegion)
	}
	fmt.Fprintln(env.Stdout)
	if expires.IsZero() {
		fmt.Fprintln(env.Stdout, "expires: not announced by the portal; it is reused until the portal rejects it (typically a few hours)")
	} else {
		fmt.Fprintf(env.Stdout, "expires: %s\n", expires.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(env.Stdout, "stored in %s (mode 0600)\n", cfg.Portal.SessionCache)
	if cfg.Portal.Auth.Method == config.PortalESTS {
		fmt.Fprintln(env.Stdout, "runs renew the session from the ESTS cookie when it expires: keep portal.auth.method: ests and the cookie configured")
	}
	return exitOK
}

// loginDeviceCode signs a user in with the device code flow and keeps the
// authentication record (and, when enabled, the token cache) so later runs
// with public_api.auth.method: device_code sign in silently.
func loginDeviceCode(ctx context.Context, env *Env, args []string) int {
	fs := newFlagSet(env, "login device-code", "login device-code [--config FILE] [--scope api|graph|manage|monitor]")
	cfgPath := fs.String("config", "", "config file (YAML); default $"+config.EnvConfig)
	scopeName := fs.String("scope", "api", "what the token is for: api (Defender API), graph, manage (Management Activity API) or monitor (Logs Ingestion)")
	persistent := fs.Bool("persistent-cache", true, "keep tokens in the OS secret store (azidentity/cache) so later runs need no new sign-in")
	debug := fs.Bool("debug", false, "debug logging")
	if code, ok := parseFlags(fs, env, args); !ok {
		return code
	}
	scope, ok := map[string]string{"api": harvester.ScopePublicAPI, "graph": harvester.ScopeGraph, "manage": harvester.ScopeManage, "monitor": harvester.ScopeMonitor}[*scopeName]
	if !ok {
		fmt.Fprintf(env.Stderr, "defenderharvester login device-code: --scope %q is not one of api, graph, manage, monitor\n", *scopeName)
		return exitUsage
	}
	cfg, err := loadConfig(env, *cfgPath)
	if err != nil {
		fmt.Fprintln(env.Stderr, "defenderharvester login device-code:", err)
		return exitUsage
	}
	a := &cfg.PublicAPI.Auth
	if a.Method != config.MethodDeviceCode {
		a.Method = config.MethodDeviceCode
		a.CertificateFile = ""
	}
	if a.AuthRecordFile == "" {
		a.AuthRecordFile = defaultAuthRecord(cfg)
	}
	a.PersistentCache = *persistent
	if a.TenantID == "" {
		fmt.Fprintf(env.Stderr, "defenderharvester login device-code: the tenant is not set: set tenant_id (or %s)\n", config.EnvTenantID)
		return exitUsage
	}
	log := newLogger(env, cfg.LogLevel, *debug)
	if *persistent {
		warnPersistentCache(env.Stderr)
	}
	err = harvester.LoginDeviceCode(ctx, cfg, scope, func(msg string) { fmt.Fprintln(env.Stdout, msg) }, log)
	if err != nil {
		p, f := harvester.Explain(err, "public")
		fmt.Fprintf(env.Stderr, "defenderharvester login device-code: %s\n  fix: %s\n", p, f)
		return exitFailed
	}
	fmt.Fprintf(env.Stdout, "signed in; token for %s obtained\n", scope)
	fmt.Fprintf(env.Stdout, "authentication record stored in %s (mode 0600)\n", a.AuthRecordFile)
	fmt.Fprintf(env.Stdout, "use it with:\n  public_api:\n    auth:\n      method: device_code\n      auth_record_file: %s\n      persistent_cache: %v\n", a.AuthRecordFile, *persistent)
	return exitOK
}

func defaultAuthRecord(cfg *config.Config) string {
	c := *cfg
	c.PublicAPI.Auth.Method = config.MethodDeviceCode
	c.PublicAPI.Auth.AuthRecordFile = ""
	return harvester.DefaultAuthRecordFile(&c)
}

// warnPersistentCache states where azidentity/cache keeps tokens, since on
// Linux that store does not survive a reboot.
func warnPersistentCache(w io.Writer) {
	if runtime.GOOS == "linux" {
		fmt.Fprintln(w, "note: on Linux the token cache lives in the kernel keyring, which is lost at reboot (and needs a session keyring); after a reboot, run 'login device-code' again")
		return
	}
	fmt.Fprintln(w, "note: tokens are cached in the OS secret store (Keychain on macOS, DPAPI on Windows)")
}
