package sentinel

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"go.yaml.in/yaml/v3"

	"github.com/defenderharvester/defenderharvester/internal/delivery"
	"github.com/defenderharvester/defenderharvester/internal/sink"
	"github.com/defenderharvester/defenderharvester/internal/tables"
)

// Name is the output's config key.
const Name = "sentinel"

// Defaults of Config.
const (
	DefaultStreamPrefix = "Custom-"
	DefaultMaxBytes     = 1_000_000
	// MaxRequestBytes is the Logs Ingestion API's limit per call,
	// compressed or not.
	MaxRequestBytes = 1 << 20
	// SecretEnv holds the client secret when no client_secret_file is set.
	SecretEnv = "DH_SENTINEL_CLIENT_SECRET"
)

// Auth methods.
const (
	AuthClientSecret      = "client_secret"
	AuthCertificate       = "certificate"
	AuthManagedIdentity   = "managed_identity"
	AuthWorkloadIdentity  = "workload_identity"
	AuthAzureCLI          = "azure_cli"
	cloudPublic           = "public"
	cloudUSGovernment     = "usgovernment"
	cloudChina            = "china"
	defaultDeadLetterName = "deadletter"
)

// Config are the Sentinel output's settings.
type Config struct {
	// Endpoint is the DCR's logs-ingestion endpoint or a data collection
	// endpoint (https://….ingest.monitor.azure.com).
	Endpoint string `yaml:"endpoint"`
	// DCRImmutableID is the rule's immutable id, "dcr-" + 32 hex digits.
	DCRImmutableID string `yaml:"dcr_immutable_id"`
	// Rules send the tables they list to another DCR (a DCR holds at most
	// 10 streams, so the 13 tables need two); every other table goes to
	// Endpoint / DCRImmutableID.
	Rules []Rule `yaml:"rules"`
	// StreamPrefix + table name is the stream a table is sent to, unless
	// Streams names one.
	StreamPrefix string            `yaml:"stream_prefix"`
	Streams      map[string]string `yaml:"streams"`
	// Cloud: public, usgovernment or china.
	Cloud string `yaml:"cloud"`
	// Gzip compresses every call (recommended: less traffic, same limit).
	Gzip bool       `yaml:"gzip"`
	Auth AuthConfig `yaml:"auth"`
	// Delivery are the shared exporter's knobs (batch size, retries…).
	Delivery delivery.Config `yaml:"delivery"`
	// DeadLetterDir keeps records the service rejects one by one;
	// default <data dir>/deadletter.
	DeadLetterDir string `yaml:"dead_letter_dir"`
	// MaxTimeSpan bounds how far apart the TimeGenerated values of one call
	// may be (Logs Ingestion documents RecordsTimeRangeIsMoreThan30Minutes);
	// a batch spanning more is sent as several calls. 0 turns it off.
	MaxTimeSpan time.Duration `yaml:"max_time_span"`
	// InsecureSkipVerify turns TLS verification off (tests only).
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// Rule routes some tables to their own data collection rule.
type Rule struct {
	Endpoint       string   `yaml:"endpoint"`
	DCRImmutableID string   `yaml:"dcr_immutable_id"`
	Tables         []string `yaml:"tables"`
}

// UnmarshalYAML decodes a rule strictly: the config loader checks the keys
// of maps but not of list items, and a misspelt key would otherwise be
// dropped without a word.
func (r *Rule) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: a rule is a map with endpoint, dcr_immutable_id and tables", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		switch k := n.Content[i]; k.Value {
		case "endpoint", "dcr_immutable_id", "tables":
		default:
			return fmt.Errorf("line %d: unknown key %q in a rule; known keys: endpoint, dcr_immutable_id, tables", k.Line, k.Value)
		}
	}
	type plain Rule // without this method, so Decode does not recurse
	return n.Decode((*plain)(r))
}

// AuthConfig selects the Entra credential.
type AuthConfig struct {
	Method   string `yaml:"method"`
	TenantID string `yaml:"tenant_id"`
	ClientID string `yaml:"client_id"`
	// ClientSecretFile is a 0600 file with the client secret; without it
	// the secret comes from $DH_SENTINEL_CLIENT_SECRET.
	ClientSecretFile string `yaml:"client_secret_file"`
	// CertificateFile is a 0600 PEM file with the certificate and its key.
	CertificateFile string `yaml:"certificate_file"`
}

