package shard

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/clock"
)

func tenants(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("customer-%04d", i)
	}
	return out
}

// TestEveryTenantHasExactlyOneReplica for 1 to 16 replicas, and growing
// by one replica moves about 1/(N+1) of the tenants — all to the new one.
func TestEveryTenantHasExactlyOneReplica(t *testing.T) {
	names := tenants(2000)
	for n := 1; n <= 16; n++ {
		load := make([]int, n)
		for _, name := range names {
			owners := 0
			for i := 0; i < n; i++ {
				if Owns(name, i, n) {
					owners++
					load[i]++
				}
			}
			if owners != 1 {
				t.Fatalf("%s has %d owners among %d replicas", name, owners, n)
			}
		}
		// Each replica holds its share within a generous margin.
		for i, l := range load {
			share := float64(len(names)) / float64(n)
			if math.Abs(float64(l)-share) > 0.25*share+10 {
				t.Errorf("%d replicas: replica %d owns %d tenants, expected about %.0f", n, i, l, share)
			}
		}
		if n == 16 {
			break
		}
		moved, wrong := 0, 0
		for _, name := range names {
			before, after := Owner(name, n), Owner(name, n+1)
			if before != after {
				moved++
				if after != n {
					wrong++
				}
			}
		}
		want := float64(len(names)) / float64(n+1)
		t.Logf("%2d → %2d replicas: %4d of %d tenants move (%.1f%%, ideal %.1f%%)", n, n+1, moved, len(names),
			100*float64(moved)/float64(len(names)), 100/float64(n+1))
		if wrong > 0 {
			t.Errorf("%d → %d: %d tenants moved between old replicas", n, n+1, wrong)
		}
		if math.Abs(float64(moved)-want) > 0.25*want+10 {
			t.Errorf("%d → %d: %d tenants moved, expected about %.0f", n, n+1, moved, want)
		}
	}
}

// TestOwnersArePinned: the hash decides where tenants' state lives; a
// change to it (or to the algorithm) would move tenants on upgrade.
func TestOwnersArePinned(t *testing.T) {
	pinned := map[string][2]int{ // name → owner of 3 and of 10 replicas
		"contoso":     {Owner("contoso", 3), Owner("contoso", 10)},
		"fabrikam":    {Owner("fabrikam", 3), Owner("fabrikam", 10)},
		"customer-42": {Owner("customer-42", 3), Owner("customer-42", 10)},
	}
	golden := map[string][2]int{"contoso": {2, 2}, "fabrikam": {1, 6}, "customer-42": {1, 1}}
	for name, want := range golden {
		if got := pinned[name]; got != want {
			t.Errorf("%s: owners %v, pinned %v — the hash or the algorithm changed", name, got, want)
		}
	}
	if h := Hash("contoso"); h != 0xbc076b507496940 {
		t.Errorf("FNV-1a(contoso) = %#x", h)
	}
}

func TestParseIndex(t *testing.T) {
	cases := []struct {
		in, host string
		want     int
		err      bool
	}{
		{"0", "", 0, false},
		{"7", "", 7, false},
		{"auto", "defenderharvester-3", 3, false},
		{"auto", "dh-eu-12", 12, false},
		{"auto", "laptop", 0, true},
		{"auto", "pod-", 0, true},
		{"-1", "", 0, true},
		{"two", "", 0, true},
	}
	for _, c := range cases {
		got, err := ParseIndex(c.in, c.host)
		if (err != nil) != c.err || (!c.err && got != c.want) {
			t.Errorf("ParseIndex(%q, %q) = %d, %v", c.in, c.host, got, err)
		}
	}
}

func leasers(t *testing.T, fake *clock.Fake, names ...string) []*Leaser {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "leases")
	var out []*Leaser
	for _, n := range names {
		l, err := NewLeaser(dir, n, time.Minute, fake)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, l)
	}
	return out
}

