package shard

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/clock"
)

const ttl = 30 * time.Second

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newLeaser(t *testing.T, dir, owner string, clk clock.Clock) *Leaser {
	t.Helper()
	l, err := NewLeaser(dir, owner, ttl, clk)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func acquire(t *testing.T, l *Leaser, key string) bool {
	t.Helper()
	ok, err := l.TryAcquire(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func holder(t *testing.T, l *Leaser, key string) string {
	t.Helper()
	le, ok, err := l.Holder(key)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return ""
	}
	return le.Owner
}

// leftovers lists files other than lease generations: temporary files
// must not pile up.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !strings.HasSuffix(path, ".json") {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestTwoLeasersContend(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "leases")
	fc := clock.NewFake(t0)
	a, b := newLeaser(t, dir, "replica-0", fc), newLeaser(t, dir, "replica-1", fc)
	if !acquire(t, a, "contoso") {
		t.Fatal("a free lease was not acquired")
	}
	if acquire(t, b, "contoso") {
		t.Fatal("b acquired a lease a holds")
	}
	if !acquire(t, b, "fabrikam") {
		t.Fatal("b could not take another tenant")
	}
	if h := holder(t, b, "contoso"); h != "replica-0" {
		t.Fatalf("Holder = %q", h)
	}
	if got := a.Held(); len(got) != 1 || got[0] != "contoso" {
		t.Fatalf("a holds %v", got)
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("lease directory mode %v, %v; want 0700", st.Mode().Perm(), err)
	}
	st, err = os.Stat(filepath.Join(dir, "contoso.lease"))
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("key directory mode %v, %v; want 0700", st.Mode().Perm(), err)
	}
	st, err = os.Stat(filepath.Join(dir, "contoso.lease", "00000000000000000001.json"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("lease file mode %v, %v; want 0600", st.Mode().Perm(), err)
	}
}

func TestRenewalKeepsTheLease(t *testing.T) {
	dir := t.TempDir()
	fc := clock.NewFake(t0)
	a, b := newLeaser(t, dir, "replica-0", fc), newLeaser(t, dir, "replica-1", fc)
	acquire(t, a, "contoso")
	for i := range 10 { // 10 × ttl/3: more than three ttls
		fc.Advance(ttl / 3)
		if err := a.Renew(context.Background(), "contoso"); err != nil {
			t.Fatalf("renewal %d: %v", i, err)
		}
		if acquire(t, b, "contoso") {
			t.Fatalf("b took a lease renewed in time (renewal %d)", i)
		}
	}
	le, _, err := a.Holder("contoso")
	if err != nil || !le.Expires.Equal(fc.Now().Add(ttl)) || !le.Acquired.Equal(t0) {
		t.Fatalf("after renewals: %+v, %v; want acquired at start, expiring a ttl from now", le, err)
	}
	if err := b.Renew(context.Background(), "contoso"); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("renewing a lease not held = %v, want ErrNotHeld", err)
	}
	if l := leftovers(t, dir); len(l) != 0 {
		t.Fatalf("left behind: %v", l)
	}
}

func TestExpiredLeaseIsTakenOver(t *testing.T) {
	dir := t.TempDir()
	fc := clock.NewFake(t0)
	dead, b := newLeaser(t, dir, "replica-0", fc), newLeaser(t, dir, "replica-1", fc)
	acquire(t, dead, "contoso")
	fc.Advance(ttl - time.Second)
	if acquire(t, b, "contoso") {
		t.Fatal("taken over before it expired")
	}
	fc.Advance(time.Second) // kill -9: nobody renewed it
	if !acquire(t, b, "contoso") {
		t.Fatal("an expired lease was not taken over")
	}
	if h := holder(t, b, "contoso"); h != "replica-1" {
		t.Fatalf("Holder = %q after the take-over", h)
	}
	err := dead.Renew(context.Background(), "contoso")
	if !errors.Is(err, ErrLost) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("renewing after expiry = %v, want ErrLost (expired)", err)
	}
	if len(dead.Held()) != 0 {
		t.Fatal("a lost lease is still listed as held")
	}
	if l := leftovers(t, dir); len(l) != 0 {
		t.Fatalf("left behind: %v", l)
	}
}

