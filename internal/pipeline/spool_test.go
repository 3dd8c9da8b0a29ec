package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/sink"
	"github.com/defenderharvester/defenderharvester/internal/source"
)

// TestOneOutputDownOthersReceive: a broken output neither loses data nor
// holds back the healthy one; its batches wait in the spool (which
// survives reopening the state file) and reach it once it is back.
func TestOneOutputDownOthersReceive(t *testing.T) {
	store, path := newStore(t)
	clk := &clock{t: t0}
	healthy, broken := newMemSink(), newMemSink()
	healthy.name, broken.name = "files", "splunk"
	broken.before = func(int) error { return errors.New("HEC 503 Server is busy") }
	p := newPipeline(t, Options{Store: store, Sinks: sinks{healthy, broken}.s(), Now: clk.Now, BatchSize: 10})
	src := &fakeEvent{name: "ActionCenter"}
	snap := &fakeSnapshot{}
	snap.set(nil, "1", `{"Id":1}`, "2", `{"Id":2}`)
	var ids []string
	for i := range 35 {
		id := fmt.Sprintf("x%02d", i)
		ids = append(ids, id)
		src.add(item(id, t0.Add(-time.Duration(i+1)*time.Minute)))
	}
	res := p.Run(t.Context(), tenant, []source.Source{src, snap}, RunOptions{})
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("%s failed although one output accepted everything: %v", r.Source, r.Err)
		}
	}
	assertOnce(t, healthy.ids(), append(ids, snapIDs(healthy)...)...)
	if len(broken.all()) != 0 {
		t.Fatal("the broken output stored records")
	}
	// At most one write per source (both may write before either sees
	// the failure) and the drainer's last attempt at shutdown.
	if broken.calls > 3 {
		t.Errorf("the broken output was tried %d times in one run; after its first failure batches should go straight to its spool", broken.calls)
	}
	if _, ok := cursorOf(t, store, src.name); !ok {
		t.Fatal("cursor did not move although every record is delivered or spooled")
	}
	outs := p.Outputs()
	if outs[1].Err == nil || !strings.Contains(outs[1].Err.Error(), "503") || outs[1].Spooled != 37 || outs[1].Backlog != 37 || outs[0].Err != nil {
		t.Fatalf("output status = %+v", outs)
	}

	// The state file is reopened (a new process) and the output is back.
	store.Close()
	store = openStore(t, path)
	broken.before = nil
	clk.Set(t0.Add(time.Minute))
	p = newPipeline(t, Options{Store: store, Sinks: sinks{healthy, broken}.s(), Now: clk.Now, BatchSize: 10})
	res = p.Run(t.Context(), tenant, []source.Source{src, snap}, RunOptions{})
	for _, r := range res {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	got := broken.ids()
	for _, id := range ids {
		if got[id] != 1 {
			t.Errorf("record %s reached the recovered output %d times, want once", id, got[id])
		}
	}
	if len(got) != 37 {
		t.Errorf("recovered output got %d distinct records, want 37 (35 events + 2 snapshot changes)", len(got))
	}
	outs = p.Outputs()
	if outs[1].Err != nil || outs[1].Drained != 37 || outs[1].Backlog != 0 {
		t.Fatalf("after recovery: %+v", outs[1])
	}
}

func snapIDs(m *memSink) []string {
	var out []string
	for _, r := range m.all() {
		if len(r.Extra) > 0 {
			out = append(out, r.ID)
		}
	}
	return out
}

// TestSpoolFullFailsTheSource: when the spool limit is reached the source
// fails and its cursor stays, so the data is still at the source.
func TestSpoolFullFailsTheSource(t *testing.T) {
	store, _ := newStore(t)
	clk := &clock{t: t0}
	healthy, broken := newMemSink(), newMemSink()
	broken.name = "sentinel"
	broken.before = func(int) error { return errors.New("403 OperationFailed") }
	p := newPipeline(t, Options{Store: store, Sinks: sinks{healthy, broken}.s(), Now: clk.Now, BatchSize: 10, SpoolMaxBytes: 2000})
	src := &fakeEvent{name: "Timeline"}
	for i := range 100 {
		src.add(item(fmt.Sprintf("t%03d", i), t0.Add(-time.Duration(i+1)*time.Second)))
	}
	res := run1(t, p, src, RunOptions{})
	if res.Err == nil || !strings.Contains(res.Err.Error(), "spool full") || !strings.Contains(res.Err.Error(), "sentinel") {
		t.Fatalf("want a spool-full error naming the output, got %v", res.Err)
	}
	if _, ok := cursorOf(t, store, src.name); ok {
		t.Fatal("cursor moved although records could be neither delivered nor spooled")
	}
}

