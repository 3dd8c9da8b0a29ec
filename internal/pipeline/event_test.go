package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/sink"
	"github.com/defenderharvester/defenderharvester/internal/source"
)

type sinkT = sink.Sink

func TestWindows(t *testing.T) {
	now := t0
	h := time.Hour
	tests := []struct {
		name      string
		cursor    time.Time
		hasCursor bool
		since     time.Time
		wd        source.Windowing
		want      source.Window
		chunks    int
	}{
		{"no cursor: initial lookback", time.Time{}, false, time.Time{}, source.Windowing{},
			source.Window{From: now.Add(-24 * h), To: now}, 1},
		{"cursor minus overlap", now.Add(-2 * h), true, time.Time{}, source.Windowing{Overlap: 30 * time.Minute},
			source.Window{From: now.Add(-150 * time.Minute), To: now}, 1},
		{"delay keeps the end behind now", now.Add(-2 * h), true, time.Time{}, source.Windowing{Delay: 5 * time.Minute},
			source.Window{From: now.Add(-2 * h), To: now.Add(-5 * time.Minute)}, 1},
		{"since overrides the cursor", now.Add(-2 * h), true, now.Add(-240 * h), source.Windowing{Overlap: h},
			source.Window{From: now.Add(-240 * h), To: now}, 1},
		{"chunks of MaxWindow, last one short", time.Time{}, false, now.Add(-210 * time.Minute), source.Windowing{MaxWindow: h},
			source.Window{From: now.Add(-210 * time.Minute), To: now}, 4},
		{"cursor ahead of now-delay: nothing to read", now, true, time.Time{}, source.Windowing{Delay: h},
			source.Window{From: now, To: now.Add(-h)}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			whole, chunks := Windows(now, tc.cursor, tc.hasCursor, tc.since, 24*h, tc.wd)
			if !whole.From.Equal(tc.want.From) || !whole.To.Equal(tc.want.To) {
				t.Errorf("window %v–%v, want %v–%v", whole.From, whole.To, tc.want.From, tc.want.To)
			}
			if len(chunks) != tc.chunks {
				t.Fatalf("%d chunks, want %d: %v", len(chunks), tc.chunks, chunks)
			}
			// Chunks tile the window exactly: contiguous, half-open, bounded.
			for i, c := range chunks {
				if i == 0 && !c.From.Equal(whole.From) || i > 0 && !c.From.Equal(chunks[i-1].To) {
					t.Errorf("chunk %d does not start where the previous ended: %v", i, c)
				}
				if tc.wd.MaxWindow > 0 && c.To.Sub(c.From) > tc.wd.MaxWindow {
					t.Errorf("chunk %d longer than MaxWindow: %v", i, c)
				}
			}
			if n := len(chunks); n > 0 && !chunks[n-1].To.Equal(whole.To) {
				t.Errorf("last chunk ends at %v, want %v", chunks[n-1].To, whole.To)
			}
		})
	}
}

