// Package progress shows how far a long harvest is: on a terminal a live
// block redrawn on stderr (per source: windows done of planned, records,
// rate, ETA), elsewhere one log line every so often. A Display is a
// pipeline.Observer; it never changes what is delivered, and its
// observer calls only update counters under one lock.
package progress

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/defenderharvester/defenderharvester/internal/pipeline"
	"github.com/defenderharvester/defenderharvester/internal/source"
)

// Mode is how progress is shown.
type Mode int

const (
	Off Mode = iota // nothing
	TTY             // a block redrawn in place on a terminal
	Log             // one Info log line every Interval
)

func (m Mode) String() string {
	switch m {
	case TTY:
		return "tty"
	case Log:
		return "log"
	}
	return "off"
}

// Defaults of Options.
const (
	DefaultRedraw   = 250 * time.Millisecond
	DefaultInterval = 30 * time.Second
)

// Ticker is what the display waits on between redraws or log lines
// (time.Ticker in production; tests send ticks themselves).
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

type realTicker struct{ *time.Ticker }

func (t realTicker) C() <-chan time.Time { return t.Ticker.C }

// Options configure a Display.
type Options struct {
	Mode Mode
	// Out is the terminal the TTY block is drawn on (stderr).
	Out io.Writer
	// Logger takes the Log mode's lines.
	Logger *slog.Logger
	// Interval is the Log mode's period (default DefaultInterval).
	Interval time.Duration
	// Redraw is the TTY mode's period (default DefaultRedraw).
	Redraw time.Duration
	// Sources are shown as waiting until they start (optional; in the
	// order given).
	Sources []string
	// Now and NewTicker default to time.Now and time.NewTicker.
	Now       func() time.Time
	NewTicker func(time.Duration) Ticker
}

// Display is a progress display; it is a pipeline.Observer. Start it
// before the harvest and Stop it after.
type Display struct {
	opts Options

	mu      sync.Mutex
	start   time.Time
	order   []*unit // first seen first
	units   map[unitKey]*unit
	tenants map[string]bool
	drawn   int // lines of the block on screen (TTY)
	stopped bool

	stop chan struct{}
	done chan struct{}
	// ticked, when set, is called after each tick of the loop (tests).
	ticked func()
}

type unitKey struct{ tenant, source string }

// unit is one source of one tenant, its parts added up.
type unit struct {
	tenant, name string
	started      time.Time // zero: waiting
	planned      bool      // at least one Planned
	parts        int       // distinct name/part keys planned
	partKeys     map[string]bool
	chunks, done int
	records      int
	finished     bool
	failed       bool
	took         time.Duration
	logged       bool // Log mode: its end was reported
}

var _ pipeline.Observer = (*Display)(nil)

