// Package actioncenter harvests the Action Center history: every response
// action (isolation, scans, investigation packages, Live Response commands
// with their command lines) and who took it (event source, table
// MdeMachineActions).
package actioncenter

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/source/srcutil"
)

const (
	// Name is the source's config key.
	Name = "actioncenter"
	// Table is where its records land.
	Table = "MdeMachineActions"
	// Path is the portal endpoint (trailing slash included, as the portal
	// calls it).
	Path = "/apiproxy/mtp/actionCenter/actioncenterui/history-actions/"
	// maxPageSize is where the service clamps pageSize; larger would break
	// the pageIndex·pageSize ≥ Count stop rule.
	maxPageSize = 1000
	maxPages    = 100000
)

// Config are the source's settings.
type Config struct {
	PageSize          int `yaml:"page_size"`
	srcutil.Windowing `yaml:",inline"`
}

// NewConfig returns the defaults.
func NewConfig() *Config {
	return &Config{PageSize: 200, Windowing: srcutil.Windowing{
		Overlap: source.Duration(15 * time.Minute), MaxWindow: source.Duration(7 * 24 * time.Hour),
	}}
}

// Page is one decoded page.
type Page struct {
	Count int64
	Items []source.Item
}

// DecodePage reads {"Count":n,"Results":[…]}; every record needs ActionId
// and EventTime (no offset means UTC).
func DecodePage(body []byte) (Page, error) {
	count, items, err := fields.Results(Name, body, true)
	if err != nil {
		return Page{}, err
	}
	return Page{Count: count, Items: items}, nil
}

// fields: an action that changes status is a new record.
var fields = srcutil.EventFields{
	ID: []string{"ActionId"}, Time: []string{"EventTime"},
	StableID: func(id, ts string, f map[string]json.RawMessage) string {
		return record.StableID(Name, id, ts, srcutil.OptText(f, "ActionStatus"))
	},
}

type src struct {
	srcutil.Meta
	portal mde.Portal
	cfg    Config
}

func (s *src) Windowing() source.Windowing { return s.cfg.Rules() }

// Fetch pages through [From, To] sorted ascending by event time. Each page
// is decoded completely before any of it is emitted.
func (s *src) Fetch(ctx context.Context, w source.Window, emit source.Emit) error {
	size := s.cfg.PageSize
	prevFirst := ""
	for page := 1; page <= maxPages; page++ {
		q := url.Values{
			"type": {"history"}, "useMtpApi": {"true"},
			"sortByField": {"eventTime"}, "sortOrder": {"Ascending"},
			"pageIndex": {strconv.Itoa(page)}, "pageSize": {strconv.Itoa(size)},
			"fromDate": {mde.FormatPortalTime(w.From)}, "toDate": {mde.FormatPortalTimeCeil(w.To)},
		}
		body, err := s.portal.Get(ctx, Path, q)
		if err != nil {
			return fmt.Errorf("%s page %d: %w", Name, page, err)
		}
		p, err := DecodePage(body)
		if err != nil {
			return fmt.Errorf("page %d: %w", page, err)
		}
		if len(p.Items) > 0 && p.Items[0].ID == prevFirst {
			return fmt.Errorf("%s: page %d repeats page %d (the service ignored pageIndex); refusing to loop", Name, page, page-1)
		}
		if err := srcutil.EmitAll(ctx, emit, p.Items); err != nil {
			return err
		}
		// A short page ends the window. Count alone does not: a stale or
		// low Count must not stop paging while pages still come back full.
		if len(p.Items) < size {
			return nil
		}
		if len(p.Items) > 0 {
			prevFirst = p.Items[0].ID
		}
	}
	return fmt.Errorf("%s: more than %d pages in one window; lower max_window", Name, maxPages)
}

func init() {
	source.Register(source.Factory{
		Name: Name, Table: Table, Kind: source.Event, API: "portal", DefaultEnabled: true,
		Description: "Action Center history: response actions and Live Response commands, with who ran them",
		NewConfig:   func() any { return NewConfig() },
		New: func(deps source.Deps, cfg any) (source.Source, error) {
			c, err := srcutil.CheckConfig[Config](Name, cfg)
			if err != nil {
				return nil, err
			}
			if err := srcutil.IntRange(Name, "page_size", c.PageSize, 1, maxPageSize); err != nil {
				return nil, fmt.Errorf("%w (the service clamps larger pages)", err)
			}
			if err := srcutil.NeedPortal(Name, deps); err != nil {
				return nil, err
			}
			return &src{Meta: srcutil.NewMeta(Name, Table, source.Event), portal: deps.Portal, cfg: *c}, nil
		},
	})
}