func TestCursorFollowsChunksAcrossRuns(t *testing.T) {
	store, _ := newStore(t)
	clk := &clock{t: t0}
	mem := newMemSink()
	p := newPipeline(t, Options{Store: store, Sinks: sinks{mem}.s(), Now: clk.Now, InitialLookback: 3 * time.Hour})
	src := &fakeEvent{name: "ActionCenter", wd: source.Windowing{Overlap: 10 * time.Minute, MaxWindow: time.Hour, Delay: 2 * time.Minute}}

	res := run1(t, p, src, RunOptions{})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	wantTo := t0.Add(-2 * time.Minute)
	if !res.Window.From.Equal(t0.Add(-3*time.Hour)) || !res.Window.To.Equal(wantTo) {
		t.Errorf("first window %v", res.Window)
	}
	if n := len(src.calls()); n != 3 {
		t.Errorf("first run fetched %d chunks, want 3", n)
	}
	if c, ok := cursorOf(t, store, src.name); !ok || !c.Equal(wantTo) {
		t.Errorf("cursor after first run %v (ok=%v), want %v", c, ok, wantTo)
	}

	clk.Set(t0.Add(30 * time.Minute))
	res = run1(t, p, src, RunOptions{})
	calls := src.calls()
	last := calls[len(calls)-1]
	if !last.From.Equal(wantTo.Add(-10*time.Minute)) || !last.To.Equal(t0.Add(28*time.Minute)) {
		t.Errorf("second run window %v, want [cursor-overlap, now-delay)", last)
	}
	if c, _ := cursorOf(t, store, src.name); !c.Equal(t0.Add(28 * time.Minute)) {
		t.Errorf("cursor after second run %v", c)
	}

	// A backfill reads from Since but never moves the cursor back.
	res = run1(t, p, src, RunOptions{Since: t0.Add(-48 * time.Hour)})
	if res.Err != nil || !res.Window.From.Equal(t0.Add(-48*time.Hour)) {
		t.Errorf("backfill window %v err %v", res.Window, res.Err)
	}
	if c, _ := cursorOf(t, store, src.name); !c.Equal(t0.Add(28 * time.Minute)) {
		t.Errorf("backfill moved the cursor to %v", c)
	}
}

// sink list helper keeps call sites short.
type sinks []*memSink

func (s sinks) s() []sinkT {
	out := make([]sinkT, len(s))
	for i := range s {
		out[i] = s[i]
	}
	return out
}

func TestEdgeOfWindowItemDeliveredOnce(t *testing.T) {
	store, _ := newStore(t)
	clk := &clock{t: t0}
	mem := newMemSink()
	p := newPipeline(t, Options{Store: store, Sinks: sinks{mem}.s(), Now: clk.Now, InitialLookback: 2 * time.Hour})
	src := &fakeEvent{name: "Timeline", wd: source.Windowing{Overlap: 5 * time.Minute, MaxWindow: time.Hour}}
	// t0-1h is a chunk edge inside run 1; t0 is the end of run 1.
	src.add(item("chunk-edge", t0.Add(-time.Hour)), item("run-edge", t0), item("start-edge", t0.Add(-2*time.Hour)))

	res := run1(t, p, src, RunOptions{})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	// chunk-edge is emitted by both chunks (inclusive API), run-edge by
	// the last chunk of run 1 although it belongs to run 2.
	if res.New != 2 || res.OutOfWindow != 2 {
		t.Errorf("run 1: new=%d outOfWindow=%d, want 2 and 2", res.New, res.OutOfWindow)
	}
	clk.Set(t0.Add(time.Hour))
	res = run1(t, p, src, RunOptions{})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if res.New != 1 {
		t.Errorf("run 2: new=%d, want 1 (the run edge item)", res.New)
	}
	assertOnce(t, mem.ids(), "chunk-edge", "run-edge", "start-edge")
}

func TestDedupAcrossRuns(t *testing.T) {
	store, _ := newStore(t)
	clk := &clock{t: t0}
	mem := newMemSink()
	p := newPipeline(t, Options{Store: store, Sinks: sinks{mem}.s(), Now: clk.Now, InitialLookback: time.Hour})
	src := &fakeEvent{name: "MachineActions", wd: source.Windowing{Overlap: 30 * time.Minute}}
	var all []string
	for i := range 60 {
		id := fmt.Sprintf("a%02d", i)
		src.add(item(id, t0.Add(-time.Hour+time.Duration(i)*time.Minute)))
		all = append(all, id)
	}
	// The same event arriving twice in one response is one record.
	src.add(item("a59", t0.Add(-time.Minute)))
	res := run1(t, p, src, RunOptions{})
	if res.New != 60 || res.Duplicates != 1 || res.Err != nil {
		t.Fatalf("run 1: %+v", res)
	}
	// Late arrivals inside the overlap are caught, re-read ones are not repeated.
	src.add(item("late", t0.Add(-10*time.Minute)))
	clk.Set(t0.Add(20 * time.Minute))
	res = run1(t, p, src, RunOptions{})
	if res.New != 1 || res.Duplicates != 31 {
		t.Errorf("run 2: new=%d duplicates=%d, want 1 and 31 (the overlap)", res.New, res.Duplicates)
	}
	// A backfill over everything delivers nothing new.
	res = run1(t, p, src, RunOptions{Since: t0.Add(-2 * time.Hour)})
	if res.New != 0 || res.Duplicates != 62 {
		t.Errorf("backfill: new=%d duplicates=%d", res.New, res.Duplicates)
	}
	assertOnce(t, mem.ids(), append(all, "late")...)
}