// TestStillBrokenOutputKeepsItsSpool: draining stops at the first refused
// batch and keeps the rest, in order.
func TestStillBrokenOutputKeepsItsSpool(t *testing.T) {
	store, _ := newStore(t)
	clk := &clock{t: t0}
	healthy, broken := newMemSink(), newMemSink()
	broken.name = "splunk"
	broken.before = func(int) error { return errors.New("connection refused") }
	p := newPipeline(t, Options{Store: store, Sinks: sinks{healthy, broken}.s(), Now: clk.Now, BatchSize: 5})
	src := &fakeEvent{name: "ActionCenter"}
	for i := range 12 {
		src.add(item(fmt.Sprintf("a%02d", i), t0.Add(-time.Duration(i+1)*time.Minute)))
	}
	run1(t, p, src, RunOptions{})
	clk.Set(t0.Add(time.Minute))
	p = newPipeline(t, Options{Store: store, Sinks: sinks{healthy, broken}.s(), Now: clk.Now, BatchSize: 5})
	if res := run1(t, p, src, RunOptions{}); res.Err != nil {
		t.Fatal(res.Err)
	}
	out := p.Outputs()[1]
	if out.Err == nil || out.Backlog != 12 || out.Drained != 0 {
		t.Fatalf("still-broken output: %+v", out)
	}
}

// TestUnavailableOutputIsNotCalled: an output that could not start is
// started again before anything is written to it; while it still cannot
// start it is never written to, and its share is spooled from the first
// batch.
func TestUnavailableOutputIsNotCalled(t *testing.T) {
	store, _ := newStore(t)
	clk := &clock{t: t0}
	healthy, down := newMemSink(), newMemSink()
	down.name = "splunk"
	down.startErr = errors.New("health check refused")
	p := newPipeline(t, Options{Store: store, Sinks: sinks{healthy, down}.s(), Now: clk.Now, BatchSize: 10,
		Unavailable: map[string]error{"splunk": errors.New("output splunk cannot start: health check refused")}})
	src := &fakeEvent{name: "ActionCenter"}
	for i := range 25 {
		src.add(item(fmt.Sprintf("u%02d", i), t0.Add(-time.Duration(i+1)*time.Minute)))
	}
	if res := run1(t, p, src, RunOptions{}); res.Err != nil {
		t.Fatal(res.Err)
	}
	if down.calls != 0 {
		t.Fatalf("an output that could not start was written to %d times", down.calls)
	}
	if down.starts == 0 {
		t.Fatal("the output that could not start was never tried again")
	}
	out := p.Outputs()[1]
	if out.Err == nil || !strings.Contains(out.Err.Error(), "cannot start") || out.Backlog != 25 {
		t.Fatalf("status = %+v", out)
	}
}

// TestOutputThatStartsLateGetsItsShareInTheSameRun: an output down at the
// start of a run that comes back during it is started by its drainer and
// receives what was spooled for it before the run ends.
func TestOutputThatStartsLateGetsItsShareInTheSameRun(t *testing.T) {
	store, _ := newStore(t)
	clk := &clock{t: t0}
	healthy, late := newMemSink(), newMemSink()
	late.name = "sentinel"
	p := newPipeline(t, Options{Store: store, Sinks: sinks{healthy, late}.s(), Now: clk.Now, BatchSize: 10,
		Unavailable: map[string]error{"sentinel": errors.New("output sentinel cannot start: token refused")}})
	src := &fakeEvent{name: "ActionCenter"}
	for i := range 25 {
		src.add(item(fmt.Sprintf("l%02d", i), t0.Add(-time.Duration(i+1)*time.Minute)))
	}
	if res := run1(t, p, src, RunOptions{}); res.Err != nil {
		t.Fatal(res.Err)
	}
	if got := late.ids(); len(got) != 25 {
		t.Fatalf("the output that started late got %d records in the run, want 25", len(got))
	}
	out := p.Outputs()[1]
	if out.Err != nil || !out.Outage || out.Backlog != 0 || out.Drained != 25 {
		t.Fatalf("status = %+v", out)
	}
}

// stallSink hangs every Write until its context ends or release is
// closed, like an output whose endpoint accepts connections and never
// answers; after release it accepts.
type stallSink struct {
	*memSink
	release chan struct{}
}

