package progress

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/pipeline"
	"github.com/defenderharvester/defenderharvester/internal/source"
)

// fakeClock is moved by the test.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeTicker ticks when the test calls tick, which returns once the
// display handled the tick.
type fakeTicker struct {
	ch      chan time.Time
	ticked  chan struct{}
	period  time.Duration
	stopped bool
}

func (t *fakeTicker) tick(now time.Time) {
	t.ch <- now
	<-t.ticked
}

func (t *fakeTicker) C() <-chan time.Time { return t.ch }
func (t *fakeTicker) Stop()               { t.stopped = true }

var t0 = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)

func newTest(mode Mode, out *bytes.Buffer, log *bytes.Buffer, sources ...string) (*Display, *fakeClock, *fakeTicker) {
	clk := &fakeClock{t: t0}
	tk := &fakeTicker{ch: make(chan time.Time), ticked: make(chan struct{})}
	o := Options{Mode: mode, Out: out, Sources: sources, Now: clk.Now,
		NewTicker: func(d time.Duration) Ticker { tk.period = d; return tk }}
	if log != nil {
		o.Logger = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{
			ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			}}))
	}
	d := New(o)
	d.ticked = func() { tk.ticked <- struct{}{} }
	return d, clk, tk
}

var win = source.Window{From: t0.Add(-time.Hour), To: t0}

// feed plays a harvest of three sources into the observer: actioncenter
// (10 windows, 3 done in 6 s, 100 records each), timeline (two devices
// planned, 4 windows each, 2 done) and machinegroups (a snapshot, done).
func feed(d pipeline.Observer, clk *fakeClock) {
	d.SourceStarted("t1", "actioncenter")
	d.Planned("t1", "actioncenter", 10, win)
	for i := 0; i < 3; i++ {
		clk.Add(2 * time.Second)
		d.ChunkDone("t1", "actioncenter", win, 100)
		d.Written("t1", "actioncenter", "files", 100, nil)
	}
	d.SourceStarted("t1", "timeline")
	d.Planned("t1", "timeline/dev1", 4, win)
	d.ChunkDone("t1", "timeline/dev1", win, 7)
	d.ChunkDone("t1", "timeline/dev1", win, 8)
	d.Planned("t1", "timeline/dev2", 4, win)
	d.SourceStarted("t1", "machinegroups")
	d.Spooled("t1", "machinegroups", "splunk", 5)
	d.SourceDone("t1", pipeline.Result{Source: "machinegroups", New: 5})
}

func lastBlock(out string) string {
	i := strings.LastIndex(out, "harvesting:")
	if i < 0 {
		return ""
	}
	return out[i:]
}

func TestTTYBlockShowsWindowsRecordsRateAndETA(t *testing.T) {
	var out bytes.Buffer
	d, clk, tk := newTest(TTY, &out, nil, "actioncenter", "timeline", "machinegroups", "schema")
	d.Start()
	if tk.period != DefaultRedraw {
		t.Fatalf("redraw period %s, want %s", tk.period, DefaultRedraw)
	}
	feed(d, clk)
	d.Tick()
	block := lastBlock(out.String())
	for _, want := range []string{
		"harvesting: 1/4 sources done, 320 records, 6s",
		"actioncenter 3/10 windows 300 records 50/s ETA 14s",
		"timeline 2/8 windows (2 parts) 15 records ETA ?",
		"machinegroups 5 records done in 0s",
		"schema waiting",
	} {
		if !strings.Contains(squeeze(block), want) {
			t.Errorf("block lacks %q:\n%s", want, stripANSI(block))
		}
	}
	if strings.Contains(out.String(), "\x1b[5A") {
		t.Fatalf("first draw moved the cursor up: %q", out.String())
	}
	// The next draw replaces the five lines in place.
	clk.Add(2 * time.Second)
	d.ChunkDone("t1", "actioncenter", win, 100)
	out.Reset()
	d.Tick()
	if !strings.HasPrefix(out.String(), "\x1b[5A\r\x1b[2K") || !strings.HasSuffix(out.String(), "\x1b[J") {
		t.Fatalf("redraw does not move up 5 lines and clear: %q", out.String())
	}
	if !strings.Contains(squeeze(out.String()), "actioncenter 4/10 windows 400 records 50/s ETA 12s") {
		t.Fatalf("redraw: %q", stripANSI(out.String()))
	}
}

