package config

import (
	"reflect"
	"sort"
	"strings"
)

// keysOfType lists the YAML keys accepted by the struct named typeName (as
// the YAML decoder prints it, e.g. "config.Portal") found inside target,
// for "known keys" hints.
func keysOfType(target any, typeName string) []string {
	t := reflect.TypeOf(target)
	if found := findStruct(t, typeName, map[reflect.Type]bool{}); found != nil {
		return structKeys(found)
	}
	return structKeys(t)
}

func findStruct(t reflect.Type, name string, seen map[reflect.Type]bool) reflect.Type {
	for t != nil && (t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map) {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct || seen[t] {
		return nil
	}
	seen[t] = true
	if t.String() == name {
		return t
	}
	for i := 0; i < t.NumField(); i++ {
		if f := findStruct(t.Field(i).Type, name, seen); f != nil {
			return f
		}
	}
	return nil
}

func structKeys(t reflect.Type) []string {
	fields := yamlFields(t)
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// yamlFields maps the YAML keys a struct accepts to their field types.
// The fields of a struct embedded with `yaml:",inline"` are keys of the
// outer struct (as the YAML decoder reads them).
func yamlFields(t reflect.Type) map[string]reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	fields := map[string]reflect.Type{}
	if t == nil || t.Kind() != reflect.Struct {
		return fields
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := strings.Split(f.Tag.Get("yaml"), ",")
		name := tag[0]
		if name == "-" {
			continue
		}
		inline := false
		for _, o := range tag[1:] {
			inline = inline || o == "inline"
		}
		if inline {
			for k, v := range yamlFields(f.Type) {
				fields[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
	}
	return fields
}
