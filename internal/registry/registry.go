// Package registry is a small name-keyed registry of factories, shared by
// the source and sink registries. Registration happens in init(), lookups
// at run time; both may race in tests, so access is locked.
package registry

import (
	"fmt"
	"sort"
	"sync"
)

// Registry holds values of T keyed by name.
type Registry[T any] struct {
	kind string // "source", "sink": names the registry in panics
	name func(T) string

	mu    sync.RWMutex
	items map[string]T
}

// New returns an empty registry; kind names what it holds and name reads a
// value's key.
func New[T any](kind string, name func(T) string) *Registry[T] {
	return &Registry[T]{kind: kind, name: name, items: map[string]T{}}
}

// Register adds v. It panics on a duplicate name because that is a
// programming error caught by any test.
func (r *Registry[T]) Register(v T) {
	n := r.name(v)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.items[n]; dup {
		panic(fmt.Sprintf("%s %q registered twice", r.kind, n))
	}
	r.items[n] = v
}

// Lookup returns the value registered under name.
func (r *Registry[T]) Lookup(name string) (T, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	v, ok := r.items[name]
	return v, ok
}

// All returns every registered value, sorted by name.
func (r *Registry[T]) All() []T {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.items))
	for n := range r.items {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]T, len(names))
	for i, n := range names {
		out[i] = r.items[n]
	}
	return out
}
