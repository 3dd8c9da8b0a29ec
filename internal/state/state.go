// Package state is the harvester's memory between runs: one bbolt file
// holding, per (tenant, source), the cursor, the recently delivered record
// ids and the last snapshot. Every change is one bbolt transaction, so a
// crash leaves either the old or the new state, never a mix.
package state

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Options tune Open.
type Options struct {
	Logger *slog.Logger
	// LockTimeout is how long Open waits for another process to release
	// the file (default 2s).
	LockTimeout time.Duration
}

// Store is an open state file. Safe for concurrent use.
type Store struct {
	db   *bolt.DB
	path string
	log  *slog.Logger
}

// Layout: sources/<tenant>\x00<source>/{cursor, snapAt, seen/, seenByTime/, snap/}.
var (
	bucketSources = []byte("sources")
	bucketMeta    = []byte("meta")
	keyVersion    = []byte("version")
	keyCursor     = []byte("cursor")
	keySnapAt     = []byte("snapAt")
	bucketSeen    = []byte("seen")       // id → event time
	bucketByTime  = []byte("seenByTime") // event time ‖ id → nothing (for pruning)
	bucketSnap    = []byte("snap")       // key → uvarint(len hash) ‖ hash ‖ raw
)

const formatVersion = 1

// Open opens (or creates) the state file at path with mode 0600, taking an
// exclusive lock so two harvesters never interleave their checkpoints.
func Open(path string, opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	timeout := opts.LockTimeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	if path == "" {
		return nil, errors.New("no state file configured; set state_file to a path the harvester may write")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("cannot create the directory of state file %s: %w", path, err)
	}
	if st, err := os.Stat(path); err == nil {
		if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("state file %s is not a regular file; point state_file at a file path", path)
		}
		if err := checkNotEmpty(path, st); err != nil {
			return nil, err
		}
		if v, ok := openPanicked.Load(path); ok && os.SameFile(v.(os.FileInfo), st) {
			// The same damaged file again (serve retries a tenant): bbolt
			// still holds its lock from the failed open, so say what it
			// is rather than "in use".
			return nil, damaged(path, "it could not be opened earlier in this process")
		}
		if st.Mode().Perm()&0o077 != 0 {
			// Cursors and snapshots (which hold tenant settings) are not
			// for other users; tighten rather than refuse.
			if err := os.Chmod(path, 0o600); err != nil {
				return nil, fmt.Errorf("state file %s is readable by other users (mode %v) and cannot be restricted: %w; run chmod 600 on it", path, st.Mode().Perm(), err)
			}
			log.Warn("state file was readable by other users; restricted it to mode 0600", "path", path, "old_mode", st.Mode().Perm().String())
		}
	}
	s := &Store{path: path, log: log}
	var db *bolt.DB
	err := s.guard("opening it", func() (err error) {
		db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
		return err
	})
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, &inUseError{path: path}
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrChecksum), errors.Is(err, bolterrors.ErrVersionMismatch):
		return nil, damaged(path, err.Error())
	case errors.Is(err, ErrDamaged):
		if st, serr := os.Stat(path); serr == nil {
			openPanicked.Store(path, st)
		}
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("cannot open state file %s: %w", path, err)
	}
	s.db = db
	if err := s.update("reading its format version", func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if v := meta.Get(keyVersion); v != nil {
			if len(v) != 8 {
				return fmt.Errorf("its format version is unreadable")
			}
			if n := binary.BigEndian.Uint64(v); n > formatVersion {
				return fmt.Errorf("it was written by a newer defenderharvester (format %d, this one reads %d); upgrade", n, formatVersion)
			}
		} else if err := meta.Put(keyVersion, binary.BigEndian.AppendUint64(nil, formatVersion)); err != nil {
			return err
		}
		_, err = tx.CreateBucketIfNotExists(bucketSources)
		return err
	}); err != nil {
		db.Close()
		if errors.Is(err, ErrDamaged) {
			return nil, err
		}
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	if err := s.compactIfSparse(timeout); err != nil {
		if s.db != nil {
			s.db.Close()
		}
		return nil, err
	}
	return s, nil
}

