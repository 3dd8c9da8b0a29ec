package shard

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/clock"
)

// ErrLost is returned by Renew when another replica holds the lease now
// (ours expired, or it was never ours): stop harvesting that tenant.
var ErrLost = errors.New("the lease is held by another replica")

// Leaser takes, keeps and gives back tenants' leases in a folder every
// replica shares: one file <dir>/<tenant>.lease holding its owner and
// expiry. A replica harvests a tenant only while it holds the lease, so
// during a rollout — when old and new replicas disagree about owners — a
// tenant waits until its previous owner released the lease (at shutdown)
// or the lease expired (the owner died), and is never harvested twice.
//
// Files are created with O_EXCL (exactly one creator wins), renewed by
// writing a temporary file and renaming it over the lease, and taken over
// once expired by renaming the stale file away first: of several replicas
// trying at once, one rename wins. The holder renews well before expiry
// (every ttl/3); a holder that cannot renew in time must stop, since
// another replica may take the tenant once the lease expired.
type Leaser struct {
	dir   string
	owner string
	ttl   time.Duration
	clk   clock.Clock

	mu sync.Mutex // serialises this replica's own operations
}

// leaseFile is the content of a lease.
type leaseFile struct {
	Owner   string    `json:"owner"`
	Expires time.Time `json:"expires"`
}

var keyRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// NewLeaser uses dir (created 0700) for leases of ttl held as owner.
func NewLeaser(dir, owner string, ttl time.Duration, clk clock.Clock) (*Leaser, error) {
	if dir == "" {
		return nil, errors.New("no lease folder given")
	}
	if owner == "" || ttl <= 0 {
		return nil, errors.New("a lease needs an owner and a positive time to live")
	}
	if clk == nil {
		clk = clock.Real()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create the lease folder %s: %w", dir, err)
	}
	return &Leaser{dir: dir, owner: owner, ttl: ttl, clk: clk}, nil
}

// Owner is this replica's name in the leases.
func (l *Leaser) Owner() string { return l.owner }

func (l *Leaser) path(key string) (string, error) {
	if !keyRe.MatchString(key) {
		return "", fmt.Errorf("lease name %q: use letters, digits, '-', '_' or '.'", key)
	}
	return filepath.Join(l.dir, key+".lease"), nil
}

// read returns the lease at p; ok is false when there is none. A file
// that cannot be parsed (a creator is still writing it, or it is
// damaged) expires ttl after its modification time.
func (l *Leaser) read(p string) (lf leaseFile, ok bool, err error) {
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return leaseFile{}, false, nil
	}
	if err != nil {
		return leaseFile{}, false, fmt.Errorf("reading lease %s: %w", p, err)
	}
	if json.Unmarshal(b, &lf) != nil || lf.Owner == "" {
		st, serr := os.Stat(p)
		if serr != nil {
			return leaseFile{}, false, nil // gone meanwhile
		}
		return leaseFile{Owner: "(unreadable lease)", Expires: st.ModTime().Add(l.ttl)}, true, nil
	}
	return lf, true, nil
}

// TryAcquire takes the lease of key if it is free, expired, or already
// ours; false when another replica holds it.
func (l *Leaser) TryAcquire(ctx context.Context, key string) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return false, err
	}
	p, err := l.path(key)
	if err != nil {
		return false, err
	}
	cur, exists, err := l.read(p)
	if err != nil {
		return false, err
	}
	now := l.clk.Now()
	switch {
	case exists && cur.Owner == l.owner:
		return true, l.write(p)
	case exists && now.Before(cur.Expires):
		return false, nil
	case exists:
		// Expired: move it away first. Only one of several replicas
		// doing this at once finds the file to rename.
		stale := fmt.Sprintf("%s.stale-%s", p, randomSuffix())
		if err := os.Rename(p, stale); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return false, nil // another replica took it over first
			}
			return false, fmt.Errorf("taking over the expired lease %s: %w", p, err)
		}
		moved, _, _ := l.read(stale)
		if l.clk.Now().Before(moved.Expires) && moved.Owner != l.owner {
			// Its holder renewed it just now: put it back, unless a
			// new lease was created meanwhile.
			_ = os.Link(stale, p)
			_ = os.Remove(stale)
			return false, nil
		}
		_ = os.Remove(stale)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return false, nil // another replica created it first
	}
	if err != nil {
		return false, fmt.Errorf("creating lease %s: %w", p, err)
	}
	err = writeLease(f, leaseFile{Owner: l.owner, Expires: now.Add(l.ttl)})
	if err != nil {
		os.Remove(p)
		return false, fmt.Errorf("writing lease %s: %w", p, err)
	}
	return true, nil
}

// Renew extends our lease of key; ErrLost when another replica holds it.
func (l *Leaser) Renew(ctx context.Context, key string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := l.path(key)
	if err != nil {
		return err
	}
	cur, exists, err := l.read(p)
	if err != nil {
		return err
	}
	if !exists || cur.Owner != l.owner {
		holder := "nobody"
		if exists {
			holder = cur.Owner
		}
		return fmt.Errorf("%w (%s holds %s)", ErrLost, holder, key)
	}
	return l.write(p)
}

// write replaces the lease at p with ours, expiring ttl from now.
func (l *Leaser) write(p string) error {
	tmp := fmt.Sprintf("%s.tmp-%s", p, randomSuffix())
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("renewing lease %s: %w", p, err)
	}
	if err := writeLease(f, leaseFile{Owner: l.owner, Expires: l.clk.Now().Add(l.ttl)}); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("renewing lease %s: %w", p, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("renewing lease %s: %w", p, err)
	}
	return nil
}

// Release gives the lease of key back (nothing when it is not ours).
func (l *Leaser) Release(key string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, err := l.path(key)
	if err != nil {
		return err
	}
	cur, exists, err := l.read(p)
	if err != nil || !exists || cur.Owner != l.owner {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("releasing lease %s: %w", p, err)
	}
	return nil
}

// Holder names who holds the lease of key ("" when nobody does or it
// expired).
func (l *Leaser) Holder(key string) (string, error) {
	p, err := l.path(key)
	if err != nil {
		return "", err
	}
	cur, exists, err := l.read(p)
	if err != nil || !exists || !l.clk.Now().Before(cur.Expires) {
		return "", err
	}
	return cur.Owner, nil
}

func writeLease(f *os.File, lf leaseFile) error {
	b, _ := json.Marshal(lf) // a string and a time cannot fail
	_, err := f.Write(b)
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func randomSuffix() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