// DefaultConfig returns the settings used when the config file says nothing.
func DefaultConfig() *Config {
	return &Config{
		StreamPrefix: DefaultStreamPrefix,
		Cloud:        cloudPublic,
		Gzip:         true,
		Auth:         AuthConfig{Method: AuthClientSecret},
		Delivery:     delivery.Config{MaxBytes: DefaultMaxBytes},
		MaxTimeSpan:  DefaultMaxTimeSpan,
	}
}

// DefaultMaxTimeSpan is the documented Logs Ingestion limit on the time
// range of one call.
const DefaultMaxTimeSpan = 30 * time.Minute

var (
	dcrIDRe  = regexp.MustCompile(`^dcr-[0-9a-fA-F]{32}$`)
	streamRe = regexp.MustCompile(`^Custom-[A-Za-z0-9_][A-Za-z0-9_-]*$`)
	guidRe   = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
)

// cloudConfig maps the cloud setting to azcore's configuration (authority
// host; azlogs adds its monitor audience to each).
func cloudConfig(name string) (cloud.Configuration, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "", cloudPublic:
		return cloud.AzurePublic, nil
	case cloudUSGovernment:
		return cloud.AzureGovernment, nil
	case cloudChina:
		return cloud.AzureChina, nil
	}
	return cloud.Configuration{}, fmt.Errorf("cloud %q is unknown: use public, usgovernment or china", name)
}

func validEndpoint(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Scheme == "https" && u.Host != "" && u.User == nil && (u.Path == "" || u.Path == "/") && u.RawQuery == "" && u.Fragment == ""
}

func tableNames() []string {
	all := tables.All()
	names := make([]string, len(all))
	for i, t := range all {
		names[i] = t.Name
	}
	return names
}

// validate fills the defaults New relies on and checks the settings.
func (c *Config) validate() error {
	if c.StreamPrefix == "" {
		c.StreamPrefix = DefaultStreamPrefix
	}
	if c.Delivery.MaxBytes == 0 {
		c.Delivery.MaxBytes = DefaultMaxBytes
	}
	if c.Delivery.AttemptTimeout == 0 {
		c.Delivery.AttemptTimeout = delivery.DefaultAttemptTimeout
	}
	return c.Validate()
}

