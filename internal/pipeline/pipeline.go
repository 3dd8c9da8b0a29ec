// Package pipeline owns delivery: it cuts time windows, drops duplicates by
// record id, turns snapshots into change records, batches, fans out to
// every sink and commits checkpoints only after every sink accepted.
//
// Guarantee: at least once. A crash at any moment loses nothing (the
// cursor never passes unacknowledged work) and re-delivers at most the
// batch that was in flight.
package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/delivery"
	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/sink"
	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/state"
)

// Defaults of Options.
const (
	// DefaultBatchSize only caps the records of a batch: batches are cut
	// by bytes (DefaultBatchBytes, each record counting at least
	// recordOverhead, so at most ~21,000 records) or by time
	// (DefaultFlushAfter). It was 2,000: a flush — an fsync per output and
	// a bbolt commit — every 2,000 records cost more than the batch.
	DefaultBatchSize       = 20_000
	DefaultBatchBytes      = 4 << 20
	DefaultFlushAfter      = 10 * time.Second
	DefaultInitialLookback = 24 * time.Hour
	DefaultConcurrency     = 4
	// minRetention is the least time a delivered id is remembered behind
	// the cursor.
	minRetention = 10 * time.Minute
	// recordOverhead approximates the bytes the standard fields add to a
	// payload, so BatchBytes bounds what a sink receives.
	recordOverhead = 200
)

// Options configure a Pipeline.
type Options struct {
	Store  *state.Store
	Sinks  []sink.Sink
	Logger *slog.Logger
	Now    func() time.Time
	// BatchSize and BatchBytes bound one sink write (records, payload
	// bytes), and so what is held in memory per running source and what a
	// crash can re-deliver. Each batch is one flush: written to every
	// output (which fsyncs), then its ids committed in one bbolt
	// transaction.
	BatchSize  int
	BatchBytes int
	// FlushAfter bounds how long read records wait for a flush while the
	// source is still reading (checked when the source emits; default
	// 10s): a slow source still delivers and commits regularly.
	FlushAfter time.Duration
	// InitialLookback is how far back the first window of an event source
	// starts when it has no cursor.
	InitialLookback time.Duration
	// Concurrency is how many sources run at once.
	Concurrency int
	// SpoolMaxBytes bounds each output's spool (default 1 GiB). When one
	// output fails while others accept a batch, the batch is spooled for
	// it in the state file and sent again at the start of the next run.
	SpoolMaxBytes int64
	// Unavailable names outputs that could not start, with the reason:
	// they begin the run marked down (their batches are spooled) and are
	// started again by their drainer.
	Unavailable map[string]error
	// SpoolAfter is how long one batch may wait on one output while
	// others are configured (default 15s): after that the batch is
	// spooled for it and the others carry on. With a single output the
	// output's own retry budget applies.
	SpoolAfter time.Duration
	// Skew, when set, reports the measured offset of the services' clock
	// from ours (server − local). Beyond MaxSkew it is warned about and
	// windows are computed on the services' clock.
	Skew func() (time.Duration, bool)
	// Observer is told about progress, deliveries and outcomes (metrics,
	// progress display); nil: nobody.
	Observer Observer
	// Tap, when set, sees every batch once every output accepted it (or
	// it was spooled for the ones down): the in-process detections read
	// records this way. It must not keep recs past the call.
	Tap func(table string, recs []record.Record)
}

// DefaultSpoolAfter is the default of Options.SpoolAfter.
const DefaultSpoolAfter = 15 * time.Second

// MaxSkew is the clock offset beyond which windows follow the services'
// clock instead of ours.
const MaxSkew = time.Minute

// DefaultSpoolMaxBytes is the default per-output spool limit.
const DefaultSpoolMaxBytes = 1 << 30

// OutputStatus is what happened to one output in a run.
type OutputStatus struct {
	Output string
	// Err is the output's latest failure in this run; nil when it works
	// at the end (also after an outage it recovered from).
	Err error
	// Outage says it failed or was down at some point in this run.
	Outage bool
	// Spooled records went to the output's spool this run; Drained
	// spooled records were delivered this run; Backlog records are still
	// spooled after it.
	Spooled, Drained, Backlog int
	// Delivery counts requests of network outputs (zero for the others).
	Delivery delivery.Stats
}

// RunOptions change one run.
type RunOptions struct {
	// Since, when not zero, asks every event source to cover time from
	// here on (a backfill): only ranges not covered yet are read, and the
	// goal is kept in the state so an interrupted backfill resumes in the
	// next run. The cursor never moves back.
	Since time.Time
	// Redeliver re-sends on purpose what was already harvested from Since
	// up to each source's cursor (event sources) or the last stored
	// snapshot (snapshot sources, as ChangeType "Snapshot" records),
	// without dropping already delivered ids, to Outputs (all when
	// empty). It moves no checkpoint and never spools.
	Redeliver bool
	Outputs   []string
}

