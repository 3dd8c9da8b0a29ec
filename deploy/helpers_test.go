// Package deploy_test is the linter of the deployment files: the
// Dockerfile, the compose project, the systemd units and the Kubernetes
// kustomization. No container engine or cluster is needed: it reads the
// files, renders the kustomization with a small kustomize of its own
// (kustomize_test.go) and checks that the pieces fit together — the
// shard count matches the replicas, probes reach the listen port, every
// referenced file, Secret and ConfigMap exists, grace periods exceed the
// shutdown timeout. Where kubectl or systemd-analyze is on PATH it also
// checks with them.
package deploy_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/defenderharvester/defenderharvester/internal/config"
)

// repoRoot is the repository's root, seen from this package's folder
// (where go test runs).
const repoRoot = ".."

// The harvester's paths and defaults that the deployment files must agree on.
const (
	binaryPath             = "/usr/local/bin/defenderharvester" // systemd
	imageBinary            = "/defenderharvester"               // container image
	imageConfig            = "/etc/defenderharvester/config.yaml"
	stateDir               = "/var/lib/defenderharvester"
	defaultListenPort      = "9464"
	defaultShutdownTimeout = 45 * time.Second
	// A graceful stop needs at least this long (the brief of `serve`).
	minStopGrace = 60 * time.Second
)

// obj is one decoded YAML document.
type obj = map[string]any

// readYAMLDocs decodes every document of a (multi-document) YAML text.
func readYAMLDocs(t *testing.T, name string, data []byte) []obj {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []obj
	for {
		var o obj
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if o != nil {
			out = append(out, o)
		}
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// get walks maps by key; nil when a step is missing.
func get(o any, keys ...string) any {
	for _, k := range keys {
		m, ok := o.(obj)
		if !ok {
			return nil
		}
		o = m[k]
	}
	return o
}

func getMap(o any, keys ...string) obj {
	m, _ := get(o, keys...).(obj)
	return m
}

func getList(o any, keys ...string) []any {
	l, _ := get(o, keys...).([]any)
	return l
}

func getString(o any, keys ...string) string {
	switch v := get(o, keys...).(type) {
	case string:
		return v
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}

// getInt reads a YAML integer; ok is false when the value is missing or
// not an integer.
func getInt(o any, keys ...string) (int, bool) {
	v, ok := get(o, keys...).(int)
	return v, ok
}

func getBool(o any, keys ...string) (value, ok bool) {
	v, ok := get(o, keys...).(bool)
	return v, ok
}

// byName finds the element of a list of maps whose "name" is name.
func byName(l []any, name string) obj {
	for _, e := range l {
		if m, ok := e.(obj); ok && m["name"] == name {
			return m
		}
	}
	return nil
}

// flagValue returns the value of --name (or -name) in args: "--name V" or
// "--name=V".
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		for _, p := range []string{"--" + name, "-" + name} {
			if a == p && i+1 < len(args) {
				return args[i+1], true
			}
			if v, ok := strings.CutPrefix(a, p+"="); ok {
				return v, true
			}
		}
	}
	return "", false
}

func toStrings(l []any) []string {
	out := make([]string, 0, len(l))
	for _, e := range l {
		out = append(out, fmt.Sprint(e))
	}
	return out
}

// portOf returns the port of a listen address such as ":9464" or
// "0.0.0.0:8443".
func portOf(addr string) string {
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		return ""
	}
	return addr[i+1:]
}

