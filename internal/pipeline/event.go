package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/state"
)

// Windows computes the range an event source reads and its chunks:
// from = cursor − Overlap (or now − lookback without a cursor), moved
// earlier to since when given, to = now − Delay, cut into pieces of at
// most MaxWindow. A since later than the cursor never skips the data in
// between: the cursor moves to the window's end, so a gap left behind it
// would be lost for good.
func Windows(now, cursor time.Time, hasCursor bool, since time.Time, lookback time.Duration, w source.Windowing) (source.Window, []source.Window) {
	from := now.Add(-lookback)
	if hasCursor {
		from = cursor.Add(-w.Overlap)
	}
	if !since.IsZero() && (!hasCursor || since.Before(from)) {
		from = since
	}
	whole := source.Window{From: from.UTC(), To: now.Add(-w.Delay).UTC()}
	if !whole.From.Before(whole.To) {
		return whole, nil
	}
	if w.MaxWindow <= 0 {
		return whole, []source.Window{whole}
	}
	var chunks []source.Window
	for f := whole.From; f.Before(whole.To); {
		t := f.Add(w.MaxWindow)
		if t.After(whole.To) {
			t = whole.To
		}
		chunks = append(chunks, source.Window{From: f, To: t})
		f = t
	}
	return whole, chunks
}

// retention is how long delivered ids are kept behind the cursor: two
// overlaps (the re-read span) plus an hour of slack, at least 48h.
func retention(w source.Windowing) time.Duration {
	return max(2*w.Overlap+time.Hour, minRetention)
}

// eventRun is one event source in one run. The emit callback may be
// called from several goroutines; mu serialises it, and flushing under
// mu is the backpressure that keeps memory bounded.
type eventRun struct {
	p      *Pipeline
	tenant string
	src    source.EventSource
	name   string
	table  string
	keep   time.Duration
	res    *Result

	mu      sync.Mutex
	chunk   source.Window
	open    bool  // emits accepted only while Fetch runs
	failed  error // first delivery/commit failure: the source must stop
	pending []source.Item
	ids     map[string]struct{} // ids in pending
	bytes   int
}

func (p *Pipeline) runEvent(ctx context.Context, tenant string, src source.EventSource, ro RunOptions, res *Result) error {
	name := src.Name()
	cursor, hasCursor, err := p.opts.Store.Cursor(tenant, name)
	if err != nil {
		return err
	}
	wd := src.Windowing()
	whole, chunks := Windows(p.opts.Now(), cursor, hasCursor, ro.Since, p.opts.InitialLookback, wd)
	res.Window = whole
	p.log.Debug("reading window", "source", name, "from", whole.From, "to", whole.To, "chunks", len(chunks), "has_cursor", hasCursor)

	r := &eventRun{p: p, tenant: tenant, src: src, name: name, table: src.Table(), keep: retention(wd), res: res,
		ids: map[string]struct{}{}}
	for _, c := range chunks {
		if err := r.runChunk(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

func (r *eventRun) runChunk(ctx context.Context, c source.Window) error {
	r.mu.Lock()
	r.chunk, r.open = c, true
	r.mu.Unlock()

	fetchErr := r.src.Fetch(ctx, c, r.emit)

	r.mu.Lock()
	defer r.mu.Unlock()
	r.open = false
	if r.failed != nil {
		// Our own failure came back through the source; report ours.
		return r.failed
	}
	if fetchErr != nil {
		// Deliver what was read before the failure (it is genuine), but
		// do not move the cursor: the window is not complete.
		if ctx.Err() == nil && len(r.pending) > 0 {
			if err := r.flush(ctx, time.Time{}); err != nil {
				return errors.Join(fetchErr, err)
			}
		}
		return fetchErr
	}
	return r.flush(ctx, c.To)
}

func (r *eventRun) emit(ctx context.Context, it source.Item) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failed != nil {
		return r.failed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !r.open {
		return errors.New("emit called after Fetch returned (a bug in the source)")
	}
	r.res.Fetched++
	if !r.chunk.Contains(it.Time) {
		r.res.OutOfWindow++
		return nil
	}
	if it.ID == "" {
		// No natural id: the content is the identity.
		it.ID = record.StableID(r.name, string(it.Raw))
	}
	if err := validJSON(it.Raw, "item "+it.ID); err != nil {
		r.failed = err
		return err
	}
	if _, dup := r.ids[it.ID]; dup {
		r.res.Duplicates++
		return nil
	}
	r.ids[it.ID] = struct{}{}
	r.pending = append(r.pending, it)
	r.bytes += approxSize(&it)
	if len(r.pending) >= r.p.opts.BatchSize || r.bytes >= r.p.opts.BatchBytes {
		if err := r.flush(ctx, time.Time{}); err != nil {
			r.failed = err
			return err
		}
	}
	return nil
}

// flush delivers the pending items not delivered before, then commits
// their ids (and cursor, when not zero) in one transaction. The commit
// happens only after every sink accepted. Called with mu held.
func (r *eventRun) flush(ctx context.Context, cursor time.Time) error {
	store := r.p.opts.Store
	var recs []record.Record
	var seen []state.SeenID
	if len(r.pending) > 0 {
		ids := make([]string, len(r.pending))
		for i := range r.pending {
			ids[i] = r.pending[i].ID
		}
		already, err := store.SeenAmong(r.tenant, r.name, ids)
		if err != nil {
			return err
		}
		now := r.p.opts.Now().UTC()
		recs = make([]record.Record, 0, len(r.pending))
		seen = make([]state.SeenID, 0, len(r.pending))
		for _, it := range r.pending {
			if already[it.ID] {
				r.res.Duplicates++
				continue
			}
			recs = append(recs, record.Record{
				Tenant: r.tenant, Source: r.name, Table: r.table, ID: it.ID,
				Time: it.Time.UTC(), HarvestedAt: now, Raw: it.Raw,
			})
			seen = append(seen, state.SeenID{ID: it.ID, Time: it.Time})
		}
	}
	if len(recs) > 0 {
		if err := r.p.deliver(ctx, r.table, recs); err != nil {
			return err
		}
	}
	if len(seen) > 0 || !cursor.IsZero() {
		c := state.Commit{Seen: seen, Cursor: cursor}
		if !cursor.IsZero() {
			c.PruneBefore = cursor.Add(-r.keep)
		}
		if err := store.Commit(r.tenant, r.name, c); err != nil {
			return fmt.Errorf("%d records were delivered but the checkpoint could not be saved (they will be delivered again): %w", len(recs), err)
		}
	}
	r.res.New += len(recs)
	clear(r.ids)
	clear(r.pending) // drop payload references
	r.pending = r.pending[:0]
	r.bytes = 0
	return nil
}
