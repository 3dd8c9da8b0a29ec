// Package timeline harvests device timelines — every process, file,
// network, registry and response event the sensor recorded — for chosen
// devices or all of them (event source, table MdeTimeline).
package timeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/source/srcutil"
)

const (
	// Name is the source's config key.
	Name = "timeline"
	// Table is where its records land.
	Table = "MdeTimeline"
	// Base is the portal route the timeline's relative links hang off.
	Base = "/apiproxy/mtp/mdeTimelineExperience"
	// MachinesPath lists devices when machines is [all].
	MachinesPath = "/apiproxy/mtp/ndr/machines"
	// apiLimit is the longest window the service accepts.
	apiLimit = 30 * 24 * time.Hour
	// maxPagesPerWindow stops a Prev chain that never ends.
	maxPagesPerWindow = 100000
	// maxMachinePages stops a device list that never ends.
	maxMachinePages = 10000
)

var machineIDRe = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)

// Config are the source's settings.
type Config struct {
	// Machines are device ids (SenseMachineId) or ["all"].
	Machines []string `yaml:"machines"`
	// MachineNames select devices by DNS name (select.go).
	MachineNames []string `yaml:"machine_names"`
	// MachineGroups select devices by machine group name or id.
	MachineGroups []string `yaml:"machine_groups"`
	// AlertedWithin selects devices with alerts this recent (0: off).
	AlertedWithin source.Duration `yaml:"alerted_within"`
	// AlertPageSize is alerts per page of the alert queue.
	AlertPageSize int `yaml:"alert_page_size"`
	// MaxMachines caps how many devices "all" or the selectors harvest.
	MaxMachines int `yaml:"max_machines"`
	// PageSize is events per timeline page (1–1000).
	PageSize int `yaml:"page_size"`
	// MachinePageSize is devices per page when listing all devices.
	MachinePageSize int `yaml:"machine_page_size"`
	// Workers is how many windows (of one device or of several) are read
	// at once; max_window is the length of those windows (slices).
	Workers           int `yaml:"workers"`
	srcutil.Windowing `yaml:",inline"`
}

// maxWorkers bounds workers: more concurrent pages only draw throttling.
const maxWorkers = 32

// NewConfig returns the defaults.
func NewConfig() *Config {
	// Events are sensor reports the device uploads: one that was asleep
	// or offline uploads late with the original ActionTime. delay + overlap
	// (70 min) is the lag tolerated; the overlap costs one or two pages per
	// device per run, so it is not larger (docs/sources.md). A long range
	// (a backfill) is read as 6-hour slices, 8 at a time: a week of one
	// device is 28 slices, so 8 workers stay busy, and an hourly run
	// reads one slice per device.
	return &Config{MaxMachines: 500, PageSize: 1000, MachinePageSize: 100, AlertPageSize: defaultAlertPageSize, Workers: 8, Windowing: srcutil.Windowing{
		Overlap: source.Duration(time.Hour), MaxWindow: source.Duration(6 * time.Hour),
		Delay: source.Duration(10 * time.Minute),
	}}
}

// Page is one decoded timeline page.
type Page struct {
	Items []source.Item
	Prev  string
	Next  string
}

// DecodePage reads {"Items":[…],"Prev":…,"Next":…,"PartialResponseReasons":[…]}
// for machineID. Every event needs ReportId and ActionTimeIsoString (or
// ActionTime). A partial response is an error, never data.
func DecodePage(machineID string, body []byte) (Page, error) {
	l, err := srcutil.ReadList(Name, body, srcutil.ListShape{Record: "event"})
	if err != nil {
		return Page{}, err
	}
	obj := l.Object
	if obj == nil {
		// A bare array carries no continuation link: whether more events
		// remain could not be told.
		return Page{}, fmt.Errorf("%s: device %s: the page is a bare array without the Prev link; cannot tell whether the window was read completely", Name, machineID)
	}
	if raw, ok := obj["PartialResponseReasons"]; ok && !bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		var reasons []json.RawMessage
		if err := json.Unmarshal(raw, &reasons); err != nil {
			return Page{}, fmt.Errorf("%s: field PartialResponseReasons is not an array", Name)
		}
		if len(reasons) > 0 {
			return Page{}, fmt.Errorf("%s: device %s: the portal returned a partial timeline page (PartialResponseReasons %s); try again later or with a smaller page_size", Name, machineID, clip(raw))
		}
	}
	// ReportId is unique per machine only, so the machine is part of the id.
	items, err := srcutil.EventFields{
		ID: []string{"ReportId", "reportId"}, Time: []string{"ActionTimeIsoString", "ActionTime", "actionTime", "Timestamp"},
		StableID: func(rid, ts string, _ map[string]json.RawMessage) string {
			return record.StableID(Name, machineID, rid, ts)
		},
		Sparse: true,
	}.Items(Name, l.Records)
	if err != nil {
		return Page{}, err
	}
	prev, err := srcutil.LinkOf(Name, obj, "Prev")
	if err != nil {
		return Page{}, err
	}
	next, err := srcutil.LinkOf(Name, obj, "Next")
	if err != nil {
		return Page{}, err
	}
	return Page{Items: items, Prev: prev, Next: next}, nil
}

