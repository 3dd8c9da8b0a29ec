package e2e

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/sim"
	"github.com/defenderharvester/defenderharvester/internal/state"
)

// TestKilledBackfillResumesWithoutRedoingSlices backfills a week of one
// device's timeline (60,000 events; 1,000,000 with DH_SCALE_TESTS=1), kills
// the run (SIGKILL) once half is delivered, and runs it again:
// every event arrives, at most the batch in flight twice, and no slice
// the killed run finished — nor the part of a slice it read newest first
// — is asked for again.
func TestKilledBackfillResumesWithoutRedoingSlices(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real processes; skipped with -short")
	}
	events := 60_000
	if os.Getenv("DH_SCALE_TESTS") != "" {
		events = 1_000_000
	}
	frozen := time.Now().Add(-time.Hour)
	var log lockedBuffer
	f := newFixture(t, sim.Options{Seed: 5, Now: func() time.Time { return frozen }, Machines: 1, History: 8 * 24 * time.Hour,
		TimelineEvents: events, TimelineHistory: 7 * 24 * time.Hour, RequestLog: &log})
	extra := "initial_lookback: 7d\n"
	// Every run starts at the same moment (runs on the wall clock would
	// each start their week a little later and miss the first events).
	since := frozen.Add(-7*24*time.Hour + 10*time.Minute).UTC().Format(time.RFC3339)
	onlyTimeline := []string{"--sources", "timeline", "--since", since}
	var mark int
	if code, out, errs := f.child(f.writeConfig("clean", extra), 0, onlyTimeline...); code != 0 {
		t.Fatalf("clean run exit %d\n%s\n%s", code, out, errs)
	}
	cleanPages := timelinePages(logSince(&log, &mark))
	want := readIDs(t, filepath.Join(f.dir, "clean-out"))
	if len(want) < events*9/10 {
		t.Fatalf("the clean run harvested %d events of about %d", len(want), events)
	}

	cfg := f.writeConfig("killed", extra)
	outDir := filepath.Join(f.dir, "killed-out")
	// Kill once the output holds half of the events (checked every 50 ms:
	// counting lines is not free).
	var next time.Time
	code, _, _ := f.childUntil(append([]string{"run", "--config", cfg}, onlyTimeline...), func() bool {
		if time.Now().Before(next) {
			return false
		}
		next = time.Now().Add(50 * time.Millisecond)
		return countLines(outDir) >= len(want)/2
	}, os.Kill)
	if code != -1 {
		t.Fatalf("the run ended (exit %d) before half of the backfill was delivered: the test proves nothing", code)
	}
	covered, newest := coveredAfterKill(t, f, filepath.Join(f.dir, "killed.db"))
	if len(covered) == 0 {
		t.Fatal("the killed run checkpointed nothing although a third was delivered")
	}
	logSince(&log, &mark)
	if code, out, errs := f.child(cfg, 0, onlyTimeline...); code != 0 {
		t.Fatalf("rerun exit %d\n%s\n%s", code, out, errs)
	}

	// The rerun reads only what the killed run had not covered: its
	// pages are at most the clean run's share of the uncovered time, plus
	// a page where each gap starts (a slice resumed below its last mark)
	// and the re-read band behind the newest time read. Events are spread
	// evenly over the week, so pages follow time. (The request log names
	// query parameters without values, so pages are counted, not dated.)
	rerunPages := timelinePages(logSince(&log, &mark))
	start, _ := time.Parse(time.RFC3339, since)
	week := state.Range{From: start, To: newest}
	var left time.Duration
	gaps := state.Uncovered(week, covered)
	for _, g := range gaps {
		left += g.To.Sub(g.From)
	}
	share := float64(left) / float64(week.To.Sub(week.From))
	bound := int(float64(cleanPages)*share*1.1) + 2*len(gaps) + 3
	t.Logf("clean run %d pages; killed with %.0f%% of the week covered; the rerun read %d pages (bound %d)",
		cleanPages, 100*(1-share), rerunPages, bound)
	if rerunPages > bound {
		t.Errorf("the rerun read %d timeline pages; the clean run read %d and %.0f%% of the week was left, so at most %d: finished work was read again",
			rerunPages, cleanPages, 100*share, bound)
	}
	// Half was delivered; what the last batches held (written, not yet
	// committed) and the pages the workers were reading are not covered.
	if share > 0.9 {
		t.Errorf("the killed run covered only %.0f%% of the week although half of the events was delivered", 100*(1-share))
	}

	got := readIDs(t, outDir)
	dups := 0
	for id := range want {
		switch n := got[id]; {
		case n == 0:
			t.Fatalf("event %s was lost across the kill", id)
		case n > 1:
			dups += n - 1
		}
	}
	if len(got) != len(want) {
		t.Errorf("the resumed harvest holds %d distinct events, the clean one %d", len(got), len(want))
	}
	if dups > 20_000 { // one batch: BatchBytes (4 MiB) holds ~4,500 of these events
		t.Errorf("%d events delivered twice; at most the batch in flight may be", dups)
	}
}

