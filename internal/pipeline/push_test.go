package pipeline

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/source"
)

// pushItems returns a fetch that emits items (a progress mark first, which
// a push must ignore).
func pushItems(items ...source.Item) func(context.Context, source.Emit) error {
	return func(ctx context.Context, emit source.Emit) error {
		if err := emit(ctx, source.Item{Mark: t0.Add(time.Hour)}); err != nil {
			return err
		}
		for _, it := range items {
			if err := emit(ctx, it); err != nil {
				return err
			}
		}
		return nil
	}
}

// TestPushDeliversOnceAndMovesNoCursor: what a notification announced is
// delivered at once, a repeated notification adds nothing, and the next
// scheduled run — which still reads the whole window, since a push
// covers nothing — drops what the push delivered and delivers only what
// no notification announced.
func TestPushDeliversOnceAndMovesNoCursor(t *testing.T) {
	store, _ := newStore(t)
	sink := newMemSink()
	clk := &clock{t: t0.Add(2 * time.Hour)}
	p := newPipeline(t, Options{Store: store, Sinks: []sinkT{sink}, Now: clk.Now, InitialLookback: 3 * time.Hour})
	p.Start(t.Context())
	defer p.Shutdown()
	src := &fakeEvent{name: "pushed", wd: source.Windowing{Overlap: time.Minute}}
	a, b, c := item("a", t0.Add(10*time.Minute)), item("b", t0.Add(20*time.Minute)), item("c", t0.Add(30*time.Minute))
	src.add(a, b, c)

	res := p.Push(t.Context(), tenant, src, "", pushItems(a, b, a))
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if res.New != 2 || res.Duplicates != 1 || res.OutOfWindow != 0 {
		t.Fatalf("push: new %d, duplicates %d, out of window %d; want 2, 1, 0", res.New, res.Duplicates, res.OutOfWindow)
	}
	assertOnce(t, sink.ids(), "a", "b")
	if _, ok := cursorOf(t, store, "pushed"); ok {
		t.Fatal("a push moved the cursor: a run would skip what no notification announced")
	}
	prog, err := store.Progress(tenant, "pushed")
	if err != nil {
		t.Fatal(err)
	}
	if len(prog.Covered) != 0 {
		t.Fatalf("a push covered %v", prog.Covered)
	}

	if res := p.Push(t.Context(), tenant, src, "", pushItems(b)); res.Err != nil || res.New != 0 || res.Duplicates != 1 {
		t.Fatalf("a repeated notification: new %d, duplicates %d, err %v; want 0, 1, nil", res.New, res.Duplicates, res.Err)
	}
	run := p.RunSources(t.Context(), tenant, []source.Source{src}, RunOptions{})[0]
	if run.Err != nil {
		t.Fatal(run.Err)
	}
	if run.New != 1 || run.Duplicates != 2 {
		t.Fatalf("the run after the pushes: new %d, duplicates %d; want 1 (c), 2 (a, b)", run.New, run.Duplicates)
	}
	assertOnce(t, sink.ids(), "a", "b", "c")
	if len(sink.ids()) != 3 {
		t.Fatalf("delivered %v", sink.ids())
	}
}

// TestPushFailureCommitsNothingUndelivered: a failing output refuses the
// push's batch; nothing is remembered, so the next push or run delivers
// it again.
func TestPushFailureCommitsNothingUndelivered(t *testing.T) {
	store, _ := newStore(t)
	sink := newMemSink()
	sink.before = func(int) error { return errors.New("receiver down") }
	clk := &clock{t: t0.Add(2 * time.Hour)}
	p := newPipeline(t, Options{Store: store, Sinks: []sinkT{sink}, Now: clk.Now})
	p.Start(t.Context())
	defer p.Shutdown()
	src := &fakeEvent{name: "pushed", wd: source.Windowing{Overlap: time.Minute}}
	a := item("a", t0.Add(10*time.Minute))
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if res := p.Push(ctx, tenant, src, "", pushItems(a)); res.Err == nil {
		t.Fatal("a push whose only output refused it reported success")
	}
	seen, err := store.SeenAmong(tenant, "pushed", []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	if seen["a"] || len(sink.ids()) != 0 {
		t.Fatalf("a refused push was remembered (%v) or delivered (%v): it would never be sent again", seen, sink.ids())
	}
}

// TestPushWaitsForTheRun: a push and a run of one source never overlap,
// so an id cannot be delivered by both.
func TestPushWaitsForTheRun(t *testing.T) {
	store, _ := newStore(t)
	sink := newMemSink()
	clk := &clock{t: t0.Add(2 * time.Hour)}
	p := newPipeline(t, Options{Store: store, Sinks: []sinkT{sink}, Now: clk.Now, InitialLookback: 3 * time.Hour})
	p.Start(t.Context())
	defer p.Shutdown()
	a := item("a", t0.Add(10*time.Minute))
	entered, release := make(chan struct{}), make(chan struct{})
	// Ids are remembered for a day, as the audit log's are (Remember):
	// a notification may come after the run read the blob.
	src := &blockingEvent{fakeEvent: fakeEvent{name: "pushed", wd: source.Windowing{Remember: 24 * time.Hour}}, entered: entered, release: release}
	src.add(a)
	done := make(chan Result)
	go func() { done <- p.RunSources(t.Context(), tenant, []source.Source{src}, RunOptions{})[0] }()
	<-entered
	pushed := make(chan Result)
	go func() { pushed <- p.Push(t.Context(), tenant, src, "", pushItems(a)) }()
	select {
	case <-pushed:
		t.Fatal("the push ran while a run of the same source was reading")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if r := <-done; r.Err != nil || r.New != 1 {
		t.Fatalf("run: new %d, err %v", r.New, r.Err)
	}
	if r := <-pushed; r.Err != nil || r.New != 0 || r.Duplicates != 1 {
		t.Fatalf("push after the run: new %d, duplicates %d, err %v; want 0, 1, nil", r.New, r.Duplicates, r.Err)
	}
	assertOnce(t, sink.ids(), "a")

	// A push that cannot get its turn gives up with its context.
	ctx, cancel := context.WithCancel(t.Context())
	unlock, err := p.exclusive(t.Context(), tenant, "pushed")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if r := p.Push(ctx, tenant, src, "", pushItems(a)); !errors.Is(r.Err, context.Canceled) {
		t.Fatalf("push while the source is busy and the context ends: %v", r.Err)
	}
	unlock()
}

// blockingEvent holds its first Fetch until release.
type blockingEvent struct {
	fakeEvent
	entered, release chan struct{}
	once             atomic.Bool
}

func (b *blockingEvent) Fetch(ctx context.Context, w source.Window, emit source.Emit) error {
	if b.once.CompareAndSwap(false, true) {
		close(b.entered)
		<-b.release
	}
	return b.fakeEvent.Fetch(ctx, w, emit)
}