func clip(b []byte) string {
	s := strings.Map(func(r rune) rune {
		if r < 0x20 {
			return ' '
		}
		return r
	}, string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

type src struct {
	srcutil.Meta
	portal mde.Portal
	cfg    Config
	all    bool
	log    *slog.Logger
	now    func() time.Time // clock of alerted_within
}

func (s *src) Windowing() source.Windowing { return s.cfg.Rules() }

// Workers is how many slices the pipeline reads at once.
func (s *src) Workers() int { return s.cfg.Workers }

// Parts lists the devices to harvest: the configured ones, or the
// tenant's device list. Each device keeps its own cursor in the pipeline,
// so one device that fails (403 "User is not exposed to machine") holds
// back no other.
func (s *src) Parts(ctx context.Context) ([]string, error) {
	if s.all {
		return s.listMachines(ctx)
	}
	if s.cfg.selects() {
		return s.selectMachines(ctx)
	}
	return s.cfg.Machines, nil
}

// FetchPart harvests one device for w, in chunks of at most max_window.
func (s *src) FetchPart(ctx context.Context, id string, w source.Window, emit source.Emit) error {
	for _, c := range srcutil.Chunks(w, s.cfg.MaxWindow.D()) {
		if err := s.fetchMachine(ctx, id, c, emit); err != nil {
			return err
		}
	}
	return nil
}

// Fetch harvests every device for w (the one-window form, used by
// doctor); a device that fails does not stop the others, the errors are
// returned together.
func (s *src) Fetch(ctx context.Context, w source.Window, emit source.Emit) error {
	machines, err := s.Parts(ctx)
	if err != nil {
		return err
	}
	var emitErr error
	guarded := func(ctx context.Context, it source.Item) error {
		if it.IsMark() {
			return nil // progress of one device, not of this window
		}
		if err := emit(ctx, it); err != nil {
			emitErr = err
			return err
		}
		return nil
	}
	var errs []error
	for _, id := range machines {
		err := s.FetchPart(ctx, id, w, guarded)
		if emitErr != nil {
			return emitErr
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			s.log.Warn("timeline: device failed; continuing with the others", slog.String("machine", id), slog.Any("error", err))
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *src) fetchMachine(ctx context.Context, id string, w source.Window, emit source.Emit) error {
	prefix := "/machines/" + id + "/events"
	path := Base + prefix + "/"
	q := url.Values{
		"machineId": {id}, "fromDate": {mde.FormatTimelineTime(w.From)}, "toDate": {mde.FormatTimelineTime(w.To)},
		"pageSize": {strconv.Itoa(s.cfg.PageSize)}, "doNotUseCache": {"false"}, "forceUseCache": {"false"},
	}
	cursors := srcutil.Cursors{}
	_ = cursors.Follow(q.Encode())
	wantFrom := mde.FormatTimelineTime(w.From)
	prevTo, prevRID := w.To, ""
	for page := 1; page <= maxPagesPerWindow; page++ {
		body, err := s.portal.Get(ctx, path, q)
		if err != nil {
			return fmt.Errorf("%s device %s page %d: %w", Name, id, page, err)
		}
		p, err := DecodePage(id, body)
		if err != nil {
			return fmt.Errorf("device %s page %d: %w", id, page, err)
		}
		if err := emitMarked(ctx, emit, p.Items); err != nil {
			return err
		}
		if p.Prev == "" {
			return nil
		}
		u, err := mde.ValidateRelativeLink(p.Prev, prefix)
		if err != nil {
			return fmt.Errorf("%s device %s: %w", Name, id, err)
		}
		if u.Path != prefix && u.Path != prefix+"/" {
			return fmt.Errorf("%s device %s: refusing continuation link: unexpected path %q", Name, id, u.Path)
		}
		nq := u.Query()
		if m := nq.Get("machineId"); m != "" && m != id {
			return fmt.Errorf("%s device %s: refusing continuation link: it names another device", Name, id)
		}
		if err := cursors.Follow(nq.Encode()); err != nil {
			return fmt.Errorf("%s device %s: %w", Name, id, err)
		}
		// A continuation must stay in this window and walk back in time:
		// a link that moves the start or does not move back would make an
		// unread part of the window look read (and the cursor pass it).
		from, err := mde.ParseTime(nq.Get("fromDate"))
		if err != nil || mde.FormatTimelineTime(from) != wantFrom {
			return fmt.Errorf("%s device %s: refusing continuation link: it moves the window start (fromDate %q, want %s)", Name, id, nq.Get("fromDate"), wantFrom)
		}
		to, err := mde.ParseTime(nq.Get("toDate"))
		if err != nil {
			return fmt.Errorf("%s device %s: refusing continuation link: toDate %q is not a time", Name, id, nq.Get("toDate"))
		}
		if to.Before(w.From) {
			return nil // nothing older is left in the window
		}
		// Every event of the window later than toDate was on the pages
		// read: the pipeline checkpoints that, so an interrupted slice
		// resumes here.
		if err := emit(ctx, source.Item{Mark: to}); err != nil {
			return err
		}
		rid := nq.Get("ReportIdForScrolling")
		if to.After(prevTo) || (to.Equal(prevTo) && rid == prevRID) {
			return fmt.Errorf("%s device %s: refusing continuation link: it does not move back in time (toDate %s after %s)", Name, id, nq.Get("toDate"), mde.FormatTimelineTime(prevTo))
		}
		prevTo, prevRID = to, rid
		path, q = Base+u.Path, nq
	}
	return fmt.Errorf("%s device %s: more than %d pages in one window; lower max_window", Name, id, maxPagesPerWindow)
}

// markEvery is how many events of a page sorted newest first pass
// between progress marks.
const markEvery = 100

// emitMarked emits a page's events. When the page lists them newest first
// (it should; it is checked), a progress mark follows every markEvery
// events: everything later than the last one emitted has been emitted, so
// an interrupted slice resumes there rather than at the page's start.
// The mark after a page comes from its continuation link (fetchMachine).
func emitMarked(ctx context.Context, emit source.Emit, items []source.Item) error {
	sorted := true
	for i := 1; i < len(items) && sorted; i++ {
		sorted = !items[i].Time.After(items[i-1].Time)
	}
	for i, it := range items {
		if err := emit(ctx, it); err != nil {
			return err
		}
		if sorted && (i+1)%markEvery == 0 && i+1 < len(items) {
			if err := emit(ctx, source.Item{Mark: it.Time}); err != nil {
				return err
			}
		}
	}
	return nil
}

// listMachines lists device ids up to max_machines (eachDevice).
func (s *src) listMachines(ctx context.Context) ([]string, error) {
	var ids []string
	err := s.eachDevice(ctx, func(d Device) bool {
		if len(ids) == s.cfg.MaxMachines {
			s.log.Warn("timeline: more devices than max_machines; the rest are not harvested",
				slog.Int("max_machines", s.cfg.MaxMachines))
			return false
		}
		ids = append(ids, d.ID)
		return true
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// Validate checks the settings at load (sources.timeline): the devices
// and the page and window limits.
func (c *Config) Validate() error {
	_, all, err := c.devices()
	if err != nil {
		return err
	}
	if err := c.checkSelectors(all); err != nil {
		return err
	}
	if err := srcutil.CheckInt("page_size", c.PageSize, 1, 1000); err != nil {
		return err
	}
	if c.MaxMachines < 1 {
		return errors.New("max_machines must be at least 1")
	}
	if err := srcutil.CheckInt("machine_page_size", c.MachinePageSize, 1, 1000); err != nil {
		return err
	}
	if err := srcutil.CheckInt("workers", c.Workers, 1, maxWorkers); err != nil {
		return err
	}
	return c.CheckValues(apiLimit)
}

// devices reads machines: device ids (deduplicated) or [all].
func (c *Config) devices() (ids []string, all bool, err error) {
	if len(c.Machines) == 0 {
		if c.selects() {
			return nil, false, nil
		}
		return nil, false, errors.New("no devices configured: set machines to device ids or [all], or select devices with machine_names, machine_groups or alerted_within")
	}
	dedup := map[string]bool{}
	for _, m := range c.Machines {
		m = strings.TrimSpace(m)
		switch {
		case strings.EqualFold(m, "all"):
			all = true
		case !machineIDRe.MatchString(m) && strings.Contains(m, "."):
			return nil, false, fmt.Errorf("machines entry %q is not a device id; list DNS names under machine_names", m)
		case !machineIDRe.MatchString(m):
			return nil, false, fmt.Errorf("machines entry %q is not a device id (the 40-hex SenseMachineId from the device page URL) or \"all\"", m)
		case !dedup[m]:
			dedup[m] = true
			ids = append(ids, m)
		}
	}
	if all && len(ids) > 0 {
		return nil, false, errors.New("machines is either [all] or a list of device ids, not both")
	}
	return ids, all, nil
}

func newSource(deps source.Deps, cfg any) (source.Source, error) {
	c, err := srcutil.Settings(Name, cfg, NewConfig)
	if err != nil {
		return nil, err
	}
	cc := *c
	var all bool
	cc.Machines, all, _ = c.devices()
	if err := srcutil.NeedPortal(Name, deps); err != nil {
		return nil, err
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &src{Meta: srcutil.NewMeta(Name, Table, source.Event), portal: deps.Portal, cfg: cc, all: all, log: log, now: time.Now}, nil
}

func init() {
	source.Register(source.Factory{
		Schedule: "1h", // device timelines are large; an hourly pull keeps each one short
		Name:     Name, Table: Table, Kind: source.Event, API: "portal", DefaultEnabled: false,
		Description: "Device timelines (every sensor event) for chosen devices or all of them",
		NewConfig:   func() any { return NewConfig() },
		New:         newSource,
	})
}
