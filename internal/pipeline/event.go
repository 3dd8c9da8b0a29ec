package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/state"
)

// Plan is what one run of an event source (or of one of its parts) reads.
type Plan struct {
	// Whole spans every chunk (zero when there is nothing to read).
	Whole source.Window
	// Chunks are read in this order: the range reaching the window end
	// (the fresh data) first, then older gaps oldest first. Each is at
	// most MaxWindow long and is committed (cursor, covered range) when
	// done.
	Chunks []source.Window
	// Goal, when not zero, is the earliest time to cover, to be kept in
	// the state so an interrupted backfill resumes in the next run.
	Goal time.Time
}

// PlanWindows decides what to read. The window ends at now − Delay. It
// starts at the cursor − Overlap (re-read for late arrivals; delivered
// ids are dropped), or now − lookback on the first run. Time between the
// goal (the earliest start ever asked for: the first run's start or a
// backfill's Since) and the window end that is not covered yet is read as
// well, so a backfill reads only what is missing, and resumes where it
// stopped. With Redeliver it reads [Since, cursor) whatever is covered.
func PlanWindows(now time.Time, prog state.Progress, ro RunOptions, lookback time.Duration, w source.Windowing) Plan {
	end := now.Add(-w.Delay).UTC()
	var ranges []state.Range
	var goal time.Time
	if ro.Redeliver {
		if prog.HasCursor && !ro.Since.IsZero() {
			ranges = []state.Range{{From: ro.Since, To: minTime(end, prog.Cursor)}}
		}
	} else {
		inc := now.Add(-lookback)
		switch {
		case prog.HasCursor:
			inc = prog.Cursor.Add(-w.Overlap)
		case !ro.Since.IsZero():
			inc = ro.Since // a first run told where to start starts there
		}
		goal = prog.Goal
		if !prog.HasCursor && (goal.IsZero() || inc.Before(goal)) {
			goal = inc
		}
		if !ro.Since.IsZero() && (goal.IsZero() || ro.Since.Before(goal)) {
			goal = ro.Since
		}
		if !goal.IsZero() {
			ranges = state.Uncovered(state.Range{From: goal, To: end}, prog.Covered)
		}
		ranges = append(ranges, state.Range{From: inc, To: end})
		if goal.Equal(prog.Goal) {
			goal = time.Time{} // nothing new to store
		}
	}
	ranges = mergeRanges(ranges)
	if len(ranges) == 0 {
		return Plan{Goal: goal}
	}
	// The range reaching the end (fresh data) first, then older gaps.
	if last := len(ranges) - 1; ranges[last].To.Equal(end) && last > 0 {
		ranges = append([]state.Range{ranges[last]}, ranges[:last]...)
	}
	plan := Plan{Goal: goal, Whole: source.Window{From: ranges[0].From, To: ranges[0].To}}
	for _, r := range ranges {
		plan.Whole.From = minTime(plan.Whole.From, r.From)
		plan.Whole.To = maxTime(plan.Whole.To, r.To)
		for f := r.From; f.Before(r.To); {
			t := r.To
			if w.MaxWindow > 0 && f.Add(w.MaxWindow).Before(t) {
				t = f.Add(w.MaxWindow)
			}
			plan.Chunks = append(plan.Chunks, source.Window{From: f.UTC(), To: t.UTC()})
			f = t
		}
	}
	return plan
}

