package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/httpx"
	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/sink"
	"github.com/defenderharvester/defenderharvester/internal/state"
)

// laneState is how batches reach one output.
type laneState int

const (
	// direct: the output is healthy and has nothing spooled; batches are
	// written to it and the commit waits for its answer.
	direct laneState = iota
	// catchingUp: the output works again but still has spooled batches;
	// new batches join the end of its spool (its order is kept) and its
	// drainer sends them.
	catchingUp
	// down: the output failed (or could not start); new batches are
	// spooled for it only while another output accepts them, and its
	// drainer probes it with backoff.
	down
)

// lane is one output's way in: its state, spool drainer and counters.
// Every output has one, so a slow or broken output never holds back the
// others for longer than SpoolAfter per batch.
type lane struct {
	p    *Pipeline
	sink sink.Sink

	mu       sync.Mutex
	state    laneState
	started  bool
	lastErr  error // the latest failure; nil once the output recovered
	outage   bool  // it was down at some point in this run
	spooled  int
	drained  int
	wake     chan struct{}
	stopping bool
	done     chan struct{}
}

func newLane(p *Pipeline, s sink.Sink, startErr error) *lane {
	l := &lane{p: p, sink: s, started: startErr == nil, wake: make(chan struct{}, 1), done: make(chan struct{})}
	if startErr != nil {
		l.state, l.lastErr, l.outage = down, startErr, true
	}
	return l
}

func (l *lane) name() string { return l.sink.Name() }

func (l *lane) nudge() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// startLanes prepares each lane for a run: an output with a backlog gets
// one spooled batch sent right away (bounded by SpoolAfter) to learn
// whether it is up, then its drainer carries on in the background.
func (p *Pipeline) startLanes(ctx context.Context) {
	backlog := map[string]int{}
	infos, err := p.opts.Store.Spools()
	if err != nil {
		p.log.Error("cannot read the spool; outputs with a backlog are treated as down", "err", err)
	}
	for _, in := range infos {
		backlog[in.Output] = in.Records
	}
	for _, l := range p.lanes {
		l.mu.Lock()
		l.stopping, l.done = false, make(chan struct{})
		l.mu.Unlock()
		if l.state == direct && (backlog[l.name()] > 0 || err != nil) {
			l.state = down
			if _, derr := l.drainOnce(ctx, 1); derr != nil {
				l.fail(derr)
			}
		}
		go l.drainLoop(ctx)
	}
}

// stopLanes lets every drainer make a last attempt at its spool and waits
// for them; ctx bounds the wait (the run's deadline).
func (p *Pipeline) stopLanes() {
	for _, l := range p.lanes {
		l.mu.Lock()
		l.stopping = true
		l.mu.Unlock()
		l.nudge()
	}
	for _, l := range p.lanes {
		<-l.done
	}
}

// drainLoop sends the lane's spool while it has one: at once when it is
// catching up, after a growing pause (1 s doubling to 30 s) when it is
// down. When the run stops it makes one last pass and returns.
func (l *lane) drainLoop(ctx context.Context) {
	l.mu.Lock()
	done := l.done
	l.mu.Unlock()
	defer close(done)
	failures := 0
	for {
		l.mu.Lock()
		st, stopping := l.state, l.stopping
		l.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		if st == direct {
			if stopping {
				return
			}
			select {
			case <-l.wake:
			case <-ctx.Done():
				return
			}
			continue
		}
		if st == down && !stopping {
			// Probe a down output after a pause, or right away when the
			// run is ending; new spooled batches do not cut the pause.
			if stopping = l.rest(ctx, probePause(failures)); ctx.Err() != nil {
				return
			}
		}
		if _, err := l.drainOnce(ctx, 0); err != nil {
			l.fail(err)
			failures++
			if stopping {
				return
			}
			continue
		}
		failures = 0
		if stopping {
			l.mu.Lock()
			empty := l.state == direct
			l.mu.Unlock()
			if empty {
				return
			}
		}
	}
}

