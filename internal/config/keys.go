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
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		keys = append(keys, name)
	}
	sort.Strings(keys)
	return keys
}
