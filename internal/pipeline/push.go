package pipeline

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/source"
)

// Push delivers what a source was told about rather than what a window
// holds: the blobs a webhook notification announced. fetch emits the
// items, which go through the same dedup, batching, outputs and commit as
// a run's — each id is committed once every output accepted it, so a
// later run that reads the same time drops it — but no cursor moves and
// no range counts as covered: the scheduled runs still read every window
// and close the gaps a missed notification leaves. Items are taken
// whatever their time; progress marks are ignored. part names the part of
// a partitioned source ("" for a source without parts).
//
// A push and a run of the same source of one tenant never overlap: each
// waits for the other (exclusive), so one id is never delivered by both
// at once. Only between Start and Shutdown. Pushes report to nobody
// (Observer, the source's outcome in the state): they are not runs.
func (p *Pipeline) Push(ctx context.Context, tenant string, src source.EventSource, part string, fetch func(context.Context, source.Emit) error) Result {
	start := time.Now()
	res := Result{Source: src.Name(), Table: src.Table(), Kind: source.Event}
	err := p.push(ctx, tenant, src, part, fetch, &res)
	res.Duration = time.Since(start)
	if err != nil {
		res.Err = fmt.Errorf("source %s (notified content): %w", src.Name(), err)
	}
	return res
}

func (p *Pipeline) push(ctx context.Context, tenant string, src source.EventSource, name string, fetch func(context.Context, source.Emit) error, res *Result) error {
	if strings.Contains(name, "/") {
		return fmt.Errorf("part name %q holds a slash (a bug in the caller)", name)
	}
	unlock, err := p.exclusive(ctx, tenant, src.Name())
	if err != nil {
		return err
	}
	defer unlock()
	key := src.Name()
	if name != "" {
		key += "/" + name
	}
	prog, err := p.opts.Store.Progress(tenant, key)
	if err != nil {
		return err
	}
	pt := &part{name: name, key: key, prog: prog, cursor: prog.Cursor, newest: newest(prog),
		fetch: func(ctx context.Context, _ source.Window, emit source.Emit) error { return fetch(ctx, emit) }}
	r := &eventRun{p: p, tenant: tenant, name: src.Name(), table: src.Table(), keep: retention(src.Windowing()), res: res}
	if err := r.run(ctx, []*unit{{part: pt, push: true}}, 1); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return pt.err
}

// exclusive waits until no run or push of tenant's source is under way
// and holds that until unlock; an error when ctx ends first.
func (p *Pipeline) exclusive(ctx context.Context, tenant, source string) (unlock func(), err error) {
	v, _ := p.busy.LoadOrStore(tenant+"\x00"+source, make(chan struct{}, 1))
	slot := v.(chan struct{})
	select {
	case slot <- struct{}{}:
		return func() { <-slot }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
