package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	azcache "github.com/Azure/azure-sdk-for-go/sdk/azidentity/cache"
)

// Credential methods accepted by NewCredential.
const (
	MethodClientSecret     = "client_secret"
	MethodCertificate      = "certificate"
	MethodManagedIdentity  = "managed_identity"
	MethodWorkloadIdentity = "workload_identity"
	MethodAzureCLI         = "azure_cli"
	MethodDeviceCode       = "device_code"
)

// cacheName names the persistent token cache shared by device-code runs.
const cacheName = "defenderharvester"

func newCredential(o CredentialOptions) (azcore.TokenCredential, error) {
	o.TenantID, o.ClientID = strings.TrimSpace(o.TenantID), strings.TrimSpace(o.ClientID)
	co := azcore.ClientOptions{Cloud: cloud.AzurePublic}
	if o.Cloud != nil {
		co.Cloud = *o.Cloud
	}
	if o.AuthorityHost != "" {
		if !strings.HasPrefix(o.AuthorityHost, "https://") {
			return nil, fmt.Errorf("auth: authority host %q must be an https URL", o.AuthorityHost)
		}
		co.Cloud.ActiveDirectoryAuthorityHost = o.AuthorityHost
	}
	if o.Client != nil {
		co.Transport = noRedirectClient(o.Client)
	}
	// Every token request gets the per-attempt timeout and the retry
	// policy of the data calls; managed identity keeps azidentity's IMDS
	// retry schedule and only gets the per-try timeout.
	p := o.Policy.WithDefaults()
	co.Retry.TryTimeout = p.Timeout
	if o.Method != MethodManagedIdentity {
		co.Retry.MaxRetries = int32(max(p.MaxAttempts-1, 0))
		if co.Retry.MaxRetries == 0 {
			co.Retry.MaxRetries = -1 // azcore: negative means a single try
		}
		co.Retry.RetryDelay = p.Backoff
		co.Retry.MaxRetryDelay = p.MaxWait
	}
	need := func(fields ...string) error {
		var missing []string
		for i := 0; i+1 < len(fields); i += 2 {
			if fields[i+1] == "" {
				missing = append(missing, fields[i])
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("auth: %s sign-in needs %s: set them in the config", o.Method, strings.Join(missing, ", "))
		}
		return nil
	}
	var (
		cred    azcore.TokenCredential
		err     error
		secrets []string
	)
	switch o.Method {
	case MethodClientSecret:
		if err := need("tenant id", o.TenantID, "client id", o.ClientID, "client secret", o.Secret); err != nil {
			return nil, err
		}
		secrets = []string{o.Secret}
		cred, err = azidentity.NewClientSecretCredential(o.TenantID, o.ClientID, o.Secret,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: o.DisableInstanceDiscovery})
	case MethodCertificate:
		if err := need("tenant id", o.TenantID, "client id", o.ClientID, "certificate file", o.CertificateFile); err != nil {
			return nil, err
		}
		pem, rerr := ReadSecretFile(o.CertificateFile)
		if rerr != nil {
			rerr = fmt.Errorf("auth: certificate file: %w", rerr)
		}
		if rerr != nil {
			return nil, rerr
		}
		certs, key, perr := azidentity.ParseCertificates([]byte(pem), nil)
		if perr != nil {
			return nil, fmt.Errorf("auth: certificate file %s has no usable certificate and unencrypted private key (PEM with both, or an unprotected PKCS#12): export it again", o.CertificateFile)
		}
		cred, err = azidentity.NewClientCertificateCredential(o.TenantID, o.ClientID, certs, key,
			&azidentity.ClientCertificateCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: o.DisableInstanceDiscovery})
	case MethodManagedIdentity:
		mo := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: co}
		if o.ClientID != "" {
			mo.ID = azidentity.ClientID(o.ClientID)
		}
		cred, err = azidentity.NewManagedIdentityCredential(mo)
	case MethodWorkloadIdentity:
		cred, err = azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientOptions: co, TenantID: o.TenantID, ClientID: o.ClientID, DisableInstanceDiscovery: o.DisableInstanceDiscovery})
	case MethodAzureCLI:
		cred, err = azidentity.NewAzureCLICredential(&azidentity.AzureCLICredentialOptions{TenantID: o.TenantID})
	case MethodDeviceCode:
		return newDeviceCode(o, co)
	case "":
		return nil, fmt.Errorf("auth: no sign-in method chosen: set one of %s", strings.Join(methods(), ", "))
	default:
		return nil, fmt.Errorf("auth: unknown sign-in method %q: use one of %s", o.Method, strings.Join(methods(), ", "))
	}
	if err != nil {
		return nil, fmt.Errorf("auth: %s credential: %w", o.Method, wrapEntraError(err, secrets...))
	}
	return &entraCredential{inner: cred, secrets: secrets}, nil
}

