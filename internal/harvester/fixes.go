package harvester

import (
	"errors"
	"fmt"
	"strings"

	"github.com/defenderharvester/defenderharvester/internal/config"
)

// The fixes below name the config key, environment variable or command
// that fixes a problem; `doctor` prints them in its FIX column.

// fixError is an error of the harvester's own setup that knows its fix.
// Its message is the wrapped error's.
type fixError struct {
	err error
	fix string
}

func (e *fixError) Error() string { return e.err.Error() }
func (e *fixError) Unwrap() error { return e.err }

// withFix attaches fix to err (nil stays nil).
func withFix(err error, fix string) error {
	if err == nil {
		return nil
	}
	return &fixError{err: err, fix: fix}
}

// fixOf is the fix attached to err, if any.
func fixOf(err error) (string, bool) {
	var fe *fixError
	if errors.As(err, &fe) {
		return fe.fix, true
	}
	return "", false
}

const readme = "(README, Authentication)"

// Fixes of the portal session's setup.
var (
	fixSessionCache = "Make portal.session_cache a file only this user can read and write (mode 0600; by default it sits next to state_file) or point it elsewhere; a damaged one can be deleted: `defenderharvester login portal` writes it again."
	fixNoESTS       = "Put the ESTSAUTHPERSISTENT cookie in " + config.EnvPortalESTS + " or a 0600 file named by portal.auth.ests_file, or run `defenderharvester login portal --ests-file FILE` " + readme + "."
	fixNoRefresh    = "Put a refresh token of the portal app in " + config.EnvPortalRefreshToken + " or portal.auth.refresh_token_file, or switch portal.auth.method to ests or cookies " + readme + "."
	fixBadCookie    = "Copy the Cookie header of a security.microsoft.com/apiproxy request again, as one line `sccauth=…; XSRF-TOKEN=…`, into " + config.EnvPortalCookie + " or the file named by portal.cookie_file, then run `defenderharvester login portal` " + readme + "."
	fixNoSession    = "Run `defenderharvester login portal --cookie-file FILE` with the browser's sccauth and XSRF-TOKEN cookies, or set " + config.EnvPortalCookie + " or portal.cookie_file; for unattended runs use portal.auth.method: ests with " + config.EnvPortalESTS + " " + readme + "."
	fixPortalSetup  = "Check tenant_id (the tenant GUID or primary domain), portal.base_url (https://security.microsoft.com) and the copied cookies as the problem says, then run `defenderharvester login portal` " + readme + "."
	// fixSessionExpired: the portal refused the session.
	fixSessionExpired = "Sign in to security.microsoft.com again and copy fresh cookies into " + config.EnvPortalCookie + " or portal.cookie_file, then run `defenderharvester login portal --cookie-file FILE`; or use portal.auth.method: ests (" + config.EnvPortalESTS + "), which renews the session itself " + readme + "."
	fixTenantID       = "Set tenant_id in the config or " + config.EnvTenantID + " (the directory (tenant) GUID of the Defender tenant)."
)

// publicMethodFix says what public_api.auth.method needs.
func publicMethodFix(method string) string {
	switch method {
	case config.MethodClientSecret:
		return "Check public_api.client_id (or " + config.EnvClientID + ") and the client secret in " + config.EnvClientSecret + " or public_api.client_secret_file, and that the app is in tenant_id " + readme + "."
	case config.MethodCertificate:
		return "Point public_api.auth.certificate_file at a 0600 PEM file holding the app's certificate and its unencrypted private key, and set public_api.client_id " + readme + "."
	case config.MethodManagedIdentity:
		return "Run on an Azure resource with a managed identity (set public_api.auth.client_id for a user-assigned one), or choose another public_api.auth.method " + readme + "."
	case config.MethodWorkloadIdentity:
		return "Run in a Kubernetes pod with workload identity (AZURE_FEDERATED_TOKEN_FILE, AZURE_CLIENT_ID and AZURE_TENANT_ID set by the platform), or choose another public_api.auth.method " + readme + "."
	case config.MethodAzureCLI:
		return "Run `az login` as the user the harvester runs as, or choose another public_api.auth.method " + readme + "."
	case config.MethodDeviceCode:
		return "Run `defenderharvester login device-code` once; it stores public_api.auth.auth_record_file, so later runs sign in silently " + readme + "."
	case config.MethodToken:
		return "Put a fresh bearer token for https://api.securitycenter.microsoft.com in " + config.EnvAccessToken + " or public_api.access_token_file (tokens last about an hour), or use an app credential " + readme + "."
	}
	return "Set public_api.auth.method to one of " + strings.Join(config.PublicMethods, ", ") + ", or public_api.client_id with " + config.EnvClientSecret + "; or leave machineactions and libraryfiles out with --sources " + readme + "."
}

