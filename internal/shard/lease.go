package shard

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/clock"
)

// MinTTL is the shortest lease accepted: renewals every ttl/3 must outlast
// a slow shared file system.
const MinTTL = 3 * time.Second

// Lease is the content of a lease file (JSON).
type Lease struct {
	Owner    string    `json:"owner"`
	Acquired time.Time `json:"acquired"`
	Expires  time.Time `json:"expires"`
	Released bool      `json:"released,omitempty"`
	// Token is new for every acquisition and kept by renewals.
	Token string `json:"token"`
}

// Leaser takes, keeps and gives back leases on keys (tenants) in a
// directory shared by every replica. A replica harvests a tenant only
// while it holds its lease, so during a handover the new owner waits until
// the old one released it, or until it expired because its holder died.
//
// A key's leases are numbered generations, <dir>/<key>.lease/<n>.json;
// the highest is the lease. Taking a free, released or expired lease
// means creating generation n+1 with O_CREATE|O_EXCL: of several replicas
// trying at once exactly one succeeds, and no file anyone may hold is
// ever moved or removed (the winner removes generations below n). Only
// the holder rewrites its generation (renewal: temporary file + rename).
//
// Leases rely on the replicas' clocks agreeing to well within ttl (NTP),
// and on the holder renewing every ttl/3 (Keep). Owner ids must be unique
// among the live replicas (a StatefulSet's pod names are): a lease that
// names this owner and has not expired is taken back at once, so a replica
// restarted after kill -9 does not wait for its own lease.
type Leaser struct {
	dir, owner string
	ttl        time.Duration
	clk        clock.Clock

	op   sync.Mutex // one file operation at a time per leaser
	mu   sync.Mutex
	held map[string]holding
}

type holding struct {
	gen   uint64
	lease Lease // as we last wrote it
}

// NewLeaser returns a leaser for ownerID in dir (created 0700 if
// missing). clk nil means the real clock.
func NewLeaser(dir, ownerID string, ttl time.Duration, clk clock.Clock) (*Leaser, error) {
	switch {
	case dir == "":
		return nil, errors.New("shard: no lease directory; give a directory every replica shares")
	case strings.TrimSpace(ownerID) == "" || len(ownerID) > 256:
		return nil, fmt.Errorf("shard: owner id %q: give a unique name of 1 to 256 characters for this replica (its host name)", ownerID)
	case ttl < MinTTL:
		return nil, fmt.Errorf("shard: lease ttl %s is shorter than the minimum %s; 30s or more suits a network file system", ttl, MinTTL)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("shard: cannot create the lease directory: %w", err)
	}
	if clk == nil {
		clk = clock.Real()
	}
	return &Leaser{dir: dir, owner: ownerID, ttl: ttl, clk: clk, held: map[string]holding{}}, nil
}

// TryAcquire takes the lease on key if it is free, released, expired, or
// already this owner's; it reports false, without error, while another
// replica holds it. When several replicas try at once, exactly one gets
// it.
func (l *Leaser) TryAcquire(ctx context.Context, key string) (bool, error) {
	kdir, err := l.keyDir(key)
	if err != nil {
		return false, err
	}
	l.op.Lock()
	defer l.op.Unlock()
	if err := os.MkdirAll(kdir, 0o700); err != nil {
		return false, fmt.Errorf("shard: lease %s: %w", key, err)
	}
	for range 3 { // another replica created the next generation meanwhile: look again
		if err := ctx.Err(); err != nil {
			return false, err
		}
		start := l.clk.Now()
		gen, cur, err := current(kdir)
		if err != nil {
			return false, fmt.Errorf("shard: lease %s: %w", key, err)
		}
		if gen > 0 {
			if cur.valid && cur.lease.Owner == l.owner && !cur.lease.Released && start.Before(cur.lease.Expires) {
				// Ours: held already, or from before a restart.
				l.remember(key, holding{gen, cur.lease})
				if err := l.renewLocked(key, kdir); err != nil {
					return false, err
				}
				return true, nil
			}
			if !l.stale(cur, start) {
				return false, nil
			}
		}
		le := Lease{Owner: l.owner, Acquired: start, Expires: start.Add(l.ttl), Token: rand.Text()}
		created, err := createExclusive(genPath(kdir, gen+1), marshal(le))
		if err != nil {
			return false, fmt.Errorf("shard: lease %s: cannot create generation %d: %w", key, gen+1, err)
		}
		if !created {
			continue
		}
		// Only a view older than a whole ttl (this process paused) could
		// have missed a newer generation; make sure ours is the last.
		if latest, _, err := current(kdir); err != nil || latest != gen+1 || l.clk.Now().Sub(start) > l.ttl/3 {
			le.Released = true // nobody counts on it: let the next replica have it
			_ = replace(genPath(kdir, gen+1), marshal(le))
			return false, nil
		}
		l.remember(key, holding{gen + 1, le})
		removeBelow(kdir, gen) // keep the previous one: its number stays taken
		return true, nil
	}
	return false, nil
}

