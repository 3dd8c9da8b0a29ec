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
	"github.com/defenderharvester/defenderharvester/internal/state"
)

type sinkT = sink.Sink

func TestPlanWindows(t *testing.T) {
	now := t0
	h := time.Hour
	at := func(hours float64) time.Time { return now.Add(time.Duration(hours * float64(h))) }
	cov := func(rs ...[2]float64) []state.Range {
		var out []state.Range
		for _, r := range rs {
			out = append(out, state.Range{From: at(r[0]), To: at(r[1])})
		}
		return out
	}
	win := func(a, b float64) source.Window { return source.Window{From: at(a), To: at(b)} }
	tests := []struct {
		name   string
		prog   state.Progress
		ro     RunOptions
		wd     source.Windowing
		chunks []source.Window
		goal   time.Time // zero: no new goal stored
	}{
		{"first run: initial lookback, kept as the goal", state.Progress{}, RunOptions{}, source.Windowing{},
			[]source.Window{win(-24, 0)}, at(-24)},
		{"cursor minus overlap", state.Progress{Cursor: at(-2), HasCursor: true, Covered: cov([2]float64{-24, -2}), Goal: at(-24)},
			RunOptions{}, source.Windowing{Overlap: 30 * time.Minute}, []source.Window{win(-2.5, 0)}, time.Time{}},
		{"delay keeps the end behind now", state.Progress{Cursor: at(-2), HasCursor: true}, RunOptions{},
			source.Windowing{Delay: 5 * time.Minute}, []source.Window{{From: at(-2), To: now.Add(-5 * time.Minute)}}, time.Time{}},
		{"backfill reads only what is not covered, fresh data first", state.Progress{Cursor: at(-2), HasCursor: true,
			Covered: cov([2]float64{-48, -30}, [2]float64{-24, -2}), Goal: at(-48)},
			RunOptions{Since: at(-72)}, source.Windowing{Overlap: h},
			[]source.Window{win(-3, 0), win(-72, -48), win(-30, -24)}, at(-72)},
		{"an interrupted backfill resumes without --since", state.Progress{Cursor: at(-2), HasCursor: true,
			Covered: cov([2]float64{-72, -60}, [2]float64{-24, -2}), Goal: at(-72)},
			RunOptions{}, source.Windowing{}, []source.Window{win(-2, 0), win(-60, -24)}, time.Time{}},
		{"a since later than the cursor never skips the gap", state.Progress{Cursor: at(-72), HasCursor: true,
			Covered: cov([2]float64{-96, -72}), Goal: at(-96)}, RunOptions{Since: at(-1)}, source.Windowing{Overlap: 15 * time.Minute},
			[]source.Window{{From: at(-72).Add(-15 * time.Minute), To: now}}, time.Time{}},
		{"state from before covered ranges: cursor only", state.Progress{Cursor: at(-2), HasCursor: true}, RunOptions{},
			source.Windowing{}, []source.Window{win(-2, 0)}, time.Time{}},
		{"a first run told where to start starts there", state.Progress{}, RunOptions{Since: at(-6)}, source.Windowing{},
			[]source.Window{win(-6, 0)}, at(-6)},
		{"chunks of MaxWindow, last one short", state.Progress{}, RunOptions{}, source.Windowing{MaxWindow: h},
			[]source.Window{win(-24, -23), win(-23, -22)}, at(-24)}, // checked by count below
		{"cursor ahead of now-delay: nothing to read", state.Progress{Cursor: now, HasCursor: true, Covered: cov([2]float64{-5, 0}), Goal: at(-5)},
			RunOptions{}, source.Windowing{Delay: h}, nil, time.Time{}},
		{"redeliver reads the harvested part only", state.Progress{Cursor: at(-2), HasCursor: true, Covered: cov([2]float64{-10, -2}), Goal: at(-10)},
			RunOptions{Since: at(-5), Redeliver: true}, source.Windowing{}, []source.Window{win(-5, -2)}, time.Time{}},
		{"redeliver without a cursor reads nothing", state.Progress{}, RunOptions{Since: at(-5), Redeliver: true},
			source.Windowing{}, nil, time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan := PlanWindows(now, tc.prog, tc.ro, 24*h, tc.wd)
			if !plan.Goal.Equal(tc.goal) {
				t.Errorf("goal %v, want %v", plan.Goal, tc.goal)
			}
			for i, c := range plan.Chunks {
				if tc.wd.MaxWindow > 0 && c.To.Sub(c.From) > tc.wd.MaxWindow {
					t.Errorf("chunk %d longer than MaxWindow: %v", i, c)
				}
				if !c.From.Before(c.To) {
					t.Errorf("empty chunk %d: %v", i, c)
				}
			}
			if tc.wd.MaxWindow > 0 {
				// 24 h of initial lookback in 1 h chunks, contiguous,
				// newest first (the fresh data lands first).
				if len(plan.Chunks) != 24 || !plan.Chunks[23].From.Equal(at(-24)) || !plan.Chunks[0].To.Equal(now) {
					t.Fatalf("chunks %v", plan.Chunks)
				}
				for i := 1; i < len(plan.Chunks); i++ {
					if !plan.Chunks[i].To.Equal(plan.Chunks[i-1].From) {
						t.Fatalf("chunk %d does not end where the previous (newer) one started", i)
					}
				}
				return
			}
			if len(plan.Chunks) != len(tc.chunks) {
				t.Fatalf("chunks %v, want %v", plan.Chunks, tc.chunks)
			}
			for i := range tc.chunks {
				if !plan.Chunks[i].From.Equal(tc.chunks[i].From) || !plan.Chunks[i].To.Equal(tc.chunks[i].To) {
					t.Fatalf("chunks %v, want %v", plan.Chunks, tc.chunks)
				}
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
	// A backfill reads only the hour not covered yet (and the overlap):
	// nothing is delivered twice, whatever the seen-id retention.
	before := len(src.calls())
	res = run1(t, p, src, RunOptions{Since: t0.Add(-2 * time.Hour)})
	if res.New != 0 || res.Err != nil {
		t.Errorf("backfill: new=%d duplicates=%d err=%v", res.New, res.Duplicates, res.Err)
	}
	read := src.calls()[before:]
	if len(read) != 2 || !read[1].From.Equal(t0.Add(-2*time.Hour)) || !read[1].To.Equal(t0.Add(-time.Hour)) {
		t.Errorf("backfill read %v, want the overlap and then only [−2h, −1h)", read)
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

// The pipeline's check is the one validity scan of an event payload: what
// it delivers is marked so the outputs do not scan it again, and what it
// refuses never reaches them (TestInvalidPayloadStopsTheSource).
func TestDeliveredEventsAreMarkedValid(t *testing.T) {
	store, _ := newStore(t)
	mem := newMemSink()
	p := newPipeline(t, Options{Store: store, Sinks: sinks{mem}.s(), Now: func() time.Time { return t0 }})
	src := &fakeEvent{name: "Good"}
	src.add(item("a", t0.Add(-time.Minute)), item("b", t0.Add(-2*time.Minute)))
	if res := run1(t, p, src, RunOptions{}); res.Err != nil || res.New != 2 {
		t.Fatalf("new=%d err=%v", res.New, res.Err)
	}
	for _, r := range mem.all() {
		if !r.RawValid {
			t.Errorf("record %s delivered without RawValid", r.ID)
		}
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

// With the defaults a batch (one fsync per output, one commit) carries up
// to BatchBytes, not a fixed 2,000 records; what it holds stays bounded.
func TestDefaultBatchesAreCutByBytes(t *testing.T) {
	store, _ := newStore(t)
	cs := &countSink{memSink: memSink{name: "count"}}
	cnt := &batchCounter{}
	p := newPipeline(t, Options{Store: store, Sinks: []sinkT{cs}, Now: func() time.Time { return t0 }, Observer: cnt})
	const n, size = 20_000, 300
	res := run1(t, p, &streamSource{n: n, size: size}, RunOptions{})
	if res.Err != nil || res.New != n || cs.n != n {
		t.Fatalf("new=%d delivered=%d err=%v, want %d", res.New, cs.n, res.Err, n)
	}
	// ~520 bytes per item counted (payload + id + overhead): 4 MiB holds
	// ~8,000; batches of 2,000 would make 10 flushes.
	if cnt.batches > 3 {
		t.Errorf("%d batches for %d records of %d bytes, want at most 3 (cut by 4 MiB)", cnt.batches, n, size)
	}
	if cs.bytes > DefaultBatchBytes || cs.maxBatch > DefaultBatchSize {
		t.Errorf("a sink got %d records, %d payload bytes at once; bounds %d, %d", cs.maxBatch, cs.bytes, DefaultBatchSize, DefaultBatchBytes)
	}
	if c, ok := cursorOf(t, store, "Stream"); !ok || !c.Equal(t0) {
		t.Errorf("cursor %v, want %v", c, t0)
	}
}

// tickingSource advances the clock by step before each item it emits: a
// slow source.
type tickingSource struct {
	streamSource
	clk  *clock
	step time.Duration
}

func (s *tickingSource) Fetch(ctx context.Context, w source.Window, emit source.Emit) error {
	for i := range s.n {
		s.clk.Set(s.clk.Now().Add(s.step))
		raw := fmt.Appendf(nil, `{"N":%d}`, i)
		if err := emit(ctx, source.Item{ID: fmt.Sprint(i), Time: w.From.Add(time.Duration(i) * time.Microsecond), Raw: raw}); err != nil {
			return err
		}
	}
	return nil
}

// A slow source's records wait at most FlushAfter for their flush (and
// commit), however far from BatchBytes the batch is.
func TestSlowSourceFlushesAfterFlushAfter(t *testing.T) {
	store, _ := newStore(t)
	clk := &clock{t: t0}
	cs := &countSink{memSink: memSink{name: "count"}}
	cnt := &batchCounter{}
	p := newPipeline(t, Options{Store: store, Sinks: []sinkT{cs}, Now: clk.Now, Observer: cnt, FlushAfter: 5 * time.Second})
	src := &tickingSource{streamSource: streamSource{n: 60}, clk: clk, step: time.Second}
	res := run1(t, p, src, RunOptions{})
	if res.Err != nil || res.New != 60 {
		t.Fatalf("new=%d err=%v", res.New, res.Err)
	}
	// One item a second, flushed when the first pending one is 5 s old:
	// batches of 6.
	if cs.maxBatch != 6 || cnt.batches != 10 {
		t.Errorf("max batch %d, %d batches; want 6 and 10", cs.maxBatch, cnt.batches)
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

// A source writing several tables (Item.Table) with an event time apart
// from the window time (Item.EventTime): each record lands in its table
// with that time, and with Windowing.Remember an id delivered long ago is
// still dropped when the service publishes it again days later.
func TestItemsForSeveralTablesAndRedeliveredDaysLater(t *testing.T) {
	store, _ := newStore(t)
	mem := newMemSink()
	clk := &clock{t: t0}
	src := &fakeEvent{name: "auditlog", wd: source.Windowing{Overlap: 10 * time.Minute, Remember: 7 * 24 * time.Hour}}
	occurred := t0.Add(-3 * time.Hour)
	a := item("rec-1", t0.Add(-30*time.Minute))
	a.Table, a.EventTime = "O365AuditGeneral", occurred
	b := item("rec-1-mde", t0.Add(-30*time.Minute))
	b.Table, b.EventTime = "MdeAuditResponseActions", occurred
	src.add(a, b)
	p := newPipeline(t, Options{Store: store, Sinks: sinks{mem}.s(), Now: clk.Now, InitialLookback: time.Hour})
	if res := p.Run(t.Context(), tenant, []source.Source{src}, RunOptions{}); res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	got := map[string]record.Record{}
	for _, r := range mem.all() {
		got[r.ID] = r
	}
	if got["rec-1"].Table != "O365AuditGeneral" || got["rec-1-mde"].Table != "MdeAuditResponseActions" ||
		!got["rec-1"].Time.Equal(occurred) || mem.tables["O365AuditGeneral"] != 1 || mem.tables["MdeAuditResponseActions"] != 1 {
		t.Fatalf("records %+v, per table %v; want one in each table, timed when it occurred", got, mem.tables)
	}
	// Three days later the same record comes again in a new blob.
	clk.Set(t0.Add(72 * time.Hour))
	again := item("rec-1", t0.Add(72*time.Hour-20*time.Minute))
	again.Table, again.EventTime = "O365AuditGeneral", occurred
	src.add(again)
	res := p.Run(t.Context(), tenant, []source.Source{src}, RunOptions{})
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	if n := len(mem.all()); n != 2 || res[0].Duplicates != 1 {
		t.Errorf("after the re-published record: %d records delivered, %d duplicates dropped; want it dropped", n, res[0].Duplicates)
	}
}
