package state

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrDamaged is matched (errors.Is) by every error that says the state
// file itself is unreadable: truncated to nothing, or with a damaged
// page. Such a file is never silently replaced: starting over would
// re-harvest everything into every output.
var ErrDamaged = errors.New("state file is damaged")

type damagedError struct {
	path, what string
}

func (e *damagedError) Error() string {
	return fmt.Sprintf("state file %s is damaged (%s); move it away (mv %s %s.damaged) or run again with --reset-state, which does that for you; the next run then starts again from the initial lookback", e.path, e.what, e.path, e.path)
}

func (e *damagedError) Is(target error) bool { return target == ErrDamaged || target == ErrCorrupt }

func damaged(path, what string) error { return &damagedError{path: path, what: what} }

// guard runs fn and turns a panic inside bbolt (which panics on pages it
// cannot read) into a damaged-file error instead of a stack dump.
func (s *Store) guard(op string, fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = damaged(s.path, fmt.Sprintf("bbolt failed while %s: %v", op, r))
		}
	}()
	return fn()
}

func (s *Store) view(op string, fn func(tx *bolt.Tx) error) error {
	return s.guard(op, func() error { return s.db.View(fn) })
}

func (s *Store) update(op string, fn func(tx *bolt.Tx) error) error {
	return s.guard(op, func() error { return s.db.Update(fn) })
}

// checkNotEmpty refuses an existing state file of 0 bytes: bbolt would
// quietly format it as a new, empty store.
func checkNotEmpty(path string, st os.FileInfo) error {
	if st.Size() == 0 {
		return damaged(path, "it is empty (0 bytes), e.g. truncated by a full disk or a copy taken while it was written")
	}
	return nil
}

// openPanicked remembers files (os.FileInfo by path) whose bbolt.Open panicked: bbolt then
// holds the file lock with no handle to release it, so this process
// cannot open the file again to check it (another process can).
var openPanicked sync.Map

// Quarantine moves a damaged state file aside (to <path>.damaged-<UTC
// time>) so the next Open starts a new one, and returns the new name. A
// healthy file is left alone: ok is false and nothing is moved, so a
// --reset-state left in a schedule never discards good state.
func Quarantine(path string, now time.Time) (moved string, ok bool, err error) {
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("state file %s: %w", path, err)
	}
	known := false
	if v, ok := openPanicked.Load(path); ok {
		known = os.SameFile(v.(os.FileInfo), st) // the same file, not a new one at that path
	}
	if st.Size() > 0 && !known {
		s, err := Open(path, Options{})
		if err == nil {
			err = s.Check()
			s.Close()
		}
		if err == nil {
			return "", false, nil
		}
		if !errors.Is(err, ErrDamaged) && !errors.Is(err, ErrCorrupt) {
			return "", false, err // in use, unreadable directory…: not ours to move
		}
	}
	moved = fmt.Sprintf("%s.damaged-%s", path, now.UTC().Format("20060102T150405Z"))
	for i := 2; ; i++ { // never replace an earlier damaged copy
		if _, err := os.Lstat(moved); errors.Is(err, os.ErrNotExist) {
			break
		}
		moved = fmt.Sprintf("%s.damaged-%s-%d", path, now.UTC().Format("20060102T150405Z"), i)
	}
	if err := os.Rename(path, moved); err != nil {
		return "", false, fmt.Errorf("cannot move the damaged state file %s aside: %w", path, err)
	}
	return moved, true, nil
}

// Check reads every page of the file (bbolt's consistency check) and
// reports the first problem as a damaged-file error.
func (s *Store) Check() error {
	return s.view("checking the file", func(tx *bolt.Tx) error {
		var first error
		for err := range tx.Check() { // drain: the checker goroutine sends every finding
			if first == nil {
				first = damaged(s.path, err.Error())
			}
		}
		return first
	})
}