func (s *stallSink) Write(ctx context.Context, table string, recs []record.Record) error {
	select {
	case <-s.release:
		return s.memSink.Write(ctx, table, recs)
	case <-ctx.Done():
		s.mu.Lock()
		s.calls++
		s.mu.Unlock()
		return fmt.Errorf("no answer: %w", ctx.Err())
	}
}

// TestStalledOutputDoesNotHoldBackTheOthers: while one output hangs, the
// healthy one receives every batch (the hanging one's share is spooled
// after SpoolAfter), and the spool is drained in the same run as soon as
// the output answers again — not only at the next run.
func TestStalledOutputDoesNotHoldBackTheOthers(t *testing.T) {
	store, _ := newStore(t)
	clk := &clock{t: t0}
	healthy := newMemSink()
	stalled := &stallSink{memSink: newMemSink(), release: make(chan struct{})}
	stalled.name = "sentinel"
	const n = 60
	// The stalled output answers again only once the healthy one holds
	// everything: if delivery waited for it, neither would ever finish.
	healthy.after = func(int) error {
		if len(healthy.recs) == n {
			close(stalled.release)
		}
		return nil
	}
	p := newPipeline(t, Options{Store: store, Sinks: []sink.Sink{healthy, stalled}, Now: clk.Now, BatchSize: 10,
		SpoolAfter: 50 * time.Millisecond})
	src := &fakeEvent{name: "ActionCenter"}
	for i := range n {
		src.add(item(fmt.Sprintf("s%02d", i), t0.Add(-time.Duration(i+1)*time.Minute)))
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	res := p.Run(ctx, tenant, []source.Source{src}, RunOptions{})[0]
	if ctx.Err() != nil {
		t.Fatal("the run hung on the stalled output")
	}
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if len(healthy.ids()) != n {
		t.Fatalf("healthy output got %d records, want %d", len(healthy.ids()), n)
	}
	if got := stalled.ids(); len(got) != n {
		t.Fatalf("the output that answered again got %d of %d records in the same run", len(got), n)
	}
	out := p.Outputs()[1]
	if out.Err != nil || !out.Outage || out.Backlog != 0 || out.Drained != n {
		t.Fatalf("status = %+v", out)
	}
	if _, ok := cursorOf(t, store, src.name); !ok {
		t.Fatal("cursor did not move")
	}
}

// TestDrainSpoolSendsOldestFirstAndStopsAtAFailure: the helper the state
// tools use sends batches in order, removes each once accepted, and keeps
// the failed batch and those after it.
func TestDrainSpoolSendsOldestFirstAndStopsAtAFailure(t *testing.T) {
	store, _ := newStore(t)
	mk := func(table string, ids ...string) []record.Record {
		var out []record.Record
		for _, id := range ids {
			out = append(out, record.Record{Tenant: tenant, Source: "s", Table: table, ID: id, Time: t0, HarvestedAt: t0, Raw: []byte(`{}`)})
		}
		return out
	}
	for i, b := range [][]record.Record{mk("A", "1", "2"), mk("B", "3"), mk("A", "4", "5", "6")} {
		if err := store.SpoolPut("mem", b[0].Table, b, 0); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	m := newMemSink()
	m.before = func(call int) error {
		if call == 2 {
			return errors.New("HEC 503")
		}
		return nil
	}
	sent, err := DrainSpool(t.Context(), store, m, time.Second)
	if err == nil || !strings.Contains(err.Error(), "503") || sent != 2 {
		t.Fatalf("first drain: sent %d, %v; want 2 records and the 503", sent, err)
	}
	if infos, _ := store.Spools(); len(infos) != 1 || infos[0].Records != 4 || infos[0].Batches != 2 {
		t.Fatalf("spool after a failed drain: %+v", infos)
	}
	m.before = nil
	sent, err = DrainSpool(t.Context(), store, m, 0)
	if err != nil || sent != 4 {
		t.Fatalf("second drain: sent %d, %v", sent, err)
	}
	var got []string
	for _, r := range m.all() {
		got = append(got, r.ID)
	}
	if strings.Join(got, ",") != "1,2,3,4,5,6" {
		t.Errorf("delivered %v, want 1..6 in spool order", got)
	}
	if infos, _ := store.Spools(); len(infos) != 0 {
		t.Errorf("spool not empty: %+v", infos)
	}
	var _ sink.Sink = m
}
