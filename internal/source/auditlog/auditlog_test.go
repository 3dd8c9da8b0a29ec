package auditlog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/pipeline"
	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/sink"
	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/state"
)

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// memSink keeps what it was given, by table.
type memSink struct {
	mu   sync.Mutex
	recs []record.Record
}

func (m *memSink) Name() string                   { return "mem" }
func (m *memSink) Start(context.Context) error    { return nil }
func (m *memSink) Shutdown(context.Context) error { return nil }
func (m *memSink) Write(_ context.Context, table string, recs []record.Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range recs {
		if r.Table != table {
			return fmt.Errorf("record of %s in a write of %s", r.Table, table)
		}
		m.recs = append(m.recs, r)
	}
	return nil
}

// count is how often each (table, id) was delivered.
func (m *memSink) count() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]int{}
	for _, r := range m.recs {
		out[r.Table+"/"+r.ID]++
	}
	return out
}

// logBuf is a logger writing to a buffer.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// harness is a fake service, the source over a real client, and a
// pipeline with a state file.
type harness struct {
	t     *testing.T
	clk   *fakeClock
	feed  *fakeFeed
	src   source.PartitionedSource
	sink  *memSink
	p     *pipeline.Pipeline
	logs  *logBuf
	waits []time.Duration
}

func newHarness(t *testing.T, cts []string, lookback time.Duration, batch int) *harness {
	h := &harness{t: t, clk: &fakeClock{t: t0}, sink: &memSink{}, logs: &logBuf{}}
	h.feed = newFake(t, h.clk)
	client := serve(t, h.feed, &h.waits)
	cfg := NewConfig()
	cfg.ContentTypes = cts
	log := slog.New(slog.NewTextHandler(h.logs, nil))
	h.src = New(client, *cfg, log, h.clk.Now)
	store, err := state.Open(filepath.Join(t.TempDir(), "state.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	h.p, err = pipeline.New(pipeline.Options{Store: store, Sinks: []sink.Sink{h.sink}, Now: h.clk.Now,
		InitialLookback: lookback, BatchSize: batch, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) run() pipeline.Result {
	h.t.Helper()
	res := h.p.Run(h.t.Context(), tenant, []source.Source{h.src}, pipeline.RunOptions{})
	if len(res) != 1 {
		h.t.Fatalf("%d results", len(res))
	}
	return res[0]
}

// exactlyOnce checks every (table, record id) of want was delivered once
// and nothing else was.
func (h *harness) exactlyOnce(want [][2]string) {
	h.t.Helper()
	got := h.sink.count()
	for _, w := range want {
		table, id := w[0], w[1]
		if n := got[table+"/"+idOf(table, id)]; n != 1 {
			h.t.Errorf("record %s in %s delivered %d times", id, table, n)
		}
	}
	if n := len(h.sink.recs); n != len(want) {
		h.t.Errorf("%d records delivered, want %d", n, len(want))
	}
}

// A 7-day backfill across days and pages (NextPageUri with /api/v1/):
// every record of every blob lands once in its content type's table, a
// Defender response action also in MdeAuditResponseActions, timed by its
// CreationTime; no listing is longer than 24 h or starts more than 7 days
// back; what lies before the clamp is reported once.
func TestBackfillSevenDaysAcrossDaysAndPages(t *testing.T) {
	h := newHarness(t, []string{mde.ContentGeneral, mde.ContentExchange}, 8*24*time.Hour, 0)
	h.feed.subs[mde.ContentGeneral] = true // Exchange must be started
	var want [][2]string
	n := 0
	for age := 7*24*time.Hour - 5*time.Minute; age > 10*time.Minute; age -= 5 * time.Hour {
		created := t0.Add(-age)
		for _, ct := range []string{mde.ContentGeneral, mde.ContentExchange} {
			n++
			a, b := fmt.Sprintf("rec-%d-a", n), fmt.Sprintf("rec-%d-b", n)
			recs := []string{rec(a, created.Add(-time.Hour), "Exchange", "MailItemsAccessed", 50), rec(b, created.Add(-2*time.Hour), "Exchange", "Send", 2)}
			if ct == mde.ContentGeneral {
				recs[1] = rec(b, created.Add(-2*time.Hour), MDEWorkload, "RunLiveResponseApi", 110)
			}
			h.feed.add(blob{ct: ct, id: fmt.Sprintf("blob%d$%d", n, age), created: created, records: recs})
			if age > 7*24*time.Hour-10*time.Minute {
				continue // before the clamp: not read
			}
			want = append(want, [2]string{Tables[ct], a}, [2]string{Tables[ct], b})
			if ct == mde.ContentGeneral {
				want = append(want, [2]string{TableResponseActions, b})
			}
		}
	}
	res := h.run()
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	h.exactlyOnce(want)
	for _, r := range h.sink.recs {
		if r.Table == TableResponseActions && !strings.Contains(string(r.Raw), "RunLiveResponseApi") {
			t.Errorf("%s holds a record that is not a response action", r.Table)
		}
		var f struct{ CreationTime string }
		if err := json.Unmarshal(r.Raw, &f); err != nil {
			t.Fatal(err)
		}
		if at, err := time.Parse(feedTime, f.CreationTime); err != nil || !r.Time.Equal(at) {
			t.Errorf("record time %v is not its CreationTime %s", r.Time, f.CreationTime)
		}
	}
	if !h.feed.next {
		t.Error("no NextPageUri was followed")
	}
	for _, w := range h.feed.windows {
		if w[1].Sub(w[0]) > 24*time.Hour || w[0].Before(t0.Add(-7*24*time.Hour)) {
			t.Errorf("listing window %v → %v", w[0], w[1])
		}
	}
	if len(h.feed.starts) != 1 {
		t.Errorf("%d subscription starts, want 1 (Exchange)", len(h.feed.starts))
	}
	if c := strings.Count(h.logs.String(), "keeps content for 7 days"); c != 2 {
		t.Errorf("the unreadable range was reported %d times, want once per content type:\n%s", c, h.logs.String())
	}
	// The next run reads only what is new.
	before := h.feed.requests["blob"]
	h.clk.Set(t0.Add(30 * time.Minute))
	if res := h.run(); res.Err != nil || res.New != 0 {
		t.Fatalf("second run: %v, %d new", res.Err, res.New)
	}
	if h.feed.requests["blob"]-before > 4 {
		t.Errorf("second run fetched %d blobs; only the overlap should be re-read", h.feed.requests["blob"]-before)
	}
}

// The clamp: a window that would start more than 7 days − 10 minutes back
// starts there instead, and the service never sees an older start.
func TestClampNearSevenDays(t *testing.T) {
	h := newHarness(t, []string{mde.ContentGeneral}, 0, 0)
	h.feed.subs[mde.ContentGeneral] = true
	h.feed.add(
		blob{ct: mde.ContentGeneral, id: "old", created: t0.Add(-7*24*time.Hour + 2*time.Minute), records: []string{rec("old-1", t0.Add(-8*24*time.Hour), "X", "Y", 1)}},
		blob{ct: mde.ContentGeneral, id: "edge", created: t0.Add(-7*24*time.Hour + 11*time.Minute), records: []string{rec("edge-1", t0.Add(-8*24*time.Hour), "X", "Y", 1)}},
	)
	err := h.src.FetchPart(t.Context(), mde.ContentGeneral, source.Window{From: t0.Add(-9 * 24 * time.Hour), To: t0.Add(-6 * 24 * time.Hour)}, func(_ context.Context, it source.Item) error {
		h.sink.recs = append(h.sink.recs, record.Record{Table: it.Table, ID: it.ID})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.sink.recs) != 1 || h.sink.recs[0].ID != idOf(Tables[mde.ContentGeneral], "edge-1") {
		t.Errorf("delivered %+v, want only the record of the blob inside the clamp", h.sink.recs)
	}
	limit := t0.Add(-7*24*time.Hour + 10*time.Minute)
	for _, w := range h.feed.windows {
		if w[0].Before(limit) {
			t.Errorf("window starts %v, before the clamp %v", w[0], limit)
		}
	}
	// A window entirely before the clamp asks nothing.
	n := h.feed.requests["content"]
	if err := h.src.FetchPart(t.Context(), mde.ContentGeneral, source.Window{From: t0.Add(-9 * 24 * time.Hour), To: t0.Add(-8 * 24 * time.Hour)}, func(context.Context, source.Item) error { return nil }); err != nil || h.feed.requests["content"] != n {
		t.Errorf("window before the clamp: %v, %d listings", err, h.feed.requests["content"]-n)
	}
}

// A part that failed after some blobs (the service kept failing one
// blob) resumes in the next run and delivers every record exactly once.
func TestRestartMidBlob(t *testing.T) {
	h := newHarness(t, []string{mde.ContentGeneral}, 6*time.Hour, 1)
	h.feed.subs[mde.ContentGeneral] = true
	var want [][2]string
	for i := range 6 {
		created := t0.Add(-time.Duration(5-i) * 50 * time.Minute).Add(-20 * time.Minute)
		var recs []string
		for j := range 3 {
			id := fmt.Sprintf("r%d-%d", i, j)
			recs = append(recs, rec(id, created.Add(-time.Minute), "SecurityComplianceCenter", "X", 1))
			want = append(want, [2]string{Tables[mde.ContentGeneral], id})
		}
		h.feed.add(blob{ct: mde.ContentGeneral, id: fmt.Sprintf("b%d", i), created: created, records: recs})
	}
	// Every blob GET after the third fails, on every attempt of the first
	// run.
	calls := 0
	failing := &failAfter{after: 3, calls: &calls}
	h.feed.hook = failing.hook
	res := h.run()
	if res.Err == nil || !strings.Contains(res.Err.Error(), "AF50000") {
		t.Fatalf("first run: %v, want the blob's failure", res.Err)
	}
	if len(h.sink.recs) == 0 {
		t.Fatal("nothing was delivered before the failure; the test needs a partial delivery")
	}
	h.feed.hook = nil
	if res := h.run(); res.Err != nil {
		t.Fatal(res.Err)
	}
	h.exactlyOnce(want)
}

// failAfter fails every blob GET after the first `after` ones.
type failAfter struct {
	after int
	calls *int
}

func (f *failAfter) hook(kind string) *fault {
	if kind != "blob" {
		return nil
	}
	*f.calls++
	if *f.calls > f.after {
		return &fault{status: 500, code: "AF50000", msg: "An internal server error occurred. Retry the request."}
	}
	return nil
}

// A record the service publishes again in a new blob days later is not
// delivered again (Windowing.Remember).
func TestRedeliveredBlobDaysLater(t *testing.T) {
	h := newHarness(t, []string{mde.ContentGeneral}, 2*time.Hour, 0)
	h.feed.subs[mde.ContentGeneral] = true
	r1 := rec("dup-1", t0.Add(-90*time.Minute), MDEWorkload, "IsolateDevice", 110)
	h.feed.add(blob{ct: mde.ContentGeneral, id: "first", created: t0.Add(-time.Hour), records: []string{r1}})
	if res := h.run(); res.Err != nil {
		t.Fatal(res.Err)
	}
	later := t0.Add(4 * 24 * time.Hour)
	for at := t0.Add(6 * time.Hour); !at.After(later); at = at.Add(12 * time.Hour) {
		h.clk.Set(at)
		if res := h.run(); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	h.feed.add(blob{ct: mde.ContentGeneral, id: "again", created: later.Add(-30 * time.Minute),
		records: []string{r1, rec("new-1", later.Add(-40*time.Minute), "X", "Y", 1)}})
	h.clk.Set(later.Add(time.Hour))
	res := h.run()
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if h.feed.fetched["again"] != 1 {
		t.Fatalf("the new blob was fetched %d times", h.feed.fetched["again"])
	}
	h.exactlyOnce([][2]string{{Tables[mde.ContentGeneral], "dup-1"}, {TableResponseActions, "dup-1"}, {Tables[mde.ContentGeneral], "new-1"}})
}