// Compaction thresholds: a file of at least compactMinBytes that is more
// than compactFreeShare free pages is rewritten when opened.
const (
	compactMinBytes  = 32 << 20
	compactFreeShare = 0.75
)

// compactIfSparse rewrites the file without its free pages when most of
// it is free. bbolt reuses freed pages but never gives them back, so a
// spool that once held an outage's backlog, or the delivered ids an
// older version kept, would otherwise hold the file — and the memory
// mapped from it — at its largest size for good. The copy is written
// next to the file, synced and renamed over it, so a crash leaves either
// file whole. (A second harvester wrongly pointed at the same file and
// waiting for its lock may get the old copy; the lock already refuses
// it in every other case, and at worst it repeats work.)
func (s *Store) compactIfSparse(timeout time.Duration) error {
	st, err := os.Stat(s.path)
	if err != nil || st.Size() < compactMinBytes {
		return nil
	}
	var free int64
	err = s.view("measuring its free space", func(tx *bolt.Tx) error {
		free = int64(s.db.Stats().FreePageN) * int64(s.db.Info().PageSize)
		return nil
	})
	if err != nil || float64(free) < compactFreeShare*float64(st.Size()) {
		return err
	}
	tmp := s.path + ".compact"
	_ = os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: timeout})
	if err != nil {
		return fmt.Errorf("compacting state file %s: %w", s.path, err)
	}
	err = s.guard("compacting it", func() error { return bolt.Compact(dst, s.db, 16<<20) })
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		s.log.Warn("could not compact the state file; it keeps its size", "path", s.path, "err", err)
		return nil // the file itself is fine
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("compacting state file %s: %w", s.path, err)
	}
	s.db = nil
	if err := os.Rename(tmp, s.path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("compacting state file %s: %w; the file is unchanged, open it again", s.path, err)
	}
	syncDir(filepath.Dir(s.path))
	db, err := bolt.Open(s.path, 0o600, &bolt.Options{Timeout: timeout})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return &inUseError{path: s.path}
		}
		return fmt.Errorf("reopening state file %s after compacting it: %w", s.path, err)
	}
	s.db = db
	if nst, err := os.Stat(s.path); err == nil {
		s.log.Info("compacted the state file: it was mostly free space", "path", s.path,
			"old_mb", st.Size()>>20, "new_mb", nst.Size()>>20)
	}
	return nil
}

// syncDir makes a rename in dir durable (best effort).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// Close releases the file and its lock.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("closing state file %s: %w", s.path, err)
	}
	return nil
}

// Path is the file the store lives in.
func (s *Store) Path() string { return s.path }

// SeenID is a delivered record id and its event time (which decides when
// it is forgotten).
type SeenID struct {
	ID   string
	Time time.Time
}

// Commit is one atomic checkpoint of a source.
type Commit struct {
	// Seen are ids every sink accepted. An id is kept only while a later
	// run may read its record again: while its event time lies at or
	// after PruneBefore (the re-read band behind the cursor) or outside
	// every covered range (work not finished, such as a window that was
	// interrupted). Others are not stored at all, so the file stays the
	// size of that band however many records a backfill delivers.
	Seen []SeenID
	// Cursor, when not zero, is the new cursor; it only moves forward.
	Cursor time.Time
	// PruneBefore, when not zero, forgets seen ids whose event time is
	// earlier and lies inside a covered range: no later run reads them
	// again. Zero keeps every id.
	PruneBefore time.Time
	// Cover, when not empty, is a time range now read completely and
	// delivered everywhere: it joins the covered ranges.
	Cover Range
	// Reading are windows still being read in this run (covered ones too:
	// the re-read band): the ids in them are neither dropped nor pruned,
	// whatever PruneBefore says, until a later commit no longer lists them.
	Reading []Range
}

