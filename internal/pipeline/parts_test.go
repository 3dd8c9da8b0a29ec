package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/source"
)

// fakeParts is a partitioned event source (devices): each part has its
// items, and a part can be made to fail ("403 User is not exposed").
type fakeParts struct {
	mu     sync.Mutex
	items  map[string][]source.Item
	broken map[string]bool
	reads  map[string]int
}

var errNotExposed = errors.New("403 User is not exposed to machine")

func (f *fakeParts) Name() string                { return "timeline" }
func (f *fakeParts) Table() string               { return "MdeTimeline" }
func (f *fakeParts) Kind() source.Kind           { return source.Event }
func (f *fakeParts) Windowing() source.Windowing { return source.Windowing{Overlap: 30 * time.Minute} }
func (f *fakeParts) Parts(context.Context) ([]string, error) {
	return []string{"dev1", "dev2", "dev3"}, nil
}
func (f *fakeParts) Fetch(ctx context.Context, w source.Window, emit source.Emit) error {
	return errors.New("Fetch must not be called on a partitioned source")
}
func (f *fakeParts) FetchPart(ctx context.Context, part string, w source.Window, emit source.Emit) error {
	f.mu.Lock()
	f.reads[part]++
	broken := f.broken[part]
	items := append([]source.Item(nil), f.items[part]...)
	f.mu.Unlock()
	if broken {
		return errNotExposed
	}
	for _, it := range items {
		if !it.Time.Before(w.From) && it.Time.Before(w.To) {
			if err := emit(ctx, it); err != nil {
				return err
			}
		}
	}
	return nil
}

func (f *fakeParts) add(part string, n int, at func(i int) time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range n {
		f.items[part] = append(f.items[part], item(fmt.Sprintf("%s-%d-%d", part, at(i).Unix(), i), at(i)))
	}
}

// TestPartsKeepTheirOwnCursors: a failing device neither holds back the
// others' cursors nor lets their seen ids pile up; it rests with growing
// pauses, is reported, and catches up by itself once it works again.
func TestPartsKeepTheirOwnCursors(t *testing.T) {
	store, _ := newStore(t)
	clk := &clock{t: t0}
	mem := newMemSink()
	src := &fakeParts{items: map[string][]source.Item{}, broken: map[string]bool{"dev2": true}, reads: map[string]int{}}
	for _, d := range []string{"dev1", "dev2", "dev3"} {
		src.add(d, 20, func(i int) time.Time { return t0.Add(-time.Duration(i+1) * time.Minute) })
	}
	p := newPipeline(t, Options{Store: store, Sinks: sinks{mem}.s(), Now: clk.Now, InitialLookback: time.Hour})

	res := run1(t, p, src, RunOptions{})
	if res.Err == nil || !strings.Contains(res.Err.Error(), "1 of 3 parts") || !strings.Contains(res.Err.Error(), "dev2") {
		t.Fatalf("err = %v, want the failing device reported", res.Err)
	}
	if res.New != 40 || len(res.Parts) != 1 || res.Parts[0].Failures != 1 {
		t.Fatalf("new=%d parts=%+v", res.New, res.Parts)
	}
	for _, d := range []string{"dev1", "dev3"} {
		if c, ok := cursorOf(t, store, "timeline/"+d); !ok || !c.Equal(t0) {
			t.Fatalf("%s cursor = %v %v, want it at the window end", d, c, ok)
		}
	}
	if _, ok := cursorOf(t, store, "timeline/dev2"); ok {
		t.Fatal("the failing device's cursor moved")
	}

	// Many hours pass; the healthy devices keep moving and their seen ids
	// are pruned behind their own cursors while dev2 stays broken.
	for hour := 1; hour <= 60; hour++ {
		clk.Set(t0.Add(time.Duration(hour) * time.Hour))
		src.add("dev1", 5, func(i int) time.Time { return clk.Now().Add(-time.Duration(i+1) * time.Minute) })
		run1(t, p, src, RunOptions{})
	}
	prog, err := store.Progress(tenant, "timeline/dev1")
	if err != nil {
		t.Fatal(err)
	}
	if !prog.Cursor.Equal(clk.Now()) {
		t.Fatalf("dev1 cursor %v, want %v", prog.Cursor, clk.Now())
	}
	infos, _ := store.Sources()
	for _, ci := range infos {
		// 48 h retention: about 5 ids an hour stay remembered, not all 300+.
		if ci.Source == "timeline/dev1" && ci.SeenIDs > 5*50 {
			t.Fatalf("dev1 remembers %d ids: the seen set grows while another device is stuck", ci.SeenIDs)
		}
	}
	bad, _ := store.Progress(tenant, "timeline/dev2")
	if bad.Failures < 5 || !bad.RetryAt.After(clk.Now().Add(-6*time.Hour)) {
		t.Fatalf("dev2 progress %+v: want several failures and a retry time", bad)
	}
	if src.reads["dev2"] >= 40 {
		t.Fatalf("dev2 was read %d times in 61 runs: it should rest between attempts", src.reads["dev2"])
	}

	// dev2 works again: after its pause it harvests everything it missed.
	src.mu.Lock()
	src.broken["dev2"] = false
	src.mu.Unlock()
	clk.Set(clk.Now().Add(6 * time.Hour))
	res = run1(t, p, src, RunOptions{})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	got := mem.ids()
	for _, it := range src.items["dev2"] {
		if got[it.ID] != 1 {
			t.Fatalf("dev2 record %s delivered %d times after recovery, want 1", it.ID, got[it.ID])
		}
	}
	if p, _ := store.Progress(tenant, "timeline/dev2"); p.Failures != 0 {
		t.Fatalf("failures not cleared: %+v", p)
	}
}

