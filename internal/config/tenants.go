package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// TenantNodes keeps each entry of `tenants:` as YAML, merged over the
// top-level settings by TenantConfigs.
type TenantNodes []*yaml.Node

// UnmarshalYAML keeps the entries for TenantConfigs.
func (t *TenantNodes) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		return fmt.Errorf("line %d: tenants: expected a list (one \"- name: …\" per tenant)", n.Line)
	}
	for i, item := range n.Content {
		if item.Kind != yaml.MappingNode {
			return fmt.Errorf("line %d: tenants[%d]: expected the tenant's settings (name, tenant_id, portal, public_api, …)", item.Line, i)
		}
	}
	*t = n.Content
	return nil
}

// Keys that apply to the whole process: a tenant cannot set them.
var processKeys = []string{"tenants", "serve", "log_level", "log_format", "emulator"}

// Keys a tenant never inherits from the top level: its identity, its
// secrets and the files that hold its own state. Two tenants sharing a
// cookie file or a state file would mix their data.
var ownKeys = [][]string{
	{"tenant_id"},
	{"state_file"},
	{"portal", "cookie_file"},
	{"portal", "session_cache"},
	{"portal", "auth", "ests_file"},
	{"portal", "auth", "refresh_token_file"},
	{"public_api", "client_id"},
	{"public_api", "client_secret_file"},
	{"public_api", "access_token_file"},
	{"public_api", "auth", "certificate_file"},
	{"public_api", "auth", "auth_record_file"},
	{"public_api", "auth", "tenant_id"},
	{"public_api", "auth", "client_id"},
}

// Environment variables that name a tenant's identity or secrets: for a
// tenant named contoso they are read as DH_CONTOSO_CLIENT_SECRET and so
// on, never from the unprefixed name (which would hand one tenant's
// secret to all).
var tenantEnv = []string{EnvPortalCookie, EnvPortalSccAuth, EnvPortalXSRF, EnvClientSecret,
	EnvAccessToken, EnvTenantID, EnvClientID, EnvPortalESTS, EnvPortalRefreshToken}

// MultiTenant says the config lists tenants.
func (c *Config) MultiTenant() bool { return len(c.Tenants) > 0 }

// TenantName is the tenant's name in state, metrics and sharding:
// "default" for a single-tenant config.
func (c *Config) TenantName() string {
	if c.Name == "" {
		return "default"
	}
	return c.Name
}

// TenantEnvName is the environment variable a tenant reads instead of
// name (DH_CLIENT_SECRET → DH_CONTOSO_CLIENT_SECRET).
func TenantEnvName(tenant, name string) string {
	up := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= '0' && r <= '9', r >= 'A' && r <= 'Z':
			return r
		}
		return '_'
	}, tenant)
	return "DH_" + up + "_" + strings.TrimPrefix(name, "DH_")
}

