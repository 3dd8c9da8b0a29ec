package shard

import (
	"bytes"
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
	// Token is new for every acquisition and kept by renewals: it tells
	// this holding from an earlier or later one of the same owner.
	Token string `json:"token"`
}

// Leaser takes, keeps and gives back leases on keys (tenants) in a
// directory shared by every replica: <dir>/<key>.lease. A replica
// harvests a tenant only while it holds its lease, so during a handover
// the new owner waits until the old one released it, or until it expired
// because its holder died.
//
// Leases rely on the replicas' clocks agreeing to well within ttl (NTP)
// and on the holder renewing every ttl/3 (Keep). Owner ids must be unique
// among the live replicas (a StatefulSet's pod names are): a lease that
// names this owner and has not expired is taken back at once, so a
// replica restarted after kill -9 does not wait for its own lease.
type Leaser struct {
	dir, owner string
	ttl        time.Duration
	clk        clock.Clock

	op   sync.Mutex // one file operation at a time per leaser
	mu   sync.Mutex
	held map[string]Lease // what we last wrote, by key
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
	return &Leaser{dir: dir, owner: ownerID, ttl: ttl, clk: clk, held: map[string]Lease{}}, nil
}

// TryAcquire takes the lease on key if it is free, expired, or already
// this owner's; it reports false, without error, while another replica
// holds it. Taking over an expired lease is safe when several replicas
// try at once: exactly one gets it.
func (l *Leaser) TryAcquire(ctx context.Context, key string) (bool, error) {
	path, err := l.path(key)
	if err != nil {
		return false, err
	}
	l.op.Lock()
	defer l.op.Unlock()
	for range 3 { // a lease released or moved while we looked: look again
		if err := ctx.Err(); err != nil {
			return false, err
		}
		now := l.clk.Now()
		le := Lease{Owner: l.owner, Acquired: now, Expires: now.Add(l.ttl), Token: rand.Text()}
		created, err := createExclusive(path, marshal(le))
		if err != nil {
			return false, fmt.Errorf("shard: lease %s: cannot create %s: %w", key, path, err)
		}
		if created {
			// A racing take-over may have moved it aside (see moveAside);
			// it is ours only if it still names us.
			if cur, err := readLease(path); err != nil || !cur.valid || cur.lease.Token != le.Token {
				return false, nil
			}
			l.remember(key, le)
			return true, nil
		}

		cur, err := readLease(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("shard: lease %s: %w", key, err)
		}
		if cur.valid && cur.lease.Owner == l.owner && now.Before(cur.lease.Expires) {
			// Ours: held already, or from before a restart.
			l.remember(key, cur.lease)
			if err := l.renewLocked(key, path); err != nil {
				return false, err
			}
			return true, nil
		}
		if !l.stale(cur, now) {
			return false, nil
		}
		moved, err := moveAside(path, cur)
		if err != nil {
			return false, fmt.Errorf("shard: lease %s: taking over the expired lease of %q: %w", key, cur.lease.Owner, err)
		}
		if !moved {
			return false, nil // another replica took it over first
		}
	}
	return false, nil
}

// Renew extends a lease this leaser holds by ttl. An error wrapping
// ErrLost means the lease is gone (expired before this renewal, or held
// by another replica): stop harvesting the tenant. Other errors (the file
// system) are worth another try before the lease expires.
func (l *Leaser) Renew(ctx context.Context, key string) error {
	path, err := l.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	l.op.Lock()
	defer l.op.Unlock()
	return l.renewLocked(key, path)
}

func (l *Leaser) renewLocked(key, path string) error {
	l.mu.Lock()
	mine, ok := l.held[key]
	l.mu.Unlock()
	if !ok {
		return fmt.Errorf("shard: renew %s: %w by %s", key, ErrNotHeld, l.owner)
	}
	now := l.clk.Now()
	if !now.Before(mine.Expires) {
		// Another replica may already have taken it over: never revive it.
		l.forget(key)
		return fmt.Errorf("shard: lease %s: %w: it expired at %s before it was renewed", key, ErrLost, mine.Expires.Format(time.RFC3339))
	}
	cur, err := readLease(path)
	if errors.Is(err, fs.ErrNotExist) {
		l.forget(key)
		return fmt.Errorf("shard: lease %s: %w: its file is gone", key, ErrLost)
	}
	if err != nil {
		return fmt.Errorf("shard: renew %s: %w", key, err)
	}
	if !cur.valid || cur.lease.Token != mine.Token {
		l.forget(key)
		return fmt.Errorf("shard: lease %s: %w: it is now held by %q", key, ErrLost, cur.lease.Owner)
	}
	next := mine
	next.Expires = now.Add(l.ttl)
	if err := replace(path, marshal(next)); err != nil {
		return fmt.Errorf("shard: renew %s: %w", key, err)
	}
	if cur, err := readLease(path); err != nil || !cur.valid || cur.lease.Token != mine.Token {
		l.forget(key)
		return fmt.Errorf("shard: lease %s: %w: another replica wrote it while it was renewed", key, ErrLost)
	}
	l.remember(key, next)
	return nil
}