// mergeRanges sorts ranges, drops empty ones and joins those that overlap
// or touch.
func mergeRanges(rs []state.Range) []state.Range {
	rs = slices.DeleteFunc(rs, func(r state.Range) bool { return !r.From.Before(r.To) })
	slices.SortFunc(rs, func(a, b state.Range) int { return a.From.Compare(b.From) })
	var out []state.Range
	for _, r := range rs {
		if n := len(out); n > 0 && !r.From.After(out[n-1].To) {
			out[n-1].To = maxTime(out[n-1].To, r.To)
			continue
		}
		out = append(out, r)
	}
	return out
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// retention is how long delivered ids are kept behind the cursor: two
// overlaps (the re-read span) plus an hour of slack, at least 48h.
func retention(w source.Windowing) time.Duration {
	return max(2*w.Overlap+time.Hour, minRetention)
}

// partBackoff is how long a part that failed n runs in a row rests: the
// next run retries it after one failure, then 15 min doubling to 6 h.
func partBackoff(n int) time.Duration {
	if n <= 1 {
		return 0
	}
	return min(15*time.Minute<<min(n-2, 10), 6*time.Hour)
}

// PartResult is what happened to one part (device) of a partitioned
// source that did not succeed.
type PartResult struct {
	Part string
	Err  error
	// Failures counts its failed runs in a row; RetryAt is when it is
	// tried again; Skipped says it was not read in this run (resting).
	Failures int
	RetryAt  time.Time
	Skipped  bool
}

// deliveryError marks a failure of the outputs or the state (not of the
// source): every part would hit it, so a partitioned source stops.
type deliveryError struct{ err error }

func (e *deliveryError) Error() string { return e.err.Error() }
func (e *deliveryError) Unwrap() error { return e.err }

// now is the time windows are computed from: ours, or the services' when
// the measured skew exceeds MaxSkew.
func (p *Pipeline) now() time.Time {
	now := p.opts.Now()
	if p.opts.Skew == nil {
		return now
	}
	d, ok := p.opts.Skew()
	if !ok || (d <= MaxSkew && d >= -MaxSkew) {
		return now
	}
	p.skewOnce.Do(func() {
		p.log.Warn("this machine's clock differs from the Defender services' by more than a minute; windows follow the services' clock so no event is skipped — fix the time sync (NTP) of this machine",
			"skew", d.Round(time.Second).String())
	})
	return now.Add(d)
}

func (p *Pipeline) runEvent(ctx context.Context, tenant string, src source.EventSource, ro RunOptions, res *Result) error {
	now := p.now()
	ps, ok := src.(source.PartitionedSource)
	if !ok {
		return p.runUnit(ctx, tenant, src, src.Name(), src.Fetch, now, ro, res)
	}
	parts, err := ps.Parts(ctx)
	if err != nil {
		return err
	}
	res.PartsTotal = len(parts)
	for _, part := range parts {
		if strings.Contains(part, "/") || part == "" {
			return fmt.Errorf("part name %q is empty or holds a slash (a bug in the source)", part)
		}
		key := src.Name() + "/" + part
		prog, err := p.opts.Store.Progress(tenant, key)
		if err != nil {
			return err
		}
		if !ro.Redeliver && prog.RetryAt.After(now) {
			res.Parts = append(res.Parts, PartResult{Part: part, Skipped: true, Failures: prog.Failures,
				RetryAt: prog.RetryAt, Err: errors.New(prog.LastError)})
			continue
		}
		fetch := func(ctx context.Context, w source.Window, emit source.Emit) error {
			return ps.FetchPart(ctx, part, w, emit)
		}
		err = p.runUnit(ctx, tenant, src, key, fetch, now, ro, res)
		var de *deliveryError
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.As(err, &de):
			return err
		case err != nil && !ro.Redeliver:
			n := prog.Failures + 1
			retryAt := now.Add(partBackoff(n))
			if _, rerr := p.opts.Store.RecordFailure(tenant, key, err.Error(), retryAt); rerr != nil {
				return rerr
			}
			p.log.Warn("part failed; the others carry on and it is tried again later", "source", src.Name(), "part", part,
				"failures", n, "retry_after", retryAt, "err", err)
			res.Parts = append(res.Parts, PartResult{Part: part, Err: err, Failures: n, RetryAt: retryAt})
		case err != nil:
			res.Parts = append(res.Parts, PartResult{Part: part, Err: err})
		case prog.Failures > 0:
			if err := p.opts.Store.ClearFailures(tenant, key); err != nil {
				return err
			}
		}
	}
	return partsError(res)
}

