package pipeline

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/state"
)

// unit is one window of one part: what a worker reads.
type unit struct {
	part *part
	// chunk is its window; a split moves From up (under mu).
	chunk source.Window
	// push: it reads what the source was told about (Pipeline.Push), not
	// a window: every item is taken whatever its time, and finishing it
	// covers nothing and moves no cursor.
	push bool
	news int // records of it delivered so far (the deliverer's)
	// Under mu: whether a worker reads it, whether it emitted a progress
	// mark (it reads newest first), the oldest event time it emitted and
	// how many events.
	running bool
	marked  bool
	split   bool // its older part was split off
	// finished: its window is read and committed, or it failed (under
	// unitsMu).
	finished bool
	low      time.Time
	emitted  int
}

// pending is one read item waiting for its batch to be delivered.
type pending struct {
	unit *unit
	it   source.Item
}

// progressMark says how far a unit is read: at zero, completely; else
// every item of it later than at (source.Item.Mark). chunk is the unit's
// window when the mark was made (a split may shrink it later).
type progressMark struct {
	unit  *unit
	at    time.Time
	chunk source.Window
}

// batch is what one flush delivers and commits: the items, and the
// progress of the units whose items it completes.
type batch struct {
	items []pending
	marks []progressMark
	bytes int
	since time.Time // when its first item came
}

type dedupKey struct {
	part *part
	id   string
}

// eventRun is one run of an event source. Workers read units and emit
// into one batch under mu; a full batch is handed to the deliverer, which
// writes it to every output and then commits, in one transaction, the
// ids it delivered and the progress of the units it completes. While it
// delivers, the workers fill the next batch; when that one is full too,
// they wait (back-pressure): at most two batches are held, whatever the
// number of workers or events.
type eventRun struct {
	p           *Pipeline
	tenant      string
	name, table string
	keep        time.Duration
	redeliver   bool
	res         *Result

	mu          sync.Mutex
	cur         *batch
	ids         map[dedupKey]struct{} // ids in cur
	fetched     int
	outOfWindow int
	dupPending  int
	// unitsMu guards all, each unit's chunk and finished, with mu held
	// first when both are (writers hold both; readers either).
	unitsMu sync.Mutex
	all     []*unit   // every unit, split-off ones included
	queue   []*unit   // units not started, in plan order
	active  int       // units being read
	idle    sync.Cond // a worker waits here for work to split off
	waiting int       // workers waiting on idle

	out    chan *batch
	stop   chan struct{} // closed when delivery failed
	failed error         // why; written before stop is closed
	dups   int           // the deliverer's
	news   int
}

// run reads units with workers workers and delivers what they read.
// It returns a delivery (or state) failure, which stops every worker;
// read failures are left in each unit's part.
func (r *eventRun) run(ctx context.Context, units []*unit, workers int) error {
	if len(units) == 0 {
		return nil
	}
	r.cur, r.ids = &batch{}, map[dedupKey]struct{}{}
	r.out, r.stop = make(chan *batch), make(chan struct{})
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	delivered := make(chan struct{})
	go func() {
		defer close(delivered)
		for b := range r.out {
			if r.failed != nil {
				continue // stopping: the rest is read again next run
			}
			if err := r.deliverBatch(ctx, b); err != nil {
				r.failed = &deliveryError{err}
				close(r.stop)
				cancel()
			}
		}
	}()

	r.all, r.queue = units, units
	r.idle.L = &r.mu
	stopWaiting := context.AfterFunc(wctx, func() {
		r.mu.Lock()
		r.idle.Broadcast()
		r.mu.Unlock()
	})
	defer stopWaiting()
	var wg sync.WaitGroup
	// Not capped by the units: idle workers split running ones.
	for range workers {
		wg.Go(func() {
			for u := r.next(wctx); u != nil; u = r.next(wctx) {
				r.read(wctx, u)
			}
		})
	}
	wg.Wait()
	if ctx.Err() == nil {
		r.mu.Lock()
		_ = r.seal(ctx) // what was read, also before a read failed, is genuine
		r.mu.Unlock()
	}
	close(r.out)
	<-delivered
	r.res.Fetched += r.fetched
	r.res.OutOfWindow += r.outOfWindow
	r.res.Duplicates += r.dupPending + r.dups
	r.res.New += r.news
	if r.failed != nil {
		return r.failed
	}
	return nil
}

// deliveryErr is the delivery failure, once there is one.
func (r *eventRun) deliveryErr() error {
	select {
	case <-r.stop:
		return r.failed
	default:
		return nil
	}
}

