package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/sink"
	"github.com/defenderharvester/defenderharvester/internal/sink/file"
	"github.com/defenderharvester/defenderharvester/internal/sink/sinktest"
	"github.com/defenderharvester/defenderharvester/internal/source"
)

// dyingSink forwards to a real sink; on write number dieAt it lets the
// write become durable and then "kills the process" before the pipeline
// can commit (an error, after which nothing else of this run counts).
type dyingSink struct {
	sink.Sink
	dieAt, calls int
}

var errDied = errors.New("process killed")

func (d *dyingSink) Write(ctx context.Context, table string, recs []record.Record) error {
	d.calls++
	if err := d.Sink.Write(ctx, table, recs); err != nil {
		return err
	}
	if d.calls >= d.dieAt {
		return errDied
	}
	return nil
}

func readOutput(t *testing.T, dir string) map[string]int {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	ids := map[string]int{}
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := sinktest.DecodeLines("", f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, r := range recs {
			ids[r.ID]++
		}
	}
	return ids
}

// TestCrashAtAnyBatchLosesNothing kills the harvester right after each
// possible durable write and restarts it from disk (state file reopened,
// file output restarted): nothing may be lost, and at most the one batch
// in flight may be duplicated.
func TestCrashAtAnyBatchLosesNothing(t *testing.T) {
	const total, batch = 1000, 150
	src := &fakeEvent{name: "ActionCenter", wd: source.Windowing{Overlap: 10 * time.Minute, MaxWindow: 20 * time.Minute}}
	var all []string
	for i := range total {
		id := fmt.Sprintf("ev%04d", i)
		all = append(all, id)
		src.add(item(id, t0.Add(-time.Hour+time.Duration(i)*3*time.Second)))
	}
	newFile := func(t *testing.T, dir string) sink.Sink {
		cfg := file.DefaultConfig()
		cfg.SetDir(dir)
		s, err := file.New(sink.Deps{Now: func() time.Time { return t0 }}, *cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		return s
	}
	// Count the writes of an uninterrupted run: every one of them is a
	// crash point, and none past the last (it would crash nothing).
	counter := &dyingSink{Sink: newFile(t, filepath.Join(t.TempDir(), "out")), dieAt: 1 << 30}
	run1(t, newPipeline(t, Options{Store: openStore(t, filepath.Join(t.TempDir(), "s.db")), Sinks: []sink.Sink{counter},
		Now: func() time.Time { return t0 }, InitialLookback: time.Hour, BatchSize: batch}), src, RunOptions{})
	writes := counter.calls
	if writes < total/batch {
		t.Fatalf("an uninterrupted run made %d writes; want at least %d", writes, total/batch)
	}
	for dieAt := 1; dieAt <= writes; dieAt++ {
		t.Run(fmt.Sprintf("die after write %d", dieAt), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "out")
			statePath := filepath.Join(t.TempDir(), "state.db")
			opts := func(s sink.Sink) Options {
				return Options{Sinks: []sink.Sink{s}, Now: func() time.Time { return t0 }, InitialLookback: time.Hour, BatchSize: batch}
			}

			// Run 1: dies.
			store := openStore(t, statePath)
			fs := newFile(t, dir)
			o := opts(&dyingSink{Sink: fs, dieAt: dieAt})
			o.Store = store
			res := run1(t, newPipeline(t, o), src, RunOptions{})
			if !errors.Is(res.Err, errDied) {
				t.Fatalf("run 1 did not die at write %d of %d: %v", dieAt, writes, res.Err)
			}
			fs.Shutdown(t.Context())
			store.Close()

			// Run 2: a fresh process.
			store = openStore(t, statePath)
			fs = newFile(t, dir)
			o = opts(fs)
			o.Store = store
			if res := run1(t, newPipeline(t, o), src, RunOptions{}); res.Err != nil {
				t.Fatalf("run after the crash: %v", res.Err)
			}
			fs.Shutdown(t.Context())

			got := readOutput(t, dir)
			dups := 0
			for _, id := range all {
				switch n := got[id]; {
				case n == 0:
					t.Errorf("record %s lost", id)
				case n > 1:
					dups += n - 1
				}
			}
			if len(got) != total {
				t.Errorf("%d distinct records in the output, want %d", len(got), total)
			}
			if dups > batch {
				t.Errorf("%d duplicates, more than the one batch in flight (%d)", dups, batch)
			}
			if dups == 0 {
				t.Errorf("the crash after a durable write left no duplicate; was it simulated at all?")
			}
		})
	}
}