// partsError summarises the parts that were not harvested, or nil.
func partsError(res *Result) error {
	if len(res.Parts) == 0 {
		return nil
	}
	const show = 5
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d parts not harvested", len(res.Parts), res.PartsTotal)
	for i, pr := range res.Parts {
		if i == show {
			fmt.Fprintf(&b, "; and %d more", len(res.Parts)-show)
			break
		}
		switch {
		case pr.Skipped:
			fmt.Fprintf(&b, "; %s: resting after %d failures in a row until %s (last: %v)", pr.Part, pr.Failures, pr.RetryAt.UTC().Format(time.RFC3339), pr.Err)
		case pr.RetryAt.IsZero():
			fmt.Fprintf(&b, "; %s: %v", pr.Part, pr.Err)
		default:
			fmt.Fprintf(&b, "; %s: %v (failure %d in a row, next try after %s)", pr.Part, pr.Err, pr.Failures, pr.RetryAt.UTC().Format(time.RFC3339))
		}
	}
	return errors.New(b.String())
}

// runUnit reads one event source, or one part of it (key is the state
// key: the source name, or name/part), chunk by chunk.
func (p *Pipeline) runUnit(ctx context.Context, tenant string, src source.EventSource, key string,
	fetch func(context.Context, source.Window, source.Emit) error, now time.Time, ro RunOptions, res *Result) error {
	prog, err := p.opts.Store.Progress(tenant, key)
	if err != nil {
		return err
	}
	wd := src.Windowing()
	plan := PlanWindows(now, prog, ro, p.opts.InitialLookback, wd)
	if len(plan.Chunks) > 0 {
		if res.Window.From.IsZero() || plan.Whole.From.Before(res.Window.From) {
			res.Window.From = plan.Whole.From
		}
		res.Window.To = maxTime(res.Window.To, plan.Whole.To)
	}
	if !plan.Goal.IsZero() {
		if err := p.opts.Store.SetGoal(tenant, key, plan.Goal); err != nil {
			return err
		}
	}
	p.opts.Observer.Planned(tenant, key, len(plan.Chunks), plan.Whole)
	p.log.Debug("reading", "source", key, "from", plan.Whole.From, "to", plan.Whole.To, "chunks", len(plan.Chunks),
		"has_cursor", prog.HasCursor, "covered", len(prog.Covered), "redeliver", ro.Redeliver)

	r := &eventRun{p: p, tenant: tenant, name: src.Name(), key: key, table: src.Table(), fetch: fetch,
		keep: retention(wd), res: res, cursor: prog.Cursor, redeliver: ro.Redeliver, ids: map[string]struct{}{}}
	defer func() {
		// The source's cursor is its least advanced part's.
		if !r.cursor.IsZero() && (res.Cursor.IsZero() || r.cursor.Before(res.Cursor)) {
			res.Cursor = r.cursor
		}
	}()
	for _, c := range plan.Chunks {
		before := res.New
		if err := r.runChunk(ctx, c); err != nil {
			return err
		}
		p.opts.Observer.ChunkDone(tenant, key, c, res.New-before)
	}
	return nil
}

// eventRun is one event source (or part) in one run. The emit callback
// may be called from several goroutines; mu serialises it, and flushing
// under mu is the backpressure that keeps memory bounded.
type eventRun struct {
	p         *Pipeline
	tenant    string
	name, key string
	table     string
	fetch     func(context.Context, source.Window, source.Emit) error
	keep      time.Duration
	res       *Result
	redeliver bool

	mu      sync.Mutex
	cursor  time.Time // the stored cursor: the prune point follows the latest
	chunk   source.Window
	open    bool  // emits accepted only while Fetch runs
	failed  error // first delivery/commit failure: the source must stop
	pending []source.Item
	ids     map[string]struct{} // ids in pending
	bytes   int
	since   time.Time // when the first pending item came
}