// TestPartialSnapshotKeepsTheUnreadPart: when one endpoint of a snapshot
// fails, the other's changes are delivered, no Removed record appears for
// the unread part, and the source is reported as failed; a part never
// served in this mode is kept without failing the source.
func TestPartialSnapshotKeepsTheUnreadPart(t *testing.T) {
	store, _ := newStore(t)
	clk := &clock{t: t0}
	mem := newMemSink()
	p := newPipeline(t, Options{Store: store, Sinks: sinks{mem}.s(), Now: clk.Now})
	snap := &fakeSnapshot{}
	snap.set(nil, "AdvancedFeatures", `{"Tamper":true}`, "LiveResponse", `{"Unsigned":false}`)
	if res := run1(t, p, snap, RunOptions{}); res.Err != nil {
		t.Fatal(res.Err)
	}
	// LiveResponse fails, AdvancedFeatures changed.
	snap.set(&source.PartialError{Failed: []string{"LiveResponse"}, Err: errors.New("500")}, "AdvancedFeatures", `{"Tamper":false}`)
	clk.Set(t0.Add(time.Hour))
	res := run1(t, p, snap, RunOptions{})
	if res.Err == nil || !strings.Contains(res.Err.Error(), "LiveResponse") {
		t.Fatalf("err = %v, want the unread part reported", res.Err)
	}
	if res.Changes[Modified] != 1 || res.Changes[Removed] != 0 {
		t.Fatalf("changes = %v, want one Modified and no Removed", res.Changes)
	}
	// Next run reads both again: no change for LiveResponse, nothing re-sent.
	snap.set(nil, "AdvancedFeatures", `{"Tamper":false}`, "LiveResponse", `{"Unsigned":false}`)
	clk.Set(t0.Add(2 * time.Hour))
	if res := run1(t, p, snap, RunOptions{}); res.Err != nil || res.New != 0 {
		t.Fatalf("after recovery: new=%d err=%v changes=%v", res.New, res.Err, res.Changes)
	}
	// Not served (legacy mode): kept, and the source succeeds.
	snap.set(&source.PartialError{Failed: []string{"LiveResponse"}, Err: errors.New("not on the legacy hosts"), NotServed: true},
		"AdvancedFeatures", `{"Tamper":false}`)
	clk.Set(t0.Add(3 * time.Hour))
	if res := run1(t, p, snap, RunOptions{}); res.Err != nil || res.Changes[Removed] != 0 {
		t.Fatalf("not served: err=%v changes=%v", res.Err, res.Changes)
	}
	entries, _, _, err := store.Snapshot(tenant, snap.Name())
	if err != nil || len(entries) != 2 {
		t.Fatalf("stored snapshot has %d entries (%v), want both parts", len(entries), err)
	}
}