func TestSinkFailureCommitsNothing(t *testing.T) {
	tests := []struct {
		name  string
		sinks func() sinks
	}{
		{"the only output fails", func() sinks {
			s := newMemSink()
			s.before = func(int) error { return errors.New("disk full") }
			return sinks{s}
		}},
		{"both of two outputs fail", func() sinks {
			a, b := newMemSink(), newMemSink()
			b.name = "second"
			a.before = func(int) error { return errors.New("disk full") }
			b.before = func(int) error { return errors.New("HEC 503") }
			return sinks{a, b}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store, _ := newStore(t)
			clk := &clock{t: t0}
			ss := tc.sinks()
			p := newPipeline(t, Options{Store: store, Sinks: ss.s(), Now: clk.Now, BatchSize: 10})
			src := &fakeEvent{name: "ActionCenter"}
			var ids []string
			for i := range 35 {
				id := fmt.Sprintf("x%02d", i)
				ids = append(ids, id)
				src.add(item(id, t0.Add(-time.Duration(i+1)*time.Minute)))
			}
			res := run1(t, p, src, RunOptions{})
			if res.Err == nil || !strings.Contains(res.Err.Error(), "ActionCenter") || !strings.Contains(res.Err.Error(), "disk full") {
				t.Fatalf("error %v should name the source and the cause", res.Err)
			}
			if _, ok := cursorOf(t, store, src.name); ok {
				t.Error("cursor committed although an output failed")
			}
			if seen, _ := store.SeenAmong(tenant, src.name, ids); len(seen) != 0 {
				t.Errorf("%d ids committed as seen although an output failed", len(seen))
			}
			// The next run, with the outputs healthy, delivers everything.
			healthy := newMemSink()
			p2 := newPipeline(t, Options{Store: store, Sinks: sinks{healthy}.s(), Now: clk.Now, BatchSize: 10})
			if res := run1(t, p2, src, RunOptions{}); res.Err != nil || res.New != 35 {
				t.Fatalf("rerun: new=%d err=%v", res.New, res.Err)
			}
			assertOnce(t, healthy.ids(), ids...)
		})
	}
}

func TestSourceErrorMidWindow(t *testing.T) {
	store, _ := newStore(t)
	clk := &clock{t: t0}
	mem := newMemSink()
	p := newPipeline(t, Options{Store: store, Sinks: sinks{mem}.s(), Now: clk.Now, BatchSize: 500})
	src := &fakeEvent{name: "Timeline"}
	var ids []string
	for i := range 1500 {
		id := fmt.Sprintf("e%04d", i)
		ids = append(ids, id)
		src.add(item(id, t0.Add(-time.Duration(i+1)*time.Second)))
	}
	src.setFailAfter(1200)
	res := run1(t, p, src, RunOptions{})
	if !errors.Is(res.Err, errFetch) || !strings.Contains(res.Err.Error(), "Timeline") {
		t.Fatalf("err = %v, want the source's error naming it", res.Err)
	}
	if res.New != 1200 {
		t.Errorf("items read before the failure: delivered %d, want 1200", res.New)
	}
	if _, ok := cursorOf(t, store, src.name); ok {
		t.Error("cursor moved past an unfinished window")
	}
	src.setFailAfter(0)
	res = run1(t, p, src, RunOptions{})
	if res.Err != nil || res.New != 300 || res.Duplicates != 1200 {
		t.Fatalf("rerun: new=%d duplicates=%d err=%v", res.New, res.Duplicates, res.Err)
	}
	if c, ok := cursorOf(t, store, src.name); !ok || !c.Equal(t0) {
		t.Errorf("cursor after the completed rerun: %v", c)
	}
	assertOnce(t, mem.ids(), ids...)
}