// rest waits d, or less when the run ends; it reports whether the run is
// ending.
func (l *lane) rest(ctx context.Context, d time.Duration) (stopping bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-l.wake:
			l.mu.Lock()
			stopping = l.stopping
			l.mu.Unlock()
			if !stopping {
				continue
			}
		case <-ctx.Done():
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.stopping
	}
}

// probePause is how long a down output rests before the next probe: 1 s
// doubling to 30 s.
func probePause(failures int) time.Duration {
	return httpx.BackoffCeil(failures+1, time.Second, 30*time.Second)
}

// drainOnce (re)starts the output if it never started, then sends spooled
// batches oldest first (spoolDrain, the code DrainSpool runs), deleting
// each once accepted, until the spool is empty (the lane goes direct) or
// max batches were sent (max 0: no limit). A failure returns the error
// and leaves the lane down.
func (l *lane) drainOnce(ctx context.Context, max int) (sent int, err error) {
	name := l.name()
	l.mu.Lock()
	started := l.started
	l.mu.Unlock()
	if !started {
		sctx, cancel := context.WithTimeout(ctx, l.p.opts.SpoolAfter)
		err := l.sink.Start(sctx)
		cancel()
		if err != nil {
			return 0, fmt.Errorf("output %s cannot start: %w", name, err)
		}
		l.mu.Lock()
		l.started = true
		l.mu.Unlock()
		l.p.log.Info("output started after all; sending what was kept for it", "output", name)
	}
	d := spoolDrain{store: l.p.opts.Store, sink: l.sink, timeout: l.p.opts.SpoolAfter, max: max,
		// The decision that the spool is empty and the switch to direct
		// happen under mu, where deliver decides to spool.
		next: func(after uint64) (state.SpooledBatch, bool, error) {
			l.mu.Lock()
			defer l.mu.Unlock()
			b, ok, err := l.p.opts.Store.SpoolNext(name, after)
			if err == nil && !ok {
				if l.state != direct {
					l.p.log.Info("output caught up; its spool is empty and it receives batches directly again", "output", name)
				}
				l.state, l.lastErr = direct, nil
			}
			return b, ok, err
		},
		written: func(b state.SpooledBatch, err error) { l.p.observeWrite(name, b.Records, err) },
		delivered: func(b state.SpooledBatch) {
			l.mu.Lock()
			l.drained += len(b.Records)
			if l.state == down {
				l.state = catchingUp
			}
			l.mu.Unlock()
		},
	}
	sent, _, err = d.run(ctx)
	return sent, err
}

// fail marks the lane down with err.
func (l *lane) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	first := l.state != down
	l.state, l.lastErr, l.outage = down, err, true
	if first {
		l.p.log.Error("output failed; the other outputs carry on and its records are kept in its spool until it accepts them again",
			"output", l.name(), "err", err)
	}
}

// deliver hands recs to every output. Healthy outputs are written to at
// once (each bounded by SpoolAfter when there are others to keep
// flowing); an output catching up gets the batch appended to its spool;
// a down output gets it spooled too, but only when some output accepted
// the batch. It succeeds when every output accepted or durably spooled
// the batch. When no output accepted it, nothing is spooled and it
// fails: the source stops and the data stays at the source, where the
// next run reads it again.
func (p *Pipeline) deliver(ctx context.Context, table string, recs []record.Record) error {
	err := p.deliverToLanes(ctx, table, recs)
	if err == nil && p.opts.Tap != nil {
		p.opts.Tap(table, recs)
	}
	return err
}

// Deliver writes records of table to every output (spooling for the ones
// down) outside any run: what the harvester makes itself, such as the
// detection pack's findings. Nothing is checkpointed.
func (p *Pipeline) Deliver(ctx context.Context, table string, recs []record.Record) error {
	if len(recs) == 0 {
		return nil
	}
	return p.deliverAll(ctx, table, recs)
}