// TestRenewalFindsAnotherOwner: a replica whose clock runs ahead took the
// lease while its holder still thought it valid; the holder's next renewal
// reports the loss and does not write.
func TestRenewalFindsAnotherOwner(t *testing.T) {
	dir := t.TempDir()
	slow, fast := clock.NewFake(t0), clock.NewFake(t0.Add(ttl+time.Second))
	a, b := newLeaser(t, dir, "replica-0", slow), newLeaser(t, dir, "replica-1", fast)
	acquire(t, a, "contoso")
	if !acquire(t, b, "contoso") {
		t.Fatal("b, whose clock is past the expiry, did not take the lease")
	}
	slow.Advance(ttl / 3)
	err := a.Renew(context.Background(), "contoso")
	if !errors.Is(err, ErrLost) || !strings.Contains(err.Error(), `held by "replica-1"`) {
		t.Fatalf("Renew = %v; want ErrLost naming replica-1", err)
	}
	if h := holder(t, a, "contoso"); h != "replica-1" {
		t.Fatalf("the losing renewal overwrote the lease: holder %q", h)
	}
}

func TestRelease(t *testing.T) {
	dir := t.TempDir()
	fc := clock.NewFake(t0)
	a, b := newLeaser(t, dir, "replica-0", fc), newLeaser(t, dir, "replica-1", fc)
	ctx := context.Background()
	acquire(t, a, "contoso")
	acquire(t, a, "fabrikam")
	if err := a.Release(ctx, "contoso"); err != nil {
		t.Fatal(err)
	}
	if h := holder(t, b, "contoso"); h != "" {
		t.Fatalf("released lease still held by %q", h)
	}
	if !acquire(t, b, "contoso") {
		t.Fatal("a released lease could not be taken at once")
	}
	if err := a.Release(ctx, "contoso"); err != nil {
		t.Fatalf("releasing a lease not held = %v, want nil", err)
	}
	if h := holder(t, b, "contoso"); h != "replica-1" {
		t.Fatalf("a's second Release removed b's lease: holder %q", h)
	}

	// a's lease on fabrikam expires and b takes it; a's release must not
	// remove b's lease.
	fc.Advance(ttl)
	if !acquire(t, b, "fabrikam") {
		t.Fatal("expired lease not taken over")
	}
	if err := a.ReleaseAll(ctx); err != nil {
		t.Fatal(err)
	}
	if h := holder(t, b, "fabrikam"); h != "replica-1" {
		t.Fatalf("a released b's lease: holder %q", h)
	}
	if l := leftovers(t, dir); len(l) != 0 {
		t.Fatalf("left behind: %v", l)
	}
}

// TestConcurrentTakeOver: many replicas find the same expired lease at
// once; exactly one takes it, every round.
func TestConcurrentTakeOver(t *testing.T) {
	dir := t.TempDir()
	fc := clock.NewFake(t0)
	const replicas = 16
	ls := make([]*Leaser, replicas)
	for i := range ls {
		ls[i] = newLeaser(t, dir, fmt.Sprintf("replica-%d", i), fc)
	}
	for round := range 30 {
		// Round 0: no lease yet. Later rounds: the last winner died.
		fc.Advance(ttl)
		var wg sync.WaitGroup
		start := make(chan struct{})
		won := make([]bool, replicas)
		for i, l := range ls {
			wg.Go(func() {
				<-start
				ok, err := l.TryAcquire(context.Background(), "contoso")
				if err != nil {
					t.Error(err)
				}
				won[i] = ok
			})
		}
		close(start)
		wg.Wait()
		var winners []int
		for i, ok := range won {
			if ok {
				winners = append(winners, i)
			}
		}
		if len(winners) != 1 {
			t.Fatalf("round %d: %d replicas hold the lease: %v", round, len(winners), winners)
		}
		if h := holder(t, ls[0], "contoso"); h != fmt.Sprintf("replica-%d", winners[0]) {
			t.Fatalf("round %d: replica-%d won but the file names %q", round, winners[0], h)
		}
		for i, l := range ls { // the losers do not think they hold it
			if i != winners[0] && len(l.Held()) != 0 {
				t.Fatalf("round %d: loser replica-%d lists %v", round, i, l.Held())
			}
		}
		for i, l := range ls { // reset: only the file decides the next round
			if i != winners[0] {
				continue
			}
			l.forget("contoso")
		}
	}
	if l := leftovers(t, dir); len(l) != 0 {
		t.Fatalf("left behind: %v", l)
	}
}