// read reads one unit; a unit read completely is marked done in the
// batch, to be committed once its items are delivered.
func (r *eventRun) read(ctx context.Context, u *unit) {
	r.mu.Lock()
	w := u.chunk
	r.mu.Unlock()
	err := u.part.fetch(ctx, w, func(ctx context.Context, it source.Item) error { return r.emit(ctx, u, it) })
	r.mu.Lock()
	defer r.mu.Unlock()
	u.running = false
	r.active--
	r.idle.Broadcast() // waiting workers: one fewer to split, maybe nothing left
	switch {
	case r.deliveryErr() != nil || ctx.Err() != nil:
	case err != nil && !errors.Is(err, errWindowSplit):
		if u.part.err == nil {
			u.part.err = err
		}
		// Not read again in this run: its ids need no protection.
		r.unitsMu.Lock()
		u.finished = true
		r.unitsMu.Unlock()
	default:
		if !u.push {
			r.cur.marks = append(r.cur.marks, progressMark{unit: u, chunk: u.chunk})
		}
		if r.due(r.p.opts.Now()) {
			_ = r.seal(ctx)
		}
	}
}

// errWindowSplit is what emit answers a unit whose older part another
// worker now reads (split): the source stops and the unit is done.
var errWindowSplit = errors.New("the rest of this window is read by another worker")

// Splitting: a unit is split when a worker is idle, only if it reads
// newest first (it emitted a progress mark) and its unread part still
// holds about splitMinEvents events (judged from the density of what it
// read), so a split saves more than the request it costs.
const (
	splitMinEvents = 2000
	splitMinSpan   = 2 * time.Minute
)

// next gives a worker its next unit: the first one queued whose part has
// not failed, else the older half of the unread part of the unit with the
// most left (work stealing: the last windows of a backfill do not leave
// workers idle). It waits while units run that may become splittable, and
// returns nil when nothing is left or the run stops.
func (r *eventRun) next(ctx context.Context) *unit {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		if ctx.Err() != nil || r.deliveryErr() != nil {
			return nil
		}
		for len(r.queue) > 0 {
			u := r.queue[0]
			r.queue = r.queue[1:]
			if u.part.err != nil {
				continue // its part failed: the rest waits for the next run
			}
			u.running = true
			r.active++
			return u
		}
		if u := r.split(); u != nil {
			u.running = true
			r.active++
			return u
		}
		if r.active == 0 {
			return nil
		}
		r.waiting++
		r.idle.Wait()
		r.waiting--
	}
}

// split cuts the unread part of the running unit with the most events
// left in two at half its time and returns the older half as a new unit;
// the running unit's window now starts there. Called with mu held.
func (r *eventRun) split() *unit {
	var best *unit
	var bestLeft float64
	for _, u := range r.running() {
		if !u.marked || u.low.IsZero() || u.part.err != nil {
			continue
		}
		unread, read := u.low.Sub(u.chunk.From), u.chunk.To.Sub(u.low)
		if unread < splitMinSpan || read <= 0 {
			continue
		}
		left := float64(u.emitted) * float64(unread) / float64(read)
		if left >= splitMinEvents && left > bestLeft {
			best, bestLeft = u, left
		}
	}
	if best == nil {
		return nil
	}
	at := best.chunk.From.Add(best.low.Sub(best.chunk.From) / 2).Truncate(time.Second)
	if !at.After(best.chunk.From) {
		return nil
	}
	older := &unit{part: best.part, chunk: source.Window{From: best.chunk.From, To: at}}
	r.unitsMu.Lock()
	best.chunk.From, best.split = at, true
	r.all = append(r.all, older)
	r.unitsMu.Unlock()
	r.p.opts.Observer.Planned(r.tenant, best.part.key, 1, older.chunk)
	return older
}

// reading lists, per part of parts, what its units not finished yet
// read again of the time covered before this run, done counting as
// finished. The deliverer calls it, so it
// takes unitsMu, never mu (a worker holds mu while it waits for the
// deliverer to take a batch).
func (r *eventRun) reading(parts []*part, done []progressMark) map[*part][]state.Range {
	r.unitsMu.Lock()
	defer r.unitsMu.Unlock()
	for _, m := range done {
		m.unit.finished = true
	}
	want := map[*part]bool{}
	for _, pt := range parts {
		want[pt] = true
	}
	out := map[*part][]state.Range{}
	for _, u := range r.all {
		if !want[u.part] || u.finished {
			continue
		}
		// Only what was covered before this run is read again (the
		// band): the rest holds no id of an earlier run, and what marks
		// cover as this run reads is not read twice.
		for _, c := range u.part.prog.Covered {
			from, to := maxTime(c.From, u.chunk.From), minTime(c.To, u.chunk.To)
			if from.Before(to) {
				out[u.part] = append(out[u.part], state.Range{From: from, To: to})
			}
		}
	}
	return out
}

