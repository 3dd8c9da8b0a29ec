// Package srctest gives source tests real API clients wired to a loopback
// fake through the emulator transport, so tests exercise the production
// request path (host allow-list, auth headers, error checks).
package srctest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/auth"
	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/source"
)

func opts(t *testing.T, h http.Handler) mde.ClientOptions {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	rt, err := mde.NewTransport(mde.TransportOptions{EmulatorAddress: srv.Listener.Addr().String(), Plaintext: true})
	if err != nil {
		t.Fatal(err)
	}
	return mde.ClientOptions{
		Transport: rt, MaxAttempts: 2, Limiter: mde.Limiters{},
		Sleep: func(ctx context.Context, _ time.Duration) error { return ctx.Err() },
	}
}

// Portal returns a portal client whose requests reach h.
func Portal(t *testing.T, h http.Handler) *mde.PortalClient {
	t.Helper()
	sess, err := auth.NewStaticCookies("test-sccauth", "test-xsrf")
	if err != nil {
		t.Fatal(err)
	}
	c, err := mde.NewPortalClient(mde.PortalOptions{Session: sess, ClientOptions: opts(t, h)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Public returns a public API client whose requests reach h.
func Public(t *testing.T, h http.Handler) *mde.PublicAPIClient {
	t.Helper()
	c, err := mde.NewPublicAPIClient(mde.PublicOptions{Tokens: auth.NewStaticToken("test-token"), ClientOptions: opts(t, h)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Collector gathers emitted items.
type Collector struct {
	mu    sync.Mutex
	Items []source.Item
}

// Emit appends it.
func (c *Collector) Emit(_ context.Context, it source.Item) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Items = append(c.Items, it)
	return nil
}

// Keys returns the emitted keys in order.
func (c *Collector) Keys() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Keys(c.Items)
}

// Keys returns the keys of items in order.
func Keys(items []source.Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.Key
	}
	return out
}

// Build looks up a registered source and builds it with cfg (nil: its
// defaults), failing the test on error.
func Build(t *testing.T, name string, deps source.Deps, mod func(cfg any)) source.Source {
	t.Helper()
	f, ok := source.Lookup(name)
	if !ok {
		t.Fatalf("source %q not registered", name)
	}
	var cfg any
	if f.NewConfig != nil {
		cfg = f.NewConfig()
		if mod != nil {
			mod(cfg)
		}
	}
	s, err := f.New(deps, cfg)
	if err != nil {
		t.Fatalf("building %s: %v", name, err)
	}
	return s
}