// Result is what happened to one source in one run.
type Result struct {
	Source, Table string
	Kind          source.Kind
	Window        source.Window // event sources: the whole range read
	// Fetched counts items the source emitted; New those delivered;
	// Duplicates those dropped as already delivered; OutOfWindow those
	// outside the window asked for.
	Fetched, New, Duplicates, OutOfWindow int
	// Changes counts snapshot change records by ChangeType.
	Changes map[string]int
	// PartsTotal counts the parts (devices) of a partitioned source read
	// in this run; Parts lists those that failed or are resting.
	PartsTotal int
	Parts      []PartResult
	// Cursor is how far the source is harvested after the run: an
	// event source's cursor (the earliest of its parts'), a snapshot
	// source's last snapshot time. Zero when it has none yet.
	Cursor   time.Time
	Duration time.Duration
	Err      error
}

// Pipeline runs sources into sinks.
type Pipeline struct {
	opts Options
	log  *slog.Logger

	lanes []*lane
	// redeliverSinks are the outputs of a redelivery run.
	redeliverSinks []sink.Sink
	// busy holds one slot per (tenant, source): a run and a Push of one
	// source never overlap.
	busy sync.Map

	skewOnce sync.Once
}

// New checks opts and fills defaults.
func New(opts Options) (*Pipeline, error) {
	if opts.Store == nil {
		return nil, errors.New("pipeline: no state store; open one with state.Open")
	}
	if len(opts.Sinks) == 0 {
		return nil, errors.New("no output configured; enable at least one output (for example file)")
	}
	for i, s := range opts.Sinks {
		if s == nil {
			return nil, fmt.Errorf("pipeline: output %d is nil", i)
		}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Observer == nil {
		opts.Observer = NopObserver{}
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.BatchBytes <= 0 {
		opts.BatchBytes = DefaultBatchBytes
	}
	if opts.FlushAfter <= 0 {
		opts.FlushAfter = DefaultFlushAfter
	}
	if opts.InitialLookback <= 0 {
		opts.InitialLookback = DefaultInitialLookback
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.SpoolMaxBytes <= 0 {
		opts.SpoolMaxBytes = DefaultSpoolMaxBytes
	}
	if opts.SpoolAfter <= 0 {
		opts.SpoolAfter = DefaultSpoolAfter
	}
	seen := map[string]bool{}
	p := &Pipeline{opts: opts, log: opts.Logger}
	for _, s := range opts.Sinks {
		if s.Name() == "" {
			return nil, errors.New("pipeline: an output has no name (a programming error)")
		}
		if seen[s.Name()] {
			return nil, fmt.Errorf("pipeline: two outputs are named %q; each output needs its own name (its spool is kept under it)", s.Name())
		}
		seen[s.Name()] = true
		p.lanes = append(p.lanes, newLane(p, s, opts.Unavailable[s.Name()]))
	}
	return p, nil
}

// Run harvests every source for tenant and returns one Result per source,
// in the order of srcs. A failing source does not stop the others.
//
// Run is Start, RunSources and Shutdown in one: the outputs' drainers
// stop when it returns.
func (p *Pipeline) Run(ctx context.Context, tenant string, srcs []source.Source, ro RunOptions) []Result {
	if ro.Redeliver {
		return p.redeliverAll(ctx, tenant, srcs, ro)
	}
	p.Start(ctx)
	defer p.Shutdown()
	return p.runAll(ctx, tenant, srcs, ro)
}

// Start begins a long-lived pipeline (serve): every output's drainer
// runs until Shutdown, sending its spool as soon as the output answers.
// ctx bounds the drainers; RunSources may then be called many times, also
// concurrently for different sources.
func (p *Pipeline) Start(ctx context.Context) {
	p.startLanes(ctx)
}

// RunSources harvests srcs (never the same source twice at once: the
// caller serialises runs of one source) and returns their results in the
// order of srcs. Only between Start and Shutdown.
func (p *Pipeline) RunSources(ctx context.Context, tenant string, srcs []source.Source, ro RunOptions) []Result {
	if ro.Redeliver {
		return p.redeliverAll(ctx, tenant, srcs, ro)
	}
	return p.runAll(ctx, tenant, srcs, ro)
}

// Shutdown lets every drainer make a last attempt at its spool and waits
// for them. Runs must have returned before.
func (p *Pipeline) Shutdown() {
	p.stopLanes()
}

// runAll runs srcs, Concurrency at a time, and returns their results in
// the order of srcs.
func (p *Pipeline) runAll(ctx context.Context, tenant string, srcs []source.Source, ro RunOptions) []Result {
	results := make([]Result, len(srcs))
	sem := make(chan struct{}, p.opts.Concurrency)
	var wg sync.WaitGroup
	for i, src := range srcs {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
			}
			results[i] = p.runSource(ctx, tenant, src, ro)
		})
	}
	wg.Wait()
	return results
}