func (r *eventRun) runChunk(ctx context.Context, c source.Window) error {
	r.mu.Lock()
	r.chunk, r.open = c, true
	r.mu.Unlock()

	fetchErr := r.fetch(ctx, c, r.emit)

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
			if err := r.flush(ctx, false); err != nil {
				return errors.Join(fetchErr, err)
			}
		}
		return fetchErr
	}
	return r.flush(ctx, true)
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
	now := r.p.opts.Now()
	if len(r.pending) == 0 {
		r.since = now
	}
	r.pending = append(r.pending, it)
	r.bytes += approxSize(&it)
	// A batch is cut by bytes (BatchBytes; BatchSize caps the count) or
	// when its first item waited FlushAfter: each flush costs an fsync
	// per output and a commit, so it should carry megabytes, not a
	// fixed count of records.
	if len(r.pending) >= r.p.opts.BatchSize || r.bytes >= r.p.opts.BatchBytes ||
		now.Sub(r.since) >= r.p.opts.FlushAfter {
		if err := r.flush(ctx, false); err != nil {
			r.failed = err
			return err
		}
	}
	return nil
}

// flush delivers the pending items not delivered before, then commits
// their ids — and, at the end of a chunk, the cursor and the chunk as
// covered — in one transaction. The commit happens only after every
// output accepted (or durably spooled) the batch. A redelivery sends
// every pending item to its outputs and commits nothing. Called with mu
// held.
func (r *eventRun) flush(ctx context.Context, chunkDone bool) error {
	store := r.p.opts.Store
	var recs []record.Record
	var seen []state.SeenID
	if len(r.pending) > 0 {
		already := map[string]bool{}
		if !r.redeliver {
			ids := make([]string, len(r.pending))
			for i := range r.pending {
				ids[i] = r.pending[i].ID
			}
			var err error
			if already, err = store.SeenAmong(r.tenant, r.key, ids); err != nil {
				return &deliveryError{err}
			}
		}
		now := r.p.opts.Now().UTC()
		recs = make([]record.Record, 0, len(r.pending))
		seen = make([]state.SeenID, 0, len(r.pending))
		for _, it := range r.pending {
			if already[it.ID] {
				r.res.Duplicates++
				continue
			}
			// RawValid: emit checked this payload (validJSON); the
			// outputs and AppendJSON do not scan it again.
			recs = append(recs, record.Record{
				Tenant: r.tenant, Source: r.name, Table: r.table, ID: it.ID,
				Time: it.Time.UTC(), HarvestedAt: now, Raw: it.Raw, RawValid: true,
			})
			seen = append(seen, state.SeenID{ID: it.ID, Time: it.Time})
		}
	}
	if len(recs) > 0 {
		deliver := r.p.deliver
		if r.redeliver {
			deliver = r.p.redeliverTo
		}
		if err := deliver(ctx, r.table, recs); err != nil {
			return &deliveryError{err}
		}
	}
	if !r.redeliver && (len(seen) > 0 || chunkDone) {
		c := state.Commit{Seen: seen}
		if chunkDone {
			c.Cursor, c.Cover = r.chunk.To, state.Range{From: r.chunk.From, To: r.chunk.To}
			r.cursor = maxTime(r.cursor, r.chunk.To)
			c.PruneBefore = r.cursor.Add(-r.keep)
		}
		if err := store.Commit(r.tenant, r.key, c); err != nil {
			return &deliveryError{fmt.Errorf("%d records were delivered but the checkpoint could not be saved (they will be delivered again): %w", len(recs), err)}
		}
	}
	r.res.New += len(recs)
	clear(r.ids)
	clear(r.pending) // drop payload references
	r.pending = r.pending[:0]
	r.bytes = 0
	return nil
}
