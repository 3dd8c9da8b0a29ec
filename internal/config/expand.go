package config

import (
	"fmt"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ${VAR} and ${VAR:-default} in values; $$ is a literal $.
var varRe = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// expandEnv replaces ${VAR} in every value (never in keys) of the YAML
// tree. Secrets are not YAML values (they come from files and the
// environment), so this is for the rest: hosts, folders, names. A value
// that would turn into several lines is refused: it could change the
// document's structure.
func expandEnv(n *yaml.Node, getenv func(string) string, path string) error {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for i, c := range n.Content {
			p := path
			if n.Kind == yaml.SequenceNode {
				p = fmt.Sprintf("%s[%d]", path, i)
			}
			if err := expandEnv(c, getenv, p); err != nil {
				return err
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := expandEnv(n.Content[i+1], getenv, join(path, n.Content[i].Value)); err != nil {
				return err
			}
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "$") {
			return nil
		}
		var firstErr error
		out := varRe.ReplaceAllStringFunc(n.Value, func(m string) string {
			if m == "$$" {
				return "$"
			}
			sub := varRe.FindStringSubmatch(m)
			v := getenv(sub[1])
			if v == "" && sub[2] != "" {
				v = sub[3]
			}
			if v == "" && sub[2] == "" && firstErr == nil {
				firstErr = fmt.Errorf("%s (line %d): ${%s} is not set; set it in the environment or give a default with ${%s:-value}", path, n.Line, sub[1], sub[1])
			}
			if strings.ContainsAny(v, "\r\n") && firstErr == nil {
				firstErr = fmt.Errorf("%s (line %d): ${%s} holds several lines; a config value must be one line", path, n.Line, sub[1])
			}
			return v
		})
		if firstErr != nil {
			return firstErr
		}
		if out != n.Value {
			n.Value = out
			// A quoted "${PORT}" stays a string; an unquoted one is
			// re-typed from what it became (a number, a boolean).
			if n.Style == 0 {
				n.Tag = ""
				var probe yaml.Node
				if yaml.Unmarshal([]byte(out), &probe) == nil && len(probe.Content) == 1 && probe.Content[0].Kind == yaml.ScalarNode {
					n.Tag = probe.Content[0].Tag
				} else {
					n.Tag = "!!str"
				}
			}
		}
	}
	return nil
}
