package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// What the state tools (`state show`, `state reset`, `state spool`)
// read and change. Each call is one bbolt transaction.

// ErrInUse is matched (errors.Is) by Open's error when another process
// holds the file's lock (a running serve or run).
var ErrInUse = errors.New("state file is in use by another process")

type inUseError struct{ path string }

func (e *inUseError) Error() string {
	return fmt.Sprintf("state file %s is in use by another defenderharvester process; wait for it to finish or give this one its own state_file", e.path)
}

func (e *inUseError) Is(target error) bool { return target == ErrInUse }

// SourceStatus is everything stored about one source, or one part of a
// partitioned source (Source is then "name/part", e.g. "timeline/<device>").
type SourceStatus struct {
	Tenant, Source string
	Progress
	SeenIDs       int
	SnapshotAt    time.Time // zero when no snapshot is stored
	SnapshotItems int
}

// Name is the source the entry belongs to (the part's source for a part).
func (st SourceStatus) Name() string {
	name, _, _ := strings.Cut(st.Source, "/")
	return name
}

// Part is the part's name, "" for a whole source.
func (st SourceStatus) Part() string {
	_, part, _ := strings.Cut(st.Source, "/")
	return part
}

// OfSource reports whether the state key key (a source or "source/part")
// belongs to source: it is the source itself or one of its parts.
func OfSource(key, source string) bool {
	return key == source || strings.HasPrefix(key, source+"/")
}

// Sources lists every source and part that has state, of every tenant
// id in the file, sorted by tenant and key (a source before its parts).
func (s *Store) Sources() ([]SourceStatus, error) {
	var out []SourceStatus
	err := s.view("listing sources", func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketSources)
		if root == nil {
			return nil
		}
		return root.ForEachBucket(func(k []byte) error {
			tenant, source, found := bytes.Cut(k, []byte{0})
			if !found || len(source) == 0 {
				return fmt.Errorf("state file %s: an entry has an unreadable name; move the state file away: %w", s.path, ErrCorrupt)
			}
			st := SourceStatus{Tenant: string(tenant), Source: string(source)}
			b := root.Bucket(k)
			p, err := s.readProgress(b, st.Tenant, st.Source)
			if err != nil {
				return err
			}
			st.Progress = p
			if v := b.Get(keySnapAt); v != nil {
				t, ok := decTime(v)
				if !ok {
					return s.corrupt(st.Tenant, st.Source, "snapshot time")
				}
				st.SnapshotAt = t
			}
			if sb, err := s.subBucket(b, bucketSeen, st.Tenant, st.Source); err != nil {
				return err
			} else if sb != nil {
				st.SeenIDs = sb.Stats().KeyN
			}
			if sb, err := s.subBucket(b, bucketSnap, st.Tenant, st.Source); err != nil {
				return err
			} else if sb != nil {
				st.SnapshotItems = sb.Stats().KeyN
			}
			out = append(out, st)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ResetSource forgets everything stored for tenant's source and all its
// parts ("source/…"): cursor, covered ranges, goal, failures, seen ids
// and snapshot, in one transaction. The next run starts over from the
// initial lookback (a snapshot source reports every item as Added
// again). It returns the keys removed, sorted; none when it had no state.
// Spooled batches are not touched (they belong to outputs).
func (s *Store) ResetSource(tenant, source string) (removed []string, err error) {
	if err := s.validate(source); err != nil {
		return nil, err
	}
	err = s.update("resetting the source", func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketSources)
		if root == nil {
			return s.corrupt(tenant, source, "source index")
		}
		self := sourceKey(tenant, source)
		parts := sourceKey(tenant, source+"/")
		var keys [][]byte
		c := root.Cursor()
		if k, _ := c.Seek(self); bytes.Equal(k, self) {
			keys = append(keys, self)
		}
		// Parts are scanned on their own: keys such as "source-b" sort
		// between the source and its parts.
		for k, _ := c.Seek(parts); k != nil && bytes.HasPrefix(k, parts); k, _ = c.Next() {
			keys = append(keys, bytes.Clone(k))
		}
		for _, k := range keys {
			err := root.DeleteBucket(k)
			if errors.Is(err, bolterrors.ErrIncompatibleValue) {
				err = root.Delete(k) // a corrupt plain value: remove it too
			}
			if err != nil {
				return err
			}
			_, name, _ := bytes.Cut(k, []byte{0})
			removed = append(removed, string(name))
		}
		return nil
	})
	if err != nil {
		return nil, s.wrap(tenant, source, "resetting the source", err)
	}
	return removed, nil
}

// SpoolPurge drops everything spooled for output, in one transaction,
// and returns how many records and batches that was. Those records are
// then never delivered to output.
func (s *Store) SpoolPurge(output string) (records, batches int, err error) {
	err = s.update("purging the spool", func(tx *bolt.Tx) error {
		ob, err := spoolBucket(tx, output, false)
		if err != nil || ob == nil {
			return err
		}
		err = ob.Bucket(bucketBatches).ForEach(func(_, v []byte) error {
			count, n := binary.Uvarint(v)
			if n <= 0 {
				return fmt.Errorf("spool of output %s: %w", output, ErrCorrupt)
			}
			records += int(count)
			batches++
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketSpool).DeleteBucket([]byte(output))
	})
	if err != nil {
		return 0, 0, fmt.Errorf("state file %s: purging the spool of output %s: %w", s.path, output, err)
	}
	return records, batches, nil
}