// TestCancelLosesNothing stops a run by cancelling its context mid-stream
// (SIGTERM) and checks the next run completes the data exactly.
func TestCancelLosesNothing(t *testing.T) {
	store, _ := newStore(t)
	mem := newMemSink()
	ctx, cancel := context.WithCancel(t.Context())
	mem.after = func(call int) error {
		if call == 3 {
			cancel()
		}
		return nil
	}
	p := newPipeline(t, Options{Store: store, Sinks: sinks{mem}.s(), Now: func() time.Time { return t0 }, BatchSize: 100})
	src := &streamSource{n: 1000, size: 10}
	res := p.Run(ctx, tenant, []source.Source{src}, RunOptions{})[0]
	if !errors.Is(res.Err, context.Canceled) || !strings.Contains(res.Err.Error(), "Stream") {
		t.Fatalf("err = %v", res.Err)
	}
	mem.after = nil
	res = run1(t, p, src, RunOptions{})
	if res.Err != nil || res.New != 700 || res.Duplicates != 300 {
		t.Fatalf("rerun new=%d dups=%d err=%v", res.New, res.Duplicates, res.Err)
	}
	if got := mem.ids(); len(got) != 1000 {
		t.Errorf("%d distinct delivered, want 1000", len(got))
	}
}

func BenchmarkPipelineIntoFileSink(b *testing.B) {
	dir := b.TempDir()
	store, _ := newStore(b)
	cfg := file.DefaultConfig()
	cfg.SetDir(dir)
	cfg.RotateBytes = 1 << 40
	fs, err := file.New(sink.Deps{}, *cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := fs.Start(b.Context()); err != nil {
		b.Fatal(err)
	}
	defer fs.Shutdown(context.Background())
	clk := &clock{t: t0}
	p := newPipeline(b, Options{Store: store, Sinks: []sink.Sink{fs}, Now: clk.Now})
	const perRun = 20_000
	b.SetBytes(perRun * 1024)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		// A fresh source name per iteration: every record is new.
		src := &streamSource{n: perRun, size: 1000}
		res := p.Run(b.Context(), fmt.Sprintf("tenant-%d", i), []source.Source{src}, RunOptions{})[0]
		if res.Err != nil || res.New != perRun {
			b.Fatalf("new=%d err=%v", res.New, res.Err)
		}
		i++
	}
	b.ReportMetric(float64(b.N*perRun)/b.Elapsed().Seconds(), "records/s")
}

// batchCounter counts the batches written to the outputs (one flush and
// one commit each).
type batchCounter struct {
	NopObserver
	mu      sync.Mutex
	batches int
}

func (c *batchCounter) Written(_, _, _ string, _ int, err error) {
	if err == nil {
		c.mu.Lock()
		c.batches++
		c.mu.Unlock()
	}
}

// BenchmarkBatching runs 20,000 records of two sizes into a file output
// (fsync per batch, then a bbolt commit per batch) with batches cut by
// count (the old 2,000) or by bytes only; it reports ns and batches
// (= commits) per record.
func BenchmarkBatching(b *testing.B) {
	for _, size := range []int{300, 1000} {
		for _, batch := range []int{2000, 1 << 30} {
			name := fmt.Sprintf("payload=%dB/batch=%d", size, batch)
			if batch == 1<<30 {
				name = fmt.Sprintf("payload=%dB/batch=bytes", size)
			}
			b.Run(name, func(b *testing.B) {
				store, _ := newStore(b)
				cfg := file.DefaultConfig()
				cfg.SetDir(b.TempDir())
				cfg.RotateBytes = 1 << 40
				fs, err := file.New(sink.Deps{}, *cfg)
				if err != nil {
					b.Fatal(err)
				}
				if err := fs.Start(b.Context()); err != nil {
					b.Fatal(err)
				}
				defer fs.Shutdown(context.Background())
				cnt := &batchCounter{}
				p := newPipeline(b, Options{Store: store, Sinks: []sink.Sink{fs}, Now: func() time.Time { return t0 },
					BatchSize: batch, Observer: cnt})
				const perRun = 20_000
				i := 0
				for b.Loop() {
					src := &streamSource{n: perRun, size: size}
					res := p.Run(b.Context(), fmt.Sprintf("tenant-%d", i), []source.Source{src}, RunOptions{})[0]
					if res.Err != nil || res.New != perRun {
						b.Fatalf("new=%d err=%v", res.New, res.Err)
					}
					i++
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perRun), "ns/record")
				b.ReportMetric(float64(cnt.batches)/float64(b.N), "batches/op")
			})
		}
	}
}