func (p *Pipeline) deliverToLanes(ctx context.Context, table string, recs []record.Record) error {
	states := make([]laneState, len(p.lanes))
	for i, l := range p.lanes {
		l.mu.Lock()
		states[i] = l.state
		l.mu.Unlock()
	}
	errs := make([]error, len(p.lanes))
	var wg sync.WaitGroup
	for i, l := range p.lanes {
		if states[i] != direct {
			continue
		}
		write := func() {
			wctx := ctx
			if len(p.lanes) > 1 {
				var cancel context.CancelFunc
				wctx, cancel = context.WithTimeout(ctx, p.opts.SpoolAfter)
				defer cancel()
			}
			err := l.sink.Write(wctx, table, recs)
			p.observeWrite(l.name(), recs, err)
			if err != nil {
				if ctx.Err() == nil && wctx.Err() != nil {
					err = fmt.Errorf("no answer within spool_after %s: %w", p.opts.SpoolAfter, err)
				}
				errs[i] = fmt.Errorf("output %s: %w", l.name(), err)
			}
		}
		if len(p.lanes) == 1 {
			write()
			break
		}
		wg.Go(write)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil && ctx.Err() != nil {
			// Stopping, not failing: nothing is spooled; the next run
			// re-reads.
			return ctx.Err()
		}
	}
	// An output catching up counts as accepting: it works, it is only
	// behind, and the batch joins its spool.
	accepted := 0
	for i := range p.lanes {
		if (states[i] == direct && errs[i] == nil) || states[i] == catchingUp {
			accepted++
		}
	}
	for i, l := range p.lanes {
		if errs[i] != nil {
			l.fail(errs[i])
		}
	}
	// Spool for every output that did not take the batch directly.
	var failed []error
	for i, l := range p.lanes {
		if states[i] == direct && errs[i] == nil {
			continue
		}
		if err := l.spool(table, recs, accepted > 0); err != nil {
			failed = append(failed, err)
		}
	}
	if accepted == 0 {
		var all []error
		for i, l := range p.lanes {
			switch {
			case errs[i] != nil:
				all = append(all, errs[i])
			default:
				all = append(all, fmt.Errorf("output %s: %w", l.name(), l.errOrDown()))
			}
		}
		return errors.Join(all...)
	}
	return errors.Join(failed...)
}

var errNoneAccepted = errors.New("no output accepted the batch, so it was not spooled (the data stays at the source and is read again next run)")

func (l *lane) errOrDown() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lastErr != nil {
		return fmt.Errorf("%w (failed earlier in this run)", l.lastErr)
	}
	return errNoneAccepted
}

// spool appends recs to the lane's spool: always while it is catching
// up, when it is down only if another output accepted the batch.
func (l *lane) spool(table string, recs []record.Record, othersAccepted bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state == direct {
		// It caught up while this batch was written elsewhere; an
		// unspooled batch would be lost to it, so spool it anyway.
		l.state = catchingUp
	}
	if l.state == down && !othersAccepted {
		return nil
	}
	if err := l.p.opts.Store.SpoolPut(l.name(), table, recs, l.p.opts.SpoolMaxBytes); err != nil {
		return fmt.Errorf("output %s: its records could not be spooled: %w", l.name(), err)
	}
	l.spooled += len(recs)
	if len(recs) > 0 {
		l.p.opts.Observer.Spooled(recs[0].Tenant, recs[0].Source, l.name(), len(recs))
	}
	if l.state == catchingUp {
		l.nudge()
	}
	return nil
}

// observeWrite reports one write of a batch (its records share tenant
// and source).
func (p *Pipeline) observeWrite(output string, recs []record.Record, err error) {
	if len(recs) > 0 {
		p.opts.Observer.Written(recs[0].Tenant, recs[0].Source, output, len(recs), err)
	}
}