// running lists the units being read. Called with mu held.
func (r *eventRun) running() []*unit {
	var out []*unit
	for _, u := range r.all {
		if u.running {
			out = append(out, u)
		}
	}
	return out
}

func (r *eventRun) emit(ctx context.Context, u *unit, it source.Item) error {
	if it.IsMark() && u.push {
		return nil // a pushed read covers no window
	}
	if it.IsMark() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if err := r.check(ctx); err != nil {
			return err
		}
		r.cur.marks = append(r.cur.marks, progressMark{unit: u, at: it.Mark, chunk: u.chunk})
		u.marked = true
		if r.waiting > 0 {
			r.idle.Broadcast() // it may be worth splitting now
		}
		return nil
	}
	// The costly checks run outside the lock, in parallel (also for an
	// item the window turns out not to hold: rare).
	if it.ID == "" {
		// No natural id: the content is the identity.
		it.ID = record.StableID(r.name, string(it.Raw))
	}
	if !it.Checked {
		if err := validJSON(it.Raw, "item "+it.ID); err != nil {
			return err
		}
	}
	size := approxSize(&it)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.check(ctx); err != nil {
		return err
	}
	if u.split && it.Time.Before(u.chunk.From) {
		// Older than its window since a split: another worker reads
		// that part; a source reading newest first has nothing newer
		// left.
		return errWindowSplit
	}
	r.fetched++
	if !u.push && !u.chunk.Contains(it.Time) {
		r.outOfWindow++
		return nil
	}
	u.emitted++
	if u.low.IsZero() || it.Time.Before(u.low) {
		u.low = it.Time
	}
	k := dedupKey{u.part, it.ID}
	if _, dup := r.ids[k]; dup {
		r.dupPending++
		return nil
	}
	r.ids[k] = struct{}{}
	b, now := r.cur, r.p.opts.Now()
	if len(b.items) == 0 {
		b.since = now
	}
	b.items = append(b.items, pending{unit: u, it: it})
	b.bytes += size
	if r.due(now) {
		return r.seal(ctx)
	}
	return nil
}

// check says whether emits are still taken. Called with mu held.
func (r *eventRun) check(ctx context.Context) error {
	if err := r.deliveryErr(); err != nil {
		return err
	}
	return ctx.Err()
}

// due says whether the batch is to be delivered: a batch is cut by bytes
// (BatchBytes; BatchSize caps the count) or when its first item waited
// FlushAfter. Each flush costs an fsync per output and a commit, so it
// should carry megabytes, not a fixed count of records. Called with mu
// held.
func (r *eventRun) due(now time.Time) bool {
	b := r.cur
	return len(b.items) >= r.p.opts.BatchSize || b.bytes >= r.p.opts.BatchBytes ||
		(len(b.items) > 0 && now.Sub(b.since) >= r.p.opts.FlushAfter)
}