// KeyedCommit is one source's (or part's) share of a CommitAll.
type KeyedCommit struct {
	Source string
	Commit
}

// SnapshotEntry is one item of a stored snapshot.
type SnapshotEntry struct {
	Hash string          // content hash chosen by the caller
	Raw  json.RawMessage // the item as last delivered
}

func sourceKey(tenant, source string) []byte {
	return []byte(tenant + "\x00" + source)
}

type corruptError struct {
	path, tenant, source, what string
}

func (e *corruptError) Error() string {
	return fmt.Sprintf("state file %s: the %s of source %s (tenant %q) is corrupt; move the state file away (the next run starts again from the initial lookback) or restore a backup",
		e.path, e.what, e.source, e.tenant, // no payloads: only names
	)
}

// ErrCorrupt is matched (errors.Is) by every corruption error.
var ErrCorrupt = errors.New("state is corrupt")

func (e *corruptError) Is(target error) bool { return target == ErrCorrupt }

func (s *Store) corrupt(tenant, source, what string) error {
	return &corruptError{path: s.path, tenant: tenant, source: source, what: what}
}

func (s *Store) wrap(tenant, source, op string, err error) error {
	if err == nil {
		return nil
	}
	var ce *corruptError
	if errors.As(err, &ce) {
		return err
	}
	return fmt.Errorf("state file %s: %s for source %s (tenant %q): %w", s.path, op, source, tenant, err)
}

// sourceBucket returns the source's bucket, or nil when it has none yet.
func (s *Store) sourceBucket(tx *bolt.Tx, tenant, source string) (*bolt.Bucket, error) {
	root := tx.Bucket(bucketSources)
	if root == nil {
		return nil, s.corrupt(tenant, source, "source index")
	}
	k := sourceKey(tenant, source)
	b := root.Bucket(k)
	if b == nil && root.Get(k) != nil {
		return nil, s.corrupt(tenant, source, "bucket")
	}
	return b, nil
}

func (s *Store) subBucket(b *bolt.Bucket, name []byte, tenant, source string) (*bolt.Bucket, error) {
	sb := b.Bucket(name)
	if sb == nil && b.Get(name) != nil {
		return nil, s.corrupt(tenant, source, string(name)+" list")
	}
	return sb, nil
}

// Times are stored as order-preserving 8-byte big-endian nanoseconds.
func encTime(t time.Time) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), uint64(clampNanos(t))^(1<<63))
}

func decTime(b []byte) (time.Time, bool) {
	if len(b) != 8 {
		return time.Time{}, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(b)^(1<<63))).UTC(), true
}

var (
	minTime = time.Unix(0, -1<<63)
	maxTime = time.Unix(0, 1<<63-1)
)

func clampNanos(t time.Time) int64 {
	switch {
	case t.Before(minTime):
		return minTime.UnixNano()
	case t.After(maxTime):
		return maxTime.UnixNano()
	}
	return t.UnixNano()
}

func (s *Store) validate(source string) error {
	if source == "" {
		return errors.New("state: empty source name (a programming error)")
	}
	return nil
}

// Cursor returns the source's cursor; ok is false when it has none.
func (s *Store) Cursor(tenant, source string) (cursor time.Time, ok bool, err error) {
	if err := s.validate(source); err != nil {
		return time.Time{}, false, err
	}
	err = s.view("reading the cursor", func(tx *bolt.Tx) error {
		b, err := s.sourceBucket(tx, tenant, source)
		if err != nil || b == nil {
			return err
		}
		v := b.Get(keyCursor)
		if v == nil {
			return nil
		}
		if cursor, ok = decTime(v); !ok {
			return s.corrupt(tenant, source, "cursor")
		}
		return nil
	})
	return cursor, ok, s.wrap(tenant, source, "reading the cursor", err)
}

