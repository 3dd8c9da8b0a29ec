package config

import (
	"fmt"
	"regexp"

	"go.yaml.in/yaml/v3"
)

// Keys a plugin section may hold that belong to the harvester, not to
// the plugin's settings.
const (
	keyEnabled  = "enabled"
	keyType     = "type"     // outputs: the output type of a named instance
	keySchedule = "schedule" // sources: when serve runs it
	keyName     = "name"     // outputs given as a list
)

var instanceNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

// fromList reads outputs written as a list of named instances:
//
//	outputs:
//	  - {name: splunk-east, type: splunk, url: …}
//	  - {name: splunk-west, type: splunk, url: …}
//
// Each becomes a section under its name that keeps its type key.
func (p *PluginConfigs) fromList(n *yaml.Node) error {
	for i, item := range n.Content {
		if item.Kind != yaml.MappingNode {
			return fmt.Errorf("line %d: outputs[%d]: expected {name: …, type: …, settings…}", item.Line, i)
		}
		name, typ := scalarValue(item, keyName), scalarValue(item, keyType)
		switch {
		case name == "":
			return fmt.Errorf("line %d: outputs[%d]: name is missing; each listed output needs a name (its spool and dead letters are kept under it)", item.Line, i)
		case !instanceNameRe.MatchString(name):
			return fmt.Errorf("line %d: outputs[%d]: name %q must be lower-case letters, digits, '-', '_' or '.' (at most 63)", item.Line, i, name)
		case typ == "":
			return fmt.Errorf("line %d: outputs[%d] (%s): type is missing; say which output it is (files, sentinel, splunk, stdout)", item.Line, i, name)
		}
		if _, dup := (*p)[name]; dup {
			return fmt.Errorf("line %d: outputs[%d]: two outputs are named %q; names must be unique", item.Line, i, name)
		}
		(*p)[name] = withoutKey(item, keyName)
	}
	return nil
}

// OutputType is the output type of the section named name: its type key,
// or the name itself (the map form, where the name is the type).
func OutputType(name string, n *yaml.Node) string {
	if t := scalarValue(n, keyType); t != "" {
		return t
	}
	return name
}

// Schedule is a source section's schedule key ("" when not set).
func Schedule(n *yaml.Node) string {
	return scalarValue(n, keySchedule)
}

func scalarValue(n *yaml.Node, key string) string {
	if n == nil || n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key && n.Content[i+1].Kind == yaml.ScalarNode {
			return n.Content[i+1].Value
		}
	}
	return ""
}
