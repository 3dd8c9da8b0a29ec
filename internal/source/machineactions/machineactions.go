// Package machineactions harvests machine actions from the public Defender
// API — isolation, scans, Live Response, quarantine — mostly those started
// through the API (event source, table MdeMachineActionsApi).
package machineactions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/source/srcutil"
)

const (
	// Name is the source's config key.
	Name = "machineactions"
	// Table is where its records land.
	Table = "MdeMachineActionsApi"
	// Path is the public API endpoint.
	Path        = "/api/machineactions"
	maxPageSize = 10000
	maxPages    = 10000
	odataTime   = "2006-01-02T15:04:05.0000000Z"
)

// Config are the source's settings.
type Config struct {
	PageSize int `yaml:"page_size"`
	// Revisit is used only where the service refuses $filter on
	// lastUpdateDateTimeUtc: actions created this long before the window
	// start are then re-read, so status changes of recent actions arrive.
	Revisit           source.Duration `yaml:"revisit"`
	srcutil.Windowing `yaml:",inline"`
}

// NewConfig returns the defaults. Delay and overlap (README "Late data"):
// an action's record lives in the service's own store — the call that
// starts an action returns it — and lastUpdateDateTimeUtc is stamped by the
// service when a device reports a status, so a change is readable within
// moments, not after a pipeline's minutes. Delay 2m covers a status stamped
// just before it is committed; overlap 30m covers a report that lands late,
// and costs one small call, since the filter on the last update returns
// only the actions changed in those 30 minutes. Together they tolerate
// 32 minutes of lag.
func NewConfig() *Config {
	return &Config{PageSize: 1000, Revisit: source.Duration(72 * time.Hour), Windowing: srcutil.Windowing{
		Overlap: source.Duration(30 * time.Minute), MaxWindow: source.Duration(30 * 24 * time.Hour),
		Delay: source.Duration(2 * time.Minute),
	}}
}

// Validate checks the values (config.Validator); errors name the key.
func (c *Config) Validate() error {
	if c.PageSize < 1 || c.PageSize > maxPageSize {
		return fmt.Errorf("page_size %d must be between 1 and %d (the API's largest $top)", c.PageSize, maxPageSize)
	}
	return nil
}

// Page is one decoded OData page.
type Page struct {
	Items    []source.Item
	Rows     int // records on the page, before the local time filter
	NextLink string
}

// DecodePage reads {"value":[…],"@odata.nextLink":…}. Every action needs
// id and lastUpdateDateTimeUtc (or the documented typo lastUpdateTimeUtc).
func DecodePage(body []byte) (Page, error) {
	recs, err := srcutil.Items(Name, body, srcutil.Envelope{Keys: []string{"value"}})
	if err != nil {
		return Page{}, err
	}
	items, err := fields.Items(Name, recs)
	if err != nil {
		return Page{}, err
	}
	next, err := srcutil.NextLink(Name, body)
	if err != nil {
		return Page{}, err
	}
	return Page{Items: items, Rows: len(recs), NextLink: next}, nil
}

// fields: a status change is a new record.
var fields = srcutil.EventFields{
	ID: []string{"id"}, Time: []string{"lastUpdateDateTimeUtc", "lastUpdateTimeUtc"},
	StableID: func(id, ts string, f map[string]json.RawMessage) string {
		return record.StableID(Name, id, ts, srcutil.OptText(f, "status"))
	},
}

type src struct {
	srcutil.Meta
	api mde.PublicAPI
	cfg Config
	log *slog.Logger
	// byCreation is set once the service refused $filter on
	// lastUpdateDateTimeUtc; the source then reads by creation time.
	byCreation atomic.Bool
}

func (s *src) Windowing() source.Windowing { return s.cfg.Rules() }

