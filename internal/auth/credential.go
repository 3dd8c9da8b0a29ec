package auth

import (
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"

	"github.com/defenderharvester/defenderharvester/internal/httpx"
)

// CredentialOptions choose and configure how the harvester signs in to
// Entra ID for API tokens.
type CredentialOptions struct {
	// Method is one of client_secret, certificate, managed_identity,
	// workload_identity, azure_cli, device_code.
	Method          string
	TenantID        string
	ClientID        string
	Secret          string
	CertificateFile string // PEM with certificate and private key, mode 0600
	// AuthorityHost defaults to the public cloud.
	AuthorityHost string
	// Cloud, when set, replaces the public cloud (sovereign clouds: its
	// authority host and service audiences); AuthorityHost still wins.
	Cloud *cloud.Configuration
	// Client carries every token request (redirects are not followed;
	// its Timeout, when set, bounds each request).
	Client *http.Client
	// Policy bounds every token request, device-code polls included:
	// Timeout is azcore's per-try timeout, MaxAttempts, Backoff and
	// MaxWait its retry policy (429, 5xx, timeouts; a Retry-After above
	// MaxWait ends the retries). Zero fields get httpx's defaults.
	Policy                   httpx.Policy
	DisableInstanceDiscovery bool
	// DeviceCodePrompt shows the device-code instructions to the user.
	DeviceCodePrompt func(message string)
	// AuthRecordFile keeps the device-code AuthenticationRecord (0600) so
	// later runs sign in silently from the token cache.
	AuthRecordFile string
	// PersistentCache stores tokens with azidentity/cache. On Linux that is
	// the kernel keyring, which is lost at reboot.
	PersistentCache bool
}

// NewCredential builds the azidentity credential for o.Method.
func NewCredential(o CredentialOptions) (azcore.TokenCredential, error) {
	return newCredential(o)
}
