package config

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Decode parses YAML strictly into cfg: an unknown key is an error naming
// it and listing the known ones.
func Decode(data []byte, cfg *Config) error {
	return decodeStrict(data, cfg, "", nil)
}

// DecodeEnv is Decode with ${VAR} in values replaced from getenv.
func DecodeEnv(data []byte, cfg *Config, getenv func(string) string) error {
	return decodeStrict(data, cfg, "", getenv)
}

// DecodePlugin decodes one plugin's settings (a node from Outputs or
// Sources) strictly into target. section is e.g. "sources.timeline".
// The keys the harvester reads itself ("enabled"; "schedule" of a
// source; "type" of an output) are skipped here.
func DecodePlugin(n *yaml.Node, section string, target any) error {
	if n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("%s (line %d): expected a map of settings", section, n.Line)
	}
	control := []string{keyEnabled}
	switch {
	case strings.HasPrefix(section, "sources."):
		control = append(control, keySchedule)
	case strings.HasPrefix(section, "outputs."):
		control = append(control, keyType)
	}
	if target == nil {
		if hasKeysOtherThan(n, control...) {
			return fmt.Errorf("%s: this plugin takes no settings (only %s)", section, strings.Join(control, ", "))
		}
		return nil
	}
	clean := withoutKey(n, control...)
	if err := checkKeys(clean, reflect.TypeOf(target), section); err != nil {
		return err
	}
	if err := checkTypes(clean, reflect.TypeOf(target), section); err != nil {
		return err
	}
	if err := clean.Decode(target); err != nil {
		return fmt.Errorf("%s: %w", section, err)
	}
	return nil
}

// checkKeys rejects keys the target struct does not declare, with the
// line in the user's file and the keys that would have been accepted.
func checkKeys(n *yaml.Node, t reflect.Type, section string) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct || n.Kind != yaml.MappingNode {
		return nil
	}
	fields := yamlFields(t)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		ft, ok := fields[k.Value]
		if !ok {
			prefix := ""
			if section != "" {
				prefix = section + ": "
			}
			return fmt.Errorf("%sunknown key %q (line %d); known keys: %s", prefix, k.Value, k.Line, strings.Join(structKeys(t), ", "))
		}
		if err := checkKeys(n.Content[i+1], ft, join(section, k.Value)); err != nil {
			return err
		}
	}
	return nil
}

// Enabled reads the optional "enabled" key of a plugin section (default true).
func Enabled(n *yaml.Node) (bool, error) {
	if n == nil || n.Kind != yaml.MappingNode {
		return true, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "enabled" {
			var b bool
			if err := n.Content[i+1].Decode(&b); err != nil {
				return false, fmt.Errorf("line %d: \"enabled\" must be true or false", n.Content[i+1].Line)
			}
			return b, nil
		}
	}
	return true, nil
}

func hasKeysOtherThan(n *yaml.Node, keys ...string) bool {
	if n.Kind != yaml.MappingNode {
		return n.Kind != 0 && !(n.Kind == yaml.ScalarNode && n.Tag == "!!null")
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !slices.Contains(keys, n.Content[i].Value) {
			return true
		}
	}
	return false
}

func withoutKey(n *yaml.Node, keys ...string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return n
	}
	out := *n
	out.Content = nil
	for i := 0; i+1 < len(n.Content); i += 2 {
		if slices.Contains(keys, n.Content[i].Value) {
			continue
		}
		out.Content = append(out.Content, n.Content[i], n.Content[i+1])
	}
	return &out
}

var lineRe = regexp.MustCompile(`line (\d+)`)

func atoi(s string) int {
	n := 0
	fmt.Sscanf(s, "%d", &n)
	return n
}

// keyPathAtLine finds the dotted key whose value sits on line, so an error
// from a value decoder can name the key. A scalar value wins over a list
// or map that starts on the same line.
func keyPathAtLine(data []byte, line int) string {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil {
		return ""
	}
	var walk func(n *yaml.Node, prefix string, scalarsOnly bool) string
	walk = func(n *yaml.Node, prefix string, scalarsOnly bool) string {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				if p := walk(c, prefix, scalarsOnly); p != "" {
					return p
				}
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				path := k.Value
				if prefix != "" {
					path = prefix + "." + k.Value
				}
				// The deepest match wins: a map starting on the line
				// holds the value the error is about.
				if p := walk(v, path, scalarsOnly); p != "" {
					return p
				}
				if v.Line == line && (v.Kind == yaml.ScalarNode || !scalarsOnly) {
					return path
				}
			}
		}
		return ""
	}
	if p := walk(&doc, "", true); p != "" {
		return p
	}
	return walk(&doc, "", false)
}

var unknownFieldRe = regexp.MustCompile(`line (\d+): field (\S+) not found in type (\S+)`)

// decodeStrict decodes data into target: values are type-checked and
// unknown keys refused, each error naming the key and its line. With
// getenv, ${VAR} in values is expanded first (lines stay the file's).
func decodeStrict(data []byte, target any, section string, getenv func(string) string) error {
	_, err := decodeFile(data, target, section, getenv)
	return err
}

