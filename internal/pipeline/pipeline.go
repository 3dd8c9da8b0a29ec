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
	DefaultBatchSize       = 2000
	DefaultBatchBytes      = 4 << 20
	DefaultInitialLookback = 24 * time.Hour
	DefaultConcurrency     = 4
	// minRetention is the least time a delivered id is remembered.
	minRetention = 48 * time.Hour
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
	// BatchSize and BatchBytes bound one sink write (records, payload bytes).
	BatchSize  int
	BatchBytes int
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
	// they begin the run marked down (their batches are spooled).
	Unavailable map[string]error
}

// DefaultSpoolMaxBytes is the default per-output spool limit.
const DefaultSpoolMaxBytes = 1 << 30

// OutputStatus is what happened to one output in a run.
type OutputStatus struct {
	Output string
	// Err says why the output was given up on in this run (nil: healthy).
	Err error
	// Spooled records went to the output's spool this run; Drained
	// spooled records were delivered this run; Backlog records are still
	// spooled after it.
	Spooled, Drained, Backlog int
	// Delivery counts requests of network outputs (zero for the others).
	Delivery delivery.Stats
}

// RunOptions change one run.
type RunOptions struct {
	// Since, when not zero, starts every event window here (backfill or
	// re-read) instead of at the cursor. Ids still remembered are not
	// delivered again; the cursor never moves back.
	Since time.Time
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
	Changes  map[string]int
	Duration time.Duration
	Err      error
}

// Pipeline runs sources into sinks.
type Pipeline struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	outputs map[string]*OutputStatus
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
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.BatchBytes <= 0 {
		opts.BatchBytes = DefaultBatchBytes
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
	seen := map[string]bool{}
	outputs := map[string]*OutputStatus{}
	for _, s := range opts.Sinks {
		if s.Name() == "" {
			return nil, errors.New("pipeline: an output has no name (a programming error)")
		}
		if seen[s.Name()] {
			return nil, fmt.Errorf("pipeline: two outputs are named %q; each output needs its own name (its spool is kept under it)", s.Name())
		}
		seen[s.Name()] = true
		outputs[s.Name()] = &OutputStatus{Output: s.Name(), Err: opts.Unavailable[s.Name()]}
	}
	return &Pipeline{opts: opts, log: opts.Logger, outputs: outputs}, nil
}

// Run harvests every source for tenant and returns one Result per source,
// in the order of srcs. A failing source does not stop the others.
func (p *Pipeline) Run(ctx context.Context, tenant string, srcs []source.Source, ro RunOptions) []Result {
	p.drain(ctx)
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
	var err error
	switch {
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
	return res
}

// deliver hands recs to every output at once. It succeeds when every
// output accepted them, or when at least one did and the batch was
// durably spooled for the others (which are then skipped for the rest of
// the run). When no output accepted it, it fails: the source stops and the
// data stays at the source, where the next run reads it again.
func (p *Pipeline) deliver(ctx context.Context, table string, recs []record.Record) error {
	sinks := p.opts.Sinks
	errs := make([]error, len(sinks))
	var wg sync.WaitGroup
	for i, s := range sinks {
		if err := p.downErr(s.Name()); err != nil {
			errs[i] = err
			continue
		}
		if len(sinks) == 1 {
			errs[i] = s.Write(ctx, table, recs)
			break
		}
		wg.Go(func() { errs[i] = s.Write(ctx, table, recs) })
	}
	wg.Wait()
	failed := 0
	for i, err := range errs {
		if err != nil {
			failed++
			errs[i] = fmt.Errorf("output %s: %w", sinks[i].Name(), err)
		}
	}
	if failed == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		// Stopping, not failing: nothing is spooled; the next run re-reads.
		return err
	}
	if failed == len(sinks) {
		return errors.Join(errs...)
	}
	for i, s := range sinks {
		if errs[i] == nil {
			continue
		}
		if err := p.opts.Store.SpoolPut(s.Name(), table, recs, p.opts.SpoolMaxBytes); err != nil {
			return fmt.Errorf("%w; and its records could not be spooled: %w", errs[i], err)
		}
		p.markDown(s.Name(), errs[i], len(recs))
	}
	return nil
}

// errOutputDown marks an output given up on earlier in this run.
var errOutputDown = errors.New("failed earlier in this run")

func (p *Pipeline) downErr(name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if st := p.outputs[name]; st != nil && st.Err != nil {
		return errOutputDown
	}
	return nil
}

// markDown records that an output failed; its batches go to its spool for
// the rest of the run.
func (p *Pipeline) markDown(name string, err error, spooled int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.outputs[name]
	if st.Err == nil && !errors.Is(err, errOutputDown) {
		st.Err = err
		p.log.Error("output failed; the other outputs carry on and its records are kept in its spool until it accepts them again",
			"output", name, "err", err)
	}
	st.Spooled += spooled
}

// drain sends every spooled batch to its output, oldest first, deleting
// each once accepted. An output that still fails is marked down for this
// run (so new batches join its spool instead of waiting on it).
func (p *Pipeline) drain(ctx context.Context) {
	for _, s := range p.opts.Sinks {
		name := s.Name()
		if p.downErr(name) != nil {
			continue
		}
		var after uint64
		for ctx.Err() == nil {
			b, ok, err := p.opts.Store.SpoolNext(name, after)
			if err != nil {
				p.markDown(name, fmt.Errorf("reading its spool: %w", err), 0)
				break
			}
			if !ok {
				break
			}
			if err := s.Write(ctx, b.Table, b.Records); err != nil {
				p.markDown(name, fmt.Errorf("output %s: spooled records still not accepted: %w", name, err), 0)
				break
			}
			if err := p.opts.Store.SpoolDelete(name, b.Seq); err != nil {
				p.markDown(name, fmt.Errorf("spooled records were delivered but could not be removed from the spool (they will be sent again): %w", err), 0)
				break
			}
			p.mu.Lock()
			p.outputs[name].Drained += len(b.Records)
			p.mu.Unlock()
			after = b.Seq
		}
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
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]OutputStatus, 0, len(p.opts.Sinks))
	for _, s := range p.opts.Sinks {
		st := *p.outputs[s.Name()]
		st.Backlog = backlog[s.Name()]
		if r, ok := s.(sink.StatsReporter); ok {
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
// never prints the payload.
func validJSON(raw json.RawMessage, what string) error {
	if !json.Valid(raw) {
		return fmt.Errorf("emitted %s whose payload is not valid JSON (%d bytes); this is a bug in the source", what, len(raw))
	}
	return nil
}
