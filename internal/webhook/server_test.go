package webhook

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestServerRoutesEachTenantsPath: one port serves every tenant, each on
// its own path with its own AuthID; a notification reaches only the
// listener of its path, an unmounted path is 404, two tenants cannot
// share a path.
func TestServerRoutesEachTenantsPath(t *testing.T) {
	s, err := NewServer(ServerOptions{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	a := newListener(t, func(o *Options) { o.Path = "/o365/a" })
	b := newListener(t, func(o *Options) { o.Path = "/o365/b"; o.AuthID = "another-secret" })
	unmountA, err := s.Mount(a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mount(b); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mount(newListener(t, func(o *Options) { o.Path = "/o365/a" })); err == nil || !strings.Contains(err.Error(), "{tenant}") {
		t.Fatalf("a second listener on a taken path: %v; want an error pointing at {tenant}", err)
	}

	body := mustJSON(t, items(0, 3))
	if w := do(s, req{path: "/o365/a", auth: testAuth, body: body}); w.Code != http.StatusOK {
		t.Fatalf("tenant a: %d %s", w.Code, w.Body)
	}
	// b's AuthID differs: a's secret does not open b's path.
	if w := do(s, req{path: "/o365/b", auth: testAuth, body: body}); w.Code != http.StatusForbidden {
		t.Fatalf("tenant b with a's AuthID: %d, want 403", w.Code)
	}
	if w := do(s, req{path: "/o365/c", auth: testAuth, body: body}); w.Code != http.StatusNotFound || s.NotFound() != 1 {
		t.Fatalf("unmounted path: %d (not found %d), want 404 counted once", w.Code, s.NotFound())
	}
	if n := len(drain(a)); n != 3 {
		t.Fatalf("tenant a queued %d notifications, want 3", n)
	}
	if n := len(drain(b)); n != 0 {
		t.Fatalf("tenant b queued %d notifications, want 0", n)
	}
	unmountA()
	if w := do(s, req{path: "/o365/a", auth: testAuth, body: body}); w.Code != http.StatusNotFound {
		t.Fatalf("after unmount: %d, want 404", w.Code)
	}
	if _, err := s.Mount(newListener(t, func(o *Options) { o.Path = "/o365/a" })); err != nil {
		t.Fatalf("the path of an unmounted tenant cannot be reused: %v", err)
	}
}

// TestServerServesOverTheNetwork: Start listens, requests reach the
// mounted listener, Shutdown stops it.
func TestServerServesOverTheNetwork(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(ServerOptions{Listener: ln})
	if err != nil {
		t.Fatal(err)
	}
	l := newListener(t, func(o *Options) { o.Path = "/hook" })
	if _, err := s.Mount(l); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	rq, _ := http.NewRequest(http.MethodPost, "http://"+s.Addr().String()+"/hook", strings.NewReader(`{"validationCode":"x"}`))
	rq.Header.Set("Content-Type", "application/json")
	rq.Header.Set(HeaderAuthID, testAuth)
	res, err := http.DefaultClient.Do(rq)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK || l.Stats().Validations != 1 {
		t.Fatalf("validation over the network: %d, validations %d", res.StatusCode, l.Stats().Validations)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := http.DefaultClient.Do(rq); err == nil {
		t.Fatal("the server still answers after Shutdown")
	}
	if _, err := NewServer(ServerOptions{}); err == nil {
		t.Fatal("a server without an address was built")
	}
}