// decodeFile is decodeStrict that also returns the (expanded) document.
func decodeFile(data []byte, target any, section string, getenv func(string) string) (*yaml.Node, error) {
	if len(bytes.TrimSpace(data)) == 0 || strings.TrimSpace(string(data)) == "{}" || strings.TrimSpace(string(data)) == "null" {
		return nil, nil
	}
	var doc yaml.Node
	if yerr := yaml.Unmarshal(data, &doc); yerr != nil || doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		return nil, decodeError(dec.Decode(target), data, target, section)
	}
	if getenv != nil {
		if err := expandEnv(&doc, getenv, section); err != nil {
			return nil, err
		}
	}
	return &doc, decodeNode(doc.Content[0], data, target, section)
}

// decodeNode decodes one YAML value strictly into target; data is the
// file it came from (errors name keys by line).
func decodeNode(n *yaml.Node, data []byte, target any, section string) error {
	if err := checkTypes(n, reflect.TypeOf(target), section); err != nil {
		return err
	}
	if err := checkKeys(n, reflect.TypeOf(target), section); err != nil {
		return err
	}
	return decodeError(n.Decode(target), data, target, section)
}

// decodeError names the key and line of a decoder error.
func decodeError(err error, data []byte, target any, section string) error {
	if err == nil || errors.Is(err, io.EOF) {
		return nil
	}
	prefix := ""
	if section != "" {
		prefix = section + ": "
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs := make([]string, 0, len(te.Errors))
		for _, e := range te.Errors {
			if m := unknownFieldRe.FindStringSubmatch(e); m != nil {
				msgs = append(msgs, fmt.Sprintf("unknown key %q (line %s); known keys: %s",
					m[2], m[1], strings.Join(keysOfType(target, m[3]), ", ")))
				continue
			}
			if m := lineRe.FindStringSubmatch(e); m != nil && section == "" {
				if path := keyPathAtLine(data, atoi(m[1])); path != "" {
					e = path + ": " + e
				}
			}
			msgs = append(msgs, e)
		}
		return fmt.Errorf("%s%s", prefix, strings.Join(msgs, "; "))
	}
	msg := err.Error()
	if m := lineRe.FindStringSubmatch(msg); m != nil && section == "" {
		if path := keyPathAtLine(data, atoi(m[1])); path != "" {
			return fmt.Errorf("%s: %s", path, msg)
		}
	}
	return fmt.Errorf("%sinvalid YAML: %w", prefix, err)
}

var (
	yamlUnmarshaler = reflect.TypeFor[yaml.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	durationType    = reflect.TypeFor[time.Duration]()
)

// checkTypes compares each value with the type of the key it sets and
// names the key (dotted from path) of the first mismatch: a word where a
// number belongs, a fraction for a whole number (which the YAML decoder
// would silently truncate), a list where one value belongs. Types that
// decode themselves (Duration, plugin sections) are left to their own
// decoders; unknown keys to checkKeys and the strict decoder.
func checkTypes(n *yaml.Node, t reflect.Type, path string) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || n == nil || n.Kind == yaml.AliasNode || (n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
		return nil
	}
	if t.Implements(yamlUnmarshaler) || reflect.PointerTo(t).Implements(yamlUnmarshaler) {
		return nil
	}
	// Scalars the decoder hands to UnmarshalText (time.Time, net.IP …).
	if n.Kind == yaml.ScalarNode && (t.Implements(textUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler)) {
		return nil
	}
	name := path
	if name == "" {
		name = "the config"
	}
	bad := func(want string) error {
		return fmt.Errorf("%s: %s %s (line %d)", name, describe(n), want, n.Line)
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return bad("where a map of settings belongs")
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			if ft, ok := fields[n.Content[i].Value]; ok {
				if err := checkTypes(n.Content[i+1], ft, join(path, n.Content[i].Value)); err != nil {
					return err
				}
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return bad("where a map belongs")
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := checkTypes(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value)); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return bad("where a list belongs (write [a, b] or one \"- item\" per line)")
		}
		for i, c := range n.Content {
			if err := checkTypes(c, t.Elem(), fmt.Sprintf("%s[%d]", name, i)); err != nil {
				return err
			}
		}
	case reflect.Int64:
		if t == durationType {
			// The decoder reads "15s" into a time.Duration (and a bare
			// number as nanoseconds).
			if _, err := time.ParseDuration(n.Value); n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && err != nil) {
				return bad("is not a duration like 30s, 15m or 24h")
			}
			return nil
		}
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			return bad("is not a whole number")
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			return bad("is not a whole number")
		}
	case reflect.Float32, reflect.Float64:
		if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") {
			return bad("is not a number")
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || (n.Tag != "!!bool" && !oldBool(n.Value)) {
			return bad("is not true or false")
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			return bad("where a single value belongs")
		}
	}
	return nil
}

// oldBool lists the YAML 1.1 booleans the decoder still accepts.
func oldBool(v string) bool {
	switch strings.ToLower(v) {
	case "y", "yes", "n", "no", "on", "off":
		return true
	}
	return false
}

// describe names a value for an error without dumping it.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a map"
	case yaml.SequenceNode:
		return "a list"
	}
	v := n.Value
	if len(v) > 40 {
		v = v[:40] + "…"
	}
	return fmt.Sprintf("%q", v)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
