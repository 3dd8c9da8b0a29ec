package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/source"
)

// timelineFake serves each part's events the way the device timeline
// does: a window is read newest first in pages, bounds inclusive, and a
// progress mark follows every page that has a successor. Events of part
// p are at start + i·step (i < n), so some fall exactly on slice edges.
type timelineFake struct {
	parts      []string
	start      time.Time
	step       time.Duration
	n          int
	page       int
	workers    int
	wd         source.Windowing
	payload    string
	stopAfter  int64 // > 0: cancel (via stop) once this many pages were served
	stop       context.CancelFunc
	pages      atomic.Int64
	inFlight   atomic.Int64
	maxFlight  atomic.Int64
	mu         sync.Mutex
	requested  map[string][]source.Window // part → windows asked for
	pageWindow map[string][]source.Window // part → [oldest, newest] read per page
}

func (f *timelineFake) Name() string                { return "timeline" }
func (f *timelineFake) Table() string               { return "MdeTimeline" }
func (f *timelineFake) Kind() source.Kind           { return source.Event }
func (f *timelineFake) Windowing() source.Windowing { return f.wd }
func (f *timelineFake) Workers() int                { return f.workers }
func (f *timelineFake) Parts(context.Context) ([]string, error) {
	return f.parts, nil
}
func (f *timelineFake) Fetch(ctx context.Context, w source.Window, emit source.Emit) error {
	return f.FetchPart(ctx, f.parts[0], w, emit)
}

func (f *timelineFake) at(i int) time.Time { return f.start.Add(time.Duration(i) * f.step) }

func (f *timelineFake) FetchPart(ctx context.Context, part string, w source.Window, emit source.Emit) error {
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for m := f.maxFlight.Load(); n > m && !f.maxFlight.CompareAndSwap(m, n); m = f.maxFlight.Load() {
	}
	f.mu.Lock()
	if f.requested == nil {
		f.requested, f.pageWindow = map[string][]source.Window{}, map[string][]source.Window{}
	}
	f.requested[part] = append(f.requested[part], w)
	f.mu.Unlock()
	// Inclusive bounds, newest first: the newest index at or before w.To.
	hi := min(f.n-1, int(w.To.Sub(f.start)/f.step))
	for hi >= 0 && !f.at(hi).Before(w.From) {
		if err := ctx.Err(); err != nil {
			return err
		}
		lo := max(hi-f.page+1, 0)
		for lo > 0 && f.at(lo).Before(w.From) {
			lo++
		}
		for i := hi; i >= lo; i-- {
			if f.at(i).Before(w.From) {
				break
			}
			raw := json.RawMessage(fmt.Sprintf(`{"ReportId":%d,"Part":%q,"Pad":%q}`, i, part, f.payload))
			if err := emit(ctx, source.Item{ID: fmt.Sprintf("%s-%d", part, i), Time: f.at(i), Raw: raw}); err != nil {
				return err
			}
		}
		f.mu.Lock()
		f.pageWindow[part] = append(f.pageWindow[part], source.Window{From: f.at(lo), To: f.at(hi)})
		f.mu.Unlock()
		if f.stopAfter > 0 && f.pages.Add(1) == f.stopAfter {
			f.stop()
		}
		if lo == 0 || f.at(lo-1).Before(w.From) {
			return nil
		}
		// The continuation starts at the oldest event read (same time,
		// older ones remain): everything later was emitted.
		if err := emit(ctx, source.Item{Mark: f.at(lo)}); err != nil {
			return err
		}
		hi = lo - 1
	}
	return nil
}

func newTimelineFake(parts, n int, step time.Duration) *timelineFake {
	f := &timelineFake{start: t0.Add(-time.Duration(n) * step), step: step, n: n, page: 50, workers: 8,
		wd: source.Windowing{Overlap: time.Hour, MaxWindow: 6 * time.Hour}}
	for p := range parts {
		f.parts = append(f.parts, fmt.Sprintf("dev%d", p))
	}
	return f
}

