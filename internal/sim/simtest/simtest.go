// Package simtest starts the emulated tenant for tests: one call instead
// of the same setup in every package that tests against it.
package simtest

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/defenderharvester/defenderharvester/internal/sim"
)

// Start builds the emulated tenant(s) of opts, serves them on loopback
// TLS until the test ends, and writes the emulator's CA certificate into
// dir (a new temporary folder when empty). It returns the tenant, its
// server and the CA file's path.
func Start(t testing.TB, opts sim.Options, dir string) (*sim.Tenant, *sim.Server, string) {
	t.Helper()
	tenant, err := sim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := tenant.Serve("127.0.0.1:0", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	if dir == "" {
		dir = t.TempDir()
	}
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, tenant.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return tenant, srv, ca
}

// Get fetches url (the harvester's own endpoints in tests) and returns
// the status and body.
func Get(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
