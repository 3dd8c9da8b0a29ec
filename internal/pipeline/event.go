package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

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
		// What is not covered between the goal and the end, plus the
		// re-read band behind the newest time read (late arrivals; their
		// ids are remembered). Covered time beyond it — windows an
		// interrupted run finished, or the part of a window read newest
		// first before it stopped — is not read again.
		from := goal
		if from.IsZero() {
			from = inc // a state from before goals were kept
		}
		ranges = state.Uncovered(state.Range{From: from, To: end}, prog.Covered)
		if last := newest(prog); !last.IsZero() {
			ranges = append(ranges, state.Range{From: last.Add(-w.Overlap), To: minTime(last, end)})
		}
		if goal.Equal(prog.Goal) {
			goal = time.Time{} // nothing new to store
		}
	}
	ranges = state.Merge(ranges)
	if len(ranges) == 0 {
		return Plan{Goal: goal}
	}
	// The range reaching the end (fresh data) first, newest chunk first,
	// then older gaps oldest first.
	fresh := -1
	if last := len(ranges) - 1; ranges[last].To.Equal(end) {
		fresh = last
		ranges = append([]state.Range{ranges[last]}, ranges[:last]...)
	}
	plan := Plan{Goal: goal, Whole: source.Window{From: ranges[0].From, To: ranges[0].To}}
	for i, r := range ranges {
		plan.Whole.From = minTime(plan.Whole.From, r.From)
		plan.Whole.To = maxTime(plan.Whole.To, r.To)
		var chunks []source.Window
		for f := r.From; f.Before(r.To); {
			t := r.To
			if w.MaxWindow > 0 && f.Add(w.MaxWindow).Before(t) {
				t = f.Add(w.MaxWindow)
			}
			chunks = append(chunks, source.Window{From: f.UTC(), To: t.UTC()})
			f = t
		}
		if i == 0 && fresh >= 0 {
			slices.Reverse(chunks)
		}
		plan.Chunks = append(plan.Chunks, chunks...)
	}
	return plan
}