// TestGenerations: each take-over creates the next generation and removes
// all but the previous one, whose number stays taken.
func TestGenerations(t *testing.T) {
	dir := t.TempDir()
	fc := clock.NewFake(t0)
	ls := []*Leaser{newLeaser(t, dir, "replica-0", fc), newLeaser(t, dir, "replica-1", fc)}
	kdir := filepath.Join(dir, "contoso.lease")
	for i := range 4 {
		if !acquire(t, ls[i%2], "contoso") {
			t.Fatalf("take-over %d failed", i)
		}
		gens, err := generations(kdir)
		if err != nil {
			t.Fatal(err)
		}
		want := []uint64{uint64(i), uint64(i + 1)}
		if i == 0 {
			want = want[1:]
		}
		if !slices.Equal(gens, want) {
			t.Fatalf("after take-over %d: generations %v, want %v", i, gens, want)
		}
		fc.Advance(ttl) // the holder dies
	}
}

func TestRestartedReplicaTakesItsOwnLeaseBack(t *testing.T) {
	dir := t.TempDir()
	fc := clock.NewFake(t0)
	before := newLeaser(t, dir, "replica-0", fc)
	acquire(t, before, "contoso")
	fc.Advance(5 * time.Second)
	after := newLeaser(t, dir, "replica-0", fc) // same pod name after kill -9
	if !acquire(t, after, "contoso") {
		t.Fatal("the restarted replica waits for its own lease")
	}
	le, _, _ := after.Holder("contoso")
	if !le.Expires.Equal(fc.Now().Add(ttl)) {
		t.Fatalf("taking it back did not renew it: %+v", le)
	}
	if err := after.Renew(context.Background(), "contoso"); err != nil {
		t.Fatal(err)
	}
}

func TestUnreadableLeaseCountsAsHeldForATTL(t *testing.T) {
	dir := t.TempDir()
	fc := clock.NewFake(t0)
	b := newLeaser(t, dir, "replica-1", fc)
	path := filepath.Join(dir, "contoso.lease", "00000000000000000001.json")
	// A holder died between creating its lease file and writing it.
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, t0, t0); err != nil {
		t.Fatal(err)
	}
	if acquire(t, b, "contoso") {
		t.Fatal("an empty lease file younger than the ttl was taken")
	}
	if _, held, err := b.Holder("contoso"); !held || err == nil {
		t.Fatalf("Holder of an empty file = %v, %v; want held and an error", held, err)
	}
	fc.Advance(ttl + time.Second)
	if !acquire(t, b, "contoso") {
		t.Fatal("an empty lease file older than the ttl was not taken over")
	}
}

