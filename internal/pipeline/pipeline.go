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

	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/sink"
	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/state"
)

// Defaults of Options.
const (
	DefaultBatchSize       = 500
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
	return &Pipeline{opts: opts, log: opts.Logger}, nil
}

// Run harvests every source for tenant and returns one Result per source,
// in the order of srcs. A failing source does not stop the others.
func (p *Pipeline) Run(ctx context.Context, tenant string, srcs []source.Source, ro RunOptions) []Result {
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

// deliver hands recs to every sink at once and succeeds only if all do.
func (p *Pipeline) deliver(ctx context.Context, table string, recs []record.Record) error {
	if len(p.opts.Sinks) == 1 {
		s := p.opts.Sinks[0]
		if err := s.Write(ctx, table, recs); err != nil {
			return fmt.Errorf("output %s: %w", s.Name(), err)
		}
		return nil
	}
	errs := make([]error, len(p.opts.Sinks))
	var wg sync.WaitGroup
	for i, s := range p.opts.Sinks {
		wg.Go(func() {
			if err := s.Write(ctx, table, recs); err != nil {
				errs[i] = fmt.Errorf("output %s: %w", s.Name(), err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
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