// SeenAmong returns which of ids were already delivered (and not yet
// forgotten), in one read transaction.
func (s *Store) SeenAmong(tenant, source string, ids []string) (map[string]bool, error) {
	if err := s.validate(source); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	err := s.view("reading seen record ids", func(tx *bolt.Tx) error {
		b, err := s.sourceBucket(tx, tenant, source)
		if err != nil || b == nil {
			return err
		}
		sb, err := s.subBucket(b, bucketSeen, tenant, source)
		if err != nil || sb == nil {
			return err
		}
		for _, id := range ids {
			if id != "" && sb.Get([]byte(id)) != nil {
				seen[id] = true
			}
		}
		return nil
	})
	return seen, s.wrap(tenant, source, "reading seen record ids", err)
}

// Commit applies c atomically: either all of it is stored or none.
func (s *Store) Commit(tenant, source string, c Commit) error {
	return s.CommitAll(tenant, []KeyedCommit{{Source: source, Commit: c}})
}

// CommitAll applies several checkpoints of one tenant in one transaction
// (one fsync), in order; a source may appear more than once. Either all
// of them are stored or none.
func (s *Store) CommitAll(tenant string, cs []KeyedCommit) error {
	for _, c := range cs {
		if err := s.validate(c.Source); err != nil {
			return err
		}
	}
	if len(cs) == 0 {
		return nil
	}
	var failed string
	err := s.update("saving the checkpoint", func(tx *bolt.Tx) error {
		prune := map[string]time.Time{}
		reading := map[string][]Range{}
		var order []string
		for _, c := range cs {
			failed = c.Source
			if err := s.apply(tx, tenant, c.Source, c.Commit); err != nil {
				return err
			}
			reading[c.Source] = append(reading[c.Source], c.Reading...)
			if !c.PruneBefore.IsZero() {
				if _, ok := prune[c.Source]; !ok {
					order = append(order, c.Source)
				}
				prune[c.Source] = c.PruneBefore
			}
		}
		// Pruning comes last: a later commit of the same source may
		// cover what an earlier one stored.
		for _, src := range order {
			failed = src
			if err := s.prune(tx, tenant, src, prune[src], reading[src]); err != nil {
				return err
			}
		}
		return nil
	})
	return s.wrap(tenant, failed, "saving the checkpoint", err)
}

// apply stores one commit's cursor, covered range and seen ids.
func (s *Store) apply(tx *bolt.Tx, tenant, source string, c Commit) error {
	b, err := s.createSourceBucket(tx, tenant, source)
	if err != nil {
		return err
	}
	if !c.Cursor.IsZero() {
		cur := b.Get(keyCursor)
		old, ok := decTime(cur)
		if cur != nil && !ok {
			return s.corrupt(tenant, source, "cursor")
		}
		if cur == nil || c.Cursor.After(old) {
			if err := b.Put(keyCursor, encTime(c.Cursor)); err != nil {
				return err
			}
		}
	}
	if err := s.cover(b, c.Cover, tenant, source); err != nil {
		return err
	}
	if len(c.Seen) == 0 {
		return nil
	}
	var covered []Range
	if !c.PruneBefore.IsZero() {
		if covered, err = s.coveredRanges(b, tenant, source); err != nil {
			return err
		}
	}
	seen, err := s.createSub(b, bucketSeen, tenant, source)
	if err != nil {
		return err
	}
	byTime, err := s.createSub(b, bucketByTime, tenant, source)
	if err != nil {
		return err
	}
	for _, id := range c.Seen {
		if id.ID == "" {
			continue
		}
		if id.Time.Before(c.PruneBefore) && inRanges(covered, id.Time) && !inAny(c.Reading, id.Time) {
			continue // never read again: not worth a byte of the file
		}
		k := []byte(id.ID)
		if old := seen.Get(k); old != nil {
			if len(old) != 8 {
				return s.corrupt(tenant, source, "seen id list")
			}
			if err := byTime.Delete(append(bytes.Clone(old), k...)); err != nil {
				return err
			}
		}
		t := encTime(id.Time)
		if err := seen.Put(k, t); err != nil {
			return err
		}
		if err := byTime.Put(append(t, k...), nil); err != nil {
			return err
		}
	}
	return nil
}