// seal hands the batch to the deliverer and starts the next one; it
// waits while the deliverer is busy with the previous batch. Called with
// mu held, so every worker waits too.
func (r *eventRun) seal(ctx context.Context) error {
	b := r.cur
	if len(b.items) == 0 && len(b.marks) == 0 {
		return nil
	}
	r.cur = &batch{items: make([]pending, 0, cap(b.items))}
	clear(r.ids)
	select {
	case r.out <- b:
		return nil
	case <-r.stop:
		return r.failed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// deliverBatch drops the items delivered before, sends the rest to every
// output and then commits, in one transaction, their ids and the
// progress the batch completes (covered ranges, cursors). The commit
// happens only after every output accepted (or durably spooled) the
// batch. A redelivery sends every item to its outputs and commits
// nothing.
func (r *eventRun) deliverBatch(ctx context.Context, b *batch) error {
	store := r.p.opts.Store
	var order []*part // parts in this batch, in order of appearance
	byPart := map[*part][]string{}
	for _, pi := range b.items {
		pt := pi.unit.part
		if _, ok := byPart[pt]; !ok {
			order = append(order, pt)
		}
		byPart[pt] = append(byPart[pt], pi.it.ID)
	}
	already := map[dedupKey]bool{}
	if !r.redeliver {
		for _, pt := range order {
			seen, err := store.SeenAmong(r.tenant, pt.key, byPart[pt])
			if err != nil {
				return err
			}
			for id := range seen {
				already[dedupKey{pt, id}] = true
			}
		}
	}
	now := r.p.opts.Now().UTC()
	recs := make([]record.Record, 0, len(b.items))
	seenBy := map[*part][]state.SeenID{}
	for _, pi := range b.items {
		pt, it := pi.unit.part, pi.it
		if already[dedupKey{pt, it.ID}] {
			r.dups++
			continue
		}
		table, at := r.table, it.Time
		if it.Table != "" {
			table = it.Table
		}
		if !it.EventTime.IsZero() {
			at = it.EventTime
		}
		// RawValid: emit checked this payload (validJSON); the outputs
		// and AppendJSON do not scan it again.
		recs = append(recs, record.Record{
			Tenant: r.tenant, Source: r.name, Table: table, ID: it.ID,
			Time: at.UTC(), HarvestedAt: now, Raw: it.Raw, RawValid: true,
		})
		if !r.redeliver {
			seenBy[pt] = append(seenBy[pt], state.SeenID{ID: it.ID, Time: it.Time})
		}
		pi.unit.news++
	}
	if len(recs) > 0 {
		deliver := r.p.deliver
		if r.redeliver {
			deliver = r.p.redeliverTo
		}
		// A sink write holds one table: a source writing to several
		// (Item.Table) has its batch delivered table by table, all
		// before the commit.
		for _, group := range byTable(recs) {
			if err := deliver(ctx, group[0].Table, group); err != nil {
				return err
			}
		}
	}
	r.news += len(recs)
	if r.redeliver {
		return nil
	}
	// Progress first, so the ids below are checked against it. Of a
	// unit's marks only the lowest counts (each covers more than the one
	// before), unless the unit is done.
	var cs []state.KeyedCommit
	var done []progressMark
	lowest := map[*unit]int{}
	for i, m := range b.marks {
		if j, ok := lowest[m.unit]; !ok || m.at.IsZero() || (!b.marks[j].at.IsZero() && m.at.Before(b.marks[j].at)) {
			lowest[m.unit] = i
		}
	}
	for i, m := range b.marks {
		if lowest[m.unit] != i {
			continue
		}
		pt, c := m.unit.part, m.chunk
		kc := state.KeyedCommit{Source: pt.key}
		if m.at.IsZero() {
			kc.Cursor, kc.Cover = c.To, state.Range{From: c.From, To: c.To}
			pt.cursor = maxTime(pt.cursor, c.To)
			done = append(done, m)
		} else if from := maxTime(m.at.Add(time.Nanosecond), c.From); from.Before(c.To) {
			kc.Cover = state.Range{From: from, To: c.To}
		} else {
			continue
		}
		pt.newest = maxTime(pt.newest, c.To)
		if _, ok := byPart[pt]; !ok {
			order = append(order, pt)
			byPart[pt] = nil
		}
		cs = append(cs, kc)
	}
	reading := r.reading(order, done)
	for _, pt := range order {
		// Ids older than the re-read band behind the newest time read are
		// kept only while their time is not covered, or is being read in
		// this run: windows finished first (newest first) move the newest
		// time up before the band behind the previous one is read again
		// (state.Commit).
		var prune time.Time
		if !pt.newest.IsZero() {
			prune = pt.newest.Add(-r.keep)
		}
		cs = append(cs, state.KeyedCommit{Source: pt.key, Commit: state.Commit{Seen: seenBy[pt], PruneBefore: prune, Reading: reading[pt]}})
	}
	if err := store.CommitAll(r.tenant, cs); err != nil {
		return fmtCommitErr(len(recs), err)
	}
	for _, m := range done {
		r.p.opts.Observer.ChunkDone(r.tenant, m.unit.part.key, m.chunk, m.unit.news)
	}
	return nil
}

// byTable splits recs into runs of one table each, in order of first
// appearance; recs of a single table come back as they are.
func byTable(recs []record.Record) [][]record.Record {
	first := recs[0].Table
	same := true
	for i := range recs {
		if recs[i].Table != first {
			same = false
			break
		}
	}
	if same {
		return [][]record.Record{recs}
	}
	idx := map[string]int{}
	var out [][]record.Record
	for _, rec := range recs {
		i, ok := idx[rec.Table]
		if !ok {
			i = len(out)
			idx[rec.Table] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], rec)
	}
	return out
}