// Every event of every part arrives exactly once, several windows are
// read at once, and events on slice edges are neither lost nor doubled.
func TestParallelSlicesDeliverEverythingOnce(t *testing.T) {
	store, _ := newStore(t)
	out := newMemSink()
	// 3 devices × 2,000 events a minute apart (33 h): six slices each;
	// events fall on every slice edge (6 h is a whole number of steps).
	f := newTimelineFake(3, 2000, time.Minute)
	p := newPipeline(t, Options{Store: store, Sinks: sinks{out}.s(), Now: func() time.Time { return t0 }, BatchSize: 300,
		InitialLookback: 40 * time.Hour})
	res := p.Run(t.Context(), tenant, []source.Source{f}, RunOptions{})[0]
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	var want []string
	for _, part := range f.parts {
		for i := range f.n {
			if f.at(i).Before(t0) { // the window ends at now (no delay)
				want = append(want, fmt.Sprintf("%s-%d", part, i))
			}
		}
	}
	assertOnce(t, out.ids(), want...)
	if f.maxFlight.Load() < 2 {
		t.Errorf("at most %d windows were read at once; the source asks for 8 workers", f.maxFlight.Load())
	}
	for _, part := range f.parts {
		if c, ok := cursorOf(t, store, "timeline/"+part); !ok || !c.Equal(t0) {
			t.Errorf("cursor of %s = %v, %v; want the window end", part, c, ok)
		}
	}
	if res.New != len(want) || res.Duplicates != 0 {
		t.Errorf("result new %d duplicates %d, want %d and 0", res.New, res.Duplicates, len(want))
	}
}

// A backfill interrupted in the middle resumes where each slice stopped:
// finished slices are not read again, a slice read in part resumes below
// its last mark, and every event arrives, with at most one batch twice.
func TestInterruptedBackfillResumesWithoutRedoingSlices(t *testing.T) {
	store, _ := newStore(t)
	out := newMemSink()
	f := newTimelineFake(2, 4000, time.Minute) // 2 devices × 66 h: 12 slices each
	ctx, cancel := context.WithCancel(t.Context())
	f.stop, f.stopAfter = cancel, 100 // of 160 pages
	opts := Options{Store: store, Sinks: sinks{out}.s(), Now: func() time.Time { return t0 }, BatchSize: 200,
		InitialLookback: 70 * time.Hour}
	p := newPipeline(t, opts)
	res := p.Run(ctx, tenant, []source.Source{f}, RunOptions{})[0]
	if res.Err == nil {
		t.Fatal("the interrupted run reported success")
	}
	first := len(out.all())
	firstDone := map[string]map[source.Window]bool{}
	for _, part := range f.parts {
		prog, err := store.Progress(tenant, "timeline/"+part)
		if err != nil {
			t.Fatal(err)
		}
		firstDone[part] = map[source.Window]bool{}
		for _, w := range f.requested[part] {
			for _, c := range prog.Covered {
				if !w.From.Before(c.From) && !w.To.After(c.To) {
					firstDone[part][w] = true
				}
			}
		}
	}

	f.requested, f.pageWindow, f.stopAfter = nil, nil, 0
	p = newPipeline(t, opts)
	if res := p.Run(t.Context(), tenant, []source.Source{f}, RunOptions{}); res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	var want []string
	for _, part := range f.parts {
		for i := range f.n {
			want = append(want, fmt.Sprintf("%s-%d", part, i))
		}
	}
	got := out.ids()
	extra := 0
	for _, id := range want {
		switch n := got[id]; {
		case n == 0:
			t.Fatalf("event %s was lost across the interruption", id)
		case n > 1:
			extra += n - 1
		}
	}
	if extra > opts.BatchSize {
		t.Errorf("%d events delivered twice; at most the batch in flight (%d) may be", extra, opts.BatchSize)
	}
	for _, part := range f.parts {
		for _, w := range f.requested[part] {
			if firstDone[part][w] {
				t.Errorf("%s: slice %v, finished in the first run, was read again", part, w)
			}
		}
	}
	second := len(out.all()) - first
	if total := 2 * f.n; second > total-first+opts.BatchSize || first == 0 {
		t.Errorf("first run delivered %d, the rerun %d of %d: the rerun redid finished work", first, second, total)
	}
}