func TestInvalidPayloadStopsTheSource(t *testing.T) {
	store, _ := newStore(t)
	mem := newMemSink()
	p := newPipeline(t, Options{Store: store, Sinks: sinks{mem}.s(), Now: func() time.Time { return t0 }})
	src := &fakeEvent{name: "Broken"}
	src.add(source.Item{ID: "bad", Time: t0.Add(-time.Minute), Raw: []byte(`{"secret":"tok`)})
	res := run1(t, p, src, RunOptions{})
	if res.Err == nil || !strings.Contains(res.Err.Error(), "Broken") || strings.Contains(res.Err.Error(), "tok") {
		t.Fatalf("err = %v; want an error naming the source and not echoing the payload", res.Err)
	}
	if _, ok := cursorOf(t, store, src.name); ok || len(mem.all()) != 0 {
		t.Error("a window with an undeliverable item was committed")
	}
}

func TestItemsWithoutIDAreDedupedByContent(t *testing.T) {
	store, _ := newStore(t)
	clk := &clock{t: t0}
	mem := newMemSink()
	p := newPipeline(t, Options{Store: store, Sinks: sinks{mem}.s(), Now: clk.Now})
	src := &fakeEvent{name: "NoIds", wd: source.Windowing{Overlap: time.Hour}}
	it := item("", t0.Add(-30*time.Minute))
	src.add(it)
	run1(t, p, src, RunOptions{})
	clk.Set(t0.Add(10 * time.Minute))
	run1(t, p, src, RunOptions{})
	if got := mem.all(); len(got) != 1 || got[0].ID == "" {
		t.Errorf("delivered %d records (want 1 with a content id)", len(got))
	}
}

// countSink only counts: it keeps no records, so a test can push a lot.
type countSink struct {
	memSink
	n, bytes int
}

func (c *countSink) Write(_ context.Context, table string, recs []record.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n += len(recs)
	c.maxBatch = max(c.maxBatch, len(recs))
	b := 0
	for _, r := range recs {
		b += len(r.Raw)
	}
	c.bytes = max(c.bytes, b)
	return nil
}

// streamSource emits n items generated on the fly and records how many it
// had emitted before the first batch reached the sink.
type streamSource struct {
	n    int
	size int
}

func (s *streamSource) Name() string                { return "Stream" }
func (s *streamSource) Table() string               { return "MdeStream" }
func (s *streamSource) Kind() source.Kind           { return source.Event }
func (s *streamSource) Windowing() source.Windowing { return source.Windowing{} }
func (s *streamSource) Fetch(ctx context.Context, w source.Window, emit source.Emit) error {
	pad := strings.Repeat("x", s.size)
	for i := range s.n {
		raw := fmt.Appendf(nil, `{"N":%d,"P":"%s"}`, i, pad)
		if err := emit(ctx, source.Item{ID: fmt.Sprint(i), Time: w.From.Add(time.Duration(i) * time.Microsecond), Raw: raw}); err != nil {
			return err
		}
	}
	return nil
}

