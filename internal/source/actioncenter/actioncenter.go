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
	// maxPageSize is where the service is believed to clamp pageSize (an
	// unverified capture comment); a lower clamp is detected while paging.
	maxPageSize = 1000
	maxPages    = 100000
)

// Config are the source's settings.
type Config struct {
	PageSize          int `yaml:"page_size"`
	srcutil.Windowing `yaml:",inline"`
}

// NewConfig returns the defaults. EventTime is the action's last update,
// stamped when the service records the update, so rows should be visible
// within seconds; nothing public measures it, so the window end stays 5
// minutes behind now and an hour is re-read (actions are few: the overlap
// costs rows on pages already requested, rarely a request).
func NewConfig() *Config {
	return &Config{PageSize: 200, Windowing: srcutil.Windowing{
		Overlap: source.Duration(time.Hour), MaxWindow: source.Duration(7 * 24 * time.Hour),
		Delay: source.Duration(5 * time.Minute),
	}}
}

// Validate checks the settings at config load; errors name the key.
func (c *Config) Validate() error {
	if err := srcutil.CheckInt("page_size", c.PageSize, 1, maxPageSize); err != nil {
		if c.PageSize > maxPageSize {
			return fmt.Errorf("%w (the service clamps larger pages)", err)
		}
		return err
	}
	return c.CheckValues(0)
}

// Page is one decoded page.
type Page struct {
	Count int64 // -1 when the page reported no total
	Items []source.Item
}

// Shape: the capture shows {"Count":n,"Results":[…]}; the other list
// envelopes are accepted too.
var Shape = srcutil.ListShape{}

// DecodePage reads one page (see srcutil.ReadList); every record needs an
// id (ActionId, actionId) and a time (EventTime, eventTime; no offset
// means UTC).
func DecodePage(body []byte) (Page, error) {
	l, items, err := fields.List(Name, body, Shape)
	if err != nil {
		return Page{}, err
	}
	return Page{Count: l.Total, Items: items}, nil
}

// fields: an action that changes status is a new record.
var fields = srcutil.EventFields{
	ID: []string{"ActionId", "actionId"}, Time: []string{"EventTime", "eventTime"},
	StableID: func(id, ts string, f map[string]json.RawMessage) string {
		return record.StableID(Name, id, ts, srcutil.OptText(f, "ActionStatus", "actionStatus"))
	},
}

type src struct {
	srcutil.Meta
	portal mde.Portal
	cfg    Config
}

func (s *src) Windowing() source.Windowing { return s.cfg.Rules() }

// Fetch pages through [From, To] sorted ascending by event time with a
// srcutil.Pager: a clamped page size is detected, paging goes on until
// Count is reached, and ending short of Count fails the window. Each page
// is decoded completely before any of it is emitted.
func (s *src) Fetch(ctx context.Context, w source.Window, emit source.Emit) error {
	pg := srcutil.NewPager(Name, s.cfg.PageSize, maxPages)
	for {
		page, size, err := pg.Next()
		if err != nil {
			return err
		}
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
		more, err := pg.Add(srcutil.IDs(p.Items), p.Count)
		if err != nil {
			return err
		}
		if err := srcutil.EmitAll(ctx, emit, p.Items); err != nil {
			return err
		}
		if !more {
			return nil
		}
	}
}

func init() {
	source.Register(source.Factory{
		Schedule: "5m", // Live Response and other response actions, as fast as machine actions
		Name:     Name, Table: Table, Kind: source.Event, API: "portal", DefaultEnabled: true,
		Description: "Action Center history: response actions and Live Response commands, with who ran them",
		NewConfig:   func() any { return NewConfig() },
		New: func(deps source.Deps, cfg any) (source.Source, error) {
			c, err := srcutil.Settings(Name, cfg, NewConfig)
			if err != nil {
				return nil, err
			}
			if err := srcutil.NeedPortal(Name, deps); err != nil {
				return nil, err
			}
			return &src{Meta: srcutil.NewMeta(Name, Table, source.Event), portal: deps.Portal, cfg: *c}, nil
		},
	})
}