// Validate checks everything that needs neither the network nor secrets,
// so a bad value is a config error before any work. Messages name the key
// without the outputs.sentinel. prefix (the caller adds it).
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.MaxTimeSpan < 0 {
		add("max_time_span %s is negative: use a duration such as 30m, or 0 to turn the split off", c.MaxTimeSpan)
	}
	// With rules, the top-level DCR is optional: a table no rule lists
	// then fails at Write, naming the table.
	if len(c.Rules) == 0 || c.Endpoint != "" || c.DCRImmutableID != "" {
		if c.Endpoint == "" {
			add("endpoint is empty: set it to the DCR's logs ingestion endpoint (deployment output logsIngestionEndpoint of sentinel-setup's template, or az monitor data-collection rule show … --query endpoints.logsIngestion) or a data collection endpoint")
		} else if !validEndpoint(c.Endpoint) {
			add("endpoint %q must be an https URL without path or query, e.g. https://my-dcr-abcd.westeurope-1.ingest.monitor.azure.com", c.Endpoint)
		}
		if !dcrIDRe.MatchString(c.DCRImmutableID) {
			add("dcr_immutable_id %q must be \"dcr-\" followed by 32 hex digits (the DCR's immutableId: deployment output dcrImmutableId of sentinel-setup's template)", c.DCRImmutableID)
		}
	}
	ruleOf := map[string]int{}
	for i, r := range c.Rules {
		at := fmt.Sprintf("rules[%d]", i)
		if r.Endpoint == "" {
			add("%s.endpoint is empty: set it to that DCR's logs ingestion endpoint (deployment output logsIngestionEndpoint<N> of sentinel-setup's template)", at)
		} else if !validEndpoint(r.Endpoint) {
			add("%s.endpoint %q must be an https URL without path or query, e.g. https://my-dcr-abcd.westeurope-1.ingest.monitor.azure.com", at, r.Endpoint)
		}
		if !dcrIDRe.MatchString(r.DCRImmutableID) {
			add("%s.dcr_immutable_id %q must be \"dcr-\" followed by 32 hex digits (deployment output dcrImmutableId<N> of sentinel-setup's template)", at, r.DCRImmutableID)
		}
		if len(r.Tables) == 0 {
			add("%s.tables is empty: list the tables that DCR holds (deployment output tables<N> of sentinel-setup's template)", at)
		}
		for _, t := range r.Tables {
			if _, ok := tables.Lookup(t); !ok {
				add("%s.tables: unknown table %q; known tables: %s", at, t, strings.Join(tableNames(), ", "))
				continue
			}
			if j, dup := ruleOf[t]; dup {
				if j == i {
					add("%s.tables lists %s twice: remove one", at, t)
				} else {
					add("table %s is in rules[%d] and rules[%d]: a table goes to one DCR, remove it from the rule whose DCR lacks its stream", t, j, i)
				}
				continue
			}
			ruleOf[t] = i
		}
	}
	if c.StreamPrefix != "" && !strings.HasPrefix(c.StreamPrefix, "Custom-") {
		add("stream_prefix %q must start with \"Custom-\" (custom stream names do)", c.StreamPrefix)
	}
	for table, s := range c.Streams {
		if !streamRe.MatchString(s) {
			add("streams.%s %q must be Custom-<Name> (letters, digits, _ and -)", table, s)
		}
	}
	if _, err := cloudConfig(c.Cloud); err != nil {
		errs = append(errs, err)
	}
	if c.Delivery.MaxBytes > MaxRequestBytes {
		add("delivery.max_bytes %d is above the Logs Ingestion limit of %d bytes per call: lower it (default %d)", c.Delivery.MaxBytes, MaxRequestBytes, DefaultMaxBytes)
	}
	if err := c.Delivery.Validate(); err != nil {
		errs = append(errs, sink.PrefixKeys("delivery.", err))
	}
	a := c.Auth
	switch a.Method {
	case AuthClientSecret, AuthCertificate:
		if !guidRe.MatchString(a.TenantID) {
			add("auth.tenant_id %q must be the Entra tenant id (a GUID)", a.TenantID)
		}
		if !guidRe.MatchString(a.ClientID) {
			add("auth.client_id %q must be the app registration's application (client) id (a GUID)", a.ClientID)
		}
		if a.Method == AuthCertificate && a.CertificateFile == "" {
			add("auth.certificate_file is empty: point it at a 0600 PEM file holding the certificate and its private key")
		}
	case AuthManagedIdentity, AuthAzureCLI, AuthWorkloadIdentity:
		if a.ClientID != "" && !guidRe.MatchString(a.ClientID) {
			add("auth.client_id %q must be a GUID", a.ClientID)
		}
		if a.TenantID != "" && !guidRe.MatchString(a.TenantID) {
			add("auth.tenant_id %q must be a GUID", a.TenantID)
		}
	case "":
		add("auth.method is empty: use client_secret, certificate, managed_identity, workload_identity or azure_cli")
	default:
		add("auth.method %q is unknown: use client_secret, certificate, managed_identity, workload_identity or azure_cli", a.Method)
	}
	return errors.Join(errs...)
}

// DeadLetterDirectory is dead_letter_dir ("": <data dir>/deadletter),
// for the state tools (sink.DeadLetterDirer).
func (c *Config) DeadLetterDirectory() string { return c.DeadLetterDir }

// ResolvePaths implements config.PathResolver: dead_letter_dir and the
// credential files are relative to the config file's folder.
func (c *Config) ResolvePaths(resolve func(string) string) {
	for _, p := range []*string{&c.DeadLetterDir, &c.Auth.ClientSecretFile, &c.Auth.CertificateFile} {
		if *p != "" {
			*p = resolve(*p)
		}
	}
}