func TestKeepRenewsAndReportsLoss(t *testing.T) {
	dir := t.TempDir()
	fc := clock.NewFake(t0)
	a := newLeaser(t, dir, "replica-0", fc)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	acquire(t, a, "contoso")
	lost := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.Keep(ctx, func(key string, err error) { lost <- err })
	}()
	for range 6 { // two ttls of renewals
		if err := fc.BlockUntil(ctx, 1); err != nil {
			t.Fatal(err)
		}
		fc.Advance(ttl / 3)
	}
	if err := fc.BlockUntil(ctx, 1); err != nil { // the last renewal is done
		t.Fatal(err)
	}
	if le, _, _ := a.Holder("contoso"); !le.Expires.Equal(fc.Now().Add(ttl)) {
		t.Fatalf("Keep did not renew: expires %v, now %v", le.Expires, fc.Now())
	}
	// Another replica, whose clock runs ahead, took it over.
	other := marshal(Lease{Owner: "replica-1", Acquired: fc.Now(), Expires: fc.Now().Add(ttl), Token: "x"})
	if err := os.WriteFile(filepath.Join(dir, "contoso.lease", "00000000000000000002.json"), other, 0o600); err != nil {
		t.Fatal(err)
	}
	fc.Advance(ttl / 3)
	if err := <-lost; !errors.Is(err, ErrLost) {
		t.Fatalf("Keep reported %v, want ErrLost", err)
	}
	cancel()
	<-done
}

func TestLeaseKeysStayInTheDirectory(t *testing.T) {
	dir := t.TempDir()
	l := newLeaser(t, dir, "replica-0", clock.NewFake(t0))
	for _, key := range []string{"../../etc/passwd", ".hidden", "a/b", "tenant with spaces", "ÄÖ"} {
		if !acquire(t, l, key) {
			t.Fatalf("%q not acquired", key)
		}
		if h := holder(t, l, key); h != "replica-0" {
			t.Fatalf("%q: holder %q", key, h)
		}
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") || !strings.HasSuffix(e.Name(), ".lease") {
			t.Fatalf("a key escaped its name: %q", e.Name())
		}
	}
	if len(ents) != 5 {
		t.Fatalf("%d files for 5 keys", len(ents))
	}
	for _, key := range []string{"", strings.Repeat("x", 201), strings.Repeat("/", 70)} {
		if _, err := l.TryAcquire(context.Background(), key); err == nil {
			t.Fatalf("key of %d bytes accepted", len(key))
		}
	}
}

func TestNewLeaserRejectsBadSettings(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		dir, owner string
		ttl        time.Duration
		want       string
	}{
		{"", "r", ttl, "no lease directory"},
		{dir, "", ttl, "owner id"},
		{dir, "  ", ttl, "owner id"},
		{dir, "r", time.Second, "shorter than the minimum"},
		{filepath.Join(dir, "file", "sub"), "r", ttl, "cannot create"},
	} {
		if tt.want == "cannot create" {
			if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := NewLeaser(tt.dir, tt.owner, tt.ttl, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewLeaser(%q, %q, %s) = %v; want an error saying %q", tt.dir, tt.owner, tt.ttl, err, tt.want)
		}
	}
}

// pausingClock moves forward by step at every reading: a process paused
// in the middle of an acquisition.
type pausingClock struct {
	*clock.Fake
	step time.Duration
}

func (p pausingClock) Now() time.Time {
	p.Advance(p.step)
	return p.Fake.Now()
}

// TestPausedAcquisitionGivesUp: an acquisition that took longer than
// ttl/3 between looking and creating may have raced a take-over it could
// not see; it gives up and leaves the lease released for the next one.
func TestPausedAcquisitionGivesUp(t *testing.T) {
	dir := t.TempDir()
	fc := clock.NewFake(t0)
	slow := newLeaser(t, dir, "replica-0", pausingClock{fc, ttl / 2})
	if acquire(t, slow, "contoso") {
		t.Fatal("an acquisition paused for half a ttl succeeded")
	}
	if len(slow.Held()) != 0 {
		t.Fatal("the paused leaser lists the lease")
	}
	if h := holder(t, slow, "contoso"); h != "" {
		t.Fatalf("the abandoned lease is held by %q; it must be released", h)
	}
	if !acquire(t, newLeaser(t, dir, "replica-1", fc), "contoso") {
		t.Fatal("the next replica could not take the abandoned lease at once")
	}
}
