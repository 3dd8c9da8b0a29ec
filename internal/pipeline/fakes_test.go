package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/state"
)

const tenant = "00000000-0000-0000-0000-00000000000a"

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeEvent is an event API holding items; like many real APIs it treats
// both window bounds as inclusive, so the pipeline must drop the To edge.
type fakeEvent struct {
	name string
	wd   source.Windowing

	mu      sync.Mutex
	items   []source.Item
	windows []source.Window
	// failAfter > 0: return errFetch after emitting that many items.
	failAfter int
}

var errFetch = errors.New("API returned 503")

func (f *fakeEvent) Name() string                { return f.name }
func (f *fakeEvent) Table() string               { return "Mde" + f.name }
func (f *fakeEvent) Kind() source.Kind           { return source.Event }
func (f *fakeEvent) Windowing() source.Windowing { return f.wd }
func (f *fakeEvent) add(items ...source.Item) {
	f.mu.Lock()
	f.items = append(f.items, items...)
	f.mu.Unlock()
}
func (f *fakeEvent) calls() []source.Window {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]source.Window(nil), f.windows...)
}
func (f *fakeEvent) setFailAfter(n int) { f.mu.Lock(); f.failAfter = n; f.mu.Unlock() }
func (f *fakeEvent) Fetch(ctx context.Context, w source.Window, emit source.Emit) error {
	f.mu.Lock()
	f.windows = append(f.windows, w)
	items := append([]source.Item(nil), f.items...)
	failAfter := f.failAfter
	f.mu.Unlock()
	n := 0
	for _, it := range items {
		if it.Time.Before(w.From) || it.Time.After(w.To) {
			continue
		}
		if failAfter > 0 && n == failAfter {
			return errFetch
		}
		if err := emit(ctx, it); err != nil {
			return fmt.Errorf("emitting: %w", err)
		}
		n++
	}
	return nil
}

func item(id string, at time.Time) source.Item {
	return source.Item{ID: id, Time: at, Raw: json.RawMessage(fmt.Sprintf(`{"Id":%q,"At":%q}`, id, at.Format(time.RFC3339Nano)))}
}

// memSink keeps every accepted batch; fail decides per call whether to
// refuse it (before storing) or "die" after storing it.
type memSink struct {
	name string
	mu   sync.Mutex
	recs []record.Record
	// before returns an error to refuse a write; after stores the batch
	// and then returns its error (a crash after a durable write).
	before, after func(call int) error
	calls         int
	maxBatch      int
	startErr      error
	starts        int
	tables        map[string]int
}

func newMemSink() *memSink { return &memSink{name: "mem", tables: map[string]int{}} }

func (m *memSink) Name() string { return m.name }
func (m *memSink) Start(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.starts++
	if m.startErr != nil {
		return m.startErr
	}
	return nil
}
func (m *memSink) Shutdown(context.Context) error { return nil }
func (m *memSink) Write(ctx context.Context, table string, recs []record.Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if m.before != nil {
		if err := m.before(m.calls); err != nil {
			return err
		}
	}
	for _, r := range recs {
		if r.Table != table {
			return fmt.Errorf("record of table %s in a batch for %s", r.Table, table)
		}
	}
	m.recs = append(m.recs, recs...)
	m.maxBatch = max(m.maxBatch, len(recs))
	m.tables[table] += len(recs)
	if m.after != nil {
		return m.after(m.calls)
	}
	return nil
}

func (m *memSink) ids() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]int{}
	for _, r := range m.recs {
		out[r.ID]++
	}
	return out
}

func (m *memSink) all() []record.Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]record.Record(nil), m.recs...)
}

func openStore(t testing.TB, path string) *state.Store {
	t.Helper()
	s, err := state.Open(path, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newStore(t testing.TB) (*state.Store, string) {
	path := filepath.Join(t.TempDir(), "state.db")
	return openStore(t, path), path
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func newPipeline(t testing.TB, opts Options) *Pipeline {
	t.Helper()
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func run1(t *testing.T, p *Pipeline, src source.Source, ro RunOptions) Result {
	t.Helper()
	res := p.Run(t.Context(), tenant, []source.Source{src}, ro)
	if len(res) != 1 {
		t.Fatalf("got %d results", len(res))
	}
	return res[0]
}

func cursorOf(t *testing.T, s *state.Store, name string) (time.Time, bool) {
	t.Helper()
	c, ok, err := s.Cursor(tenant, name)
	if err != nil {
		t.Fatal(err)
	}
	return c, ok
}

func assertOnce(t *testing.T, got map[string]int, want ...string) {
	t.Helper()
	for _, id := range want {
		if got[id] != 1 {
			t.Errorf("record %s delivered %d times, want once", id, got[id])
		}
	}
	if len(got) != len(want) {
		t.Errorf("delivered %d distinct records, want %d", len(got), len(want))
	}
}