// TestRedeliverResendsOnPurpose: --redeliver sends what was harvested in
// the range again, to the chosen output only, and moves no checkpoint.
func TestRedeliverResendsOnPurpose(t *testing.T) {
	store, _ := newStore(t)
	clk := &clock{t: t0}
	files, splunk := newMemSink(), newMemSink()
	files.name, splunk.name = "files", "splunk"
	src := &fakeEvent{name: "ActionCenter"}
	for i := range 30 {
		src.add(item(fmt.Sprintf("r%02d", i), t0.Add(-time.Duration(i+1)*time.Hour/2)))
	}
	snap := &fakeSnapshot{}
	snap.set(nil, "1", `{"Id":1}`, "2", `{"Id":2}`)
	p := newPipeline(t, Options{Store: store, Sinks: sinks{files, splunk}.s(), Now: clk.Now})
	p.Run(t.Context(), tenant, []source.Source{src, snap}, RunOptions{})
	before, _ := store.Progress(tenant, src.name)
	if len(files.ids()) != 32 || len(splunk.ids()) != 32 {
		t.Fatalf("first run: files %d splunk %d", len(files.ids()), len(splunk.ids()))
	}
	// A new event after the cursor must not be taken by a redelivery to
	// one output: the others would never get it.
	src.add(item("fresh", t0.Add(30*time.Minute)))
	clk.Set(t0.Add(time.Hour))
	p = newPipeline(t, Options{Store: store, Sinks: sinks{files, splunk}.s(), Now: clk.Now})
	res := p.Run(t.Context(), tenant, []source.Source{src, snap}, RunOptions{Since: t0.Add(-6 * time.Hour), Redeliver: true, Outputs: []string{"splunk"}})
	for _, r := range res {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if res[0].New != 12 || res[1].Changes[Snapshot] != 2 {
		t.Fatalf("redelivered %d events and %v snapshot records, want 12 and 2", res[0].New, res[1].Changes)
	}
	if got := splunk.ids(); got["r00"] != 2 || got["r11"] != 2 || got["r12"] != 1 || got["fresh"] != 0 {
		t.Fatalf("splunk counts: r00=%d r11=%d r12=%d fresh=%d", got["r00"], got["r11"], got["r12"], got["fresh"])
	}
	if len(files.ids()) != 32 {
		t.Fatal("the output not named got the redelivery")
	}
	after, _ := store.Progress(tenant, src.name)
	if !after.Cursor.Equal(before.Cursor) || len(after.Covered) != len(before.Covered) {
		t.Fatalf("a redelivery moved the checkpoint: %+v → %+v", before, after)
	}
	// The next normal run brings "fresh" to both.
	p = newPipeline(t, Options{Store: store, Sinks: sinks{files, splunk}.s(), Now: clk.Now})
	p.Run(t.Context(), tenant, []source.Source{src}, RunOptions{})
	if files.ids()["fresh"] != 1 || splunk.ids()["fresh"] != 1 {
		t.Fatal("the event after the cursor was not delivered by the next run")
	}
}

// TestSkewedClockFollowsTheServices: when our clock runs ahead of the
// services', windows are computed on theirs so events stamped "in our
// past but their future" are not skipped.
func TestSkewedClockFollowsTheServices(t *testing.T) {
	store, _ := newStore(t)
	clk := &clock{t: t0}
	mem := newMemSink()
	skew := -10 * time.Minute // services are 10 min behind us
	src := &fakeEvent{name: "ActionCenter", wd: source.Windowing{Overlap: 2 * time.Minute}}
	p := newPipeline(t, Options{Store: store, Sinks: sinks{mem}.s(), Now: clk.Now,
		Skew: func() (time.Duration, bool) { return skew, true }})
	run1(t, p, src, RunOptions{})
	if c, _ := cursorOf(t, store, src.name); !c.Equal(t0.Add(skew)) {
		t.Fatalf("cursor %v, want the services' now %v", c, t0.Add(skew))
	}
	// An event the services stamp at their now, just after the first run.
	src.add(item("late-by-our-clock", t0.Add(skew).Add(time.Minute)))
	clk.Set(t0.Add(5 * time.Minute))
	run1(t, p, src, RunOptions{})
	if mem.ids()["late-by-our-clock"] != 1 {
		t.Fatal("an event after the services' now was skipped because our clock runs ahead")
	}
	// Under a minute is noise: our clock is used.
	skew = 30 * time.Second
	if got := p.now(); !got.Equal(clk.Now()) {
		t.Fatalf("now %v with 30 s skew, want ours %v", got, clk.Now())
	}
}