func TestTTYStopLeavesTheFinalBlockOnce(t *testing.T) {
	var out bytes.Buffer
	d, clk, tk := newTest(TTY, &out, nil, "actioncenter", "timeline", "machinegroups", "machineactions")
	d.Start()
	feed(d, clk)
	tk.tick(clk.Now()) // a tick from the ticker draws the block
	if !strings.Contains(out.String(), "harvesting: 1/4") {
		t.Fatalf("a tick drew nothing: %q", out.String())
	}
	clk.Add(time.Second)
	d.SourceDone("t1", pipeline.Result{Source: "actioncenter", New: 300})
	d.SourceDone("t1", pipeline.Result{Source: "timeline", New: 15, Err: errors.New("boom")})
	clk.Add(time.Second)
	d.SourceDone("t1", pipeline.Result{Source: "timeline", New: 15}) // told twice: the first counts
	out.Reset()
	d.Stop()
	if !tk.stopped {
		t.Fatal("the ticker was not stopped")
	}
	final := squeeze(out.String())
	for _, want := range []string{"harvesting: 3/4 sources done, 320 records, 8s", "machineactions not run", "actioncenter 3/10 windows 300 records 43/s done in 7s", "timeline 2/8 windows (2 parts) 15 records 15/s FAILED after 1s"} {
		if !strings.Contains(final, want) {
			t.Errorf("final block lacks %q:\n%s", want, final)
		}
	}
	out.Reset()
	d.Stop()
	d.Tick()
	d.Wrap(&out).Write([]byte("late log line\n"))
	if out.String() != "late log line\n" {
		t.Fatalf("after Stop the block was touched again: %q", out.String())
	}
}

func TestTTYLogLinesGoAboveTheBlock(t *testing.T) {
	var out bytes.Buffer
	d, clk, _ := newTest(TTY, &out, nil)
	d.Start()
	d.SourceStarted("t1", "actioncenter")
	d.Planned("t1", "actioncenter", 2, win)
	d.Tick() // two lines drawn
	out.Reset()
	clk.Add(time.Second)
	w := d.Wrap(&out)
	fmt.Fprint(w, "level=INFO msg=hello\n")
	got := out.String()
	if !strings.HasPrefix(got, "\x1b[2A\r\x1b[Jlevel=INFO msg=hello\n\x1b[2K") {
		t.Fatalf("log line not written in place of the erased block: %q", got)
	}
	if !strings.Contains(squeeze(got), "actioncenter 0/2 windows 0 records 0/s ETA ?") {
		t.Fatalf("block not drawn again below the log line: %q", stripANSI(got))
	}
	d.Stop()
}

func TestTTYNothingDrawnBeforeAnySourceStarts(t *testing.T) {
	var out bytes.Buffer
	d, _, _ := newTest(TTY, &out, nil, "actioncenter")
	d.Start()
	d.Tick()
	d.Stop()
	if out.Len() != 0 {
		t.Fatalf("drew %q with nothing started", out.String())
	}
}