// timelinePages counts the timeline pages served in request log lines.
func timelinePages(lines []string) int {
	n := 0
	for _, ln := range lines {
		if strings.Contains(ln, "/mdeTimelineExperience/") && strings.Contains(ln, " status=200 ") {
			n++
		}
	}
	return n
}

// readIDs counts each record id in the JSONL files under dir, without
// keeping the records (a million of them fit).
func readIDs(t *testing.T, dir string) map[string]int {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	ids := map[string]int{}
	for _, p := range files {
		fh, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			var rec struct{ RecordId string }
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil || rec.RecordId == "" {
				t.Fatalf("%s: a line without a RecordId or not JSON (torn write?): %v", p, err)
			}
			ids[rec.RecordId]++
		}
		fh.Close()
	}
	return ids
}

// countLines counts the lines of the JSONL files under dir.
func countLines(dir string) int {
	files, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	n := 0
	buf := make([]byte, 1<<20)
	for _, p := range files {
		fh, err := os.Open(p)
		if err != nil {
			continue
		}
		for {
			k, err := fh.Read(buf)
			for _, c := range buf[:k] {
				if c == '\n' {
					n++
				}
			}
			if err != nil {
				break
			}
		}
		fh.Close()
	}
	return n
}

// coveredAfterKill reads the device's covered ranges and newest time
// from the state file the killed run left.
func coveredAfterKill(t *testing.T, f *fixture, path string) ([]state.Range, time.Time) {
	t.Helper()
	st, err := state.Open(path, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ids := f.tenant.MachineIDs()
	prog, err := st.Progress(f.tenant.Credentials().TenantID, "timeline/"+ids[0])
	if err != nil {
		t.Fatal(err)
	}
	newest := prog.Cursor
	for _, c := range prog.Covered {
		if c.To.After(newest) {
			newest = c.To
		}
	}
	return prog.Covered, newest
}

// TestThrottledBackfillDeliversEverything: the portal throttles the
// timeline when more than 3 pages are asked at once (429 with
// Retry-After), the harvester asks with 8 workers. The client-wide pacer
// lowers its concurrency and waits out the pauses; the backfill delivers
// exactly what an unthrottled one does.
func TestThrottledBackfillDeliversEverything(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real processes; skipped with -short")
	}
	frozen := time.Now().Add(-time.Hour)
	opts := func(throttle int) sim.Options {
		return sim.Options{Seed: 9, Now: func() time.Time { return frozen }, Machines: 3, History: 3 * 24 * time.Hour,
			TimelineEvents: 5000, TimelineHistory: 2 * 24 * time.Hour, PageLatency: 20 * time.Millisecond,
			ThrottleConcurrency: throttle, ThrottleRetryAfter: 200 * time.Millisecond}
	}
	since := frozen.Add(-2*24*time.Hour + 10*time.Minute).UTC().Format(time.RFC3339)
	args := []string{"--sources", "timeline", "--since", since}
	harvest := func(f *fixture, name string) map[string]int {
		if code, out, errs := f.child(f.writeConfig(name, "    page_size: 200\n"), 0, args...); code != 0 {
			t.Fatalf("%s run exit %d\n%s\n%s", name, code, out, errs)
		}
		return readIDs(t, filepath.Join(f.dir, name+"-out"))
	}
	want := harvest(newFixture(t, opts(0)), "clean")
	f := newFixture(t, opts(3))
	got := harvest(f, "throttled")
	if fired := f.tenant.FaultsFired()[sim.Fault429]; fired == 0 {
		t.Fatal("the emulator never throttled: the test proves nothing")
	} else {
		t.Logf("%d requests throttled", fired)
	}
	if len(got) != len(want) || len(want) < 10_000 {
		t.Fatalf("throttled harvest holds %d distinct events, the clean one %d", len(got), len(want))
	}
	for id, n := range got {
		if want[id] == 0 {
			t.Fatalf("event %s is not in the clean harvest", id)
		}
		if n > 1 {
			t.Fatalf("event %s delivered %d times", id, n)
		}
	}
}