// under reports whether path is dir or inside it.
func under(path, dir string) bool {
	path, dir = filepath.Clean(path), filepath.Clean(dir)
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// harvesterConfig is what the deployment files need to know of a
// harvester config: the serve settings and every file it names.
type harvesterConfig struct {
	raw             obj
	shutdownTimeout time.Duration
	stateDir        string
	leaseDir        string
	// files maps a config key (tenants[i].portal.cookie_file, …) to the
	// path it names.
	files map[string]string
}

// parseHarvesterConfig reads a config, checks the serve keys it relies on,
// and decodes the rest (and each tenant's section) with internal/config's
// strict decoder, so a misspelt key fails here rather than at start-up.
func parseHarvesterConfig(t *testing.T, name string, data []byte) harvesterConfig {
	t.Helper()
	docs := readYAMLDocs(t, name, data)
	if len(docs) != 1 {
		t.Fatalf("%s: want one YAML document, got %d", name, len(docs))
	}
	c := harvesterConfig{raw: docs[0], shutdownTimeout: defaultShutdownTimeout, stateDir: stateDir, files: map[string]string{}}
	if s := getString(c.raw, "serve", "shutdown_timeout"); s != "" {
		d, err := config.ParseDuration(s)
		if err != nil {
			t.Fatalf("%s: serve.shutdown_timeout: %v", name, err)
		}
		c.shutdownTimeout = d
	}
	if s := getString(c.raw, "state_file"); s != "" {
		c.stateDir = path.Dir(s)
	}
	c.leaseDir = getString(c.raw, "serve", "lease_dir")
	if f := getString(c.raw, "log_format"); f != "" && f != "json" {
		t.Errorf("%s: log_format %q; containers and services log JSON (log_format: json)", name, f)
	}

	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	top := root.Content[0]
	decodeCurrent(t, name, top)
	collectFiles(top, "", c.files)
	tenants := mappingValue(top, "tenants")
	if tenants != nil {
		if tenants.Kind != yaml.SequenceNode {
			t.Fatalf("%s: tenants must be a list", name)
		}
		seen := map[string]bool{}
		for i, tn := range tenants.Content {
			tname := scalar(mappingValue(tn, "name"))
			if tname == "" {
				t.Errorf("%s: tenants[%d] has no name (the name decides its replica, lease and state file)", name, i)
			}
			if seen[tname] {
				t.Errorf("%s: tenant name %q is used twice", name, tname)
			}
			seen[tname] = true
			decodeCurrent(t, fmt.Sprintf("%s tenants[%d] (%s)", name, i, tname), withoutKeys(tn, "name"))
		}
	}
	return c
}

// decodeCurrent decodes a config mapping node with internal/config.
func decodeCurrent(t *testing.T, name string, n *yaml.Node) {
	t.Helper()
	b, err := yaml.Marshal(n)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if err := config.Decode(b, config.Default()); err != nil {
		t.Errorf("%s: the harvester's config decoder refuses it: %v", name, err)
	}
}

func mappingValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func scalar(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode {
		return ""
	}
	return n.Value
}

func withoutKeys(n *yaml.Node, keys ...string) *yaml.Node {
	out := *n
	out.Content = nil
	for i := 0; i+1 < len(n.Content); i += 2 {
		drop := false
		for _, k := range keys {
			drop = drop || n.Content[i].Value == k
		}
		if !drop {
			out.Content = append(out.Content, n.Content[i], n.Content[i+1])
		}
	}
	return &out
}

// collectFiles records every scalar whose key ends in _file (cookie_file,
// client_secret_file, ca_file, …) under its dotted path.
func collectFiles(n *yaml.Node, path string, into map[string]string) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i].Value, n.Content[i+1]
			p := k
			if path != "" {
				p = path + "." + k
			}
			// The state file is checked as the state folder (a volume of
			// its own), not as a file the harvester reads.
			if strings.HasSuffix(k, "_file") && k != "state_file" && v.Kind == yaml.ScalarNode && v.Value != "" {
				into[p] = v.Value
				continue
			}
			collectFiles(v, p, into)
		}
	case yaml.SequenceNode:
		for i, e := range n.Content {
			collectFiles(e, fmt.Sprintf("%s[%d]", path, i), into)
		}
	}
}

// TestExampleConfigDecodes keeps the config example next to the units
// loadable by the harvester's own decoder.
func TestExampleConfigDecodes(t *testing.T) {
	name := filepath.Join(repoRoot, "deploy", "defenderharvester.example.yaml")
	c := parseHarvesterConfig(t, name, readFile(t, name))
	if len(c.files) == 0 {
		t.Errorf("%s names no secret files; expected portal.cookie_file and public_api.client_secret_file", name)
	}
}