func TestStreamingIsMemoryBounded(t *testing.T) {
	tests := []struct {
		name                 string
		n, size              int
		batchSize, batchByte int
		wantMaxBatch         int
	}{
		{"200k small items, batches of 500", 200_000, 10, 500, 4 << 20, 500},
		{"big items are cut by bytes", 2_000, 10_000, 500, 64 << 10, 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store, _ := newStore(t)
			cs := &countSink{memSink: memSink{name: "count"}}
			p := newPipeline(t, Options{Store: store, Sinks: []sinkT{cs}, Now: func() time.Time { return t0 },
				BatchSize: tc.batchSize, BatchBytes: tc.batchByte})
			res := run1(t, p, &streamSource{n: tc.n, size: tc.size}, RunOptions{})
			if res.Err != nil || res.New != tc.n || cs.n != tc.n {
				t.Fatalf("new=%d delivered=%d err=%v, want %d", res.New, cs.n, res.Err, tc.n)
			}
			if cs.maxBatch > tc.wantMaxBatch {
				t.Errorf("a sink got %d records at once, want at most %d", cs.maxBatch, tc.wantMaxBatch)
			}
			if cs.bytes > tc.batchByte+tc.size+100 {
				t.Errorf("a sink got %d payload bytes at once, bound is %d", cs.bytes, tc.batchByte)
			}
		})
	}
}

func TestSourcesRunIndependentlyInOrder(t *testing.T) {
	store, _ := newStore(t)
	mem := newMemSink()
	mem.before = func(int) error { return nil }
	p := newPipeline(t, Options{Store: store, Sinks: sinks{mem}.s(), Now: func() time.Time { return t0 }, Concurrency: 2})
	var srcs []source.Source
	for i := range 5 {
		s := &fakeEvent{name: fmt.Sprintf("S%d", i)}
		s.add(item(fmt.Sprintf("S%d-1", i), t0.Add(-time.Minute)), item(fmt.Sprintf("S%d-2", i), t0.Add(-2*time.Minute)))
		if i == 2 {
			s.setFailAfter(1)
		}
		srcs = append(srcs, s)
	}
	srcs = append(srcs, &kindLiar{})
	results := p.Run(t.Context(), tenant, srcs, RunOptions{})
	var names []string
	for i, r := range results {
		names = append(names, r.Source)
		failed := r.Err != nil
		if want := i == 2 || i == 5; failed != want {
			t.Errorf("source %s: err=%v", r.Source, r.Err)
		}
	}
	if !slices.Equal(names, []string{"S0", "S1", "S2", "S3", "S4", "liar"}) {
		t.Errorf("results out of order: %v", names)
	}
	if got := len(mem.ids()); got != 9 {
		t.Errorf("delivered %d records, want 9 (4 healthy sources × 2 + 1 before the failure)", got)
	}
}

type kindLiar struct{}

func (kindLiar) Name() string      { return "liar" }
func (kindLiar) Table() string     { return "MdeLiar" }
func (kindLiar) Kind() source.Kind { return source.Event }

func TestNewRejects(t *testing.T) {
	store, _ := newStore(t)
	if _, err := New(Options{Sinks: sinks{newMemSink()}.s()}); err == nil {
		t.Error("pipeline without a store accepted")
	}
	if _, err := New(Options{Store: store}); err == nil || !strings.Contains(err.Error(), "output") {
		t.Errorf("pipeline without outputs: %v", err)
	}
}

// TestLookbackNeverSkipsAGap: after days without runs, a short --lookback
// must still read everything since the checkpoint: the cursor moves to the
// window's end, so a skipped gap would be lost for good.
func TestLookbackNeverSkipsAGap(t *testing.T) {
	store, _ := newStore(t)
	clk := &clock{t: t0}
	mem := newMemSink()
	src := &fakeEvent{name: "ActionCenter", wd: source.Windowing{Overlap: 15 * time.Minute}}
	p := newPipeline(t, Options{Store: store, Sinks: sinks{mem}.s(), Now: clk.Now})
	run1(t, p, src, RunOptions{})
	// Three days pass without a run; an event lands in the middle.
	src.add(item("gap", t0.Add(36*time.Hour)))
	clk.Set(t0.Add(72 * time.Hour))
	res := run1(t, p, src, RunOptions{Since: clk.Now().Add(-time.Hour)})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if mem.ids()["gap"] != 1 {
		t.Fatalf("the event in the gap between the checkpoint and --lookback was not delivered (window %v → %v)", res.Window.From, res.Window.To)
	}
}