// Fetch emits the actions whose last update lies in [From, To). It asks for
// the actions updated since From and created before To. The creation
// bound, not an upper bound on the update, keeps paging safe: an action
// updated while the pages are read stays in the result (its update only
// grows, its creation never changes), so rows only ever join the list —
// a row may be read twice (removed by id), never skipped. Where the service
// refuses the undocumented filter, Fetch falls back to re-reading the
// actions created in [From−Revisit, To).
func (s *src) Fetch(ctx context.Context, w source.Window, emit source.Emit) error {
	if !s.byCreation.Load() {
		filter := fmt.Sprintf("lastUpdateDateTimeUtc ge %s and creationDateTimeUtc lt %s", floor7(w.From), ceil7(w.To))
		err := s.list(ctx, w, filter, emit)
		if !refusesUpdateFilter(err) {
			return err
		}
		s.log.Warn("the public API refused $filter on lastUpdateDateTimeUtc; reading by creation time with the revisit period instead (more calls)",
			"source", Name, "revisit", s.cfg.Revisit.String())
		s.byCreation.Store(true)
	}
	filter := fmt.Sprintf("creationDateTimeUtc ge %s and creationDateTimeUtc lt %s", floor7(w.From.Add(-s.cfg.Revisit.D())), ceil7(w.To))
	return s.list(ctx, w, filter, emit)
}

// refusesUpdateFilter recognises the service refusing the filter: a 400
// whose message names the property.
func refusesUpdateFilter(err error) bool {
	var ae *mde.APIError
	return errors.As(err, &ae) && ae.Status == http.StatusBadRequest &&
		strings.Contains(strings.ToLower(ae.Message), "lastupdatedatetimeutc")
}

// floor7 and ceil7 print a bound at the service's 100 ns resolution without
// losing a record: ge takes the bound rounded down, lt rounded up.
func floor7(t time.Time) string { return t.UTC().Format(odataTime) }

func ceil7(t time.Time) string {
	c := t.UTC().Truncate(100 * time.Nanosecond)
	if c.Before(t) {
		c = c.Add(100 * time.Nanosecond)
	}
	return c.Format(odataTime)
}

// list pages one filter in creation order with $top/$skip. A $top request
// ends when it and the @odata.nextLink chain it may start (a service that
// serves fewer rows than asked links to the rest) have served fewer than
// $top rows; otherwise the next request skips what was served.
func (s *src) list(ctx context.Context, w source.Window, filter string, emit source.Emit) error {
	size := s.cfg.PageSize
	skip, served := 0, 0
	link := ""
	links := srcutil.Cursors{}
	for page := 1; page <= maxPages; page++ {
		var body []byte
		var err error
		if link != "" {
			body, err = s.api.GetLink(ctx, link)
		} else {
			body, err = s.api.Get(ctx, Path, url.Values{
				"$filter": {filter}, "$orderby": {"creationDateTimeUtc asc"},
				"$top": {strconv.Itoa(size)}, "$skip": {strconv.Itoa(skip)},
			})
		}
		if err != nil {
			return fmt.Errorf("%s page %d: %w", Name, page, err)
		}
		p, err := DecodePage(body)
		if err != nil {
			return fmt.Errorf("page %d: %w", page, err)
		}
		for _, it := range p.Items {
			if !w.Contains(it.Time) {
				continue
			}
			if err := emit(ctx, it); err != nil {
				return err
			}
		}
		served += p.Rows
		if p.NextLink != "" {
			if err := links.Follow(p.NextLink); err != nil {
				return fmt.Errorf("%s: %w", Name, err)
			}
			link = p.NextLink
			continue
		}
		if served < size {
			return nil
		}
		skip, served, link = skip+served, 0, ""
	}
	return fmt.Errorf("%s: more than %d pages in one window; lower max_window", Name, maxPages)
}

func init() {
	source.Register(source.Factory{
		Schedule: "5m", // response actions are what a SOC wants within minutes
		Name:     Name, Table: Table, Kind: source.Event, API: "public", DefaultEnabled: true,
		Description: "Machine actions from the public API (isolation, scans, Live Response, quarantine)",
		NewConfig:   func() any { return NewConfig() },
		New: func(deps source.Deps, cfg any) (source.Source, error) {
			c, err := srcutil.Settings(Name, cfg, NewConfig)
			if err != nil {
				return nil, err
			}
			if err := srcutil.NeedPublic(Name, deps); err != nil {
				return nil, err
			}
			log := deps.Logger
			if log == nil {
				log = slog.New(slog.DiscardHandler)
			}
			return &src{Meta: srcutil.NewMeta(Name, Table, source.Event), api: deps.API, cfg: *c, log: log}, nil
		},
	})
}
