package mde

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/defenderharvester/defenderharvester/internal/auth"
)

// rotatingTokens hands out tok1, tok2, … and records invalidations.
type rotatingTokens struct {
	mu          sync.Mutex
	n           int
	cur         string
	invalidated []string
}

func (r *rotatingTokens) Token(context.Context) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur == "" {
		r.n++
		r.cur = fmt.Sprintf("tok%d", r.n)
	}
	return r.cur, nil
}

func (r *rotatingTokens) Invalidate(tok string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.invalidated = append(r.invalidated, tok)
	if tok == r.cur {
		r.cur = ""
	}
}

var _ auth.Invalidator = (*rotatingTokens)(nil)

// TestPublic401DropsTheTokenAndRetriesOnce: a 401 to a token the source
// can drop (a cached token the API no longer accepts) makes the client
// invalidate exactly that token and send the request once more with a new
// one; a second 401 is final (no loop), and a source that cannot drop
// tokens keeps the old behaviour (one request, the 401 error).
func TestPublic401DropsTheTokenAndRetriesOnce(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []string
		good = map[string]bool{"tok2": true}
	)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		ok := good[r.Header.Get("Authorization")[len("Bearer "):]]
		mu.Unlock()
		if !ok {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(401)
			fmt.Fprint(w, `{"error":{"code":"Unauthorized","message":"token expired"}}`)
			return
		}
		fmt.Fprint(w, `{"value":[]}`)
	})
	ts := &rotatingTokens{}
	c, _ := newTestPublic(t, h, func(o *PublicOptions) { o.Tokens = ts })
	if _, err := c.Get(context.Background(), "/api/machineactions", nil); err != nil {
		t.Fatalf("the retry with a new token failed: %v", err)
	}
	if len(seen) != 2 || seen[0] != "Bearer tok1" || seen[1] != "Bearer tok2" {
		t.Fatalf("requests carried %q, want tok1 then tok2", seen)
	}
	if len(ts.invalidated) != 1 || ts.invalidated[0] != "tok1" {
		t.Fatalf("invalidated %q, want [tok1]", ts.invalidated)
	}

	// Every token refused: two requests, then the 401 as before.
	seen, good = nil, map[string]bool{}
	_, err := c.Get(context.Background(), "/api/machineactions", nil)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 401 || !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("err = %v, want the 401 APIError", err)
	}
	if len(seen) != 2 {
		t.Fatalf("%d requests after repeated 401s, want 2 (one retry, no loop)", len(seen))
	}

	// A static token cannot be renewed: one request, the 401.
	seen = nil
	c2, _ := newTestPublic(t, h, nil)
	if _, err := c2.Get(context.Background(), "/api/machineactions", nil); !errors.As(err, &ae) || ae.Status != 401 {
		t.Fatalf("static token: err = %v, want 401", err)
	}
	if len(seen) != 1 {
		t.Fatalf("static token: %d requests, want 1", len(seen))
	}
}

// TestLegacy401DropsTheTokenAndRetriesOnce: the legacy hosts take the
// public_api credential's tokens too; a refused one is dropped and
// replaced once, like on the public API.
func TestLegacy401DropsTheTokenAndRetriesOnce(t *testing.T) {
	var seen []string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.Header.Get("Authorization"))
		if r.Header.Get("Authorization") != "Bearer tok2" {
			w.WriteHeader(401)
			fmt.Fprint(w, `{"Message":"Authorization has been denied for this request."}`)
			return
		}
		fmt.Fprint(w, `{}`)
	})
	ts := &rotatingTokens{}
	c, err := NewLegacyClient(LegacyOptions{Location: "weu", Tokens: ts, ClientOptions: ClientOptions{
		Transport: plainServer(t, h), Sleep: (&sleeps{}).sleep, Limiter: &countLimiter{}, MaxAttempts: 2,
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(context.Background(), "/apiproxy/mtp/huntingService/schema", nil); err != nil {
		t.Fatalf("the retry with a new token failed: %v", err)
	}
	if len(seen) != 2 || len(ts.invalidated) != 1 || ts.invalidated[0] != "tok1" {
		t.Fatalf("requests %q, invalidated %q; want tok1 refused and dropped, tok2 accepted", seen, ts.invalidated)
	}
}