// fixPublic401 is the fix of a token the public API refused.
func fixPublic401(method string) string {
	return strings.TrimSuffix(publicMethodFix(method), ".") + "; the token must be for https://api.securitycenter.microsoft.com and the app needs the WindowsDefenderATP application permission Machine.Read.All (Library.Manage for libraryfiles) with admin consent."
}

// sourceFix is the fix of a data set that cannot be built or read for a
// reason not otherwise explained.
func sourceFix(name string) string {
	return fmt.Sprintf("Correct sources.%s in the config (docs/sources.md lists its settings), or leave it out with --sources; `defenderharvester doctor --sources %s --debug` shows the full error.", name, name)
}

// outputFix is the fix of an output that cannot be built, started or
// checked, for a reason not otherwise explained.
func outputFix(name string) string {
	switch name {
	case "files":
		return "Make outputs.files.dir (or --out) a directory this user can create and write."
	case "stdout":
		return "Check outputs.stdout in the config (README, Outputs and delivery guarantees)."
	case "sentinel":
		return "Correct outputs.sentinel as the problem says (endpoint, dcr_immutable_id, auth.tenant_id, auth.client_id, the secret in auth.client_secret_file or certificate); `defenderharvester sentinel-setup` prints the section to use (README, Microsoft Sentinel)."
	case "splunk":
		return "Correct outputs.splunk as the problem says: url (the HEC base, e.g. https://splunk.example.com:8088) and the HEC token in DH_SPLUNK_TOKEN or outputs.splunk.token_file (README, Splunk)."
	}
	return fmt.Sprintf("Correct outputs.%s in the config as the problem says (README, Outputs and delivery guarantees).", name)
}

// outputWarningFix is the fix of a risky output setting.
func outputWarningFix(name, warning string) string {
	if strings.Contains(warning, "insecure_skip_verify") {
		if name == "splunk" {
			return "Remove outputs.splunk.insecure_skip_verify and set outputs.splunk.ca_file to the CA (PEM) that signed the HEC certificate."
		}
		return fmt.Sprintf("Remove outputs.%s.insecure_skip_verify; if a proxy inspects TLS, add its CA to the system trust store.", name)
	}
	return fmt.Sprintf("Remove the setting the warning names from outputs.%s before unattended production use.", name)
}

// configWarningFixes map each config warning (by the key it starts with)
// to its fix; config.Warnings lists the warnings.
var configWarningFixes = []struct{ prefix, fix string }{
	{"emulator.address", "Remove the emulator section from the config to harvest the real tenant (it is meant for tests and demos)."},
	{"emulator.plaintext", "Remove emulator.plaintext and set emulator.ca_file to the CA written by `defenderharvester simulate --ca-out FILE`; keep plain HTTP on loopback only."},
	{"portal.auth.method is bearer", "Set portal.auth.method: ests with " + config.EnvPortalESTS + " or portal.auth.ests_file (it renews itself), or cookies " + readme + "."},
	{"portal.mode is legacy", "Set portal.mode: proxy (and remove portal.location), then give the harvester a portal session with `defenderharvester login portal` " + readme + "."},
	{"http.max_attempts", "Remove http.max_attempts (default 5) or set it to 3 or more."},
	{"http.timeout", "Set http.timeout well below run_timeout (defaults 60s and 1h), or raise run_timeout."},
	{"spool_after", "Set spool_after well below run_timeout (defaults 15s and 1h), or raise run_timeout."},
	{"public_api.auth.persistent_cache", "For a service use an app credential (public_api.auth.method: client_secret, certificate or managed_identity) and remove persistent_cache; otherwise run `defenderharvester login device-code` again after each reboot."},
}

// configWarningFix is the fix of one of config.Warnings.
func configWarningFix(w string) (string, bool) {
	for _, f := range configWarningFixes {
		if strings.HasPrefix(w, f.prefix) {
			return f.fix, true
		}
	}
	return "Change the setting the warning names before unattended production use (README, Configuration).", false
}