// Release gives the lease on key back, if this leaser holds it and its
// file still names it; releasing a lease not held does nothing.
func (l *Leaser) Release(ctx context.Context, key string) error {
	path, err := l.path(key)
	if err != nil {
		return err
	}
	l.op.Lock()
	defer l.op.Unlock()
	l.mu.Lock()
	mine, ok := l.held[key]
	l.mu.Unlock()
	if !ok {
		return nil
	}
	l.forget(key)
	cur, err := readLease(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("shard: release %s: %w", key, err)
	}
	if !cur.valid || cur.lease.Token != mine.Token {
		return nil // taken over meanwhile: not ours to remove
	}
	if _, err := moveAside(path, cur); err != nil {
		return fmt.Errorf("shard: release %s: %w", key, err)
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

// Holder reads the lease on key; false when there is none.
func (l *Leaser) Holder(key string) (Lease, bool, error) {
	path, err := l.path(key)
	if err != nil {
		return Lease{}, false, err
	}
	cur, err := readLease(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return Lease{}, false, nil
	case err != nil:
		return Lease{}, false, fmt.Errorf("shard: lease %s: %w", key, err)
	case !cur.valid:
		return Lease{}, true, fmt.Errorf("shard: lease %s: %s is not a lease (being written, or damaged; it counts as held until %s old)", key, path, l.ttl)
	}
	return cur.lease, true, nil
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

func (l *Leaser) remember(key string, le Lease) {
	l.mu.Lock()
	l.held[key] = le
	l.mu.Unlock()
}

func (l *Leaser) forget(key string) {
	l.mu.Lock()
	delete(l.held, key)
	l.mu.Unlock()
}

// stale: a lease past its expiry, or a file that is no lease (a holder
// that died between creating and writing it) older than ttl.
func (l *Leaser) stale(s snapshot, now time.Time) bool {
	if s.valid {
		return !now.Before(s.lease.Expires)
	}
	return now.Sub(s.info.ModTime()) > l.ttl
}

// path maps a key to its lease file. Bytes outside [A-Za-z0-9._-], and a
// leading dot, are written %XX, so a key can never leave the directory.
func (l *Leaser) path(key string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' && i > 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	// Room for the suffixes of temporary files within a 255-byte name.
	if key == "" || b.Len() > 200 {
		return "", fmt.Errorf("shard: lease key %.60q: give the tenant id (1 to 200 bytes, fewer with characters outside A-Z a-z 0-9 . _ -)", key)
	}
	return filepath.Join(l.dir, b.String()+".lease"), nil
}

func marshal(le Lease) []byte {
	data, _ := json.Marshal(le) // strings and times: cannot fail
	return append(data, '\n')
}

type snapshot struct {
	data  []byte
	info  fs.FileInfo
	lease Lease
	valid bool
}

// readLease reads a lease file and the identity of the file read.
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
	s := snapshot{data: data, info: info}
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
		_ = os.Remove(path) // ours, unreadable: not stale for ttl
		return false, err
	}
	return true, nil
}

// replace writes path atomically: a temporary file, synced, renamed over.
func replace(path string, data []byte) error {
	tmp := path + ".tmp-" + rand.Text()
	created, err := createExclusive(tmp, data)
	if err != nil {
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

// moveAside removes the file seen in s from path, but only that file: it
// renames path to a unique name (one rename wins), then checks that the
// file it moved is the one it looked at. If a new lease was written in
// between, it moved someone else's lease: it puts it back (unless a third
// replica created one meanwhile; that holder then finds out at its next
// renewal) and reports false.
func moveAside(path string, s snapshot) (bool, error) {
	aside := path + ".old-" + rand.Text()
	if err := os.Rename(path, aside); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	got, err := readLease(aside)
	if err == nil && os.SameFile(got.info, s.info) && bytes.Equal(got.data, s.data) {
		return true, os.Remove(aside)
	}
	if err != nil {
		// Unreadable: put it back as it is rather than lose someone's lease.
		return false, errors.Join(err, os.Rename(aside, path))
	}
	_, _ = createExclusive(path, got.data) // same bytes: its holder still sees itself
	_ = os.Remove(aside)
	return false, nil
}
