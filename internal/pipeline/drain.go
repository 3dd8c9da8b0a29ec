package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/sink"
	"github.com/defenderharvester/defenderharvester/internal/state"
)

// DrainSpool sends what is spooled for the output s (its spool is kept
// under s.Name()) to s, oldest batch first, deleting each batch once s
// accepted it, until the spool is empty or a write fails. perBatch
// bounds each write (0: DefaultSpoolAfter). s must be started. It
// returns the number of records delivered; on a failure the batch that
// failed and those after it stay spooled.
//
// It is the code a pipeline's drainers run (`state spool retry` uses it
// without a pipeline): nothing else may spool for or drain the output
// meanwhile, which the state file's lock ensures across processes.
func DrainSpool(ctx context.Context, store *state.Store, s sink.Sink, perBatch time.Duration) (sent int, err error) {
	if perBatch <= 0 {
		perBatch = DefaultSpoolAfter
	}
	_, sent, err = spoolDrain{store: store, sink: s, timeout: perBatch}.run(ctx)
	return sent, err
}

// spoolDrain is one pass over an output's spool.
type spoolDrain struct {
	store   *state.Store
	sink    sink.Sink
	timeout time.Duration // per batch
	max     int           // batches to send at most (0: no limit)
	// next reads the oldest batch after seq (nil: the store's SpoolNext).
	// A lane reads it under its lock, where it also decides that the
	// spool is empty.
	next func(after uint64) (state.SpooledBatch, bool, error)
	// written is told about every write and its outcome; delivered about
	// every batch removed from the spool after its write (both optional).
	written   func(b state.SpooledBatch, err error)
	delivered func(b state.SpooledBatch)
}

func (d spoolDrain) run(ctx context.Context) (batches, records int, err error) {
	name := d.sink.Name()
	next := d.next
	if next == nil {
		next = func(after uint64) (state.SpooledBatch, bool, error) { return d.store.SpoolNext(name, after) }
	}
	var after uint64
	for ctx.Err() == nil {
		b, ok, err := next(after)
		if err != nil {
			return batches, records, fmt.Errorf("reading its spool: %w", err)
		}
		if !ok || (d.max > 0 && batches >= d.max) {
			return batches, records, nil
		}
		wctx, cancel := context.WithTimeout(ctx, d.timeout)
		err = d.sink.Write(wctx, b.Table, b.Records)
		cancel()
		if d.written != nil {
			d.written(b, err)
		}
		if err != nil {
			return batches, records, fmt.Errorf("output %s: spooled records still not accepted: %w", name, err)
		}
		if err := d.store.SpoolDelete(name, b.Seq); err != nil {
			return batches, records, fmt.Errorf("output %s: spooled records were delivered but could not be removed from the spool (they will be sent again): %w", name, err)
		}
		if d.delivered != nil {
			d.delivered(b)
		}
		batches++
		records += len(b.Records)
		after = b.Seq
	}
	return batches, records, ctx.Err()
}
