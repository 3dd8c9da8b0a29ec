package state

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// What a source (or one part of it, such as one device's timeline) has
// covered, where a backfill asked it to reach, and how it has been
// failing, and when it last ran. Layout inside the source's bucket:
// covered/ (from → to), goal, failures, retryAt, lastError, lastRun,
// lastSuccess.
var (
	bucketCovered = []byte("covered")
	keyGoal       = []byte("goal")
	keyFailures   = []byte("failures")
	keyRetryAt    = []byte("retryAt")
	keyLastError  = []byte("lastError")
	keyLastRun    = []byte("lastRun")
	keyLastOK     = []byte("lastSuccess")
)

// Range is a half-open time range [From, To).
type Range struct {
	From, To time.Time
}

// Progress is what the pipeline needs to plan a run of one event source
// (or part).
type Progress struct {
	Cursor    time.Time // end of the latest completed window
	HasCursor bool
	// Covered are the time ranges already read completely and delivered
	// to every output, merged and sorted.
	Covered []Range
	// Goal is the earliest time a run was asked to cover (a backfill's
	// start, or the first run's initial lookback); zero when none.
	Goal time.Time
	// Failures counts runs in a row that failed; RetryAt is the earliest
	// time the next attempt should be made (zero: now); LastError the
	// last failure's message.
	Failures  int
	RetryAt   time.Time
	LastError string
	// LastRun is when the source's latest run ended (ok or not) and
	// LastSuccess when its latest successful run ended; zero when never
	// (kept for whole sources, not for parts).
	LastRun, LastSuccess time.Time
}

// maxLastError bounds the stored failure message.
const maxLastError = 500

// Progress reads the source's progress in one transaction.
func (s *Store) Progress(tenant, source string) (Progress, error) {
	var p Progress
	if err := s.validate(source); err != nil {
		return p, err
	}
	err := s.view("reading the progress", func(tx *bolt.Tx) error {
		b, err := s.sourceBucket(tx, tenant, source)
		if err != nil || b == nil {
			return err
		}
		p, err = s.readProgress(b, tenant, source)
		return err
	})
	return p, s.wrap(tenant, source, "reading the progress", err)
}

// readProgress decodes the progress kept in the source's bucket b.
func (s *Store) readProgress(b *bolt.Bucket, tenant, source string) (Progress, error) {
	var p Progress
	times := []struct {
		key  []byte
		to   *time.Time
		what string
	}{
		{keyGoal, &p.Goal, "backfill goal"},
		{keyRetryAt, &p.RetryAt, "retry time"},
		{keyLastRun, &p.LastRun, "last run time"},
		{keyLastOK, &p.LastSuccess, "last success time"},
	}
	var ok bool
	if v := b.Get(keyCursor); v != nil {
		if p.Cursor, ok = decTime(v); !ok {
			return p, s.corrupt(tenant, source, "cursor")
		}
		p.HasCursor = true
	}
	for _, t := range times {
		if v := b.Get(t.key); v != nil {
			if *t.to, ok = decTime(v); !ok {
				return p, s.corrupt(tenant, source, t.what)
			}
		}
	}
	if v := b.Get(keyFailures); v != nil {
		if len(v) != 8 {
			return p, s.corrupt(tenant, source, "failure count")
		}
		p.Failures = int(binary.BigEndian.Uint64(v))
	}
	p.LastError = string(b.Get(keyLastError))
	cb, err := s.subBucket(b, bucketCovered, tenant, source)
	if err != nil || cb == nil {
		return p, err
	}
	err = cb.ForEach(func(k, v []byte) error {
		from, ok1 := decTime(k)
		to, ok2 := decTime(v)
		if !ok1 || !ok2 || !from.Before(to) {
			return s.corrupt(tenant, source, "covered ranges")
		}
		p.Covered = append(p.Covered, Range{From: from, To: to})
		return nil
	})
	return p, err
}

// SetGoal records that the source should cover time from goal on; an
// earlier goal already stored is kept.
func (s *Store) SetGoal(tenant, source string, goal time.Time) error {
	if err := s.validate(source); err != nil {
		return err
	}
	err := s.update("saving the backfill goal", func(tx *bolt.Tx) error {
		b, err := s.createSourceBucket(tx, tenant, source)
		if err != nil {
			return err
		}
		if v := b.Get(keyGoal); v != nil {
			old, ok := decTime(v)
			if !ok {
				return s.corrupt(tenant, source, "backfill goal")
			}
			if !goal.Before(old) {
				return nil
			}
		}
		return b.Put(keyGoal, encTime(goal))
	})
	return s.wrap(tenant, source, "saving the backfill goal", err)
}

// RecordFailure counts one more failed run of the source, remembers msg
// (bounded; it must not hold secrets) and when to try again; it returns
// the number of failures in a row.
func (s *Store) RecordFailure(tenant, source, msg string, retryAt time.Time) (int, error) {
	if err := s.validate(source); err != nil {
		return 0, err
	}
	n := 0
	err := s.update("saving the failure", func(tx *bolt.Tx) error {
		b, err := s.createSourceBucket(tx, tenant, source)
		if err != nil {
			return err
		}
		if v := b.Get(keyFailures); len(v) == 8 {
			n = int(binary.BigEndian.Uint64(v))
		}
		n++
		if len(msg) > maxLastError {
			msg = msg[:maxLastError] + "…"
		}
		if err := b.Put(keyFailures, binary.BigEndian.AppendUint64(nil, uint64(n))); err != nil {
			return err
		}
		if err := b.Put(keyLastError, []byte(msg)); err != nil {
			return err
		}
		return b.Put(keyRetryAt, encTime(retryAt))
	})
	return n, s.wrap(tenant, source, "saving the failure", err)
}