// New makes a display; it draws nothing until Start.
func New(o Options) *Display {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.NewTicker == nil {
		o.NewTicker = func(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Redraw <= 0 {
		o.Redraw = DefaultRedraw
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Display{opts: o, units: map[unitKey]*unit{}, tenants: map[string]bool{}}
	for _, s := range o.Sources {
		d.unitLocked("", s)
	}
	return d
}

// Mode is the display's mode.
func (d *Display) Mode() Mode { return d.opts.Mode }

// Start begins redrawing (TTY) or logging (Log) in the background.
func (d *Display) Start() {
	d.mu.Lock()
	d.start = d.opts.Now()
	d.mu.Unlock()
	if d.opts.Mode == Off || d.stop != nil {
		return
	}
	period := d.opts.Redraw
	if d.opts.Mode == Log {
		period = d.opts.Interval
	}
	t := d.opts.NewTicker(period)
	d.stop, d.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(d.done)
		defer t.Stop()
		for {
			select {
			case <-d.stop:
				return
			case <-t.C():
				d.Tick()
				if d.ticked != nil {
					d.ticked()
				}
			}
		}
	}()
}

// Stop ends the background work; on a terminal the block is drawn one
// last time and left on screen. Safe to call more than once.
func (d *Display) Stop() {
	if d.stop != nil {
		select {
		case <-d.stop:
		default:
			close(d.stop)
		}
		<-d.done
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	d.stopped = true
	if d.opts.Mode == TTY && d.anyStartedLocked() {
		d.drawLocked()
	}
}

// Tick redraws the block (TTY) or writes one log line (Log); the
// background loop calls it on every tick.
func (d *Display) Tick() {
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		return
	}
	var line []any
	switch d.opts.Mode {
	case TTY:
		if d.anyStartedLocked() {
			d.drawLocked()
		}
	case Log:
		line = d.logLineLocked()
	}
	d.mu.Unlock()
	// Logged outside the lock: a slow log writer must not hold up the
	// observer calls, which come from the harvest itself.
	if line != nil {
		d.opts.Logger.Info("progress", line...)
	}
}

// Wrap returns a writer for everything else written to the terminal the
// block is drawn on (the logs): in TTY mode each write goes above the
// block, which is erased and drawn again below it. Other modes return w
// itself.
func (d *Display) Wrap(w io.Writer) io.Writer {
	if d.opts.Mode != TTY {
		return w
	}
	return wrapped{d: d, w: w}
}

type wrapped struct {
	d *Display
	w io.Writer
}

func (x wrapped) Write(p []byte) (int, error) {
	x.d.mu.Lock()
	defer x.d.mu.Unlock()
	shown := x.d.drawn > 0 && !x.d.stopped
	x.d.eraseLocked()
	n, err := x.w.Write(p)
	if shown {
		x.d.drawLocked()
	}
	return n, err
}

// --- pipeline.Observer ---

// SourceStarted implements pipeline.Observer.
func (d *Display) SourceStarted(tenant, key string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	u := d.unitLocked(tenant, sourceOf(key))
	if u.started.IsZero() {
		u.started = d.opts.Now()
	}
}

// Planned implements pipeline.Observer.
func (d *Display) Planned(tenant, key string, chunks int, _ source.Window) {
	d.mu.Lock()
	defer d.mu.Unlock()
	u := d.unitLocked(tenant, sourceOf(key))
	if u.started.IsZero() {
		u.started = d.opts.Now()
	}
	u.planned = true
	u.chunks += chunks
	// A part is planned again when one of its windows is split between
	// workers: it counts once.
	if strings.Contains(key, "/") && !u.partKeys[key] {
		if u.partKeys == nil {
			u.partKeys = map[string]bool{}
		}
		u.partKeys[key] = true
		u.parts++
	}
}

// ChunkDone implements pipeline.Observer.
func (d *Display) ChunkDone(tenant, key string, _ source.Window, records int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	u := d.unitLocked(tenant, sourceOf(key))
	u.done++
	u.records += records
}

// Written implements pipeline.Observer (not shown).
func (d *Display) Written(string, string, string, int, error) {}

// Spooled implements pipeline.Observer (not shown).
func (d *Display) Spooled(string, string, string, int) {}

// SourceDone implements pipeline.Observer.
func (d *Display) SourceDone(tenant string, res pipeline.Result) {
	d.mu.Lock()
	defer d.mu.Unlock()
	u := d.unitLocked(tenant, sourceOf(res.Source))
	if u.finished {
		return
	}
	now := d.opts.Now()
	if u.started.IsZero() {
		u.started = now
	}
	u.finished, u.failed = true, res.Err != nil
	u.took = now.Sub(u.started)
	if res.New > u.records {
		u.records = res.New // snapshots report no windows
	}
}

// sourceOf is the source of a state key: "timeline/<device>" → "timeline".
func sourceOf(key string) string {
	if i := strings.IndexByte(key, '/'); i >= 0 {
		return key[:i]
	}
	return key
}

// unitLocked finds or adds the unit of tenant's source; a waiting unit
// announced without a tenant is taken over by the first tenant.
func (d *Display) unitLocked(tenant, name string) *unit {
	k := unitKey{tenant, name}
	if u, ok := d.units[k]; ok {
		return u
	}
	if tenant != "" {
		d.tenants[tenant] = true
		if u, ok := d.units[unitKey{"", name}]; ok {
			delete(d.units, unitKey{"", name})
			u.tenant = tenant
			d.units[k] = u
			return u
		}
	}
	u := &unit{tenant: tenant, name: name}
	d.units[k] = u
	d.order = append(d.order, u)
	return u
}

func (d *Display) anyStartedLocked() bool {
	for _, u := range d.order {
		if !u.started.IsZero() {
			return true
		}
	}
	return false
}

// --- rendering ---

// label is the unit's name, with its tenant when there are several.
func (d *Display) label(u *unit) string {
	if len(d.tenants) > 1 && u.tenant != "" {
		return u.tenant + "/" + u.name
	}
	return u.name
}

// stats are one unit's figures at now.
type stats struct {
	windows string // "3/10 windows", "" for snapshots
	records int
	rate    string // "120/s"; "" before any time passed
	eta     string // "ETA 25s", "ETA ?" or ""
	state   string // "waiting", "reading", "done in 12s", "FAILED after 12s"
}

func (d *Display) statsOf(u *unit, now time.Time) stats {
	s := stats{records: u.records}
	if u.started.IsZero() {
		s.state = "waiting"
		if d.stopped {
			s.state = "not run" // it could not start (see the report)
		}
		return s
	}
	elapsed := now.Sub(u.started)
	if u.finished {
		elapsed = u.took
	}
	if elapsed > 0 {
		s.rate = rate(float64(u.records) / elapsed.Seconds())
	}
	if u.planned {
		s.windows = fmt.Sprintf("%d/%d windows", u.done, u.chunks)
		if u.parts > 0 {
			s.windows += fmt.Sprintf(" (%d parts)", u.parts)
		}
	}
	switch {
	case u.finished && u.failed:
		s.state = "FAILED after " + dur(u.took)
	case u.finished:
		s.state = "done in " + dur(u.took)
	case !u.planned:
		s.state = "reading"
	case u.parts > 0:
		// The parts still to come are not planned yet: their windows
		// are unknown, so no honest ETA can be given.
		s.eta = "ETA ?"
	case u.done == 0 && u.chunks > 0:
		s.eta = "ETA ?"
	case u.chunks > 0:
		mean := elapsed / time.Duration(u.done)
		s.eta = "ETA " + dur(mean*time.Duration(u.chunks-u.done))
	}
	return s
}

// lines renders the block: a header, then one line per source in
// aligned columns (name, windows, records, rate, ETA or state).
func (d *Display) lines(now time.Time) []string {
	done, records := 0, 0
	rows := make([][5]string, 0, len(d.order))
	for _, u := range d.order {
		if u.finished {
			done++
		}
		records += u.records
		s := d.statsOf(u, now)
		name := d.label(u)
		if len(name) > maxName {
			name = name[:maxName-1] + "…"
		}
		row := [5]string{name, s.windows}
		if !u.started.IsZero() {
			row[2], row[3] = fmt.Sprintf("%d records", s.records), s.rate
		}
		row[4] = strings.TrimSpace(s.eta + " " + s.state)
		rows = append(rows, row)
	}
	var width [4]int
	for _, r := range rows {
		for i := range width {
			width[i] = max(width[i], utf8.RuneCountInString(r[i]))
		}
	}
	out := []string{fmt.Sprintf("harvesting: %d/%d sources done, %d records, %s", done, len(d.order), records, dur(now.Sub(d.start)))}
	for _, r := range rows {
		var b strings.Builder
		b.WriteString(" ")
		for i, c := range r {
			if i < len(width) && width[i] == 0 {
				continue // a column no row uses
			}
			b.WriteString(" ")
			switch i {
			case 2, 3: // numbers: right-aligned
				fmt.Fprintf(&b, "%*s ", width[i], c)
			case 0, 1:
				fmt.Fprintf(&b, "%-*s ", width[i], c)
			default:
				b.WriteString(c)
			}
		}
		out = append(out, strings.TrimRight(b.String(), " "))
	}
	return out
}

// maxName bounds the name column.
const maxName = 28

// drawLocked redraws the block in place: up to its first line, each line
// cleared and written, anything below cleared.
func (d *Display) drawLocked() {
	var b strings.Builder
	if d.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA\r", d.drawn)
	}
	ls := d.lines(d.opts.Now())
	for _, l := range ls {
		b.WriteString("\x1b[2K")
		b.WriteString(l)
		b.WriteByte('\n')
	}
	b.WriteString("\x1b[J")
	d.drawn = len(ls)
	io.WriteString(d.opts.Out, b.String())
}

// eraseLocked removes the block from the screen (the next draw puts it
// back below whatever was written meanwhile).
func (d *Display) eraseLocked() {
	if d.drawn == 0 || d.stopped {
		return
	}
	fmt.Fprintf(d.opts.Out, "\x1b[%dA\r\x1b[J", d.drawn)
	d.drawn = 0
}

// logLineLocked is the attributes of one log line on the sources running
// now and those that ended since the previous line; nil when there are
// none.
func (d *Display) logLineLocked() []any {
	now := d.opts.Now()
	var attrs []any
	done := 0
	for _, u := range d.order {
		if u.finished {
			done++
		}
		if u.started.IsZero() || u.logged {
			continue
		}
		s := d.statsOf(u, now)
		var parts []string
		if s.windows != "" {
			parts = append(parts, s.windows)
		}
		parts = append(parts, fmt.Sprintf("%d records", s.records))
		if s.rate != "" {
			parts = append(parts, s.rate)
		}
		if s.eta != "" {
			parts = append(parts, s.eta)
		}
		if s.state != "" {
			parts = append(parts, s.state)
		}
		u.logged = u.finished
		attrs = append(attrs, d.label(u), strings.Join(parts, ", "))
	}
	if len(attrs) == 0 {
		return nil
	}
	head := []any{"sources_done", fmt.Sprintf("%d/%d", done, len(d.order)), "elapsed", dur(now.Sub(d.start))}
	return append(head, attrs...)
}

// rate is records per second, short.
func rate(r float64) string {
	switch {
	case r >= 10:
		return fmt.Sprintf("%.0f/s", r)
	case r > 0:
		return fmt.Sprintf("%.1f/s", r)
	}
	return "0/s"
}

// dur is a duration for people: 45s, 12m05s, 1h02m.
func dur(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	d = d.Round(time.Minute)
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}
