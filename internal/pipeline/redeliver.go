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
	"github.com/defenderharvester/defenderharvester/internal/sink"
	"github.com/defenderharvester/defenderharvester/internal/source"
)

// Snapshot is the ChangeType of records a redelivery sends for the last
// stored snapshot: the state as last seen, not a change.
const Snapshot = "Snapshot"

// redeliverAll runs every source in redelivery mode: records go straight
// to the chosen outputs, nothing is spooled and no checkpoint moves.
func (p *Pipeline) redeliverAll(ctx context.Context, tenant string, srcs []source.Source, ro RunOptions) []Result {
	results := make([]Result, len(srcs))
	targets, err := p.targets(ro.Outputs)
	if err != nil {
		for i, src := range srcs {
			results[i] = Result{Source: src.Name(), Table: src.Table(), Kind: src.Kind(), Err: err}
		}
		return results
	}
	p.redeliverSinks = targets
	return p.runAll(ctx, tenant, srcs, ro)
}

// targets resolves output names (all when empty); an output that could
// not start cannot take a redelivery.
func (p *Pipeline) targets(names []string) ([]sink.Sink, error) {
	var out []sink.Sink
	for _, l := range p.lanes {
		if len(names) > 0 && !slices.Contains(names, l.name()) {
			continue
		}
		l.mu.Lock()
		started, lastErr := l.started, l.lastErr
		l.mu.Unlock()
		if !started {
			return nil, fmt.Errorf("output %s cannot take the redelivery: %w", l.name(), lastErr)
		}
		out = append(out, l.sink)
	}
	for _, n := range names {
		found := false
		for _, l := range p.lanes {
			found = found || l.name() == n
		}
		if !found {
			known := make([]string, len(p.lanes))
			for i, l := range p.lanes {
				known[i] = l.name()
			}
			return nil, fmt.Errorf("--output %s: no such output in this run (outputs: %s)", n, strings.Join(known, ", "))
		}
	}
	return out, nil
}

// redeliverTo writes recs to every redelivery target; all must accept.
func (p *Pipeline) redeliverTo(ctx context.Context, table string, recs []record.Record) error {
	errs := make([]error, len(p.redeliverSinks))
	var wg sync.WaitGroup
	for i, s := range p.redeliverSinks {
		wg.Go(func() {
			if err := s.Write(ctx, table, recs); err != nil {
				errs[i] = fmt.Errorf("output %s: %w", s.Name(), err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// redeliverSnapshot sends the last stored snapshot of src as "Snapshot"
// records (time = when it was taken), so an output added later gets the
// baseline. The service is not asked; nothing is stored.
func (p *Pipeline) redeliverSnapshot(ctx context.Context, tenant string, src source.SnapshotSource, res *Result) error {
	name, table := src.Name(), src.Table()
	prev, at, ok, err := p.opts.Store.Snapshot(tenant, name)
	if err != nil {
		return err
	}
	if !ok {
		return nil // never harvested: nothing to send again
	}
	at = at.UTC()
	stamp := at.Format(time.RFC3339Nano)
	now := p.opts.Now().UTC()
	keys := sortedKeys(prev)
	res.Changes = map[string]int{}
	for start := 0; start < len(keys); start += p.opts.BatchSize {
		end := min(start+p.opts.BatchSize, len(keys))
		recs := make([]record.Record, 0, end-start)
		for _, key := range keys[start:end] {
			e := prev[key]
			recs = append(recs, record.Record{
				Tenant: tenant, Source: name, Table: table,
				ID:   record.StableID(name, key, Snapshot, e.Hash, stamp),
				Time: at, HarvestedAt: now, Raw: e.Raw,
				Extra: []record.Field{{Key: "ChangeType", Value: quote(Snapshot)}, {Key: "SnapshotKey", Value: quote(key)}},
			})
		}
		if err := p.redeliverTo(ctx, table, recs); err != nil {
			return err
		}
		res.New += len(recs)
		res.Changes[Snapshot] += len(recs)
	}
	return nil
}