// coveredRanges reads the source's covered ranges in time order.
func (s *Store) coveredRanges(b *bolt.Bucket, tenant, source string) ([]Range, error) {
	cb, err := s.subBucket(b, bucketCovered, tenant, source)
	if err != nil || cb == nil {
		return nil, err
	}
	var out []Range
	err = cb.ForEach(func(k, v []byte) error {
		from, ok1 := decTime(k)
		to, ok2 := decTime(v)
		if !ok1 || !ok2 {
			return s.corrupt(tenant, source, "covered ranges")
		}
		out = append(out, Range{From: from, To: to})
		return nil
	})
	return out, err
}

// inAny reports whether t lies in one of rs (in any order).
func inAny(rs []Range, t time.Time) bool {
	for _, r := range rs {
		if !t.Before(r.From) && t.Before(r.To) {
			return true
		}
	}
	return false
}

// inRanges reports whether t lies in one of rs (sorted, disjoint).
func inRanges(rs []Range, t time.Time) bool {
	i := sort.Search(len(rs), func(i int) bool { return rs[i].To.After(t) })
	return i < len(rs) && !t.Before(rs[i].From)
}

// prune forgets seen ids with event time before cutoff that lie in a
// covered range. It seeks into each covered range below cutoff, so the
// cost is the number of ids forgotten plus the number of ranges; ids of
// unfinished work (uncovered time) stay.
func (s *Store) prune(tx *bolt.Tx, tenant, source string, cutoff time.Time, reading []Range) error {
	b, err := s.sourceBucket(tx, tenant, source)
	if err != nil || b == nil {
		return err
	}
	seen, err := s.subBucket(b, bucketSeen, tenant, source)
	if err != nil || seen == nil {
		return err
	}
	byTime, err := s.subBucket(b, bucketByTime, tenant, source)
	if err != nil || byTime == nil {
		return err
	}
	covered, err := s.coveredRanges(b, tenant, source)
	if err != nil {
		return err
	}
	var dead [][]byte
	c := byTime.Cursor()
	for _, cr := range covered {
		if !cr.From.Before(cutoff) {
			break
		}
		// The covered part below the cutoff, less the windows being read.
		for _, r := range Uncovered(Range{From: cr.From, To: minT(cr.To, cutoff)}, Merge(reading)) {
			limit := encTime(r.To)
			for k, _ := c.Seek(encTime(r.From)); k != nil && bytes.Compare(k[:min(8, len(k))], limit) < 0; k, _ = c.Next() {
				if len(k) < 8 {
					return s.corrupt(tenant, source, "seen id time index")
				}
				dead = append(dead, bytes.Clone(k))
			}
		}
	}
	for _, k := range dead {
		if err := byTime.Delete(k); err != nil {
			return err
		}
		id := k[8:]
		// Only drop the id when its current time is this entry's time.
		if v := seen.Get(id); v != nil && bytes.Equal(v, k[:8]) {
			if err := seen.Delete(id); err != nil {
				return err
			}
		}
	}
	return nil
}

