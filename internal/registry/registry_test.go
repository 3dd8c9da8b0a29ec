package registry

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

type factory struct{ name, desc string }

func newReg() *Registry[factory] {
	return New("widget", func(f factory) string { return f.name })
}

func TestRegisterLookupAll(t *testing.T) {
	r := newReg()
	for _, n := range []string{"stdout", "file", "alpha"} {
		r.Register(factory{name: n, desc: "d-" + n})
	}
	if f, ok := r.Lookup("file"); !ok || f.desc != "d-file" {
		t.Errorf("Lookup(file) = %+v, %v", f, ok)
	}
	if _, ok := r.Lookup("missing"); ok {
		t.Error("Lookup of an unregistered name succeeded")
	}
	var names []string
	for _, f := range r.All() {
		names = append(names, f.name)
	}
	if got := strings.Join(names, ","); got != "alpha,file,stdout" {
		t.Errorf("All() = %s, want sorted by name", got)
	}
	if len(newReg().All()) != 0 {
		t.Error("empty registry lists values")
	}
}

func TestDuplicatePanicsNamingKindAndName(t *testing.T) {
	r := newReg()
	r.Register(factory{name: "file"})
	defer func() {
		msg := fmt.Sprint(recover())
		if !strings.Contains(msg, `widget "file" registered twice`) {
			t.Errorf("panic = %q", msg)
		}
		if f, _ := r.Lookup("file"); f.desc != "" {
			t.Error("duplicate replaced the first registration")
		}
	}()
	r.Register(factory{name: "file", desc: "second"})
}

// Registration and lookups may run concurrently (go test -race).
func TestConcurrentUse(t *testing.T) {
	r := newReg()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(2)
		go func() { defer wg.Done(); r.Register(factory{name: fmt.Sprint(i)}) }()
		go func() { defer wg.Done(); r.Lookup(fmt.Sprint(i)); r.All() }()
	}
	wg.Wait()
	if len(r.All()) != 20 {
		t.Errorf("%d registered, want 20", len(r.All()))
	}
}