// A backfill of many events leaves a state file the size of the re-read
// band, not of the backfill, during the run and after it.
func TestBackfillStateStaysSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("200,000 events")
	}
	store, _ := newStore(t)
	out := &countSink{memSink: memSink{name: "files"}}
	n, step := 200_000, 3*time.Second // one device, ~7 days
	if raceEnabled {
		n, step = 40_000, 15*time.Second
	}
	f := newTimelineFake(1, n, step)
	f.page = 1000
	f.payload = strings.Repeat("x", 600)
	p := newPipeline(t, Options{Store: store, Sinks: []sinkT{out}, Now: func() time.Time { return t0 }, InitialLookback: 8 * 24 * time.Hour})
	res := p.Run(t.Context(), tenant, []source.Source{f}, RunOptions{})[0]
	if res.Err != nil || res.New != f.n {
		t.Fatalf("run: new %d of %d, %v", res.New, f.n, res.Err)
	}
	size, err := store.Size()
	if err != nil {
		t.Fatal(err)
	}
	// 200,000 ids would take ~25 MB; 2 hours of them (2,400) ~0.4 MB.
	// Under the race detector: 40,000 ids, 480 of them in the band.
	if size > 4<<20 {
		t.Errorf("state file uses %d bytes after a backfill of %d events; it should hold only the re-read band", size, f.n)
	}
	infos, _ := store.Sources()
	for _, in := range infos {
		if in.SeenIDs > 3000 {
			t.Errorf("%s remembers %d ids; only the 2 hours behind the cursor are needed", in.Source, in.SeenIDs)
		}
	}
}

// One long window and eight workers: idle workers split the unread older
// part of a window being read (work stealing), so one window is read by
// several workers at once, and every event still arrives exactly once.
func TestIdleWorkersSplitALongWindow(t *testing.T) {
	store, _ := newStore(t)
	out := newMemSink()
	f := newTimelineFake(1, 20_000, 30*time.Second) // one device, ~7 days
	f.page = 200
	f.wd.MaxWindow = 0 // one window for the whole week
	p := newPipeline(t, Options{Store: store, Sinks: sinks{out}.s(), Now: func() time.Time { return t0 }, InitialLookback: 8 * 24 * time.Hour})
	res := p.Run(t.Context(), tenant, []source.Source{f}, RunOptions{})[0]
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	var want []string
	for i := range f.n {
		want = append(want, fmt.Sprintf("dev0-%d", i))
	}
	assertOnce(t, out.ids(), want...)
	if n := len(f.requested["dev0"]); n < 4 {
		t.Errorf("the week was read as %d windows; idle workers should have split it", n)
	}
	if m := f.maxFlight.Load(); m < 4 {
		t.Errorf("at most %d windows were read at once; the split parts should keep workers busy", m)
	}
	// Each split costs at most a page read twice (the one in progress
	// when the reader learns its window shrank).
	clean := (f.n + f.page - 1) / f.page
	if pages := len(f.pageWindow["dev0"]); pages > clean+2*len(f.requested["dev0"]) {
		t.Errorf("read %d pages for %d events in pages of %d over %d windows: split windows were read past their new start",
			pages, f.n, f.page, len(f.requested["dev0"]))
	}
	prog, err := store.Progress(tenant, "timeline/dev0")
	if err != nil || len(prog.Covered) != 1 || !prog.Cursor.Equal(t0) {
		t.Errorf("progress after the run: %+v, %v; want one covered range and the cursor at the end", prog, err)
	}
}

// The next run re-reads the band behind the newest time read; its newer
// windows finish first (newest first) and move the newest time up. The
// ids of the band must survive that until the band itself is read, or
// what it re-reads is delivered twice.
func TestBandReadAfterNewerWindowsDropsWhatItDelivered(t *testing.T) {
	store, _ := newStore(t)
	out := newMemSink()
	f := newTimelineFake(1, 2000, time.Minute) // events until t0
	f.workers = 1
	now := t0.Add(-30 * time.Minute)
	p := newPipeline(t, Options{Store: store, Sinks: sinks{out}.s(), Now: func() time.Time { return now }, BatchSize: 50,
		InitialLookback: 24 * time.Hour})
	if res := p.Run(t.Context(), tenant, []source.Source{f}, RunOptions{}); res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	now = t0.Add(12 * time.Hour)
	res := p.Run(t.Context(), tenant, []source.Source{f}, RunOptions{})[0]
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	for id, n := range out.ids() {
		if n > 1 {
			t.Fatalf("event %s delivered %d times: the re-read band was not deduplicated (duplicates dropped: %d)", id, n, res.Duplicates)
		}
	}
	if res.Duplicates == 0 {
		t.Error("the second run re-read the band but dropped nothing as already delivered")
	}
}