func (p *Pipeline) runSource(ctx context.Context, tenant string, src source.Source, ro RunOptions) Result {
	if src == nil {
		return Result{Err: errors.New("pipeline: nil source")}
	}
	start := time.Now()
	res := Result{Source: src.Name(), Table: src.Table(), Kind: src.Kind()}
	p.opts.Observer.SourceStarted(tenant, res.Source)
	var err error
	unlock, lerr := p.exclusive(ctx, tenant, src.Name())
	if lerr == nil {
		defer unlock()
	}
	switch {
	case lerr != nil:
		err = lerr
	case ctx.Err() != nil:
		err = ctx.Err()
	case src.Kind() == source.Event:
		es, ok := src.(source.EventSource)
		if !ok {
			err = errors.New("declares kind event but has no Fetch method (a programming error)")
			break
		}
		err = p.runEvent(ctx, tenant, es, ro, &res)
	case src.Kind() == source.Snapshot:
		ss, ok := src.(source.SnapshotSource)
		if !ok {
			err = errors.New("declares kind snapshot but has no Snapshot method (a programming error)")
			break
		}
		if ro.Redeliver {
			err = p.redeliverSnapshot(ctx, tenant, ss, &res)
			break
		}
		err = p.runSnapshot(ctx, tenant, ss, &res)
	default:
		err = fmt.Errorf("unknown source kind %d (a programming error)", src.Kind())
	}
	res.Duration = time.Since(start)
	attrs := []any{
		"source", res.Source, "table", res.Table, "kind", res.Kind.String(),
		"fetched", res.Fetched, "new", res.New, "duplicates", res.Duplicates,
		"duration", res.Duration.Round(time.Millisecond).String(),
	}
	if res.Kind == source.Event {
		attrs = append(attrs, "from", res.Window.From, "to", res.Window.To, "out_of_window", res.OutOfWindow)
	}
	if res.Changes != nil {
		attrs = append(attrs, "changes", res.Changes)
	}
	if err != nil {
		res.Err = fmt.Errorf("source %s: %w", res.Source, err)
		p.log.Error("source failed; what was delivered before the failure is kept", append(attrs, "err", res.Err)...)
	} else {
		p.log.Info("source done", attrs...)
	}
	if !ro.Redeliver && ctx.Err() == nil {
		p.noteOutcome(tenant, res)
	}
	p.opts.Observer.SourceDone(tenant, res)
	return res
}

// noteOutcome keeps when the source last ran and its failures in a row
// in the state (what `state show` and health checks report); a success
// clears them.
func (p *Pipeline) noteOutcome(tenant string, res Result) {
	msg := ""
	if res.Err != nil {
		msg = res.Err.Error()
	}
	if _, err := p.opts.Store.RecordOutcome(tenant, res.Source, p.opts.Now().UTC(), msg); err != nil {
		p.log.Error("cannot record the source's outcome in the state file", "source", res.Source, "err", err)
	}
}

// Outputs reports each output's status, including what is still spooled.
func (p *Pipeline) Outputs() []OutputStatus {
	backlog := map[string]int{}
	infos, err := p.opts.Store.Spools()
	if err != nil {
		p.log.Error("cannot read the spool", "err", err)
	}
	for _, in := range infos {
		backlog[in.Output] = in.Records
	}
	out := make([]OutputStatus, 0, len(p.lanes))
	for _, l := range p.lanes {
		l.mu.Lock()
		st := OutputStatus{Output: l.name(), Err: l.lastErr, Outage: l.outage, Spooled: l.spooled, Drained: l.drained}
		l.mu.Unlock()
		st.Backlog = backlog[st.Output]
		if r, ok := l.sink.(sink.StatsReporter); ok {
			st.Delivery = r.Stats()
		}
		out = append(out, st)
	}
	return out
}

// approxSize is what one item adds to a batch.
func approxSize(it *source.Item) int {
	return len(it.Raw) + len(it.ID) + len(it.Key) + recordOverhead
}

// validJSON rejects a payload no sink could write; it names the item but
// never prints the payload. It is the one validity scan of an event
// payload: the records built from checked items carry RawValid, so
// AppendJSON and the outputs trust them.
func validJSON(raw json.RawMessage, what string) error {
	if !json.Valid(raw) {
		return fmt.Errorf("emitted %s whose payload is not valid JSON (%d bytes); this is a bug in the source", what, len(raw))
	}
	return nil
}