// Renew extends a lease this leaser holds by ttl. An error wrapping
// ErrLost means the lease is gone (expired before this renewal, or taken
// by another replica): stop harvesting the tenant. Other errors (the file
// system) are worth another try before the lease expires.
func (l *Leaser) Renew(ctx context.Context, key string) error {
	kdir, err := l.keyDir(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	l.op.Lock()
	defer l.op.Unlock()
	return l.renewLocked(key, kdir)
}

func (l *Leaser) renewLocked(key, kdir string) error {
	l.mu.Lock()
	h, ok := l.held[key]
	l.mu.Unlock()
	if !ok {
		return fmt.Errorf("shard: renew %s: %w by %s", key, ErrNotHeld, l.owner)
	}
	now := l.clk.Now()
	if !now.Before(h.lease.Expires) {
		// Another replica may have taken it over already: never revive it.
		l.forget(key)
		return fmt.Errorf("shard: lease %s: %w: it expired at %s before it was renewed", key, ErrLost, h.lease.Expires.Format(time.RFC3339))
	}
	if err := l.checkLatest(key, kdir, h); err != nil {
		return err
	}
	next := h.lease
	next.Expires = now.Add(l.ttl)
	if err := replace(genPath(kdir, h.gen), marshal(next)); err != nil {
		return fmt.Errorf("shard: renew %s: %w", key, err)
	}
	if err := l.checkLatest(key, kdir, h); err != nil {
		return err
	}
	l.remember(key, holding{h.gen, next})
	return nil
}

// checkLatest returns an ErrLost error, and forgets the lease, when h's
// generation is gone or a newer one exists.
func (l *Leaser) checkLatest(key, kdir string, h holding) error {
	cur, err := readLease(genPath(kdir, h.gen))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		l.forget(key)
		return fmt.Errorf("shard: lease %s: %w: its file is gone", key, ErrLost)
	case err != nil:
		return fmt.Errorf("shard: renew %s: %w", key, err)
	case !cur.valid || cur.lease.Token != h.lease.Token:
		l.forget(key)
		return fmt.Errorf("shard: lease %s: %w: its file was rewritten by another replica", key, ErrLost)
	}
	next, err := readLease(genPath(kdir, h.gen+1))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("shard: renew %s: %w", key, err)
	}
	l.forget(key)
	return fmt.Errorf("shard: lease %s: %w: it is now held by %q", key, ErrLost, next.lease.Owner)
}

// Release gives the lease on key back, marking it released so another
// replica can take it at once. Releasing a lease not held, or one that
// already expired, does nothing.
func (l *Leaser) Release(ctx context.Context, key string) error {
	kdir, err := l.keyDir(key)
	if err != nil {
		return err
	}
	l.op.Lock()
	defer l.op.Unlock()
	l.mu.Lock()
	h, ok := l.held[key]
	l.mu.Unlock()
	if !ok {
		return nil
	}
	l.forget(key)
	if !l.clk.Now().Before(h.lease.Expires) {
		return nil // may be another's already
	}
	cur, err := readLease(genPath(kdir, h.gen))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("shard: release %s: %w", key, err)
	}
	if !cur.valid || cur.lease.Token != h.lease.Token {
		return nil
	}
	done := h.lease
	done.Released, done.Expires = true, l.clk.Now()
	if err := replace(genPath(kdir, h.gen), marshal(done)); err != nil {
		return fmt.Errorf("shard: release %s: %w (it expires by itself at %s)", key, err, h.lease.Expires.Format(time.RFC3339))
	}
	return nil
}

// ReleaseAll releases every lease held, for shutdown.
func (l *Leaser) ReleaseAll(ctx context.Context) error {
	var errs []error
	for _, key := range l.Held() {
		errs = append(errs, l.Release(ctx, key))
	}
	return errors.Join(errs...)
}

// Holder reads the lease on key; false when there is none or it was
// released. An expired lease is returned as it is: compare Expires.
func (l *Leaser) Holder(key string) (Lease, bool, error) {
	kdir, err := l.keyDir(key)
	if err != nil {
		return Lease{}, false, err
	}
	gen, cur, err := current(kdir)
	switch {
	case err != nil:
		return Lease{}, false, fmt.Errorf("shard: lease %s: %w", key, err)
	case gen == 0:
		return Lease{}, false, nil
	case !cur.valid:
		return Lease{}, true, fmt.Errorf("shard: lease %s: %s is not a lease (being written, or damaged; it counts as held until %s old)", key, genPath(kdir, gen), l.ttl)
	}
	return cur.lease, !cur.lease.Released, nil
}