// TenantConfigs returns one complete, validated config per tenant: the
// top-level settings with the tenant's entry merged over them (maps key
// by key; a tenant's outputs replace the top-level outputs as a whole).
// Each tenant keeps its state under <state folder>/tenants/<name>/ unless
// it names its own state_file. A single-tenant config returns itself.
func (c *Config) TenantConfigs() ([]*Config, error) {
	if !c.MultiTenant() {
		return []*Config{c}, nil
	}
	if c.doc == nil {
		return nil, errors.New("tenants: the config was not loaded from a file (a programming error)")
	}
	base := topLevel(c.doc)
	seen := map[string]bool{}
	var out []*Config
	var errs []error
	for i, node := range c.Tenants {
		name := scalarValue(node, keyName)
		where := fmt.Sprintf("tenants[%d]", i)
		switch {
		case name == "":
			errs = append(errs, fmt.Errorf("%s (line %d): name is missing; each tenant needs a stable name (its state folder, metrics label and shard key)", where, node.Line))
			continue
		case !instanceNameRe.MatchString(name):
			errs = append(errs, fmt.Errorf("%s (line %d): name %q must be lower-case letters, digits, '-', '_' or '.' (at most 63)", where, node.Line, name))
			continue
		case seen[name]:
			errs = append(errs, fmt.Errorf("%s (line %d): two tenants are named %q; names must be unique", where, node.Line, name))
			continue
		}
		seen[name] = true
		tc, err := c.tenantConfig(base, node, name)
		if err != nil {
			errs = append(errs, fmt.Errorf("tenants.%s: %w", name, err))
			continue
		}
		out = append(out, tc)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *Config) tenantConfig(base, node *yaml.Node, name string) (*Config, error) {
	own := withoutKey(node, keyName)
	for i := 0; i+1 < len(own.Content); i += 2 {
		for _, k := range processKeys {
			if own.Content[i].Value == k {
				return nil, fmt.Errorf("%s (line %d) applies to the whole process; set it at the top level, not per tenant", k, own.Content[i].Line)
			}
		}
	}
	inherited := cloneNode(base)
	for _, path := range ownKeys {
		removePath(inherited, path)
	}
	merged := merge(inherited, own)
	tc := Default()
	tc.Tenants = nil
	if err := decodeNode(merged, nil, tc, ""); err != nil {
		return nil, err
	}
	tc.Dir, tc.Name, tc.doc = c.Dir, name, nil
	if scalarValue(own, "state_file") == "" {
		tc.StateFile = filepath.Join(filepath.Dir(c.StateFile), "tenants", name, "defenderharvester.db")
	}
	tc.resolvePaths()
	getenv := c.getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	tenantGetenv := func(k string) string {
		for _, e := range tenantEnv {
			if k == e {
				return getenv(TenantEnvName(name, k))
			}
		}
		return getenv(k)
	}
	if err := tc.resolveEnv(tenantGetenv); err != nil {
		return nil, err
	}
	if err := tc.Validate(); err != nil {
		return nil, err
	}
	return tc, nil
}

// topLevel is the document's mapping without the list of tenants (the
// process-wide keys stay: a tenant cannot change them but uses them).
func topLevel(doc *yaml.Node) *yaml.Node {
	root := doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	return withoutKey(root, "tenants")
}

// merge lays over on top of base: maps merge key by key (recursively),
// anything else — and outputs as a whole — is replaced.
func merge(base, over *yaml.Node) *yaml.Node {
	if base == nil || base.Kind != yaml.MappingNode || over.Kind != yaml.MappingNode {
		return over
	}
	out := cloneNode(base)
	for i := 0; i+1 < len(over.Content); i += 2 {
		k, v := over.Content[i], over.Content[i+1]
		j := indexOfKey(out, k.Value)
		switch {
		case j < 0:
			out.Content = append(out.Content, k, v)
		case k.Value == "outputs":
			out.Content[j+1] = v
		default:
			out.Content[j+1] = merge(out.Content[j+1], v)
		}
	}
	return out
}

func indexOfKey(n *yaml.Node, key string) int {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return i
		}
	}
	return -1
}

// removePath deletes the key at path (a.b.c) from the mapping n.
func removePath(n *yaml.Node, path []string) {
	if n == nil || n.Kind != yaml.MappingNode {
		return
	}
	j := indexOfKey(n, path[0])
	if j < 0 {
		return
	}
	if len(path) == 1 {
		n.Content = append(n.Content[:j:j], n.Content[j+2:]...)
		return
	}
	child := cloneNode(n.Content[j+1])
	n.Content[j+1] = child
	removePath(child, path[1:])
}

// cloneNode copies a mapping's key/value list (one level; values are
// shared until changed, then cloned by the changer).
func cloneNode(n *yaml.Node) *yaml.Node {
	if n == nil {
		return nil
	}
	c := *n
	c.Content = append([]*yaml.Node(nil), n.Content...)
	return &c
}