func methods() []string {
	return []string{MethodClientSecret, MethodCertificate, MethodManagedIdentity, MethodWorkloadIdentity, MethodAzureCLI, MethodDeviceCode}
}

// entraCredential turns Entra refusals into *SignInError with a hint.
type entraCredential struct {
	inner   azcore.TokenCredential
	secrets []string
}

func (c *entraCredential) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := c.inner.GetToken(ctx, o)
	if err != nil {
		return tok, wrapEntraError(err, c.secrets...)
	}
	return tok, nil
}

// deviceCode signs in once interactively, then silently from the token
// cache located by the saved AuthenticationRecord.
type deviceCode struct {
	cred       *azidentity.DeviceCodeCredential
	recordFile string
	mu         sync.Mutex
	haveRecord bool
}

func newDeviceCode(o CredentialOptions, co azcore.ClientOptions) (azcore.TokenCredential, error) {
	opts := &azidentity.DeviceCodeCredentialOptions{
		ClientOptions: co, TenantID: o.TenantID, ClientID: o.ClientID,
		DisableInstanceDiscovery: o.DisableInstanceDiscovery,
	}
	prompt := o.DeviceCodePrompt
	if prompt == nil {
		prompt = func(m string) { fmt.Fprintln(os.Stderr, m) }
	}
	opts.UserPrompt = func(_ context.Context, m azidentity.DeviceCodeMessage) error {
		prompt(m.Message)
		return nil
	}
	dc := &deviceCode{recordFile: o.AuthRecordFile}
	if o.AuthRecordFile != "" {
		rec, ok, err := readAuthRecord(o.AuthRecordFile)
		if err != nil {
			return nil, err
		}
		if ok {
			opts.AuthenticationRecord, dc.haveRecord = rec, true
		}
	}
	if o.PersistentCache {
		c, err := azcache.New(&azcache.Options{Name: cacheName})
		if err != nil {
			hint := ""
			if runtime.GOOS == "linux" {
				hint = " (on Linux the cache lives in the kernel keyring; it needs keyctl support and is lost at reboot)"
			}
			return nil, fmt.Errorf("auth: the persistent token cache is unavailable%s: %w; turn persistent_cache off to sign in on every run", hint, err)
		}
		opts.Cache = c
	}
	cred, err := azidentity.NewDeviceCodeCredential(opts)
	if err != nil {
		return nil, fmt.Errorf("auth: device code credential: %w", wrapEntraError(err))
	}
	dc.cred = cred
	return dc, nil
}

func (d *deviceCode) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	d.mu.Lock()
	if !d.haveRecord && d.recordFile != "" {
		rec, err := d.cred.Authenticate(ctx, &o)
		if err != nil {
			d.mu.Unlock()
			return azcore.AccessToken{}, wrapEntraError(err)
		}
		if err := writeAuthRecord(d.recordFile, rec); err != nil {
			d.mu.Unlock()
			return azcore.AccessToken{}, err
		}
		d.haveRecord = true
	}
	d.mu.Unlock()
	tok, err := d.cred.GetToken(ctx, o)
	if err != nil {
		return tok, wrapEntraError(err)
	}
	return tok, nil
}

// readAuthRecord loads the record; a missing file just means "not yet".
func readAuthRecord(path string) (azidentity.AuthenticationRecord, bool, error) {
	var rec azidentity.AuthenticationRecord
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return rec, false, nil
	}
	if err != nil {
		return rec, false, fmt.Errorf("auth: authentication record: %w", err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return rec, false, fmt.Errorf("auth: authentication record %s is readable by others (mode %04o): run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return rec, false, fmt.Errorf("auth: reading authentication record: %w", err)
	}
	if err := json.Unmarshal(b, &rec); err != nil || rec.HomeAccountID == "" {
		return rec, false, fmt.Errorf("auth: authentication record %s is not valid: delete it and sign in again", path)
	}
	return rec, true, nil
}

func writeAuthRecord(path string, rec azidentity.AuthenticationRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("auth: encoding authentication record: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("auth: saving authentication record: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("auth: saving authentication record: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("auth: saving authentication record: %w", err)
	}
	return nil
}