func minT(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func (s *Store) createSourceBucket(tx *bolt.Tx, tenant, source string) (*bolt.Bucket, error) {
	root := tx.Bucket(bucketSources)
	if root == nil {
		return nil, s.corrupt(tenant, source, "source index")
	}
	b, err := root.CreateBucketIfNotExists(sourceKey(tenant, source))
	if errors.Is(err, bolterrors.ErrIncompatibleValue) {
		return nil, s.corrupt(tenant, source, "bucket")
	}
	return b, err
}

func (s *Store) createSub(b *bolt.Bucket, name []byte, tenant, source string) (*bolt.Bucket, error) {
	sb, err := b.CreateBucketIfNotExists(name)
	if errors.Is(err, bolterrors.ErrIncompatibleValue) {
		return nil, s.corrupt(tenant, source, string(name)+" list")
	}
	return sb, err
}

// Snapshot returns the stored snapshot of a snapshot source; ok is false
// when none was ever stored (the next one is the initial snapshot).
func (s *Store) Snapshot(tenant, source string) (entries map[string]SnapshotEntry, at time.Time, ok bool, err error) {
	if err := s.validate(source); err != nil {
		return nil, time.Time{}, false, err
	}
	entries = map[string]SnapshotEntry{}
	err = s.view("reading the last snapshot", func(tx *bolt.Tx) error {
		b, err := s.sourceBucket(tx, tenant, source)
		if err != nil || b == nil {
			return err
		}
		v := b.Get(keySnapAt)
		if v == nil {
			return nil
		}
		if at, ok = decTime(v); !ok {
			return s.corrupt(tenant, source, "snapshot time")
		}
		sb, err := s.subBucket(b, bucketSnap, tenant, source)
		if err != nil || sb == nil {
			return err
		}
		return sb.ForEach(func(k, v []byte) error {
			e, ok := decEntry(v)
			if !ok {
				return s.corrupt(tenant, source, "stored snapshot")
			}
			entries[string(k)] = e
			return nil
		})
	})
	if err != nil {
		return nil, time.Time{}, false, s.wrap(tenant, source, "reading the last snapshot", err)
	}
	return entries, at, ok, nil
}

func encEntry(e SnapshotEntry) []byte {
	b := binary.AppendUvarint(make([]byte, 0, 10+len(e.Hash)+len(e.Raw)), uint64(len(e.Hash)))
	b = append(b, e.Hash...)
	return append(b, e.Raw...)
}

func decEntry(v []byte) (SnapshotEntry, bool) {
	n, w := binary.Uvarint(v)
	if w <= 0 || n > uint64(len(v)-w) {
		return SnapshotEntry{}, false
	}
	hash := v[w : w+int(n)]
	raw := v[w+int(n):]
	if !json.Valid(raw) {
		return SnapshotEntry{}, false
	}
	return SnapshotEntry{Hash: string(hash), Raw: bytes.Clone(raw)}, true
}

// ReplaceSnapshot stores entries as the source's snapshot taken at at,
// replacing the previous one atomically.
func (s *Store) ReplaceSnapshot(tenant, source string, at time.Time, entries map[string]SnapshotEntry) error {
	if err := s.validate(source); err != nil {
		return err
	}
	for k := range entries {
		if k == "" {
			return fmt.Errorf("state: snapshot of source %s has an item with an empty key", source)
		}
	}
	err := s.update("saving the snapshot", func(tx *bolt.Tx) error {
		b, err := s.createSourceBucket(tx, tenant, source)
		if err != nil {
			return err
		}
		if b.Bucket(bucketSnap) != nil {
			if err := b.DeleteBucket(bucketSnap); err != nil {
				return err
			}
		} else if b.Get(bucketSnap) != nil {
			if err := b.Delete(bucketSnap); err != nil { // a corrupt plain value: replace it
				return err
			}
		}
		sb, err := b.CreateBucket(bucketSnap)
		if err != nil {
			return err
		}
		keys := make([]string, 0, len(entries))
		for k := range entries {
			keys = append(keys, k)
		}
		sort.Strings(keys) // sorted inserts keep bbolt pages compact
		for _, k := range keys {
			if err := sb.Put([]byte(k), encEntry(entries[k])); err != nil {
				return err
			}
		}
		return b.Put(keySnapAt, encTime(at))
	})
	return s.wrap(tenant, source, "saving the snapshot", err)
}

// Size is how many bytes of the file are in use, free pages included: its
// high-water mark, which bbolt never gives back to the file system.
func (s *Store) Size() (int64, error) {
	var n int64
	err := s.view("reading its size", func(tx *bolt.Tx) error {
		n = tx.Size()
		return nil
	})
	return n, err
}