// RecordOutcome notes, in one transaction, that a run of the whole
// source ended at at: with errMsg "" a success (failures are forgotten),
// else one more failure in a row (msg bounded; it must not hold
// secrets). It returns the number of failures in a row.
func (s *Store) RecordOutcome(tenant, source string, at time.Time, errMsg string) (int, error) {
	if err := s.validate(source); err != nil {
		return 0, err
	}
	n := 0
	err := s.update("saving the run's outcome", func(tx *bolt.Tx) error {
		b, err := s.createSourceBucket(tx, tenant, source)
		if err != nil {
			return err
		}
		if err := b.Put(keyLastRun, encTime(at)); err != nil {
			return err
		}
		if errMsg == "" {
			for _, k := range [][]byte{keyFailures, keyLastError, keyRetryAt} {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			return b.Put(keyLastOK, encTime(at))
		}
		if v := b.Get(keyFailures); len(v) == 8 {
			n = int(binary.BigEndian.Uint64(v))
		}
		n++
		if len(errMsg) > maxLastError {
			errMsg = errMsg[:maxLastError] + "…"
		}
		if err := b.Put(keyFailures, binary.BigEndian.AppendUint64(nil, uint64(n))); err != nil {
			return err
		}
		return b.Put(keyLastError, []byte(errMsg))
	})
	return n, s.wrap(tenant, source, "saving the run's outcome", err)
}

// ClearFailures forgets the source's failures after a successful run.
func (s *Store) ClearFailures(tenant, source string) error {
	if err := s.validate(source); err != nil {
		return err
	}
	err := s.update("clearing failures", func(tx *bolt.Tx) error {
		b, err := s.sourceBucket(tx, tenant, source)
		if err != nil || b == nil || b.Get(keyFailures) == nil {
			return err
		}
		for _, k := range [][]byte{keyFailures, keyLastError, keyRetryAt} {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	return s.wrap(tenant, source, "clearing failures", err)
}

// cover merges r into the covered ranges: ranges that overlap or touch r
// become one.
func (s *Store) cover(b *bolt.Bucket, r Range, tenant, source string) error {
	if !r.From.Before(r.To) {
		return nil
	}
	cb, err := s.createSub(b, bucketCovered, tenant, source)
	if err != nil {
		return err
	}
	from, to := encTime(r.From), encTime(r.To)
	var absorbed [][]byte
	c := cb.Cursor()
	// The range starting at or before r.From may reach into r.
	k, v := c.Seek(from)
	switch {
	case k == nil:
		k, v = c.Last()
	case bytes.Compare(k, from) > 0:
		if k, v = c.Prev(); k == nil {
			k, v = c.First()
		}
	}
	for ; k != nil && bytes.Compare(k, to) <= 0; k, v = c.Next() {
		if len(k) != 8 || len(v) != 8 {
			return s.corrupt(tenant, source, "covered ranges")
		}
		if bytes.Compare(v, from) < 0 {
			continue // ends before r starts
		}
		if bytes.Compare(k, from) < 0 {
			from = bytes.Clone(k)
		}
		if bytes.Compare(v, to) > 0 {
			to = bytes.Clone(v)
		}
		absorbed = append(absorbed, bytes.Clone(k))
	}
	for _, k := range absorbed {
		if err := cb.Delete(k); err != nil {
			return err
		}
	}
	return cb.Put(from, to)
}

// Merge returns rs sorted, without empty ranges, and with ranges that
// overlap or touch joined into one; rs itself is left as it is.
func Merge(rs []Range) []Range {
	var sorted []Range
	for _, r := range rs {
		if r.From.Before(r.To) {
			sorted = append(sorted, r)
		}
	}
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].From.Before(sorted[j].From) })
	var out []Range
	for _, r := range sorted {
		if n := len(out); n > 0 && !r.From.After(out[n-1].To) {
			if r.To.After(out[n-1].To) {
				out[n-1].To = r.To
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// Uncovered returns the parts of r that none of covered (sorted, merged)
// holds, in time order.
func Uncovered(r Range, covered []Range) []Range {
	var out []Range
	cur := r.From
	cs := append([]Range(nil), covered...)
	sort.Slice(cs, func(i, j int) bool { return cs[i].From.Before(cs[j].From) })
	for _, c := range cs {
		if !c.To.After(cur) {
			continue
		}
		if !c.From.Before(r.To) {
			break
		}
		if c.From.After(cur) {
			out = append(out, Range{From: cur, To: c.From})
		}
		cur = c.To
		if !cur.Before(r.To) {
			return out
		}
	}
	if cur.Before(r.To) {
		out = append(out, Range{From: cur, To: r.To})
	}
	return out
}

func (r Range) String() string {
	return fmt.Sprintf("%s–%s", r.From.UTC().Format(time.RFC3339), r.To.UTC().Format(time.RFC3339))
}