func TestLeaseIsHeldByOneReplica(t *testing.T) {
	ctx := context.Background()
	fake := clock.NewFake(time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC))
	ls := leasers(t, fake, "a", "b")
	a, b := ls[0], ls[1]
	if ok, err := a.TryAcquire(ctx, "contoso"); !ok || err != nil {
		t.Fatalf("a: %v %v", ok, err)
	}
	if ok, err := b.TryAcquire(ctx, "contoso"); ok || err != nil {
		t.Fatalf("b took a held lease: %v %v", ok, err)
	}
	if h, _ := b.Holder("contoso"); h != "a" {
		t.Errorf("holder %q", h)
	}
	// Renewals keep it past its first expiry.
	for i := 0; i < 5; i++ {
		fake.Advance(20 * time.Second)
		if err := a.Renew(ctx, "contoso"); err != nil {
			t.Fatal(err)
		}
		if ok, _ := b.TryAcquire(ctx, "contoso"); ok {
			t.Fatal("b took a lease that was being renewed")
		}
	}
	// Released: b takes it at once.
	if err := a.Release("contoso"); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.TryAcquire(ctx, "contoso"); !ok || err != nil {
		t.Fatalf("b after release: %v %v", ok, err)
	}
	// a's late renewal learns it lost the tenant.
	if err := a.Renew(ctx, "contoso"); !errors.Is(err, ErrLost) {
		t.Fatalf("a renewed a lease b holds: %v", err)
	}
	// a's release does not remove b's lease.
	if err := a.Release("contoso"); err != nil {
		t.Fatal(err)
	}
	if h, _ := a.Holder("contoso"); h != "b" {
		t.Errorf("holder after a's release: %q", h)
	}
}

// TestExpiredLeaseIsTakenOver: a holder that died (no renewals) loses the
// lease once it expired, not before; then it learns it lost it.
func TestExpiredLeaseIsTakenOver(t *testing.T) {
	ctx := context.Background()
	fake := clock.NewFake(time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC))
	ls := leasers(t, fake, "dead", "next")
	dead, next := ls[0], ls[1]
	if ok, _ := dead.TryAcquire(ctx, "t1"); !ok {
		t.Fatal("first acquire failed")
	}
	fake.Advance(59 * time.Second)
	if ok, _ := next.TryAcquire(ctx, "t1"); ok {
		t.Fatal("taken before expiry")
	}
	fake.Advance(2 * time.Second)
	if ok, err := next.TryAcquire(ctx, "t1"); !ok || err != nil {
		t.Fatalf("not taken after expiry: %v %v", ok, err)
	}
	if err := dead.Renew(ctx, "t1"); !errors.Is(err, ErrLost) {
		t.Fatalf("the old holder renewed: %v", err)
	}
}

// TestConcurrentTakeoverHasOneWinner: many replicas find the same expired
// lease at once; exactly one gets it.
func TestConcurrentTakeoverHasOneWinner(t *testing.T) {
	ctx := context.Background()
	for round := 0; round < 20; round++ {
		fake := clock.NewFake(time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC))
		names := []string{"old"}
		for i := 0; i < 12; i++ {
			names = append(names, fmt.Sprintf("r%d", i))
		}
		ls := leasers(t, fake, names...)
		if ok, _ := ls[0].TryAcquire(ctx, "t"); !ok {
			t.Fatal("setup")
		}
		fake.Advance(2 * time.Minute)
		var winners atomic.Int32
		var wg sync.WaitGroup
		for _, l := range ls[1:] {
			wg.Go(func() {
				if ok, err := l.TryAcquire(ctx, "t"); err != nil {
					t.Error(err)
				} else if ok {
					winners.Add(1)
				}
			})
		}
		wg.Wait()
		if w := winners.Load(); w != 1 {
			t.Fatalf("round %d: %d replicas took the same lease", round, w)
		}
		leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(lsPath(t, ls[1], "t")), "*.stale-*"))
		if len(leftovers) != 0 {
			t.Fatalf("stale files left behind: %v", leftovers)
		}
	}
}

func lsPath(t *testing.T, l *Leaser, key string) string {
	t.Helper()
	p, err := l.path(key)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestUnreadableLeaseExpiresByItsAge: a lease file cut short (its creator
// died while writing) blocks others only for a time to live.
func TestUnreadableLeaseExpiresByItsAge(t *testing.T) {
	ctx := context.Background()
	fake := clock.NewFake(time.Now())
	l := leasers(t, fake, "b")[0]
	p := lsPath(t, l, "t")
	if err := os.WriteFile(p, []byte(`{"own`), 0o600); err != nil {
		t.Fatal(err)
	}
	if ok, _ := l.TryAcquire(ctx, "t"); ok {
		t.Fatal("a fresh half-written lease was taken over")
	}
	fake.Advance(2 * time.Minute)
	if ok, err := l.TryAcquire(ctx, "t"); !ok || err != nil {
		t.Fatalf("an old unreadable lease was not taken over: %v %v", ok, err)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Errorf("lease mode %v", st.Mode().Perm())
	}
}

func TestLeaseNamesAreChecked(t *testing.T) {
	l := leasers(t, clock.NewFake(time.Now()), "a")[0]
	for _, bad := range []string{"../etc/passwd", "", "a/b", ".hidden"} {
		if _, err := l.TryAcquire(context.Background(), bad); err == nil {
			t.Errorf("%q accepted as a lease name", bad)
		}
	}
}