// Held returns the keys this leaser holds, sorted.
func (l *Leaser) Held() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	keys := make([]string, 0, len(l.held))
	for k := range l.held {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Keep renews every held lease each ttl/3 until ctx ends, and calls
// report for each renewal that failed; errors.Is(err, ErrLost) says the
// lease is gone and its tenant must stop. report may call Release or
// TryAcquire.
func (l *Leaser) Keep(ctx context.Context, report func(key string, err error)) {
	for {
		t := l.clk.NewTimer(l.ttl / 3)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
		for _, key := range l.Held() {
			if err := l.Renew(ctx, key); err != nil && ctx.Err() == nil && report != nil {
				report(key, err)
			}
		}
	}
}

func (l *Leaser) remember(key string, h holding) {
	l.mu.Lock()
	l.held[key] = h
	l.mu.Unlock()
}

func (l *Leaser) forget(key string) {
	l.mu.Lock()
	delete(l.held, key)
	l.mu.Unlock()
}

// stale: released, past its expiry, or a file that is no lease (its
// creator died between creating and writing it) older than ttl.
func (l *Leaser) stale(s snapshot, now time.Time) bool {
	if s.valid {
		return s.lease.Released || !now.Before(s.lease.Expires)
	}
	return now.Sub(s.info.ModTime()) > l.ttl
}

// keyDir maps a key to its directory. Bytes outside [A-Za-z0-9._-], and a
// leading dot, are written %XX, so a key can never leave the directory.
func (l *Leaser) keyDir(key string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' && i > 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	if key == "" || b.Len() > 200 {
		return "", fmt.Errorf("shard: lease key %.60q: give the tenant id (1 to 200 bytes, fewer with characters outside A-Z a-z 0-9 . _ -)", key)
	}
	return filepath.Join(l.dir, b.String()+".lease"), nil
}

const genDigits = 20 // fixed width: names sort as numbers

func genPath(kdir string, gen uint64) string {
	return filepath.Join(kdir, fmt.Sprintf("%0*d.json", genDigits, gen))
}

// generations lists the generation numbers present, ascending.
func generations(kdir string) ([]uint64, error) {
	ents, err := os.ReadDir(kdir)
	if err != nil {
		return nil, err
	}
	var gens []uint64
	for _, e := range ents {
		num, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || len(num) != genDigits {
			continue // temporary files, strangers
		}
		if g, err := strconv.ParseUint(num, 10, 64); err == nil {
			gens = append(gens, g)
		}
	}
	slices.Sort(gens)
	return gens, nil
}

// current returns the highest generation (0 when none) and its content.
func current(kdir string) (uint64, snapshot, error) {
	for range 3 {
		gens, err := generations(kdir)
		if errors.Is(err, fs.ErrNotExist) {
			return 0, snapshot{}, nil
		}
		if err != nil {
			return 0, snapshot{}, err
		}
		if len(gens) == 0 {
			return 0, snapshot{}, nil
		}
		gen := gens[len(gens)-1]
		s, err := readLease(genPath(kdir, gen))
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed under a stale listing: list again
		}
		return gen, s, err
	}
	return 0, snapshot{}, errors.New("the lease files keep changing while read; try again")
}

// removeBelow removes the generations below keep. Best effort: a file
// left behind is removed by the next take-over.
func removeBelow(kdir string, keep uint64) {
	gens, _ := generations(kdir)
	for _, g := range gens {
		if g < keep {
			_ = os.Remove(genPath(kdir, g))
		}
	}
}

func marshal(le Lease) []byte {
	data, _ := json.Marshal(le) // strings, times, a bool: cannot fail
	return append(data, '\n')
}

type snapshot struct {
	info  fs.FileInfo
	lease Lease
	valid bool
}

func readLease(path string) (snapshot, error) {
	f, err := os.Open(path)
	if err != nil {
		return snapshot{}, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return snapshot{}, err
	}
	data, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return snapshot{}, err
	}
	s := snapshot{info: info}
	s.valid = json.Unmarshal(data, &s.lease) == nil && s.lease.Owner != "" && s.lease.Token != "" && !s.lease.Expires.IsZero()
	return s, nil
}

// createExclusive writes a new file at path, or reports false if one
// exists (O_CREATE|O_EXCL: atomic on local and network file systems).
func createExclusive(path string, data []byte) (bool, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	if err := errors.Join(werr, serr, f.Close()); err != nil {
		// Left in place: removing it would free its number for a second
		// creator. Unreadable, it turns stale after ttl.
		return false, err
	}
	return true, nil
}

// replace writes path atomically: a temporary file, synced, renamed over.
func replace(path string, data []byte) error {
	tmp := path + ".tmp-" + rand.Text()
	created, err := createExclusive(tmp, data)
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if !created {
		return fmt.Errorf("temporary file %s exists", tmp)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}
