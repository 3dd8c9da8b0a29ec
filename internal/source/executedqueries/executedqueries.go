// Package executedqueries harvests the report of executed advanced hunting
// queries — portal, API and custom detection runs, with who ran what
// (event source, table MdeExecutedQueries).
package executedqueries

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/source/srcutil"
)

const (
	// Name is the source's config key.
	Name = "executedqueries"
	// Table is where its records land.
	Table = "MdeExecutedQueries"
	// Path is the portal endpoint (POST).
	Path = "/apiproxy/hunting/huntingService/reports"
	// apiLimit is the longest window the service accepts.
	apiLimit = 30 * 24 * time.Hour
	// minSplit stops halving windows whose report looks truncated.
	minSplit = time.Minute
)

// Config are the source's settings.
type Config struct {
	srcutil.Windowing `yaml:",inline"`
}

// NewConfig returns the defaults.
func NewConfig() *Config {
	return &Config{Windowing: srcutil.Windowing{
		Overlap: source.Duration(15 * time.Minute), MaxWindow: source.Duration(24 * time.Hour),
	}}
}

// Page is one decoded report.
type Page struct {
	Count int64 // -1 when the report has no Count
	Items []source.Item
}

// DecodePage reads {"Count":n,"Results":[…]}; every query needs QueryId
// and Timestamp.
func DecodePage(body []byte) (Page, error) {
	count, items, err := fields.Results(Name, body, false)
	if err != nil {
		return Page{}, err
	}
	return Page{Count: count, Items: items}, nil
}

// fields: QueryId is one per execution, so it alone is the id.
var fields = srcutil.EventFields{
	ID: []string{"QueryId"}, Time: []string{"Timestamp"},
	StableID: func(id, _ string, _ map[string]json.RawMessage) string {
		return record.StableID(Name, id)
	},
}

type src struct {
	srcutil.Meta
	portal mde.Portal
	cfg    Config
}

func (s *src) Windowing() source.Windowing { return s.cfg.Rules() }

// Fetch requests the report per chunk of at most max_window.
func (s *src) Fetch(ctx context.Context, w source.Window, emit source.Emit) error {
	for _, c := range srcutil.Chunks(w, s.cfg.MaxWindow.D()) {
		if err := s.fetch(ctx, c, emit); err != nil {
			return err
		}
	}
	return nil
}

// fetch reads one window. The report has no paging; if its Count says it
// holds more rows than it returned, the window is halved and re-read
// rather than emitting a truncated report.
func (s *src) fetch(ctx context.Context, w source.Window, emit source.Emit) error {
	body, err := s.portal.Post(ctx, Path, nil, map[string]string{
		"startTime": mde.FormatPortalTime(w.From), "endTime": mde.FormatPortalTimeCeil(w.To),
	})
	if err != nil {
		return fmt.Errorf("%s %s–%s: %w", Name, mde.FormatPortalTime(w.From), mde.FormatPortalTime(w.To), err)
	}
	p, err := DecodePage(body)
	if err != nil {
		return err
	}
	if p.Count > int64(len(p.Items)) {
		half := w.To.Sub(w.From) / 2
		if half < minSplit {
			return fmt.Errorf("%s: the report for %s–%s holds %d queries but returned %d; it cannot be split further", Name,
				mde.FormatPortalTime(w.From), mde.FormatPortalTime(w.To), p.Count, len(p.Items))
		}
		mid := w.From.Add(half)
		if err := s.fetch(ctx, source.Window{From: w.From, To: mid}, emit); err != nil {
			return err
		}
		return s.fetch(ctx, source.Window{From: mid, To: w.To}, emit)
	}
	return srcutil.EmitAll(ctx, emit, p.Items)
}

func init() {
	source.Register(source.Factory{
		Name: Name, Table: Table, Kind: source.Event, API: "portal", DefaultEnabled: true,
		Description: "Executed advanced hunting queries (portal, API, custom detections) with who ran them",
		NewConfig:   func() any { return NewConfig() },
		New: func(deps source.Deps, cfg any) (source.Source, error) {
			c, err := srcutil.CheckConfig[Config](Name, cfg)
			if err != nil {
				return nil, err
			}
			if err := c.Check(Name, apiLimit); err != nil {
				return nil, err
			}
			if err := srcutil.NeedPortal(Name, deps); err != nil {
				return nil, err
			}
			return &src{Meta: srcutil.NewMeta(Name, Table, source.Event), portal: deps.Portal, cfg: *c}, nil
		},
	})
}