func TestLogModeOneLinePerInterval(t *testing.T) {
	var out, logs bytes.Buffer
	d, clk, tk := newTest(Log, &out, &logs, "actioncenter", "timeline", "machinegroups")
	d.Start()
	if tk.period != DefaultInterval {
		t.Fatalf("log period %s, want %s", tk.period, DefaultInterval)
	}
	d.Tick()
	if logs.Len() != 0 {
		t.Fatalf("logged before anything started: %s", logs.String())
	}
	feed(d, clk)
	tk.tick(clk.Now())
	want := `level=INFO msg=progress sources_done=1/3 elapsed=6s actioncenter="3/10 windows, 300 records, 50/s, ETA 14s" timeline="2/8 windows (2 parts), 15 records, ETA ?" machinegroups="5 records, done in 0s"` + "\n"
	if logs.String() != want {
		t.Fatalf("log line\n got %s\nwant %s", logs.String(), want)
	}
	// A finished source is reported once; nothing running, nothing said.
	logs.Reset()
	clk.Add(4 * time.Second)
	d.SourceDone("t1", pipeline.Result{Source: "actioncenter", New: 300})
	d.SourceDone("t1", pipeline.Result{Source: "timeline", New: 15})
	d.Tick()
	if !strings.Contains(logs.String(), `actioncenter="3/10 windows, 300 records, 30/s, done in 10s"`) || strings.Contains(logs.String(), "machinegroups") {
		t.Fatalf("second line: %s", logs.String())
	}
	logs.Reset()
	d.Tick()
	d.Stop()
	if logs.Len() != 0 || out.Len() != 0 {
		t.Fatalf("wrote after every source was reported done: logs %q, out %q", logs.String(), out.String())
	}
	if got := d.Wrap(&out); got != &out {
		t.Fatal("Log mode wraps the log writer")
	}
}

func TestLogModeNamesTenantsWhenSeveral(t *testing.T) {
	var logs bytes.Buffer
	d, _, _ := newTest(Log, nil, &logs)
	d.Start()
	d.SourceStarted("contoso", "actioncenter")
	d.SourceStarted("fabrikam", "actioncenter")
	d.Tick()
	d.Stop()
	if !strings.Contains(logs.String(), `contoso/actioncenter="0 records, reading"`) || !strings.Contains(logs.String(), `fabrikam/actioncenter=`) {
		t.Fatalf("tenants not told apart: %s", logs.String())
	}
}

func TestOffModeSaysNothing(t *testing.T) {
	var out, logs bytes.Buffer
	d, clk, tk := newTest(Off, &out, &logs, "actioncenter")
	d.Start()
	feed(d, clk)
	d.Tick()
	d.Stop()
	if out.Len() != 0 || logs.Len() != 0 || tk.period != 0 {
		t.Fatalf("off mode: out %q, logs %q, ticker %s", out.String(), logs.String(), tk.period)
	}
}

// TestConcurrentObserverCalls runs under -race: observer calls come from
// several goroutines while the display redraws.
func TestConcurrentObserverCalls(t *testing.T) {
	var out bytes.Buffer
	d, clk, _ := newTest(TTY, &out, nil)
	d.Start()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Go(func() {
			key := fmt.Sprintf("timeline/dev%d", g)
			d.SourceStarted("t1", "timeline")
			d.Planned("t1", key, 50, win)
			for i := 0; i < 50; i++ {
				d.ChunkDone("t1", key, win, 1)
				if i%10 == 0 {
					d.Tick()
				}
			}
		})
	}
	w := d.Wrap(&out)
	wg.Go(func() {
		for i := 0; i < 20; i++ {
			fmt.Fprintln(w, "log")
			clk.Add(time.Millisecond)
		}
	})
	wg.Wait()
	d.Stop()
	if !strings.Contains(squeeze(lastBlock(out.String())), "timeline 400/400 windows (8 parts) 400 records") {
		t.Fatalf("final block: %q", stripANSI(lastBlock(out.String())))
	}
}

func TestDur(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 1400 * time.Millisecond: "1s", 59 * time.Second: "59s", 61 * time.Second: "1m01s",
		time.Hour + 2*time.Minute + 40*time.Second: "1h03m",
	} {
		if got := dur(d); got != want {
			t.Errorf("dur(%s) = %s, want %s", d, got, want)
		}
	}
}

// squeeze is s without ANSI sequences, each line's runs of spaces made
// one (the columns' padding).
func squeeze(s string) string {
	var lines []string
	for _, l := range strings.Split(stripANSI(s), "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	return strings.Join(lines, "\n")
}

func stripANSI(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '[' {
			j := i + 2
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == ';') {
				j++
			}
			i = j
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