// newest is the latest time read so far: the cursor, or the end of the
// latest covered range when that is later (a window read in part).
func newest(prog state.Progress) time.Time {
	last := prog.Cursor
	for _, c := range prog.Covered {
		last = maxTime(last, c.To)
	}
	return last
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

// retention is how long delivered ids are kept behind the cursor: the
// next run re-reads Overlap before it, so twice that leaves room for a
// larger overlap set later; a source whose service re-delivers records
// much later asks for more (Windowing.Remember). Ids of time not yet covered are kept
// whatever their age (state.Commit), so an interrupted window drops what
// it delivered when read again.
func retention(w source.Windowing) time.Duration {
	return max(2*w.Overlap, w.Remember, minRetention)
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

// part is one part (device) of an event source in one run, or the whole
// source when it has no parts: its own cursor, covered ranges, seen ids
// and failures.
type part struct {
	name  string // "" for a source without parts
	key   string // state key: the source name, or name/part
	prog  state.Progress
	fetch func(context.Context, source.Window, source.Emit) error
	// cursor is the stored cursor, moved as windows complete; newest is
	// the latest time read (newest in PlanWindows): the re-read band
	// behind it keeps its ids.
	cursor time.Time
	newest time.Time
	// err is its first read failure in this run; its windows not yet
	// started are then left for the next run.
	err error
}

// runEvent reads an event source: every window of every part (device)
// is one unit of work, read by Workers() workers at once when the source
// is Parallel, and everything they read flows through one batcher into
// the outputs (eventRun).
func (p *Pipeline) runEvent(ctx context.Context, tenant string, src source.EventSource, ro RunOptions, res *Result) error {
	now := p.now()
	ps, partitioned := src.(source.PartitionedSource)
	var parts []*part
	if !partitioned {
		parts = []*part{{key: src.Name(), fetch: src.Fetch}}
	} else {
		names, err := ps.Parts(ctx)
		if err != nil {
			return err
		}
		res.PartsTotal = len(names)
		for _, name := range names {
			if strings.Contains(name, "/") || name == "" {
				return fmt.Errorf("part name %q is empty or holds a slash (a bug in the source)", name)
			}
			parts = append(parts, &part{name: name, key: src.Name() + "/" + name,
				fetch: func(ctx context.Context, w source.Window, emit source.Emit) error {
					return ps.FetchPart(ctx, name, w, emit)
				}})
		}
	}
	wd := src.Windowing()
	var units []*unit
	var running []*part
	for _, pt := range parts {
		prog, err := p.opts.Store.Progress(tenant, pt.key)
		if err != nil {
			return err
		}
		pt.prog, pt.cursor, pt.newest = prog, prog.Cursor, newest(prog)
		if partitioned && !ro.Redeliver && prog.RetryAt.After(now) {
			res.Parts = append(res.Parts, PartResult{Part: pt.name, Skipped: true, Failures: prog.Failures,
				RetryAt: prog.RetryAt, Err: errors.New(prog.LastError)})
			continue
		}
		plan := PlanWindows(now, prog, ro, p.opts.InitialLookback, wd)
		if len(plan.Chunks) > 0 {
			if res.Window.From.IsZero() || plan.Whole.From.Before(res.Window.From) {
				res.Window.From = plan.Whole.From
			}
			res.Window.To = maxTime(res.Window.To, plan.Whole.To)
		}
		if !plan.Goal.IsZero() {
			if err := p.opts.Store.SetGoal(tenant, pt.key, plan.Goal); err != nil {
				return err
			}
		}
		p.opts.Observer.Planned(tenant, pt.key, len(plan.Chunks), plan.Whole)
		p.log.Debug("reading", "source", pt.key, "from", plan.Whole.From, "to", plan.Whole.To, "chunks", len(plan.Chunks),
			"has_cursor", prog.HasCursor, "covered", len(prog.Covered), "redeliver", ro.Redeliver)
		running = append(running, pt)
		for _, c := range plan.Chunks {
			units = append(units, &unit{part: pt, chunk: c})
		}
	}
	workers := 1
	if par, ok := src.(source.Parallel); ok {
		workers = max(1, par.Workers())
	}
	r := &eventRun{p: p, tenant: tenant, name: src.Name(), table: src.Table(), keep: retention(wd),
		redeliver: ro.Redeliver, res: res}
	err := r.run(ctx, units, workers)
	for _, pt := range running {
		// The source's cursor is its least advanced part's.
		if !pt.cursor.IsZero() && (res.Cursor.IsZero() || pt.cursor.Before(res.Cursor)) {
			res.Cursor = pt.cursor
		}
	}
	switch {
	case err != nil:
		return err
	case ctx.Err() != nil:
		return ctx.Err()
	case !partitioned:
		return parts[0].err
	}
	for _, pt := range running {
		switch {
		case pt.err != nil && !ro.Redeliver:
			n := pt.prog.Failures + 1
			retryAt := now.Add(partBackoff(n))
			if _, rerr := p.opts.Store.RecordFailure(tenant, pt.key, pt.err.Error(), retryAt); rerr != nil {
				return rerr
			}
			p.log.Warn("part failed; the others carry on and it is tried again later", "source", src.Name(), "part", pt.name,
				"failures", n, "retry_after", retryAt, "err", pt.err)
			res.Parts = append(res.Parts, PartResult{Part: pt.name, Err: pt.err, Failures: n, RetryAt: retryAt})
		case pt.err != nil:
			res.Parts = append(res.Parts, PartResult{Part: pt.name, Err: pt.err})
		case pt.prog.Failures > 0:
			if err := p.opts.Store.ClearFailures(tenant, pt.key); err != nil {
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

// fmtCommitErr says that delivered records could not be checkpointed.
func fmtCommitErr(n int, err error) error {
	return fmt.Errorf("%d records were delivered but the checkpoint could not be saved (they will be delivered again): %w", n, err)
}
